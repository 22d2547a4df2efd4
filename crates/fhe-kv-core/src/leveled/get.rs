//! The server's leveled GET over a slice of slots: per slot, the leveled match bit, then
//! one blind rotation per value GLWE with the slot's own encrypted value as the
//! accumulator; the answers of all slots are summed without bootstrapping.

use super::equality::{leveled_match, EqualityLuts};
use super::repack::value_tables_from_coefficients;
use super::wire::{decode_row, StoredSlot};
use super::{RowFormat, RowLayout, NIBBLES_PER_GLWE};
use crate::bucket::wire::Selector;
use crate::envelope::KeyId;
use crate::error::{FheKvError, Result};
use crate::keys::ServerKeys;
use crate::noise::LeveledGetNoise;
use crate::runtime::pbs_many;
use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::ciphertext::{Degree, MaxDegree};
use tfhe::shortint::server_key::ManyLookupTableOwned;

/// A GET's answer for the key owner (big-LWE-key samples at the block encoding): `found`
/// is 1 or 0, `nibbles` the value's 4-bit pieces (all 0 when absent).
pub struct LeveledAnswer {
    pub found: LweCiphertextOwned<u64>,
    pub nibbles: Vec<LweCiphertextOwned<u64>>,
}

/// The slot's value GLWE as a many-LUT over the match bit: eight functions `m ↦ m · v_j`
/// (input degree 1, two boxes each, a function every `2 N/16` coefficients).
pub(crate) fn value_table(value: &GlweCiphertextOwned<u64>) -> ManyLookupTableOwned {
    let block = value.polynomial_size().0 / crate::params::BLOCK_SPACE as usize;
    ManyLookupTableOwned {
        acc: value.clone(),
        input_max_degree: MaxDegree::new(1),
        sample_extraction_stride: 2 * block,
        per_function_output_degree: vec![Degree::new(15); NIBBLES_PER_GLWE],
    }
}

/// An answer sums one term per slot with no bootstrap, so it may cover at most
/// [`LeveledGetNoise::max_slots`] slots (the caller splits larger tables).
pub(crate) fn check_answer_slots(what: &str, slots: usize) -> Result<()> {
    let max = LeveledGetNoise::new().max_slots();
    if slots > max {
        return Err(FheKvError::InvalidArgument(format!(
            "a leveled {what} answers over at most {max} slots ({slots} given): split the table"
        )));
    }
    Ok(())
}

/// The empty sum an answer starts from: a trivial 0 under the big LWE key.
pub(crate) fn zero_sum() -> LweCiphertextOwned<u64> {
    LweCiphertext::new(
        0u64,
        crate::bucket::params::lwe_dimension().to_lwe_size(),
        crate::bucket::params::ciphertext_modulus(),
    )
}

/// Private GET of one key over `slots` (at most [`LeveledGetNoise::max_slots`] of them;
/// the caller splits larger tables into several answers).
///
/// Per slot: [`leveled_match`] (`chunks + 1` PBS: 6 for u64 keys) and one blind rotation
/// per value GLWE (2 for u64 values) whose accumulator is the slot's encrypted value, so
/// the rotation by `m ∈ {0, 1}` yields `m · v_j` for eight nibbles at once. Output noise
/// per slot: one PBS output plus the stored value's own (fresh + storage modulus switch),
/// since a blind rotation carries its accumulator's noise unchanged
/// ([`LeveledGetNoise`]). The sums over slots are exact as long as at most one slot
/// holds the key (a table's invariant). A one-GLWE row's tables are first rebuilt from
/// its coefficients with the bundle's packing key ([`super::repack`]: 16 packing key
/// switches for a u64 value, no bootstrap, the stored noise unchanged).
pub fn leveled_get(
    server: &ServerKeys,
    luts: &EqualityLuts,
    layout: RowLayout,
    slots: &[StoredSlot],
    query: &[Selector],
) -> Result<LeveledAnswer> {
    check_answer_slots("GET", slots.len())?;
    let mut answer = LeveledAnswer::empty(layout);
    for slot in slots {
        answer.add_slot(server, luts, layout, slot, query, None)?;
    }
    Ok(answer)
}

/// Private GET of several keys in one pass over stored rows (`leveled_row` envelopes of
/// a table of `layout`, decoded as untrusted input; any bad row fails the whole call).
/// Each row is decoded once and dropped before the next, so memory holds one decoded
/// slot whatever the table's size; per key, the slot costs what it costs a single GET
/// (nothing per slot is shared between keys but the decoding). The keys run in
/// parallel. One answer per query, in order.
pub fn leveled_get_batch<R: AsRef<[u8]>>(
    server: &ServerKeys,
    luts: &EqualityLuts,
    key_id: KeyId,
    layout: RowLayout,
    rows: &[R],
    queries: &[Vec<Selector>],
) -> Result<Vec<LeveledAnswer>> {
    check_answer_slots("GET", rows.len())?;
    let mut answers: Vec<LeveledAnswer> = queries
        .iter()
        .map(|_| LeveledAnswer::empty(layout))
        .collect();
    for bytes in rows {
        crate::runtime::checkpoint();
        let slot = decode_row(bytes.as_ref(), key_id, layout)?;
        // One rebuild of a one-GLWE slot's tables serves every key of the batch.
        let rebuilt = match layout.format {
            RowFormat::OneGlwe if queries.len() > 1 => Some(rebuild_tables(server, layout, &slot)?),
            _ => None,
        };
        answers
            .par_iter_mut()
            .zip(queries)
            .try_for_each(|(answer, query)| {
                answer.add_slot(server, luts, layout, &slot, query, rebuilt.as_deref())
            })?;
    }
    Ok(answers)
}

impl LeveledAnswer {
    /// The empty sum over no slot.
    pub(crate) fn empty(layout: RowLayout) -> LeveledAnswer {
        LeveledAnswer {
            found: zero_sum(),
            nibbles: (0..layout.value_nibbles()).map(|_| zero_sum()).collect(),
        }
    }

    /// Add one slot's term: its match bit to `found`, and `m · v_j` to every nibble. A
    /// one-GLWE slot's tables are `rebuilt` by the caller, or here beside the match.
    fn add_slot(
        &mut self,
        server: &ServerKeys,
        luts: &EqualityLuts,
        layout: RowLayout,
        slot: &StoredSlot,
        query: &[Selector],
        rebuilt: Option<&[GlweCiphertextOwned<u64>]>,
    ) -> Result<()> {
        if slot.values.len() != layout.value_glwes() {
            return Err(FheKvError::Internal("a slot of another value width".into()));
        }
        let sks = &server.sks;
        // The rebuild does not depend on the query: it runs beside the match.
        let (m, here) = rayon::join(
            || leveled_match(sks, luts, layout.key, slot, query),
            || match (layout.format, rebuilt) {
                (RowFormat::OneGlwe, None) => rebuild_tables(server, layout, slot).map(Some),
                _ => Ok(None),
            },
        );
        let (m, here) = (m?, here?);
        // Lookup-table rows hold their tables; one-GLWE rows had them rebuilt.
        let tables = rebuilt.or(here.as_deref()).unwrap_or(&slot.values);
        self.add_selected(sks, &m, tables);
        Ok(())
    }

    /// Add a slot's match bit `m` to `found`, and `m · v_j` to every nibble: one blind
    /// rotation per lookup-table GLWE of the slot's value (`tables`), whose accumulator
    /// is the table itself.
    pub(crate) fn add_selected(
        &mut self,
        sks: &tfhe::shortint::ServerKey,
        m: &tfhe::shortint::Ciphertext,
        tables: &[GlweCiphertextOwned<u64>],
    ) {
        lwe_ciphertext_add_assign(&mut self.found, &m.ct);
        let selected: Vec<Vec<_>> = tables
            .par_iter()
            .map(|glwe| pbs_many(sks, m, &value_table(glwe)))
            .collect();
        for (acc, nibble) in self.nibbles.iter_mut().zip(selected.iter().flatten()) {
            lwe_ciphertext_add_assign(acc, &nibble.ct);
        }
    }
}

/// A one-GLWE slot's lookup tables, rebuilt with the bundle's packing key
/// ([`super::repack`]; a key made before fhe_kv 0.2.0 has none: a clear refusal).
fn rebuild_tables(
    server: &ServerKeys,
    layout: RowLayout,
    slot: &StoredSlot,
) -> Result<Vec<GlweCiphertextOwned<u64>>> {
    Ok(value_tables_from_coefficients(
        server.bucket_packing()?,
        &slot.key,
        &layout.nibble_positions(),
    ))
}
