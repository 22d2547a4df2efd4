//! Server keys loaded for one session only (issue: "Where users already are", part 3).
//!
//! A database where the server key is never registered: one session loads it
//! (`fhe_kv.load_session_key`), creates tables bound to it and uses them; the key never
//! reaches a table, the WAL or a dump; another session without the key gets a clear error
//! and changes nothing; the key is gone when its session ends; the CLI's --session-key;
//! registering the same key later makes it available to every session, and a stored key
//! can never be changed.
//!
//! Needs the `make test` cluster (FHE_KV_TEST_PGHOST / FHE_KV_TEST_PGPORT).

mod common;

use common::{client_key_file, cluster, fingerprint, options};
use fhe_kv_client::{
    Client, ClientKeys, ConnectOptions, Connection, DeleteStatus, Layout, SetStatus, TableOptions,
};
use fhe_kv_core::testkeys::{cache_dir, test_key_files};
use std::path::PathBuf;
use std::process::Command;

/// A database with the extension and no registered key.
fn database_without_keys(name: &str) -> ConnectOptions {
    let (host, port) = cluster();
    let mut admin = options(&host, &port, "postgres", "postgres")
        .connect()
        .unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let opts = options(&host, &port, "postgres", name);
    opts.connect()
        .unwrap()
        .batch_execute("CREATE EXTENSION fhe_kv")
        .unwrap();
    opts
}

fn client(opts: &ConnectOptions) -> Client {
    let (ck, _) = test_key_files();
    Client::connect(opts, ClientKeys::from_bytes(&ck).unwrap()).unwrap()
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn a_session_key_serves_its_session_only_and_is_never_stored() {
    let opts = database_without_keys("session_keys");
    let (_, server_key) = test_key_files();
    let mut a = client(&opts);
    let key_id = a.key_id();

    // Without any key, a table cannot even be created.
    let err = a.create_table("early", 12, 64, 64).unwrap_err();
    assert!(err.to_string().contains("no server key"), "{err}");

    // Load it for this session: this backend writes a catalog row to the WAL, not the
    // ~143 MB key (EXPLAIN ANALYZE counts the statement's own WAL).
    let plan: serde_json::Value = a
        .postgres()
        .query_one(
            "EXPLAIN (ANALYZE, WAL, FORMAT JSON) SELECT fhe_kv.load_session_key($1::bytea)",
            &[&server_key],
        )
        .unwrap()
        .get(0);
    let wal_bytes = plan[0]["Plan"]["WAL Bytes"].as_u64().unwrap();
    println!(
        "load_session_key: {wal_bytes} bytes of WAL for a {} byte key",
        server_key.len()
    );
    assert!(wal_bytes < 100_000, "{wal_bytes} bytes of WAL");
    assert_eq!(
        a.postgres()
            .query_one("SELECT key_id FROM fhe_kv.session_keys", &[])
            .unwrap()
            .get::<_, String>(0),
        key_id.to_hex()
    );
    let (stored, recorded): (bool, bool) = {
        let row = a
            .postgres()
            .query_one(
                "SELECT bool_or(server_key IS NOT NULL), bool_or(key_id = $1) FROM fhe_kv.server_keys",
                &[&key_id.to_hex()],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(!stored && recorded, "only the key_id is recorded");
    // Loading again is a no-op.
    a.load_session_key(&server_key).unwrap();
    assert_eq!(
        Connection::from_postgres(opts.connect().unwrap())
            .session_keys()
            .unwrap(),
        vec![]
    );

    // Tables bound to it work in this session: a bucketed one (the key owner's protocol)
    // and a flat one (the server's kernels, which need the decompressed key).
    a.create_table_with(
        "sk",
        12,
        64,
        64,
        TableOptions {
            layout: Layout::Bucketed,
            bucket_slots: None,
        },
    )
    .unwrap();
    assert_eq!(a.put("sk", 7u64, 70u64).unwrap(), SetStatus::Inserted);
    assert_eq!(a.put("sk", 8u64, 80u64).unwrap(), SetStatus::Inserted);
    assert_eq!(a.get::<u64>("sk", 7u64).unwrap(), Some(70));
    assert_eq!(a.delete("sk", 8u64).unwrap(), DeleteStatus::Deleted);
    a.create_table("flat", 2, 8, 8).unwrap();
    assert_eq!(a.put("flat", 1u64, 11u64).unwrap(), SetStatus::Inserted);
    assert_eq!(a.get::<u64>("flat", 1u64).unwrap(), Some(11));

    // Another session without the key: a clear error, nothing changed.
    let mut b = client(&opts);
    let sk_before = fingerprint(b.postgres(), "sk");
    let flat_before = fingerprint(b.postgres(), "flat");
    for result in [
        b.get::<u64>("flat", 1u64).map(|_| ()),
        b.put("flat", 2u64, 22u64).map(|_| ()),
        b.get_server_side::<u64>("sk", 7u64).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            err.to_string()
                .contains("is loaded per session, and this session has not loaded it"),
            "{err}"
        );
        assert!(
            err.hint().unwrap_or_default().contains("load_session_key"),
            "{err:?}"
        );
        assert_eq!(err.sql_state().map(|s| s.code()), Some("55000"), "{err}");
    }
    assert_eq!(fingerprint(b.postgres(), "sk"), sk_before);
    assert_eq!(fingerprint(b.postgres(), "flat"), flat_before);
    assert!(b
        .postgres()
        .query("SELECT * FROM fhe_kv.session_keys", &[])
        .unwrap()
        .is_empty());

    // A dump has the bindings and the key_id, not the key.
    let (host, port) = cluster();
    let dump = Command::new(pg_bin("pg_dump"))
        .args([
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "session_keys",
        ])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    println!("pg_dump: {} bytes", dump.stdout.len());
    assert!(dump.stdout.len() < server_key.len() / 10);
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        text.contains(&format!("{}\t\\N", key_id.to_hex())),
        "key_id row with a NULL key"
    );

    // Unloading: the same error in the session that loaded it.
    assert!(a.unload_session_key(key_id).unwrap());
    assert!(!a.unload_session_key(key_id).unwrap());
    assert!(a.get::<u64>("flat", 1u64).is_err());
    assert_eq!(a.load_session_key(&server_key).unwrap(), key_id);
    assert_eq!(a.get::<u64>("flat", 1u64).unwrap(), Some(11));

    // Gone at disconnect: a new session sees no session keys.
    drop(a);
    let mut c = Connection::connect(&opts).unwrap();
    assert!(c.session_keys().unwrap().is_empty());

    // The CLI: --session-key loads it for the command's session.
    let dir = std::env::temp_dir().join(format!("fhe-kv-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let client_key = client_key_file(&dir);
    let server_key_file = cache_dir().join("server.key");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fhe-kv"))
            .args(args)
            .env("PGHOST", &host)
            .env("PGPORT", &port)
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "session_keys")
            .env("FHE_KV_CLIENT_KEY", &client_key)
            .env_remove("FHE_KV_SESSION_KEY")
            .output()
            .unwrap()
    };
    let out = cli(&[
        "--session-key",
        server_key_file.to_str().unwrap(),
        "get",
        "sk",
        "7",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "70");
    let out = cli(&["get", "flat", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("loaded per session") && stderr.contains("hint:"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Registering the same key stores it in the recorded row: every session can use it.
    assert_eq!(c.register_server_key(&server_key).unwrap(), key_id);
    assert_eq!(b.get::<u64>("flat", 1u64).unwrap(), Some(11));
    // …and a stored key can never be changed, not even by a superuser.
    let err = c
        .postgres()
        .execute(
            "UPDATE fhe_kv.server_keys SET server_key = server_key || '\\x00'::bytea",
            &[],
        )
        .unwrap_err();
    assert!(
        common::db_message(&err).contains("cannot be changed"),
        "{err}"
    );
    let err = c
        .postgres()
        .execute("UPDATE fhe_kv.server_keys SET server_key = NULL", &[])
        .unwrap_err();
    assert!(
        common::db_message(&err).contains("cannot be changed"),
        "{err}"
    );
}

fn pg_bin(tool: &str) -> PathBuf {
    let pg_config = std::env::var("PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let out = Command::new(pg_config).arg("--bindir").output().unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join(tool)
}
