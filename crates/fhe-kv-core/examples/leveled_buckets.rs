//! The server-side GET and DELETE of a bucketed table, u64/u64, buckets of 6 slots: the
//! leveled slots inside buckets (`fhe_kv_core::leveled::in_bucket`) next to today's
//! `bucket-v1` blocks (`bucket::ops`), and the naive TFHE-rs integer GET over the same 12
//! candidate slots, in the same process on the same machine. Both layouts hold the same
//! keys in the same buckets, and both queries select the same candidates with the same
//! CMux trees (external products, no bootstrap).
//!
//! Prints per operation and per candidate slot: PBS (exact, TFHE-rs `pbs-stats`),
//! external products, seconds, PBS-equivalents (seconds divided by one measured keyswitch
//! and PBS) and the bytes a bucket is stored in.
//!
//! ```text
//! make bench-leveled-buckets        # 16 buckets per half
//! cargo run -p fhe-kv-core --features test-keys --example leveled_buckets -- 64
//! ```
//!
//! Every answer is decrypted and checked.

#[allow(dead_code)]
#[path = "bench/naive.rs"]
mod naive;
#[path = "bench/pbs_unit.rs"]
mod pbs_unit;

use fhe_kv_core::bucket::ops::{self, VecStore};
use fhe_kv_core::bucket::select::{
    external_product_count, reset_external_product_count, select_in_memory,
};
use fhe_kv_core::bucket::BucketLayout;
use fhe_kv_core::client_rows::ClearRow;
use fhe_kv_core::codec::decode_integer;
use fhe_kv_core::kernels::{DeleteMode, KernelEnv};
use fhe_kv_core::leveled::equality::EqualityLuts;
use fhe_kv_core::leveled::in_bucket::{
    leveled_bucket_delete, leveled_bucket_get, LeveledBucketLayout,
};
use fhe_kv_core::leveled::wire::decode_query;
use fhe_kv_core::testkeys::{test_integer_client_key, test_keys};
use fhe_kv_core::Kind;
use fhe_kv_core::Width;
use std::time::Instant;
use tfhe::core_crypto::prelude::*;

const SLOTS: usize = 6;

/// A bucket in clear: per slot `Some((key, value))` little-endian, or `None`.
type Bucket = Vec<Option<(Vec<u8>, Vec<u8>)>>;

/// (PBS, external products, seconds) of one run.
fn measure<T>(run: impl FnOnce() -> T) -> ((f64, f64, f64), T) {
    tfhe::reset_pbs_count();
    reset_external_product_count();
    let start = Instant::now();
    let out = run();
    let seconds = start.elapsed().as_secs_f64();
    let cost = (
        tfhe::get_pbs_count() as f64,
        external_product_count() as f64,
        seconds,
    );
    (cost, out)
}

fn main() {
    let m: usize = std::env::args()
        .nth(1)
        .map_or(16, |a| a.parse().expect("buckets per half"));
    let width = Width::W64;
    let (client, server) = test_keys();
    let ck = test_integer_client_key();
    let sks = &server.sks;

    // One keyswitch + PBS: the unit of a PBS-equivalent.
    let pbs_seconds = pbs_unit::one_pbs_seconds(&ck, sks);

    // The same placement for both formats: keys 1000 + i (value 7 i + 1) into the first
    // vacant candidate slot in the interleaved order, until a third of the slots is used.
    let v1 = BucketLayout::new(width, width, SLOTS, m).unwrap();
    let leveled = LeveledBucketLayout::new(width, width, SLOTS).unwrap();
    let le = |x: u64| x.to_le_bytes().to_vec();
    let mut placed: Vec<Bucket> = vec![vec![None; SLOTS]; 2 * m];
    for i in 0..(2 * m * SLOTS / 3) as u64 {
        let key = le(1000 + i);
        let (left, right) = client.bucket_candidates(&v1, &key);
        let buckets = [left, m + right];
        let free = v1
            .candidate_order()
            .find(|&(half, z)| placed[buckets[half]][z].is_none());
        if let Some((half, z)) = free {
            placed[buckets[half]][z] = Some((key, le(7 * i + 1)));
        }
    }
    let hit = placed
        .iter()
        .flatten()
        .flatten()
        .nth(5)
        .cloned()
        .expect("a stored key");
    let hit_key = u64::from_le_bytes(hit.0.clone().try_into().unwrap());
    let hit_value = 7 * (hit_key - 1000) + 1;
    let v1_rows: Vec<Vec<u8>> = placed
        .iter()
        .map(|bucket| {
            let clear: Vec<ClearRow> = bucket
                .iter()
                .map(|slot| ClearRow::of_slot(slot.as_ref(), width, width))
                .collect();
            client.seal_bucket(&v1, &clear).unwrap()
        })
        .collect();
    let leveled_buckets: Vec<GlweCiphertextOwned<u64>> = placed
        .iter()
        .map(|bucket| client.leveled_bucket_glwe(&leveled, bucket).unwrap())
        .collect();

    let env = KernelEnv {
        keys: server,
        key_width: width,
        value_width: width,
        pool: None,
        batch_rows: 64,
    };
    let v1_query = |key: &[u8]| {
        let bytes = client.encrypt_bucket_key_le(&v1, key).unwrap();
        let envelope = ops::check_query(&bytes, "key", client.key_id(), &v1).unwrap();
        ops::decode_query(&envelope, "key", client.key_id(), &v1).unwrap()
    };
    let leveled_query = |key: &[u8]| {
        let bytes = client.leveled_query_key(leveled.row.key, key).unwrap();
        decode_query(&bytes, server.key_id, leveled.row.key).unwrap()
    };
    let luts = EqualityLuts::new(sks);
    let mut lines: Vec<(String, (f64, f64, f64), usize)> = Vec::new();
    let v1_bytes = v1_rows.iter().map(Vec::len).sum::<usize>() / v1_rows.len();
    // A leveled bucket has no stored row format yet: its mask and used bodies at 32 bits,
    // as a bucket-v1 row keeps them.
    let leveled_bytes = 4 * (fhe_kv_core::bucket::params::coefficients() + leveled.bodies());

    // GET of a stored key. One bucket-v1 query serves both layouts' GET and DELETE: the
    // leveled ones use its selectors (the same candidates) with the leveled query key.
    let bucket_query = v1_query(&hit.0);
    let mut store = VecStore {
        rows: v1_rows.clone(),
        batch: 64,
    };
    let (cost, out) = measure(|| {
        ops::get_many(&env, &v1, &mut store, std::slice::from_ref(&bucket_query)).unwrap()
    });
    let out = out.into_iter().next().unwrap();
    let bytes = fhe_kv_core::codec::encode_get_result(server, width, out.found, out.value).unwrap();
    assert_eq!(client.decrypt_get(&bytes).unwrap(), Some(hit_value));
    lines.push(("bucket-v1 blocks: GET".into(), cost, v1_bytes));

    let selectors = &bucket_query.selectors;
    let query = leveled_query(&hit.0);
    let (cost, answer) = measure(|| {
        let selected = select_in_memory(&leveled_buckets, selectors).unwrap();
        leveled_bucket_get(server, &luts, &leveled, &selected, &query).unwrap()
    });
    assert_eq!(
        client.open_leveled_answer(leveled.row, &answer).unwrap(),
        Some(hit.1.clone())
    );
    lines.push(("leveled slots: GET".into(), cost, leveled_bytes));

    // The naive integer GET over the 12 candidate slots (as compact rows).
    let (left, right) = client.bucket_candidates(&v1, &hit.0);
    let sealer = client.row_sealer();
    let candidates: Vec<Vec<u8>> = [left, m + right]
        .iter()
        .flat_map(|&b| &placed[b])
        .map(|slot| {
            sealer
                .seal(&ClearRow::of_slot(slot.as_ref(), width, width))
                .unwrap()
        })
        .collect();
    let naive = naive::Naive::new(server, width, width);
    let q = client.encrypt_key(hit_key, width).unwrap();
    let (cost, _) = measure(|| {
        let query = decode_integer(&q, "bench key", Kind::QueryKey, server.key_id, width).unwrap();
        let (found, value) = naive.get(&candidates, &query);
        let found = ck.decrypt_radix::<u64>(&tfhe::integer::RadixCiphertext::from(vec![
            found.into_raw_parts()
        ]));
        assert_eq!((found, ck.decrypt_radix::<u64>(&value)), (1, hit_value));
    });
    lines.push((
        "naive (integer API) over the candidates: GET, no selection".into(),
        cost,
        0,
    ));

    // DELETE of that key (bucket-v1: tombstone, as the leveled DELETE).
    let (cost, _) = measure(|| {
        ops::delete(&env, &v1, &mut store, &bucket_query, DeleteMode::Tombstone).unwrap()
    });
    lines.push(("bucket-v1 blocks: DELETE".into(), cost, v1_bytes));

    let (cost, outcome) = measure(|| {
        let selected = select_in_memory(&leveled_buckets, selectors).unwrap();
        let outcome = leveled_bucket_delete(server, &luts, &leveled, &selected, &query).unwrap();
        // The write-back: each half's delta down its expansion tree into every bucket.
        let mut written = leveled_buckets.clone();
        for (half, delta) in outcome.deltas.iter().enumerate() {
            let leaves = fhe_kv_core::bucket::write_back::DeltaLeaves::new(
                &selectors[half],
                m,
                delta.clone(),
            );
            for (bucket, leaf) in written[half * m..(half + 1) * m].iter_mut().zip(leaves) {
                glwe_ciphertext_add_assign(bucket, &leaf);
            }
        }
        (outcome.status, written)
    });
    assert!(client.open_leveled_flag(&outcome.0).unwrap());
    let selected = select_in_memory(&outcome.1, selectors).unwrap();
    let after = leveled_bucket_get(server, &luts, &leveled, &selected, &query).unwrap();
    assert_eq!(
        client.open_leveled_answer(leveled.row, &after).unwrap(),
        None
    );
    lines.push(("leveled slots: DELETE".into(), cost, leveled_bytes));

    let candidates = 2 * SLOTS;
    println!(
        "\nServer-side operations on a bucketed table, u64/u64, {m} buckets per half of \
         {SLOTS} slots ({candidates} candidate slots per key); one KS+PBS = {:.1} ms",
        pbs_seconds * 1e3
    );
    println!(
        "| method | PBS/op | external products/op | s/op | PBS-equivalents/op | \
         PBS/candidate slot | PBS-equivalents/candidate slot | stored bytes/bucket |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, (pbs, eps, seconds), bytes) in lines {
        let per = candidates as f64;
        println!(
            "| {name} | {pbs:.0} | {eps:.0} | {seconds:.2} | {:.1} | {:.1} | {:.1} | {} |",
            seconds / pbs_seconds,
            pbs / per,
            seconds / pbs_seconds / per,
            if bytes == 0 {
                "-".into()
            } else {
                bytes.to_string()
            }
        );
    }
}
