//! Shared harness of the cluster tests (`e2e.rs`, `reliability.rs`).
//!
//! They need a running cluster: `make test` starts a throwaway one and sets
//! FHE_KV_TEST_PGHOST / FHE_KV_TEST_PGPORT. Without it they are ignored, and when asked
//! to run (`--include-ignored`) without it they fail rather than pass vacuously.
#![allow(dead_code)] // each test binary uses a different subset

pub mod hostile;
pub mod interrupt;

use fhe_kv_client::{Client, ClientKeys, ConnectOptions, Connection};
use fhe_kv_core::testkeys::test_key_files;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn cluster() -> (String, String) {
    let host = std::env::var("FHE_KV_TEST_PGHOST")
        .expect("FHE_KV_TEST_PGHOST must point at a test cluster (run `make test`)");
    let port = std::env::var("FHE_KV_TEST_PGPORT").unwrap_or_else(|_| "5432".into());
    (host, port)
}

/// Connection options for `user` on database `dbname` of the cluster at host/port.
pub fn options(host: &str, port: &str, user: &str, dbname: &str) -> ConnectOptions {
    ConnectOptions::from_url(format!(
        "host={host} port={port} user={user} dbname={dbname}"
    ))
}

/// A fresh database with the extension and the test server key registered.
pub fn fresh_database(name: &str) -> ConnectOptions {
    let (host, port) = cluster();
    fresh_database_on(&host, &port, name)
}

/// [`fresh_database`] on an explicit cluster.
pub fn fresh_database_on(host: &str, port: &str, name: &str) -> ConnectOptions {
    let admin = options(host, port, "postgres", "postgres");
    let mut db = admin.connect().expect("connect to the test cluster");
    db.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    db.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let opts = options(host, port, "postgres", name);
    let mut conn = Connection::connect(&opts).unwrap();
    conn.postgres()
        .batch_execute("CREATE EXTENSION fhe_kv")
        .unwrap();
    let (_, server_key) = test_key_files();
    conn.register_server_key(&server_key).unwrap();
    opts
}

pub fn client(opts: &ConnectOptions) -> Client {
    let (ck, _) = test_key_files();
    Client::connect(opts, ClientKeys::from_bytes(&ck).unwrap()).unwrap()
}

/// md5 over every slot: equal before and after means no row changed.
/// (Works for flat tables, ordered by slot, and bucketed ones, ordered by bucket.)
pub fn fingerprint(db: &mut postgres::Client, table: &str) -> String {
    let bucketed: bool = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::text::regclass \
             AND attname = 'bucket')",
            &[&table],
        )
        .unwrap()
        .get(0);
    let order = if bucketed { "bucket" } else { "slot" };
    db.query_one(
        &format!("SELECT md5(string_agg(row::text, ',' ORDER BY {order})) FROM {table}"),
        &[],
    )
    .unwrap()
    .get(0)
}

pub fn postmaster_start(db: &mut postgres::Client) -> String {
    db.query_one("SELECT pg_postmaster_start_time()::text", &[])
        .unwrap()
        .get(0)
}

/// The message of a database error (or the error's text for anything else).
pub fn db_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn as_cluster_owner(program: &Path) -> Command {
    // The scripts run Postgres as the unprivileged `postgres` OS user when we are root.
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

fn pg_bindir() -> PathBuf {
    let pg_config = std::env::var("PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let out = Command::new(pg_config).arg("--bindir").output().unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A cluster of its own (scripts/pgcluster.sh), for tests that crash or restart the
/// server and must not disturb the shared one. Stopped and removed on drop.
pub struct OwnCluster {
    pub dir: PathBuf,
    pub port: String,
}

impl OwnCluster {
    /// Start a fresh cluster in `target/<name>` on `port`.
    pub fn start(name: &str, port: u16) -> OwnCluster {
        let dir = repo_root().join("target").join(name);
        let port = port.to_string();
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/pgcluster.sh"))
            .arg("start")
            .arg(&dir)
            .env("FHE_KV_TEST_PORT", &port)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "starting the cluster in {}",
            dir.display()
        );
        OwnCluster {
            dir: dir.canonicalize().unwrap(),
            port,
        }
    }

    pub fn host(&self) -> String {
        self.dir.join("sock").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        as_cluster_owner(&pg_bindir().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(args)
            .status()
            .unwrap()
            .success()
    }

    /// `pg_ctl stop -m fast`.
    pub fn stop(&self) {
        assert!(self.pg_ctl(&["-w", "stop", "-m", "fast"]));
    }

    /// `pg_ctl stop -m immediate`: no shutdown checkpoint, recovery on the next start.
    pub fn stop_immediate(&self) {
        assert!(self.pg_ctl(&["-w", "stop", "-m", "immediate"]));
    }

    /// Start again with the options scripts/pgcluster.sh uses.
    pub fn restart(&self) {
        self.restart_with("-c listen_addresses=''");
    }

    /// Start again with these server options (e.g. TCP and TLS settings) in addition to
    /// the socket directory, port and fsync=off.
    pub fn restart_with(&self, options: &str) {
        let log = self.dir.join("postgres.log");
        let opts = format!("{options} -k {} -p {} -c fsync=off", self.host(), self.port);
        assert!(self.pg_ctl(&["-w", "-l", log.to_str().unwrap(), "-o", &opts, "start"]));
    }

    /// Connect, retrying while the server is (re)starting or in crash recovery.
    pub fn connect_when_ready(&self, dbname: &str) -> postgres::Client {
        let opts = options(&self.host(), &self.port, "postgres", dbname);
        let mut last = String::new();
        // Generous: crash recovery of a tiny cluster takes about a second.
        for _ in 0..600 {
            match opts.connect() {
                Ok(mut db) => {
                    if db.query_one("SELECT 1", &[]).is_ok() {
                        return db;
                    }
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "the cluster in {} never came back: {last}",
            self.dir.display()
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/pgcluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .env("FHE_KV_TEST_PORT", &self.port)
            .status();
    }
}

/// The test client key written to `dir/client.key` with mode 0600 (the CLI refuses a
/// key file others can read), replacing any earlier one.
pub fn client_key_file(dir: &Path) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("client.key");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    f.write_all(&test_key_files().0).unwrap();
    path
}

/// One run of the `fhe-kv` CLI.
pub struct CliRun {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
    pub seconds: f64,
}

/// Run `fhe-kv --db url --client-key key ARGS…` (output as printed, untrimmed).
pub fn fhe_kv_cli(url: &str, key: &Path, args: &[&str]) -> CliRun {
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_fhe-kv"))
        .args(["--db", url, "--client-key"])
        .arg(key)
        .args(args)
        .output()
        .unwrap();
    CliRun {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        ok: out.status.success(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Write integer entries as the CSV `fhe-kv import` reads (`key,value` lines).
pub fn write_csv(path: &Path, entries: &std::collections::BTreeMap<u64, u64>) {
    let text: String = entries.iter().map(|(k, v)| format!("{k},{v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// The entries of an `fhe-kv export` of integers (a header line, then `key,value`).
pub fn parse_export(text: &str) -> std::collections::BTreeMap<u64, u64> {
    text.lines()
        .skip(1)
        .map(|l| {
            let (k, v) = l.split_once(',').unwrap();
            (k.parse().unwrap(), v.parse().unwrap())
        })
        .collect()
}
