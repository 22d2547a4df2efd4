//! The `fhe-kv` subcommands (a module per group) and what they share: options, connection, timing.

pub mod bulk;
pub mod crypt;
pub mod entries;
pub mod keys;
pub mod tables;

use fhe_kv_client::{
    read_client_key, read_server_key, Client, ClientKeys, ConnectOptions, Connection, Error,
    Result, Width,
};
use std::path::PathBuf;
use std::time::Instant;

/// What a command wants printed on success, and its exit status.
pub struct Outcome {
    pub stdout: String,
    pub code: u8,
}

impl From<String> for Outcome {
    fn from(stdout: String) -> Self {
        Outcome { stdout, code: 0 }
    }
}

/// The global options, as the commands use them.
pub struct Context {
    opts: ConnectOptions,
    client_key: PathBuf,
    /// `--session-key`: a server key to load for each connection's session only.
    session_key: Option<PathBuf>,
    timing: bool,
    /// `--json`: one JSON object per result.
    pub json: bool,
}

impl Context {
    pub fn new(
        db: Option<String>,
        client_key: PathBuf,
        session_key: Option<PathBuf>,
        timing: bool,
        json: bool,
    ) -> Context {
        Context {
            opts: ConnectOptions {
                url: db,
                notices_to_stderr: true,
            },
            client_key,
            session_key,
            timing,
            json,
        }
    }

    /// A database connection without a client key (with `--session-key` loaded).
    pub fn connect(&self) -> Result<Connection> {
        let mut conn = Connection::connect(&self.opts)?;
        if let Some(path) = &self.session_key {
            conn.load_session_key(&read_server_key(path)?)?;
        }
        Ok(conn)
    }

    /// The client key from `--client-key`.
    pub fn client_keys(&self) -> Result<ClientKeys> {
        read_client_key(&self.client_key)
    }

    /// A connection with the client key (read first, so a missing key fails before
    /// connecting) and `--session-key` loaded.
    pub fn client(&self) -> Result<Client> {
        let keys = self.client_keys()?;
        let session_key = self
            .session_key
            .as_deref()
            .map(read_server_key)
            .transpose()?;
        let mut client = Client::connect(&self.opts, keys)?;
        if let Some(upload) = session_key {
            client.load_session_key(&upload)?;
        }
        Ok(client)
    }

    /// Runs `f`; with `--timing`, prints the time it took to stderr, e.g. "(0.84 s)".
    pub fn timed(&self, f: impl FnOnce() -> Result<Outcome>) -> Result<Outcome> {
        let start = Instant::now();
        let out = f();
        if self.timing {
            eprintln!("({:.2} s)", start.elapsed().as_secs_f64());
        }
        out
    }
}

pub fn parse_bits(s: &str) -> std::result::Result<u32, String> {
    let bits: u32 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number (expected 8, 16, 32 or 64)"))?;
    Width::from_bits(bits).map_err(|e| e.to_string())?;
    Ok(bits)
}

pub fn check_fits(n: u64, width: Width, what: &str) -> Result<()> {
    if n > width.max_value() {
        return Err(Error::Usage(format!(
            "{what} {n} does not fit in {} bits (max {})",
            width.bits(),
            width.max_value()
        )));
    }
    Ok(())
}
