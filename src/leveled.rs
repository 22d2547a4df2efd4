//! The SQL functions on leveled tables (`layout = 'leveled'`, row format `leveled-v2`, or
//! `leveled-v1` for tables made before fhe_kv 0.5.0 or asked for):
//! one row per slot, as a flat table, but each row is a leveled row
//! (`fhe_kv_core::leveled`) and the kernels are the leveled ones, ~6–8 bootstraps per
//! u64/u64 slot instead of ~150 (docs/leveled.md). [`crate::fhe_ops`] routes here when a
//! table's catalog entry says leveled.
//!
//! Every argument is decoded as untrusted input (envelope header, size limit,
//! `safe_deserialize_conformant`) before the server key is loaded or a row is read, and
//! every write is computed in full before anything is written, so an error or a cancel
//! leaves the table unchanged.
//!
//! A SET takes two rounds (`fhe_set_locate`, then `fhe_write`) and a two-round GET
//! carries the table state from `fhe_locate` to `fhe_fetch`: round 2 is refused with
//! SQLSTATE 40001 when a write came in between ([`ExtError::StaleRound`]), since its
//! encrypted slot index may no longer point at the key's slot.

use crate::catalog::{self, TableInfo};
use crate::errors::ExtError;
use crate::fhe_ops::{on_pool, server_keys};
use fhe_kv_core::bucket::wire::Selector;
use fhe_kv_core::kernels::DeleteMode;
use fhe_kv_core::leveled::delete::leveled_delete;
use fhe_kv_core::leveled::equality::EqualityLuts;
use fhe_kv_core::leveled::get::leveled_get_batch;
use fhe_kv_core::leveled::messages::{
    decode_fetch_query, decode_set_write, encode_fetch_result, encode_status,
};
use fhe_kv_core::leveled::set_locate::leveled_set_locate;
use fhe_kv_core::leveled::set_write::leveled_set_write_rows;
use fhe_kv_core::leveled::two_round::{leveled_fetch, leveled_locate};
use fhe_kv_core::leveled::wire::{decode_query, decode_row, row_format_of, StoredSlot};
use fhe_kv_core::leveled::{RowFormat, RowLayout};
use fhe_kv_core::noise::LeveledGetNoise;
use fhe_kv_core::{FheKvError, KeyId, Width};
use rayon::prelude::*;
use tfhe::shortint::ServerKey;

/// The row layout of a leveled table (only called on those: a catalog entry of another
/// layout has no leveled format).
fn layout(info: &TableInfo) -> RowLayout {
    let format = info.leveled.unwrap_or(RowFormat::OneGlwe);
    RowLayout::of_format(info.key_width, info.value_width, format)
}

/// Slots a leveled table may have: an answer sums one term per slot without a
/// bootstrap, so its noise bounds the table ([`LeveledGetNoise::max_slots`], 1,024).
pub fn max_slots() -> usize {
    LeveledGetNoise::new().max_slots()
}

/// The row of a never-written slot (`fhe_kv._empty_leveled_row`, used by create_table and
/// grow): built by the server from trivial ciphertexts, no key material needed; the key
/// must be registered (or loaded for the session) all the same.
pub fn empty_row(
    key_id: KeyId,
    key: Width,
    value: Width,
    format: RowFormat,
) -> Result<Vec<u8>, ExtError> {
    catalog::server_key_registered(key_id)?;
    Ok(on_pool(|| {
        fhe_kv_core::leveled::wire::empty_row(key_id, RowLayout::of_format(key, value, format))
    })?)
}

/// The row format of a leveled data table that has no catalog entry yet
/// (`fhe_kv.attach_table`), told from its first row: both formats' rows are
/// self-describing ([`row_format_of`]). The caller checks every row against it.
pub fn table_row_format(
    name: &str,
    key_id: KeyId,
    key: Width,
    value: Width,
) -> Result<RowFormat, ExtError> {
    let row = catalog::first_row(name, "slot")?.ok_or(ExtError::Null("row"))?;
    Ok(
        on_pool(|| row_format_of(&row, key_id, key, value)).map_err(|e| {
            FheKvError::InvalidArgument(format!(
                "slot 0 of {name} is not a leveled row of key_id {key_id} with {key} keys and \
             {value} values: {e}"
            ))
        })?,
    )
}

/// Decode a call's query keys (`leveled_query_key` envelopes of the table's key width);
/// a bad key is reported with its position when there are several.
fn decode_queries(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<Vec<Selector>>, ExtError> {
    let chunks = layout(info).key;
    keys.iter()
        .map(|key| {
            let key = key.ok_or(ExtError::Null("key"))?;
            on_pool(|| decode_query(key, info.key_id, chunks)).map_err(ExtError::from)
        })
        .enumerate()
        .map(|(i, r)| match r {
            Err(e) if batched => Err(ExtError::Element {
                what: "keys",
                position: i + 1,
                source: Box::new(e),
            }),
            other => other,
        })
        .collect()
}

/// Decode every stored row into its GLWEs (in parallel); any bad row fails the call.
fn decode_rows(info: &TableInfo, rows: &[Vec<u8>]) -> Result<Vec<StoredSlot>, ExtError> {
    let layout = layout(info);
    Ok(on_pool(|| {
        rows.par_iter()
            .map(|r| decode_row(r, info.key_id, layout))
            .collect::<fhe_kv_core::Result<Vec<_>>>()
    })?)
}

/// One-round GET of one or several keys (`fhe_get`, `fhe_get_many`): each stored row is
/// decoded once for all keys; one `leveled_answer` per key, in order.
pub fn get_many(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<Vec<u8>>, ExtError> {
    let queries = decode_queries(info, keys, batched)?;
    let server = server_keys(info.key_id)?;
    let (_, rows) = catalog::read_rows(info)?;
    let layout = layout(info);
    Ok(on_pool(|| {
        let luts = EqualityLuts::new(&server.sks);
        leveled_get_batch(&server, &luts, info.key_id, layout, &rows, &queries)?
            .iter()
            .map(|answer| answer.encode(info.key_id, layout))
            .collect::<fhe_kv_core::Result<Vec<_>>>()
    })?)
}

/// A round 1 (`fhe_locate`, `fhe_set_locate`): every key decoded, then the rows and the
/// table state read in one statement and decoded once for all keys; `answer` gives each
/// key's envelope, which carries the state round 2 must bring back.
fn round_one(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
    answer: impl Fn(
            &ServerKey,
            &EqualityLuts,
            &[StoredSlot],
            &[Selector],
            u64,
        ) -> fhe_kv_core::Result<Vec<u8>>
        + Sync,
) -> Result<Vec<Vec<u8>>, ExtError> {
    let queries = decode_queries(info, keys, batched)?;
    let server = server_keys(info.key_id)?;
    let (state, rows) = catalog::read_rows_with_state(info)?;
    let slots = decode_rows(info, &rows)?;
    drop(rows);
    Ok(on_pool(|| {
        let luts = EqualityLuts::new(&server.sks);
        queries
            .par_iter()
            .map(|query| answer(&server.sks, &luts, &slots, query, state))
            .collect::<fhe_kv_core::Result<Vec<_>>>()
    })?)
}

/// Round 1 of the two-round GET (`fhe_locate`, `fhe_locate_many`): per key, the found bit
/// and the matching slot's index bits, with the table state round 2 must carry.
pub fn locate_many(
    info: &TableInfo,
    keys: &[Option<&[u8]>],
    batched: bool,
) -> Result<Vec<Vec<u8>>, ExtError> {
    let layout = layout(info);
    round_one(info, keys, batched, |sks, luts, slots, query, state| {
        leveled_locate(sks, luts, layout, slots, query)?.encode(info.key_id, slots.len(), state)
    })
}

/// Round 1 of a SET (`fhe_set_locate`): the key's slot or the first vacant one, for the
/// key owner to read, with the table state `fhe_write` must carry.
pub fn set_locate(info: &TableInfo, key: &[u8]) -> Result<Vec<u8>, ExtError> {
    let layout = layout(info);
    let mut out = round_one(
        info,
        &[Some(key)],
        false,
        |sks, luts, slots, query, state| {
            leveled_set_locate(sks, luts, layout, slots, query)?.encode(
                info.key_id,
                slots.len(),
                state,
            )
        },
    )?;
    Ok(out.pop().expect("one key, one answer"))
}

/// Round 2 of the two-round GET (`fhe_fetch`): the value GLWEs of the slot the encrypted
/// index selects, by CMux trees (no bootstrap, no server key); refused if the table
/// changed since round 1.
pub fn fetch(info: &TableInfo, query: &[u8]) -> Result<Vec<u8>, ExtError> {
    let slots = info.rows();
    let query = on_pool(|| decode_fetch_query(query, info.key_id, slots))?;
    let (state, rows) = catalog::read_rows_with_state(info)?;
    if state != query.state {
        return Err(ExtError::StaleRound(info.name.clone()));
    }
    let decoded = decode_rows(info, &rows)?;
    drop(rows);
    let layout = layout(info);
    Ok(on_pool(|| {
        let glwes = leveled_fetch(layout, &decoded, &query.index)?;
        encode_fetch_result(info.key_id, layout, &glwes)
    })?)
}

/// Round 2 of a SET (`fhe_write`): under the writer lock, check that the table is still
/// as round 1 saw it, then write the key owner's row into the slot its encrypted index
/// selects and rewrite every slot (no bootstrap). Returns the slots rewritten.
pub fn write(info: &TableInfo, write: &[u8]) -> Result<i32, ExtError> {
    let slots = info.rows();
    let layout = layout(info);
    let query = on_pool(|| decode_set_write(write, info.key_id, slots))?;
    // The new row is decoded as any row before the lock is taken.
    on_pool(|| decode_row(&query.row, info.key_id, layout))?;
    catalog::lock_for_write(info)?;
    if catalog::state_token(info)? != query.state {
        return Err(ExtError::StaleRound(info.name.clone()));
    }
    let (indices, rows) = catalog::read_rows(info)?;
    let new_rows = on_pool(|| leveled_set_write_rows(info.key_id, layout, &rows, &query))?;
    drop(rows);
    let count = new_rows.len() as i32;
    catalog::write_rows(info, indices, new_rows)?;
    Ok(count)
}

/// Private DELETE (`fhe_delete`): the match bit is added to every slot's vacant flag and
/// bootstrapped; the key and value GLWEs stay as they are. Returns a `leveled_status`.
pub fn delete(info: &TableInfo, key: &[u8], mode: DeleteMode) -> Result<Vec<u8>, ExtError> {
    if matches!(mode, DeleteMode::Scrub) {
        return Err(FheKvError::InvalidArgument(format!(
            "{} is a leveled table: fhe_delete takes no scrub there (a freed slot keeps its \
             pair, encrypted and flagged vacant, until the next SET into it overwrites it)",
            info.name
        ))
        .into());
    }
    let mut queries = decode_queries(info, &[Some(key)], false)?;
    let query = queries.pop().expect("one key, one query");
    catalog::lock_for_write(info)?;
    let server = server_keys(info.key_id)?;
    let (indices, rows) = catalog::read_rows(info)?;
    let layout = layout(info);
    let (new_rows, status) = on_pool(|| {
        let luts = EqualityLuts::new(&server.sks);
        let out = leveled_delete(&server.sks, &luts, info.key_id, layout, &rows, &query)?;
        Ok::<_, FheKvError>((out.rows, encode_status(info.key_id, &out.status)?))
    })?;
    drop(rows);
    catalog::write_rows(info, indices, new_rows)?;
    Ok(status)
}

/// Check rows of a leveled table (`replace_all_rows`, `attach_table`): each a conformant
/// `leveled_row` of its key_id and widths; `what(i)` names row `i` in errors.
pub fn check_rows(
    info: &TableInfo,
    rows: &[&[u8]],
    what: &(dyn Fn(usize) -> String + Sync),
) -> Result<(), ExtError> {
    let layout = layout(info);
    on_pool(|| {
        rows.par_iter().enumerate().try_for_each(|(i, r)| {
            decode_row(r, info.key_id, layout)
                .map(|_| ())
                .map_err(|e| FheKvError::InvalidArgument(format!("{}: {e}", what(i))))
        })
    })?;
    Ok(())
}
