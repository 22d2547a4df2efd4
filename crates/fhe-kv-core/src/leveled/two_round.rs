//! The two-round GET on leveled rows (the kernels; their answers and round-2 queries
//! cross the wire as [`super::messages`]).
//!
//! * Round 1, **locate** ([`leveled_locate`]): per slot the leveled match bit `m_s`
//!   (`chunks + 1` PBS: 6 for u64 keys), then, with no further bootstrap, the found flag
//!   `Σ_s m_s` and for every bit `j` of a slot index `Σ_s m_s · bit_j(s)`: the matching
//!   slot's index in binary, `⌈log2 S⌉ + 1` LWE samples whatever the table size. Keys are
//!   unique, so every sum is 0 or 1.
//! * Round 2, **fetch** ([`leveled_fetch`]): the key owner sends the index bits as GGSWs
//!   (the bucket selectors' parameters) and the server selects that slot's value GLWEs
//!   with a CMux tree: external products only, no bootstrap. After a miss the key owner
//!   fetches a random slot, so the server sees the same two calls either way.
//!
//! A u64/u64 slot costs 6 PBS in all (the one-round leveled GET: 8), and the key owner
//! reads the value's nibbles from the fetched lookup-table GLWEs directly.

use super::equality::{leveled_match, EqualityLuts};
use super::get::{check_answer_slots, zero_sum};
use super::wire::StoredSlot;
use super::{RowFormat, RowLayout};
use crate::bucket::select::Tree;
use crate::bucket::wire::Selector;
use crate::error::{FheKvError, Result};
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::ServerKey;

/// Round 1's answer (big-LWE-key samples at the block encoding, each 0 or 1).
pub struct LeveledLocation {
    pub found: LweCiphertextOwned<u64>,
    /// Bit `j` of the matching slot's index, least significant first (all 0 on a miss).
    pub index_bits: Vec<LweCiphertextOwned<u64>>,
}

/// Index bits of a table of `slots` slots (at least 1).
pub fn index_bits(slots: usize) -> usize {
    (usize::BITS - slots.saturating_sub(1).leading_zeros()).max(1) as usize
}

/// Round 1 over `slots` (at most [`crate::noise::LeveledGetNoise::max_slots`]: each sum adds up to `S`
/// PBS outputs, like a one-round answer, whose per-slot noise bounds these).
pub fn leveled_locate(
    sks: &ServerKey,
    luts: &EqualityLuts,
    layout: RowLayout,
    slots: &[StoredSlot],
    query: &[Selector],
) -> Result<LeveledLocation> {
    check_answer_slots("locate", slots.len())?;
    let mut location = LeveledLocation {
        found: zero_sum(),
        index_bits: (0..index_bits(slots.len())).map(|_| zero_sum()).collect(),
    };
    for (s, slot) in slots.iter().enumerate() {
        let m = leveled_match(sks, luts, layout.key, slot, query)?;
        lwe_ciphertext_add_assign(&mut location.found, &m.ct);
        add_at_index_bits(&mut location.index_bits, s, &m.ct);
    }
    Ok(location)
}

/// Add slot `s`'s term to the sum of every index bit `j` that is set in `s`.
pub(crate) fn add_at_index_bits(
    sums: &mut [LweCiphertextOwned<u64>],
    s: usize,
    term: &LweCiphertextOwned<u64>,
) {
    for (j, sum) in sums.iter_mut().enumerate() {
        if (s >> j) & 1 == 1 {
            lwe_ciphertext_add_assign(sum, term);
        }
    }
}

/// Refuse index selectors of the wrong count for a table of `slots` slots (`what`: the
/// operation, for the message).
pub(crate) fn check_index_bits(what: &str, slots: usize, selectors: &[Selector]) -> Result<()> {
    if selectors.len() != index_bits(slots) {
        return Err(FheKvError::InvalidArgument(format!(
            "a {what} over {slots} slots takes {} index bits, not {}",
            index_bits(slots),
            selectors.len()
        )));
    }
    Ok(())
}

/// Round 2: the value GLWEs of the slot whose index `selectors` encrypt (bit `j` of the
/// index in `selectors[j]`; exactly [`index_bits`] of them). Each output carries the
/// stored GLWE's noise plus one external product's error per level.
pub fn leveled_fetch(
    layout: RowLayout,
    slots: &[StoredSlot],
    selectors: &[Selector],
) -> Result<Vec<GlweCiphertextOwned<u64>>> {
    check_index_bits("fetch", slots.len(), selectors)?;
    (0..layout.fetched_glwes())
        .map(|g| {
            let mut tree = Tree::new(selectors);
            for slot in slots {
                let glwe = match layout.format {
                    RowFormat::LookupTables => slot.values.get(g),
                    // The one GLWE: its key bits reach only the key owner, who has them.
                    RowFormat::OneGlwe => Some(&slot.key),
                }
                .ok_or_else(|| FheKvError::Internal("a slot of another value width".into()))?;
                tree.push(glwe.clone());
            }
            Ok(tree.finish())
        })
        .collect()
}
