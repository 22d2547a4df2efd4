//! The server's leveled DELETE: every slot's vacant flag becomes `[flag + m ≠ 0]`, where
//! `m` is the slot's leveled match bit, so the one slot holding the key (if any) turns
//! vacant and every other slot keeps its flag. Every flag is rewritten (a fresh PBS
//! output), so the rows do not show which slot changed or whether the key existed.
//!
//! Per slot: [`leveled_match`] (`chunks + 1` PBS: 6 for u64 keys) and one PBS for the new
//! flag: **7 PBS for a u64 key**, whatever the value width (the key and value GLWEs are
//! not touched: a deleted value stays encrypted in its slot, behind its flag, as in the
//! other layouts).
//!
//! Idempotent: a vacant slot never matches (its flag is part of the match), so deleting
//! an absent or already deleted key changes no flag's value. The flag's noise does not
//! grow with the number of DELETEs: it is bootstrapped every time
//! ([`crate::noise::LeveledEqualityNoise::flag`]).

use super::equality::{distance_block, leveled_match, EqualityLuts};
use super::get::{check_answer_slots, zero_sum};
use super::wire::{decode_stored_row, encode_stored_row, VacantFlag};
use super::RowLayout;
use crate::bucket::wire::Selector;
use crate::envelope::KeyId;
use crate::error::Result;
use crate::runtime::pbs;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::ciphertext::NoiseLevel;
use tfhe::shortint::ServerKey;

/// A DELETE's result: the new bytes of every row, in order, and for the key owner the
/// encrypted status, `Σ m` over the slots: 1 if the key was there, 0 if not (a sum of
/// match bits, no bootstrap; at most one is 1).
pub struct LeveledDeleteOutcome {
    pub rows: Vec<Vec<u8>>,
    pub status: LweCiphertextOwned<u64>,
}

/// Private DELETE of one key (`rows` are `leveled_row` envelopes of a table of `layout`,
/// decoded as untrusted input; any bad row fails the whole operation before a result is
/// returned, so the caller writes nothing). At most
/// [`crate::noise::LeveledGetNoise::max_slots`] rows, as for a GET: the status is a sum
/// over them.
pub fn leveled_delete<R: AsRef<[u8]>>(
    sks: &ServerKey,
    luts: &EqualityLuts,
    key_id: KeyId,
    layout: RowLayout,
    rows: &[R],
    query: &[Selector],
) -> Result<LeveledDeleteOutcome> {
    // The status sums a match bit per slot with no bootstrap, like a GET's answer.
    check_answer_slots("DELETE", rows.len())?;
    let mut status = zero_sum();
    let rows = rows
        .iter()
        .map(|bytes| {
            let mut row = decode_stored_row(bytes.as_ref(), key_id, layout)?;
            let slot = row.expand();
            let m = leveled_match(sks, luts, layout.key, &slot, query)?;
            // flag + m ∈ {0, 1}: a slot that matches is occupied (flag 0). The sum carries
            // a stored flag (at most one PBS output plus its 24-bit storage) and a PBS
            // output: level 2, degree 2.
            lwe_ciphertext_add_assign(&mut status, &m.ct);
            let mut sum = slot.vacant;
            lwe_ciphertext_add_assign(&mut sum, &m.ct);
            let flag = pbs(
                sks,
                &distance_block(sum, 2, NoiseLevel::NOMINAL * 2),
                &luts.nonzero,
            );
            row.vacant = VacantFlag::computed(&flag.ct);
            encode_stored_row(key_id, layout, &row)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LeveledDeleteOutcome { rows, status })
}
