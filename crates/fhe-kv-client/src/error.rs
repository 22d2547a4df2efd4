//! The crate's single error type.

use fhe_kv_core::{FheKvError, KeyId};
use postgres::error::SqlState;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client library or the CLI.
///
/// [`Display`](std::fmt::Display) gives the message (for server errors: the server's
/// message, plus its `DETAIL` on a second line); [`Error::hint`] gives the likely fix
/// when there is one (the server's `HINT` for server errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Encryption, decryption or envelope validation failed locally.
    #[error(transparent)]
    Fhe(#[from] FheKvError),

    /// A statement failed (server error, lost connection, unexpected result type, …).
    #[error("{}", format_pg(.0))]
    Db(#[from] postgres::Error),

    /// The connection could not be established.
    #[error("could not connect to {target}: {}", format_pg(.source))]
    Connect {
        /// Where we tried to connect (no password).
        target: String,
        source: postgres::Error,
    },

    /// Reading or writing a file failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// e.g. "reading client key"
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// A client key file is readable by its group or by others.
    #[error(
        "client key {} is accessible by group or others (mode {mode:04o}); refusing to use it",
        .path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },

    /// The table exists as a relation but is not an fhe_kv table.
    #[error("{0} is not an fhe_kv table (it is not listed in fhe_kv.tables)")]
    NotAnFheKvTable(String),

    /// The table was created for another client key.
    #[error("table {table} uses key_id {table_key_id} but your client key is {client_key_id}")]
    KeyMismatch {
        table: String,
        table_key_id: KeyId,
        client_key_id: KeyId,
    },

    /// A bad argument, detected before anything was sent to the server.
    #[error("{0}")]
    Usage(String),

    /// TLS settings that cannot work (a missing root certificate, an unreadable or
    /// too-open key, …), detected before connecting.
    #[error("{message}")]
    Tls { message: String, hint: String },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The likely fix, if known.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Fhe(e) => e.hint().map(str::to_string),
            Error::Db(e) => db_hint(e),
            Error::Connect { source, .. } => Some(connect_hint(source)),
            Error::Io {
                action,
                path,
                source,
            } => match (source.kind(), *action) {
                (std::io::ErrorKind::NotFound, "reading client key") => Some(format!(
                    "Generate a key pair with `fhe-kv keygen --out-dir DIR`, or point --client-key (FHE_KV_CLIENT_KEY) at your key file (looked for {}).",
                    path.display()
                )),
                (std::io::ErrorKind::AlreadyExists, _) => {
                    Some("Pass --force to overwrite it, or choose another directory.".to_string())
                }
                _ => None,
            },
            Error::InsecureKeyFile { path, .. } => Some(format!(
                "The client key is secret: run `chmod 600 {}`.",
                path.display()
            )),
            Error::NotAnFheKvTable(_) => {
                Some("Create it with `fhe-kv create-table NAME --capacity N`; list tables with `fhe-kv tables`. \
                      A table restored from a backup without its catalog entry (pg_dump -t, or a dump made \
                      before fhe_kv 0.2.0) is registered again with `fhe-kv attach NAME --key-type T --value-type T`.".to_string())
            }
            Error::KeyMismatch { .. } => Some(
                "Use the client key the table was created with (--client-key / FHE_KV_CLIENT_KEY)."
                    .to_string(),
            ),
            Error::Usage(_) => None,
            Error::Tls { hint, .. } => Some(hint.clone()),
        }
    }

    /// The SQLSTATE of a server error, if this is one.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            Error::Db(e) | Error::Connect { source: e, .. } => e.code(),
            _ => None,
        }
    }
}

/// Server errors: the server's message and detail (the hint is in [`Error::hint`]).
/// Other errors (I/O, protocol, type conversion): the postgres crate's text.
fn format_pg(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}\ndetail: {detail}", db.message()),
            None => db.message().to_string(),
        },
        None => {
            // Depending on the version, the postgres crate's Display may omit the cause
            // ("error connecting to server"): append the chain, without repeating it.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text = format!("{text}: {cause_text}");
                }
                source = cause.source();
            }
            text
        }
    }
}

fn connect_hint(e: &postgres::Error) -> String {
    let text = format_pg(e);
    let hint = if text.contains("certificate verify failed") && text.contains("mismatch") {
        "The server's certificate does not name the host you connected to: with sslmode=verify-full, \
         connect by a name the certificate lists (or use verify-ca to check the CA only)."
    } else if text.contains("certificate verify failed") {
        "The server's certificate did not verify against your root certificate: sslrootcert \
         (PGSSLROOTCERT, default ~/.postgresql/root.crt) must be the CA that signed it."
    } else if text.contains("server does not support TLS") {
        "The server does not accept TLS connections (ssl = off): ask its administrator to enable \
         it, or use sslmode=prefer/disable on a trusted network."
    } else if text.contains("no encryption") {
        "The server accepts this connection only over TLS: use sslmode=require or stronger \
         (verify-full with sslrootcert to also authenticate the server)."
    } else if text.contains("client certificate") {
        "The server wants a client certificate: set sslcert and sslkey (PGSSLCERT/PGSSLKEY, \
         default ~/.postgresql/postgresql.crt and .key), issued by a CA the server trusts."
    } else if text.contains("password") {
        "Check the user name and password (PGPASSWORD, a password in the URL, or a line in \
         ~/.pgpass / PGPASSFILE with permissions 0600)."
    } else {
        "Pass a connection URL with --db (or DATABASE_URL), or set PGHOST/PGPORT/PGUSER/PGDATABASE \
         (TLS: sslmode, sslrootcert, PGSSLMODE, …)."
    };
    hint.to_string()
}

const OLD_EXTENSION_HINT: &str = "The fhe_kv extension in this database is missing or older than \
     this client (see `\\dx fhe_kv` in psql): run `ALTER EXTENSION fhe_kv UPDATE;` (it keeps every \
     table), or `CREATE EXTENSION fhe_kv;` if it is not installed.";

fn db_hint(e: &postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    let code = db.code();
    let mentions_ext = db.message().contains("fhe_kv");
    // Postgres's own hint here ("add explicit type casts") misleads: the SQL this client
    // sends is right for its version, so the extension is older (or absent).
    if mentions_ext && *code == SqlState::UNDEFINED_FUNCTION {
        return Some(OLD_EXTENSION_HINT.to_string());
    }
    if let Some(hint) = db.hint() {
        return Some(hint.to_string());
    }
    if mentions_ext && *code == SqlState::INVALID_SCHEMA_NAME {
        return Some(
            "Is the fhe_kv extension installed in this database? Run `CREATE EXTENSION fhe_kv;`."
                .to_string(),
        );
    }
    if mentions_ext && *code == SqlState::UNDEFINED_TABLE {
        return Some(OLD_EXTENSION_HINT.to_string());
    }
    // This client's own catalog queries name columns a pre-0.2.0 extension lacks.
    if *code == SqlState::UNDEFINED_COLUMN {
        return Some(OLD_EXTENSION_HINT.to_string());
    }
    if *code == SqlState::UNDEFINED_TABLE {
        return Some("List the encrypted tables with `fhe-kv tables`.".to_string());
    }
    None
}
