//! Where to connect: a URL / key=value string, or the standard libpq environment variables.

use crate::error::{Error, Result};
use postgres::config::Host;

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
/// user name), dbname = user.
///
/// TLS is not supported: connect over a unix socket or a trusted network
/// (`sslmode=require` fails).
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
        self.config_with(|name| std::env::var(name).ok())
    }

    /// [`ConnectOptions::config`] with an explicit environment (for tests).
    pub fn config_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<postgres::Config> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let url = self
            .url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| env("DATABASE_URL"));
        let mut config = match &url {
            Some(url) => url.parse::<postgres::Config>().map_err(|e| {
                Error::Usage(format!(
                    "invalid connection string (expected postgres://user@host:port/dbname or key=value pairs): {e}"
                ))
            })?,
            None => postgres::Config::new(),
        };
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
        if config.get_password().is_none() {
            if let Some(pw) = env("PGPASSWORD") {
                config.password(pw);
            }
        }
        if config.get_dbname().is_none() {
            if let Some(dbname) =
                env("PGDATABASE").or_else(|| config.get_user().map(str::to_string))
            {
                config.dbname(&dbname);
            }
        }
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
        Ok(config)
    }

    /// Connect (no TLS).
    pub fn connect(&self) -> Result<postgres::Client> {
        let config = self.config()?;
        config
            .connect(postgres::NoTls)
            .map_err(|source| Error::Connect {
                target: describe(&config),
                source,
            })
    }
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
            .config_with(env_of(&[("USER", "alice")]))
            .unwrap();
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
            .config_with(env_of(&[
                ("USER", "alice"),
                ("PGHOST", "/tmp/sock"),
                ("PGPORT", "5433"),
                ("PGUSER", "bob"),
                ("PGPASSWORD", "pw"),
                ("PGDATABASE", "kv"),
            ]))
            .unwrap();
        assert_eq!(c.get_hosts(), &[Host::Unix(PathBuf::from("/tmp/sock"))]);
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.get_dbname(), Some("kv"));

        let c = ConnectOptions::from_env()
            .config_with(env_of(&[("PGHOST", "db.example"), ("PGUSER", "bob")]))
            .unwrap();
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(c.get_dbname(), Some("bob"));
    }

    #[test]
    fn bad_port_and_no_user() {
        let err = ConnectOptions::from_env()
            .config_with(env_of(&[("USER", "a"), ("PGPORT", "x")]))
            .unwrap_err();
        assert!(err.to_string().contains("PGPORT"), "{err}");
        // no user anywhere: left to the postgres crate (OS user name), dbname to the server
        let c = ConnectOptions::from_env().config_with(env_of(&[])).unwrap();
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
            .config_with(&env)
            .unwrap();
        assert_eq!(c.get_hosts(), &[Host::Tcp("db".into())]);
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_user(), Some("carol"));
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_password(), Some(&b"envpw"[..]));

        // DATABASE_URL is used when no explicit URL is given
        let c = ConnectOptions::from_env().config_with(&env).unwrap();
        assert_eq!(c.get_hosts(), &[Host::Tcp("h1".into())]);
        assert_eq!(c.get_user(), Some("dburl"));
        assert_eq!(c.get_dbname(), Some("x"));

        // key=value strings; user falls back to $USER
        let c = ConnectOptions::from_url("host=/run/pg dbname=kv")
            .config_with(env_of(&[("USER", "alice")]))
            .unwrap();
        assert_eq!(c.get_hosts(), &[Host::Unix(PathBuf::from("/run/pg"))]);
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("kv"));

        let err = ConnectOptions::from_url("postgres://[bad")
            .config_with(env_of(&[("USER", "a")]))
            .unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
    }

    #[test]
    fn describe_has_no_password() {
        let c = ConnectOptions::from_url("postgres://u:secret@h:1/d")
            .config_with(env_of(&[]))
            .unwrap();
        let d = describe(&c);
        assert_eq!(d, "host=h port=1 user=u dbname=d");
    }
}
