//! Kernel benchmark: PBS per row (exact, TFHE-rs `pbs-stats`), seconds per row and bytes
//! stored per row for GET / SET / DELETE, next to a naive baseline run in the same
//! process on the same rows: the textbook composition with the TFHE-rs integer API
//! (decompress, `eq`, boolean AND, `if_then_else`, carry-propagating `add`).
//!
//!   cargo run -p fhe-kv-core --features test-keys --example bench -- [SLOTS] [KEY_BITS] [VALUE_BITS]
//!
//! Defaults: 32 slots, u64 keys, u64 values. Uses the cached test keys under target/.

use fhe_kv_core::codec::decode_integer;
use fhe_kv_core::kernels::{oblivious_delete, oblivious_get, oblivious_set, KernelEnv};
use fhe_kv_core::row::{decode_row, decompress_row, empty_row, encode_row};
use fhe_kv_core::testkeys::test_keys;
use fhe_kv_core::{Kind, Width};
use rayon::prelude::*;
use std::time::Instant;
use tfhe::integer::prelude::*;
use tfhe::integer::{BooleanBlock, IntegerCiphertext, RadixCiphertext};

struct Measure {
    pbs: u64,
    secs: f64,
}

fn measure<R>(f: impl FnOnce() -> R) -> (R, Measure) {
    tfhe::reset_pbs_count();
    let t = Instant::now();
    let r = f();
    let m = Measure {
        secs: t.elapsed().as_secs_f64(),
        pbs: tfhe::get_pbs_count(),
    };
    (r, m)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let slots: usize = args.first().map_or(32, |s| s.parse().expect("SLOTS"));
    let kw = Width::from_bits(args.get(1).map_or(64, |s| s.parse().expect("KEY_BITS"))).unwrap();
    let vw = Width::from_bits(args.get(2).map_or(64, |s| s.parse().expect("VALUE_BITS"))).unwrap();
    eprintln!("loading cached test keys…");
    let (client, server) = test_keys();
    let threads = rayon::current_num_threads();
    let env = KernelEnv {
        keys: server,
        key_width: kw,
        value_width: vw,
        pool: None,
        batch_rows: 8,
    };
    // Encrypt on the client, decode on the server, as a real operation does.
    let encrypt = |kind: Kind, width: Width, x: u64| {
        let bytes = match kind {
            Kind::QueryKey => client.encrypt_key(x, width),
            _ => client.encrypt_value(x, width),
        }
        .unwrap();
        decode_integer(&bytes, "bench input", kind, server.key_id, width).unwrap()
    };
    let q = |k| encrypt(Kind::QueryKey, kw, k);
    let v = |x| encrypt(Kind::Value, vw, x);

    // Two real entries so GET/DELETE hit something (costs do not depend on contents).
    let empty = encode_row(server, &empty_row(server, kw, vw)).unwrap();
    let mut rows = vec![empty; slots];
    eprintln!("filling 2 of {slots} slots…");
    for i in 0..2u64.min(slots as u64) {
        rows = oblivious_set(&env, &q(1000 + i), &v(i), &rows, &mut |_, _| {})
            .unwrap()
            .rows;
    }
    let bytes_per_row = rows.iter().map(Vec::len).sum::<usize>() as f64 / slots as f64;

    let mut report = Vec::new();
    let (_, m) = measure(|| oblivious_get(&env, &q(1000), &rows, &mut |_, _| {}).unwrap());
    report.push(("GET (hit)", m));
    let (_, m) = measure(|| oblivious_get(&env, &q(7), &rows, &mut |_, _| {}).unwrap());
    report.push(("GET (miss)", m));
    let (_, m) = measure(|| oblivious_set(&env, &q(5), &v(5), &rows, &mut |_, _| {}).unwrap());
    report.push(("SET (insert)", m));
    let (_, m) = measure(|| oblivious_set(&env, &q(1000), &v(6), &rows, &mut |_, _| {}).unwrap());
    report.push(("SET (update)", m));
    let (_, m) = measure(|| oblivious_delete(&env, &q(1000), &rows, &mut |_, _| {}).unwrap());
    report.push(("DELETE", m));

    // Naive baseline on the same rows.
    let isk = tfhe::integer::ServerKey::from_raw_parts(server.sks.clone());
    let naive_decode = |bytes: &Vec<u8>| {
        let stored = decode_row(bytes, server.key_id, kw, vw).unwrap();
        let row = decompress_row(server, &stored, kw, vw).unwrap();
        let occupied = isk.boolean_bitnot(&BooleanBlock::new_unchecked(row.vacant));
        (
            occupied,
            RadixCiphertext::from_blocks(row.key),
            RadixCiphertext::from_blocks(row.value),
        )
    };
    let qr = RadixCiphertext::from_blocks(q(1000));
    let (_, m) = measure(|| {
        let zero: RadixCiphertext = isk.create_trivial_zero_radix(vw.blocks());
        rows.par_iter()
            .map(|bytes| {
                let (occ, k, val) = naive_decode(bytes);
                let eq = isk.boolean_bitand(&occ, &isk.eq_parallelized(&k, &qr));
                let sel = isk.if_then_else_parallelized(&eq, &val, &zero);
                (eq, sel)
            })
            .reduce(
                || (isk.create_trivial_boolean_block(false), zero.clone()),
                |(f1, v1), (f2, v2)| (isk.boolean_bitor(&f1, &f2), isk.add_parallelized(&v1, &v2)),
            )
    });
    let naive_get = m;
    let vr = RadixCiphertext::from_blocks(v(6));
    let (_, m) = measure(|| {
        let decoded: Vec<_> = rows.par_iter().map(naive_decode).collect();
        let eqs: Vec<BooleanBlock> = decoded
            .par_iter()
            .map(|(occ, k, _)| isk.boolean_bitand(occ, &isk.eq_parallelized(k, &qr)))
            .collect();
        let found = eqs
            .iter()
            .skip(1)
            .fold(eqs[0].clone(), |a, b| isk.boolean_bitor(&a, b));
        let mut before = isk.create_trivial_boolean_block(false);
        let mut writes = Vec::new();
        for ((occ, _, _), eq) in decoded.iter().zip(&eqs) {
            let free = isk.boolean_bitnot(occ);
            let first_free = isk.boolean_bitand(&free, &isk.boolean_bitnot(&before));
            before = isk.boolean_bitor(&before, &free);
            let insert = isk.boolean_bitand(&first_free, &isk.boolean_bitnot(&found));
            writes.push(isk.boolean_bitor(eq, &insert));
        }
        decoded
            .par_iter()
            .zip(writes.par_iter())
            .map(|((occ, k, val), w)| {
                let k2 = isk.if_then_else_parallelized(w, &qr, k);
                let v2 = isk.if_then_else_parallelized(w, &vr, val);
                let o2 = isk.boolean_bitor(occ, w);
                (o2, k2, v2)
            })
            .collect::<Vec<_>>()
    });
    let naive_set = m;

    println!("fhe_kv kernel benchmark: {slots} slots, {kw} keys, {vw} values, {threads} threads");
    println!("stored bytes per row: {bytes_per_row:.0}");
    println!(
        "{:<14} {:>10} {:>10} {:>12} {:>12}",
        "operation", "PBS/row", "s/row", "PBS/row(nv)", "s/row(nv)"
    );
    for (name, m) in &report {
        let naive = match *name {
            "GET (hit)" => Some(&naive_get),
            "SET (update)" => Some(&naive_set),
            _ => None,
        };
        let (np, ns) = naive.map_or(("-".into(), "-".into()), |n| {
            (
                format!("{:.1}", n.pbs as f64 / slots as f64),
                format!("{:.3}", n.secs / slots as f64),
            )
        });
        println!(
            "{:<14} {:>10.1} {:>10.3} {:>12} {:>12}",
            name,
            m.pbs as f64 / slots as f64,
            m.secs / slots as f64,
            np,
            ns
        );
    }
    println!(
        "(nv = naive baseline, decompression included in both; SET naive excludes recompression)"
    );
}
