//! The server's operations on a bucketed table, over any row store: the extension's is a
//! Postgres table (a cursor for reads, range reads and UPDATEs for the write-back), the
//! tests' a vector. Each operation is: decode the query, one pass selecting the candidate
//! buckets, the kernel on the candidates, and for SET/DELETE a second pass rewriting every
//! bucket.

use super::kernels::{bucket_delete, bucket_get_many, bucket_locate_many, bucket_set};
use super::select::{extract_candidates, BucketSelection};
use super::wire::Selector;
use super::wire::{self, HalfSelectors};
use super::write_back::{pack_delta, WriteBack};
use super::BucketLayout;
use crate::codec::{check_integer_header, decode_integer_payload};
use crate::envelope::{KeyId, Kind};
use crate::error::Result;
use crate::kernels::{DeleteMode, GetOutcome, KernelEnv, LocateOutcome};
use crate::leveled::equality::EqualityLuts;
use crate::leveled::get::LeveledAnswer;
use crate::leveled::in_bucket::{leveled_bucket_delete, leveled_bucket_get, LeveledBucketDelete};
use crate::runtime::Runner;
use std::cell::RefCell;
use std::time::Instant;
use tfhe::core_crypto::prelude::{GlweCiphertextOwned, LweCiphertextOwned};
use tfhe::shortint::Ciphertext;

thread_local! {
    /// Seconds spent per phase by the operations run on this thread since the last
    /// [`take_phases`]: the extension logs them (DEBUG1), the benchmark prints them.
    static PHASES: RefCell<Vec<(&'static str, f64)>> = const { RefCell::new(Vec::new()) };
}

/// The phases recorded on this thread since the last call, in order.
pub fn take_phases() -> Vec<(&'static str, f64)> {
    PHASES.with_borrow_mut(std::mem::take)
}

/// Run `f`, recording its duration as phase `name`.
fn phase<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    PHASES.with_borrow_mut(|p| p.push((name, started.elapsed().as_secs_f64())));
    out
}

/// Computes a batch's new rows from its stored rows (the write-back of one batch).
pub type Rewrite<'a> = dyn FnMut(&[Vec<u8>]) -> Result<Vec<Vec<u8>>> + 'a;

/// Where a bucketed table's rows live. Both passes visit every bucket in bucket order,
/// in batches; an implementation may check for cancellation between batches.
pub trait BucketStore {
    /// Hand every stored bucket to `visit`, batch by batch.
    fn scan(&mut self, visit: &mut dyn FnMut(&[Vec<u8>]) -> Result<()>) -> Result<()>;

    /// Replace every stored bucket by what `rewrite` makes of it, batch by batch. Nothing
    /// may be visible to others unless every batch succeeded (the extension runs it in
    /// the statement's transaction).
    fn rewrite(&mut self, rewrite: &mut Rewrite<'_>) -> Result<()>;
}

/// A decoded query key of a bucketed table.
pub struct BucketQuery {
    /// The key's blocks (not yet cleaned: the kernels do that).
    pub key: Vec<Ciphertext>,
    pub selectors: HalfSelectors,
}

/// Check a `bucket_query_key` envelope's header for a table (cheap; run it on every
/// argument before decoding any payload).
pub fn check_query<'a>(
    bytes: &'a [u8],
    what: &'static str,
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<crate::envelope::Envelope<'a>> {
    wire::check_query_header(bytes, what, key_id, layout)
}

/// Decode a checked query: the selectors, and the inner `query_key` envelope like any
/// query key (header, size limit, conformance).
pub fn decode_query(
    env: &crate::envelope::Envelope<'_>,
    what: &'static str,
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<BucketQuery> {
    let (key_bytes, selectors) = wire::decode_query_payload(env, what, layout)?;
    let inner = check_integer_header(&key_bytes, what, Kind::QueryKey, key_id, layout.key)?;
    let key = decode_integer_payload(&inner, what, layout.key)?;
    Ok(BucketQuery { key, selectors })
}

/// One pass selecting every query's candidate buckets.
pub fn select(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    selectors: &[&HalfSelectors],
) -> Result<Vec<[GlweCiphertextOwned<u64>; 2]>> {
    phase("select", || {
        let mut selection = BucketSelection::new(env.keys.key_id, *layout, selectors)?;
        store.scan(&mut |rows| selection.push(env.pool, rows))?;
        selection.finish(env.pool)
    })
}

/// The bucket read (`fhe_fetch` on a bucketed table): the two selected buckets, as stored.
/// No server key is needed, so it takes the key_id and pool alone.
pub fn read(
    key_id: KeyId,
    pool: Option<&dyn Runner>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    selectors: &HalfSelectors,
) -> Result<[GlweCiphertextOwned<u64>; 2]> {
    let mut selection = BucketSelection::new(key_id, *layout, &[selectors])?;
    store.scan(&mut |rows| selection.push(pool, rows))?;
    Ok(selection
        .finish(pool)?
        .pop()
        .expect("one query, one selection"))
}

/// A key owner's write (`fhe_write`): add its deltas to every bucket through the expansion
/// trees. No server key and no bootstrap; the caller has checked the state token under the
/// writer lock.
pub fn write_deltas(
    key_id: KeyId,
    pool: Option<&dyn Runner>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    write: wire::DecodedWrite,
) -> Result<()> {
    write_back_all(key_id, pool, layout, store, &write.selectors, write.deltas)
}

/// The write-back pass: every bucket rewritten with its leaf of the two deltas'
/// expansion trees.
fn write_back_all(
    key_id: KeyId,
    pool: Option<&dyn Runner>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    selectors: &HalfSelectors,
    deltas: [GlweCiphertextOwned<u64>; 2],
) -> Result<()> {
    phase("write", || {
        let mut write_back = WriteBack::new(key_id, *layout, selectors, deltas);
        store.rewrite(&mut |rows| write_back.rewrite(pool, rows))?;
        write_back.finish()
    })
}

/// Private GET of several keys (one pass, each key its own trees).
pub fn get_many(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    queries: &[BucketQuery],
) -> Result<Vec<GetOutcome>> {
    layout.expect_blocks("this GET")?;
    let selectors: Vec<&HalfSelectors> = queries.iter().map(|q| &q.selectors).collect();
    let selected = select(env, layout, store, &selectors)?;
    let candidates: Vec<_> = env.install(|| {
        selected
            .iter()
            .map(|s| extract_candidates(layout, s))
            .collect()
    });
    let keys: Vec<&[Ciphertext]> = queries.iter().map(|q| q.key.as_slice()).collect();
    phase("kernel", || {
        bucket_get_many(env, layout, &keys, &candidates)
    })
}

/// Two-round GET's round 1 for several keys, on their candidates.
pub fn locate_many(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    queries: &[BucketQuery],
) -> Result<Vec<LocateOutcome>> {
    layout.expect_blocks("the two-round GET's locate")?;
    let selectors: Vec<&HalfSelectors> = queries.iter().map(|q| &q.selectors).collect();
    let selected = select(env, layout, store, &selectors)?;
    let candidates: Vec<_> = env.install(|| {
        selected
            .iter()
            .map(|s| extract_candidates(layout, s))
            .collect()
    });
    let keys: Vec<&[Ciphertext]> = queries.iter().map(|q| q.key.as_slice()).collect();
    phase("kernel", || {
        bucket_locate_many(env, layout, &keys, &candidates)
    })
}

/// Private SET: returns the encrypted status; every bucket has been rewritten.
pub fn set(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    query: &BucketQuery,
    value: &[Ciphertext],
) -> Result<Ciphertext> {
    layout.expect_blocks("a server-side SET")?;
    let packing = env.keys.bucket_packing()?;
    let selected = select(env, layout, store, &[&query.selectors])?
        .pop()
        .expect("one query, one selection");
    let candidates = env.install(|| extract_candidates(layout, &selected));
    drop(selected);
    let (status, changes) = phase("kernel", || {
        bucket_set(env, layout, &query.key, value, &candidates)
    })?;
    drop(candidates);
    write(env, layout, store, &query.selectors, packing, changes)?;
    Ok(status)
}

/// Private DELETE: returns the encrypted status; every bucket has been rewritten.
pub fn delete(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    query: &BucketQuery,
    mode: DeleteMode,
) -> Result<Ciphertext> {
    layout.expect_blocks("this DELETE")?;
    let packing = env.keys.bucket_packing()?;
    let selected = select(env, layout, store, &[&query.selectors])?
        .pop()
        .expect("one query, one selection");
    let candidates = env.install(|| extract_candidates(layout, &selected));
    drop(selected);
    let (status, changes) = phase("kernel", || {
        bucket_delete(env, layout, &query.key, &candidates, mode)
    })?;
    drop(candidates);
    write(env, layout, store, &query.selectors, packing, changes)?;
    Ok(status)
}

/// Pack the changes into one delta per half and rewrite every bucket with it.
fn write(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    selectors: &HalfSelectors,
    packing: &tfhe::core_crypto::prelude::LwePackingKeyswitchKeyOwned<u64>,
    changes: [super::write_back::HalfChanges; 2],
) -> Result<()> {
    let [left, right] = changes;
    let deltas = phase("pack", || {
        env.install(|| [pack_delta(packing, &left), pack_delta(packing, &right)])
    });
    write_back_all(env.keys.key_id, env.pool, layout, store, selectors, deltas)
}

/// A decoded query key of a `bucket-leveled-v1` table: the key's chunk GGSWs and its
/// candidate buckets' selectors.
pub struct LeveledBucketQuery {
    pub chunks: Vec<Selector>,
    pub selectors: HalfSelectors,
}

/// Decode a checked query of a `bucket-leveled-v1` table: the selectors, and the inner
/// `leveled_query_key` envelope like a flat leveled table's query (header, size limit,
/// conformance, chunk count).
pub fn decode_leveled_query(
    env: &crate::envelope::Envelope<'_>,
    what: &'static str,
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<LeveledBucketQuery> {
    let leveled = layout.leveled("a leveled bucket query")?;
    let (key_bytes, selectors) = wire::decode_query_payload(env, what, layout)?;
    let chunks = crate::leveled::wire::decode_query(&key_bytes, key_id, leveled.row.key)?;
    Ok(LeveledBucketQuery { chunks, selectors })
}

/// Private GET of several keys of a `bucket-leveled-v1` table (one selection pass, each
/// key its own trees): 8 PBS per candidate slot for u64 keys, whatever the table's size.
pub fn leveled_get_many(
    env: &KernelEnv<'_>,
    luts: &EqualityLuts,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    queries: &[LeveledBucketQuery],
) -> Result<Vec<LeveledAnswer>> {
    let leveled = layout.leveled("a leveled GET")?;
    let selectors: Vec<&HalfSelectors> = queries.iter().map(|q| &q.selectors).collect();
    let selected = select(env, layout, store, &selectors)?;
    phase("kernel", || {
        env.install(|| {
            selected
                .iter()
                .zip(queries)
                .map(|(s, q)| leveled_bucket_get(env.keys, luts, &leveled, s, &q.chunks))
                .collect()
        })
    })
}

/// Private DELETE on a `bucket-leveled-v1` table: the matching slot's vacant flag is set
/// (its key and value stay, encrypted, as a tombstone) and every bucket is rewritten.
/// Returns the encrypted status (1: deleted, 0: not found).
pub fn leveled_delete(
    env: &KernelEnv<'_>,
    luts: &EqualityLuts,
    layout: &BucketLayout,
    store: &mut dyn BucketStore,
    query: &LeveledBucketQuery,
) -> Result<LweCiphertextOwned<u64>> {
    let leveled = layout.leveled("a leveled DELETE")?;
    let selected = select(env, layout, store, &[&query.selectors])?
        .pop()
        .expect("one query, one selection");
    let LeveledBucketDelete { status, deltas } = phase("kernel", || {
        env.install(|| leveled_bucket_delete(env.keys, luts, &leveled, &selected, &query.chunks))
    })?;
    drop(selected);
    write_back_all(
        env.keys.key_id,
        env.pool,
        layout,
        store,
        &query.selectors,
        deltas,
    )?;
    Ok(status)
}

/// An in-memory store (tests, benchmarks): the rows in bucket order, `batch` per batch.
pub struct VecStore {
    pub rows: Vec<Vec<u8>>,
    pub batch: usize,
}

impl BucketStore for VecStore {
    fn scan(&mut self, visit: &mut dyn FnMut(&[Vec<u8>]) -> Result<()>) -> Result<()> {
        for chunk in self.rows.chunks(self.batch.max(1)) {
            visit(chunk)?;
        }
        Ok(())
    }

    fn rewrite(&mut self, rewrite: &mut Rewrite<'_>) -> Result<()> {
        // All or nothing, like the extension's transaction.
        let mut out = Vec::with_capacity(self.rows.len());
        for chunk in self.rows.chunks(self.batch.max(1)) {
            out.extend(rewrite(chunk)?);
        }
        self.rows = out;
        Ok(())
    }
}
