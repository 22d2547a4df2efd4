//! Server keys loaded for one session only (`fhe_kv.load_session_key`).
//!
//! The key is decompressed into this backend's memory and never stored: no table row,
//! no WAL, no dump carries it, and it is gone when the session ends. Only its key_id (a
//! public fingerprint) is recorded in `fhe_kv.server_keys`, with `server_key` NULL, so
//! that tables can be bound to it and the binding survives the session. An operation on
//! such a table in a session that has not loaded the key fails with
//! [`ExtError::SessionKeyNotLoaded`], whose hint says how to load it.
//!
//! Invariant: every entry's `keys.key_id` is the fingerprint of the bytes it was loaded
//! from (checked by `ServerKeys::validate_upload`), so a session key can never stand in
//! for another key_id.

use crate::catalog;
use crate::errors::ExtError;
use crate::fhe_ops::on_pool;
use crate::guc;
use fhe_kv_core::keys::ServerKeys;
use fhe_kv_core::KeyId;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::sync::Arc;

/// One key loaded in this session.
pub struct SessionKey {
    pub keys: Arc<ServerKeys>,
    pub loaded_at: TimestampWithTimeZone,
    /// Size of the upload it was decompressed from.
    pub upload_bytes: usize,
}

thread_local! {
    /// In load order. Postgres backends are single-threaded: only the backend thread
    /// touches this (the worker pool gets `Arc` clones).
    static SESSION_KEYS: RefCell<Vec<SessionKey>> = const { RefCell::new(Vec::new()) };
}

/// Validate, decompress and keep `bytes` for this session; record its key_id. Returns the
/// key_id. Loading a key that is already loaded is a no-op.
pub fn load(bytes: Option<&[u8]>) -> Result<String, ExtError> {
    let bytes = bytes.ok_or(ExtError::Null("server_key"))?;
    // Validated (decoded) once; decompressed only if not loaded yet.
    let (key_id, upload) = on_pool(|| ServerKeys::validate_upload(bytes))?;
    if get(key_id).is_some() {
        return Ok(key_id.to_hex());
    }
    let limit = guc::SERVER_KEY_CACHE_SIZE.get().max(1) as usize;
    let loaded = SESSION_KEYS.with_borrow(|keys| keys.len());
    if loaded >= limit {
        return Err(ExtError::TooManySessionKeys { loaded, limit });
    }
    let keys = Arc::new(on_pool(|| ServerKeys::from_validated(key_id, upload))?);
    // The fingerprint row binds tables to this key; the key bytes stay in memory.
    catalog::insert_session_key_id(key_id)?;
    SESSION_KEYS.with_borrow_mut(|list| {
        list.push(SessionKey {
            keys,
            loaded_at: now(),
            upload_bytes: bytes.len(),
        })
    });
    Ok(key_id.to_hex())
}

fn now() -> TimestampWithTimeZone {
    // SAFETY: GetCurrentTimestamp only reads the clock; we are on the backend thread.
    let ts = unsafe { pg_sys::GetCurrentTimestamp() };
    TimestampWithTimeZone::try_from(ts)
        .unwrap_or_else(|_| TimestampWithTimeZone::positive_infinity())
}

/// Forget a session key (its memory is freed once no running operation holds it).
pub fn unload(key_id: KeyId) -> bool {
    SESSION_KEYS.with_borrow_mut(|list| {
        let before = list.len();
        list.retain(|k| k.keys.key_id != key_id);
        list.len() != before
    })
}

/// The session's copy of `key_id`, if loaded.
pub fn get(key_id: KeyId) -> Option<Arc<ServerKeys>> {
    SESSION_KEYS.with_borrow(|list| {
        list.iter()
            .find(|k| k.keys.key_id == key_id)
            .map(|k| k.keys.clone())
    })
}

/// (key_id, supports_buckets, loaded_at, upload_bytes) of every loaded key.
pub fn list() -> Vec<(String, bool, TimestampWithTimeZone, i64)> {
    SESSION_KEYS.with_borrow(|list| {
        list.iter()
            .map(|k| {
                (
                    k.keys.key_id.to_hex(),
                    k.keys.bucket_packing.is_some(),
                    k.loaded_at,
                    k.upload_bytes as i64,
                )
            })
            .collect()
    })
}
