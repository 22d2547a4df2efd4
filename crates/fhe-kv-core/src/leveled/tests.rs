//! Leveled equality with the real parameters and the cached test keys: the exact answer
//! for equal keys, keys one bit apart in every chunk and unrelated keys; the measured
//! noise of the chunk distances against [`LeveledEqualityNoise`]; hostile wire input.

use super::delete::leveled_delete;
use super::equality::{chunk_distances, leveled_match, EqualityLuts};
use super::get::{leveled_get, leveled_get_batch, LeveledAnswer};
use super::messages::{
    decode_fetch_query, decode_fetch_result, decode_set_write, decode_status, encode_fetch_result,
    encode_status,
};
use super::owner::{encrypt_query, query_polynomial};
use super::set_locate::{leveled_set_locate, LeveledSetLocation, LeveledSetTarget};
use super::set_write::{embed_constant, leveled_set_write, leveled_set_write_rows};
use super::two_round::{leveled_fetch, leveled_locate, LeveledLocation};
use super::wire::{
    self, decode_query, decode_row, row_format_of, ComputedGlwe, LeveledQuery, LeveledRow,
    RowGlwes, StoredSlot,
};
use super::{bit, ChunkLayout, RowFormat, RowLayout, DELTA_LOG};
use crate::bucket::params;
use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::FheKvError;
use crate::noise::LeveledEqualityNoise;
use crate::params::Width;
use crate::testkeys::test_keys;
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};

/// A small deterministic generator (splitmix64): the keys of a test are reproducible.
pub(super) struct Keys(pub(super) u64);

impl Keys {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` bytes of the sequence.
    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub(super) fn hamming(layout: ChunkLayout, k: &[u8], q: &[u8], c: usize) -> u64 {
    layout.chunk(c).map(|b| bit(k, b) ^ bit(q, b)).sum()
}

/// `K(X) · M_c(X)` in clear, mod `X^N + 1`: its constant coefficient is the chunk's
/// Hamming distance (the identity the kernel relies on), for every chunk of every width.
#[test]
fn the_query_polynomial_times_the_stored_key_is_the_chunk_hamming_distance() {
    let n = params::coefficients();
    let mut rng = Keys(1);
    for width in Width::ALL {
        let layout = ChunkLayout::new(width);
        for _ in 0..20 {
            let k: Vec<u8> = (0..width.bytes()).map(|_| rng.next() as u8).collect();
            let q: Vec<u8> = (0..width.bytes()).map(|_| rng.next() as u8).collect();
            let mut stored = vec![0u64; n];
            for (b, s) in stored[..layout.bits()].iter_mut().enumerate() {
                *s = bit(&k, b);
            }
            stored[layout.one_at()] = 1;
            for c in 0..layout.chunks() {
                let m = query_polynomial(layout, &q, c);
                // constant coefficient of stored · m: Σ_j stored_j · m_{−j}, where
                // m_{−j} = −m_{N−j} for j > 0.
                let constant = (0..n).fold(0u64, |acc, j| {
                    let term = if j == 0 {
                        stored[0].wrapping_mul(m[0])
                    } else {
                        stored[j].wrapping_mul(m[n - j]).wrapping_neg()
                    };
                    acc.wrapping_add(term)
                });
                assert_eq!(constant, hamming(layout, &k, &q, c), "{width} chunk {c}");
            }
        }
    }
}

fn le(v: u64, width: Width) -> Vec<u8> {
    v.to_le_bytes()[..width.bytes()].to_vec()
}

fn decrypt_bit(ct: tfhe::shortint::Ciphertext) -> u64 {
    let (client, _) = test_keys();
    let ck = client.hl.clone().into_raw_parts().0;
    ck.decrypt_radix::<u64>(&tfhe::integer::RadixCiphertext::from(vec![ct]))
}

/// Through the wire formats, as the server will see them: the match bit is 1 for the
/// stored key and 0 for a key one bit away in each chunk, its complement and other keys;
/// a vacant slot matches nothing, not even the key it once held.
#[test]
fn leveled_match_is_one_exactly_for_the_stored_key() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let cases: [(Width, u64, Vec<u64>); 3] = [
        (Width::W8, 0xA5, vec![0xA5, 0xA4, 0x25, 0x5A, 0]),
        (Width::W16, 0x8001, vec![0x8001, 0x0001, 0x8000, 0x7FFE]),
        (Width::W64, 0x0123_4567_89AB_CDEF, {
            let k = 0x0123_4567_89AB_CDEFu64;
            // one flipped bit in each of the five chunks, the complement, another key
            let mut q = vec![k];
            q.extend([0, 17, 33, 47, 63].map(|b| k ^ (1 << b)));
            q.extend([!k, 0xFEDC_BA98_7654_3210]);
            q
        }),
    ];
    for (width, key, queries) in cases {
        let rows = RowLayout::new(width, Width::W8);
        let layout = rows.key;
        let row = client
            .leveled_row(rows, Some((&le(key, width), &[0x5A])))
            .unwrap();
        let stored = decode_row(&row, server.key_id, rows).unwrap();
        for q in queries {
            let query = client.leveled_query_key(layout, &le(q, width)).unwrap();
            let query = decode_query(&query, server.key_id, layout).unwrap();
            let m = leveled_match(&server.sks, &luts, layout, &stored, &query).unwrap();
            assert_eq!(
                decrypt_bit(m),
                u64::from(q == key),
                "{width}: stored {key:#x}, query {q:#x}"
            );
        }
        let vacant = client.leveled_row(rows, None).unwrap();
        let vacant = decode_row(&vacant, server.key_id, rows).unwrap();
        let zero = client.leveled_query_key(layout, &le(0, width)).unwrap();
        let zero = decode_query(&zero, server.key_id, layout).unwrap();
        let m = leveled_match(&server.sks, &luts, layout, &vacant, &zero).unwrap();
        assert_eq!(decrypt_bit(m), 0, "{width}: a vacant slot matched");
    }
}

/// The query key of a u64 `key`, encrypted by the key owner and decoded by the server.
fn query64(layout: ChunkLayout, key: u64) -> Vec<crate::bucket::wire::Selector> {
    let (client, server) = test_keys();
    let q = client
        .leveled_query_key(layout, &le(key, Width::W64))
        .unwrap();
    decode_query(&q, server.key_id, layout).unwrap()
}

/// Every row of a table, decoded by the server.
fn decode_all(rows: RowLayout, table: &[Vec<u8>]) -> Vec<StoredSlot> {
    let (_, server) = test_keys();
    table
        .iter()
        .map(|r| decode_row(r, server.key_id, rows).unwrap())
        .collect()
}

/// The seeded GLWEs of a row the key owner wrote.
fn owner_parts(row: &mut LeveledRow) -> (&mut wire::SeededBodies, &mut Vec<wire::SeededBodies16>) {
    match &mut row.glwes {
        wire::RowGlwes::Owner { key, values } => (key, values),
        wire::RowGlwes::Server { .. } => panic!("a row the key owner wrote has seeded GLWEs"),
    }
}

/// A row the key owner writes: `Some((key, value))` at the table's widths, or vacant.
fn owner_row(rows: RowLayout, entry: Option<(u64, u64)>) -> Vec<u8> {
    let (client, _) = test_keys();
    let entry = entry.map(|(k, v)| (le(k, rows.key.width), le(v, rows.value)));
    client
        .leveled_row(
            rows,
            entry.as_ref().map(|(k, v)| (k.as_slice(), v.as_slice())),
        )
        .unwrap()
}

/// A table of rows the key owner wrote, one per entry.
fn owner_table(rows: RowLayout, entries: &[Option<(u64, u64)>]) -> Vec<Vec<u8>> {
    entries.iter().map(|&e| owner_row(rows, e)).collect()
}

fn slot(rows: RowLayout, entry: Option<(u64, u64)>) -> StoredSlot {
    let (_, server) = test_keys();
    decode_row(&owner_row(rows, entry), server.key_id, rows).unwrap()
}

/// A two-round SET of `key` → `value` through the wire formats, from stored rows to
/// stored rows, with round 1 answering in table `state`: where it wrote, and the state
/// round 2 carried back.
fn two_round_set(
    rows: RowLayout,
    table: &mut Vec<Vec<u8>>,
    key: u64,
    value: u64,
    state: u64,
) -> (LeveledSetTarget, u64) {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let slots = decode_all(rows, table);
    let query = query64(rows.key, key);
    let location = leveled_set_locate(&server.sks, &luts, rows, &slots, &query).unwrap();
    let location = location.encode(server.key_id, slots.len(), state).unwrap();
    let (location, state) =
        LeveledSetLocation::decode(&location, server.key_id, slots.len()).unwrap();
    let target = client.open_leveled_set_location(&location).unwrap();
    let write = client
        .leveled_set_write_query(
            rows,
            target,
            slots.len(),
            (&le(key, rows.key.width), &le(value, rows.value)),
            state,
        )
        .unwrap();
    let write = decode_set_write(&write, server.key_id, slots.len()).unwrap();
    *table = leveled_set_write_rows(server.key_id, rows, table, &write).unwrap();
    (target, write.state)
}

/// The key owner's reading of every stored row (export): `(key, value)` or vacant.
fn open_all(rows: RowLayout, table: &[Vec<u8>]) -> Vec<Option<(Vec<u8>, Vec<u8>)>> {
    let (client, _) = test_keys();
    table
        .iter()
        .map(|r| client.open_leveled_row(rows, r).unwrap())
        .collect()
}

/// A one-round GET of `key` through the wire formats: the value, or `None`.
fn wire_get(rows: RowLayout, table: &[Vec<u8>], key: u64) -> Option<u64> {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let slots = decode_all(rows, table);
    let answer = leveled_get(server, &luts, rows, &slots, &query64(rows.key, key)).unwrap();
    let answer = answer.encode(server.key_id, rows).unwrap();
    let answer = LeveledAnswer::decode(&answer, server.key_id, rows).unwrap();
    client.open_leveled_answer(rows, &answer).unwrap().map(|v| {
        let mut bytes = [0u8; 8];
        bytes[..v.len()].copy_from_slice(&v);
        u64::from_le_bytes(bytes)
    })
}

/// A table the server created alone (`wire::empty_row`: trivial ciphertexts, no client
/// key) answers GET with "absent", takes SETs into its first slots, and, after them,
/// holds no trivial slot any more; the key owner reads every kind of row back.
#[test]
fn a_table_of_server_built_empty_rows_takes_sets_and_gets() {
    let (_, server) = test_keys();
    let rows = RowLayout::new(Width::W64, Width::W16);
    let empty = wire::empty_row(server.key_id, rows).unwrap();
    let mut table = vec![empty.clone(); 3];
    assert_eq!(wire_get(rows, &table, 5), None);
    assert_eq!(
        wire_get(rows, &table, 0),
        None,
        "the all-zero key is absent too"
    );
    assert_eq!(
        two_round_set(rows, &mut table, 5, 0x55, 1).0,
        LeveledSetTarget::Insert(0)
    );
    assert!(
        table.iter().all(|r| *r != empty),
        "every slot was rewritten"
    );
    let slots = decode_all(rows, &table);
    assert!(
        slots[2].key.get_mask().as_ref().iter().any(|&c| c != 0),
        "an unwritten slot is no longer a trivial ciphertext"
    );
    assert_eq!(
        two_round_set(rows, &mut table, 0, 0x77, 2).0,
        LeveledSetTarget::Insert(1)
    );
    assert_eq!(wire_get(rows, &table, 5), Some(0x55));
    assert_eq!(wire_get(rows, &table, 0), Some(0x77));
    assert_eq!(wire_get(rows, &table, 6), None);

    // The key owner reads every stored row back (export, import): SET-written rows,
    // a never-written one, and rows it wrote itself.
    let (client, _) = test_keys();
    let opened = open_all(rows, &table);
    assert_eq!(
        opened,
        vec![
            Some((le(5, Width::W64), le(0x55, Width::W16))),
            Some((le(0, Width::W64), le(0x77, Width::W16))),
            None
        ]
    );
    assert_eq!(client.open_leveled_row(rows, &empty).unwrap(), None);
    let own = owner_row(rows, Some((u64::MAX - 2, 0xfffe)));
    assert_eq!(
        client.open_leveled_row(rows, &own).unwrap(),
        Some((le(u64::MAX - 2, Width::W64), le(0xfffe, Width::W16)))
    );
    assert_eq!(
        client
            .open_leveled_row(rows, &owner_row(rows, None))
            .unwrap(),
        None
    );
}

/// A leveled GET over a few slots returns the value of the one slot holding the key,
/// `None` for an absent key, and ignores a vacant slot that held the key before.
#[test]
fn leveled_get_returns_the_value_of_the_matching_slot_only() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W64);
    let value = 0xF00D_FACE_0123_4567u64;
    let slots = vec![
        slot(rows, Some((11, 0xFFFF_FFFF_FFFF_FFFF))),
        slot(rows, None),
        slot(rows, Some((0xDEAD_BEEF, value))),
        slot(rows, Some((0xDEAD_BEEE, 0x1111))),
    ];
    let ask = |key: u64| {
        let q = client
            .leveled_query_key(rows.key, &le(key, Width::W64))
            .unwrap();
        let q = decode_query(&q, server.key_id, rows.key).unwrap();
        let answer = leveled_get(server, &luts, rows, &slots, &q).unwrap();
        client.open_leveled_answer(rows, &answer).unwrap()
    };
    assert_eq!(ask(0xDEAD_BEEF), Some(le(value, Width::W64)));
    assert_eq!(ask(11), Some(le(u64::MAX, Width::W64)));
    // the vacant slot was sealed with key 0
    assert_eq!(ask(0), None);
    assert_eq!(ask(12), None);
}

/// Every chunk distance decrypts to the exact Hamming distance, and the measured error
/// variance, normalised by what [`LeveledEqualityNoise`] predicts for each sample's
/// `‖M_c‖²`, averages at most 2 (the model is a bound; the average of 200 samples of a
/// variance at most 1 exceeds 2 with negligible probability).
#[test]
fn measured_chunk_distance_noise_stays_within_the_formula() {
    let (client, server) = test_keys();
    let model = LeveledEqualityNoise::worst_case();
    let width = Width::W64;
    let layout = ChunkLayout::new(width);
    let lwe_key = client.glwe.as_lwe_secret_key();
    let mut rng = Keys(7);
    let (mut normalised, mut samples, mut worst) = (0f64, 0usize, 0f64);
    for _ in 0..40 {
        let k = le(rng.next(), width);
        // Queries close to the key too, so small and large distances both occur.
        let q = match rng.next() % 3 {
            0 => k.clone(),
            1 => le(
                u64::from_le_bytes(k.clone().try_into().unwrap()) ^ rng.next() & rng.next(),
                width,
            ),
            _ => le(rng.next(), width),
        };
        let rows = RowLayout::new(width, Width::W8);
        let row = client.leveled_row(rows, Some((&k, &[0]))).unwrap();
        let stored = decode_row(&row, server.key_id, rows).unwrap().key;
        let query = wire::encode_query(
            server.key_id,
            layout,
            &encrypt_query(&client.glwe, layout, &q),
        )
        .unwrap();
        let query = decode_query(&query, server.key_id, layout).unwrap();
        for (c, lwe) in chunk_distances(&stored, &query).iter().enumerate() {
            let d = hamming(layout, &k, &q, c);
            let plain = decrypt_lwe_ciphertext(&lwe_key, lwe).0;
            let error = plain.wrapping_sub(d << DELTA_LOG) as i64 as f64 / 2f64.powi(64);
            let decoded = plain.wrapping_add(1 << (DELTA_LOG - 1)) >> DELTA_LOG;
            assert_eq!(decoded, d, "chunk {c}");
            let ones: u64 = layout.chunk(c).map(|b| bit(&q, b)).sum();
            let norm2 = layout.chunk(c).len() as f64 + (ones * ones) as f64;
            let ratio = error * error / model.distance_for(norm2);
            normalised += ratio;
            worst = f64::max(worst, ratio);
            samples += 1;
        }
    }
    let mean = normalised / samples as f64;
    println!(
        "leveled chunk distances: {samples} samples, measured/predicted variance {mean:.3} \
         (largest single sample {worst:.2}); predicted worst chunk 2^{:.1}, one PBS output \
         2^{:.1}",
        model.distance().log2(),
        model.pbs.log2()
    );
    assert!(mean <= 2.0, "measured noise {mean} x the formula");
}

fn forged_query(layout: ChunkLayout, query: LeveledQuery) -> Vec<u8> {
    let mut payload = Vec::new();
    safe_serialize(&query, &mut payload, wire::limits::QUERY).unwrap();
    Envelope::encode(
        Kind::LeveledQueryKey,
        layout.width.bits() as u16,
        test_keys().1.key_id,
        &payload,
    )
}

/// Hostile query keys and stored keys get a clear error, never a panic: wrong kind,
/// key_id or width, truncated or oversized payloads, forged chunk counts and GGSW sizes,
/// a stored GLWE with the wrong number of bodies.
#[test]
fn hostile_leveled_inputs_are_refused_with_a_clear_error() {
    let (client, server) = test_keys();
    let rows = RowLayout::new(Width::W64, Width::W64);
    let layout = rows.key;
    let key = le(42, Width::W64);
    let query = client.leveled_query_key(layout, &key).unwrap();
    let row = client.leveled_row(rows, Some((&key, &key))).unwrap();
    let other = KeyId([9; 16]);

    let refused = |r: Result<Vec<_>, FheKvError>| r.map(|_| ()).unwrap_err().to_string();
    let row_refused = |r: Result<StoredSlot, FheKvError>| r.map(|_| ()).unwrap_err().to_string();

    assert!(refused(decode_query(&row, server.key_id, layout)).contains("leveled_query_key"));
    assert!(row_refused(decode_row(&query, server.key_id, rows)).contains("leveled_row"));
    let e = refused(decode_query(&query, other, layout));
    assert!(e.contains("key"), "{e}");
    let e = refused(decode_query(
        &query,
        server.key_id,
        ChunkLayout::new(Width::W32),
    ));
    assert!(e.contains("32") && e.contains("64"), "{e}");
    let e = refused(decode_query(
        &query[..query.len() - 100],
        server.key_id,
        layout,
    ));
    assert!(!e.is_empty());
    let e = row_refused(decode_row(&row[..row.len() / 2], server.key_id, rows));
    assert!(!e.is_empty());
    assert!(decode_query(&query[..10], server.key_id, layout).is_err());

    // A forged chunk count and a forged GGSW size, under a correct header.
    let mut genuine = encrypt_query(&client.glwe, layout, &key);
    genuine.chunks.pop();
    let e = refused(decode_query(
        &forged_query(layout, genuine),
        server.key_id,
        layout,
    ));
    assert!(e.contains("5 GGSWs"), "{e}");
    let mut genuine = encrypt_query(&client.glwe, layout, &key);
    genuine.chunks[2].data.truncate(params::selector_len() - 1);
    let e = refused(decode_query(
        &forged_query(layout, genuine),
        server.key_id,
        layout,
    ));
    assert!(e.contains("GGSWs"), "{e}");
    // An oversized payload is refused before it is decoded.
    let big = Envelope::encode(
        Kind::LeveledQueryKey,
        64,
        server.key_id,
        &vec![0u8; wire::limits::QUERY as usize + 1],
    );
    let e = refused(decode_query(&big, server.key_id, layout));
    assert!(e.contains("too large") || e.contains("limit"), "{e}");

    // A row of a u8/u8 table presented as a u64/u64 table's: the header's key width is
    // caught first; with the header forged, the GLWE shapes are; a row of a u64/u32 table
    // (one value GLWE) has the right key but the wrong value width.
    let small = RowLayout::new(Width::W8, Width::W8);
    let row8 = client.leveled_row(small, Some((&[7], &[7]))).unwrap();
    let e = row_refused(decode_row(&row8, server.key_id, rows));
    assert!(e.contains("8") && e.contains("64"), "{e}");
    let env = Envelope::parse(&row8, "row").unwrap();
    let forged = Envelope::encode(Kind::LeveledRow, 64, server.key_id, env.payload);
    let e = row_refused(decode_row(&forged, server.key_id, rows));
    assert!(e.contains("value GLWEs"), "{e}");
    // Forged body counts under a correct header: a key GLWE one body short, a value GLWE
    // one body long.
    let forge = |change: &dyn Fn(&mut LeveledRow)| {
        let env = Envelope::parse(&row, "row").unwrap();
        let mut decoded: LeveledRow = safe_deserialize(env.payload, wire::limits::ROW).unwrap();
        change(&mut decoded);
        let mut payload = Vec::new();
        safe_serialize(&decoded, &mut payload, wire::limits::ROW).unwrap();
        Envelope::encode(Kind::LeveledRow, 64, server.key_id, &payload)
    };
    let short_key = forge(&|r| {
        owner_parts(r).0.bodies.pop();
    });
    let e = row_refused(decode_row(&short_key, server.key_id, rows));
    assert!(e.contains("65 bodies"), "{e}");
    let long_value = forge(&|r| owner_parts(r).1[1].bodies.push(0));
    assert!(row_refused(decode_row(&long_value, server.key_id, rows)).contains("value GLWEs"));
    let narrow = RowLayout::new(Width::W64, Width::W32);
    let row32 = client
        .leveled_row(narrow, Some((&key, &[1, 2, 3, 4])))
        .unwrap();
    assert!(decode_row(&row32, server.key_id, rows).is_err());
    assert!(client.leveled_row(rows, Some((&key, &[1, 2, 3]))).is_err());

    // A query of the wrong chunk count never reaches the kernel's arithmetic.
    let luts = EqualityLuts::new(&server.sks);
    let stored = decode_row(&row, server.key_id, rows).unwrap();
    let q8 = decode_query(
        &client.leveled_query_key(small.key, &[7]).unwrap(),
        server.key_id,
        small.key,
    )
    .unwrap();
    assert!(leveled_match(&server.sks, &luts, layout, &stored, &q8).is_err());
}

/// The answer's measured noise against [`crate::noise::LeveledGetNoise`]: every nibble and
/// the found flag of two GETs over 8 slots (34 samples), each error normalised by the
/// predicted variance of a sum of 8 slots, average at most 2.5.
#[test]
fn measured_answer_noise_stays_within_the_formula() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W64);
    let per_slot = crate::noise::LeveledGetNoise::new().per_slot;
    let slots: Vec<StoredSlot> = (0..8u64)
        .map(|i| slot(rows, Some((100 + i, 0x0123_4567_89AB_CDEF ^ (i << 60)))))
        .collect();
    let lwe_key = client.glwe.as_lwe_secret_key();
    let (mut normalised, mut samples) = (0f64, 0usize);
    for (key, value) in [(103u64, 0x0123_4567_89AB_CDEF ^ (3 << 60)), (999, 0)] {
        let q = client
            .leveled_query_key(rows.key, &le(key, Width::W64))
            .unwrap();
        let q = decode_query(&q, server.key_id, rows.key).unwrap();
        let answer = leveled_get(server, &luts, rows, &slots, &q).unwrap();
        let found = u64::from(value != 0);
        let expected = std::iter::once(found).chain((0..16).map(|j| (value >> (4 * j)) & 15));
        for (lwe, m) in std::iter::once(&answer.found)
            .chain(&answer.nibbles)
            .zip(expected)
        {
            let plain = decrypt_lwe_ciphertext(&lwe_key, lwe).0;
            let error = plain.wrapping_sub(m << DELTA_LOG) as i64 as f64 / 2f64.powi(64);
            normalised += error * error / (8.0 * per_slot);
            samples += 1;
        }
    }
    let mean = normalised / samples as f64;
    println!("leveled GET answers: {samples} samples, measured/predicted variance {mean:.3}");
    assert!(mean <= 2.5, "measured noise {mean} x the formula");
}

/// A u64/u64 row the key owner writes stays within 16 KB: every mask is a seed, the key's
/// bodies keep 32 bits and the value's 16. Two encryptions of the same entry share no
/// seed.
#[test]
fn an_owner_written_u64_row_fits_in_16_kb() {
    let (client, _) = test_keys();
    let rows = RowLayout::new(Width::W64, Width::W64);
    let (k, v) = (le(5, Width::W64), le(6, Width::W64));
    let row = client.leveled_row(rows, Some((&k, &v))).unwrap();
    let again = client.leveled_row(rows, Some((&k, &v))).unwrap();
    println!("a u64/u64 leveled row: {} bytes", row.len());
    // 65 key bodies of 4 bytes, 2 x 2048 value bodies of 2 bytes and the flag's body of
    // 3 bytes are 8,455 bytes; four seeds, lengths and the envelope add under 250.
    assert!((8_455..8_705).contains(&row.len()), "{}", row.len());
    assert!(row.len() <= 16 * 1024);
    let seeds = |bytes: &[u8]| {
        let env = Envelope::parse(bytes, "row").unwrap();
        let mut r: LeveledRow = safe_deserialize(env.payload, wire::limits::ROW).unwrap();
        let vacant = r.vacant.seed;
        let (key, values) = owner_parts(&mut r);
        std::iter::once(key.seed)
            .chain(values.iter().map(|g| g.seed))
            .chain(vacant)
            .collect::<Vec<_>>()
    };
    let (a, b) = (seeds(&row), seeds(&again));
    assert!(a.iter().all(|s| !b.contains(s)));
    assert!(a.iter().enumerate().all(|(i, s)| !a[i + 1..].contains(s)));
}

/// A private DELETE over a few slots: the key's slot turns vacant and every other entry
/// stays readable; deleting again, or deleting an absent key, changes nothing; every row
/// is rewritten, and a rewritten u64/u64 row stays within 16 KB.
#[test]
fn leveled_delete_vacates_the_matching_slot_only_and_is_idempotent() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W64);
    let row = |entry: Option<(u64, u64)>| owner_row(rows, entry);
    let query = |key: u64| query64(rows.key, key);
    let get = |table: &[Vec<u8>], key: u64| {
        let slots = decode_all(rows, table);
        let answer = leveled_get(server, &luts, rows, &slots, &query(key)).unwrap();
        client
            .open_leveled_answer(rows, &answer)
            .unwrap()
            .map(|v| u64::from_le_bytes(v.try_into().unwrap()))
    };
    // The new rows, after checking the status says whether the key was there.
    let delete = |table: &[Vec<u8>], key: u64, was_there: bool| {
        let out =
            leveled_delete(&server.sks, &luts, server.key_id, rows, table, &query(key)).unwrap();
        assert_eq!(client.open_leveled_flag(&out.status).unwrap(), was_there);
        out.rows
    };
    let table = vec![row(Some((7, 70))), row(None), row(Some((8, 80)))];

    let after = delete(&table, 7, true);
    assert_eq!(after.len(), table.len());
    for (old, new) in table.iter().zip(&after) {
        assert_ne!(old, new, "every row is rewritten");
        assert!(new.len() <= 16 * 1024, "{} bytes", new.len());
    }
    println!(
        "a u64/u64 row rewritten by a DELETE: {} bytes",
        after[0].len()
    );
    assert_eq!(get(&after, 7), None);
    assert_eq!(get(&after, 8), Some(80));

    // Again (the key is gone now), and an absent key: same answers, the rows still decode.
    let again = delete(&after, 7, false);
    let absent = delete(&again, 9, false);
    assert_eq!(get(&absent, 7), None);
    assert_eq!(get(&absent, 8), Some(80));
    assert_eq!(
        get(&absent, 0),
        None,
        "the vacant slot (sealed with key 0) stays vacant"
    );

    // A hostile row among the inputs is refused with a clear error.
    let mut hostile = absent.clone();
    let cut = hostile[1].len() - 5;
    hostile[1].truncate(cut);
    let e = leveled_delete(&server.sks, &luts, server.key_id, rows, &hostile, &query(8))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("leveled row"), "{e}");
}

/// The two-round leveled GET: round 1 gives the matching slot's index (or a miss), round
/// 2 fetches that slot's value; a deleted key is a miss; a fetch query with the wrong
/// number of index bits is refused.
#[test]
fn leveled_two_round_get_locates_and_fetches_the_matching_slot() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W32);
    let entries = [
        Some((3u64, 30u64)),
        None,
        Some((4, 40)),
        Some((5, 0xDEAD_BEEF)),
        None,
    ];
    let table = owner_table(rows, &entries);
    let query = |key: u64| query64(rows.key, key);
    let decode = |table: &[Vec<u8>]| decode_all(rows, table);
    let slots = decode(&table);
    let get = |slots: &[StoredSlot], key: u64| {
        // Every message crosses the wire: round 1's answer, round 2's query and answer.
        let location = leveled_locate(&server.sks, &luts, rows, slots, &query(key)).unwrap();
        assert_eq!(location.index_bits.len(), 3);
        // The table state (here 41) goes out with round 1 and comes back with round 2.
        let location = location.encode(server.key_id, slots.len(), 41).unwrap();
        let (location, state) =
            LeveledLocation::decode(&location, server.key_id, slots.len()).unwrap();
        assert_eq!(state, 41);
        let at = client.open_leveled_location(&location).unwrap();
        // after a miss the key owner still fetches (here: slot 0)
        let fetch = client
            .leveled_fetch_query(at.unwrap_or(0), slots.len(), state)
            .unwrap();
        let fetch = decode_fetch_query(&fetch, server.key_id, slots.len()).unwrap();
        assert_eq!(fetch.state, 41);
        let fetched = leveled_fetch(rows, slots, &fetch.index).unwrap();
        let fetched = encode_fetch_result(server.key_id, rows, &fetched).unwrap();
        let fetched = decode_fetch_result(&fetched, server.key_id, rows).unwrap();
        let value = client.open_leveled_fetch(rows, &fetched).unwrap();
        at.map(|i| (i, u32::from_le_bytes(value.try_into().unwrap())))
    };
    assert_eq!(get(&slots, 5), Some((3, 0xDEAD_BEEF)));
    assert_eq!(get(&slots, 3), Some((0, 30)));
    assert_eq!(get(&slots, 4), Some((2, 40)));
    assert_eq!(get(&slots, 6), None);
    assert_eq!(get(&slots, 0), None, "vacant slots never match");

    let deleted = leveled_delete(&server.sks, &luts, server.key_id, rows, &table, &query(4))
        .unwrap()
        .rows;
    let after = decode(&deleted);
    assert_eq!(get(&after, 4), None);
    assert_eq!(get(&after, 5), Some((3, 0xDEAD_BEEF)));

    // A query for a table of 4 slots: refused by its header, and by the kernel.
    let two_bits = client.leveled_fetch_query(1, 4, 0).unwrap();
    let e = decode_fetch_query(&two_bits, server.key_id, 8)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("leveled fetch query"), "{e}");
    let two_bits = decode_fetch_query(&two_bits, server.key_id, 4).unwrap();
    assert!(leveled_fetch(rows, &slots, &two_bits.index).is_err());
    assert!(client.leveled_fetch_query(5, 5, 0).is_err());
}

/// The noise of what this format adds beyond the one-round GET, measured against the
/// formulas: the vacant flags a DELETE rewrites (24 samples: three DELETEs over 8 slots,
/// against `LeveledEqualityNoise::flag`) and every coefficient of two value GLWEs fetched
/// by a 3-level CMux tree (4,096 samples, against `LeveledGetNoise::fetched(3)`). Each
/// mean of normalised squared errors must be at most 3 (flags) and 2 (fetch).
#[test]
fn measured_delete_and_fetch_noise_stays_within_the_formulas() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W64);
    let value = |i: u64| 0x0123_4567_89AB_CDEF ^ (i << 56);
    let mut table: Vec<Vec<u8>> = (0..8u64)
        .map(|i| {
            let (k, v) = (le(100 + i, Width::W64), le(value(i), Width::W64));
            client.leveled_row(rows, Some((&k, &v))).unwrap()
        })
        .collect();
    let lwe_key = client.glwe.as_lwe_secret_key();
    let torus_error = |plain: u64, expected: u64| {
        plain.wrapping_sub(expected << DELTA_LOG) as i64 as f64 / 2f64.powi(64)
    };

    let flag = LeveledEqualityNoise::worst_case().flag;
    let mut vacated = [false; 8];
    let (mut normalised, mut samples) = (0f64, 0usize);
    for key in [102u64, 105, 999] {
        let q = client
            .leveled_query_key(rows.key, &le(key, Width::W64))
            .unwrap();
        let q = decode_query(&q, server.key_id, rows.key).unwrap();
        table = leveled_delete(&server.sks, &luts, server.key_id, rows, &table, &q)
            .unwrap()
            .rows;
        if let Some(i) = key.checked_sub(100).filter(|&i| i < 8) {
            vacated[i as usize] = true;
        }
        for (row, &gone) in table.iter().zip(&vacated) {
            let slot = decode_row(row, server.key_id, rows).unwrap();
            let plain = decrypt_lwe_ciphertext(&lwe_key, &slot.vacant).0;
            let error = torus_error(plain, u64::from(gone));
            normalised += error * error / flag;
            samples += 1;
        }
    }
    let flags_mean = normalised / samples as f64;

    let noise = crate::noise::LeveledGetNoise::new();
    let slots = decode_all(rows, &table);
    let selectors = client.leveled_fetch_query(3, 8, 0).unwrap();
    let selectors = decode_fetch_query(&selectors, server.key_id, 8).unwrap();
    let fetched = leveled_fetch(rows, &slots, &selectors.index).unwrap();
    let (mut normalised, mut samples) = (0f64, 0usize);
    for (g, glwe) in fetched.iter().enumerate() {
        for error in value_glwe_errors(glwe, value(3), g) {
            normalised += error * error / noise.fetched(3);
            samples += 1;
        }
    }
    let fetch_mean = normalised / samples as f64;
    println!(
        "rewritten flags: {} samples, measured/predicted variance {flags_mean:.3}; fetched \
         GLWEs: {samples} samples, {fetch_mean:.3}",
        3 * 8
    );
    assert!(flags_mean <= 3.0, "flags: {flags_mean} x the formula");
    assert!(fetch_mean <= 2.0, "fetch: {fetch_mean} x the formula");
}

/// Round 1 of a leveled SET: the key's slot when present (wherever the vacant slots are),
/// else the first vacant slot (also behind a flag a DELETE rewrote, and at the very end of
/// the chain), else full. Every returned sample's noise is measured against its own
/// prediction: a match-index bit sums a PBS output per slot whose index has the bit set;
/// a first-vacant-index bit telescopes to the chain outputs `p_s` where the bit changes
/// (`bit_j(s) ≠ bit_j(s + 1)`); "any vacant" is one PBS output. The mean of the
/// normalised squared errors must be at most 2.5.
#[test]
fn leveled_set_locate_finds_the_key_or_the_first_vacant_slot() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W16);
    let pbs = LeveledEqualityNoise::worst_case().pbs;
    let lwe_key = client.glwe.as_lwe_secret_key();
    let row = |entry: Option<u64>| owner_row(rows, entry.map(|k| (k, k & 0xFFFF)));
    let query = |key: u64| query64(rows.key, key);
    let decode = |table: &[Vec<u8>]| decode_all(rows, table);
    let (mut normalised, mut samples) = (0f64, 0usize);
    let mut locate = |table: &[Vec<u8>], key: u64| {
        let slots = decode(table);
        let s_count = slots.len();
        let location = leveled_set_locate(&server.sks, &luts, rows, &slots, &query(key)).unwrap();
        let target = client.open_leveled_set_location(&location).unwrap();
        // What every sample should hold, and how many PBS outputs its noise sums.
        let bit = |s: usize, j: usize| s < s_count && (s >> j) & 1 == 1;
        let (found, at) = match target {
            LeveledSetTarget::Update(i) => (1, Some(i)),
            _ => (0, None),
        };
        let first_vacant = match target {
            LeveledSetTarget::Insert(i) => Some(i),
            LeveledSetTarget::Update(_) => {
                // still computed: the first slot whose flag decrypts to 1
                (0..s_count).find(|&s| {
                    client
                        .open_leveled_flag(&slots[s].vacant)
                        .expect("a stored flag")
                })
            }
            LeveledSetTarget::Full => None,
        };
        let mut expect = vec![
            (&location.key.found, found, s_count),
            (&location.any_vacant, u64::from(first_vacant.is_some()), 1),
        ];
        for j in 0..location.key.index_bits.len() {
            let set = (0..s_count).filter(|&s| bit(s, j)).count();
            let changes = (0..s_count).filter(|&s| bit(s, j) != bit(s + 1, j)).count();
            let index_bit = |i: Option<usize>| u64::from(i.is_some_and(|i| bit(i, j)));
            expect.push((&location.key.index_bits[j], index_bit(at), set));
            expect.push((&location.vacant_bits[j], index_bit(first_vacant), changes));
        }
        for (lwe, m, outputs) in expect {
            let plain = decrypt_lwe_ciphertext(&lwe_key, lwe).0;
            let error = plain.wrapping_sub(m << DELTA_LOG) as i64 as f64 / 2f64.powi(64);
            normalised += error * error / (outputs.max(1) as f64 * pbs);
            samples += 1;
        }
        target
    };

    let keys = [
        Some(10),
        Some(11),
        None,
        Some(13),
        None,
        Some(15),
        Some(16),
        Some(17),
    ];
    let table: Vec<Vec<u8>> = keys.iter().map(|&k| row(k)).collect();
    assert_eq!(locate(&table, 13), LeveledSetTarget::Update(3));
    assert_eq!(locate(&table, 17), LeveledSetTarget::Update(7));
    assert_eq!(locate(&table, 99), LeveledSetTarget::Insert(2));
    assert_eq!(
        locate(&table, 0),
        LeveledSetTarget::Insert(2),
        "vacant slots never match"
    );

    // A slot a DELETE vacated (its flag a PBS output) is the first vacant one now.
    let deleted = leveled_delete(&server.sks, &luts, server.key_id, rows, &table, &query(11))
        .unwrap()
        .rows;
    assert_eq!(locate(&deleted, 99), LeveledSetTarget::Insert(1));

    // Full, and vacant only at the end of the chain.
    let full: Vec<Vec<u8>> = (0..8).map(|k| row(Some(20 + k))).collect();
    assert_eq!(locate(&full, 99), LeveledSetTarget::Full);
    assert_eq!(locate(&full, 20), LeveledSetTarget::Update(0));
    let mut last_vacant = full.clone();
    last_vacant[7] = row(None);
    assert_eq!(locate(&last_vacant, 27), LeveledSetTarget::Insert(7));
    // An empty table of 3 slots: the first slot.
    let empty: Vec<Vec<u8>> = (0..3).map(|_| row(None)).collect();
    assert_eq!(locate(&empty, 5), LeveledSetTarget::Insert(0));

    let mean = normalised / samples as f64;
    println!("leveled SET locate: {samples} samples, measured/predicted variance {mean:.3}");
    assert!(mean <= 2.5, "measured noise {mean} x the formula");
}

/// Every kernel whose answer sums one term per slot without a bootstrap refuses more
/// slots than the noise bound allows, before any PBS and with a clear error: GET, the
/// locate of the two-round GET, the SET's locate and DELETE (whose status is such a sum).
#[test]
fn leveled_answers_refuse_more_slots_than_the_noise_bound() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W16, Width::W16);
    let max = crate::noise::LeveledGetNoise::new().max_slots();
    let row = client.leveled_row(rows, None).unwrap();
    let table = vec![row; max + 1];
    let slots = decode_all(rows, &table);
    let q = client
        .leveled_query_key(rows.key, &le(1, Width::W16))
        .unwrap();
    let q = decode_query(&q, server.key_id, rows.key).unwrap();
    let over = format!("at most {max} slots ({} given)", max + 1);
    let errors = [
        leveled_get(server, &luts, rows, &slots, &q).map(|_| ()),
        leveled_locate(&server.sks, &luts, rows, &slots, &q).map(|_| ()),
        leveled_set_locate(&server.sks, &luts, rows, &slots, &q).map(|_| ()),
        leveled_delete(&server.sks, &luts, server.key_id, rows, &table, &q).map(|_| ()),
    ];
    for e in errors {
        let e = e.unwrap_err().to_string();
        assert!(e.contains(&over), "{e}");
    }
}

/// The errors (torus scale) of every coefficient of value GLWE `g` of a slot holding
/// `value`, in the lookup-table layout: coefficient `t` lies on nibble `j`'s plateau
/// (the middle `box` of its `2 box`) or holds 0.
fn value_glwe_errors(glwe: &GlweCiphertextOwned<u64>, value: u64, g: usize) -> Vec<f64> {
    let (client, _) = test_keys();
    let n = params::coefficients();
    let block = n / crate::params::BLOCK_SPACE as usize;
    let mut plain = PlaintextList::new(0u64, PlaintextCount(n));
    decrypt_glwe_ciphertext(&client.glwe, glwe, &mut plain);
    plain
        .as_ref()
        .iter()
        .enumerate()
        .map(|(t, &p)| {
            let j = t / (2 * block);
            let on_plateau = (t % (2 * block)) >= block / 2 && (t % (2 * block)) < 3 * block / 2;
            let nibble = (value >> (4 * (8 * g + j))) & 15;
            let expected = if on_plateau { nibble } else { 0 };
            p.wrapping_sub(expected << DELTA_LOG) as i64 as f64 / 2f64.powi(64)
        })
        .collect()
}

/// A SET's write carries the vacant flag, an LWE sample, as the constant coefficient of
/// a GLWE: embedding it and extracting coefficient 0 gives back the very same sample.
#[test]
fn a_flag_embedded_in_a_glwe_extracts_to_the_same_sample() {
    let (client, server) = test_keys();
    let rows = RowLayout::new(Width::W16, Width::W16);
    for entry in [None, Some((le(1, Width::W16), le(2, Width::W16)))] {
        let bytes = client
            .leveled_row(
                rows,
                entry.as_ref().map(|(k, v)| (k.as_slice(), v.as_slice())),
            )
            .unwrap();
        let flag = decode_row(&bytes, server.key_id, rows).unwrap().vacant;
        let mut back = LweCiphertext::new(
            0u64,
            params::lwe_dimension().to_lwe_size(),
            params::ciphertext_modulus(),
        );
        extract_lwe_sample_from_glwe_ciphertext(
            &embed_constant(&flag),
            &mut back,
            MonomialDegree(0),
        );
        assert_eq!(back.as_ref(), flag.as_ref());
    }
}

/// A GLWE a SET computed is stored whole at 32 bits per coefficient: decrypting it after
/// storage differs from decrypting it before by the modulus switch's error, measured
/// against `LeveledGetNoise::computed_rounding` (within 15%). The samples are
/// coefficients 0 and `N/2` of 1,024 GLWEs with uniform masks: the errors of one GLWE's
/// coefficients are correlated (a binary key has mean 1/2, so the rounded mask's sum
/// weighs on neighbouring coefficients alike), those two are not.
#[test]
fn a_computed_glwe_stored_at_32_bits_adds_the_modulus_switch_variance() {
    let (client, _) = test_keys();
    let predicted = crate::noise::LeveledGetNoise::new().computed_rounding;
    let n = params::coefficients();
    let mut random = Keys(0x5107_ED32);
    let (mut normalised, mut samples) = (0f64, 0usize);
    let (mut before, mut after) = (
        PlaintextList::new(0u64, PlaintextCount(n)),
        PlaintextList::new(0u64, PlaintextCount(n)),
    );
    for _ in 0..1024 {
        let coefficients = (0..params::glwe_size().0 * n)
            .map(|_| random.next())
            .collect();
        let glwe = GlweCiphertext::from_container(
            coefficients,
            params::polynomial_size(),
            params::ciphertext_modulus(),
        );
        let back = ComputedGlwe::round(&glwe, n).expand();
        decrypt_glwe_ciphertext(&client.glwe, &glwe, &mut before);
        decrypt_glwe_ciphertext(&client.glwe, &back, &mut after);
        for t in [0, n / 2] {
            let error =
                after.as_ref()[t].wrapping_sub(before.as_ref()[t]) as i64 as f64 / 2f64.powi(64);
            normalised += error * error / predicted;
            samples += 1;
        }
    }
    let mean = normalised / samples as f64;
    println!(
        "a computed GLWE stored at 32 bits: measured/predicted variance {mean:.3} over \
         {samples} coefficients (2^{:.2})",
        predicted.log2()
    );
    assert!((0.85..1.15).contains(&mean), "{mean}");
}

/// The two-round leveled SET on stored rows: an insert lands in the first vacant slot, an
/// update in the key's slot, a full table is left as it was (and the key owner learns
/// it); every other entry stays readable, and the written flags steer the next insert.
/// Every SET stores every row whole at 32 bits, and a DELETE on such rows frees a slot
/// the next insert takes. The written slot's value GLWE and what a SET adds to an
/// unwritten slot, both as stored, are measured against `LeveledGetNoise::written` and
/// `per_set_elsewhere` (means of normalised squared errors at most 2).
#[test]
fn leveled_two_round_set_inserts_updates_and_leaves_a_full_table_alone() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W16);
    let noise = crate::noise::LeveledGetNoise::new();
    let set = |table: &mut Vec<Vec<u8>>, key: u64, value: u64| {
        let (target, state) = two_round_set(rows, table, key, value, 7);
        assert_eq!(state, 7, "the table state comes back with round 2");
        target
    };
    let get = |table: &[Vec<u8>], key: u64| wire_get(rows, table, key);
    let keys = [
        Some(10u64),
        Some(11),
        None,
        Some(13),
        None,
        Some(15),
        Some(16),
        Some(17),
    ];
    let entries: Vec<_> = keys.iter().map(|k| k.map(|k| (k, 3 * k))).collect();
    let mut table = owner_table(rows, &entries);

    let before = decode_all(rows, &table).remove(0).values.remove(0);
    assert_eq!(set(&mut table, 99, 0x9999), LeveledSetTarget::Insert(2));
    let slots = decode_all(rows, &table);
    let written = value_glwe_errors(&slots[2].values[0], 0x9999, 0);
    let mut change = slots[0].values[0].clone();
    glwe_ciphertext_sub_assign(&mut change, &before);
    let elsewhere = value_glwe_errors(&change, 0, 0);
    let mean = |errors: &[f64], variance: f64| {
        errors.iter().map(|e| e * e / variance).sum::<f64>() / errors.len() as f64
    };
    let (written, elsewhere) = (
        mean(&written, noise.written(3)),
        mean(&elsewhere, noise.per_set_elsewhere(3)),
    );
    println!(
        "leveled SET: written value GLWE {written:.3}, the encryption of 0 added elsewhere \
         {elsewhere:.3} (measured/predicted variance, 2048 samples each; per level \
         2^{:.1}, stored value 2^{:.1}, storage 2^{:.1})",
        noise.per_level.log2(),
        noise.stored_value.log2(),
        noise.computed_rounding.log2()
    );
    assert!(written <= 2.0, "written slot: {written} x the formula");
    assert!(
        elsewhere <= 2.0,
        "unwritten slot: {elsewhere} x the formula"
    );
    // Every row is stored whole now: the key GLWE's mask and 65 bodies, one value GLWE
    // (2 x 2048 coefficients), all of 4 bytes, and the flag's 2049 coefficients of 3.
    for row in &table {
        let whole = (2048 + 65) * 4 + 2 * 2048 * 4 + 2049 * 3;
        assert!((whole..whole + 200).contains(&row.len()), "{}", row.len());
    }
    println!("a u64/u16 row a SET wrote: {} bytes", table[0].len());

    assert_eq!(get(&table, 99), Some(0x9999));
    assert_eq!(get(&table, 13), Some(39));
    assert_eq!(get(&table, 10), Some(30));

    assert_eq!(set(&mut table, 13, 0x1313), LeveledSetTarget::Update(3));
    assert_eq!(get(&table, 13), Some(0x1313));
    assert_eq!(get(&table, 99), Some(0x9999));

    // The insert above marked slot 2 occupied: the next one goes to slot 4, then full.
    assert_eq!(set(&mut table, 100, 0x100), LeveledSetTarget::Insert(4));
    assert_eq!(set(&mut table, 101, 0x101), LeveledSetTarget::Full);
    assert_eq!(get(&table, 101), None);
    for (key, value) in [
        (10, 30),
        (11, 33),
        (99, 0x9999),
        (13, 0x1313),
        (100, 0x100),
        (17, 51),
    ] {
        assert_eq!(get(&table, key), Some(value), "key {key}");
    }
    // An update of a full table still works.
    assert_eq!(set(&mut table, 17, 0x1717), LeveledSetTarget::Update(7));
    assert_eq!(get(&table, 17), Some(0x1717));

    // A DELETE on rows a SET wrote frees the slot, and the next insert takes it.
    let out = leveled_delete(
        &server.sks,
        &luts,
        server.key_id,
        rows,
        &table,
        &query64(rows.key, 13),
    )
    .unwrap();
    let status = encode_status(server.key_id, &out.status).unwrap();
    let status = decode_status(&status, server.key_id).unwrap();
    assert!(client.open_leveled_flag(&status).unwrap());
    table = out.rows;
    assert_eq!(get(&table, 13), None);
    assert_eq!(set(&mut table, 102, 0x102), LeveledSetTarget::Insert(3));
    assert_eq!(get(&table, 102), Some(0x102));
    assert_eq!(get(&table, 99), Some(0x9999));

    // A server-written row with a forged mask length is refused, and so is the whole
    // write: nothing is returned for the caller to store.
    let forged = {
        let env = Envelope::parse(&table[1], "row").unwrap();
        let mut r: LeveledRow = safe_deserialize(env.payload, wire::limits::ROW).unwrap();
        match &mut r.glwes {
            RowGlwes::Server { key, .. } => {
                key.coefficients.remove(0);
            }
            RowGlwes::Owner { .. } => panic!("a SET stores the rows it computed whole"),
        }
        let mut payload = Vec::new();
        safe_serialize(&r, &mut payload, wire::limits::ROW).unwrap();
        Envelope::encode(Kind::LeveledRow, 64, server.key_id, &payload)
    };
    let e = decode_row(&forged, server.key_id, rows)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("masks of 2048 coefficients"), "{e}");
    let mut hostile = table.clone();
    hostile[1] = forged;
    let write = client
        .leveled_set_write_query(
            rows,
            LeveledSetTarget::Insert(4),
            8,
            (&le(5, Width::W64), &le(5, Width::W16)),
            0,
        )
        .unwrap();
    let write = decode_set_write(&write, server.key_id, 8).unwrap();
    assert!(leveled_set_write_rows(server.key_id, rows, &hostile, &write).is_err());

    let two_bits = client.leveled_fetch_query(1, 4, 0).unwrap();
    let two_bits = decode_fetch_query(&two_bits, server.key_id, 4)
        .unwrap()
        .index;
    let mut slots = decode_all(rows, &table);
    let new = slot(rows, Some((5, 5)));
    let e = leveled_set_write(rows, &mut slots, &two_bits, &two_bits[0], &new)
        .unwrap_err()
        .to_string();
    assert!(e.contains("index bits"), "{e}");
}

/// The messages between rounds are decoded like any untrusted input, on either side: a
/// message of another kind, key or table size is refused by its header; forged shapes
/// under a correct header (a sample missing or one byte short, a GGSW one coefficient
/// short, a GLWE missing, a row over the size limit) by the conformance check; nothing
/// panics. (No PBS: the samples are trivial encryptions.)
#[test]
fn hostile_leveled_messages_are_refused_with_a_clear_error() {
    use super::messages::{self, LeveledSamples, LeveledSelectors, LeveledSetWrite};
    let (client, server) = test_keys();
    let key_id = server.key_id;
    let other = KeyId([7; 16]);
    let rows = RowLayout::new(Width::W64, Width::W16);
    let err = |r: Result<(), FheKvError>| r.unwrap_err().to_string();
    let sample = || super::get::zero_sum();
    let answer = LeveledAnswer {
        found: sample(),
        nibbles: (0..rows.value_nibbles()).map(|_| sample()).collect(),
    };
    let bytes = answer.encode(key_id, rows).unwrap();
    // 5 samples of 2049 coefficients at 3 bytes.
    assert!(
        bytes.len() > 5 * 6_147 && bytes.len() < 5 * 6_147 + 200,
        "{}",
        bytes.len()
    );
    assert!(LeveledAnswer::decode(&bytes, key_id, rows).is_ok());
    let wider = RowLayout::new(Width::W64, Width::W32);
    let e = err(LeveledAnswer::decode(&bytes, key_id, wider).map(|_| ()));
    assert!(e.contains("16") && e.contains("32"), "{e}");
    let e = err(LeveledAnswer::decode(&bytes, other, rows).map(|_| ()));
    assert!(e.contains("key"), "{e}");
    let e = err(LeveledLocation::decode(&bytes, key_id, 8).map(|_| ()));
    assert!(e.contains("leveled_answer"), "{e}");
    // A round-1 location keeps its table state through the wire.
    let location = LeveledLocation {
        found: sample(),
        index_bits: (0..3).map(|_| sample()).collect(),
    };
    let located = location.encode(key_id, 8, u64::MAX - 3).unwrap();
    assert_eq!(
        LeveledLocation::decode(&located, key_id, 8).unwrap().1,
        u64::MAX - 3
    );
    let e = err(LeveledLocation::decode(&located, key_id, 16).map(|_| ()));
    assert!(e.contains("3 bits") && e.contains("4 bits"), "{e}");

    // Forged payloads under a genuine header.
    let forge_samples = |kind: Kind, bits: u16, change: &dyn Fn(&mut LeveledSamples)| {
        let mut samples = LeveledSamples {
            samples: (0..5).map(|_| wire::pack24(sample().as_ref())).collect(),
        };
        change(&mut samples);
        let mut payload = Vec::new();
        safe_serialize(&samples, &mut payload, messages::limits::SAMPLES).unwrap();
        Envelope::encode(kind, bits, key_id, &payload)
    };
    let short = forge_samples(Kind::LeveledAnswer, 16, &|s| {
        s.samples.pop();
    });
    let e = err(LeveledAnswer::decode(&short, key_id, rows).map(|_| ()));
    assert!(e.contains("5 LWE samples"), "{e}");
    let cut = forge_samples(Kind::LeveledAnswer, 16, &|s| {
        s.samples[2].truncate(6_144);
    });
    assert!(err(LeveledAnswer::decode(&cut, key_id, rows).map(|_| ())).contains("LWE samples"));
    // A SET location of a 4-slot table (2 index bits) needs 6 samples, not 5.
    let location = {
        let located = messages::LeveledLocated {
            state: 0,
            samples: LeveledSamples {
                samples: (0..5).map(|_| wire::pack24(sample().as_ref())).collect(),
            },
        };
        let mut payload = Vec::new();
        safe_serialize(&located, &mut payload, messages::limits::SAMPLES).unwrap();
        Envelope::encode(Kind::LeveledSetLocation, 2, key_id, &payload)
    };
    let e = err(LeveledSetLocation::decode(&location, key_id, 4).map(|_| ()));
    assert!(e.contains("6 LWE samples"), "{e}");
    let status = forge_samples(Kind::LeveledStatus, 1, &|_| {});
    assert!(err(decode_status(&status, key_id).map(|_| ())).contains("1 LWE samples"));

    // A fetch query: the header's index bits, then its GGSWs' shapes.
    let fetch = client.leveled_fetch_query(2, 8, 5).unwrap();
    assert_eq!(decode_fetch_query(&fetch, key_id, 8).unwrap().state, 5);
    assert!(decode_fetch_query(&fetch, key_id, 8).is_ok());
    let e = err(decode_fetch_query(&fetch, key_id, 1024).map(|_| ()));
    assert!(e.contains("leveled fetch query"), "{e}");
    let env = Envelope::parse(&fetch, "fetch").unwrap();
    let mut selectors: LeveledSelectors =
        safe_deserialize(env.payload, messages::limits::SELECTORS).unwrap();
    selectors.bits[1].data.pop();
    let mut payload = Vec::new();
    safe_serialize(&selectors, &mut payload, messages::limits::SELECTORS).unwrap();
    let forged = Envelope::encode(Kind::LeveledFetchQuery, 3, key_id, &payload);
    let e = err(decode_fetch_query(&forged, key_id, 8).map(|_| ()));
    assert!(e.contains("3 GGSWs"), "{e}");

    // A fetch result: GLWE count and shape.
    let glwes = vec![crate::bucket::select::zero_glwe(); rows.value_glwes()];
    let result = encode_fetch_result(key_id, rows, &glwes).unwrap();
    assert!(decode_fetch_result(&result, key_id, rows).is_ok());
    let wide = RowLayout::new(Width::W64, Width::W64);
    let e = err(decode_fetch_result(&result, key_id, wide).map(|_| ()));
    assert!(e.contains("16") && e.contains("64"), "{e}");
    let env = Envelope::parse(&result, "fetch result").unwrap();
    let forged = Envelope::encode(Kind::LeveledFetchResult, 64, key_id, env.payload);
    let e = err(decode_fetch_result(&forged, key_id, wide).map(|_| ()));
    assert!(e.contains("2 GLWEs"), "{e}");

    // A SET write: index GGSW count, the enable GGSW's shape, the row's size.
    let write = client
        .leveled_set_write_query(
            rows,
            LeveledSetTarget::Insert(3),
            8,
            (&le(1, Width::W64), &le(2, Width::W16)),
            9,
        )
        .unwrap();
    assert!(decode_set_write(&write, key_id, 8).is_ok());
    assert!(decode_set_write(&write, key_id, 16).is_err());
    let forge_write = |change: &dyn Fn(&mut LeveledSetWrite)| {
        let env = Envelope::parse(&write, "write").unwrap();
        let mut message: LeveledSetWrite =
            safe_deserialize(env.payload, messages::limits::SET_WRITE).unwrap();
        change(&mut message);
        let mut payload = Vec::new();
        safe_serialize(&message, &mut payload, messages::limits::SET_WRITE).unwrap();
        Envelope::encode(Kind::LeveledSetWrite, 3, key_id, &payload)
    };
    let e =
        err(decode_set_write(&forge_write(&|m| m.enable.data.truncate(10)), key_id, 8).map(|_| ()));
    assert!(e.contains("enable"), "{e}");
    let e = err(decode_set_write(
        &forge_write(&|m| {
            m.index.pop();
        }),
        key_id,
        8,
    )
    .map(|_| ()));
    assert!(e.contains("3 index GGSWs"), "{e}");
    let huge = forge_write(&|m| m.row = vec![0; wire::limits::ROW as usize + 1024]);
    assert!(decode_set_write(&huge, key_id, 8).is_err());
    // A garbled row inside a well-formed message fails at the write, before any result.
    let garbled = decode_set_write(&forge_write(&|m| m.row.truncate(100)), key_id, 8).unwrap();
    let table = vec![client.leveled_row(rows, None).unwrap(); 8];
    let e = leveled_set_write_rows(key_id, rows, &table, &garbled)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("leveled row"), "{e}");
}

/// A batched GET answers several keys in one pass over stored rows, each as a single GET
/// would (a hit, a hit in a slot a DELETE left alone, a deleted key, an absent key); a
/// bad row fails the whole batch.
#[test]
fn leveled_batched_get_answers_every_key_of_the_batch() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::new(Width::W64, Width::W16);
    let entries = [Some((3u64, 30u64)), None, Some((4, 40)), Some((5, 50))];
    let table = owner_table(rows, &entries);
    let table = leveled_delete(
        &server.sks,
        &luts,
        server.key_id,
        rows,
        &table,
        &query64(rows.key, 4),
    )
    .unwrap()
    .rows;
    let keys = [5u64, 3, 4, 9];
    let queries: Vec<_> = keys.iter().map(|&k| query64(rows.key, k)).collect();
    let answers = leveled_get_batch(server, &luts, server.key_id, rows, &table, &queries).unwrap();
    let opened: Vec<Option<u16>> = answers
        .iter()
        .map(|a| {
            client
                .open_leveled_answer(rows, a)
                .unwrap()
                .map(|v| u16::from_le_bytes(v.try_into().unwrap()))
        })
        .collect();
    assert_eq!(opened, vec![Some(50), Some(30), None, None]);

    let mut hostile = table.clone();
    hostile[2].truncate(40);
    let e = leveled_get_batch(server, &luts, server.key_id, rows, &hostile, &queries)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("leveled row"), "{e}");
}

/// The one-GLWE row's one-round GET, its building block ([`super::repack`]): a u64 value
/// stored as 16 single coefficients of the GLWE that holds the key bits is rebuilt into
/// the two lookup-table GLWEs the selection bootstraps with. Every coefficient of the
/// rebuilt tables is measured against `RepackNoise` (16 rows, 65,536 coefficients:
/// measured/predicted within 30%; neighbouring coefficients share 127 of their 128 key
/// terms, so the samples are far fewer independent ones, ~1,000). Then `leveled_get` over
/// those 16 one-GLWE slots answers the right value for a stored key and nothing for an
/// absent one, as over lookup-table rows of the same entries. Prints both GETs' cost
/// per slot next to one KS+PBS (run it alone for figures: docs/leveled.md).
#[test]
fn a_value_stored_as_coefficients_is_rebuilt_into_lookup_tables() {
    use super::repack::{plateau_start, plateau_width, value_tables_from_coefficients};
    let (client, server) = test_keys();
    let packing = server.bucket_packing().unwrap();
    let luts = EqualityLuts::new(&server.sks);
    let noise = crate::noise::RepackNoise::new();
    let row_noise = crate::noise::bucket_fresh_variance();
    let n = params::coefficients();
    let rows = RowLayout::new(Width::W64, Width::W64);
    let one_glwe = RowLayout::one_glwe(Width::W64, Width::W64);
    // Key bits at 0..64, the constant at 64, the nibbles above (`p > B` never meets a
    // query exponent `−b` at degree 0, so the equality is unchanged).
    let positions = one_glwe.nibble_positions();
    assert_eq!(positions, (65..81).collect::<Vec<_>>());
    let mut random = Keys(0xBA5E_7AB1);
    let (mut normalised, mut samples) = (0f64, 0usize);
    let mut entries = Vec::new();
    let mut one_glwe_slots = Vec::new();
    for _ in 0..16 {
        let (key, value) = (random.next(), random.next());
        let mut plain = PlaintextList::new(0u64, PlaintextCount(n));
        for b in 0..64 {
            plain.as_mut()[b] = ((key >> b) & 1) << DELTA_LOG;
        }
        plain.as_mut()[rows.key.one_at()] = 1 << DELTA_LOG;
        for (j, &p) in positions.iter().enumerate() {
            plain.as_mut()[p] = ((value >> (4 * j)) & 15) << DELTA_LOG;
        }
        let row = crate::bucket::client::encrypt_bucket_glwe(&client.glwe, &plain);
        let tables = value_tables_from_coefficients(packing, &row, &positions);
        assert_eq!(tables.len(), 2);
        let mut decrypted = PlaintextList::new(0u64, PlaintextCount(n));
        for (g, table) in tables.iter().enumerate() {
            decrypt_glwe_ciphertext(&client.glwe, table, &mut decrypted);
            for (c, &d) in decrypted.as_ref().iter().enumerate() {
                let window = (0..super::NIBBLES_PER_GLWE)
                    .find(|&j| (plateau_start(j)..plateau_start(j) + plateau_width()).contains(&c));
                let (expected, predicted) = match window {
                    Some(j) => (
                        ((value >> (4 * (8 * g + j))) & 15) << DELTA_LOG,
                        noise.plateau(row_noise),
                    ),
                    None => (0, noise.outside()),
                };
                let error = d.wrapping_sub(expected) as i64 as f64 / 2f64.powi(64);
                normalised += error * error / predicted;
                samples += 1;
            }
        }
        entries.push((key, value));
        // An occupied slot: the vacant flag a trivial 0.
        one_glwe_slots.push(StoredSlot {
            key: row,
            values: Vec::new(),
            vacant: super::get::zero_sum(),
        });
    }
    let mean = normalised / samples as f64;
    println!(
        "rebuilt lookup tables: measured/predicted variance {mean:.3} over {samples} \
         coefficients (plateau 2^{:.1}, a PBS output 2^{:.1})",
        noise.plateau(row_noise).log2(),
        crate::noise::LeveledEqualityNoise::worst_case().pbs.log2()
    );
    assert!((0.7..1.3).contains(&mean), "{mean}");

    let today: Vec<StoredSlot> = entries
        .iter()
        .map(|&(k, v)| slot(rows, Some((k, v))))
        .collect();
    let time = |f: &dyn Fn()| {
        let start = std::time::Instant::now();
        f();
        start.elapsed().as_secs_f64() / entries.len() as f64
    };
    let (mut one_glwe_s, mut today_s) = (0f64, 0f64);
    let absent = entries[0].0 ^ (1 << 40);
    for (key, expected) in [(entries[3].0, Some(entries[3].1)), (absent, None)] {
        let query = query64(rows.key, key);
        let mut answers = Vec::new();
        let start = std::time::Instant::now();
        answers.push(leveled_get(server, &luts, one_glwe, &one_glwe_slots, &query).unwrap());
        one_glwe_s += start.elapsed().as_secs_f64() / entries.len() as f64;
        today_s += time(&|| drop(leveled_get(server, &luts, rows, &today, &query).unwrap()));
        let expected = expected.map(|v| le(v, Width::W64));
        assert_eq!(
            client.open_leveled_answer(rows, &answers[0]).unwrap(),
            expected,
            "one-GLWE GET of {key:#x}"
        );
    }
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let ck = client.hl.clone().into_raw_parts().0;
    let block = ck.encrypt_one_block(1);
    let identity = server.sks.generate_lookup_table(|x| x);
    let pbs = one_thread.install(|| {
        let start = std::time::Instant::now();
        for _ in 0..5 {
            drop(server.sks.apply_lookup_table(&block, &identity));
        }
        start.elapsed().as_secs_f64() / 5.0
    });
    let rebuild = {
        let start = std::time::Instant::now();
        drop(value_tables_from_coefficients(
            packing,
            &one_glwe_slots[0].key,
            &positions,
        ));
        start.elapsed().as_secs_f64()
    };
    println!(
        "u64/u64 one-round GET per slot on {} threads (one KS+PBS: {:.1} ms on one thread): \
         one-GLWE rows {:.0} ms ({:.1} KS+PBS, of which the rebuild {:.0} ms), \
         today's leveled rows {:.0} ms ({:.1} KS+PBS)",
        rayon::current_num_threads(),
        pbs * 1e3,
        one_glwe_s / 2.0 * 1e3,
        one_glwe_s / 2.0 / pbs,
        rebuild * 1e3,
        today_s / 2.0 * 1e3,
        today_s / 2.0 / pbs
    );
}

/// One-GLWE rows (`RowFormat::OneGlwe`, the value's nibbles as coefficients of the key
/// GLWE) through every operation and the wire formats, u64/u64: the one-round GET (the
/// tables rebuilt per slot), a batched GET, the two-round GET, the two-round SET (insert
/// into the first vacant slot, update), a DELETE and an insert into the slot it freed,
/// and the key owner reading every row back. Every row stays within the 16 KB
/// after a SET and after a DELETE (the lookup-table format: ~47 KB after a SET), and a
/// row of one format is refused as a row of the other.
#[test]
fn one_glwe_rows_serve_every_operation_within_16_kb() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let rows = RowLayout::one_glwe(Width::W64, Width::W64);
    let big = 0xF00D_FACE_0123_4567u64;
    let mut table = owner_table(
        rows,
        &[Some((11, 0x1111)), None, Some((0xDEAD_BEEF, big)), None],
    );
    let owner_bytes = table[0].len();
    assert!(
        owner_bytes < 1024,
        "a seeded one-GLWE row: {owner_bytes} bytes"
    );
    assert_eq!(wire_get(rows, &table, 0xDEAD_BEEF), Some(big));
    assert_eq!(wire_get(rows, &table, 11), Some(0x1111));
    assert_eq!(wire_get(rows, &table, 12), None);
    assert_eq!(wire_get(rows, &table, 0), None, "vacant slots never match");

    // Batched: two keys in one pass.
    let queries = vec![query64(rows.key, 11), query64(rows.key, 5)];
    let answers = leveled_get_batch(server, &luts, server.key_id, rows, &table, &queries).unwrap();
    let opened: Vec<_> = answers
        .iter()
        .map(|a| client.open_leveled_answer(rows, a).unwrap())
        .collect();
    assert_eq!(opened, vec![Some(le(0x1111, Width::W64)), None]);

    // The two-round GET: round 2 returns the one GLWE, read at the nibbles' coefficients.
    let slots = decode_all(rows, &table);
    let location = leveled_locate(
        &server.sks,
        &luts,
        rows,
        &slots,
        &query64(rows.key, 0xDEAD_BEEF),
    )
    .unwrap();
    let at = client.open_leveled_location(&location).unwrap();
    assert_eq!(at, Some(2));
    let fetch = client.leveled_fetch_query(2, slots.len(), 0).unwrap();
    let fetch = decode_fetch_query(&fetch, server.key_id, slots.len()).unwrap();
    let fetched = leveled_fetch(rows, &slots, &fetch.index).unwrap();
    assert_eq!(fetched.len(), 1);
    let fetched = encode_fetch_result(server.key_id, rows, &fetched).unwrap();
    let fetched = decode_fetch_result(&fetched, server.key_id, rows).unwrap();
    assert_eq!(
        client.open_leveled_fetch(rows, &fetched).unwrap(),
        le(big, Width::W64)
    );

    // SET in two rounds, from stored rows to stored rows.
    assert_eq!(
        two_round_set(rows, &mut table, 77, 0x77, 1).0,
        LeveledSetTarget::Insert(1)
    );
    assert_eq!(
        two_round_set(rows, &mut table, 11, 0x2222, 2).0,
        LeveledSetTarget::Update(0)
    );
    let set_bytes = table.iter().map(Vec::len).max().unwrap();
    assert!(
        set_bytes <= 16 * 1024,
        "a row after a SET: {set_bytes} bytes"
    );
    assert_eq!(wire_get(rows, &table, 77), Some(0x77));
    assert_eq!(wire_get(rows, &table, 11), Some(0x2222));
    assert_eq!(wire_get(rows, &table, 0xDEAD_BEEF), Some(big));

    // DELETE, then an insert takes the freed slot.
    let out = leveled_delete(
        &server.sks,
        &luts,
        server.key_id,
        rows,
        &table,
        &query64(rows.key, 77),
    )
    .unwrap();
    assert!(client.open_leveled_flag(&out.status).unwrap());
    table = out.rows;
    let delete_bytes = table.iter().map(Vec::len).max().unwrap();
    assert!(
        delete_bytes <= 16 * 1024,
        "a row after a DELETE: {delete_bytes} bytes"
    );
    assert_eq!(wire_get(rows, &table, 77), None);
    assert_eq!(
        two_round_set(rows, &mut table, 99, 0x99, 3).0,
        LeveledSetTarget::Insert(1)
    );
    let opened = open_all(rows, &table);
    assert_eq!(
        opened,
        vec![
            Some((le(11, Width::W64), le(0x2222, Width::W64))),
            Some((le(99, Width::W64), le(0x99, Width::W64))),
            Some((le(0xDEAD_BEEF, Width::W64), le(big, Width::W64))),
            None,
        ]
    );
    println!(
        "one-GLWE u64/u64 rows: {owner_bytes} bytes as the key owner writes them, \
         {set_bytes} after a SET, {delete_bytes} after a DELETE"
    );

    // A row of one format is not a row of the other: a clear error, not a misread.
    let lookup = RowLayout::new(Width::W64, Width::W64);
    for (bytes, layout) in [
        (&table[0], lookup),
        (&owner_row(lookup, Some((1, 2))), rows),
    ] {
        let e = decode_row(bytes, server.key_id, layout)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("GLWE with"), "{e}");
    }
    // ... and each row tells its format (attach_table records it from the rows): owner
    // rows and rows a SET or DELETE wrote alike; anything else is refused.
    let format_of = |bytes: &[u8]| row_format_of(bytes, server.key_id, Width::W64, Width::W64);
    for row in &table {
        assert_eq!(format_of(row).unwrap(), RowFormat::OneGlwe);
    }
    let v1_row = owner_row(lookup, Some((1, 2)));
    assert_eq!(format_of(&v1_row).unwrap(), RowFormat::LookupTables);
    let e = format_of(&v1_row[..v1_row.len() / 2]).expect_err("refused");
    assert!(e.to_string().contains("leveled row"), "{e}");
    let other = row_format_of(&v1_row, server.key_id, Width::W32, Width::W64);
    assert!(other.is_err(), "a row of other widths has no format here");
}
