//! The leveled kernels per slot, next to the block kernels and a naive TFHE-rs integer
//! baseline, in the same process on the same machine:
//!
//! 1. key comparison: leveled equality, the block kernels' match, integer `eq`;
//! 2. a whole GET over a half-full table (keys and values of the same width): the leveled
//!    GET (match + encrypted-accumulator selection), the flat compact-row kernel
//!    (`oblivious_get`), and the naive integer composition (examples/bench/naive.rs); the
//!    leveled two-round GET (locate, then fetch by a CMux tree) and a batch of 4 keys in
//!    one pass;
//! 3. a whole DELETE of that key: the leveled DELETE (match + the vacant flag through one
//!    PBS), the flat kernel (`oblivious_delete`, tombstone mode) and the naive one;
//! 4. a SET of an absent key: the leveled two-round SET (where to write, then the write by
//!    external products, from stored rows to stored rows) next to the flat kernel
//!    (`oblivious_set`) and the naive one.
//!
//! Every leveled message crosses its wire format inside the timed work: the answers, the
//! round-2 queries, the rows.
//!
//! Prints PBS per slot (exact, TFHE-rs `pbs-stats`), external products per slot, seconds
//! per slot, PBS-equivalents per slot (seconds per slot divided by the time of one
//! measured keyswitch and PBS) and stored bytes per slot.
//!
//! ```text
//! make bench-leveled                 # u64/u64, 8 slots
//! cargo run -p fhe-kv-core --features test-keys --example leveled_equality -- 16 8
//!                                    # key and value bits, slots
//! ```
//!
//! Every answer is decrypted and checked.

#[allow(dead_code)]
#[path = "bench/naive.rs"]
mod naive;
#[path = "bench/pbs_unit.rs"]
mod pbs_unit;

use fhe_kv_core::bucket::select::{external_product_count, reset_external_product_count};
use fhe_kv_core::client_rows::ClearRow;
use fhe_kv_core::codec::decode_integer;
use fhe_kv_core::kernels::block_key_match;
use fhe_kv_core::kernels::{oblivious_delete, oblivious_get, oblivious_set, DeleteMode, KernelEnv};
use fhe_kv_core::keys::{ClientKeys, ServerKeys};
use fhe_kv_core::leveled::delete::leveled_delete;
use fhe_kv_core::leveled::equality::{leveled_match, EqualityLuts};
use fhe_kv_core::leveled::get::{leveled_get, leveled_get_batch, LeveledAnswer};
use fhe_kv_core::leveled::messages::{
    decode_fetch_query, decode_fetch_result, decode_set_write, decode_status, encode_fetch_result,
    encode_status,
};
use fhe_kv_core::leveled::set_locate::{leveled_set_locate, LeveledSetLocation, LeveledSetTarget};
use fhe_kv_core::leveled::set_write::leveled_set_write_rows;
use fhe_kv_core::leveled::two_round::{leveled_fetch, leveled_locate, LeveledLocation};
use fhe_kv_core::leveled::wire::{decode_query, decode_row, StoredSlot};
use fhe_kv_core::leveled::{ChunkLayout, RowFormat, RowLayout};
use fhe_kv_core::testkeys::{test_integer_client_key, test_keys};
use fhe_kv_core::Kind;
use fhe_kv_core::Width;
use std::time::Instant;
use tfhe::integer::IntegerCiphertext;

struct Line {
    name: String,
    pbs: f64,
    external_products: f64,
    seconds: f64,
    stored_bytes: Option<usize>,
}

impl Line {
    /// A method's line from its measured `(PBS, external products, seconds)` per slot.
    fn new(name: impl Into<String>, cost: (f64, f64, f64), stored_bytes: Option<usize>) -> Line {
        let (pbs, external_products, seconds) = cost;
        Line {
            name: name.into(),
            pbs,
            external_products,
            seconds,
            stored_bytes,
        }
    }
}

/// Mean stored bytes of a table's rows.
fn bytes_per_slot(rows: &[Vec<u8>]) -> usize {
    rows.iter().map(Vec::len).sum::<usize>() / rows.len()
}

/// Run `run` on every slot (slot 0 must be the only match) and return its costs per slot.
fn measure(slots: usize, mut run: impl FnMut(usize) -> bool) -> (f64, f64, f64) {
    measure_once(slots, || {
        for slot in 0..slots {
            assert_eq!(run(slot), slot == 0, "wrong answer at slot {slot}");
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bits: u32 = args.first().map_or(64, |a| a.parse().expect("key bits"));
    let slots: usize = args.get(1).map_or(8, |a| a.parse().expect("slots"));
    let width = Width::ALL
        .into_iter()
        .find(|w| w.bits() == bits)
        .expect("key bits: 8, 16, 32, 64, 128 or 256");
    let (client, server) = test_keys();
    let ck = test_integer_client_key();
    let sks = &server.sks;
    let layout = ChunkLayout::new(width);
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let query_key = 0x0123_4567_89AB_CDEF_u64 & mask;
    // Slot 0 holds the query key; slot i > 0 differs from it in bit (7 i) mod bits.
    let keys: Vec<u64> = (0..slots as u64)
        .map(|i| {
            if i == 0 {
                query_key
            } else {
                query_key ^ (1 << ((7 * i) % u64::from(bits.min(64))))
            }
        })
        .collect();
    let le = |v: u64| le_bytes(width, v);
    let bit = |ct: tfhe::shortint::Ciphertext| {
        ck.decrypt_radix::<u64>(&tfhe::integer::RadixCiphertext::from(vec![ct])) == 1
    };

    // One keyswitch + PBS: the unit of a PBS-equivalent.
    let pbs_seconds = pbs_unit::one_pbs_seconds(&ck, sks);

    let mut lines = Vec::new();

    // Leveled equality: the key GLWEs of stored rows, one query of chunk GGSWs.
    let rows = RowLayout::new(width, width);
    let stored: Vec<_> = keys
        .iter()
        .map(|&k| {
            let row = client.leveled_row(rows, Some((&le(k), &le(k)))).unwrap();
            decode_row(&row, server.key_id, rows).unwrap()
        })
        .collect();
    let query_envelope = client.leveled_query_key(layout, &le(query_key)).unwrap();
    let query_bytes = query_envelope.len();
    let query = decode_query(&query_envelope, server.key_id, layout).unwrap();
    let luts = EqualityLuts::new(sks);
    let cost = measure(slots, |s| {
        bit(leveled_match(sks, &luts, layout, &stored[s], &query).unwrap())
    });
    lines.push(Line::new("leveled equality", cost, None));

    // The block kernels' comparison, on 2-bit blocks they already hold (as a bucketed
    // table's extracted blocks; a flat table first pays ~2 PBS per block to decompress).
    let blocks = width.blocks();
    let key_blocks: Vec<_> = keys
        .iter()
        .map(|&k| ck.encrypt_radix(k, blocks).blocks().to_vec())
        .collect();
    let query_blocks = ck.encrypt_radix(query_key, blocks).blocks().to_vec();
    let cost = measure(slots, |s| {
        bit(block_key_match(sks, &key_blocks[s], &query_blocks))
    });
    lines.push(Line::new("block kernels (compact)", cost, None));

    // Naive: TFHE-rs integer equality on the same radix ciphertexts.
    let integer = tfhe::integer::ServerKey::new_radix_server_key_from_shortint(sks.clone());
    let radix =
        |b: &Vec<tfhe::shortint::Ciphertext>| tfhe::integer::RadixCiphertext::from(b.clone());
    let q = radix(&query_blocks);
    let cost = measure(slots, |s| {
        let eq = integer.eq_parallelized(&radix(&key_blocks[s]), &q);
        bit(eq.into_raw_parts())
    });
    lines.push(Line::new("naive (integer eq)", cost, None));
    print_table(
        &format!(
            "key comparison per slot, u{bits} keys, {slots} slots, {} threads; one KS+PBS = {:.1} ms; \
             leveled query key: {query_bytes} bytes ({} chunk GGSWs)",
            rayon::current_num_threads(),
            pbs_seconds * 1e3,
            layout.chunks()
        ),
        &lines,
        pbs_seconds,
    );

    // A whole GET over a half-full table: slots 0..⌈S/2⌉ hold key 1000 + i, value 7 i + 1
    // (LeveledBench::entry), the hit is key 1000.
    let hit_key = 1000u64;
    let bench = LeveledBench {
        client,
        server,
        luts: &luts,
        layout,
        slots,
        width,
        hit_key,
    };
    let entry = |i: usize| bench.entry(i);
    let mut lines = Vec::new();
    for format in FORMATS {
        lines.extend(bench.get_lines(format));
    }

    let sealer = client.row_sealer();
    let compact_rows: Vec<Vec<u8>> = (0..slots)
        .map(|i| {
            let row = match entry(i) {
                Some((k, v)) => ClearRow {
                    occupied: true,
                    key: le(k),
                    value: le(v),
                },
                None => ClearRow::vacant(width, width),
            };
            sealer.seal(&row).unwrap()
        })
        .collect();
    let env = KernelEnv {
        keys: server,
        key_width: width,
        value_width: width,
        pool: None,
        batch_rows: 8,
    };
    let q = client.encrypt_key(hit_key, width).unwrap();
    let cost = measure_once(slots, || {
        let query = decode_integer(&q, "bench key", Kind::QueryKey, server.key_id, width).unwrap();
        let out = oblivious_get(&env, &query, &compact_rows, &mut |_, _| {}).unwrap();
        assert!(bit(out.found));
        assert_eq!(
            ck.decrypt_radix::<u64>(&tfhe::integer::RadixCiphertext::from(out.value)),
            1
        );
    });
    lines.push(Line::new(
        "block kernels (compact rows)",
        cost,
        Some(bytes_per_slot(&compact_rows)),
    ));

    let naive = naive::Naive::new(server, width, width);
    let cost = measure_once(slots, || {
        let query = decode_integer(&q, "bench key", Kind::QueryKey, server.key_id, width).unwrap();
        let (found, value) = naive.get(&compact_rows, &query);
        assert!(bit(found.into_raw_parts()));
        assert_eq!(ck.decrypt_radix::<u64>(&value), 1);
    });
    lines.push(Line::new(
        "naive (integer API)",
        cost,
        Some(bytes_per_slot(&compact_rows)),
    ));
    print_table(
        &format!("GET per slot, u{bits}/u{bits}, {slots} slots (half full, a hit)"),
        &lines,
        pbs_seconds,
    );

    // DELETE of the same key over the same tables; each method's new rows are checked.
    let mut lines: Vec<Line> = FORMATS.iter().map(|&f| bench.delete_line(f)).collect();
    let mut new_rows = Vec::new();
    let q = client.encrypt_key(hit_key, width).unwrap();
    let cost = measure_once(slots, || {
        let query = decode_integer(&q, "bench key", Kind::QueryKey, server.key_id, width).unwrap();
        let out = oblivious_delete(
            &env,
            &query,
            &compact_rows,
            DeleteMode::Tombstone,
            &mut |_, _| {},
        )
        .unwrap();
        assert!(bit(out.status));
        new_rows = out.rows;
    });
    lines.push(Line::new(
        "block kernels (compact rows)",
        cost,
        Some(bytes_per_slot(&new_rows)),
    ));

    let cost = measure_once(slots, || {
        let query = decode_integer(&q, "bench key", Kind::QueryKey, server.key_id, width).unwrap();
        let (deleted, _) = naive.delete(&compact_rows, &query, false);
        assert!(bit(deleted.into_raw_parts()));
    });
    lines.push(Line::new("naive (integer API)", cost, None));
    print_table(
        &format!("DELETE per slot, u{bits}/u{bits}, {slots} slots (half full, a hit)"),
        &lines,
        pbs_seconds,
    );

    // SET of an absent key (an insert) over the same tables. The leveled SET runs both
    // rounds (where to write, then the write, from stored rows to stored rows) and the key
    // owner's work between them. Every row it writes is stored whole at 32 bits per
    // coefficient. The new entry is read back with a leveled GET, not timed.
    let new_key = NEW_KEY;
    let mut lines: Vec<Line> = FORMATS.iter().map(|&f| bench.set_line(f)).collect();

    let q = client.encrypt_key(new_key, width).unwrap();
    let v = client.encrypt_value(new_key, width).unwrap();
    let cost = measure_once(slots, || {
        let query = decode_integer(&q, "bench key", Kind::QueryKey, server.key_id, width).unwrap();
        let value = decode_integer(&v, "bench value", Kind::Value, server.key_id, width).unwrap();
        let out = oblivious_set(&env, &query, &value, &compact_rows, &mut |_, _| {}).unwrap();
        new_rows = out.rows;
    });
    // The key owner opens the rewritten rows: the key now sits in the first vacant slot.
    if let Some(written) = (0..slots).find(|&i| entry(i).is_none()) {
        let opened = client.open_row(&new_rows[written], width, width).unwrap();
        assert!(opened.occupied && opened.key == le(new_key) && opened.value == le(new_key));
    }
    lines.push(Line::new(
        "block kernels: whole SET (compact rows)",
        cost,
        Some(bytes_per_slot(&new_rows)),
    ));

    let cost = measure_once(slots, || {
        let query = decode_integer(&q, "bench key", Kind::QueryKey, server.key_id, width).unwrap();
        let value = decode_integer(&v, "bench value", Kind::Value, server.key_id, width).unwrap();
        drop(naive.set(&compact_rows, &query, &value));
    });
    lines.push(Line::new("naive (integer API): whole SET", cost, None));
    print_table(
        &format!("SET per slot, u{bits}/u{bits}, {slots} slots (half full, an insert)"),
        &lines,
        pbs_seconds,
    );
}

/// Run one whole operation over `slots` slots and return its costs per slot.
fn measure_once(slots: usize, run: impl FnOnce()) -> (f64, f64, f64) {
    tfhe::reset_pbs_count();
    reset_external_product_count();
    let start = Instant::now();
    run();
    let seconds = start.elapsed().as_secs_f64() / slots as f64;
    let pbs = tfhe::get_pbs_count() as f64 / slots as f64;
    let eps = external_product_count() as f64 / slots as f64;
    (pbs, eps, seconds)
}

fn print_table(title: &str, lines: &[Line], pbs_seconds: f64) {
    println!("\n{title}");
    println!(
        "| method | PBS/slot | external products/slot | s/slot | PBS-equivalents/slot | stored bytes/slot |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for l in lines {
        println!(
            "| {} | {:.1} | {:.1} | {:.4} | {:.1} | {} |",
            l.name,
            l.pbs,
            l.external_products,
            l.seconds,
            l.seconds / pbs_seconds,
            l.stored_bytes.map_or("-".to_string(), |b| b.to_string())
        );
    }
}

/// Both leveled row formats, measured side by side: one GLWE per slot (`leveled-v2`, the
/// default of new tables) and the value as lookup tables (`leveled-v1`).
const FORMATS: [RowFormat; 2] = [RowFormat::OneGlwe, RowFormat::LookupTables];

/// The key the SET benchmarks insert (absent from every table).
const NEW_KEY: u64 = 5;

/// The leveled kernels over a half-full table of either row format: slots 0..⌈S/2⌉ hold
/// key 1000 + i and value 7 i + 1, the rest were never written.
struct LeveledBench<'a> {
    client: &'a ClientKeys,
    server: &'a ServerKeys,
    luts: &'a EqualityLuts,
    layout: ChunkLayout,
    slots: usize,
    width: Width,
    hit_key: u64,
}

impl LeveledBench<'_> {
    fn le(&self, v: u64) -> Vec<u8> {
        le_bytes(self.width, v)
    }

    /// Decode stored rows of `rows` (inside the timed work where the server would).
    fn decode(&self, rows: RowLayout, stored: &[Vec<u8>]) -> Vec<StoredSlot> {
        stored
            .iter()
            .map(|r| decode_row(r, self.server.key_id, rows).unwrap())
            .collect()
    }

    /// What a one-round GET of `key` answers on `stored` (a check, not timed).
    fn read_back(&self, rows: RowLayout, stored: &[Vec<u8>], key: u64) -> Option<Vec<u8>> {
        let q = self
            .client
            .leveled_query_key(self.layout, &self.le(key))
            .unwrap();
        let query = decode_query(&q, self.server.key_id, self.layout).unwrap();
        let decoded = self.decode(rows, stored);
        let answer = leveled_get(self.server, self.luts, rows, &decoded, &query).unwrap();
        self.client.open_leveled_answer(rows, &answer).unwrap()
    }

    fn entry(&self, i: usize) -> Option<(u64, u64)> {
        (i < self.slots.div_ceil(2)).then(|| (1000 + i as u64, 7 * i as u64 + 1))
    }

    fn rows(&self, format: RowFormat) -> RowLayout {
        RowLayout::of_format(self.width, self.width, format)
    }

    /// A method's name with its row format.
    fn name(&self, format: RowFormat, what: &str) -> String {
        format!("{} {what}", format.name())
    }

    /// The table as the key owner writes it (import).
    fn table(&self, rows: RowLayout) -> Vec<Vec<u8>> {
        (0..self.slots)
            .map(|i| {
                let e = self.entry(i).map(|(k, v)| (self.le(k), self.le(v)));
                self.client
                    .leveled_row(rows, e.as_ref().map(|(k, v)| (k.as_slice(), v.as_slice())))
                    .unwrap()
            })
            .collect()
    }

    /// One-round GET, two-round GET and a batch of 4 keys, each from stored rows, the
    /// answers through their wire formats and checked.
    fn get_lines(&self, format: RowFormat) -> Vec<Line> {
        let (client, server, luts, slots) = (self.client, self.server, self.luts, self.slots);
        let (sks, layout, rows) = (&server.sks, self.layout, self.rows(format));
        let stored = self.table(rows);
        let bytes = Some(bytes_per_slot(&stored));
        let hit_value = self.le(1);
        let q = client
            .leveled_query_key(layout, &self.le(self.hit_key))
            .unwrap();
        let mut lines = Vec::new();
        let cost = measure_once(slots, || {
            let decoded = self.decode(rows, &stored);
            let query = decode_query(&q, server.key_id, layout).unwrap();
            let answer = leveled_get(server, luts, rows, &decoded, &query).unwrap();
            let answer = answer.encode(server.key_id, rows).unwrap();
            let answer = LeveledAnswer::decode(&answer, server.key_id, rows).unwrap();
            assert_eq!(
                client.open_leveled_answer(rows, &answer).unwrap(),
                Some(hit_value.clone())
            );
        });
        lines.push(Line::new(self.name(format, "GET"), cost, bytes));
        // Two rounds: the key owner's work between them (decrypting the location,
        // encrypting the index bits) is timed too.
        let cost = measure_once(slots, || {
            let decoded = self.decode(rows, &stored);
            let query = decode_query(&q, server.key_id, layout).unwrap();
            let location = leveled_locate(sks, luts, rows, &decoded, &query).unwrap();
            let location = location.encode(server.key_id, slots, 1).unwrap();
            let (location, state) =
                LeveledLocation::decode(&location, server.key_id, slots).unwrap();
            assert_eq!(client.open_leveled_location(&location).unwrap(), Some(0));
            let fetch = client.leveled_fetch_query(0, slots, state).unwrap();
            let fetch = decode_fetch_query(&fetch, server.key_id, slots).unwrap();
            assert_eq!(fetch.state, 1);
            let fetched = leveled_fetch(rows, &decoded, &fetch.index).unwrap();
            let fetched = encode_fetch_result(server.key_id, rows, &fetched).unwrap();
            let fetched = decode_fetch_result(&fetched, server.key_id, rows).unwrap();
            assert_eq!(
                client.open_leveled_fetch(rows, &fetched).unwrap(),
                hit_value
            );
        });
        lines.push(Line::new(self.name(format, "two-round GET"), cost, bytes));
        // A batch of 4 keys (the hit and three absent keys) in one pass over the stored
        // rows, each row decoded once (and a one-GLWE row's tables rebuilt once): per slot
        // and key.
        let batch: Vec<_> = [self.hit_key, 1_000_001, 1_000_002, 1_000_003]
            .iter()
            .map(|&k| client.leveled_query_key(layout, &self.le(k)).unwrap())
            .collect();
        let cost = measure_once(slots * batch.len(), || {
            let queries: Vec<_> = batch
                .iter()
                .map(|q| decode_query(q, server.key_id, layout).unwrap())
                .collect();
            let answers =
                leveled_get_batch(server, luts, server.key_id, rows, &stored, &queries).unwrap();
            for (i, answer) in answers.iter().enumerate() {
                let answer = answer.encode(server.key_id, rows).unwrap();
                let answer = LeveledAnswer::decode(&answer, server.key_id, rows).unwrap();
                let expected = (i == 0).then(|| hit_value.clone());
                assert_eq!(client.open_leveled_answer(rows, &answer).unwrap(), expected);
            }
        });
        lines.push(Line::new(
            self.name(format, "batched GET (4 keys; per slot and key)"),
            cost,
            bytes,
        ));
        lines
    }

    /// DELETE of the hit key; the new rows are checked with a GET (not timed).
    fn delete_line(&self, format: RowFormat) -> Line {
        let (client, server, luts, slots) = (self.client, self.server, self.luts, self.slots);
        let (sks, layout, rows) = (&server.sks, self.layout, self.rows(format));
        let stored = self.table(rows);
        let q = client
            .leveled_query_key(layout, &self.le(self.hit_key))
            .unwrap();
        let mut new_rows = Vec::new();
        let cost = measure_once(slots, || {
            let query = decode_query(&q, server.key_id, layout).unwrap();
            let out = leveled_delete(sks, luts, server.key_id, rows, &stored, &query).unwrap();
            let status = encode_status(server.key_id, &out.status).unwrap();
            let status = decode_status(&status, server.key_id).unwrap();
            assert!(client.open_leveled_flag(&status).unwrap());
            new_rows = out.rows;
        });
        assert_eq!(self.read_back(rows, &new_rows, self.hit_key), None);
        Line::new(
            self.name(format, "DELETE"),
            cost,
            Some(bytes_per_slot(&new_rows)),
        )
    }

    /// SET of an absent key (an insert): both rounds (where to write, then the write,
    /// from stored rows to stored rows) and the key owner's work between them. Every row
    /// it writes is stored whole at 32 bits per coefficient. The new entry is read back
    /// with a GET, not timed.
    fn set_line(&self, format: RowFormat) -> Line {
        let (client, server, luts, slots) = (self.client, self.server, self.luts, self.slots);
        let (sks, layout, rows) = (&server.sks, self.layout, self.rows(format));
        let stored = self.table(rows);
        let new_key = self.le(NEW_KEY);
        let q = client.leveled_query_key(layout, &new_key).unwrap();
        let mut written = Vec::new();
        let cost = measure_once(slots, || {
            let decoded = self.decode(rows, &stored);
            let query = decode_query(&q, server.key_id, layout).unwrap();
            let location = leveled_set_locate(sks, luts, rows, &decoded, &query).unwrap();
            let location = location.encode(server.key_id, slots, 1).unwrap();
            let (location, state) =
                LeveledSetLocation::decode(&location, server.key_id, slots).unwrap();
            let target = client.open_leveled_set_location(&location).unwrap();
            let first_vacant = (0..slots).find(|&i| self.entry(i).is_none());
            let expected = first_vacant.map_or(LeveledSetTarget::Full, LeveledSetTarget::Insert);
            assert_eq!(target, expected);
            let write = client
                .leveled_set_write_query(rows, target, slots, (&new_key, &new_key), state)
                .unwrap();
            let write = decode_set_write(&write, server.key_id, slots).unwrap();
            assert_eq!(write.state, 1);
            written = leveled_set_write_rows(server.key_id, rows, &stored, &write).unwrap();
        });
        if (0..slots).any(|i| self.entry(i).is_none()) {
            assert_eq!(self.read_back(rows, &written, NEW_KEY), Some(new_key));
        }
        Line::new(
            self.name(format, "SET (two rounds)"),
            cost,
            Some(bytes_per_slot(&written)),
        )
    }
}

/// `v` as the little-endian bytes of a `width` integer.
fn le_bytes(width: Width, v: u64) -> Vec<u8> {
    v.to_le_bytes()
        .into_iter()
        .chain(std::iter::repeat(0))
        .take(width.bytes())
        .collect()
}
