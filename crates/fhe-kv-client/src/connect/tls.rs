//! TLS the way libpq users configure it: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`
//! (in the connection string or as `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
//! `PGSSLKEY`), with libpq's defaults and file locations.
//!
//! The handshake itself is OpenSSL's, through `postgres-openssl` (the TLS connector
//! maintained with the `postgres` crate); this module only decides what to verify.
//!
//! | sslmode | encrypted | server certificate verified | host name checked |
//! |---|---|---|---|
//! | disable | no | — | — |
//! | allow, prefer (default) | if the server offers it | only if a root certificate file exists | no |
//! | require | yes | only if a root certificate file exists | no |
//! | verify-ca | yes | yes | no |
//! | verify-full | yes | yes | yes |
//!
//! The root certificate file is `sslrootcert`, else `~/.postgresql/root.crt`;
//! `sslrootcert=system` uses the system's trusted roots (and implies verify-full, as in
//! libpq 16). The client certificate is `sslcert`/`sslkey`, else
//! `~/.postgresql/postgresql.{crt,key}` when they exist. Unix-socket connections never
//! use TLS (the server does not offer it there), whatever `sslmode` says.

use crate::error::{Error, Result};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    /// Treated as `prefer` (both accept either kind of connection; libpq tries plain
    /// text first).
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::Usage(format!(
                    "invalid sslmode \"{other}\": expected disable, allow, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }

    /// What the `postgres` crate enforces itself: whether TLS is attempted / required.
    pub(crate) fn negotiation(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// Where the trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The system's default trust store (`sslrootcert=system`).
    System,
    /// None: the server's certificate is not verified (allowed below verify-ca only).
    None,
}

/// The resolved TLS settings of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: RootCert,
    /// Client certificate chain and private key (PEM), for `cert` authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    /// Resolve from the connection string's parameters, then the `PGSSL*` variables, then
    /// libpq's defaults under `home`.
    pub(crate) fn resolve(
        params: &HashMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<TlsSettings> {
        let setting = |param: &str, var: &str| params.get(param).cloned().or_else(|| env(var));
        let explicit_mode = setting("sslmode", "PGSSLMODE")
            .map(|m| SslMode::parse(&m))
            .transpose()?;
        let default_file = |name: &str| home.map(|h| h.join(".postgresql").join(name));

        let root_cert = match setting("sslrootcert", "PGSSLROOTCERT") {
            Some(v) if v == "system" => RootCert::System,
            Some(v) => RootCert::File(PathBuf::from(v)),
            None => match default_file("root.crt") {
                Some(p) if p.exists() => RootCert::File(p),
                // verify-* reports the missing default file below
                Some(p) if explicit_mode >= Some(SslMode::VerifyCa) => RootCert::File(p),
                _ => RootCert::None,
            },
        };
        let mode = match (explicit_mode, &root_cert) {
            (None, RootCert::System) => SslMode::VerifyFull,
            (Some(m), RootCert::System) if m != SslMode::VerifyFull && m != SslMode::Disable => {
                return Err(Error::Usage(format!(
                    "weak sslmode \"{m}\" may not be used with sslrootcert=system (use \"verify-full\")"
                )))
            }
            (m, _) => m.unwrap_or(SslMode::Prefer),
        };
        if mode >= SslMode::VerifyCa {
            match &root_cert {
                RootCert::File(p) if !p.exists() => {
                    return Err(Error::Tls {
                        message: format!(
                            "root certificate file \"{}\" does not exist",
                            p.display()
                        ),
                        hint: format!(
                            "sslmode={mode} verifies the server's certificate: point sslrootcert (PGSSLROOTCERT) at the CA \
                             certificate that signed it, use sslrootcert=system for the system's trusted roots, or \
                             choose sslmode=require to encrypt without verifying."
                        ),
                    })
                }
                RootCert::None => {
                    return Err(Error::Tls {
                        message: format!("sslmode={mode} needs a root certificate and none was found"),
                        hint: "Set sslrootcert (PGSSLROOTCERT) to the CA certificate file, or put it in ~/.postgresql/root.crt."
                            .to_string(),
                    })
                }
                _ => {}
            }
        }

        let explicit_cert = setting("sslcert", "PGSSLCERT").map(PathBuf::from);
        let explicit_key = setting("sslkey", "PGSSLKEY").map(PathBuf::from);
        let client_cert = match (explicit_cert, explicit_key) {
            (None, None) => match (
                default_file("postgresql.crt"),
                default_file("postgresql.key"),
            ) {
                (Some(c), Some(k)) if c.exists() && k.exists() => Some((c, k)),
                _ => None,
            },
            (cert, key) => {
                let cert = cert.or_else(|| default_file("postgresql.crt"));
                let key = key.or_else(|| default_file("postgresql.key"));
                match (cert, key) {
                    (Some(c), Some(k)) => {
                        for (what, p) in [("client certificate", &c), ("client key", &k)] {
                            if !p.exists() {
                                return Err(Error::Tls {
                                    message: format!("{what} file \"{}\" does not exist", p.display()),
                                    hint: "Check sslcert/sslkey (PGSSLCERT/PGSSLKEY): both files are needed, in PEM format."
                                        .to_string(),
                                });
                            }
                        }
                        Some((c, k))
                    }
                    _ => None,
                }
            }
        };
        Ok(TlsSettings {
            mode,
            root_cert,
            client_cert,
        })
    }

    /// Whether the server's certificate chain is checked against the root certificates.
    pub fn verifies_certificate(&self) -> bool {
        self.mode != SslMode::Disable && self.root_cert != RootCert::None
    }

    /// Whether the host name must match the certificate.
    pub fn verifies_host_name(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }

    /// The OpenSSL connector for these settings.
    pub(crate) fn connector(&self) -> Result<MakeTlsConnector> {
        let tls_error = |what: String| {
            move |e: openssl::error::ErrorStack| Error::Tls {
                message: format!("{what}: {e}"),
                hint:
                    "Certificates and keys must be PEM files; the key must match the certificate."
                        .to_string(),
            }
        };
        let mut builder = SslConnector::builder(SslMethod::tls_client())
            .map_err(tls_error("setting up TLS".into()))?;
        match &self.root_cert {
            RootCert::File(p) => builder.set_ca_file(p).map_err(tls_error(format!(
                "reading root certificate \"{}\"",
                p.display()
            )))?,
            RootCert::System => builder
                .set_default_verify_paths()
                .map_err(tls_error("loading the system's trusted roots".into()))?,
            RootCert::None => {}
        }
        builder.set_verify(if self.verifies_certificate() {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });
        if let Some((cert, key)) = &self.client_cert {
            check_key_permissions(key)?;
            builder
                .set_certificate_chain_file(cert)
                .map_err(tls_error(format!(
                    "reading client certificate \"{}\"",
                    cert.display()
                )))?;
            builder
                .set_private_key_file(key, SslFiletype::PEM)
                .map_err(tls_error(format!(
                    "reading client key \"{}\"",
                    key.display()
                )))?;
            builder
                .check_private_key()
                .map_err(tls_error(format!("client key \"{}\"", key.display())))?;
        }
        let mut connector = MakeTlsConnector::new(builder.build());
        if !self.verifies_host_name() {
            connector.set_callback(|config, _domain| {
                config.set_verify_hostname(false);
                Ok(())
            });
        }
        Ok(connector)
    }

    /// One line for error messages: what was asked of the server's certificate.
    pub fn describe(&self) -> String {
        let roots = match &self.root_cert {
            RootCert::File(p) => format!("sslrootcert={}", p.display()),
            RootCert::System => "sslrootcert=system".to_string(),
            RootCert::None => "no root certificate".to_string(),
        };
        format!("sslmode={} {roots}", self.mode)
    }
}

/// libpq refuses a private key that its group or others can read (root-owned keys may be
/// group-readable).
fn check_key_permissions(key: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(key).map_err(|e| Error::io("reading client key", key, e))?;
        let mode = meta.permissions().mode() & 0o777;
        let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
        if mode & !allowed != 0 {
            return Err(Error::Tls {
                message: format!(
                    "private key file \"{}\" has group or world access (mode {mode:04o})",
                    key.display()
                ),
                hint: format!("Run `chmod 600 {}`.", key.display()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        params: &[(&str, &str)],
        env: &[(&str, &str)],
        home: Option<&Path>,
    ) -> Result<TlsSettings> {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TlsSettings::resolve(&params, &|k| env.get(k).cloned(), home)
    }

    #[test]
    fn modes_and_precedence() {
        let s = resolve(&[], &[], None).unwrap();
        assert_eq!(
            (s.mode, &s.root_cert, s.verifies_certificate()),
            (SslMode::Prefer, &RootCert::None, false)
        );
        let s = resolve(&[], &[("PGSSLMODE", "require")], None).unwrap();
        assert_eq!(s.mode, SslMode::Require);
        // the connection string wins over the environment
        let s = resolve(&[("sslmode", "disable")], &[("PGSSLMODE", "require")], None).unwrap();
        assert_eq!(s.mode, SslMode::Disable);
        assert_eq!(
            SslMode::VerifyCa.negotiation(),
            postgres::config::SslMode::Require
        );
        assert_eq!(
            SslMode::Allow.negotiation(),
            postgres::config::SslMode::Prefer
        );
        let e = resolve(&[("sslmode", "strict")], &[], None).unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
        // system roots imply verify-full and refuse weaker modes
        let s = resolve(&[("sslrootcert", "system")], &[], None).unwrap();
        assert_eq!(
            (s.mode, s.verifies_host_name()),
            (SslMode::VerifyFull, true)
        );
        assert!(resolve(
            &[("sslrootcert", "system"), ("sslmode", "require")],
            &[],
            None
        )
        .is_err());
    }

    #[test]
    fn files_and_defaults() {
        let home = std::env::temp_dir().join(format!("fhe-kv-tls-{}", std::process::id()));
        let dot = home.join(".postgresql");
        std::fs::create_dir_all(&dot).unwrap();
        // verify-* without any root certificate: a clear error naming the file
        let e = resolve(&[("sslmode", "verify-full")], &[], Some(&home)).unwrap_err();
        assert!(
            e.to_string().contains("root.crt") && e.to_string().contains("does not exist"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("sslrootcert"));
        let e = resolve(
            &[
                ("sslmode", "verify-ca"),
                ("sslrootcert", "/nonexistent/ca.pem"),
            ],
            &[],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");

        // ~/.postgresql/root.crt turns on verification for require too (libpq), without
        // the host name check
        std::fs::write(dot.join("root.crt"), "x").unwrap();
        let s = resolve(&[("sslmode", "require")], &[], Some(&home)).unwrap();
        assert_eq!(s.root_cert, RootCert::File(dot.join("root.crt")));
        assert!(s.verifies_certificate() && !s.verifies_host_name());
        assert_eq!(
            s.describe(),
            format!(
                "sslmode=require sslrootcert={}",
                dot.join("root.crt").display()
            )
        );

        // client certificate: defaults used only when both exist; explicit ones must exist
        assert_eq!(resolve(&[], &[], Some(&home)).unwrap().client_cert, None);
        std::fs::write(dot.join("postgresql.crt"), "x").unwrap();
        std::fs::write(dot.join("postgresql.key"), "x").unwrap();
        assert_eq!(
            resolve(&[], &[], Some(&home)).unwrap().client_cert,
            Some((dot.join("postgresql.crt"), dot.join("postgresql.key")))
        );
        let e = resolve(&[("sslcert", "/nonexistent/c.crt")], &[], Some(&home)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.crt"), "{e}");
        let s = resolve(
            &[],
            &[("PGSSLKEY", dot.join("root.crt").to_str().unwrap())],
            Some(&home),
        )
        .unwrap();
        assert_eq!(
            s.client_cert,
            Some((dot.join("postgresql.crt"), dot.join("root.crt")))
        );

        // a group-readable private key is refused before connecting
        use std::os::unix::fs::PermissionsExt;
        let key = dot.join("postgresql.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_key_permissions(&key).unwrap_err();
        assert!(e.to_string().contains("group or world access"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_key_permissions(&key).unwrap();
        std::fs::remove_dir_all(&home).unwrap();
    }
}
