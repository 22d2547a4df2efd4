//! The key owner's side of the leveled messages, bytes in and plaintext out: what a
//! client holding the secret key does with what `fhe_kv`'s SQL functions return. Every
//! message is decoded as untrusted input (envelope, size limit, conformance), as the
//! server decodes the key owner's.

use super::get::LeveledAnswer;
use super::messages::{decode_fetch_result, decode_status};
use super::owner::decode_block;
use super::set_locate::{LeveledSetLocation, LeveledSetTarget};
use super::two_round::LeveledLocation;
use super::wire::decode_row;
use super::{RowFormat, RowLayout};
use crate::bucket::params;
use crate::error::{FheKvError, Result};
use crate::keys::ClientKeys;
use tfhe::core_crypto::prelude::*;

impl ClientKeys {
    /// A `leveled_answer` (`fhe_get` on a leveled table): the value's little-endian bytes,
    /// or `None` when the key is absent.
    pub fn open_leveled_answer_bytes(
        &self,
        layout: RowLayout,
        answer: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let answer = LeveledAnswer::decode(answer, self.key_id(), layout)?;
        self.open_leveled_answer(layout, &answer)
    }

    /// A `leveled_status` (`fhe_delete` on a leveled table): whether the key was there.
    pub fn open_leveled_status(&self, status: &[u8]) -> Result<bool> {
        self.open_leveled_flag(&decode_status(status, self.key_id())?)
    }

    /// A `leveled_location` (`fhe_locate` on a table of `slots` slots): the slot holding
    /// the key, and the table state round 2 must carry.
    pub fn open_leveled_location_bytes(
        &self,
        location: &[u8],
        slots: usize,
    ) -> Result<(Option<usize>, u64)> {
        let (location, state) = LeveledLocation::decode(location, self.key_id(), slots)?;
        Ok((self.open_leveled_location(&location)?, state))
    }

    /// A `leveled_set_location` (`fhe_set_locate`): where the SET goes, and the table
    /// state `fhe_write` must carry.
    pub fn open_leveled_set_location_bytes(
        &self,
        location: &[u8],
        slots: usize,
    ) -> Result<(LeveledSetTarget, u64)> {
        let (location, state) = LeveledSetLocation::decode(location, self.key_id(), slots)?;
        Ok((self.open_leveled_set_location(&location)?, state))
    }

    /// Round 2 of the two-round GET after round 1 `located` the key (or not) in a table
    /// of `slots` slots: a fetch of its slot, or of a random one after a miss, so the
    /// server sees the same two calls either way.
    pub fn leveled_fetch_query_after(
        &self,
        located: Option<usize>,
        slots: usize,
        state: u64,
    ) -> Result<Vec<u8>> {
        let slot = located.unwrap_or_else(|| crate::client_two_round::random_below(slots));
        self.leveled_fetch_query(slot, slots, state)
    }

    /// A `leveled_fetch_result` (`fhe_fetch`): the fetched slot's value bytes.
    pub fn open_leveled_fetch_bytes(&self, layout: RowLayout, fetched: &[u8]) -> Result<Vec<u8>> {
        let glwes = decode_fetch_result(fetched, self.key_id(), layout)?;
        self.open_leveled_fetch(layout, &glwes)
    }

    /// A stored `leveled_row` (export, import): `Some((key, value))` as little-endian
    /// bytes of the table's widths, or `None` for a vacant slot. One GLWE decryption per
    /// part, no bootstrap.
    pub fn open_leveled_row(
        &self,
        layout: RowLayout,
        row: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let slot = decode_row(row, self.key_id(), layout)?;
        match self.open_leveled_block(&slot.vacant) {
            0 => {}
            1 => return Ok(None),
            other => {
                return Err(FheKvError::Internal(format!(
                    "a leveled vacant flag decrypted to {other}"
                )))
            }
        }
        let mut plain = PlaintextList::new(0u64, PlaintextCount(params::coefficients()));
        decrypt_glwe_ciphertext(&self.glwe, &slot.key, &mut plain);
        let mut key = vec![0u8; layout.key.width.bytes()];
        for (b, &p) in plain.as_ref()[..layout.key.bits()].iter().enumerate() {
            match decode_block(p) {
                0 => {}
                1 => key[b / 8] |= 1 << (b % 8),
                other => {
                    return Err(FheKvError::Internal(format!(
                        "bit {b} of a leveled key decrypted to {other}"
                    )))
                }
            }
        }
        let value = match layout.format {
            RowFormat::LookupTables => self.open_leveled_fetch(layout, &slot.values)?,
            RowFormat::OneGlwe => {
                self.open_leveled_fetch(layout, std::slice::from_ref(&slot.key))?
            }
        };
        Ok(Some((key, value)))
    }
}
