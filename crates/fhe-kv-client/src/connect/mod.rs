//! Where to connect: a URL / key=value string, or the standard libpq environment variables,
//! with libpq's TLS settings ([`tls`]) and password file ([`pgpass`]).

mod conninfo;
mod pgpass;
mod tls;

pub use tls::{RootCert, SslMode, TlsSettings};

use crate::error::{Error, Result};
use postgres::config::Host;
use std::path::{Path, PathBuf};

/// Default unix socket directory when neither a URL nor `PGHOST` names a host.
pub const DEFAULT_HOST: &str = "/var/run/postgresql";
/// Default port when neither a URL nor `PGPORT` names one.
pub const DEFAULT_PORT: u16 = 5432;

/// How to reach the database.
///
/// Resolution order:
/// 1. [`ConnectOptions::url`] if set (a `postgres://user:pw@host:port/db?…` URL or a libpq
///    `key=value …` string);
/// 2. else the `DATABASE_URL` environment variable, if set and non-empty;
/// 3. else an empty configuration.
///
/// Whatever the chosen configuration leaves unset is then filled, like libpq does, from
/// `PGHOST` (a unix socket directory when it starts with `/`; comma-separated lists allowed),
/// `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, with the defaults host
/// [`DEFAULT_HOST`], port [`DEFAULT_PORT`], user `$USER` (else `$LOGNAME`, else the OS
/// user name), dbname = user. Without a password, the password file is read
/// (`passfile`, else `PGPASSFILE`, else `~/.pgpass`).
///
/// TLS follows libpq: `sslmode` (disable, allow, prefer — the default —, require,
/// verify-ca, verify-full), `sslrootcert`, `sslcert`, `sslkey`, in the string or as
/// `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`; see [`TlsSettings`].
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Explicit URL or key=value string; `None` to use `DATABASE_URL` / `PG*` variables.
    pub url: Option<String>,
    /// Print server `NOTICE`/`WARNING` messages to stderr (the CLI does).
    pub notices_to_stderr: bool,
}

impl ConnectOptions {
    /// Use this URL or key=value connection string (missing parts still come from `PG*`).
    pub fn from_url(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    /// Use `DATABASE_URL`, or the `PG*` variables and defaults.
    pub fn from_env() -> Self {
        ConnectOptions::default()
    }

    /// The resolved `postgres` configuration (application_name `fhe-kv`).
    pub fn config(&self) -> Result<postgres::Config> {
        Ok(self.resolve()?.config)
    }

    /// The resolved configuration and TLS settings, from the process environment.
    pub fn resolve(&self) -> Result<ResolvedConnection> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// [`ConnectOptions::resolve`] with an explicit environment (for tests).
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<ResolvedConnection> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let url = self
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| env("DATABASE_URL"));
        let (mut config, params) = match &url {
            Some(url) => {
                let (rest, params) = conninfo::extract(url)?;
                let config = rest.parse::<postgres::Config>().map_err(|e| {
                    Error::Usage(format!(
                        "invalid connection string (expected postgres://user@host:port/dbname or key=value pairs): {e}"
                    ))
                })?;
                (config, params)
            }
            None => (postgres::Config::new(), Default::default()),
        };
        let home = env("HOME").map(PathBuf::from);
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            let hosts = env("PGHOST").unwrap_or_else(|| DEFAULT_HOST.to_string());
            for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                config.host(host);
            }
        }
        if config.get_ports().is_empty() {
            let port = match env("PGPORT") {
                Some(p) => p.trim().parse::<u16>().map_err(|_| {
                    Error::Usage(format!("PGPORT '{p}' is not a valid port number"))
                })?,
                None => DEFAULT_PORT,
            };
            config.port(port);
        }
        if config.get_user().is_none() {
            // Without any of these the postgres crate uses the OS user name, and the
            // server defaults dbname to the user name: the same as libpq.
            if let Some(user) = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| env("LOGNAME"))
            {
                config.user(&user);
            }
        }
        if config.get_dbname().is_none() {
            if let Some(dbname) =
                env("PGDATABASE").or_else(|| config.get_user().map(str::to_string))
            {
                config.dbname(&dbname);
            }
        }
        if config.get_password().is_none() {
            if let Some(pw) = env("PGPASSWORD") {
                config.password(pw);
            } else if let Some(pw) = password_from_file(&config, &params, &env, home.as_deref()) {
                config.password(pw);
            }
        }
        let tls = TlsSettings::resolve(&params, &env, home.as_deref())?;
        // The server never offers TLS on a unix socket; libpq ignores sslmode there.
        let unix_only = config.get_hostaddrs().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| matches!(h, Host::Unix(_)));
        config.ssl_mode(if unix_only {
            postgres::config::SslMode::Disable
        } else {
            tls.mode.negotiation()
        });
        if config.get_application_name().is_none() {
            config.application_name("fhe-kv");
        }
        if self.notices_to_stderr {
            config.notice_callback(|notice| {
                eprintln!("{}: {}", notice.severity().to_lowercase(), notice.message());
                if let Some(detail) = notice.detail() {
                    eprintln!("detail: {detail}");
                }
                if let Some(hint) = notice.hint() {
                    eprintln!("hint: {hint}");
                }
            });
        }
        Ok(ResolvedConnection { config, tls })
    }

    /// Connect, with TLS unless the settings or the socket rule it out.
    pub fn connect(&self) -> Result<postgres::Client> {
        self.resolve()?.connect()
    }
}

/// A [`ConnectOptions`] resolved against the environment.
#[derive(Debug)]
pub struct ResolvedConnection {
    /// Everything the `postgres` crate needs (its `ssl_mode` is disable/prefer/require).
    pub config: postgres::Config,
    /// What to verify during the TLS handshake.
    pub tls: TlsSettings,
}

impl ResolvedConnection {
    /// Connect (see [`ConnectOptions::connect`]).
    pub fn connect(&self) -> Result<postgres::Client> {
        let config = &self.config;
        let tls_off = config.get_ssl_mode() == postgres::config::SslMode::Disable;
        let connected = if tls_off {
            config.connect(postgres::NoTls)
        } else {
            config.connect(self.tls.connector()?)
        };
        connected.map_err(|source| {
            let mut target = describe(config);
            if !tls_off {
                target = format!("{target} {}", self.tls.describe());
            }
            Error::Connect { target, source }
        })
    }
}

/// The password file's entry for the first host and port (libpq looks up each host; the
/// `postgres` crate has one password for all).
fn password_from_file(
    config: &postgres::Config,
    params: &std::collections::HashMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<String> {
    let path = params
        .get("passfile")
        .cloned()
        .or_else(|| env("PGPASSFILE"))
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".pgpass")))?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(dir)) => dir.display().to_string(),
        None => config.get_hostaddrs().first()?.to_string(),
    };
    let user = config.get_user()?;
    let query = pgpass::PassfileQuery {
        host: &host,
        port: config.get_ports().first().copied().unwrap_or(DEFAULT_PORT),
        dbname: config.get_dbname().unwrap_or(user),
        user,
    };
    pgpass::lookup(&path, &query, DEFAULT_HOST)
}

/// `host=… port=… user=… dbname=…` without the password, for error messages.
pub fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .chain(config.get_hostaddrs().iter().map(|a| a.to_string()))
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} user={} dbname={}",
        hosts.join(","),
        ports.join(","),
        config.get_user().unwrap_or("(OS user)"),
        config.get_dbname().unwrap_or("(user name)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_from_user() {
        let c = ConnectOptions::from_env()
            .resolve_with(env_of(&[("USER", "alice")]))
            .unwrap()
            .config;
        assert_eq!(c.get_hosts(), &[Host::Unix(PathBuf::from(DEFAULT_HOST))]);
        assert_eq!(c.get_ports(), &[5432]);
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("alice"));
        assert_eq!(c.get_password(), None);
        assert_eq!(c.get_application_name(), Some("fhe-kv"));
    }

    #[test]
    fn pg_env_vars() {
        let c = ConnectOptions::from_env()
            .resolve_with(env_of(&[
                ("USER", "alice"),
                ("PGHOST", "/tmp/sock"),
                ("PGPORT", "5433"),
                ("PGUSER", "bob"),
                ("PGPASSWORD", "pw"),
                ("PGDATABASE", "kv"),
            ]))
            .unwrap()
            .config;
        assert_eq!(c.get_hosts(), &[Host::Unix(PathBuf::from("/tmp/sock"))]);
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.get_dbname(), Some("kv"));

        let c = ConnectOptions::from_env()
            .resolve_with(env_of(&[("PGHOST", "db.example"), ("PGUSER", "bob")]))
            .unwrap()
            .config;
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(c.get_dbname(), Some("bob"));
    }

    #[test]
    fn bad_port_and_no_user() {
        let err = ConnectOptions::from_env()
            .resolve_with(env_of(&[("USER", "a"), ("PGPORT", "x")]))
            .unwrap_err();
        assert!(err.to_string().contains("PGPORT"), "{err}");
        // no user anywhere: left to the postgres crate (OS user name), dbname to the server
        let c = ConnectOptions::from_env()
            .resolve_with(env_of(&[]))
            .unwrap()
            .config;
        assert_eq!(c.get_user(), None);
        assert_eq!(c.get_dbname(), None);
        assert_eq!(
            describe(&c),
            "host=/var/run/postgresql port=5432 user=(OS user) dbname=(user name)"
        );
    }

    #[test]
    fn url_wins_and_env_fills_gaps() {
        let env = env_of(&[
            ("USER", "alice"),
            ("PGHOST", "ignored"),
            ("PGPASSWORD", "envpw"),
            ("DATABASE_URL", "postgres://dburl@h1/x"),
        ]);
        let c = ConnectOptions::from_url("postgres://carol@db:6000/shop")
            .resolve_with(&env)
            .unwrap()
            .config;
        assert_eq!(c.get_hosts(), &[Host::Tcp("db".into())]);
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_user(), Some("carol"));
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_password(), Some(&b"envpw"[..]));

        // DATABASE_URL is used when no explicit URL is given
        let c = ConnectOptions::from_env()
            .resolve_with(&env)
            .unwrap()
            .config;
        assert_eq!(c.get_hosts(), &[Host::Tcp("h1".into())]);
        assert_eq!(c.get_user(), Some("dburl"));
        assert_eq!(c.get_dbname(), Some("x"));

        // key=value strings; user falls back to $USER
        let c = ConnectOptions::from_url("host=/run/pg dbname=kv")
            .resolve_with(env_of(&[("USER", "alice")]))
            .unwrap()
            .config;
        assert_eq!(c.get_hosts(), &[Host::Unix(PathBuf::from("/run/pg"))]);
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("kv"));

        let err = ConnectOptions::from_url("postgres://[bad")
            .resolve_with(env_of(&[("USER", "a")]))
            .unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
    }

    #[test]
    fn describe_has_no_password() {
        let c = ConnectOptions::from_url("postgres://u:secret@h:1/d")
            .resolve_with(env_of(&[]))
            .unwrap()
            .config;
        let d = describe(&c);
        assert_eq!(d, "host=h port=1 user=u dbname=d");
    }

    #[test]
    fn tls_settings_reach_the_postgres_config() {
        use postgres::config::SslMode as Negotiation;
        let r = ConnectOptions::from_url(
            "postgres://u@db.example/kv?sslmode=verify-full&sslrootcert=/nonexistent.pem",
        )
        .resolve_with(env_of(&[]));
        // verify-full with a missing CA file fails before any connection attempt
        assert!(matches!(r, Err(Error::Tls { .. })), "{r:?}");

        let r = ConnectOptions::from_url("host=db.example sslmode=require user=u")
            .resolve_with(env_of(&[]))
            .unwrap();
        assert_eq!(r.config.get_ssl_mode(), Negotiation::Require);
        assert_eq!(r.tls.mode, SslMode::Require);
        // unix sockets never negotiate TLS, as in libpq
        let r = ConnectOptions::from_env()
            .resolve_with(env_of(&[("PGHOST", "/tmp/s"), ("PGSSLMODE", "require")]))
            .unwrap();
        assert_eq!(r.config.get_ssl_mode(), Negotiation::Disable);
        // default: prefer over TCP
        let r = ConnectOptions::from_url("postgres://u@h/d")
            .resolve_with(env_of(&[]))
            .unwrap();
        assert_eq!(r.config.get_ssl_mode(), Negotiation::Prefer);
    }

    #[test]
    fn password_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fhe-kv-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "db:5432:kv:alice:from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = file.to_str().unwrap();
        let c = ConnectOptions::from_url("postgres://alice@db/kv")
            .resolve_with(env_of(&[("PGPASSFILE", path)]))
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"from-file"[..]));
        // PGPASSWORD and a password in the string win over the file
        let c = ConnectOptions::from_url("postgres://alice@db/kv")
            .resolve_with(env_of(&[("PGPASSFILE", path), ("PGPASSWORD", "env")]))
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"env"[..]));
        // passfile= in the string, and ~/.pgpass by default
        let c = ConnectOptions::from_url(format!("host=db dbname=kv user=alice passfile={path}"))
            .resolve_with(env_of(&[]))
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"from-file"[..]));
        std::fs::rename(&file, dir.join(".pgpass")).unwrap();
        let c = ConnectOptions::from_url("postgres://alice@db/kv")
            .resolve_with(env_of(&[("HOME", dir.to_str().unwrap())]))
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"from-file"[..]));
        let c = ConnectOptions::from_url("postgres://bob@db/kv")
            .resolve_with(env_of(&[("HOME", dir.to_str().unwrap())]))
            .unwrap()
            .config;
        assert_eq!(c.get_password(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
