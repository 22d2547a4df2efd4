//! Leveled slots inside buckets ([`super::in_bucket`]): the clear identity the kernel
//! relies on (every slot's distance at its start, for every width at the most slots a
//! bucket holds), then with the real parameters and the cached test keys the whole path a
//! server-side GET will take: buckets stored at 32 bits, selected by CMux trees, matched
//! and answered; and the measured noise of every slot's chunk distances against
//! [`LeveledBucketNoise`].

use super::in_bucket::{
    leveled_bucket_delete, leveled_bucket_get, slot_distances, LeveledBucketLayout,
};
use super::owner::{decode_block, query_polynomial};
use super::tests::{hamming, Keys};
use super::wire::{decode_query, ComputedGlwe};
use super::{bit, DELTA_LOG};
use crate::bucket::select::select_in_memory;
use crate::bucket::wire::{encrypt_seeded_selector, selector_from_seeded, Selector};
use crate::bucket::write_back::DeltaLeaves;
use crate::leveled::equality::EqualityLuts;
use crate::noise::LeveledBucketNoise;
use crate::params::Width;
use crate::testkeys::test_keys;
use tfhe::core_crypto::prelude::*;

/// A bucket in clear: per slot `Some((key, value))` little-endian, or `None`.
type Bucket = Vec<Option<(Vec<u8>, Vec<u8>)>>;

/// `a · b` mod `X^N + 1` in clear, wrapping.
fn negacyclic_product(a: &[u64], b: &[u64]) -> Vec<u64> {
    let n = a.len();
    let mut out = vec![0u64; n];
    for (i, &ai) in a.iter().enumerate().filter(|(_, &x)| x != 0) {
        for (j, &bj) in b.iter().enumerate().filter(|(_, &x)| x != 0) {
            let p = ai.wrapping_mul(bj);
            if i + j < n {
                out[i + j] = out[i + j].wrapping_add(p);
            } else {
                out[i + j - n] = out[i + j - n].wrapping_sub(p);
            }
        }
    }
    out
}

/// The clear bucket times the clear chunk query: slot `z`'s chunk Hamming distance at
/// coefficient `z·W`, for every width and every slot of a full bucket (the most slots
/// fit, so slot 0's wrap-around and the last slot are both exercised), vacant slots
/// included (their key is 0).
#[test]
fn one_product_puts_every_slots_chunk_distance_at_its_start() {
    let mut rng = Keys(11);
    for width in Width::ALL {
        let value = Width::W8;
        let max = LeveledBucketLayout::max_slots(super::RowLayout::one_glwe(width, value));
        let layout = LeveledBucketLayout::new(width, value, max).unwrap();
        assert!(LeveledBucketLayout::new(width, value, max + 1).is_err());
        let keys: Vec<Vec<u8>> = (0..max).map(|_| rng.bytes(width.bytes())).collect();
        let values: Vec<Vec<u8>> = (0..max).map(|_| rng.bytes(1)).collect();
        let entries: Vec<Option<(&[u8], &[u8])>> = (0..max)
            .map(|z| (z % 5 != 3).then_some((&keys[z][..], &values[z][..])))
            .collect();
        let plain: Vec<u64> = layout
            .plaintext(&entries)
            .unwrap()
            .as_ref()
            .iter()
            .map(|p| p >> DELTA_LOG)
            .collect();
        let q = rng.bytes(width.bytes());
        for c in 0..layout.row.key.chunks() {
            let product = negacyclic_product(&plain, &query_polynomial(layout.row.key, &q, c));
            for (z, entry) in entries.iter().enumerate() {
                let k = entry.map_or(vec![0u8; width.bytes()], |(k, _)| k.to_vec());
                assert_eq!(
                    product[layout.slot_start(z)],
                    hamming(layout.row.key, &k, &q, c),
                    "{width}: slot {z} of {max}, chunk {c}"
                );
            }
        }
    }
}

/// A table of `2 m` buckets (two halves of `m`), each a bucket of `entries`, stored at
/// 32 bits per coefficient as the bucketed layout stores rows.
fn stored_buckets(
    layout: &LeveledBucketLayout,
    entries: &[Bucket],
) -> Vec<GlweCiphertextOwned<u64>> {
    let (client, _) = test_keys();
    entries
        .iter()
        .map(|bucket| {
            let glwe = client.leveled_bucket_glwe(layout, bucket).unwrap();
            ComputedGlwe::round(&glwe, layout.bodies()).expand()
        })
        .collect()
}

/// The selector bits of `index` (least significant first), as the server holds them.
fn selectors(index: usize, bits: usize) -> Vec<Selector> {
    let (client, _) = test_keys();
    let mut seeder = new_seeder();
    (0..bits)
        .map(|i| {
            let (seed, data) =
                encrypt_seeded_selector(&client.glwe, ((index >> i) & 1) as u64, seeder.as_mut());
            selector_from_seeded(seed, data)
        })
        .collect()
}

fn select_with(
    buckets: &[GlweCiphertextOwned<u64>],
    m: usize,
    selectors: &[Vec<Selector>; 2],
) -> [GlweCiphertextOwned<u64>; 2] {
    assert_eq!(buckets.len(), 2 * m);
    select_in_memory(buckets, selectors).unwrap()
}

fn select(
    buckets: &[GlweCiphertextOwned<u64>],
    m: usize,
    bits: usize,
    candidates: (usize, usize),
) -> [GlweCiphertextOwned<u64>; 2] {
    let s = [selectors(candidates.0, bits), selectors(candidates.1, bits)];
    select_with(buckets, m, &s)
}

/// The bucketed layout's write-back: each half's delta expanded down its tree into every
/// bucket of the half, each bucket stored again at 32 bits.
fn write_back(
    layout: &LeveledBucketLayout,
    buckets: &mut [GlweCiphertextOwned<u64>],
    m: usize,
    selectors: &[Vec<Selector>; 2],
    deltas: [GlweCiphertextOwned<u64>; 2],
) {
    for (half, delta) in deltas.into_iter().enumerate() {
        let leaves = DeltaLeaves::new(&selectors[half], m, delta);
        for (bucket, leaf) in buckets[half * m..(half + 1) * m].iter_mut().zip(leaves) {
            glwe_ciphertext_add_assign(bucket, &leaf);
            *bucket = ComputedGlwe::round(bucket, layout.bodies()).expand();
        }
    }
}

const M: usize = 5;
const BITS: usize = 3;

/// u64/u64 buckets of 6 slots, two halves of 5 buckets (3 selector bits, one padded
/// subtree), each bucket half full.
fn table(rng: &mut Keys) -> (LeveledBucketLayout, Vec<Bucket>) {
    let layout = LeveledBucketLayout::new(Width::W64, Width::W64, 6).unwrap();
    let entries = (0..2 * M)
        .map(|_| {
            (0..layout.slots)
                .map(|z| (z % 2 == 0).then(|| (rng.bytes(8), rng.bytes(8))))
                .collect()
        })
        .collect();
    (layout, entries)
}

/// The server-side GET of a bucketed table of leveled slots, through the real selection:
/// a key in the left candidate, one in the right candidate, an absent key, and a key
/// that lives in a bucket that is not a candidate (absent for this query: the server
/// only sees the candidates). The key owner's read of the selected buckets (no
/// bootstrap) gives back every candidate slot.
#[test]
fn a_leveled_bucket_get_answers_from_the_selected_candidates_only() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let mut rng = Keys(23);
    let (layout, entries) = table(&mut rng);
    let buckets = stored_buckets(&layout, &entries);
    let (left, right) = (4, 2); // the last real bucket of a half, and one inside
    let selected = select(&buckets, M, BITS, (left, right));
    for (half, index) in [(0, left), (1, right)] {
        assert_eq!(
            client.open_leveled_bucket(&layout, &selected[half]),
            entries[half * M + index],
            "the owner's read of half {half}"
        );
    }
    let key_of = |bucket: usize, z: usize| entries[bucket][z].clone().unwrap();
    let absent = rng.bytes(8);
    let elsewhere = key_of(M + 3, 2);
    let cases = [
        (key_of(left, 4).0, Some(key_of(left, 4).1)),
        (key_of(M + right, 0).0, Some(key_of(M + right, 0).1)),
        (absent, None),
        (elsewhere.0, None),
    ];
    for (key, expected) in cases {
        let query = client.leveled_query_key(layout.row.key, &key).unwrap();
        let query = decode_query(&query, server.key_id, layout.row.key).unwrap();
        let answer = leveled_bucket_get(server, &luts, &layout, &selected, &query).unwrap();
        assert_eq!(
            client.open_leveled_answer(layout.row, &answer).unwrap(),
            expected,
            "key {key:02x?}"
        );
    }
}

/// The life of a key in a bucketed table of leveled slots, every write expanded into
/// every bucket of its half and stored again at 32 bits: the key owner inserts a key into
/// a vacant candidate slot (a read, then one delta per half, the other half's an
/// encryption of 0); the server's GET finds it; the server's DELETE vacates exactly that
/// slot (status 1) and a second DELETE changes nothing (status 0). Every other key keeps
/// its value throughout, as the key owner's read of every bucket shows.
#[test]
fn a_key_the_owner_inserts_is_found_and_deleted_by_the_server() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let mut rng = Keys(41);
    let (layout, mut entries) = table(&mut rng);
    let mut buckets = stored_buckets(&layout, &entries);
    let sel = [selectors(1, BITS), selectors(3, BITS)];
    let get = |buckets: &[GlweCiphertextOwned<u64>], key: &[u8]| {
        let query = client.leveled_query_key(layout.row.key, key).unwrap();
        let query = decode_query(&query, server.key_id, layout.row.key).unwrap();
        let answer = leveled_bucket_get(
            server,
            &luts,
            &layout,
            &select_with(buckets, M, &sel),
            &query,
        )
        .unwrap();
        client.open_leveled_answer(layout.row, &answer).unwrap()
    };
    let delete = |buckets: &mut [GlweCiphertextOwned<u64>], key: &[u8]| {
        let query = client.leveled_query_key(layout.row.key, key).unwrap();
        let query = decode_query(&query, server.key_id, layout.row.key).unwrap();
        let selected = select_with(buckets, M, &sel);
        let outcome = leveled_bucket_delete(server, &luts, &layout, &selected, &query).unwrap();
        write_back(&layout, buckets, M, &sel, outcome.deltas);
        client.open_leveled_flag(&outcome.status).unwrap()
    };
    let every_bucket = |buckets: &[GlweCiphertextOwned<u64>]| -> Vec<Bucket> {
        buckets
            .iter()
            .map(|b| client.open_leveled_bucket(&layout, b))
            .collect()
    };

    // The key owner's SET of a new key: read both candidates, write slot 3 of the right.
    let (key, value) = (rng.bytes(8), rng.bytes(8));
    let read = select_with(&buckets, M, &sel);
    let before = [0, 1].map(|h| client.open_leveled_bucket(&layout, &read[h]));
    assert_eq!(before, [entries[1].clone(), entries[M + 3].clone()]);
    let mut after = before.clone();
    after[1][3] = Some((key.clone(), value.clone()));
    let deltas = [0, 1].map(|h| {
        client
            .leveled_bucket_delta(&layout, &before[h], &after[h])
            .unwrap()
    });
    write_back(&layout, &mut buckets, M, &sel, deltas);
    entries[M + 3] = after[1].clone();
    assert_eq!(every_bucket(&buckets), entries);

    let neighbour = entries[1][2].clone().unwrap();
    assert_eq!(get(&buckets, &key), Some(value.clone()));
    assert_eq!(get(&buckets, &neighbour.0), Some(neighbour.1.clone()));

    assert!(delete(&mut buckets, &key), "the first DELETE found the key");
    entries[M + 3][3] = None;
    assert_eq!(every_bucket(&buckets), entries);
    assert_eq!(get(&buckets, &key), None);
    assert!(
        !delete(&mut buckets, &key),
        "the second DELETE found nothing"
    );
    assert_eq!(every_bucket(&buckets), entries);
    assert_eq!(get(&buckets, &neighbour.0), Some(neighbour.1));
}

/// The error of every chunk distance of the two selected candidates for the query key
/// `q`, each checked to decrypt to the exact Hamming distance: `(error², ‖M_c‖²)` per
/// chunk, slot and half (the candidates' clear contents are `entries`' buckets
/// `candidates`).
fn distance_errors(
    layout: &LeveledBucketLayout,
    entries: &[Bucket],
    candidates: (usize, usize),
    selected: &[GlweCiphertextOwned<u64>; 2],
    q: &[u8],
) -> Vec<(f64, f64)> {
    let (client, server) = test_keys();
    let lwe_key = client.glwe.as_lwe_secret_key();
    let key_layout = layout.row.key;
    let query = client.leveled_query_key(key_layout, q).unwrap();
    let query = decode_query(&query, server.key_id, key_layout).unwrap();
    let mut out = Vec::new();
    for (half, index) in [(0, candidates.0), (1, candidates.1)] {
        let distances = slot_distances(layout, &selected[half], &query).unwrap();
        for (z, per_chunk) in distances.iter().enumerate() {
            let k = entries[half * M + index][z]
                .as_ref()
                .map_or(vec![0u8; key_layout.width.bytes()], |(k, _)| k.clone());
            for (c, lwe) in per_chunk.iter().enumerate() {
                let d = hamming(key_layout, &k, q, c);
                let plain = decrypt_lwe_ciphertext(&lwe_key, lwe).0;
                assert_eq!(decode_block(plain), d, "half {half}, slot {z}, chunk {c}");
                let error = plain.wrapping_sub(d << DELTA_LOG) as i64 as f64 / 2f64.powi(64);
                let ones = key_layout.chunk(c).map(|b| bit(q, b)).sum::<u64>() as f64;
                let len = key_layout.chunk(c).len() as f64;
                out.push((error * error, LeveledBucketNoise::norm_for(len, ones)));
            }
        }
    }
    out
}

/// Every chunk distance of every candidate slot decrypts to the exact Hamming distance,
/// and its measured error variance, normalised by what [`LeveledBucketNoise`] predicts
/// for the sample's `‖M_c‖²` (no write-back since the key owner wrote the buckets, the
/// selection's 3 levels), averages at most 2.
#[test]
fn measured_bucket_slot_distance_noise_stays_within_the_formula() {
    let model = LeveledBucketNoise::new(BITS);
    let mut rng = Keys(31);
    let (layout, entries) = table(&mut rng);
    let buckets = stored_buckets(&layout, &entries);
    let (mut normalised, mut samples, mut worst) = (0f64, 0usize, 0f64);
    for round in 0..4 {
        let candidates = ((round * 3) % M, (round * 2 + 1) % M);
        let selected = select(&buckets, M, BITS, candidates);
        for _ in 0..2 {
            // A stored key with random bits flipped, so small and large distances occur.
            let (b, z) = (candidates.0, 2 * (rng.next() as usize % 3));
            let near = entries[b][z].as_ref().unwrap().0.clone();
            let q: Vec<u8> = near
                .iter()
                .map(|&x| x ^ (rng.next() & rng.next()) as u8)
                .collect();
            for (e2, norm2) in distance_errors(&layout, &entries, candidates, &selected, &q) {
                let ratio = e2 / model.distance_for(0.0, norm2);
                normalised += ratio;
                worst = f64::max(worst, ratio);
                samples += 1;
            }
        }
    }
    let mean = normalised / samples as f64;
    println!(
        "leveled slots in buckets: {samples} chunk distances, measured/predicted variance \
         {mean:.3} (largest single sample {worst:.2}); predicted worst chunk 2^{:.1}, one PBS \
         output 2^{:.1}",
        model.distance(0.0).log2(),
        model.equality.pbs.log2()
    );
    assert!(samples >= 400, "{samples}");
    assert!(mean <= 2.0, "measured noise {mean} x the formula");
}

/// After 64 writes by the key owner (each a real change in one candidate bucket and an
/// encryption of 0 in the other half, expanded into every bucket and stored again at 32
/// bits) every chunk distance still decrypts exactly, and the measured variance stays
/// within [`LeveledBucketNoise::distance_for`] at 64 writes, whose write term counts every
/// write twice ([`crate::noise::WRITE_MEASURED_FACTOR`]: measured 1.4–1.8× the bare
/// formula). With storage rounding ties up instead of to even, this measured 18–20×: a
/// bias common to every coefficient that grew with the writes ([`crate::rounding`]).
#[test]
fn distances_after_64_owner_writes_decrypt_exactly_and_their_noise_is_measured() {
    let (client, _) = test_keys();
    let writes = 64;
    let model = LeveledBucketNoise::new(BITS);
    let mut rng = Keys(53);
    let (layout, mut entries) = table(&mut rng);
    let mut buckets = stored_buckets(&layout, &entries);
    for w in 0..writes {
        let (left, right) = (rng.next() as usize % M, rng.next() as usize % M);
        let sel = [selectors(left, BITS), selectors(right, BITS)];
        let read = select_with(&buckets, M, &sel);
        let before = [0, 1].map(|h| client.open_leveled_bucket(&layout, &read[h]));
        assert_eq!(
            before,
            [entries[left].clone(), entries[M + right].clone()],
            "write {w}"
        );
        let mut after = before.clone();
        // Update one occupied slot's value in one half (slots 0, 2, 4 are occupied).
        let (half, z) = ((w % 2) as usize, 2 * (rng.next() as usize % 3));
        if let Some((_, v)) = after[half][z].as_mut() {
            *v = rng.bytes(8);
        }
        let deltas = [0, 1].map(|h| {
            client
                .leveled_bucket_delta(&layout, &before[h], &after[h])
                .unwrap()
        });
        write_back(&layout, &mut buckets, M, &sel, deltas);
        entries[left] = after[0].clone();
        entries[M + right] = after[1].clone();
    }
    let (mut normalised, mut samples) = (0f64, 0usize);
    for round in 0..4 {
        let candidates = (round % M, (round + 2) % M);
        let selected = select(&buckets, M, BITS, candidates);
        let q = rng.bytes(8);
        for (e2, norm2) in distance_errors(&layout, &entries, candidates, &selected, &q) {
            normalised += e2 / model.distance_for(writes as f64, norm2);
            samples += 1;
        }
    }
    let mean = normalised / samples as f64;
    println!(
        "leveled slots in buckets after {writes} writes: {samples} chunk distances, \
         measured/predicted variance {mean:.3}; \
         predicted worst chunk 2^{:.1} (2^{:.1} before any write)",
        model.distance(writes as f64).log2(),
        model.distance(0.0).log2()
    );
    assert!(mean <= 1.5, "measured noise {mean} x the formula");
    // The writes dominate the prediction, so the measurement tests their term.
    assert!(model.distance(writes as f64) > 4.0 * model.distance(0.0));
}
