//! Bounded fuzzing of every decoder that takes untrusted bytes: the envelope header,
//! query keys and values (`codec::decode_integer`), stored rows (`row::decode_row`),
//! server-key uploads (`ServerKeys::validate_upload`), the bucketed layout's inputs
//! (bucket query keys, selectors, writes, stored buckets) and, on the client side, server
//! answers (`ClientKeys::decrypt_any`, bucket reads) and exported rows
//! (`ClientKeys::open_row`).
//!
//! A seeded generator mutates valid envelopes (bit flips, random bytes, forged u64
//! length/count/dimension fields, truncation, extension, splicing, header length fixed
//! up or not) and random byte strings. Every decode must return (Ok or Err), never
//! panic: each call runs under `catch_unwind`, and an abort would kill the test binary.
//!
//! CI runs a short bounded campaign. Run longer with, e.g.:
//!
//! ```sh
//! FHE_KV_FUZZ_CASES=200000 FHE_KV_FUZZ_SEED=$RANDOM \
//!     cargo test -p fhe-kv-core --test fuzz -- --nocapture
//! ```

use fhe_kv_core::bucket::{wire, BucketLayout};
use fhe_kv_core::codec::decode_integer;
use fhe_kv_core::keys::{ClientKeys, ServerKeys};
use fhe_kv_core::row::decode_row;
use fhe_kv_core::{ClearRow, Envelope, KeyId, Kind, Width};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

const HEADER: usize = 32;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The cached test keys (written by the unit tests of this crate), or fresh ones.
fn client_keys() -> (ClientKeys, Option<Vec<u8>>) {
    let dir = std::env::var("FHE_KV_TEST_KEY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fhe-kv-test-keys")
        });
    match std::fs::read(dir.join("client.key")) {
        Ok(ck) => (
            ClientKeys::from_bytes(&ck).expect("cached client key"),
            std::fs::read(dir.join("server.key")).ok(),
        ),
        Err(_) => {
            let (keys, upload) = ClientKeys::generate().expect("generate keys");
            (keys, Some(upload.0))
        }
    }
}

fn fix_length(bytes: &mut [u8]) {
    if bytes.len() >= HEADER {
        let len = (bytes.len() - HEADER) as u64;
        bytes[24..32].copy_from_slice(&len.to_le_bytes());
    }
}

/// One mutated input derived from `seeds`.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(20) == 0 {
        let n = rng.below(200);
        return rng.bytes(n);
    }
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = b.len().max(1);
        match rng.below(8) {
            0 | 1 => {
                let at = rng.below(len);
                if at < b.len() {
                    b[at] ^= 1 << rng.below(8);
                }
            }
            2 => {
                let at = rng.below(len);
                if at < b.len() {
                    b[at] = rng.next() as u8;
                }
            }
            3 | 4 => {
                // forge a little-endian u64 (a length, count or dimension) anywhere
                let at = rng.below(len);
                let interesting = [
                    0,
                    1,
                    2,
                    0x7f,
                    0xff,
                    0xffff,
                    0x7fff_ffff,
                    0xffff_ffff,
                    1 << 40,
                    u64::MAX,
                    u64::MAX / 2,
                    b.len() as u64,
                    b.len() as u64 + 1,
                    rng.next(),
                ];
                let v = interesting[rng.below(interesting.len())].to_le_bytes();
                let n = (b.len().saturating_sub(at)).min(8);
                b[at..at + n].copy_from_slice(&v[..n]);
            }
            5 => b.truncate(rng.below(len)),
            6 => {
                let n = rng.below(64);
                let extra = rng.bytes(n);
                b.extend_from_slice(&extra);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(b.len().min(other.len()).max(1));
                b.truncate(cut);
                b.extend_from_slice(&other[cut.min(other.len())..]);
            }
        }
    }
    // most inputs get a consistent length so the payload decoders are reached
    if rng.below(4) != 0 {
        fix_length(&mut b);
    }
    b
}

/// Decodes one input; true when it was accepted.
type Decoder<'a> = Box<dyn Fn(&[u8]) -> bool + 'a>;

struct Target<'a> {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    decode: Decoder<'a>,
}

#[test]
fn decoders_never_panic_on_mutated_input() {
    let cases: usize = std::env::var("FHE_KV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let seed: u64 = std::env::var("FHE_KV_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f0f0);
    let (keys, server_key) = client_keys();
    let id = keys.key_id();
    let (w8, w64) = (Width::W8, Width::W64);

    let key_seeds = vec![
        keys.encrypt_key(1, w8).unwrap(),
        keys.encrypt_key(200, w8).unwrap(),
        keys.encrypt_key(u64::MAX, w64).unwrap(),
    ];
    let value_seeds = vec![
        keys.encrypt_value(7, w8).unwrap(),
        keys.encrypt_value(42, w64).unwrap(),
    ];
    let sealer = keys.row_sealer();
    let row_seeds = vec![
        sealer.seal(&ClearRow::vacant(w8, w8)).unwrap(),
        sealer
            .seal(&ClearRow {
                occupied: true,
                key: vec![1],
                value: vec![2],
            })
            .unwrap(),
    ];
    let mut all_seeds: Vec<Vec<u8>> = [&key_seeds[..], &value_seeds[..], &row_seeds[..]].concat();
    // the start of a server key, fingerprint fixed on every input so that the
    // deserializer (not the fingerprint check) sees the mutation
    let sk_seeds: Vec<Vec<u8>> = server_key
        .iter()
        .map(|sk| sk[..sk.len().min(8192)].to_vec())
        .collect();
    all_seeds.extend(sk_seeds.iter().cloned());

    // A bucketed table of 2 × 2 buckets of 2 u8/u8 slots (one selector bit per half).
    let layout = BucketLayout::new(w8, w8, 2, 2).unwrap();
    let slot = |k: u8, v: u8| ClearRow {
        occupied: true,
        key: vec![k],
        value: vec![v],
    };
    let buckets = [
        keys.seal_bucket(&layout, &[slot(1, 10), ClearRow::vacant(w8, w8)])
            .unwrap(),
        keys.seal_bucket(
            &layout,
            &[ClearRow::vacant(w8, w8), ClearRow::vacant(w8, w8)],
        )
        .unwrap(),
    ];
    let glwe = |b: &[u8]| wire::decode_row(b, id, &layout).unwrap();
    let read_seed =
        wire::encode_read_result(id, &layout, &[glwe(&buckets[0]), glwe(&buckets[1])], 7).unwrap();
    let access = keys.bucket_access(&layout, &[1]);
    let bucket_query_seeds = vec![keys.encrypt_bucket_key_le(&layout, &[1]).unwrap()];
    let selector_seeds = vec![access.read_query(&keys).unwrap()];
    let write_seeds = vec![
        access.upsert(&keys, &read_seed, &[11]).unwrap().1,
        access.remove(&keys, &read_seed, true).unwrap().1,
    ];
    all_seeds.extend(
        [
            &bucket_query_seeds[..],
            &selector_seeds[..],
            &write_seeds[..],
        ]
        .concat(),
    );
    all_seeds.extend(buckets.iter().cloned());
    all_seeds.push(read_seed.clone());

    let targets = vec![
        Target {
            name: "Envelope::parse",
            seeds: all_seeds.clone(),
            decode: Box::new(|b| Envelope::parse(b, "input").is_ok()),
        },
        Target {
            name: "decode_integer (query key, u8)",
            seeds: key_seeds.clone(),
            decode: Box::new(move |b| decode_integer(b, "key", Kind::QueryKey, id, w8).is_ok()),
        },
        Target {
            name: "decode_integer (query key, u64)",
            seeds: key_seeds.clone(),
            decode: Box::new(move |b| decode_integer(b, "key", Kind::QueryKey, id, w64).is_ok()),
        },
        Target {
            name: "decode_integer (value, u8)",
            seeds: value_seeds.clone(),
            decode: Box::new(move |b| decode_integer(b, "value", Kind::Value, id, w8).is_ok()),
        },
        Target {
            name: "decode_row (u8/u8)",
            seeds: row_seeds.clone(),
            decode: Box::new(move |b| decode_row(b, id, w8, w8).is_ok()),
        },
        Target {
            name: "ServerKeys::validate_upload",
            seeds: sk_seeds.clone(),
            decode: Box::new(|b| {
                let mut b = b.to_vec();
                if b.len() >= HEADER {
                    let fp = KeyId::of_server_key_bytes(&b[HEADER..]);
                    b[8..24].copy_from_slice(&fp.0);
                }
                ServerKeys::validate_upload(&b).is_ok()
            }),
        },
        Target {
            name: "ClientKeys::open_row (export)",
            seeds: row_seeds.clone(),
            decode: Box::new(|b| keys.open_row(b, w8, w8).is_ok()),
        },
        Target {
            name: "bucket query key (header, payload, key)",
            seeds: bucket_query_seeds,
            decode: Box::new(move |b| {
                wire::check_query_header(b, "key", id, &layout)
                    .and_then(|env| wire::decode_query_payload(&env, "key", &layout))
                    .and_then(|(key, _)| decode_integer(&key, "key", Kind::QueryKey, id, w8))
                    .is_ok()
            }),
        },
        Target {
            name: "bucket selectors (fhe_fetch)",
            seeds: selector_seeds,
            decode: Box::new(move |b| {
                wire::check_selectors_header(b, id, &layout)
                    .and_then(|env| wire::decode_selectors_payload(&env, &layout))
                    .is_ok()
            }),
        },
        Target {
            name: "bucket write (fhe_write)",
            seeds: write_seeds,
            decode: Box::new(move |b| {
                wire::check_write_header(b, id, &layout)
                    .and_then(|env| wire::decode_write_payload(&env, &layout))
                    .is_ok()
            }),
        },
        Target {
            name: "bucket::wire::decode_row (stored bucket)",
            seeds: buckets.to_vec(),
            decode: Box::new(move |b| wire::decode_row(b, id, &layout).is_ok()),
        },
        Target {
            name: "ClientKeys::open_bucket_read (answers)",
            seeds: vec![read_seed],
            decode: Box::new(|b| keys.open_bucket_read(&layout, b, &[1]).is_ok()),
        },
        Target {
            name: "ClientKeys::decrypt_any (answers)",
            seeds: all_seeds.clone(),
            decode: Box::new(|b| {
                // the client reads server answers: relabel as a result/status kind
                let mut b = b.to_vec();
                if b.len() > 5 {
                    b[5] = [Kind::GetResult, Kind::SetStatus, Kind::DeleteStatus][b[0] as usize % 3]
                        as u8;
                }
                keys.decrypt_any(&b).is_ok()
            }),
        },
    ];

    // keep the default panic hook from printing a backtrace per caught panic
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed | 1);
    let mut total = 0;
    let mut panics: Vec<String> = Vec::new();
    for target in &targets {
        if target.seeds.is_empty() {
            continue;
        }
        // server-key prefixes and GGSW selectors (~96 KiB per bit) are large inputs
        let n = if target.name.starts_with("ServerKeys") {
            cases / 10 + 1
        } else if target.name.starts_with("bucket query")
            || target.name.starts_with("bucket s")
            || target.name.starts_with("bucket w")
        {
            cases / 5 + 1
        } else {
            cases
        };
        let mut accepted = 0;
        for i in 0..n {
            let input = mutate(&mut rng, &target.seeds);
            match catch_unwind(AssertUnwindSafe(|| (target.decode)(&input))) {
                Ok(ok) => accepted += usize::from(ok),
                Err(_) => panics.push(format!(
                    "{} case {i} (seed {seed}): {} bytes, starting {}",
                    target.name,
                    input.len(),
                    hex::encode(&input[..input.len().min(64)])
                )),
            }
        }
        total += n;
        eprintln!(
            "fuzz {:<44} {n:>6} cases, {accepted:>5} decoded (mutations that are still valid)",
            target.name
        );
    }
    std::panic::set_hook(hook);
    eprintln!(
        "fuzz: {total} cases over {} decoders, {} panics (seed {seed})",
        targets.len(),
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "decoders panicked:\n{}",
        panics.join("\n")
    );
}
