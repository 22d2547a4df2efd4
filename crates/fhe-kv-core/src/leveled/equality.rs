//! The server's leveled equality: `[stored key = query key]` as one shortint block, from
//! one external product per chunk and `chunks + 1` PBS (`1` for a single chunk).

use super::wire::StoredSlot;
use super::ChunkLayout;
use crate::bucket::params;
use crate::bucket::select::add_external_product;
use crate::bucket::wire::Selector;
use crate::error::{FheKvError, Result};
use crate::kernels::reduce;
use crate::runtime::pbs;
use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::ciphertext::{Degree, NoiseLevel};
use tfhe::shortint::parameters::{CarryModulus, MessageModulus};
use tfhe::shortint::server_key::LookupTableOwned;
use tfhe::shortint::{AtomicPatternKind, Ciphertext, PBSOrder, ServerKey};

/// The two tables leveled equality needs (~32 KB each; build once per operation).
pub struct EqualityLuts {
    /// `x ↦ [x ≠ 0]`: a chunk's mismatch bit, and the fold of a group of them.
    pub(crate) nonzero: LookupTableOwned,
    /// `x ↦ [x = 0]`: the last step.
    is_zero: LookupTableOwned,
}

impl EqualityLuts {
    pub fn new(sks: &ServerKey) -> EqualityLuts {
        EqualityLuts {
            nonzero: sks.generate_lookup_table(|x| u64::from(x != 0)),
            is_zero: sks.generate_lookup_table(|x| u64::from(x == 0)),
        }
    }
}

/// The Hamming distance of each chunk, as LWE samples under the big LWE key at the block
/// encoding: `d_c = Σ_{b ∈ c} k_b ⊕ q_b ∈ [0, 15]`. No bootstrap: one external product
/// and one sample extraction per chunk.
pub fn chunk_distances(
    stored: &GlweCiphertextOwned<u64>,
    query: &[Selector],
) -> Vec<LweCiphertextOwned<u64>> {
    query
        .par_iter()
        .map(|ggsw| {
            let mut product = GlweCiphertext::new(
                0u64,
                params::glwe_size(),
                params::polynomial_size(),
                params::ciphertext_modulus(),
            );
            add_external_product(&mut product, ggsw, stored);
            coefficient(&product, 0)
        })
        .collect()
}

/// `[slot occupied ∧ stored key = query key]` as a block holding 0 or 1 (nominal noise,
/// degree 1).
///
/// The slot's vacant flag (an LWE sample under the big LWE key, 0 or 1) is added to the
/// last chunk's distance: that chunk has at most 8 bits for every width (8, 16, 32, 64,
/// 128, 256 mod 15), so the sum stays below 16 and is 0 only for an occupied slot whose
/// chunk matches.
///
/// Each chunk distance enters a PBS with degree `|c| (+1) ≤ 15` and the nominal noise level:
/// [`crate::noise::LeveledEqualityNoise`] shows its variance is far below one PBS
/// output's. The last chunk carries the flag too, which after a private DELETE is a PBS
/// output stored at 24 bits: it is declared at noise level 2 (one PBS output plus a sum
/// far below another, `LeveledEqualityNoise::last_chunk`). A single chunk is decided by `[d = 0]` directly; otherwise each chunk gives
/// `[d_c ≠ 0]` and the mismatch bits are folded like the block kernels' ([`reduce`]: five
/// per PBS, level 5 = `max_noise_level`), the last sum through `[Σ = 0]`.
pub fn leveled_match(
    sks: &ServerKey,
    luts: &EqualityLuts,
    layout: ChunkLayout,
    slot: &StoredSlot,
    query: &[Selector],
) -> Result<Ciphertext> {
    check_chunks(layout, query)?;
    Ok(decide_match(
        sks,
        luts,
        layout,
        chunk_distances(&slot.key, query),
        &slot.vacant,
        NoiseLevel::NOMINAL * 2,
    ))
}

/// A query of one GGSW per chunk of `layout`'s key (the decoders check it; the kernels
/// refuse a mismatch rather than compare part of a key).
pub(crate) fn check_chunks(layout: ChunkLayout, query: &[Selector]) -> Result<()> {
    if query.len() != layout.chunks() {
        return Err(FheKvError::Internal(format!(
            "a {} key has {} chunks, the query {}",
            layout.width,
            layout.chunks(),
            query.len()
        )));
    }
    Ok(())
}

/// The match bit from a slot's chunk distances and its vacant flag (both LWE samples
/// under the big LWE key): the flag is added to the last chunk, declared at `last_level`
/// (the distance's nominal level plus what the flag may carry), then `[d = 0]` for a
/// single chunk, or `[d_c ≠ 0]` per chunk folded by [`reduce`].
pub(crate) fn decide_match(
    sks: &ServerKey,
    luts: &EqualityLuts,
    layout: ChunkLayout,
    distances: Vec<LweCiphertextOwned<u64>>,
    vacant: &LweCiphertextOwned<u64>,
    last_level: NoiseLevel,
) -> Ciphertext {
    let last = layout.chunks() - 1;
    let distances: Vec<Ciphertext> = distances
        .into_iter()
        .enumerate()
        .map(|(c, mut lwe)| {
            let degree = layout.chunk(c).len() as u64;
            if c == last {
                lwe_ciphertext_add_assign(&mut lwe, vacant);
                distance_block(lwe, degree + 1, last_level)
            } else {
                distance_block(lwe, degree, NoiseLevel::NOMINAL)
            }
        })
        .collect();
    if let [only] = distances.as_slice() {
        return pbs(sks, only, &luts.is_zero);
    }
    let mismatches: Vec<Ciphertext> = distances
        .par_iter()
        .map(|d| pbs(sks, d, &luts.nonzero))
        .collect();
    reduce(sks, mismatches, &luts.nonzero, &luts.is_zero)
}

/// Coefficient `at` of a GLWE as an LWE sample under the big LWE key.
pub(crate) fn coefficient(glwe: &GlweCiphertextOwned<u64>, at: usize) -> LweCiphertextOwned<u64> {
    let mut lwe = LweCiphertext::new(
        0u64,
        params::lwe_dimension().to_lwe_size(),
        params::ciphertext_modulus(),
    );
    extract_lwe_sample_from_glwe_ciphertext(glwe, &mut lwe, MonomialDegree(at));
    lwe
}

/// An LWE sample under the big LWE key as a shortint block of degree `degree` (its largest
/// value) at noise level `level`.
pub(crate) fn distance_block(
    lwe: LweCiphertextOwned<u64>,
    degree: u64,
    level: NoiseLevel,
) -> Ciphertext {
    Ciphertext::new(
        lwe,
        Degree::new(degree),
        level,
        MessageModulus(crate::params::MESSAGE_MODULUS),
        CarryModulus(crate::params::BLOCK_SPACE / crate::params::MESSAGE_MODULUS),
        AtomicPatternKind::Standard(PBSOrder::KeyswitchBootstrap),
    )
}
