//! fhe_kv kernel benchmark: for every table size and key/value width, GET (hit, miss),
//! batched GET of 4 keys, the two-round GET (hit, miss, 4 keys), SET (insert, update) and
//! DELETE with the fhe_kv kernels, next
//! to a naive baseline run in the same process on the same rows (see `naive.rs`).
//! Reports exact PBS per row (TFHE-rs `pbs-stats`), median seconds per row, stored bytes
//! per row and peak memory, as a table on stdout, as JSON and as an SVG chart.
//!
//!   make bench                      # the README's figures (sizes 8,32,128; u64 and u16)
//!   cargo run -p fhe-kv-core --features test-keys --example bench -- --help
//!
//! Tables are filled by sealing rows client-side (as `fhe-kv import` does), so setting up a
//! 128-slot table costs no private SETs. Uses the cached test keys under target/.

mod naive;
mod report;

use fhe_kv_core::client_rows::ClearRow;
use fhe_kv_core::codec::decode_integer;
use fhe_kv_core::kernels::{
    oblivious_delete, oblivious_fetch_streamed, oblivious_get, oblivious_get_many,
    oblivious_locate_many_streamed, oblivious_set, DeleteMode, KernelEnv,
};
use fhe_kv_core::testkeys::test_keys;
use fhe_kv_core::two_round::{
    check_fetch_header, decode_fetch_payload, encode_fetch_result, encode_locate_result,
};
use fhe_kv_core::{Kind, Width};
use report::{Report, Sample, Scaling};
use std::path::PathBuf;
use std::time::Instant;
use tfhe::shortint::Ciphertext;

const HELP: &str = "\
usage: bench [--sizes 8,32,128] [--types 64/64,16/16] [--runs N] [--naive-max-slots N]
             [--scaling-slots N] [--out DIR] [--only TEXT]

  --sizes            table sizes in slots (default 8,32,128)
  --types            key/value widths in bits (default 64/64,16/16)
  --runs             runs per operation; seconds are the median (default 1; PBS counts
                     are exact and identical across runs)
  --naive-max-slots  run the naive baseline only on tables up to this size (default 32;
                     it costs ~2× ours per row and its per-row cost does not depend on size)
  --scaling-slots    table size (first --types) for the 1-thread vs all-threads GET
                     comparison; 0 = skip (default: the smallest size)
  --out              where results.json and chart-<types>.svg go (default target/bench)
  --only             run only the fhe_kv operations whose name contains this text
                     (e.g. \"2-round\"); the naive baseline runs only when it is empty";

struct Args {
    sizes: Vec<usize>,
    types: Vec<(Width, Width)>,
    runs: usize,
    naive_max_slots: usize,
    scaling_slots: Option<usize>,
    out: PathBuf,
    /// Run only operations whose name contains this (e.g. "2-round"); empty = all.
    only: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sizes: vec![8, 32, 128],
        types: vec![(Width::W64, Width::W64), (Width::W16, Width::W16)],
        runs: 1,
        naive_max_slots: 32,
        scaling_slots: None,
        out: PathBuf::from("target/bench"),
        only: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{HELP}");
            std::process::exit(0);
        }
        let val = it.next().ok_or(format!("{flag} needs a value\n{HELP}"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--sizes" => a.sizes = val.split(',').map(num).collect::<Result<_, _>>()?,
            "--types" => {
                a.types = val
                    .split(',')
                    .map(|t| {
                        let (k, v) = t
                            .split_once('/')
                            .ok_or(format!("--types {t}: KEY/VALUE bits"))?;
                        let w = |b: &str| {
                            b.parse::<u32>()
                                .map_err(|e| e.to_string())
                                .and_then(|b| Width::from_bits(b).map_err(|e| e.to_string()))
                        };
                        Ok((w(k)?, w(v)?))
                    })
                    .collect::<Result<_, String>>()?
            }
            "--runs" => a.runs = num(&val)?.max(1),
            "--naive-max-slots" => a.naive_max_slots = num(&val)?,
            "--scaling-slots" => a.scaling_slots = Some(num(&val)?),
            "--out" => a.out = PathBuf::from(val),
            "--only" => a.only = val,
            _ => return Err(format!("unknown option {flag}\n{HELP}")),
        }
    }
    if a.sizes.is_empty() || a.sizes.contains(&0) || a.types.is_empty() {
        return Err(format!(
            "sizes and types must be non-empty and sizes > 0\n{HELP}"
        ));
    }
    Ok(a)
}

/// Peak RSS since the last reset, in MB (Linux: VmHWM, reset through clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One benchmarked operation, run `--runs` times.
type Operation<'a> = Box<dyn FnMut() + 'a>;

struct Measured {
    pbs: u64,
    seconds: f64,
    peak_mb: Option<f64>,
}

/// Run `f` `runs` times: exact PBS of one run, median seconds, peak RSS over all runs.
fn measure<R>(runs: usize, mut f: impl FnMut() -> R) -> Measured {
    let mut secs = Vec::with_capacity(runs);
    let mut pbs = 0;
    reset_peak_rss();
    for _ in 0..runs {
        tfhe::reset_pbs_count();
        let t = Instant::now();
        std::hint::black_box(f());
        secs.push(t.elapsed().as_secs_f64());
        pbs = tfhe::get_pbs_count();
    }
    secs.sort_by(f64::total_cmp);
    Measured {
        pbs,
        seconds: secs[secs.len() / 2],
        peak_mb: peak_rss_mb(),
    }
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    eprintln!("loading cached test keys…");
    let (client, server) = test_keys();
    let threads = rayon::current_num_threads();
    let mut report = Report {
        threads,
        tfhe_version: "1.8.2",
        parameters: "PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 + COMP_PARAM_…_2M128",
        bytes_per_row: Vec::new(),
        samples: Vec::new(),
        scaling: None,
    };
    let sample = |types: &str, slots: usize, operation, implementation, m: &Measured| Sample {
        types: types.to_string(),
        slots,
        operation,
        implementation,
        pbs_per_row: m.pbs as f64 / slots as f64,
        seconds_per_row: m.seconds / slots as f64,
        seconds: m.seconds,
        runs: args.runs,
        peak_rss_mb: m.peak_mb,
        derived: false,
    };

    for &(kw, vw) in &args.types {
        let types = format!("u{}/u{}", kw.bits(), vw.bits());
        let env = KernelEnv {
            keys: server,
            key_width: kw,
            value_width: vw,
            pool: None,
            batch_rows: 8,
        };
        let key_mask = if kw.bits() >= 64 {
            u64::MAX
        } else {
            (1 << kw.bits()) - 1
        };
        // Encrypt on the client, decode on the server, as a real operation does.
        let q = |k: u64| {
            let bytes = client.encrypt_key(k & key_mask, kw).unwrap();
            decode_integer(&bytes, "bench key", Kind::QueryKey, server.key_id, kw).unwrap()
        };
        let v = |x: u64| {
            let bytes = client.encrypt_value(x, vw).unwrap();
            decode_integer(&bytes, "bench value", Kind::Value, server.key_id, vw).unwrap()
        };
        let naive = naive::Naive::new(server, kw, vw);
        for &slots in &args.sizes {
            eprintln!("{types}, {slots} slots: sealing rows (half full)…");
            let rows = half_full_table(client, kw, vw, slots);
            if !report.bytes_per_row.iter().any(|(t, _)| *t == types) {
                let bytes = rows.iter().map(Vec::len).sum::<usize>() as f64 / slots as f64;
                report.bytes_per_row.push((types.clone(), bytes));
            }
            let hit = q(1000);
            let miss = q(7);
            let (new_key, new_value, value) = (q(5), v(5), v(6));
            let batch: Vec<Vec<Ciphertext>> = [1000, 1001, 7, 1002].iter().map(|&k| q(k)).collect();
            let batch_refs: Vec<&[Ciphertext]> = batch.iter().map(Vec::as_slice).collect();
            let nop = &mut |_: usize, _: usize| {};

            let ops: Vec<(&'static str, Operation<'_>)> = vec![
                (
                    "GET (hit)",
                    Box::new(|| drop(oblivious_get(&env, &hit, &rows, nop).unwrap())),
                ),
                (
                    "GET (miss)",
                    Box::new(|| drop(oblivious_get(&env, &miss, &rows, &mut |_, _| {}).unwrap())),
                ),
                (
                    "GET ×4",
                    Box::new(|| {
                        drop(oblivious_get_many(&env, &batch_refs, &rows, &mut |_, _| {}).unwrap())
                    }),
                ),
                (
                    "GET 2-round (hit)",
                    Box::new(|| drop(two_round(&env, &rows, &[1000]))),
                ),
                (
                    "GET 2-round (miss)",
                    Box::new(|| drop(two_round(&env, &rows, &[7]))),
                ),
                (
                    "GET ×4 2-round",
                    Box::new(|| drop(two_round(&env, &rows, &[1000, 1001, 7, 1002]))),
                ),
                (
                    "SET (insert)",
                    Box::new(|| {
                        drop(
                            oblivious_set(&env, &new_key, &new_value, &rows, &mut |_, _| {})
                                .unwrap(),
                        )
                    }),
                ),
                (
                    "SET (update)",
                    Box::new(|| {
                        drop(oblivious_set(&env, &hit, &value, &rows, &mut |_, _| {}).unwrap())
                    }),
                ),
                (
                    "DELETE",
                    Box::new(|| {
                        let mode = DeleteMode::Tombstone;
                        drop(oblivious_delete(&env, &hit, &rows, mode, &mut |_, _| {}).unwrap())
                    }),
                ),
                (
                    "DELETE (scrub)",
                    Box::new(|| {
                        let mode = DeleteMode::Scrub;
                        drop(oblivious_delete(&env, &hit, &rows, mode, &mut |_, _| {}).unwrap())
                    }),
                ),
            ];
            for (name, mut op) in ops {
                if !name.contains(args.only.as_str()) {
                    continue;
                }
                eprintln!("  fhe_kv {name}…");
                let m = measure(args.runs, &mut op);
                report
                    .samples
                    .push(sample(&types, slots, name, "fhe_kv", &m));
            }
            if slots <= args.naive_max_slots && args.only.is_empty() {
                eprintln!("  naive GET…");
                let m = measure(args.runs, || naive.get(&rows, &hit));
                let get = sample(&types, slots, "GET (hit)", "naive", &m);
                let mut four = get.clone();
                four.operation = "GET ×4";
                four.pbs_per_row *= 4.0;
                four.seconds_per_row *= 4.0;
                four.seconds *= 4.0;
                four.derived = true;
                report.samples.push(get);
                report.samples.push(four);
                eprintln!("  naive SET…");
                let m = measure(args.runs, || naive.set(&rows, &hit, &value));
                report
                    .samples
                    .push(sample(&types, slots, "SET (update)", "naive", &m));
                eprintln!("  naive DELETE…");
                let m = measure(args.runs, || naive.delete(&rows, &hit, false));
                report
                    .samples
                    .push(sample(&types, slots, "DELETE", "naive", &m));
                eprintln!("  naive DELETE (scrub)…");
                let m = measure(args.runs, || naive.delete(&rows, &hit, true));
                report
                    .samples
                    .push(sample(&types, slots, "DELETE (scrub)", "naive", &m));
            }
        }
    }

    // 1 thread vs every core, GET (hit) on the first key/value types.
    let scaling_slots = args
        .scaling_slots
        .unwrap_or(args.sizes.iter().copied().min().unwrap());
    if scaling_slots > 0 && threads > 1 {
        let (kw, vw) = args.types[0];
        eprintln!("GET with 1 thread vs {threads} threads on {scaling_slots} slots…");
        let rows = half_full_table(client, kw, vw, scaling_slots);
        let bytes = client.encrypt_key(1000, kw).unwrap();
        let hit = decode_integer(&bytes, "bench key", Kind::QueryKey, server.key_id, kw).unwrap();
        let time_with = |n: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap();
            let env = KernelEnv {
                keys: server,
                key_width: kw,
                value_width: vw,
                pool: Some(&pool),
                batch_rows: 8,
            };
            measure(args.runs, || {
                oblivious_get(&env, &hit, &rows, &mut |_, _| {}).unwrap()
            })
            .seconds
        };
        let one = time_with(1);
        let all = time_with(threads);
        report.scaling = Some(Scaling {
            types: format!("u{}/u{}", kw.bits(), vw.bits()),
            slots: scaling_slots,
            one_thread_seconds: one,
            threads,
            all_threads_seconds: all,
            speedup: one / all,
        });
    }

    print!("{}", report.table());
    std::fs::create_dir_all(&args.out).expect("creating the output directory");
    let json = args.out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let markdown = args.out.join("results.md");
    std::fs::write(&markdown, report.markdown()).unwrap();
    let mut written = vec![json.display().to_string(), markdown.display().to_string()];
    for &(kw, vw) in &args.types {
        let types = format!("u{}/u{}", kw.bits(), vw.bits());
        let svg = args
            .out
            .join(format!("chart-u{}-u{}.svg", kw.bits(), vw.bits()));
        std::fs::write(&svg, report.svg(&types)).unwrap();
        written.push(svg.display().to_string());
    }
    println!("wrote {}", written.join(", "));
}

/// The whole two-round GET of `keys` as a client and the server run it: encrypt the keys,
/// locate (one pass for all keys), read the answers, one GGSW fetch query and one fetch per
/// key (a random slot after a miss), open the rows. Only the locate round bootstraps.
fn two_round(env: &KernelEnv<'_>, rows: &[Vec<u8>], keys: &[u64]) -> Vec<Option<Vec<u8>>> {
    let (client, server) = test_keys();
    let (kw, vw) = (env.key_width, env.value_width);
    let plain: Vec<Vec<u8>> = keys
        .iter()
        .map(|&k| k.to_le_bytes()[..kw.bytes().min(8)].to_vec())
        .map(|mut b| {
            b.resize(kw.bytes(), 0);
            b
        })
        .collect();
    let queries: Vec<Vec<Ciphertext>> = plain
        .iter()
        .map(|p| {
            let bytes = client.encrypt_key_le(p, kw).unwrap();
            decode_integer(&bytes, "bench key", Kind::QueryKey, server.key_id, kw).unwrap()
        })
        .collect();
    let refs: Vec<&[Ciphertext]> = queries.iter().map(Vec::as_slice).collect();
    let batches = || {
        rows.chunks(env.batch_rows)
            .map(|c| Ok(c.iter().collect::<Vec<_>>()))
    };
    let located =
        oblivious_locate_many_streamed(env, &refs, rows.len(), batches(), &mut |_, _| {}).unwrap();
    located
        .into_iter()
        .zip(&plain)
        .map(|(out, key_le)| {
            let answer = encode_locate_result(server, kw, out).unwrap();
            let at = client.open_locate(&answer, kw, rows.len()).unwrap();
            let query = client.fetch_query(at, rows.len()).unwrap();
            let header = check_fetch_header(&query, server.key_id, rows.len()).unwrap();
            let selectors = decode_fetch_payload(&header).unwrap();
            let fetched = oblivious_fetch_streamed(
                &env.rows(),
                &selectors,
                rows.len(),
                batches(),
                &mut |_, _| {},
            )
            .unwrap();
            let fetched = encode_fetch_result(server.key_id, &fetched).unwrap();
            client.open_two_round(at, &fetched, key_le, kw, vw).unwrap()
        })
        .collect()
}

/// A table whose first half of slots hold keys 1000, 1001, … (values 0, 1, …) and whose
/// second half is empty, sealed client-side. Costs do not depend on contents; a
/// half-full table makes SET (insert) find a free slot and SET (update) a present key.
fn half_full_table(
    client: &fhe_kv_core::keys::ClientKeys,
    kw: Width,
    vw: Width,
    slots: usize,
) -> Vec<Vec<u8>> {
    let sealer = client.row_sealer();
    let le = |x: u64, w: Width| {
        let mut b = x.to_le_bytes().to_vec();
        b.resize(w.bytes(), 0);
        b.truncate(w.bytes());
        b
    };
    (0..slots)
        .map(|i| {
            let row = if i < slots.div_ceil(2) {
                ClearRow {
                    occupied: true,
                    key: le(1000 + i as u64, kw),
                    value: le(i as u64, vw),
                }
            } else {
                ClearRow::vacant(kw, vw)
            };
            sealer.seal(&row).unwrap()
        })
        .collect()
}
