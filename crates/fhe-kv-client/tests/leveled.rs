//! Leveled tables end to end against a real cluster (issue 14): a table driven through
//! the CLI against an in-memory oracle (import, the two-round SET, GET hit and miss, the
//! two-round GET, batched GET, DELETE and reuse of the freed slot, a full table, export,
//! grow), a text-keyed table through the Rust client, `attach_table` of a copied table,
//! and a hostile corpus over every leveled envelope: refused with a clear error, no
//! crash, nothing changed; a round 2 computed from an older table state is refused with
//! SQLSTATE 40001.
//!
//! Needs the `make test` cluster (FHE_KV_TEST_PGHOST / FHE_KV_TEST_PGPORT).

mod common;

use common::hostile::{envelope_mutations, Expect, HEADER};
use common::{
    client, client_key_file, cluster, db_message, fhe_kv_cli, fingerprint, fresh_database,
    parse_export, postmaster_start, write_csv,
};
use fhe_kv_client::{
    ClientKeys, DeleteStatus, KeyType, Layout, SetStatus, TableOptions, ValueType, Width,
};
use fhe_kv_core::leveled::set_locate::LeveledSetTarget;
use fhe_kv_core::leveled::RowLayout;
use fhe_kv_core::testkeys::test_keys;
use std::collections::BTreeMap;

const LEVELED: TableOptions = TableOptions {
    layout: Layout::Leveled,
    bucket_slots: None,
};

const LEVELED_V1: TableOptions = TableOptions {
    layout: Layout::LeveledV1,
    bucket_slots: None,
};

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn cli_on_a_leveled_table_matches_an_oracle() {
    let _ = fresh_database("lv_cli");
    let (host, port) = cluster();
    let url = format!("host={host} port={port} user=postgres dbname=lv_cli");
    let dir = common::repo_root().join("target/leveled-test");
    let key = client_key_file(&dir);
    let cli = |args: &[&str]| {
        let r = fhe_kv_cli(&url, &key, args);
        (r.stdout.trim().to_string(), r.stderr, r.ok)
    };
    let run = |args: &[&str]| -> String {
        let (out, err, ok) = cli(args);
        assert!(ok, "fhe-kv {args:?} failed:\n{out}\n{err}");
        out
    };

    let created = run(&[
        "create-table",
        "lv",
        "--capacity",
        "6",
        "--layout",
        "leveled",
    ]);
    assert!(created.contains("capacity 6, leveled"), "{created}");
    let info = run(&["info", "lv"]);
    assert!(
        info.contains("leveled (leveled-v2): every operation"),
        "{info}"
    );
    assert_eq!(
        run(&["get", "lv", "1"]),
        "(not found)",
        "a new table is empty"
    );

    // Import seals leveled rows client-side (no server-side FHE).
    let mut oracle: BTreeMap<u64, u64> = (1..=3u64).map(|k| (k, k * 100)).collect();
    let csv = dir.join("lv.csv");
    write_csv(&csv, &oracle);
    let imported = run(&["import", "lv", csv.to_str().unwrap()]);
    assert!(imported.contains("3 inserted"), "{imported}");

    // The two-round SET, on rows the key owner wrote and on rows a SET wrote.
    assert_eq!(run(&["put", "lv", "1000", "7"]), "inserted");
    oracle.insert(1000, 7);
    assert_eq!(run(&["put", "lv", "2", "22"]), "updated");
    oracle.insert(2, 22);
    assert_eq!(run(&["get", "lv", "2"]), "22");
    assert_eq!(run(&["get", "lv", "9"]), "(not found)");
    assert_eq!(run(&["get", "--two-round", "lv", "1000"]), "7");
    assert_eq!(run(&["get", "--two-round", "lv", "55"]), "(not found)");
    assert_eq!(
        run(&["get", "lv", "1", "9", "1000"]),
        "1\t100\n9\t(not found)\n1000\t7",
        "several keys, one line each (one batched pass)"
    );
    assert_eq!(run(&["delete", "lv", "3"]), "deleted");
    oracle.remove(&3);
    assert_eq!(run(&["delete", "lv", "3"]), "not_found");
    assert_eq!(run(&["get", "lv", "3"]), "(not found)");
    // The freed slot is reused; then the table fills up and a new key is refused.
    for k in [30u64, 31, 32] {
        assert_eq!(run(&["put", "lv", &k.to_string(), "1"]), "inserted");
        oracle.insert(k, 1);
    }
    assert_eq!(oracle.len(), 6);
    let (out, err, ok) = cli(&["put", "lv", "77", "1"]);
    assert!(
        !ok && out == "full" && err.contains("lv is full"),
        "{out}\n{err}"
    );
    assert_eq!(run(&["get", "lv", "77"]), "(not found)");
    assert_eq!(
        run(&["put", "lv", "31", "311"]),
        "updated",
        "a full table updates"
    );
    oracle.insert(31, 311);

    // A one-round SET from SQL is refused with a hint (the client runs both rounds).
    let (_, err, ok) = cli(&["put", "--server-side", "lv", "5", "5"]);
    assert!(!ok && err.contains("takes two rounds"), "{err}");

    let got = parse_export(&run(&["export", "lv"]));
    assert_eq!(got, oracle, "export matches the oracle");

    // grow adds never-written slots; every key stays readable, a new one fits.
    assert_eq!(run(&["grow", "lv", "2"]), "8");
    assert_eq!(run(&["put", "lv", "77", "770"]), "inserted");
    assert_eq!(run(&["get", "lv", "77"]), "770");
    assert_eq!(run(&["get", "--two-round", "lv", "31"]), "311");
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn text_keys_and_attach_on_a_leveled_table() {
    text_keys_and_attach("lv_text", LEVELED, "leveled-v2");
}

/// The same on a table of fhe_kv 0.4.0's row format, which a user can still ask for:
/// every operation, and attach_table tells the format from the rows.
#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn text_keys_and_attach_on_a_leveled_v1_table() {
    text_keys_and_attach("lv_text_v1", LEVELED_V1, "leveled-v1");
}

fn text_keys_and_attach(database: &str, options: TableOptions, row_format: &str) {
    let opts = fresh_database(database);
    let mut c = client(&opts);
    let t = c
        .create_typed_table_with(
            "names",
            4,
            KeyType::parse("text:12").unwrap(),
            ValueType::parse("bytes:16").unwrap(),
            options,
        )
        .unwrap();
    assert!(t.is_leveled() && t.row_format == row_format, "{t:?}");
    assert_eq!(
        c.put("names", "alice", "x-ray").unwrap(),
        SetStatus::Inserted
    );
    assert_eq!(
        c.put("names", "bob", "yankee").unwrap(),
        SetStatus::Inserted
    );
    assert_eq!(
        c.get::<String>("names", "alice").unwrap().as_deref(),
        Some("x-ray")
    );
    assert_eq!(c.get::<String>("names", "carol").unwrap(), None);
    assert_eq!(
        c.get_two_round::<String>("names", "bob")
            .unwrap()
            .as_deref(),
        Some("yankee")
    );
    assert_eq!(c.delete("names", "alice").unwrap(), DeleteStatus::Deleted);
    assert_eq!(c.get::<String>("names", "alice").unwrap(), None);

    // A copy of the data table (as pg_dump -t restores it) is attached again as leveled,
    // after every row was checked; as a flat table its rows are refused.
    let db = c.postgres();
    db.batch_execute("CREATE TABLE names_copy AS SELECT slot, row FROM names")
        .unwrap();
    let key_id = test_keys().0.key_id().to_hex();
    let err = db
        .query_one(
            "SELECT fhe_kv.attach_table('names_copy', $1, 'text:12', 'bytes:16')",
            &[&key_id],
        )
        .unwrap_err();
    assert!(db_message(&err).contains("slot 0 is not a row"), "{err}");
    db.query_one(
        "SELECT fhe_kv.attach_table('names_copy', $1, 'text:12', 'bytes:16', leveled => true)",
        &[&key_id],
    )
    .unwrap();
    assert_eq!(
        c.get::<String>("names_copy", "bob").unwrap().as_deref(),
        Some("yankee")
    );
    let copy = c.table("names_copy").unwrap();
    assert_eq!(
        (copy.layout.as_str(), copy.row_format.as_str()),
        ("leveled", row_format)
    );

    // The capacity limit of the format, with a hint.
    let err = c
        .create_table_with("huge", 5000, 64, 64, options)
        .unwrap_err();
    assert!(err.to_string().contains("at most 1024 slots"), "{err}");
}

/// One hostile call: (function, what, SQL taking one bytea, argument, expectation).
type Case = (&'static str, String, String, Option<Vec<u8>>, Expect);

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn hostile_leveled_inputs_are_refused_and_change_nothing() {
    let opts = fresh_database("lv_hostile");
    let mut c = client(&opts);
    c.create_table_with("lv", 4, 16, 16, LEVELED).unwrap();
    c.create_table_with("lv_big", 8, 16, 16, LEVELED).unwrap();
    c.create_table_with("lv_v1", 4, 16, 16, LEVELED_V1).unwrap();
    assert_eq!(c.put("lv", 1, 11).unwrap(), SetStatus::Inserted);
    assert_eq!(c.put("lv", 2, 22).unwrap(), SetStatus::Inserted);
    let (keys, _) = test_keys();
    let (stranger, _) = ClientKeys::generate().unwrap();
    let layout = RowLayout::one_glwe(Width::W16, Width::W16);
    let v1_layout = RowLayout::new(Width::W16, Width::W16);
    let k = |x: u16| x.to_le_bytes().to_vec();
    let query = |owner: &ClientKeys, x: u16| owner.leveled_query_key(layout.key, &k(x)).unwrap();

    let db = c.postgres();
    let started = postmaster_start(db);
    let one = |db: &mut postgres::Client, sql: &str, arg: &[u8]| {
        db.query_one(sql, &[&arg]).map(|r| r.get::<_, Vec<u8>>(0))
    };
    let state_of = |db: &mut postgres::Client| {
        let location = one(
            db,
            "SELECT fhe_kv.fhe_locate('lv', $1::bytea)::bytea",
            &query(keys, 1),
        )
        .unwrap();
        keys.open_leveled_location_bytes(&location, 4).unwrap()
    };

    // Stale round 2: a fetch and a SET write computed before another write are refused
    // with SQLSTATE 40001 and change nothing.
    let (located, state) = state_of(db);
    assert_eq!(located, Some(0));
    let stale_fetch = keys.leveled_fetch_query(0, 4, state).unwrap();
    let location = one(
        db,
        "SELECT fhe_kv.fhe_set_locate('lv', $1::bytea)::bytea",
        &query(keys, 3),
    )
    .unwrap();
    let (target, set_state) = keys.open_leveled_set_location_bytes(&location, 4).unwrap();
    assert_eq!((target, set_state), (LeveledSetTarget::Insert(2), state));
    let stale_write = keys
        .leveled_set_write_query(layout, target, 4, (&k(3), &k(33)), set_state)
        .unwrap();
    assert_eq!(c.put("lv", 4, 44).unwrap(), SetStatus::Inserted);
    let db = c.postgres();
    let before = fingerprint(db, "lv");
    for (sql, arg) in [
        (
            "SELECT fhe_kv.fhe_fetch('lv', $1::bytea)::bytea",
            &stale_fetch,
        ),
        (
            "SELECT fhe_kv.fhe_write('lv', $1::bytea)::int4::text::bytea",
            &stale_write,
        ),
    ] {
        let err = one(db, sql, arg).unwrap_err();
        assert_eq!(
            err.code().map(|c| c.code().to_string()).as_deref(),
            Some("40001"),
            "{sql}: a serialization failure the client can retry: {}",
            db_message(&err)
        );
        assert!(
            db_message(&err).contains("changed since the round 1"),
            "{err}"
        );
        assert_eq!(fingerprint(db, "lv"), before, "{sql} changed nothing");
    }
    // The same round 2 with the current state goes through.
    let (_, state) = state_of(db);
    let fetched = one(
        db,
        "SELECT fhe_kv.fhe_fetch('lv', $1::bytea)::bytea",
        &keys.leveled_fetch_query(0, 4, state).unwrap(),
    )
    .unwrap();
    assert_eq!(
        keys.open_leveled_fetch_bytes(layout, &fetched).unwrap(),
        k(11)
    );

    // The corpus: mutations of every leveled envelope a caller sends, and envelopes made
    // for another table size, another key, or of another kind.
    let get = "SELECT fhe_kv.fhe_get('lv', $1::bytea)::bytea";
    let good_key = query(keys, 1);
    let mut cases: Vec<Case> = Vec::new();
    for (what, bytes, expect) in envelope_mutations(
        &good_key,
        &query(keys, 2),
        "could not be decoded",
        8,
        8,
        2 << 20,
    ) {
        // A mutated key that still decodes is read-only and garbles its own answer; the
        // writers (DELETE, SET round 1 reads only) get the refused ones.
        if let Expect::Error(_) = expect {
            for (f, sql) in [
                (
                    "fhe_delete",
                    "SELECT fhe_kv.fhe_delete('lv', $1::bytea)::bytea",
                ),
                (
                    "fhe_set_locate",
                    "SELECT fhe_kv.fhe_set_locate('lv', $1::bytea)::bytea",
                ),
                (
                    "fhe_locate",
                    "SELECT fhe_kv.fhe_locate('lv', $1::bytea)::bytea",
                ),
            ] {
                cases.push((f, format!("key {what}"), sql.into(), bytes.clone(), expect));
            }
        }
        cases.push(("fhe_get", format!("key {what}"), get.into(), bytes, expect));
    }
    let fetch = "SELECT fhe_kv.fhe_fetch('lv', $1::bytea)::bytea";
    let write = "SELECT fhe_kv.fhe_write('lv', $1::bytea)::int4::text::bytea";
    let (_, state) = state_of(db);
    let good_fetch = keys.leveled_fetch_query(1, 4, state).unwrap();
    for (what, bytes, expect) in envelope_mutations(
        &good_fetch,
        &keys.leveled_fetch_query(2, 4, state).unwrap(),
        "could not be decoded",
        8,
        8,
        2 << 20,
    ) {
        // The width field is the index-bit count here: any clean refusal counts.
        let expect = match expect {
            Expect::Error(_) => Expect::Error("fhe_kv: "),
            garbage => garbage,
        };
        cases.push((
            "fhe_fetch",
            format!("fetch query {what}"),
            fetch.into(),
            bytes,
            expect,
        ));
    }
    let good_write = keys
        .leveled_set_write_query(
            layout,
            LeveledSetTarget::Insert(3),
            4,
            (&k(9), &k(99)),
            state,
        )
        .unwrap();
    let twin_write = keys
        .leveled_set_write_query(layout, LeveledSetTarget::Full, 4, (&k(9), &k(9)), state)
        .unwrap();
    for (what, bytes, expect) in envelope_mutations(
        &good_write,
        &twin_write,
        "could not be decoded",
        8,
        8,
        2 << 20,
    ) {
        // Only refusals: a mutated write that still decodes is a write (of garbage).
        if let Expect::Error(_) = expect {
            let expect = Expect::Error("fhe_kv: ");
            cases.push((
                "fhe_write",
                format!("set write {what}"),
                write.into(),
                bytes,
                expect,
            ));
        }
    }
    let compact_key = keys.encrypt_key(1, Width::W16).unwrap();
    let big_write = keys
        .leveled_set_write_query(
            layout,
            LeveledSetTarget::Insert(5),
            8,
            (&k(9), &k(9)),
            state,
        )
        .unwrap();
    for (f, what, sql, bytes, fragment) in [
        (
            "fhe_get",
            "a compact query key",
            get,
            compact_key.clone(),
            "expected 'leveled_query_key'",
        ),
        (
            "fhe_delete",
            "a compact query key",
            "SELECT fhe_kv.fhe_delete('lv', $1::bytea)::bytea",
            compact_key,
            "expected 'leveled_query_key'",
        ),
        (
            "fhe_get",
            "another key's query",
            get,
            query(&stranger, 1),
            "was made for key_id",
        ),
        (
            "fhe_get",
            "a 64-bit query key",
            get,
            keys.leveled_query_key(RowLayout::new(Width::W64, Width::W16).key, &[0; 8])
                .unwrap(),
            "bits wide",
        ),
        (
            "fhe_fetch",
            "a fetch for 8 slots",
            fetch,
            keys.leveled_fetch_query(5, 8, state).unwrap(),
            "bits wide",
        ),
        (
            "fhe_fetch",
            "another key's fetch",
            fetch,
            stranger.leveled_fetch_query(1, 4, state).unwrap(),
            "was made for key_id",
        ),
        (
            "fhe_write",
            "a write for 8 slots",
            write,
            big_write,
            "bits wide",
        ),
        (
            "fhe_write",
            "a query key as a write",
            write,
            good_key.clone(),
            "expected 'leveled_set_write'",
        ),
        (
            "fhe_write",
            "another key's write",
            write,
            stranger
                .leveled_set_write_query(
                    layout,
                    LeveledSetTarget::Insert(3),
                    4,
                    (&k(9), &k(9)),
                    state,
                )
                .unwrap(),
            "was made for key_id",
        ),
        (
            "fhe_set_locate",
            "a key of a flat table's format",
            "SELECT fhe_kv.fhe_set_locate('lv', $1::bytea)::bytea",
            keys.encrypt_key(1, Width::W16).unwrap(),
            "expected 'leveled_query_key'",
        ),
        (
            "fhe_delete",
            "scrub on a leveled table",
            "SELECT fhe_kv.fhe_delete('lv', $1::bytea, scrub => true)::bytea",
            good_key.clone(),
            "takes no scrub",
        ),
        (
            "fhe_set",
            "a one-round SET",
            "SELECT fhe_kv.fhe_set('lv', $1::bytea, $1::bytea)::bytea",
            good_key.clone(),
            "takes two rounds",
        ),
    ] {
        cases.push((
            f,
            what.to_string(),
            sql.into(),
            Some(bytes),
            Expect::Error(fragment),
        ));
    }
    // Rows: an import of rows of another width, of a compact table, of the other leveled
    // row format, or garbled.
    let other_rows = RowLayout::one_glwe(Width::W16, Width::W32);
    let row = keys.leveled_row(layout, Some((&k(5), &k(55)))).unwrap();
    let import = |rows: Vec<Vec<u8>>| {
        let mut sql = String::from("SELECT fhe_kv.replace_all_rows('lv', ARRAY[");
        sql.push_str(&vec!["$1::bytea"; rows.len()].join(", "));
        sql.push_str("])::int4::text::bytea");
        (sql, rows[0].clone())
    };
    for (what, bad, fragment) in [
        (
            "a row of 32-bit values",
            keys.leveled_row(other_rows, None).unwrap(),
            "could not be decoded",
        ),
        (
            "a leveled-v1 row",
            keys.leveled_row(v1_layout, Some((&k(5), &k(55)))).unwrap(),
            "could not be decoded",
        ),
        (
            "a compact row",
            keys.row_sealer()
                .seal(&fhe_kv_core::ClearRow::vacant(Width::W16, Width::W16))
                .unwrap(),
            "expected 'leveled_row'",
        ),
        (
            "a row cut short",
            {
                let mut r = row[..row.len() - 8].to_vec();
                let len = (r.len() - HEADER) as u64;
                r[24..32].copy_from_slice(&len.to_le_bytes());
                r
            },
            "could not be decoded",
        ),
    ] {
        let (sql, arg) = import(vec![bad; 4]);
        cases.push((
            "replace_all_rows",
            what.to_string(),
            sql,
            Some(arg),
            Expect::Error(fragment),
        ));
    }
    // A row or a SET write of one leveled row format sent to a table of the other: refused,
    // both ways (a one-GLWE table 'lv', a leveled-v1 table 'lv_v1').
    let v1_location = one(
        db,
        "SELECT fhe_kv.fhe_locate('lv_v1', $1::bytea)::bytea",
        &query(keys, 1),
    )
    .unwrap();
    let (_, v1_state) = keys.open_leveled_location_bytes(&v1_location, 4).unwrap();
    for (table, rows, state) in [("lv", v1_layout, state), ("lv_v1", layout, v1_state)] {
        let row = keys.leveled_row(rows, Some((&k(5), &k(55)))).unwrap();
        cases.push((
            "replace_all_rows",
            format!("{table}: a row of the other leveled format"),
            format!(
                "SELECT fhe_kv.replace_all_rows('{table}', ARRAY[$1::bytea, $1, $1, $1])::int4::text::bytea"
            ),
            Some(row),
            Expect::Error("could not be decoded"),
        ));
        let write = keys
            .leveled_set_write_query(rows, LeveledSetTarget::Insert(3), 4, (&k(9), &k(99)), state)
            .unwrap();
        cases.push((
            "fhe_write",
            format!("{table}: a SET write of the other leveled format"),
            format!("SELECT fhe_kv.fhe_write('{table}', $1::bytea)::int4::text::bytea"),
            Some(write),
            Expect::Error("could not be decoded"),
        ));
    }

    // Run everything: each refusal is a clean ERROR with the expected message, leaves the
    // session usable and the table unchanged; a mutated read that decodes is garbage in
    // its own answer only.
    let mut problems = Vec::new();
    let mut tried: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let before = fingerprint(db, "lv");
    let v1_before = fingerprint(db, "lv_v1");
    for (function, what, sql, arg, expect) in &cases {
        let result = db.query_one(sql.as_str(), &[arg]).map(|_| ());
        db.query_one("SELECT 1", &[])
            .unwrap_or_else(|e| panic!("{what}: the session is broken: {e}"));
        let t = tried.entry(function).or_default();
        t.0 += 1;
        let problem = match (result, expect) {
            (Err(e), Expect::Error(fragment) | Expect::ErrorOrGarbage(fragment)) => {
                t.1 += 1;
                let msg = db_message(&e);
                let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                if fingerprint(db, "lv") != before {
                    Some(format!("a refused call changed rows: {msg}"))
                } else if code == "XX000" {
                    Some(format!("internal error (a caught panic?): {msg}"))
                } else if !msg.contains(fragment) {
                    Some(format!("error '{msg}' lacks '{fragment}'"))
                } else {
                    None
                }
            }
            (Ok(()), Expect::ErrorOrGarbage(_)) => {
                (fingerprint(db, "lv") != before).then(|| "a read changed rows".to_string())
            }
            (Ok(()), Expect::Error(fragment)) => {
                Some(format!("accepted, expected an error with '{fragment}'"))
            }
        };
        if let Some(p) = problem {
            problems.push(format!("{function} / {what}: {p}"));
        }
    }
    for (f, (n, refused)) in &tried {
        eprintln!("  {f:<18} tried {n:>4}  refused {refused:>4}");
    }
    assert_eq!(postmaster_start(db), started, "no backend crashed");
    assert!(
        problems.is_empty(),
        "{} hostile inputs were not refused cleanly:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(cases.len() >= 300, "only {} hostile inputs", cases.len());
    assert_eq!(fingerprint(db, "lv_v1"), v1_before, "lv_v1 unchanged");
    // Nothing the corpus sent reached the data.
    assert_eq!(c.get::<u64>("lv", 1).unwrap(), Some(11));
    assert_eq!(c.get::<u64>("lv", 4).unwrap(), Some(44));
    assert_eq!(c.get::<u64>("lv", 9).unwrap(), None);
}
