//! End-to-end: text keys, byte-string values, bulk import/export (library and CLI), and
//! the bulk-load SQL function refusing bad rows. Needs the `make test` cluster.

mod common;

use common::{client, client_key_file, fhe_kv_cli, fingerprint, fresh_database};
use fhe_kv_client::{Datum, DeleteStatus, KeyType, SetStatus, ValueType};
use std::process::Command;

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn text_keys_and_byte_values_round_trip_privately() {
    let opts = fresh_database("e2e_text");
    let mut c = client(&opts);
    // The stored value is [key part][value part]: 8 + 8 bytes fill 128 bits. (text:15 and
    // bytes:15 need 256 bits, which doubles every value block's cost and this test's time.)
    let t = c
        .create_typed_table("notes", 2, KeyType::Text(7), ValueType::Bytes(7))
        .unwrap();
    assert_eq!(
        (
            t.key_type.as_str(),
            t.value_type.as_str(),
            t.key_bits,
            t.value_bits
        ),
        ("text:7", "bytes:7", 64, 128)
    );
    assert_eq!(
        c.put("notes", "p-4711", "A+ ✓").unwrap(),
        SetStatus::Inserted
    );
    assert_eq!(c.put("notes", "p-4712", "").unwrap(), SetStatus::Inserted);
    let got: Option<String> = c.get("notes", "p-4711").unwrap();
    assert_eq!(got.as_deref(), Some("A+ ✓"), "UTF-8 text round-trips");
    let empty: Option<Vec<u8>> = c.get("notes", "p-4712").unwrap();
    assert_eq!(empty, Some(vec![]), "an empty value is not 'absent'");
    assert_eq!(c.delete("notes", "p-4711").unwrap(), DeleteStatus::Deleted);
    let gone: Option<String> = c.get("notes", "p-4711").unwrap();
    assert_eq!(gone, None);
    // Client-side refusals: too long, wrong kind of key.
    let err = c.put("notes", "longer-than-7", "x").unwrap_err();
    assert!(err.to_string().contains("text:7"), "{err}");
    let err = c.put("notes", 7u64, "x").unwrap_err();
    assert!(err.to_string().contains("integer"), "{err}");
    // Export sees exactly what the private operations left.
    let entries = c.export("notes", &mut |_, _, _| {}).unwrap();
    assert_eq!(
        entries,
        vec![(Datum::from("p-4712"), Datum::from(""))],
        "export decrypts rows written by the server's SET/DELETE"
    );
    // And the other way round: the server's private operations work on rows the client
    // sealed during an import.
    let report = c
        .import(
            "notes",
            &[(Datum::from("p-9"), Datum::from("import"))],
            &mut |_, _, _| {},
        )
        .unwrap();
    assert_eq!((report.inserted, report.slots_rewritten), (1, 2));
    let got: Option<String> = c.get("notes", "p-9").unwrap();
    assert_eq!(got.as_deref(), Some("import"));
    let kept: Option<String> = c.get("notes", "p-4712").unwrap();
    assert_eq!(
        kept.as_deref(),
        Some(""),
        "re-sealed rows keep their content"
    );
    assert_eq!(
        c.put("notes", "p-9", "changed").unwrap(),
        SetStatus::Updated
    );
    assert_eq!(c.put("notes", "p-1", "x").unwrap(), SetStatus::Full);
}

fn cli(opts_url: &str, key: &std::path::Path, args: &[&str]) -> (String, String, bool) {
    let r = fhe_kv_cli(opts_url, key, args);
    (r.stdout, r.stderr, r.ok)
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn cli_imports_200_rows_and_exports_them_back() {
    let _ = fresh_database("e2e_import");
    let (host, port) = common::cluster();
    let url = format!("host={host} port={port} user=postgres dbname=e2e_import");
    let dir = std::env::temp_dir().join(format!("fhe-kv-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = client_key_file(&dir);

    let (out, err, ok) = cli(
        &url,
        &key,
        &[
            "create-table",
            "patients",
            "--capacity",
            "256",
            "--key-type",
            "text:15",
            "--value-type",
            "bytes:15",
            // Flat: 256 slots exactly, so the refused import below is one key too many.
            "--layout",
            "flat",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("text:15"), "{out}");

    // 200 rows, with quoting, commas, UTF-8 and a duplicate key (the later line wins).
    let mut csv = String::from("key,value\n");
    for i in 0..200 {
        csv.push_str(&format!("patient-{i:04},\"n{i}, ok ✓\"\n"));
    }
    csv.push_str("patient-0007,changed\n");
    let input = dir.join("in.csv");
    std::fs::write(&input, &csv).unwrap();
    let (out, err, ok) = cli(&url, &key, &["import", "patients", input.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("200 inserted, 0 updated, 1 superseded"),
        "{out}"
    );

    // Re-running the same import (e.g. after an interruption) duplicates nothing.
    let (out, err, ok) = cli(
        &url,
        &key,
        &["--json", "import", "patients", input.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (report["inserted"].as_u64(), report["updated"].as_u64()),
        (Some(0), Some(200))
    );

    let (out, err, ok) = cli(&url, &key, &["export", "patients"]);
    assert!(ok, "{err}");
    let mut exported: Vec<&str> = out.lines().skip(1).collect();
    exported.sort();
    let mut expected: Vec<String> = (0..200)
        .map(|i| {
            if i == 7 {
                "patient-0007,changed".to_string()
            } else {
                format!("patient-{i:04},\"n{i}, ok ✓\"")
            }
        })
        .collect();
    expected.sort();
    assert_eq!(exported, expected, "export gives back exactly the input");
    assert_eq!(out.lines().next(), Some("key,value"));

    // JSON lines round trip too.
    let (out, err, ok) = cli(&url, &key, &["export", "patients", "--format", "jsonl"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 200);
    let jsonl = dir.join("again.jsonl");
    std::fs::write(&jsonl, &out).unwrap();
    let (out, err, ok) = cli(
        &url,
        &key,
        &["--json", "import", "patients", jsonl.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"inserted\":0"), "{out}");

    // Too many new keys for the free slots: refused, nothing written.
    let mut big = String::new();
    for i in 0..57 {
        big.push_str(&format!("new-{i},x\n"));
    }
    let over = dir.join("over.csv");
    std::fs::write(&over, big).unwrap();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let before = fingerprint(&mut db, "patients");
    let (_, err, ok) = cli(&url, &key, &["import", "patients", over.to_str().unwrap()]);
    assert!(!ok && err.contains("full"), "{err}");
    assert_eq!(
        fingerprint(&mut db, "patients"),
        before,
        "a refused import writes nothing"
    );

    let (out, _, ok) = cli(&url, &key, &["info", "patients"]);
    assert!(ok && out.contains("stored bytes per slot"), "{out}");
    let (out, _, ok) = cli(&url, &key, &["--json", "tables"]);
    assert!(ok && out.contains("\"key_type\":\"text:15\""), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn bulk_load_refuses_bad_rows_and_changes_nothing() {
    let opts = fresh_database("e2e_bulk_hostile");
    let mut c = client(&opts);
    c.create_table("kv", 2, 8, 8).unwrap();
    c.create_table("wide", 2, 16, 8).unwrap();
    c.put("kv", 1, 11).unwrap();
    let db = c.postgres();
    let rows = |db: &mut postgres::Client, t: &str| -> Vec<Vec<u8>> {
        db.query(&format!("SELECT row FROM {t} ORDER BY slot"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let good = rows(db, "kv");
    let wide = rows(db, "wide");
    let before = fingerprint(db, "kv");
    let mut flipped = good[0].clone();
    let n = flipped.len();
    flipped[n / 2] ^= 0x40;
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "one row for two slots",
            vec![good[0].clone()],
            "every slot must be replaced",
        ),
        (
            "three rows for two slots",
            vec![good[0].clone(); 3],
            "every slot must be replaced",
        ),
        (
            "a row of another width",
            vec![good[0].clone(), wide[0].clone()],
            "stored row",
        ),
        ("an empty row", vec![good[0].clone(), vec![]], "empty"),
        (
            "a truncated row",
            vec![good[0].clone(), good[1][..40].to_vec()],
            "stored row",
        ),
    ];
    for (what, rows, expect) in &cases {
        let err = db
            .query_one("SELECT fhe_kv.replace_all_rows('kv', $1::bytea[])", &[rows])
            .expect_err(what);
        let msg = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(msg.contains(expect), "{what}: {msg}");
        assert_eq!(fingerprint(db, "kv"), before, "{what} changed the table");
    }
    // A flipped payload byte either fails to decode or decodes as some ciphertext: never
    // a crash. Roll it back either way.
    let mut tx = db.transaction().unwrap();
    let _ = tx.query_one(
        "SELECT fhe_kv.replace_all_rows('kv', $1::bytea[])",
        &[&vec![good[0].clone(), flipped]],
    );
    drop(tx);
    assert_eq!(fingerprint(db, "kv"), before);
    assert_eq!(c.get("kv", 1).unwrap(), Some(11));
}

/// "Use from any Postgres driver": the Python package (`import fhe_kv`, built by
/// scripts/python.sh) puts a value, then psycopg calls the SQL functions with ciphertexts
/// the package made, and the package decrypts the answers.
#[test]
#[ignore = "needs a cluster with fhe_kv installed and the Python package: run `make test`"]
fn psycopg_example_sets_gets_and_deletes() {
    let opts = fresh_database("e2e_psycopg");
    let mut c = client(&opts);
    c.create_typed_table("notes", 2, KeyType::Text(15), ValueType::Bytes(15))
        .unwrap();
    let (host, port) = common::cluster();
    let dir = std::env::temp_dir().join(format!("fhe-kv-psycopg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = client_key_file(&dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/python/psycopg_example.py"
    );
    // The venv scripts/python.sh made: the fhe_kv wheel, and the system's python3-psycopg.
    let python = std::env::var("FHE_KV_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/python-venv/bin/python"
        )
        .to_string()
    });
    let out = Command::new(&python)
        .args([script, "notes", "patient-4711", "blood: A+"])
        .env("FHE_KV_CLIENT_KEY", &key)
        .env(
            "DATABASE_URL",
            format!("host={host} port={port} user=postgres dbname=e2e_psycopg"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["set: inserted", "get: found blood: A+", "delete: deleted"]
    );
    let gone: Option<String> = c.get("notes", "patient-4711").unwrap();
    assert_eq!(gone, None, "the DELETE sent by psycopg really deleted");
    std::fs::remove_dir_all(&dir).unwrap();
}
