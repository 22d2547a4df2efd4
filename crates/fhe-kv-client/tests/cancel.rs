//! A query cancel or `statement_timeout` stops every private operation (and
//! `pg_terminate_backend` ends its session) within one bootstrap, at any moment, on u64/u64
//! rows (the widest common rows, where one batch of slots is seconds of work), on flat,
//! bucketed and leveled tables; the table is unchanged and the backend,
//! with its cached server key, keeps answering. Latencies are printed, not asserted (the
//! distribution is `make bench-cancel`).

mod common;

use common::interrupt::{interrupt_at, Interrupt};
use common::{client, fingerprint, fresh_database};
use fhe_kv_client::{Datum, Layout, TableOptions, Width};
use fhe_kv_core::client_two_round::Located;
use fhe_kv_core::testkeys::test_keys;
use std::time::Duration;

struct Operation {
    name: &'static str,
    table: &'static str,
    sql: &'static str,
    args: Vec<Vec<u8>>,
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn cancel_and_statement_timeout_stop_every_operation_and_change_nothing() {
    let opts = fresh_database("cancel_ops");
    let mut c = client(&opts);
    let flat = TableOptions {
        layout: Layout::Flat,
        ..TableOptions::default()
    };
    let bucketed = TableOptions {
        layout: Layout::Bucketed,
        ..TableOptions::default()
    };
    c.create_table_with("flat64", 8, 64, 64, flat).unwrap();
    c.create_table_with("wide64", 512, 64, 64, flat).unwrap();
    c.create_table_with("bucket64", 100, 64, 64, bucketed)
        .unwrap();
    let leveled = TableOptions {
        layout: Layout::Leveled,
        ..TableOptions::default()
    };
    // 64 leveled slots: ~0.2 s of bootstraps each per operation, so every interrupt
    // moment below falls inside the kernels.
    c.create_table_with("level64", 64, 64, 64, leveled).unwrap();
    let entry = [(Datum::Uint(5), Datum::Uint(50))];
    c.import("flat64", &entry, &mut |_, _, _| {}).unwrap();
    c.put("bucket64", 5u64, 50u64).unwrap();
    c.put("level64", 5u64, 50u64).unwrap();
    // Loads the server key into this backend: the interrupts fall inside the kernels.
    assert_eq!(c.get_server_side::<u64>("flat64", 5u64).unwrap(), Some(50));

    let (keys, _) = test_keys();
    let w = Width::W64;
    let key = keys.encrypt_key(7, w).unwrap();
    let value = keys.encrypt_value(70, w).unwrap();
    let bucket_key = c.encrypt_query_key("bucket64", 7u64).unwrap();
    let leveled_key = c.encrypt_query_key("level64", 7u64).unwrap();
    let wide_fetch = keys.fetch_query(Located::Slot(3), 512).unwrap();
    let op = |name, table, sql, args: &[&Vec<u8>]| Operation {
        name,
        table,
        sql,
        args: args.iter().map(|a| a.to_vec()).collect(),
    };
    let operations = [
        op(
            "GET",
            "flat64",
            "SELECT fhe_kv.fhe_get('flat64', $1::bytea)::bytea",
            &[&key],
        ),
        op(
            "SET",
            "flat64",
            "SELECT fhe_kv.fhe_set('flat64', $1::bytea, $2::bytea)::bytea",
            &[&key, &value],
        ),
        op(
            "DELETE",
            "flat64",
            "SELECT fhe_kv.fhe_delete('flat64', $1::bytea)::bytea",
            &[&key],
        ),
        op(
            "locate",
            "flat64",
            "SELECT fhe_kv.fhe_locate('flat64', $1::bytea)::bytea",
            &[&key],
        ),
        op(
            "fetch (512 slots)",
            "wide64",
            "SELECT fhe_kv.fhe_fetch('wide64', $1::bytea)::bytea",
            &[&wide_fetch],
        ),
        op(
            "bucketed GET",
            "bucket64",
            "SELECT fhe_kv.fhe_get('bucket64', $1::bytea)::bytea",
            &[&bucket_key],
        ),
        op(
            "bucketed SET",
            "bucket64",
            "SELECT fhe_kv.fhe_set('bucket64', $1::bytea, $2::bytea)::bytea",
            &[&bucket_key, &value],
        ),
        op(
            "bucketed DELETE",
            "bucket64",
            "SELECT fhe_kv.fhe_delete('bucket64', $1::bytea)::bytea",
            &[&bucket_key],
        ),
        // The leveled operations that bootstrap (fetch and write run no bootstrap).
        op(
            "leveled GET",
            "level64",
            "SELECT fhe_kv.fhe_get('level64', $1::bytea)::bytea",
            &[&leveled_key],
        ),
        op(
            "leveled locate",
            "level64",
            "SELECT fhe_kv.fhe_locate('level64', $1::bytea)::bytea",
            &[&leveled_key],
        ),
        op(
            "leveled SET round 1",
            "level64",
            "SELECT fhe_kv.fhe_set_locate('level64', $1::bytea)::bytea",
            &[&leveled_key],
        ),
        op(
            "leveled DELETE",
            "level64",
            "SELECT fhe_kv.fhe_delete('level64', $1::bytea)::bytea",
            &[&leveled_key],
        ),
    ];

    // Random moments from a fixed xorshift sequence: in [0.2, 2.2) s, halved while the
    // operation finishes first.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Duration::from_millis(200 + seed % 2000)
    };
    let db = c.postgres();
    let mut report = Vec::new();
    for o in &operations {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = o
            .args
            .iter()
            .map(|a| a as &(dyn postgres::types::ToSql + Sync))
            .collect();
        for how in [Interrupt::Cancel, Interrupt::Timeout] {
            for _ in 0..2 {
                let before = fingerprint(db, o.table);
                let mut after = next();
                let stopped = loop {
                    match interrupt_at(db, o.sql, &params, how, after) {
                        Ok(stopped) => break stopped,
                        Err(took) => {
                            assert!(
                                after > Duration::from_millis(20),
                                "{}: finished in {took:?}, before any interrupt",
                                o.name
                            );
                            after = took / 2;
                        }
                    }
                };
                assert_eq!(
                    fingerprint(db, o.table),
                    before,
                    "{} interrupted by {} wrote nothing",
                    o.name,
                    how.label()
                );
                report.push(format!(
                    "{} {} at {:.2} s: stopped {:.3} s later",
                    o.name,
                    how.label(),
                    after.as_secs_f64(),
                    stopped.latency.as_secs_f64()
                ));
            }
        }
    }
    eprintln!("cancel latencies (u64/u64):\n  {}", report.join("\n  "));

    // The same backend, its server key still cached, answers correctly afterwards.
    assert_eq!(c.get_server_side::<u64>("flat64", 5u64).unwrap(), Some(50));
    assert_eq!(
        c.get_server_side::<u64>("bucket64", 5u64).unwrap(),
        Some(50)
    );
    assert_eq!(c.get_server_side::<u64>("level64", 5u64).unwrap(), Some(50));
    let fetched: Vec<u8> = c
        .postgres()
        .query_one(operations[4].sql, &[&wide_fetch])
        .unwrap()
        .get(0);
    assert!(!keys.open_fetch(&fetched, w, w).unwrap().occupied);
    assert_eq!(c.get::<u64>("flat64", 7u64).unwrap(), None);
}

/// `pg_terminate_backend` (an administrator, `idle_session_timeout`-style tooling, a
/// pooler killing a stuck query) ends a session in the middle of a SET on u64/u64 rows
/// within one bootstrap: the client gets 57P01, the table is unchanged, and a new session
/// works.
#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn pg_terminate_backend_ends_a_running_set_and_changes_nothing() {
    let opts = fresh_database("cancel_terminate");
    let mut c = client(&opts);
    let flat = TableOptions {
        layout: Layout::Flat,
        ..TableOptions::default()
    };
    c.create_table_with("flat64", 8, 64, 64, flat).unwrap();
    c.import(
        "flat64",
        &[(Datum::Uint(5), Datum::Uint(50))],
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(c.get_server_side::<u64>("flat64", 5u64).unwrap(), Some(50));
    let (keys, _) = test_keys();
    let w = Width::W64;
    let key = keys.encrypt_key(7, w).unwrap();
    let value = keys.encrypt_value(70, w).unwrap();
    let mut pid: i32 = c
        .postgres()
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut admin = opts.connect().unwrap();
    let before = fingerprint(&mut admin, "flat64");

    let mut report = Vec::new();
    for after in [Duration::from_millis(700), Duration::from_millis(2300)] {
        let db = c.postgres();
        let (outcome, requested) = std::thread::scope(|s| {
            let killer = s.spawn(|| {
                std::thread::sleep(after);
                let at = std::time::Instant::now();
                let killed: bool = admin
                    .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                    .unwrap()
                    .get(0);
                assert!(killed, "backend {pid} was running");
                at
            });
            let outcome = db.query(
                "SELECT fhe_kv.fhe_set('flat64', $1::bytea, $2::bytea)::bytea",
                &[&key, &value],
            );
            (outcome, killer.join().unwrap())
        });
        let latency = requested.elapsed();
        let err = outcome.expect_err("a terminated SET does not finish");
        if let Some(code) = err.code() {
            assert_eq!(code.code(), "57P01", "admin_shutdown, got {err:?}");
        }
        report.push(format!(
            "SET terminated at {:.2} s: session ended {:.3} s later",
            after.as_secs_f64(),
            latency.as_secs_f64()
        ));
        assert_eq!(fingerprint(&mut admin, "flat64"), before);
        // A new session (it loads the server key again) works.
        c = client(&opts);
        assert_eq!(c.get_server_side::<u64>("flat64", 5u64).unwrap(), Some(50));
        let new_pid: i32 = c
            .postgres()
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        assert_ne!(new_pid, pid);
        // The next round terminates the new session.
        pid = new_pid;
    }
    eprintln!("terminate latencies (u64/u64):\n  {}", report.join("\n  "));
}
