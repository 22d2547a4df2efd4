//! Table-size benchmark against a real cluster (`make bench`): u64/u64 bucketed tables of
//! 1,000 / 10,000 / 100,000 slots in both slot formats (`bucket-v1`, and leveled slots:
//! `bucketed-leveled`), and a flat and a leveled table beside them. Per
//! operation it reports
//! the bootstraps and external products the backend ran (`fhe_kv.pbs_count()`,
//! `fhe_kv.external_product_count()`), seconds, WAL bytes written, and per table the
//! bytes stored per slot and the time to create and load it.
//!
//! Every operation runs as a client does it (encrypt, call SQL, decrypt) on a connection
//! whose backend has already loaded the server key, so key loading is not counted. The
//! flat and leveled tables are measured at a small size and their per-slot figures (exact
//! for bootstraps, which are linear in the slot count) extrapolated to 1,000 slots.
//!
//!   cargo run -p fhe-kv-client --example bench_tables -- [--sizes 1000,10000,100000]
//!       [--flat-slots 32] [--leveled-slots 64] [--out target/bench]
//!
//! Needs PGHOST/PGPORT/PGUSER of a cluster with fhe_kv installed (scripts/bench.sh starts
//! one) and the cached test keys (generated on first use).

mod report;

use fhe_kv_client::{Client, ClientKeys, ConnectOptions, Datum, Layout, TableOptions};
use fhe_kv_core::testkeys::test_key_files;
use report::{Measurement, TableRun};
use std::time::Instant;

struct Args {
    sizes: Vec<usize>,
    flat_slots: usize,
    leveled_slots: usize,
    out: std::path::PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        sizes: vec![1000, 10_000, 100_000],
        flat_slots: 32,
        leveled_slots: 64,
        out: "target/bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--sizes" => a.sizes = val.split(',').map(|v| v.parse().unwrap()).collect(),
            "--flat-slots" => a.flat_slots = val.parse().unwrap(),
            "--leveled-slots" => a.leveled_slots = val.parse().unwrap(),
            "--out" => a.out = val.into(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Backend counters and WAL position, read on the benchmark's own connection.
struct Counters {
    pbs: i64,
    products: i64,
    wal: String,
}

fn counters(c: &mut Client) -> Counters {
    let row = c
        .postgres()
        .query_one(
            "SELECT fhe_kv.pbs_count(), fhe_kv.external_product_count(), pg_current_wal_lsn()::text",
            &[],
        )
        .unwrap();
    Counters {
        pbs: row.get(0),
        products: row.get(1),
        wal: row.get(2),
    }
}

fn measure(c: &mut Client, op: &str, f: &mut dyn FnMut(&mut Client)) -> Measurement {
    let before = counters(c);
    let started = Instant::now();
    f(c);
    let seconds = started.elapsed().as_secs_f64();
    let after = counters(c);
    let wal: i64 = c
        .postgres()
        .query_one(
            "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)::bigint",
            &[&after.wal, &before.wal],
        )
        .unwrap()
        .get(0);
    let m = Measurement {
        op: op.to_string(),
        pbs: after.pbs - before.pbs,
        products: after.products - before.products,
        seconds,
        wal_bytes: wal,
    };
    eprintln!(
        "    {op:<28} {:>8.2} s  {:>6} PBS  {:>8} ext. products  {:>12} WAL bytes",
        m.seconds, m.pbs, m.products, m.wal_bytes
    );
    m
}

fn stored_bytes(c: &mut Client, table: &str, slots: usize) -> (f64, i64) {
    let row = c
        .postgres()
        .query_one(
            &format!(
                "SELECT sum(pg_column_size(row))::bigint, pg_total_relation_size('{table}') FROM {table}"
            ),
            &[],
        )
        .unwrap();
    let rows: i64 = row.get(0);
    (rows as f64 / slots as f64, row.get(1))
}

/// Import keys `0..n` with values `3 k` client-side; returns the seconds it took.
fn import_keys(c: &mut Client, name: &str, n: u64) -> f64 {
    let entries: Vec<(Datum, Datum)> = (0..n)
        .map(|k| (Datum::Uint(u128::from(k)), Datum::Uint(u128::from(k * 3))))
        .collect();
    let started = Instant::now();
    c.import(name, &entries, &mut |_, _, _| {}).unwrap();
    started.elapsed().as_secs_f64()
}

/// A table of a layout that touches every slot, `slots` slots half full, measured with
/// `ops`; its figures are scaled per slot to 1,000 slots in the report. Bytes per slot
/// are measured after the operations, when every row has been rewritten (for a leveled
/// table: as a SET leaves it).
fn per_slot_run(c: &mut Client, layout: Layout, slots: usize) -> TableRun {
    let label = layout.label();
    assert!(
        slots >= 6,
        "--{}-slots must be at least 6: the operations read keys 0, 1 and 2 of a half-full table",
        label.split('-').next().unwrap_or(label)
    );
    let name = format!("bench.{}", label.replace('-', "_"));
    eprintln!("{label} u64/u64, {slots} slots (figures extrapolated to 1,000 slots):");
    let started = Instant::now();
    c.create_table_with(
        &name,
        slots as u32,
        64,
        64,
        TableOptions {
            layout,
            bucket_slots: None,
        },
    )
    .unwrap();
    let created = started.elapsed().as_secs_f64();
    let n = (slots / 2) as u64;
    let imported = import_keys(c, &name, n);
    // Warm: load the server key into this backend.
    let _ = c.get_server_side::<u64>(&name, 0u64);
    let ops = per_slot_ops(c, &name, layout);
    let (per_slot, _) = stored_bytes(c, &name, slots);
    TableRun {
        layout: label.into(),
        slots,
        extrapolated_from: Some(slots),
        create_seconds: created,
        load_seconds: imported,
        loaded_keys: n as usize,
        bytes_per_slot: per_slot,
        ops,
    }
}

/// The operations of a table whose keys 0, 1, 2, … hold 0, 3, 6, …: what a client runs
/// (a leveled table's SET is its two rounds); on a leveled table also a miss, a batched
/// GET and an update.
fn per_slot_ops(c: &mut Client, name: &str, layout: Layout) -> Vec<Measurement> {
    let leveled = matches!(layout, Layout::Leveled | Layout::LeveledV1);
    let set = if leveled {
        "SET (two rounds, insert)"
    } else {
        "SET (server, fhe_set)"
    };
    let mut ops = vec![measure(c, "GET (server, fhe_get)", &mut |c| {
        assert_eq!(c.get::<u64>(name, 1u64).unwrap(), Some(3));
    })];
    if leveled {
        ops.push(measure(c, "GET (server, miss)", &mut |c| {
            assert_eq!(c.get::<u64>(name, 1_000_001u64).unwrap(), None);
        }));
    }
    ops.push(measure(c, "GET (two-round)", &mut |c| {
        assert_eq!(c.get_two_round::<u64>(name, 1u64).unwrap(), Some(3));
    }));
    if leveled {
        ops.push(measure(c, "GET (4 keys, fhe_get_many)", &mut |c| {
            let got: Vec<Option<u64>> = c.get_many(name, [0u64, 1, 2, 1_000_001]).unwrap();
            assert_eq!(got, vec![Some(0), Some(3), Some(6), None]);
        }));
    }
    ops.push(measure(c, set, &mut |c| {
        c.put(name, 1_000_000u64, 1u64).unwrap();
    }));
    if leveled {
        ops.push(measure(c, "SET (two rounds, update)", &mut |c| {
            c.put(name, 1u64, 3u64).unwrap();
        }));
    }
    ops.push(measure(c, "DELETE (server, fhe_delete)", &mut |c| {
        c.delete(name, 1_000_000u64).unwrap();
    }));
    ops
}

fn main() {
    let args = parse_args();
    let opts = ConnectOptions::from_env();
    let (ck, sk) = test_key_files();
    let keys = || ClientKeys::from_bytes(&ck).unwrap();
    let mut c = Client::connect(&opts, keys()).unwrap();
    c.postgres()
        .batch_execute("DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench")
        .unwrap();
    c.register_server_key(&sk).unwrap();
    let mut runs: Vec<TableRun> = Vec::new();

    for (&slots, layout) in args
        .sizes
        .iter()
        .flat_map(|s| [(s, Layout::Bucketed), (s, Layout::BucketedLeveled)])
    {
        let leveled = layout == Layout::BucketedLeveled;
        let label = layout.label();
        let name = format!("bench.{}_{slots}", label.replace('-', "_"));
        eprintln!("{label} u64/u64, {slots} slots:");
        // The number of keys whose load limit is about `slots` slots.
        let keys_for_slots =
            (fhe_kv_core::bucket::overflow::load_limit(6) * slots as f64).floor() as u32;
        let started = Instant::now();
        let info = c
            .create_table_with(
                &name,
                keys_for_slots,
                64,
                64,
                TableOptions {
                    layout,
                    bucket_slots: None,
                },
            )
            .unwrap();
        let created = started.elapsed().as_secs_f64();
        // Fill half the slots (below the load limit), client-side.
        let n = (info.capacity / 2) as u64;
        let imported = import_keys(&mut c, &name, n);
        c.postgres()
            .batch_execute(&format!("VACUUM FULL {name}"))
            .unwrap();
        let (per_slot, relation) = stored_bytes(&mut c, &name, info.capacity as usize);
        eprintln!(
            "  created in {created:.2} s, {n} keys imported in {imported:.2} s; {per_slot:.0} B/slot, {} MB on disk",
            relation >> 20
        );
        // Warm: load the server key into this backend.
        let _ = c.get_server_side::<u64>(&name, 1u64);
        let (hit, miss, new) = (n / 3, n + 1_000_000, n + 2_000_000);
        let mut ops = Vec::new();
        ops.push(measure(&mut c, "GET (key owner, hit)", &mut |c| {
            assert_eq!(c.get::<u64>(&name, hit).unwrap(), Some(hit * 3));
        }));
        ops.push(measure(&mut c, "GET (key owner, miss)", &mut |c| {
            assert_eq!(c.get::<u64>(&name, miss).unwrap(), None);
        }));
        ops.push(measure(&mut c, "SET (key owner, insert)", &mut |c| {
            c.put(&name, new, 1u64).unwrap();
        }));
        ops.push(measure(&mut c, "SET (key owner, update)", &mut |c| {
            c.put(&name, hit, 2u64).unwrap();
        }));
        ops.push(measure(&mut c, "DELETE (key owner)", &mut |c| {
            c.delete(&name, new).unwrap();
        }));
        ops.push(measure(&mut c, "GET (server, fhe_get)", &mut |c| {
            assert_eq!(c.get_server_side::<u64>(&name, hit).unwrap(), Some(2));
        }));
        if leveled {
            // No server-side SET on leveled slots: the key owner's write is the SET.
            c.put(&name, new, 4u64).unwrap();
        } else {
            ops.push(measure(&mut c, "SET (server, fhe_set)", &mut |c| {
                c.put_server_side(&name, new, 4u64).unwrap();
            }));
        }
        ops.push(measure(&mut c, "DELETE (server, fhe_delete)", &mut |c| {
            c.delete_server_side(&name, new, false).unwrap();
        }));
        runs.push(TableRun {
            layout: label.into(),
            slots: info.capacity as usize,
            extrapolated_from: None,
            create_seconds: created,
            load_seconds: imported,
            loaded_keys: n as usize,
            bytes_per_slot: per_slot,
            ops,
        });
        c.postgres()
            .batch_execute(&format!("DROP TABLE {name}"))
            .unwrap();
    }

    // The flat and leveled layouts touch every slot: measured small, scaled per slot. Both
    // leveled row formats: one GLWE per slot (the default) and 0.4.0's lookup tables.
    runs.push(per_slot_run(&mut c, Layout::Flat, args.flat_slots));
    runs.push(per_slot_run(&mut c, Layout::Leveled, args.leveled_slots));
    runs.push(per_slot_run(&mut c, Layout::LeveledV1, args.leveled_slots));

    std::fs::create_dir_all(&args.out).unwrap();
    let md = report::markdown(&runs);
    println!("{md}");
    std::fs::write(args.out.join("tables.md"), &md).unwrap();
    std::fs::write(args.out.join("tables.json"), report::json(&runs)).unwrap();
    std::fs::write(args.out.join("tables.svg"), report::svg(&runs)).unwrap();
    eprintln!(
        "wrote {0}/tables.md, {0}/tables.json, {0}/tables.svg",
        args.out.display()
    );
}
