//! The bucketed layout end to end without Postgres, with the real parameters: a client
//! builds queries, the server runs [`super::ops`] over an in-memory store, and every
//! stored bucket is decrypted after each operation and compared with an oracle.

use super::client::Placement;
use super::ops::{self, BucketQuery, VecStore};
use super::{empty_bucket_row, BucketLayout, SlotFormat};
use crate::client_rows::ClearRow;
use crate::codec::decode_integer;
use crate::envelope::Kind;
use crate::kernels::{DeleteMode, DeleteStatus, KernelEnv, SetStatus};
use crate::keys::{ClientKeys, ServerKeys};
use crate::leveled::equality::EqualityLuts;
use crate::params::Width;
use crate::testkeys::test_keys;
use std::collections::BTreeMap;

/// A bucketed table in memory, with the client and server sides of every operation.
pub(crate) struct Table {
    pub layout: BucketLayout,
    pub store: VecStore,
    /// Writes so far: the state token of this in-memory table.
    pub writes: u64,
}

impl Table {
    pub fn new(server: &ServerKeys, layout: BucketLayout) -> Table {
        let empty = empty_bucket_row(server.key_id, &layout).unwrap();
        Table {
            layout,
            store: VecStore {
                rows: vec![empty; layout.buckets()],
                batch: 3,
            },
            writes: 0,
        }
    }

    fn env<'a>(&self, server: &'a ServerKeys) -> KernelEnv<'a> {
        KernelEnv {
            keys: server,
            key_width: self.layout.key,
            value_width: self.layout.value,
            pool: None,
            batch_rows: 8,
        }
    }

    fn le(width: Width, x: u64) -> Vec<u8> {
        width.le_bytes_of(x, "test").unwrap()
    }

    pub fn query(&self, client: &ClientKeys, key: u64) -> BucketQuery {
        let bytes = client
            .encrypt_bucket_key_le(&self.layout, &Self::le(self.layout.key, key))
            .unwrap();
        let env = ops::check_query(&bytes, "key", client.key_id, &self.layout).unwrap();
        ops::decode_query(&env, "key", client.key_id, &self.layout).unwrap()
    }

    pub fn set(
        &mut self,
        client: &ClientKeys,
        server: &ServerKeys,
        key: u64,
        value: u64,
    ) -> SetStatus {
        let query = self.query(client, key);
        let value = decode_integer(
            &client.encrypt_value(value, self.layout.value).unwrap(),
            "value",
            Kind::Value,
            client.key_id,
            self.layout.value,
        )
        .unwrap();
        let env = self.env(server);
        let status = ops::set(&env, &self.layout, &mut self.store, &query, &value).unwrap();
        self.writes += 1;
        let bytes = crate::codec::encode_status(server, Kind::SetStatus, status).unwrap();
        client.decrypt_set_status(&bytes).unwrap()
    }

    pub fn delete(
        &mut self,
        client: &ClientKeys,
        server: &ServerKeys,
        key: u64,
        mode: DeleteMode,
    ) -> DeleteStatus {
        let query = self.query(client, key);
        let env = self.env(server);
        let status = ops::delete(&env, &self.layout, &mut self.store, &query, mode).unwrap();
        self.writes += 1;
        let bytes = crate::codec::encode_status(server, Kind::DeleteStatus, status).unwrap();
        client.decrypt_delete_status(&bytes).unwrap()
    }

    pub fn get_many(
        &mut self,
        client: &ClientKeys,
        server: &ServerKeys,
        keys: &[u64],
    ) -> Vec<Option<u64>> {
        let queries: Vec<BucketQuery> = keys.iter().map(|&k| self.query(client, k)).collect();
        let env = self.env(server);
        ops::get_many(&env, &self.layout, &mut self.store, &queries)
            .unwrap()
            .into_iter()
            .map(|out| {
                let bytes = crate::codec::encode_get_result(
                    server,
                    self.layout.value,
                    out.found,
                    out.value,
                )
                .unwrap();
                client.decrypt_get(&bytes).unwrap()
            })
            .collect()
    }

    /// A `bucket-leveled-v1` query, decoded as the server decodes it.
    fn leveled_query(&self, client: &ClientKeys, key: u64) -> ops::LeveledBucketQuery {
        let bytes = client
            .encrypt_bucket_key_le(&self.layout, &Self::le(self.layout.key, key))
            .unwrap();
        let env = ops::check_query(&bytes, "key", client.key_id, &self.layout).unwrap();
        ops::decode_leveled_query(&env, "key", client.key_id, &self.layout).unwrap()
    }

    /// The server's GET on a `bucket-leveled-v1` table, opened by the key owner.
    pub fn leveled_get_many(
        &mut self,
        client: &ClientKeys,
        server: &ServerKeys,
        luts: &EqualityLuts,
        keys: &[u64],
    ) -> Vec<Option<u64>> {
        let queries: Vec<_> = keys
            .iter()
            .map(|&k| self.leveled_query(client, k))
            .collect();
        let env = self.env(server);
        let row = self.layout.leveled("test").unwrap().row;
        ops::leveled_get_many(&env, luts, &self.layout, &mut self.store, &queries)
            .unwrap()
            .into_iter()
            .map(|answer| {
                let bytes = answer.encode(server.key_id, row).unwrap();
                client
                    .open_leveled_answer_bytes(row, &bytes)
                    .unwrap()
                    .map(|v| crate::client::u64_of_le(&v).unwrap())
            })
            .collect()
    }

    /// The server's DELETE on a `bucket-leveled-v1` table: whether the key was there.
    pub fn leveled_delete(
        &mut self,
        client: &ClientKeys,
        server: &ServerKeys,
        luts: &EqualityLuts,
        key: u64,
    ) -> bool {
        let query = self.leveled_query(client, key);
        let env = self.env(server);
        let status =
            ops::leveled_delete(&env, luts, &self.layout, &mut self.store, &query).unwrap();
        self.writes += 1;
        let bytes = crate::leveled::messages::encode_status(server.key_id, &status).unwrap();
        client.open_leveled_status(&bytes).unwrap()
    }

    /// The server's answer to a bucket read (fetch), made without the server key; the
    /// state token is the number of writes so far.
    fn fetch(&mut self, client: &ClientKeys, query: &[u8]) -> Vec<u8> {
        let env = super::wire::check_selectors_header(query, client.key_id, &self.layout).unwrap();
        let selectors = super::wire::decode_selectors_payload(&env, &self.layout).unwrap();
        let selected = ops::read(
            client.key_id,
            None,
            &self.layout,
            &mut self.store,
            &selectors,
        )
        .unwrap();
        super::wire::encode_read_result(client.key_id, &self.layout, &selected, self.writes)
            .unwrap()
    }

    /// The bucket read (fetch) of `key`.
    pub fn read(&mut self, client: &ClientKeys, key: u64) -> Option<u64> {
        let key_le = Self::le(self.layout.key, key);
        let query = client.bucket_read_query(&self.layout, &key_le).unwrap();
        let answer = self.fetch(client, &query);
        client
            .open_bucket_read(&self.layout, &answer, &key_le)
            .unwrap()
            .map(|v| crate::client::u64_of_le(&v).unwrap())
    }

    /// The server's side of `fhe_write`: the token check, then the write-back.
    fn write(&mut self, client: &ClientKeys, write: &[u8]) {
        let env = super::wire::check_write_header(write, client.key_id, &self.layout).unwrap();
        let decoded = super::wire::decode_write_payload(&env, &self.layout).unwrap();
        assert_eq!(
            decoded.state, self.writes,
            "the write follows the last read"
        );
        ops::write_deltas(client.key_id, None, &self.layout, &mut self.store, decoded).unwrap();
        self.writes += 1;
    }

    /// The key owner's SET: a bucket read, then a write (no bootstrap anywhere).
    pub fn put_by_owner(&mut self, client: &ClientKeys, key: u64, value: u64) -> SetStatus {
        let access = client.bucket_access(&self.layout, &Self::le(self.layout.key, key));
        let answer = self.fetch(client, &access.read_query(client).unwrap());
        let (status, write) = access
            .upsert(client, &answer, &Self::le(self.layout.value, value))
            .unwrap();
        self.write(client, &write);
        status
    }

    /// The key owner's DELETE: a bucket read, then a write.
    pub fn delete_by_owner(&mut self, client: &ClientKeys, key: u64, scrub: bool) -> DeleteStatus {
        let access = client.bucket_access(&self.layout, &Self::le(self.layout.key, key));
        let answer = self.fetch(client, &access.read_query(client).unwrap());
        let (status, write) = access.remove(client, &answer, scrub).unwrap();
        self.write(client, &write);
        status
    }

    /// Every stored slot, decrypted: bucket by bucket.
    pub fn contents(&self, client: &ClientKeys) -> Vec<Vec<ClearRow>> {
        self.store
            .rows
            .iter()
            .map(|r| client.open_bucket(&self.layout, r).unwrap())
            .collect()
    }

    /// The occupied entries, as the key owner reads them.
    pub fn entries(&self, client: &ClientKeys) -> BTreeMap<u64, u64> {
        let u = |le: &[u8]| crate::client::u64_of_le(le).unwrap();
        self.contents(client)
            .into_iter()
            .flatten()
            .filter(|r| r.occupied)
            .map(|r| (u(&r.key), u(&r.value)))
            .collect()
    }
}

#[test]
fn set_get_read_delete_on_a_bucketed_table_match_an_oracle() {
    let (client, server) = test_keys();
    // 3 buckets per half (not a power of two: the trees pad), 2 slots each.
    let layout = BucketLayout::new(Width::W8, Width::W8, 2, 3).unwrap();
    let mut t = Table::new(server, layout);
    let mut oracle = BTreeMap::new();
    assert_eq!(t.entries(client), oracle, "a new table is empty");

    for (k, v) in [(5u64, 50u64), (9, 90), (200, 7)] {
        assert_eq!(
            t.set(client, server, k, v),
            SetStatus::Inserted,
            "insert {k}"
        );
        oracle.insert(k, v);
        assert_eq!(t.entries(client), oracle, "after inserting {k}");
    }
    assert_eq!(t.set(client, server, 9, 91), SetStatus::Updated);
    oracle.insert(9, 91);
    assert_eq!(t.entries(client), oracle, "an update keeps one entry");
    // Every key is in one of its candidates.
    for (bucket, slots) in t.contents(client).iter().enumerate() {
        for slot in slots.iter().filter(|s| s.occupied) {
            let (l, r) = client.bucket_candidates(&layout, &slot.key);
            assert!(
                bucket == l || bucket == layout.buckets_per_half + r,
                "bucket {bucket}"
            );
        }
    }

    assert_eq!(
        t.get_many(client, server, &[5, 9, 200, 6]),
        vec![Some(50), Some(91), Some(7), None],
        "batched GET: hits and a miss"
    );
    assert_eq!(t.read(client, 9), Some(91), "bucket read, hit");
    assert_eq!(t.read(client, 6), None, "bucket read, miss");

    assert_eq!(
        t.delete(client, server, 5, DeleteMode::Tombstone),
        DeleteStatus::Deleted
    );
    assert_eq!(
        t.delete(client, server, 5, DeleteMode::Tombstone),
        DeleteStatus::NotFound
    );
    oracle.remove(&5);
    assert_eq!(t.entries(client), oracle);
    assert_eq!(t.get_many(client, server, &[5]), vec![None]);
    // A tombstone keeps the deleted pair, encrypted and vacant, until reused.
    let tombstones = t
        .contents(client)
        .into_iter()
        .flatten()
        .filter(|r| !r.occupied && r.key == [5])
        .count();
    assert_eq!(tombstones, 1);
    // Scrub zeroes vacant candidate slots.
    assert_eq!(
        t.delete(client, server, 200, DeleteMode::Scrub),
        DeleteStatus::Deleted
    );
    oracle.remove(&200);
    assert_eq!(t.entries(client), oracle);
    let (l, r) = client.bucket_candidates(&layout, &[200]);
    let contents = t.contents(client);
    for b in [l, layout.buckets_per_half + r] {
        for slot in contents[b].iter().filter(|s| !s.occupied) {
            assert_eq!(
                (slot.key.as_slice(), slot.value.as_slice()),
                (&[0u8][..], &[0u8][..])
            );
        }
    }
    // The freed slots are reused.
    assert_eq!(t.set(client, server, 5, 55), SetStatus::Inserted);
    oracle.insert(5, 55);
    assert_eq!(t.entries(client), oracle);
}

#[test]
fn a_set_is_refused_when_both_candidates_are_full() {
    let (client, server) = test_keys();
    // One bucket per half: every key has the same two candidates, 2 slots in all.
    let layout = BucketLayout::new(Width::W8, Width::W8, 1, 1).unwrap();
    let mut t = Table::new(server, layout);
    assert_eq!(t.set(client, server, 1, 10), SetStatus::Inserted);
    assert_eq!(t.set(client, server, 2, 20), SetStatus::Inserted);
    let before = t.store.rows.clone();
    assert_eq!(t.set(client, server, 3, 30), SetStatus::Full);
    assert_eq!(
        t.entries(client),
        BTreeMap::from([(1, 10), (2, 20)]),
        "nothing changed"
    );
    assert_ne!(t.store.rows, before, "but every row was rewritten");
    assert_eq!(
        t.set(client, server, 2, 21),
        SetStatus::Updated,
        "updates still work"
    );
}

#[test]
fn every_write_changes_every_row() {
    let (client, server) = test_keys();
    let layout = BucketLayout::new(Width::W8, Width::W8, 2, 5).unwrap();
    let mut t = Table::new(server, layout);
    t.set(client, server, 1, 1);
    let before = t.store.rows.clone();
    t.delete(client, server, 77, DeleteMode::Tombstone);
    for (i, (a, b)) in before.iter().zip(&t.store.rows).enumerate() {
        assert_ne!(
            a, b,
            "bucket {i} was not rewritten by a DELETE of an absent key"
        );
    }
}

/// Import-style placement by the key owner agrees with the server's SET rule.
#[test]
fn client_placement_and_server_sets_build_the_same_table() {
    let (client, server) = test_keys();
    let layout = BucketLayout::new(Width::W8, Width::W8, 2, 2).unwrap();
    let mut t = Table::new(server, layout);
    let mut placement = Placement::new(layout);
    for k in [3u64, 17, 40, 41, 99] {
        let st = t.set(client, server, k, k + 1);
        let placed = placement
            .upsert(client, vec![k as u8], vec![(k + 1) as u8])
            .unwrap();
        assert_eq!(st != SetStatus::Full, placed, "key {k}");
    }
    let by_server: Vec<Vec<super::client::PlacedSlot>> = t
        .contents(client)
        .into_iter()
        .map(|b| {
            b.into_iter()
                .map(|r| r.occupied.then_some((r.key, r.value)))
                .collect()
        })
        .collect();
    let sealed = placement.seal(client, |_, _| {}).unwrap();
    let by_client: Vec<Vec<super::client::PlacedSlot>> = sealed
        .iter()
        .map(|r| {
            client
                .open_bucket(&layout, r)
                .unwrap()
                .into_iter()
                .map(|r| r.occupied.then_some((r.key, r.value)))
                .collect()
        })
        .collect();
    assert_eq!(by_server, by_client);
    // Sealed rows work with the server's kernels.
    t.store.rows = sealed;
    assert_eq!(t.get_many(client, server, &[17, 18]), vec![Some(18), None]);
}

/// The key owner's two-round writes (bucket read, then `fhe_write` of encrypted deltas)
/// interleave with the server's one-round kernels on the same table.
#[test]
fn owner_writes_and_server_kernels_share_a_table() {
    let (client, server) = test_keys();
    let layout = BucketLayout::new(Width::W8, Width::W8, 2, 3).unwrap();
    let mut t = Table::new(server, layout);
    let mut oracle = BTreeMap::new();
    assert_eq!(t.put_by_owner(client, 10, 1), SetStatus::Inserted);
    assert_eq!(t.put_by_owner(client, 11, 2), SetStatus::Inserted);
    assert_eq!(t.put_by_owner(client, 10, 3), SetStatus::Updated);
    oracle.extend([(10, 3), (11, 2)]);
    assert_eq!(t.entries(client), oracle);
    // The server's kernels read what the owner wrote, and the other way round.
    assert_eq!(
        t.get_many(client, server, &[10, 11, 12]),
        vec![Some(3), Some(2), None]
    );
    assert_eq!(t.set(client, server, 12, 4), SetStatus::Inserted);
    oracle.insert(12, 4);
    assert_eq!(t.read(client, 12), Some(4));
    assert_eq!(t.put_by_owner(client, 12, 5), SetStatus::Updated);
    oracle.insert(12, 5);
    assert_eq!(t.entries(client), oracle);
    assert_eq!(t.delete_by_owner(client, 11, false), DeleteStatus::Deleted);
    assert_eq!(t.delete_by_owner(client, 11, false), DeleteStatus::NotFound);
    oracle.remove(&11);
    assert_eq!(t.entries(client), oracle);
    assert_eq!(t.get_many(client, server, &[11]), vec![None]);
    // Scrub zeroes every vacant slot of the candidate buckets.
    assert_eq!(t.delete_by_owner(client, 10, true), DeleteStatus::Deleted);
    oracle.remove(&10);
    assert_eq!(t.entries(client), oracle);
    let (l, r) = client.bucket_candidates(&layout, &[10]);
    let contents = t.contents(client);
    for b in [l, layout.buckets_per_half + r] {
        for slot in contents[b].iter().filter(|s| !s.occupied) {
            assert_eq!(
                (slot.key.as_slice(), slot.value.as_slice()),
                (&[0u8][..], &[0u8][..])
            );
        }
    }
    // Full: a one-bucket table takes two keys, then refuses, writing a zero delta.
    let mut small = Table::new(
        server,
        BucketLayout::new(Width::W8, Width::W8, 1, 1).unwrap(),
    );
    small.put_by_owner(client, 1, 1);
    small.put_by_owner(client, 2, 2);
    let before = small.store.rows.clone();
    assert_eq!(small.put_by_owner(client, 3, 3), SetStatus::Full);
    assert_ne!(
        small.store.rows, before,
        "every row is rewritten all the same"
    );
    assert_eq!(small.entries(client), BTreeMap::from([(1, 1), (2, 2)]));
}

/// A `bucket-leveled-v1` table through the same operations: the key owner's reads and
/// writes (no bootstrap), the server's leveled GET and DELETE on the candidates only, and
/// the key owner's insert over a tombstone the server's DELETE left (the write must
/// replace the old pair, not add to it). The block kernels refuse the table.
#[test]
fn a_leveled_bucket_table_serves_owner_writes_and_server_kernels() {
    let (client, server) = test_keys();
    let luts = EqualityLuts::new(&server.sks);
    let layout =
        BucketLayout::of_format(Width::W16, Width::W16, 2, 3, SlotFormat::Leveled).unwrap();
    let mut t = Table::new(server, layout);
    let mut oracle = BTreeMap::new();
    assert_eq!(t.entries(client), oracle, "an empty table reads empty");
    assert_eq!(t.put_by_owner(client, 1000, 1), SetStatus::Inserted);
    assert_eq!(t.put_by_owner(client, 1100, 2), SetStatus::Inserted);
    assert_eq!(t.put_by_owner(client, 1000, 0xBEEF), SetStatus::Updated);
    oracle.extend([(1000, 0xBEEF), (1100, 2)]);
    assert_eq!(t.entries(client), oracle);
    assert_eq!(
        t.leveled_get_many(client, server, &luts, &[1000, 1100, 1200]),
        vec![Some(0xBEEF), Some(2), None]
    );
    assert!(t.leveled_delete(client, server, &luts, 1100));
    assert!(!t.leveled_delete(client, server, &luts, 1100));
    oracle.remove(&1100);
    assert_eq!(t.entries(client), oracle);
    assert_eq!(t.read(client, 1100), None);
    assert_eq!(t.read(client, 1000), Some(0xBEEF));

    // One slot per bucket, one bucket per half: the third key can only go where the
    // server's DELETE left a tombstone.
    let one = BucketLayout::of_format(Width::W16, Width::W16, 1, 1, SlotFormat::Leveled).unwrap();
    let mut small = Table::new(server, one);
    small.put_by_owner(client, 0x0F0F, 0x1111);
    small.put_by_owner(client, 0x00FF, 0x2222);
    assert!(small.leveled_delete(client, server, &luts, 0x0F0F));
    assert_eq!(
        small.put_by_owner(client, 0x7A5A, 0x3333),
        SetStatus::Inserted
    );
    assert_eq!(
        small.entries(client),
        BTreeMap::from([(0x00FF, 0x2222), (0x7A5A, 0x3333)])
    );
    assert_eq!(
        small.leveled_get_many(client, server, &luts, &[0x7A5A, 0x0F0F, 0x00FF]),
        vec![Some(0x3333), None, Some(0x2222)]
    );

    // The block kernels refuse a leveled table before reading anything.
    let env = t.env(server);
    let refused = ops::get_many(&env, &layout, &mut t.store, &[])
        .err()
        .unwrap();
    assert!(
        refused.to_string().contains("bucket-leveled-v1"),
        "{refused}"
    );
}

/// Hostile input to a `bucket-leveled-v1` table, the core half of the hostile corpus
/// (crates/fhe-kv-client/tests/bucketed.rs sends such input through SQL): queries whose
/// inner key is of the other format, of another width, of a forged chunk count or GGSW
/// size, and rows of the other slot format, each refused with a clear error.
#[test]
fn hostile_leveled_bucket_queries_and_rows_are_refused() {
    use super::wire;
    use crate::envelope::Envelope;
    use crate::leveled::owner::encrypt_query;
    use crate::leveled::wire::{limits, LeveledQuery};
    use crate::leveled::ChunkLayout;
    let (client, server) = test_keys();
    let leveled =
        BucketLayout::of_format(Width::W16, Width::W16, 2, 3, SlotFormat::Leveled).unwrap();
    let blocks = BucketLayout::new(Width::W16, Width::W16, 2, 3).unwrap();
    let key = 7u16.to_le_bytes().to_vec();
    let chunks = leveled.leveled("a test").unwrap().row.key;
    // A bucket query around any inner envelope, with genuine selectors.
    let wrap = |inner: Vec<u8>| {
        let selectors = wire::encrypt_selectors(
            &client.glwe,
            &leveled,
            client.bucket_candidates(&leveled, &key),
        );
        wire::encode_query(server.key_id, &leveled, inner, selectors).unwrap()
    };
    let forged_inner = |layout: ChunkLayout, query: LeveledQuery| {
        let mut payload = Vec::new();
        tfhe::safe_serialization::safe_serialize(&query, &mut payload, limits::QUERY).unwrap();
        Envelope::encode(
            Kind::LeveledQueryKey,
            layout.width.bits() as u16,
            server.key_id,
            &payload,
        )
    };
    let refused = |bytes: &[u8]| -> String {
        let env = match ops::check_query(bytes, "key", server.key_id, &leveled) {
            Ok(env) => env,
            Err(e) => return e.to_string(),
        };
        match ops::decode_leveled_query(&env, "key", server.key_id, &leveled) {
            Ok(_) => panic!("a hostile query was accepted"),
            Err(e) => e.to_string(),
        }
    };

    // The genuine query decodes.
    let genuine = client.encrypt_bucket_key_le(&leveled, &key).unwrap();
    let env = ops::check_query(&genuine, "key", server.key_id, &leveled).unwrap();
    let decoded = ops::decode_leveled_query(&env, "key", server.key_id, &leveled).unwrap();
    assert_eq!(decoded.chunks.len(), chunks.chunks());

    // A bucket-v1 query (an integer query key inside) on a leveled bucket table.
    let e = refused(&client.encrypt_bucket_key_le(&blocks, &key).unwrap());
    assert!(e.contains("leveled_query_key"), "{e}");
    // A leveled query of another key width inside.
    let wide = ChunkLayout::new(Width::W32);
    let e = refused(&wrap(
        client.leveled_query_key(wide, &[7, 0, 0, 0]).unwrap(),
    ));
    assert!(e.contains("32") && e.contains("16"), "{e}");
    // A forged chunk count and a forged GGSW size under a correct header.
    let mut short = encrypt_query(&client.glwe, chunks, &key);
    short.chunks.pop();
    let e = refused(&wrap(forged_inner(chunks, short)));
    assert!(e.contains("GGSWs"), "{e}");
    let mut cut = encrypt_query(&client.glwe, chunks, &key);
    cut.chunks[0].data.pop();
    let e = refused(&wrap(forged_inner(chunks, cut)));
    assert!(e.contains("GGSWs"), "{e}");
    // An inner envelope larger than a leveled query may be is refused before decoding.
    let big = Envelope::encode(
        Kind::LeveledQueryKey,
        16,
        server.key_id,
        &vec![0u8; limits::QUERY as usize + 1],
    );
    assert!(!refused(&wrap(big)).is_empty());

    // Rows of one slot format are not rows of the other: their bodies count differs.
    let blocks_row = empty_bucket_row(server.key_id, &blocks).unwrap();
    let leveled_row = empty_bucket_row(server.key_id, &leveled).unwrap();
    for (row, layout) in [(&blocks_row, &leveled), (&leveled_row, &blocks)] {
        match wire::decode_row(row, server.key_id, layout) {
            Ok(_) => panic!("a row of the other slot format was accepted"),
            Err(e) => assert!(e.to_string().contains("conformant"), "{e}"),
        }
    }
    assert!(wire::decode_row(&leveled_row, server.key_id, &leveled).is_ok());
}

/// The noise budget under many writes: server-side SETs leave sums of two PBS outputs in
/// their slots, then 1,000 more writes (the key owner's SETs and DELETEs, each rewriting
/// every bucket) add their expansion and storage errors to everything they do not pick.
/// Every slot is then decrypted and its error measured against
/// [`crate::noise::BucketNoise`].
#[test]
fn the_noise_of_1000_writes_stays_within_the_bound() {
    use tfhe::core_crypto::prelude::*;
    let (client, server) = test_keys();
    let layout = BucketLayout::new(Width::W8, Width::W8, 2, 4).unwrap();
    let mut t = Table::new(server, layout);
    for k in 1..=5u64 {
        assert_ne!(t.set(client, server, k, 100 + k), SetStatus::Full);
    }
    let mut oracle: BTreeMap<u64, u64> = t.entries(client);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let started = std::time::Instant::now();
    let writes = 1000;
    for i in 0..writes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = 10 + x % 12;
        if i % 5 == 4 {
            if t.delete_by_owner(client, key, false) == DeleteStatus::Deleted {
                oracle.remove(&key);
            }
        } else if t.put_by_owner(client, key, i % 256) != SetStatus::Full {
            oracle.insert(key, i % 256);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        t.entries(client),
        oracle,
        "the table holds what 1,005 writes left"
    );

    // The error of every used coefficient: decryption minus the nearest multiple of Δ.
    let mut errors: Vec<f64> = Vec::new();
    for row in &t.store.rows {
        let glwe = super::wire::decode_row(row, client.key_id, &layout).unwrap();
        let mut plain = PlaintextList::new(0u64, PlaintextCount(super::params::coefficients()));
        decrypt_glwe_ciphertext(&client.glwe, &glwe, &mut plain);
        for &p in &plain.as_ref()[..layout.used_coefficients()] {
            let rounded = p.wrapping_add(1 << 58) >> 59 << 59;
            errors.push(p.wrapping_sub(rounded) as i64 as f64 / 2f64.powi(64));
        }
    }
    let n = errors.len() as f64;
    let std = (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    let max = errors.iter().fold(0f64, |m, e| m.max(e.abs()));
    let bound = crate::noise::BucketNoise::new(layout.index_bits(), layout.used_coefficients());
    // What a stored block may carry after this many writes (without the read's selection).
    let stored_bound =
        bound.extracted_after(writes as f64) - layout.index_bits() as f64 * bound.per_level;
    eprintln!(
        "{} writes in {seconds:.1} s on {} buckets; measured over {} coefficients: std 2^{:.2}, \
         max |e| 2^{:.2}; bound: std 2^{:.2} (3 σ_pbs: 2^{:.2}); decryption fails at 2^-6",
        writes + 5,
        layout.buckets(),
        errors.len(),
        std.log2(),
        max.log2(),
        stored_bound.sqrt().log2(),
        (3.0 * bound.pbs).sqrt().log2(),
    );
    // The bound is every coefficient's worst case; the measured variance is an average
    // over n coefficients, whose estimate fluctuates by sqrt(2/n) of itself: allow 3 of
    // those standard errors.
    let slack = 1.0 + 3.0 * (2.0 / n).sqrt();
    assert!(
        std * std <= stored_bound * slack,
        "measured noise above the bound"
    );
    // With ~100 samples, 6 standard deviations of the bound is never reached by chance.
    assert!(
        max <= 6.0 * stored_bound.sqrt(),
        "an error beyond 6 σ of the bound"
    );
    assert!(max < 2f64.powi(-6));
}
