//! Round 1 of a two-round leveled SET: where the write goes. (Round 2, the write itself,
//! is [`super::set_write`].)
//!
//! A SET writes to the slot that holds the key, else to the first vacant slot, else the
//! table is full. Per slot `s` the server computes, on encrypted bits only:
//!
//! * the leveled match bit `m_s` (`chunks + 1` PBS: 6 for u64 keys), exactly as the
//!   two-round GET's locate;
//! * the running "a vacant slot was seen" bit `p_s = [p_{s−1} + v_s ≠ 0]` from the slot's
//!   vacant flag `v_s` (1 PBS, a chain across the slots; `p_{−1} = 0`), and from it the
//!   first-vacant bit `f_s = p_s − p_{s−1}` (linear: `p` never falls, so `f_s ∈ {0, 1}`,
//!   and it is 1 at the first vacant slot only).
//!
//! and returns, with no further bootstrap, `found = Σ m_s` and the matching slot's index
//! bits `Σ m_s · bit_j(s)` (as the locate does), plus `any vacant = p_{S−1}` and the
//! first vacant slot's index bits `Σ f_s · bit_j(s)`. The key owner decides between
//! update, insert and full ([`crate::keys::ClientKeys::open_leveled_set_location`]), so
//! the server never needs `found` as a bootstrap input (a sum of `S` PBS outputs would be
//! far too noisy for one). **7 PBS per u64 slot.**
//!
//! Noise: every `p_s` is a fresh PBS output, and `Σ_s f_s · bit_j(s)` telescopes. Over a
//! run `a..=b` of slots whose bit `j` is 1 the terms sum to `p_b − p_{a−1}`, and
//! different runs charge different slots (`b` has bit `j` set, `a − 1` does not). So each
//! index bit carries at most `S` PBS outputs' noise, the bound of the locate's sums and
//! of a one-round answer ([`crate::noise::LeveledGetNoise::max_slots`] limits `S`). The
//! chain's input `p_{s−1} + v_s` is a PBS output plus a stored flag (at most a PBS output
//! and its 24-bit storage), the same level 2 a DELETE bootstraps.

use super::equality::{distance_block, EqualityLuts};
use super::get::{check_answer_slots, zero_sum};
use super::two_round::{add_at_index_bits, leveled_locate, LeveledLocation};
use super::wire::StoredSlot;
use super::RowLayout;
use crate::bucket::wire::Selector;
use crate::error::Result;
use crate::runtime::pbs;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::ciphertext::NoiseLevel;
use tfhe::shortint::ServerKey;

/// Round 1's answer (big-LWE-key samples at the block encoding, each 0 or 1).
pub struct LeveledSetLocation {
    /// The two-round GET's locate: whether a slot holds the key, and which.
    pub key: LeveledLocation,
    /// 1 if any slot is vacant.
    pub any_vacant: LweCiphertextOwned<u64>,
    /// Bit `j` of the first vacant slot's index (all 0 when none is vacant).
    pub vacant_bits: Vec<LweCiphertextOwned<u64>>,
}

/// What the key owner reads from round 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeveledSetTarget {
    /// The key is in this slot: round 2 overwrites its value.
    Update(usize),
    /// The key is absent and this is the first vacant slot: round 2 writes key and value.
    Insert(usize),
    /// The key is absent and no slot is vacant: the SET fails. (Round 2 should still run,
    /// writing nothing, so the server cannot tell a full table.)
    Full,
}

/// Round 1 of a SET over `slots` (at most [`crate::noise::LeveledGetNoise::max_slots`]).
///
/// The match bits and their sums are the two-round GET's [`leveled_locate`]. The chain of
/// `p_s` needs no match bit, so it runs beside it: on 2 cores it takes one core while the
/// matches' own parallel PBS fill the other.
pub fn leveled_set_locate(
    sks: &ServerKey,
    luts: &EqualityLuts,
    layout: RowLayout,
    slots: &[StoredSlot],
    query: &[Selector],
) -> Result<LeveledSetLocation> {
    // Checked here too, before the chain starts any PBS.
    check_answer_slots("SET locate", slots.len())?;
    let (key, seen) = rayon::join(
        || leveled_locate(sks, luts, layout, slots, query),
        || vacant_seen(sks, luts, slots),
    );
    let key = key?;
    let mut vacant_bits: Vec<_> = (0..key.index_bits.len()).map(|_| zero_sum()).collect();
    let mut before = zero_sum();
    for (s, p) in seen.iter().enumerate() {
        // f_s = p_s − p_{s−1}, exact: the sums telescope (module comment).
        let mut first = p.clone();
        lwe_ciphertext_sub_assign(&mut first, &before);
        add_at_index_bits(&mut vacant_bits, s, &first);
        before = p.clone();
    }
    Ok(LeveledSetLocation {
        key,
        any_vacant: seen.last().cloned().unwrap_or_else(zero_sum),
        vacant_bits,
    })
}

/// `p_s = [p_{s−1} + v_s ≠ 0]` for every slot, in order (`p_{−1} = 0`).
fn vacant_seen(
    sks: &ServerKey,
    luts: &EqualityLuts,
    slots: &[StoredSlot],
) -> Vec<LweCiphertextOwned<u64>> {
    let mut seen: Vec<LweCiphertextOwned<u64>> = Vec::with_capacity(slots.len());
    for slot in slots {
        let mut sum = slot.vacant.clone();
        if let Some(before) = seen.last() {
            lwe_ciphertext_add_assign(&mut sum, before);
        }
        // p_{s−1} + v_s ∈ {0, 1, 2}: a PBS output plus a stored flag, level 2 (as DELETE's
        // flag + m).
        let p = pbs(
            sks,
            &distance_block(sum, 2, NoiseLevel::NOMINAL * 2),
            &luts.nonzero,
        );
        seen.push(p.ct);
    }
    seen
}
