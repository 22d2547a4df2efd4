//! The SQL functions on bucketed tables (`layout = 'bucketed'`): argument decoding, the
//! Postgres row store the core's bucketed operations run over, and result encoding.
//! Both slot formats run here: `bucket-v1` (the block kernels) and `bucket-leveled-v1`
//! (leveled equality and value rotations on the candidate slots; no server-side SET or
//! locate, the key owner's fetch and write being both).
//! [`crate::fhe_ops`] routes here when a table's catalog entry says bucketed.
//!
//! The store reads the buckets through a cursor (one batch at a time) for the selection
//! pass, and for the write-back pass reads a range, lets the core rewrite it and UPDATEs
//! it, under the writer lock and inside the statement's transaction: a cancel or error
//! at any point leaves the table unchanged.

use crate::catalog::{self, TableInfo};
use crate::errors::ExtError;
use crate::fhe_ops::{kernel_env, on_pool, pool, server_keys};
use fhe_kv_core::bucket::ops::{self, BucketQuery, BucketStore, LeveledBucketQuery};
use fhe_kv_core::bucket::wire::{
    check_selectors_header, check_write_header, decode_selectors_payload, decode_write_payload,
    encode_read_result,
};
use fhe_kv_core::bucket::{BucketLayout, SlotFormat};
use fhe_kv_core::codec::{
    check_integer_header, decode_integer_payload, encode_get_result, encode_status,
};
use fhe_kv_core::envelope::Envelope;
use fhe_kv_core::kernels::{DeleteMode, KernelEnv, MAX_BATCH_KEYS, MAX_LOCATE_KEYS};
use fhe_kv_core::keys::ServerKeys;
use fhe_kv_core::leveled::equality::EqualityLuts;
use fhe_kv_core::two_round::encode_locate_result;
use fhe_kv_core::{FheKvError, KeyId, Kind};

/// Buckets per cursor fetch and per write-back batch (~10 KB each for u64/u64): large
/// enough that Postgres round trips do not dominate, small enough to check for cancel
/// several times a second.
const BUCKET_BATCH: usize = 256;

/// A bucketed data table as the core's [`BucketStore`]. Errors of the table itself (a
/// corrupt table, SPI) are kept here and reported as they are, with their SQLSTATE and
/// hint, instead of the core's generic error (see [`PgBucketStore::run`]).
struct PgBucketStore<'a> {
    info: &'a TableInfo,
    error: Option<ExtError>,
}

impl<'a> PgBucketStore<'a> {
    fn new(info: &'a TableInfo) -> Self {
        // Phases of an earlier operation that failed are not this one's.
        ops::take_phases();
        PgBucketStore { info, error: None }
    }

    fn keep(&mut self, e: ExtError) -> FheKvError {
        match e {
            ExtError::Core(core) => core,
            other => {
                let text = other.to_string();
                self.error = Some(other);
                FheKvError::Internal(text)
            }
        }
    }

    /// Run an operation over this store; a table error it met wins over what the core
    /// made of it.
    fn run<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> fhe_kv_core::Result<T>,
    ) -> Result<T, ExtError> {
        let out = op(self);
        let phases = ops::take_phases();
        if !phases.is_empty() {
            let text: Vec<String> = phases
                .iter()
                .map(|(name, s)| format!("{name} {s:.2} s"))
                .collect();
            pgrx::debug1!(
                "fhe_kv: {} ({} buckets): {}",
                self.info.name,
                self.info.rows(),
                text.join(", ")
            );
        }
        match (out, self.error.take()) {
            (Err(_), Some(table_error)) => Err(table_error),
            (out, _) => Ok(out?),
        }
    }
}

impl BucketStore for PgBucketStore<'_> {
    fn scan(
        &mut self,
        visit: &mut dyn FnMut(&[Vec<u8>]) -> fhe_kv_core::Result<()>,
    ) -> fhe_kv_core::Result<()> {
        scan_table(self.info, visit).map_err(|e| self.keep(e))
    }

    /// Every bucket rewritten: one write-back, counted against the table's noise budget
    /// in the same transaction (so a failed or cancelled write counts nothing). Every
    /// operation that writes back comes through here, the key owner's and the server's.
    fn rewrite(&mut self, rewrite: &mut ops::Rewrite<'_>) -> fhe_kv_core::Result<()> {
        catalog::rewrite_in_batches(self.info, BUCKET_BATCH, rewrite)
            .and_then(|()| catalog::count_write(self.info))
            .map_err(|e| self.keep(e))
    }
}

fn scan_table(
    info: &TableInfo,
    visit: &mut dyn FnMut(&[Vec<u8>]) -> fhe_kv_core::Result<()>,
) -> Result<(), ExtError> {
    catalog::with_row_batches(info, BUCKET_BATCH, |batches| {
        for batch in batches {
            visit(&batch?)?;
            pgrx::check_for_interrupts!();
        }
        Ok(())
    })
}

fn layout(info: &TableInfo) -> &BucketLayout {
    info.bucket
        .as_ref()
        .expect("routed here for bucketed tables only")
}

/// Decode the query keys of a call: every key's NULL check and header first, then the
/// payloads; a bad key is reported with its position when there are several.
fn decode_queries(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<BucketQuery>, ExtError> {
    decode_queries_with(info, keys, batched, ops::decode_query)
}

/// [`decode_queries`] for a `bucket-leveled-v1` table: the inner key is a leveled query
/// (chunk GGSWs), decoded and checked as a flat leveled table's.
fn decode_leveled_queries(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<LeveledBucketQuery>, ExtError> {
    decode_queries_with(info, keys, batched, ops::decode_leveled_query)
}

fn decode_queries_with<Q: Send>(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
    decode: impl Fn(&Envelope<'_>, &'static str, KeyId, &BucketLayout) -> fhe_kv_core::Result<Q> + Sync,
) -> Result<Vec<Q>, ExtError> {
    let layout = layout(info);
    let at = |position: usize| {
        move |e: ExtError| {
            if batched {
                ExtError::Element {
                    what: "keys",
                    position: position + 1,
                    source: Box::new(e),
                }
            } else {
                e
            }
        }
    };
    let envelopes = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let key = key.ok_or(ExtError::Null("key")).map_err(at(i))?;
            ops::check_query(key, "key", info.key_id, layout).map_err(|e| at(i)(e.into()))
        })
        .collect::<Result<Vec<_>, ExtError>>()?;
    envelopes
        .iter()
        .enumerate()
        .map(|(i, env)| {
            on_pool(|| decode(env, "key", info.key_id, layout)).map_err(|e| at(i)(e.into()))
        })
        .collect()
}

/// Refuse a write-back past the table's noise budget ([`BucketLayout::write_budget`]),
/// before anything is computed or written; warn from 90% of it. Runs under the writer
/// lock, so the count it reads is the one the write adds to.
fn check_write_budget(info: &TableInfo) -> Result<(), ExtError> {
    let Some(writes) = catalog::writes(info)? else {
        return Ok(());
    };
    let writes = u64::try_from(writes).unwrap_or(0);
    let budget = layout(info).write_budget();
    if writes >= budget {
        return Err(ExtError::WriteBudget {
            table: info.name.clone(),
            writes,
            budget,
        });
    }
    if (writes + 1).saturating_mul(10) >= budget.saturating_mul(9) {
        pgrx::warning!(
            "fhe_kv: {} has had {} of the {budget} write-backs its noise budget allows; run \
             `fhe-kv refresh {}` (the key owner re-seals every bucket) before writes are refused",
            info.name,
            writes + 1,
            info.name
        );
    }
    Ok(())
}

fn check_batch(function: &str, n: usize, max: usize) -> Result<(), ExtError> {
    if n == 0 || n > max {
        return Err(ExtError::Core(FheKvError::InvalidArgument(format!(
            "{function} takes 1 to {max} keys, got {n} (split larger batches)"
        ))));
    }
    Ok(())
}

/// Private GET (`fhe_get`, `fhe_get_many`): one selection pass for all keys.
pub fn get_many(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<Vec<u8>>, ExtError> {
    check_batch("fhe_get_many", keys.len(), MAX_BATCH_KEYS)?;
    if layout(info).format == SlotFormat::Leveled {
        return leveled_get_many(info, keys, batched);
    }
    let queries = decode_queries(info, keys, batched)?;
    let server = server_keys(info.key_id)?;
    let pool = pool();
    let env = kernel_env(&server, info, &pool);
    let outs =
        PgBucketStore::new(info).run(|store| ops::get_many(&env, layout(info), store, &queries))?;
    Ok(on_pool(|| {
        outs.into_iter()
            .map(|o| encode_get_result(&server, info.value_width, o.found, o.value))
            .collect::<fhe_kv_core::Result<Vec<_>>>()
    })?)
}

/// [`get_many`] on a `bucket-leveled-v1` table: one selection pass, then each key's
/// leveled equality and value rotations over its 2 × `bucket_slots` candidate slots; one
/// `leveled_answer` per key (the key owner opens it with the slot's row layout).
fn leveled_get_many(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<Vec<u8>>, ExtError> {
    let layout = layout(info);
    let row = layout.leveled("a leveled GET")?.row;
    let queries = decode_leveled_queries(info, keys, batched)?;
    let server = server_keys(info.key_id)?;
    let pool = pool();
    let env = kernel_env(&server, info, &pool);
    let luts = on_pool(|| EqualityLuts::new(&server.sks));
    let answers = PgBucketStore::new(info)
        .run(|store| ops::leveled_get_many(&env, &luts, layout, store, &queries))?;
    Ok(on_pool(|| {
        answers
            .iter()
            .map(|answer| answer.encode(info.key_id, row))
            .collect::<fhe_kv_core::Result<Vec<_>>>()
    })?)
}

/// Two-round GET, round 1 (`fhe_locate`, `fhe_locate_many`): per key, its candidate
/// slots' mismatch counts (a locate answer over `2 × bucket_slots` slots).
pub fn locate_many(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<Vec<u8>>, ExtError> {
    check_batch("fhe_locate_many", keys.len(), MAX_LOCATE_KEYS)?;
    if layout(info).format == SlotFormat::Leveled {
        // The bucket read (fhe_fetch) is already the two-round GET's answer, in one
        // round and without a bootstrap.
        return Err(ExtError::LeveledBucketsByOwner(
            info.name.clone(),
            "fhe_locate",
        ));
    }
    let queries = decode_queries(info, keys, batched)?;
    let server = server_keys(info.key_id)?;
    let pool = pool();
    let env = kernel_env(&server, info, &pool);
    let outs = PgBucketStore::new(info)
        .run(|store| ops::locate_many(&env, layout(info), store, &queries))?;
    Ok(on_pool(|| {
        outs.into_iter()
            .map(|o| encode_locate_result(&server, info.key_width, o))
            .collect::<fhe_kv_core::Result<Vec<_>>>()
    })?)
}

/// The bucket read (`fhe_fetch` on a bucketed table): the two candidate buckets, selected
/// by CMux trees, and the table's state token. No server key and no bootstrap.
pub fn fetch(info: &TableInfo, query: &[u8]) -> Result<Vec<u8>, ExtError> {
    let layout = layout(info);
    let header = check_selectors_header(query, info.key_id, layout)?;
    let selectors = on_pool(|| decode_selectors_payload(&header, layout))?;
    // Taken before the rows are read: if a write commits in between, the rows are newer
    // than the token and a write computed from them is refused (never the other way).
    let state = catalog::state_token(info)?;
    let pool = pool();
    let selected = PgBucketStore::new(info)
        .run(|store| ops::read(info.key_id, Some(&*pool), layout, store, &selectors))?;
    Ok(encode_read_result(info.key_id, layout, &selected, state)?)
}

/// A key owner's write (`fhe_write`): under the writer lock, check that the table is
/// still as the read saw it, then add the write's deltas to every bucket. No server key
/// and no bootstrap. Returns the buckets rewritten.
pub fn write(info: &TableInfo, write: &[u8]) -> Result<i32, ExtError> {
    let layout = layout(info);
    let header = check_write_header(write, info.key_id, layout)?;
    let decoded = on_pool(|| decode_write_payload(&header, layout))?;
    catalog::lock_for_write(info)?;
    if catalog::state_token(info)? != decoded.state {
        return Err(ExtError::StaleWrite(info.name.clone()));
    }
    check_write_budget(info)?;
    let pool = pool();
    PgBucketStore::new(info)
        .run(|store| ops::write_deltas(info.key_id, Some(&*pool), layout, store, decoded))?;
    Ok(layout.buckets() as i32)
}

/// Private SET: selection pass, kernel on the candidates, write-back of every bucket.
pub fn set(info: &TableInfo, key: &[u8], value: &[u8]) -> Result<Vec<u8>, ExtError> {
    let layout = layout(info);
    if layout.format == SlotFormat::Leveled {
        return Err(ExtError::LeveledBucketsByOwner(
            info.name.clone(),
            "fhe_set",
        ));
    }
    // Every header before any payload, then the payloads, then the lock and the key.
    let key_env = ops::check_query(key, "key", info.key_id, layout)?;
    let value_env =
        check_integer_header(value, "value", Kind::Value, info.key_id, info.value_width)?;
    let query = on_pool(|| ops::decode_query(&key_env, "key", info.key_id, layout))?;
    let value = on_pool(|| decode_integer_payload(&value_env, "value", info.value_width))?;
    server_write_back(
        info,
        |_, env, store| ops::set(env, layout, store, &query, &value),
        |server, status| encode_status(server, Kind::SetStatus, status),
    )
}

/// Private DELETE (tombstone or scrub of the candidate buckets' vacant slots).
pub fn delete(info: &TableInfo, key: &[u8], mode: DeleteMode) -> Result<Vec<u8>, ExtError> {
    let layout = layout(info);
    if layout.format == SlotFormat::Leveled {
        return leveled_delete(info, key, mode);
    }
    let key_env = ops::check_query(key, "key", info.key_id, layout)?;
    let query = on_pool(|| ops::decode_query(&key_env, "key", info.key_id, layout))?;
    server_write_back(
        info,
        |_, env, store| ops::delete(env, layout, store, &query, mode),
        |server, status| encode_status(server, Kind::DeleteStatus, status),
    )
}

/// [`delete`] on a `bucket-leveled-v1` table: the matching candidate slot's vacant flag is
/// set (its key and value stay, encrypted, as a tombstone) and every bucket is rewritten.
/// Returns a `leveled_status`.
fn leveled_delete(info: &TableInfo, key: &[u8], mode: DeleteMode) -> Result<Vec<u8>, ExtError> {
    if matches!(mode, DeleteMode::Scrub) {
        return Err(FheKvError::InvalidArgument(format!(
            "{} has leveled slots: fhe_delete takes no scrub there (a freed slot keeps its \
             pair, encrypted and flagged vacant, until the key owner's next write into it \
             overwrites it; `fhe-kv delete --scrub` is the key owner's scrub)",
            info.name
        ))
        .into());
    }
    let layout = layout(info);
    let key_env = ops::check_query(key, "key", info.key_id, layout)?;
    let query = on_pool(|| ops::decode_leveled_query(&key_env, "key", info.key_id, layout))?;
    server_write_back(
        info,
        |server, env, store| {
            let luts = on_pool(|| EqualityLuts::new(&server.sks));
            ops::leveled_delete(env, &luts, layout, store, &query)
        },
        |_, status| fhe_kv_core::leveled::messages::encode_status(info.key_id, &status),
    )
}

/// A server-side write-back (SET, DELETE) of decoded arguments: under the writer lock and
/// within the write budget, run `op` over the table with the server key (its write-back
/// is counted by the store) and `encode` its encrypted status.
fn server_write_back<T: Send>(
    info: &TableInfo,
    op: impl FnOnce(&ServerKeys, &KernelEnv<'_>, &mut PgBucketStore<'_>) -> fhe_kv_core::Result<T>,
    encode: impl FnOnce(&ServerKeys, T) -> fhe_kv_core::Result<Vec<u8>> + Send,
) -> Result<Vec<u8>, ExtError> {
    catalog::lock_for_write(info)?;
    check_write_budget(info)?;
    let server = server_keys(info.key_id)?;
    let pool = pool();
    let env = kernel_env(&server, info, &pool);
    let status = PgBucketStore::new(info).run(|store| op(&server, &env, store))?;
    Ok(on_pool(|| encode(&server, status))?)
}

/// Check that every row is a stored bucket of this table (envelope, key_id, slot count,
/// conformance); `what(i)` names row `i` in errors.
pub fn check_rows(
    info: &TableInfo,
    rows: &[&[u8]],
    what: &(dyn Fn(usize) -> String + Sync),
) -> Result<(), ExtError> {
    let layout = *layout(info);
    on_pool(|| {
        use rayon::prelude::*;
        rows.par_iter().enumerate().try_for_each(|(i, r)| {
            fhe_kv_core::bucket::wire::decode_row(r, info.key_id, &layout)
                .map(|_| ())
                .map_err(|e| FheKvError::InvalidArgument(format!("{}: {e}", what(i))))
        })
    })?;
    Ok(())
}

/// `fhe_kv.rehash`: replace a bucketed table's rows by the key owner's rehash into
/// `buckets_per_half` buckets per half (never fewer than now). Every row is checked first.
pub fn rehash(info: &TableInfo, buckets_per_half: i32, rows: Vec<&[u8]>) -> Result<i32, ExtError> {
    let old = *layout(info);
    let m = usize::try_from(buckets_per_half).map_err(|_| {
        FheKvError::InvalidArgument(format!(
            "buckets_per_half must be positive, got {buckets_per_half}"
        ))
    })?;
    if m < old.buckets_per_half {
        return Err(ExtError::Core(FheKvError::InvalidArgument(format!(
            "{} has {} buckets per half; a rehash may not shrink it to {m}",
            info.name, old.buckets_per_half
        ))));
    }
    let new = BucketLayout::of_format(old.key, old.value, old.bucket_slots, m, old.format)?;
    if rows.len() != new.buckets() {
        return Err(ExtError::Core(FheKvError::InvalidArgument(format!(
            "a rehash into {m} buckets per half takes {} rows, {} were given",
            new.buckets(),
            rows.len()
        ))));
    }
    let capacity = i32::try_from(new.capacity()).map_err(|_| {
        FheKvError::InvalidArgument(format!("{} slots is too many", new.capacity()))
    })?;
    catalog::lock_for_write(info)?;
    let new_info = TableInfo {
        name: info.name.clone(),
        key_id: info.key_id,
        capacity,
        key_width: info.key_width,
        value_width: info.value_width,
        bucket: Some(new),
        leveled: None,
        counts_writes: info.counts_writes,
    };
    check_rows(&new_info, &rows, &|i| format!("rows[{}]", i + 1))?;
    catalog::replace_rows(&new_info, rows.into_iter().map(<[u8]>::to_vec).collect())?;
    // Every bucket is the key owner's fresh sealing: the write budget starts again.
    catalog::set_resealed(&new_info, capacity)?;
    Ok(capacity)
}

/// The empty-bucket row of a new bucketed table (`fhe_kv._empty_bucket`): validates the
/// key (registered, with bucket key material), widths and bucket size.
pub fn empty_bucket(
    key_id: fhe_kv_core::KeyId,
    key: fhe_kv_core::Width,
    value: fhe_kv_core::Width,
    bucket_slots: i32,
    buckets_per_half: i32,
    format: SlotFormat,
) -> Result<Vec<u8>, ExtError> {
    if !catalog::key_supports_buckets(key_id)? {
        return Err(ExtError::Core(FheKvError::InvalidArgument(format!(
            "server key {key_id} was made before fhe_kv 0.2.0 and has no key material for \
             bucketed tables: generate a new key pair (fhe-kv keygen) for bucketed tables, or \
             create this one with layout => 'flat'"
        ))));
    }
    let positive = |v: i32, what: &str| {
        usize::try_from(v)
            .map_err(|_| FheKvError::InvalidArgument(format!("{what} must be positive, got {v}")))
    };
    let layout = BucketLayout::of_format(
        key,
        value,
        positive(bucket_slots, "bucket_slots")?,
        positive(buckets_per_half, "buckets per half")?,
        format,
    )?;
    Ok(fhe_kv_core::bucket::empty_bucket_row(key_id, &layout)?)
}
