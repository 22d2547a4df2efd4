//! Kernel cases with the real (production) parameters on small tables.
//! u8/u8 tables keep each case to a few hundred PBS; one case runs u64/u64.

use super::*;
use crate::codec::decode_integer;
use crate::envelope::Kind;
use crate::row::{empty_row, encode_row};
use crate::testkeys::{decrypt_stored_row, test_keys};
use crate::Width;

struct Table {
    key: Width,
    value: Width,
    rows: Vec<Vec<u8>>,
}

impl Table {
    fn new(capacity: usize, key: Width, value: Width) -> Table {
        let (_, server) = test_keys();
        let empty = encode_row(server, &empty_row(server, key, value)).unwrap();
        Table {
            key,
            value,
            rows: vec![empty; capacity],
        }
    }

    fn env(&self) -> KernelEnv<'static> {
        KernelEnv {
            keys: &test_keys().1,
            key_width: self.key,
            value_width: self.value,
            pool: None,
            batch_rows: 2,
        }
    }

    fn query(&self, key: u64) -> Vec<tfhe::shortint::Ciphertext> {
        let (client, server) = test_keys();
        let bytes = client.encrypt_key(key, self.key).unwrap();
        decode_integer(&bytes, "key", Kind::QueryKey, server.key_id, self.key).unwrap()
    }

    fn value_ct(&self, value: u64) -> Vec<tfhe::shortint::Ciphertext> {
        let (client, server) = test_keys();
        let bytes = client.encrypt_value(value, self.value).unwrap();
        decode_integer(&bytes, "value", Kind::Value, server.key_id, self.value).unwrap()
    }

    fn get(&self, key: u64) -> Option<u64> {
        self.get_blocks(&self.query(key))
    }

    fn get_blocks(&self, key: &[tfhe::shortint::Ciphertext]) -> Option<u64> {
        let (client, server) = test_keys();
        let out = oblivious_get(&self.env(), key, &self.rows, &mut |_, _| {}).unwrap();
        let bytes =
            crate::codec::encode_get_result(server, self.value, out.found, out.value).unwrap();
        client.decrypt_get(&bytes).unwrap()
    }

    fn set(&mut self, key: u64, value: u64) -> SetStatus {
        self.set_blocks(&self.query(key), &self.value_ct(value))
    }

    fn set_blocks(
        &mut self,
        key: &[tfhe::shortint::Ciphertext],
        value: &[tfhe::shortint::Ciphertext],
    ) -> SetStatus {
        let (client, server) = test_keys();
        let mut batches = 0;
        let out = oblivious_set(&self.env(), key, value, &self.rows, &mut |_, _| {
            batches += 1
        })
        .unwrap();
        assert!(batches >= 2, "progress hook runs between batches");
        assert_eq!(out.rows.len(), self.rows.len(), "SET rewrites every row");
        let status = crate::codec::encode_status(server, Kind::SetStatus, out.status).unwrap();
        self.rows = out.rows;
        client.decrypt_set_status(&status).unwrap()
    }

    fn delete(&mut self, key: u64) -> DeleteStatus {
        self.delete_with(key, DeleteMode::Tombstone)
    }

    fn delete_with(&mut self, key: u64, mode: DeleteMode) -> DeleteStatus {
        self.delete_blocks(&self.query(key), mode)
    }

    fn delete_blocks(
        &mut self,
        key: &[tfhe::shortint::Ciphertext],
        mode: DeleteMode,
    ) -> DeleteStatus {
        let (client, server) = test_keys();
        let out = oblivious_delete(&self.env(), key, &self.rows, mode, &mut |_, _| {}).unwrap();
        assert_eq!(out.rows.len(), self.rows.len(), "DELETE rewrites every row");
        let status = crate::codec::encode_status(server, Kind::DeleteStatus, out.status).unwrap();
        self.rows = out.rows;
        client.decrypt_delete_status(&status).unwrap()
    }

    /// Decrypted contents, slot by slot: Some((key, value)) for occupied slots.
    fn contents(&self) -> Vec<Option<(u64, u64)>> {
        self.raw_contents()
            .into_iter()
            .map(|(occupied, k, v)| occupied.then_some((k, v)))
            .collect()
    }

    /// Every slot as stored: (occupied, key, value), vacant slots' contents included.
    fn raw_contents(&self) -> Vec<(bool, u64, u64)> {
        let (client, server) = test_keys();
        self.rows
            .iter()
            .map(|r| decrypt_stored_row(client, server, r, self.key, self.value))
            .collect()
    }
}

#[test]
fn get_on_an_empty_table_misses_even_for_key_zero() {
    // Empty slots hold key 0; the vacant flag must keep them from matching.
    let t = Table::new(2, Width::W8, Width::W8);
    assert_eq!(t.get(0), None);
    assert_eq!(t.get(200), None);
}

#[test]
fn insert_then_hit_and_miss() {
    let mut t = Table::new(3, Width::W8, Width::W8);
    assert_eq!(t.set(7, 42), SetStatus::Inserted);
    assert_eq!(t.set(9, 255), SetStatus::Inserted);
    assert_eq!(t.contents(), vec![Some((7, 42)), Some((9, 255)), None]);
    assert_eq!(t.get(7), Some(42));
    assert_eq!(t.get(9), Some(255));
    assert_eq!(t.get(8), None);
    assert_eq!(t.get(0), None, "the empty slot (key 0) does not match");
}

#[test]
fn update_keeps_exactly_one_entry() {
    let mut t = Table::new(3, Width::W8, Width::W8);
    assert_eq!(t.set(5, 1), SetStatus::Inserted);
    assert_eq!(t.set(5, 2), SetStatus::Updated);
    assert_eq!(t.set(5, 2), SetStatus::Updated, "SET is idempotent");
    assert_eq!(t.contents(), vec![Some((5, 2)), None, None]);
    assert_eq!(t.get(5), Some(2));
}

#[test]
fn full_table_reports_full_and_changes_nothing_but_updates_still_work() {
    let mut t = Table::new(2, Width::W8, Width::W8);
    t.set(1, 10);
    t.set(2, 20);
    assert_eq!(t.set(3, 30), SetStatus::Full);
    assert_eq!(t.contents(), vec![Some((1, 10)), Some((2, 20))]);
    assert_eq!(
        t.set(2, 21),
        SetStatus::Updated,
        "an update needs no free slot"
    );
    assert_eq!(t.contents(), vec![Some((1, 10)), Some((2, 21))]);
}

#[test]
fn delete_present_and_absent_then_reuse_the_slot() {
    let mut t = Table::new(3, Width::W8, Width::W8);
    t.set(1, 10);
    t.set(2, 20);
    t.set(3, 30);
    assert_eq!(t.delete(2), DeleteStatus::Deleted);
    assert_eq!(t.contents(), vec![Some((1, 10)), None, Some((3, 30))]);
    assert_eq!(t.get(2), None);
    assert_eq!(t.delete(2), DeleteStatus::NotFound);
    assert_eq!(t.delete(99), DeleteStatus::NotFound);
    assert_eq!(t.contents(), vec![Some((1, 10)), None, Some((3, 30))]);
    // the freed slot is the first free one: the next insert lands there
    assert_eq!(t.set(4, 40), SetStatus::Inserted);
    assert_eq!(
        t.contents(),
        vec![Some((1, 10)), Some((4, 40)), Some((3, 30))]
    );
    assert_eq!(t.get(3), Some(30));
}

#[test]
fn a_tombstone_keeps_its_old_pair_hidden_until_reused() {
    let mut t = Table::new(3, Width::W8, Width::W8);
    t.set(1, 10);
    t.set(2, 20);
    assert_eq!(t.delete(1), DeleteStatus::Deleted);
    // The slot is vacant but still holds the deleted pair (encrypted): only the flag changed.
    assert_eq!(
        t.raw_contents(),
        vec![(false, 1, 10), (true, 2, 20), (false, 0, 0)]
    );
    // Nothing reads through the flag: GET misses, DELETE finds nothing, SET inserts.
    assert_eq!(t.get(1), None);
    assert_eq!(t.delete(1), DeleteStatus::NotFound);
    assert_eq!(
        t.set(1, 11),
        SetStatus::Inserted,
        "re-inserting is an insert"
    );
    assert_eq!(t.contents(), vec![Some((1, 11)), Some((2, 20)), None]);
    // An insert of another key into a tombstone overwrites every key block.
    t.delete(1);
    assert_eq!(t.set(0xEE, 0x77), SetStatus::Inserted);
    assert_eq!(t.contents(), vec![Some((0xEE, 0x77)), Some((2, 20)), None]);
    assert_eq!(t.get(1), None);
    assert_eq!(t.get(0xEE), Some(0x77));
}

#[test]
fn set_rewrites_every_old_new_block_pair_exactly() {
    // SET's masked update stores `old + ((new − old) mod 8)` un-normalised and relies on
    // the compression's × 4 shift to drop the 8: cover all 16 (old, new) block pairs, in
    // value blocks (an update) and key blocks (an insert into a tombstone).
    let from_blocks = |b: [u64; 4]| b[0] | (b[1] << 2) | (b[2] << 4) | (b[3] << 6);
    let base = [0, 1, 2, 3];
    for shift in 0..4 {
        let shifted = from_blocks([0, 1, 2, 3].map(|i| base[(i + shift) % 4]));
        let mut t = Table::new(1, Width::W8, Width::W8);
        t.set(from_blocks(base), from_blocks(base));
        assert_eq!(t.set(from_blocks(base), shifted), SetStatus::Updated);
        assert_eq!(t.contents(), vec![Some((from_blocks(base), shifted))]);
        t.delete(from_blocks(base));
        assert_eq!(t.set(shifted, 0), SetStatus::Inserted);
        assert_eq!(t.contents(), vec![Some((shifted, 0))]);
    }
}

/// Flip the body's top bit: the padding bit of the plaintext, as one flipped bit of a
/// payload does. The ciphertext stays conformant and decodes; its phase is `16 + m`.
fn flip_padding(block: &mut tfhe::shortint::Ciphertext) {
    let body = block.ct.get_mut_body();
    *body.data ^= 1 << 63;
}

#[test]
fn inputs_with_the_padding_bit_set_cannot_touch_other_slots() {
    let mut t = Table::new(3, Width::W8, Width::W8);
    t.set(1, 11);

    // SET key 2 to 0xFF whose block 0 carries the padding bit. A single cleaning PBS
    // turns it into -3, which the masked update read as a write into key 1's slot
    // (11 became 9); the second cleaning PBS maps it to 0.
    let mut value = t.value_ct(0xFF);
    flip_padding(&mut value[0]);
    assert_eq!(t.set_blocks(&t.query(2), &value), SetStatus::Inserted);
    assert_eq!(t.contents(), vec![Some((1, 11)), Some((2, 0xFC)), None]);

    // DELETE with key 9 = blocks [1, 2, 0, 0], blocks 0 and 1 padded: cleaned (once) they
    // are [-1, -2, 0, 0]. The bivariate `neq` on `4k + q` made terms +1 and -1 against key
    // 1 = [1, 0, 0, 0] that cancelled, a false match that tombstoned key 1; `block_neq`
    // reads each negated block as a mismatch.
    let mut key = t.query(9);
    flip_padding(&mut key[0]);
    flip_padding(&mut key[1]);
    assert_eq!(
        t.delete_blocks(&key, DeleteMode::Tombstone),
        DeleteStatus::NotFound
    );
    assert_eq!(t.contents(), vec![Some((1, 11)), Some((2, 0xFC)), None]);
    assert_eq!(
        t.get_blocks(&key),
        None,
        "the same key finds nothing either"
    );
}

#[test]
fn a_negated_query_block_mismatches_every_stored_block() {
    // Keys 0..=3 differ only in block 0, so slot by slot the stored block 0 takes every
    // value a block can. A query whose block 0 is y ∈ [1, 3] with the padding bit set is
    // cleaned to -y: it must miss all four, where unflipped it hits key y.
    let mut t = Table::new(4, Width::W8, Width::W8);
    for k in 0..4 {
        t.set(k, 40 + k);
    }
    for y in 1..4 {
        assert_eq!(t.get(y), Some(40 + y));
        let mut key = t.query(y);
        flip_padding(&mut key[0]);
        assert_eq!(t.get_blocks(&key), None, "padded block {y}");
    }
}

#[test]
fn a_scrubbing_delete_zeroes_every_vacant_slot() {
    let mut t = Table::new(4, Width::W8, Width::W8);
    t.set(1, 10);
    t.set(2, 20);
    t.set(3, 30);
    t.delete(1); // tombstone
    assert_eq!(t.delete_with(3, DeleteMode::Scrub), DeleteStatus::Deleted);
    assert_eq!(
        t.raw_contents(),
        vec![(false, 0, 0), (true, 2, 20), (false, 0, 0), (false, 0, 0)],
        "the freed slot and the earlier tombstone are zeroed, live pairs untouched"
    );
    assert_eq!(t.delete_with(9, DeleteMode::Scrub), DeleteStatus::NotFound);
    assert_eq!(t.get(2), Some(20));
}

#[test]
fn u64_keys_and_values() {
    let mut t = Table::new(2, Width::W64, Width::W64);
    let k = 0xDEAD_BEEF_0123_4567;
    assert_eq!(t.set(k, u64::MAX), SetStatus::Inserted);
    assert_eq!(t.get(k), Some(u64::MAX));
    // differs from k only in the last block: exercises every block of the comparison
    assert_eq!(t.get(k ^ 1), None);
    assert_eq!(t.get(k ^ (1 << 63)), None);
}

#[test]
fn mixed_widths() {
    let mut t = Table::new(2, Width::W16, Width::W32);
    assert_eq!(t.set(65_535, 4_000_000_000), SetStatus::Inserted);
    assert_eq!(t.get(65_535), Some(4_000_000_000));
    assert_eq!(t.get(65_534), None);
}

#[test]
fn batched_get_matches_separate_gets_including_repeats_and_misses() {
    let mut t = Table::new(3, Width::W8, Width::W8);
    t.set(7, 42);
    t.set(9, 255);
    let keys = [9u64, 8, 7, 9, 0];
    let queries: Vec<_> = keys.iter().map(|&k| t.query(k)).collect();
    let refs: Vec<&[tfhe::shortint::Ciphertext]> = queries.iter().map(Vec::as_slice).collect();
    let (client, server) = test_keys();
    let outs = oblivious_get_many(&t.env(), &refs, &t.rows, &mut |_, _| {}).unwrap();
    let got: Vec<Option<u64>> = outs
        .into_iter()
        .map(|o| {
            let bytes = crate::codec::encode_get_result(server, t.value, o.found, o.value).unwrap();
            client.decrypt_get(&bytes).unwrap()
        })
        .collect();
    assert_eq!(got, vec![Some(255), None, Some(42), Some(255), None]);
    let too_many = vec![refs[0]; MAX_BATCH_KEYS + 1];
    assert!(oblivious_get_many(&t.env(), &too_many, &t.rows, &mut |_, _| {}).is_err());
    assert!(oblivious_get_many(&t.env(), &[], &t.rows, &mut |_, _| {}).is_err());
}

#[test]
fn results_and_statuses_are_compressed_lists() {
    // u64 GET answers used to be ~590 KB of uncompressed blocks; now one packed GLWE.
    let t = Table::new(1, Width::W64, Width::W64);
    let (client, server) = test_keys();
    let out = oblivious_get(&t.env(), &t.query(1), &t.rows, &mut |_, _| {}).unwrap();
    let bytes = crate::codec::encode_get_result(server, t.value, out.found, out.value).unwrap();
    assert!(bytes.len() < 4096, "GET result is {} bytes", bytes.len());
    eprintln!("u64 GET result: {} bytes", bytes.len());
    assert_eq!(client.decrypt_get(&bytes).unwrap(), None);
    let status = oblivious_set(
        &t.env(),
        &t.query(1),
        &t.value_ct(2),
        &t.rows,
        &mut |_, _| {},
    )
    .unwrap()
    .status;
    let bytes = crate::codec::encode_status(server, Kind::SetStatus, status).unwrap();
    assert!(bytes.len() < 4096, "status is {} bytes", bytes.len());
    eprintln!("SET status: {} bytes", bytes.len());
    assert_eq!(
        client.decrypt_set_status(&bytes).unwrap(),
        SetStatus::Inserted
    );
    // a status is not a result, and a result of another width does not decode
    assert!(client.decrypt_get(&bytes).is_err());
}
