//! Server side of FHE: the per-backend server-key cache, the worker pool, and dispatch
//! of the oblivious kernels over a table's rows.
//!
//! Threading rules: every TFHE-rs call runs on the worker pool ([`crate::worker_pool`]),
//! on threads that block all signals and never call a Postgres API; the backend thread
//! watches for a query cancel meanwhile and stops the workers within one bootstrap.
//! Nothing is written until the kernel has finished, so a cancelled SET leaves the table
//! unchanged.

use crate::bucketed;
use crate::catalog::{self, TableInfo};
use crate::errors::ExtError;
use crate::guc;
use crate::leveled;
use crate::session_keys;
use crate::worker_pool::WorkerPool;
pub(crate) use crate::worker_pool::{on_pool, pool};
use fhe_kv_core::bucket::{
    BucketLayout, SlotFormat, ROW_FORMAT_BUCKET_LEVELED_V1, ROW_FORMAT_BUCKET_V1,
};
use fhe_kv_core::codec::{
    check_integer_header, decode_integer_payload, encode_get_result, encode_status,
};
use fhe_kv_core::kernels::{
    oblivious_delete, oblivious_fetch_streamed, oblivious_get_many_streamed,
    oblivious_locate_many_streamed, oblivious_set, DeleteMode, KernelEnv, RowEnv, MAX_BATCH_KEYS,
    MAX_LOCATE_KEYS,
};
use fhe_kv_core::keys::ServerKeys;
use fhe_kv_core::leveled::{RowFormat, ROW_FORMAT_LEVELED_V1, ROW_FORMAT_LEVELED_V2};
use fhe_kv_core::row::{decode_row, empty_row as empty_row_ciphertext, encode_row};
use fhe_kv_core::two_round::{
    check_fetch_header, decode_fetch_payload, encode_fetch_result, encode_locate_result,
};
use fhe_kv_core::{FheKvError, KeyId, Kind, Width};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;
use tfhe::shortint::Ciphertext;

thread_local! {
    /// Most recently used last.
    static KEY_CACHE: RefCell<Vec<(KeyId, Arc<ServerKeys>)>> = const { RefCell::new(Vec::new()) };
}

/// The decompressed server key for `key_id`: the session's own copy if it loaded one
/// (`fhe_kv.load_session_key`), else the registered key, loaded on first use in this
/// backend and kept in a small LRU cache.
pub(crate) fn server_keys(key_id: KeyId) -> Result<Arc<ServerKeys>, ExtError> {
    if let Some(keys) = session_keys::get(key_id) {
        return Ok(keys);
    }
    if let Some(keys) = KEY_CACHE.with_borrow_mut(|cache| {
        let pos = cache.iter().position(|(id, _)| *id == key_id)?;
        let entry = cache.remove(pos);
        let keys = entry.1.clone();
        cache.push(entry);
        Some(keys)
    }) {
        return Ok(keys);
    }
    let bytes = match catalog::server_key_bytes(key_id)? {
        catalog::StoredServerKey::Stored(bytes) => bytes,
        catalog::StoredServerKey::SessionOnly => {
            return Err(ExtError::SessionKeyNotLoaded(key_id.to_hex()))
        }
    };
    let started = Instant::now();
    let keys = Arc::new(on_pool(|| ServerKeys::from_upload(&bytes))?);
    drop(bytes);
    if keys.key_id != key_id {
        return Err(ExtError::Corrupt {
            table: "fhe_kv.server_keys".into(),
            detail: format!(
                "the key stored under {key_id} has fingerprint {}",
                keys.key_id
            ),
        });
    }
    debug1!(
        "fhe_kv: loaded server key {key_id} in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    KEY_CACHE.with_borrow_mut(|cache| {
        cache.push((key_id, keys.clone()));
        let limit = guc::SERVER_KEY_CACHE_SIZE.get().max(1) as usize;
        while cache.len() > limit {
            cache.remove(0);
        }
    });
    Ok(keys)
}

pub fn register_server_key(bytes: Option<&[u8]>) -> Result<String, ExtError> {
    let bytes = bytes.ok_or(ExtError::Null("server_key"))?;
    let (key_id, _) = on_pool(|| ServerKeys::validate_upload(bytes))?;
    catalog::insert_server_key(key_id, bytes)?;
    Ok(key_id.to_hex())
}

pub fn empty_row(
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
) -> Result<Vec<u8>, ExtError> {
    let key_id = KeyId::parse(key_id.ok_or(ExtError::Null("key_id"))?)?;
    let (key_width, value_width) = (
        width_arg(key_bits, "key_bits")?,
        width_arg(value_bits, "value_bits")?,
    );
    let keys = server_keys(key_id)?;
    Ok(on_pool(|| {
        encode_row(&keys, &empty_row_ciphertext(&keys, key_width, value_width))
    })?)
}

/// A width argument in bits (NULL and unknown widths are clear errors).
fn width_arg(bits: Option<i32>, what: &'static str) -> Result<Width, ExtError> {
    let bits = bits.ok_or(ExtError::Null(what))?;
    // Negative widths are reported as given, not as a converted 0.
    let bits = u32::try_from(bits).map_err(|_| {
        fhe_kv_core::FheKvError::InvalidArgument(format!(
            "width must be 8, 16, 32, 64, 128 or 256 bits, got {bits}"
        ))
    })?;
    Ok(Width::from_bits(bits)?)
}

/// Resolve and decode the arguments, cheapest checks first: NULLs, the table, every
/// envelope header (kind, key_id, width, size), then the payloads (conformance) — all
/// before the server key is loaded or any row is read.
fn prepare(info: TableInfo, key: &[u8], value: Option<&[u8]>) -> Result<Prepared, ExtError> {
    let key_env = check_integer_header(key, "key", Kind::QueryKey, info.key_id, info.key_width)?;
    let value_env = value
        .map(|v| check_integer_header(v, "value", Kind::Value, info.key_id, info.value_width))
        .transpose()?;
    let query = on_pool(|| decode_integer_payload(&key_env, "key", info.key_width))?;
    let value = value_env
        .map(|env| on_pool(|| decode_integer_payload(&env, "value", info.value_width)))
        .transpose()?;
    Ok(Prepared { info, query, value })
}

/// A call's table and its raw (not yet decoded) key and value arguments.
type Resolved<'a> = (TableInfo, &'a [u8], Option<&'a [u8]>);

/// The NULL checks and the table of a one-key call: table, key, value (when the call
/// takes one), then the catalog entry, which decides the layout.
fn resolve<'a>(
    tbl: Option<pg_sys::Oid>,
    key: Option<&'a [u8]>,
    value: Option<Option<&'a [u8]>>,
) -> Result<Resolved<'a>, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let key = key.ok_or(ExtError::Null("key"))?;
    let value = match value {
        Some(v) => Some(v.ok_or(ExtError::Null("value"))?),
        None => None,
    };
    Ok((catalog::table_info(tbl)?, key, value))
}

/// Decoded arguments of one operation.
struct Prepared {
    info: TableInfo,
    query: Vec<Ciphertext>,
    value: Option<Vec<Ciphertext>>,
}

fn check_interrupts(_done: usize, _total: usize) {
    pgrx::check_for_interrupts!();
}

pub(crate) fn kernel_env<'a>(
    keys: &'a ServerKeys,
    info: &TableInfo,
    pool: &'a WorkerPool,
) -> KernelEnv<'a> {
    KernelEnv {
        keys,
        key_width: info.key_width,
        value_width: info.value_width,
        pool: Some(pool),
        batch_rows: batch_rows(),
    }
}

/// Slots per cursor fetch and between cancel checks (`fhe_kv.batch_rows`).
fn batch_rows() -> usize {
    guc::BATCH_ROWS.get().max(1) as usize
}

pub fn get(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>) -> Result<Vec<u8>, ExtError> {
    let (info, key, _) = resolve(tbl, key, None)?;
    let mut out = if info.bucket.is_some() {
        bucketed::get_many(&info, &[Some(key)], false)?
    } else if info.is_leveled() {
        leveled::get_many(&info, &[Some(key)], false)?
    } else {
        let Prepared { info, query, .. } = prepare(info, key, None)?;
        get_streamed(&info, &[query])?
    };
    Ok(out.pop().expect("one key, one result"))
}

/// The GET path: rows stream through a cursor, one batch (`fhe_kv.batch_rows`) at a time,
/// so backend memory holds the server key, one batch of rows and the accumulators.
fn get_streamed(info: &TableInfo, queries: &[Vec<Ciphertext>]) -> Result<Vec<Vec<u8>>, ExtError> {
    run_streamed(
        info,
        queries,
        |env, refs, batches| {
            let total = info.capacity as usize;
            oblivious_get_many_streamed(env, refs, total, batches, &mut check_interrupts)
        },
        |keys, out| encode_get_result(keys, info.value_width, out.found, out.value),
    )
}

/// Run a read-only kernel for several keys over the table's rows, streamed through a
/// cursor one batch (`fhe_kv.batch_rows`) at a time, and encode each key's outcome.
fn run_streamed<O: Send>(
    info: &TableInfo,
    queries: &[Vec<Ciphertext>],
    kernel: impl FnOnce(
        &KernelEnv<'_>,
        &[&[Ciphertext]],
        &mut dyn Iterator<Item = fhe_kv_core::Result<Vec<Vec<u8>>>>,
    ) -> fhe_kv_core::Result<Vec<O>>,
    encode: impl Fn(&ServerKeys, O) -> fhe_kv_core::Result<Vec<u8>> + Sync,
) -> Result<Vec<Vec<u8>>, ExtError> {
    let keys = server_keys(info.key_id)?;
    let pool = pool();
    let env = kernel_env(&keys, info, &pool);
    let refs: Vec<&[Ciphertext]> = queries.iter().map(Vec::as_slice).collect();
    let outs =
        catalog::with_row_batches(info, env.batch_rows, |batches| kernel(&env, &refs, batches))?;
    Ok(on_pool(|| {
        outs.into_iter()
            .map(|out| encode(&keys, out))
            .collect::<fhe_kv_core::Result<Vec<_>>>()
    })?)
}

/// Batched GET: every key's header and payload is checked before the server key is loaded
/// or a row is read, as for a single GET; a bad key is reported with its position.
pub fn get_many(
    tbl: Option<pg_sys::Oid>,
    keys: Option<Vec<Option<&[u8]>>>,
) -> Result<Vec<Vec<u8>>, ExtError> {
    let (info, keys) = resolve_many(tbl, keys, "fhe_get_many", MAX_BATCH_KEYS)?;
    if info.bucket.is_some() {
        return bucketed::get_many(&info, &keys, true);
    }
    if info.is_leveled() {
        return leveled::get_many(&info, &keys, true);
    }
    let queries = decode_keys(&info, &keys)?;
    get_streamed(&info, &queries)
}

/// A batched call's table and its raw key arguments.
type ResolvedMany<'a> = (TableInfo, Vec<Option<&'a [u8]>>);

/// The arguments of a batched call (`function` takes 1 to `max` keys): NULLs, the count,
/// the table; the keys are decoded by the layout's path (see [`decode_keys`]).
fn resolve_many<'a>(
    tbl: Option<pg_sys::Oid>,
    keys: Option<Vec<Option<&'a [u8]>>>,
    function: &str,
    max: usize,
) -> Result<ResolvedMany<'a>, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let keys = keys.ok_or(ExtError::Null("keys"))?;
    if keys.is_empty() || keys.len() > max {
        return Err(ExtError::Core(fhe_kv_core::FheKvError::InvalidArgument(
            format!(
                "{function} takes 1 to {max} keys, got {} (split larger batches)",
                keys.len()
            ),
        )));
    }
    Ok((catalog::table_info(tbl)?, keys))
}

/// Decode a batch of query keys: every key's NULL check and envelope header first, then
/// the payloads; a bad key is reported with its position.
fn decode_keys(info: &TableInfo, keys: &[Option<&[u8]>]) -> Result<Vec<Vec<Ciphertext>>, ExtError> {
    let at = |position: usize| {
        move |e: ExtError| ExtError::Element {
            what: "keys",
            position: position + 1,
            source: Box::new(e),
        }
    };
    // Cheapest checks first, for every key: NULL and envelope header, then the payloads.
    let envelopes = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let key = key.ok_or(ExtError::Null("key")).map_err(at(i))?;
            check_integer_header(key, "key", Kind::QueryKey, info.key_id, info.key_width)
                .map_err(|e| at(i)(e.into()))
        })
        .collect::<Result<Vec<_>, ExtError>>()?;
    envelopes
        .iter()
        .enumerate()
        .map(|(i, env)| {
            on_pool(|| decode_integer_payload(env, "key", info.key_width))
                .map_err(|e| at(i)(e.into()))
        })
        .collect::<Result<Vec<_>, ExtError>>()
}

/// Two-round GET, round 1 (`fhe_locate_many`): per key, every slot's mismatch counts, for
/// the key owner to read. Rows stream through the cursor as for GET.
pub fn locate_many(
    tbl: Option<pg_sys::Oid>,
    keys: Option<Vec<Option<&[u8]>>>,
) -> Result<Vec<Vec<u8>>, ExtError> {
    let (info, keys) = resolve_many(tbl, keys, "fhe_locate_many", MAX_LOCATE_KEYS)?;
    if info.bucket.is_some() {
        return bucketed::locate_many(&info, &keys, true);
    }
    if info.is_leveled() {
        return leveled::locate_many(&info, &keys, true);
    }
    let queries = decode_keys(&info, &keys)?;
    locate_streamed(&info, &queries)
}

/// Two-round GET, round 1 for one key (`fhe_locate`).
pub fn locate(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>) -> Result<Vec<u8>, ExtError> {
    let (info, key, _) = resolve(tbl, key, None)?;
    let mut out = if info.bucket.is_some() {
        bucketed::locate_many(&info, &[Some(key)], false)?
    } else if info.is_leveled() {
        leveled::locate_many(&info, &[Some(key)], false)?
    } else {
        let Prepared { info, query, .. } = prepare(info, key, None)?;
        locate_streamed(&info, &[query])?
    };
    Ok(out.pop().expect("one key, one answer"))
}

fn locate_streamed(
    info: &TableInfo,
    queries: &[Vec<Ciphertext>],
) -> Result<Vec<Vec<u8>>, ExtError> {
    run_streamed(
        info,
        queries,
        |env, refs, batches| {
            let total = info.capacity as usize;
            oblivious_locate_many_streamed(env, refs, total, batches, &mut check_interrupts)
        },
        |keys, out| encode_locate_result(keys, info.key_width, out),
    )
}

/// Two-round GET, round 2 (`fhe_fetch`): the slot the GGSW-encrypted index selects, by a
/// CMux tree over the stored rows (no bootstrap).
pub fn fetch(tbl: Option<pg_sys::Oid>, query: Option<&[u8]>) -> Result<Vec<u8>, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let query = query.ok_or(ExtError::Null("query"))?;
    let info = catalog::table_info(tbl)?;
    if info.bucket.is_some() {
        return bucketed::fetch(&info, query);
    }
    if info.is_leveled() {
        return leveled::fetch(&info, query);
    }
    let header = check_fetch_header(query, info.key_id, info.capacity as usize)?;
    let selectors = on_pool(|| decode_fetch_payload(&header))?;
    // No server key: the CMux tree works on the stored GLWEs with the client's selectors.
    let pool = pool();
    let env = RowEnv {
        key_id: info.key_id,
        key_width: info.key_width,
        value_width: info.value_width,
        pool: Some(&*pool),
    };
    let out = catalog::with_row_batches(&info, batch_rows(), |batches| {
        oblivious_fetch_streamed(
            &env,
            &selectors,
            info.capacity as usize,
            batches,
            &mut check_interrupts,
        )
    })?;
    Ok(encode_fetch_result(info.key_id, &out)?)
}

pub fn set(
    tbl: Option<pg_sys::Oid>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Vec<u8>, ExtError> {
    let (info, key, value) = resolve(tbl, key, Some(value))?;
    let value = value.expect("resolve checks the value when given one");
    if info.bucket.is_some() {
        return bucketed::set(&info, key, value);
    }
    if info.is_leveled() {
        return Err(ExtError::LeveledSetTakesTwoRounds(info.name));
    }
    let Prepared { info, query, value } = prepare(info, key, Some(value))?;
    let value = value.expect("prepare decodes the value when given one");
    rewrite_every_slot(info, Kind::SetStatus, |env, rows| {
        let out = oblivious_set(env, &query, &value, rows, &mut check_interrupts)?;
        Ok((out.rows, out.status))
    })
}

/// `scrub` (SQL default false): also zero every vacant slot's key and value
/// ([`DeleteMode::Scrub`]); otherwise the freed slot becomes a tombstone.
pub fn delete(
    tbl: Option<pg_sys::Oid>,
    key: Option<&[u8]>,
    scrub: Option<bool>,
) -> Result<Vec<u8>, ExtError> {
    let mode = match scrub {
        Some(true) => DeleteMode::Scrub,
        Some(false) => DeleteMode::Tombstone,
        None => return Err(ExtError::Null("scrub")),
    };
    let (info, key, _) = resolve(tbl, key, None)?;
    if info.bucket.is_some() {
        return bucketed::delete(&info, key, mode);
    }
    if info.is_leveled() {
        return leveled::delete(&info, key, mode);
    }
    let Prepared { info, query, .. } = prepare(info, key, None)?;
    rewrite_every_slot(info, Kind::DeleteStatus, |env, rows| {
        let out = oblivious_delete(env, &query, rows, mode, &mut check_interrupts)?;
        Ok((out.rows, out.status))
    })
}

/// The write path shared by SET and DELETE: take the writer lock, run `kernel` over every
/// slot, write every slot back in one statement, and encode the status as `status_kind`.
/// Nothing is written unless the kernel finished.
fn rewrite_every_slot(
    info: TableInfo,
    status_kind: Kind,
    kernel: impl FnOnce(&KernelEnv<'_>, &[Vec<u8>]) -> fhe_kv_core::Result<(Vec<Vec<u8>>, Ciphertext)>,
) -> Result<Vec<u8>, ExtError> {
    catalog::lock_for_write(&info)?;
    let keys = server_keys(info.key_id)?;
    let (slots, rows) = catalog::read_rows(&info)?;
    let pool = pool();
    let (new_rows, status) = kernel(&kernel_env(&keys, &info, &pool), &rows)?;
    drop(rows);
    catalog::write_rows(&info, slots, new_rows)?;
    Ok(on_pool(|| encode_status(&keys, status_kind, status))?)
}

/// `fhe-kv import`: the key owner re-sealed every row client-side; check that there is one
/// row per slot and that every row is a conformant row of this table (kind, key_id, block
/// count, dimensions) before writing any. No server key and no bootstrap is needed, and the
/// server sees every slot rewritten with fresh ciphertexts, exactly as after a SET.
pub fn replace_all_rows(
    tbl: Option<pg_sys::Oid>,
    rows: Option<Vec<Option<&[u8]>>>,
) -> Result<i32, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let rows = rows.ok_or(ExtError::Null("rows"))?;
    let info = catalog::table_info(tbl)?;
    catalog::lock_for_write(&info)?;
    let (slots, _) = catalog::read_rows(&info)?;
    let unit = if info.bucket.is_some() {
        "bucket"
    } else {
        "slot"
    };
    if rows.len() != slots.len() {
        return Err(ExtError::Core(fhe_kv_core::FheKvError::InvalidArgument(
            format!(
                "{} has {} {unit}s but {} rows were given (every {unit} must be replaced, in \
                 {unit} order)",
                info.name,
                slots.len(),
                rows.len()
            ),
        )));
    }
    let rows: Vec<&[u8]> = rows
        .into_iter()
        .map(|r| r.ok_or(ExtError::Null("row")))
        .collect::<Result<_, _>>()?;
    if info.bucket.is_some() {
        bucketed::check_rows(&info, &rows, &|i| format!("rows[{}]", i + 1))?;
    } else if info.is_leveled() {
        leveled::check_rows(&info, &rows, &|i| format!("rows[{}]", i + 1))?;
    } else {
        on_pool(|| {
            use rayon::prelude::*;
            rows.par_iter().try_for_each(|r| {
                decode_row(r, info.key_id, info.key_width, info.value_width).map(|_| ())
            })
        })?;
    }
    let count = rows.len() as i32;
    catalog::write_rows(&info, slots, rows.into_iter().map(<[u8]>::to_vec).collect())?;
    Ok(count)
}

/// `fhe_kv.attach_table`'s row check: every row of `tbl` (indices 0..n, which the SQL
/// side has verified) is a conformant row envelope of `key_id` and the given widths — and
/// for a bucketed table (`bucket_slots` given), a bucket of that many slots. Decoding
/// only: no server key, no bootstrap. Returns the rows checked.
pub fn check_rows(
    tbl: Option<pg_sys::Oid>,
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
    capacity: Option<i32>,
    bucket_slots: Option<i32>,
    leveled: Option<bool>,
) -> Result<i32, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let key_id = KeyId::parse(key_id.ok_or(ExtError::Null("key_id"))?)?;
    let (key_width, value_width) = (
        width_arg(key_bits, "key_bits")?,
        width_arg(value_bits, "value_bits")?,
    );
    let capacity = capacity.ok_or(ExtError::Null("capacity"))?;
    let bucket = match bucket_slots {
        None => None,
        Some(z) => {
            let z = usize::try_from(z).unwrap_or(0);
            let per_half = (capacity as usize).checked_div(2 * z).unwrap_or(0);
            // `leveled` with buckets: a bucketed table of leveled slots.
            let format = match leveled {
                Some(true) => SlotFormat::Leveled,
                _ => SlotFormat::Blocks,
            };
            Some(BucketLayout::of_format(
                key_width,
                value_width,
                z,
                per_half,
                format,
            )?)
        }
    };
    let name = catalog::relation_name(tbl)?;
    // A leveled table's rows say which leveled format they are; every row must then be
    // of the format of the first.
    let leveled = match leveled {
        Some(true) if bucket.is_none() => Some(leveled::table_row_format(
            &name,
            key_id,
            key_width,
            value_width,
        )?),
        _ => None,
    };
    let info = TableInfo {
        name,
        key_id,
        capacity,
        key_width,
        value_width,
        bucket,
        leveled,
        // A table being attached: nothing is written.
        counts_writes: false,
    };
    let unit = info.index_column();
    let describe = |i: usize| {
        format!(
            "{unit} {i} is not a row of key_id {key_id} with {key_width} keys and \
             {value_width} values{} (check the types the table was created with: its \
             COMMENT names them)",
            match &info.bucket {
                Some(layout) if layout.format == SlotFormat::Leveled => format!(
                    " in buckets of {} leveled slots ({})",
                    layout.bucket_slots,
                    layout.format.row_format()
                ),
                Some(layout) => format!(" in buckets of {} slots", layout.bucket_slots),
                None => String::new(),
            }
        )
    };
    let checked = catalog::with_row_batches(&info, batch_rows().max(64), |batches| {
        let mut done = 0usize;
        for batch in batches {
            let batch = batch?;
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            check_table_rows(&info, &refs, &|i| describe(done + i)).map_err(|e| match e {
                ExtError::Core(core) => core,
                other => fhe_kv_core::FheKvError::InvalidArgument(other.to_string()),
            })?;
            done += batch.len();
            pgrx::check_for_interrupts!();
        }
        Ok(done)
    })?;
    Ok(checked as i32)
}

/// Check rows of a table of either layout; `what(i)` names row `i` in errors.
fn check_table_rows(
    info: &TableInfo,
    rows: &[&[u8]],
    what: &(dyn Fn(usize) -> String + Sync),
) -> Result<(), ExtError> {
    if info.bucket.is_some() {
        return bucketed::check_rows(info, rows, what);
    }
    if info.is_leveled() {
        return leveled::check_rows(info, rows, what);
    }
    on_pool(|| {
        use rayon::prelude::*;
        rows.par_iter().enumerate().try_for_each(|(i, r)| {
            decode_row(r, info.key_id, info.key_width, info.value_width)
                .map(|_| ())
                .map_err(|e| fhe_kv_core::FheKvError::InvalidArgument(format!("{}: {e}", what(i))))
        })
    })?;
    Ok(())
}

/// `fhe_kv.rehash` (growing a bucketed table).
pub fn rehash(
    tbl: Option<pg_sys::Oid>,
    buckets_per_half: Option<i32>,
    rows: Option<Vec<Option<&[u8]>>>,
) -> Result<i32, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let buckets_per_half = buckets_per_half.ok_or(ExtError::Null("buckets_per_half"))?;
    let rows = rows.ok_or(ExtError::Null("rows"))?;
    let info = catalog::table_info(tbl)?;
    if info.bucket.is_none() {
        return Err(ExtError::Core(fhe_kv_core::FheKvError::InvalidArgument(
            format!(
                "{} is a {} table: grow it with fhe_kv.grow",
                info.name,
                if info.is_leveled() { "leveled" } else { "flat" }
            ),
        )));
    }
    let rows: Vec<&[u8]> = rows
        .into_iter()
        .map(|r| r.ok_or(ExtError::Null("row")))
        .collect::<Result<_, _>>()?;
    bucketed::rehash(&info, buckets_per_half, rows)
}

/// `fhe_kv.fhe_write`: a key owner's write to a bucketed table.
pub fn write(tbl: Option<pg_sys::Oid>, write: Option<&[u8]>) -> Result<i32, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let write = write.ok_or(ExtError::Null("write"))?;
    let info = catalog::table_info(tbl)?;
    if info.is_leveled() {
        return leveled::write(&info, write);
    }
    if info.bucket.is_none() {
        return Err(ExtError::Core(fhe_kv_core::FheKvError::InvalidArgument(
            format!(
                "{} is a flat table: fhe_write is for bucketed and leveled tables (use fhe_set \
                 / fhe_delete)",
                info.name
            ),
        )));
    }
    bucketed::write(&info, write)
}

/// `fhe_kv._empty_bucket`.
pub fn empty_bucket(
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
    bucket_slots: Option<i32>,
    buckets_per_half: Option<i32>,
    row_format: Option<&str>,
) -> Result<Vec<u8>, ExtError> {
    let key_id = KeyId::parse(key_id.ok_or(ExtError::Null("key_id"))?)?;
    let row_format = row_format.ok_or(ExtError::Null("row_format"))?;
    let format = SlotFormat::of_row_format(row_format).ok_or_else(|| {
        FheKvError::InvalidArgument(format!(
            "row_format must be {ROW_FORMAT_BUCKET_V1} or {ROW_FORMAT_BUCKET_LEVELED_V1}, got \
             {row_format:?}"
        ))
    })?;
    bucketed::empty_bucket(
        key_id,
        width_arg(key_bits, "key_bits")?,
        width_arg(value_bits, "value_bits")?,
        bucket_slots.ok_or(ExtError::Null("bucket_slots"))?,
        buckets_per_half.ok_or(ExtError::Null("buckets_per_half"))?,
        format,
    )
}

/// `fhe_kv.fhe_set_locate`: round 1 of a leveled table's SET.
pub fn set_locate(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>) -> Result<Vec<u8>, ExtError> {
    let (info, key, _) = resolve(tbl, key, None)?;
    if !info.is_leveled() {
        let instead = match info.bucket {
            Some(_) => "a SET on a bucketed table is the key owner's fhe_fetch then fhe_write",
            None => "use fhe_set",
        };
        return Err(ExtError::Core(FheKvError::InvalidArgument(format!(
            "{} is not a flat leveled table: fhe_set_locate is round 1 of a leveled SET; \
             {instead}",
            info.name
        ))));
    }
    leveled::set_locate(&info, key)
}

/// `fhe_kv._empty_leveled_row`: a never-written slot of the row format named
/// `row_format`.
pub fn empty_leveled_row(
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
    row_format: Option<&str>,
) -> Result<Vec<u8>, ExtError> {
    let key_id = KeyId::parse(key_id.ok_or(ExtError::Null("key_id"))?)?;
    let format = leveled_format_arg(row_format.ok_or(ExtError::Null("row_format"))?)?;
    leveled::empty_row(
        key_id,
        width_arg(key_bits, "key_bits")?,
        width_arg(value_bits, "value_bits")?,
        format,
    )
}

fn leveled_format_arg(name: &str) -> Result<RowFormat, ExtError> {
    RowFormat::from_name(name).ok_or_else(|| {
        ExtError::Core(fhe_kv_core::FheKvError::InvalidArgument(format!(
            "row_format must be {ROW_FORMAT_LEVELED_V1} or {ROW_FORMAT_LEVELED_V2}, got {name:?}"
        )))
    })
}

/// `fhe_kv._leveled_row_format`: the row format of a leveled data table without a catalog
/// entry (attach_table), told from its first row.
pub fn leveled_row_format(
    tbl: Option<pg_sys::Oid>,
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
) -> Result<String, ExtError> {
    let tbl = tbl.ok_or(ExtError::Null("table"))?;
    let key_id = KeyId::parse(key_id.ok_or(ExtError::Null("key_id"))?)?;
    let format = leveled::table_row_format(
        &catalog::relation_name(tbl)?,
        key_id,
        width_arg(key_bits, "key_bits")?,
        width_arg(value_bits, "value_bits")?,
    )?;
    Ok(format.name().to_string())
}
