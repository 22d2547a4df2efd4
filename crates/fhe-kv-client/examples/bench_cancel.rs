//! Cancel-latency benchmark against a real cluster (`make bench-cancel`): how long after a
//! query cancel or `statement_timeout` each private operation stops, at random moments,
//! for u64/u64 and u8/u8 tables of both layouts. Prints the distribution per width and
//! operation and writes target/bench/cancel.{md,json}.
//!
//!   cargo run -p fhe-kv-client --example bench_cancel -- [--samples 10] [--out target/bench]
//!
//! Needs PGHOST/PGPORT/PGUSER of a cluster with fhe_kv installed (scripts/bench.sh starts
//! one) and the cached test keys (generated on first use).

#[path = "../tests/common/interrupt.rs"]
mod interrupt;

use fhe_kv_client::{Client, ClientKeys, ConnectOptions, Datum, Layout, TableOptions, Width};
use fhe_kv_core::testkeys::test_key_files;
use interrupt::{interrupt_at, Interrupt};
use postgres::types::ToSql;
use std::time::Duration;

struct Args {
    samples: usize,
    out: std::path::PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        samples: 10,
        out: "target/bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--samples" => a.samples = val.parse().unwrap(),
            "--out" => a.out = val.into(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// One width's tables: a flat one (`flat_slots` slots) and a bucketed one.
fn tables(c: &mut Client, bits: u32, flat_slots: u32) -> (String, String) {
    let (flat, bucketed) = (format!("bench.flat_{bits}"), format!("bench.bk_{bits}"));
    let options = |layout| TableOptions {
        layout,
        bucket_slots: None,
    };
    c.create_table_with(&flat, flat_slots, bits, bits, options(Layout::Flat))
        .unwrap();
    c.create_table_with(&bucketed, 100, bits, bits, options(Layout::Bucketed))
        .unwrap();
    let entry = [(Datum::Uint(5), Datum::Uint(50))];
    c.import(&flat, &entry, &mut |_, _, _| {}).unwrap();
    c.import(&bucketed, &entry, &mut |_, _, _| {}).unwrap();
    (flat, bucketed)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args = parse_args();
    let opts = ConnectOptions::from_env();
    let (ck, sk) = test_key_files();
    let keys = ClientKeys::from_bytes(&ck).unwrap();
    let mut c = Client::connect(&opts, ClientKeys::from_bytes(&ck).unwrap()).unwrap();
    c.postgres()
        .batch_execute("DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench")
        .unwrap();
    c.register_server_key(&sk).unwrap();

    let mut seed = 0x853c_49e6_748f_ea9bu64;
    let mut rows = Vec::new();
    // u8 rows are ~8x cheaper than u64 rows: a flat u8 table 4x larger keeps its
    // operations seconds long, so a random moment falls inside them.
    for (bits, flat_slots) in [(64u32, 8u32), (8, 32)] {
        let width = Width::from_bits(bits).unwrap();
        let (flat, bucketed) = tables(&mut c, bits, flat_slots);
        // Loads the server key into the backend first.
        c.get_server_side::<u64>(&flat, 5u64).unwrap();
        let key = keys.encrypt_key(7, width).unwrap();
        let value = keys.encrypt_value(70, width).unwrap();
        let bucket_key = c.encrypt_query_key(&bucketed, 7u64).unwrap();
        let ops: Vec<(&str, String, Vec<Vec<u8>>)> = vec![
            (
                "GET",
                format!("fhe_get('{flat}', $1::bytea)"),
                vec![key.clone()],
            ),
            (
                "SET",
                format!("fhe_set('{flat}', $1::bytea, $2::bytea)"),
                vec![key.clone(), value.clone()],
            ),
            (
                "DELETE",
                format!("fhe_delete('{flat}', $1::bytea)"),
                vec![key.clone()],
            ),
            (
                "locate",
                format!("fhe_locate('{flat}', $1::bytea)"),
                vec![key.clone()],
            ),
            (
                "bucketed GET",
                format!("fhe_get('{bucketed}', $1::bytea)"),
                vec![bucket_key.clone()],
            ),
            (
                "bucketed SET",
                format!("fhe_set('{bucketed}', $1::bytea, $2::bytea)"),
                vec![bucket_key.clone(), value.clone()],
            ),
            (
                "bucketed DELETE",
                format!("fhe_delete('{bucketed}', $1::bytea)"),
                vec![bucket_key.clone()],
            ),
        ];
        for (name, call, params) in &ops {
            let sql = format!("SELECT fhe_kv.{call}::bytea");
            let params: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            let mut latencies = Vec::new();
            for i in 0..args.samples {
                let how = [Interrupt::Cancel, Interrupt::Timeout][i % 2];
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut after = Duration::from_millis(200 + seed % 2000);
                let stopped = loop {
                    match interrupt_at(c.postgres(), &sql, &params, how, after) {
                        Ok(stopped) => break stopped,
                        Err(took) => after = took / 2,
                    }
                };
                latencies.push(stopped.latency.as_secs_f64());
            }
            latencies.sort_by(f64::total_cmp);
            let row = (
                format!("u{bits}/u{bits}"),
                name.to_string(),
                latencies.len(),
                quantile(&latencies, 0.0),
                quantile(&latencies, 0.5),
                quantile(&latencies, 0.9),
                quantile(&latencies, 1.0),
            );
            eprintln!(
                "  {:<8} {:<16} {} samples: min {:.3} s, median {:.3} s, p90 {:.3} s, max {:.3} s",
                row.0, row.1, row.2, row.3, row.4, row.5, row.6
            );
            rows.push(row);
        }
    }

    let mut md = String::from(
        "| rows | operation | samples | min (s) | median (s) | p90 (s) | max (s) |\n|---|---|---|---|---|---|---|\n",
    );
    let mut json = Vec::new();
    for (rows_label, op, n, min, median, p90, max) in &rows {
        md.push_str(&format!(
            "| {rows_label} | {op} | {n} | {min:.3} | {median:.3} | {p90:.3} | {max:.3} |\n"
        ));
        json.push(format!(
            "{{\"rows\":\"{rows_label}\",\"operation\":\"{op}\",\"samples\":{n},\"min_s\":{min:.4},\"median_s\":{median:.4},\"p90_s\":{p90:.4},\"max_s\":{max:.4}}}"
        ));
    }
    std::fs::create_dir_all(&args.out).unwrap();
    std::fs::write(args.out.join("cancel.md"), &md).unwrap();
    std::fs::write(
        args.out.join("cancel.json"),
        format!("[\n  {}\n]\n", json.join(",\n  ")),
    )
    .unwrap();
    println!("{md}");
    eprintln!(
        "wrote {}, {}",
        args.out.join("cancel.md").display(),
        args.out.join("cancel.json").display()
    );
}
