//! Two-round GET, round 1: per slot, how many key blocks differ from the query (plus the
//! vacant flag), for the key owner to read. No selection, no value decompression.

use super::{BetweenBatches, KernelEnv};
use crate::error::{FheKvError, Result};
use crate::keys::ServerKeys;
use crate::row::{decompress_flag_and_key, packed_glwes, StoredRow};
use crate::two_round::LOCATE_GROUP;
use rayon::prelude::*;
use tfhe::core_crypto::algorithms::lwe_ciphertext_add_assign;
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::shortint::ciphertext::{Degree, NoiseLevel};
use tfhe::shortint::{Ciphertext, ServerKey};

/// Most keys one locate call accepts (each keeps `slots × groups` blocks until the end).
pub const MAX_LOCATE_KEYS: usize = 64;

/// The locate answer for one key: `locate_groups(K)` sums per slot, slot-major, already
/// compressed (packed GLWEs of `lwe_per_glwe` sums each). Slot `i` holds the key iff all
/// its sums are 0.
pub struct LocateOutcome {
    pub glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
}

/// Sums waiting to fill a packed GLWE, and the GLWEs already packed: the answer is
/// compressed as the rows stream by, so memory holds at most one GLWE's worth of
/// uncompressed sums (256 LWEs, ~4 MB) per key, not `capacity × groups` of them.
#[derive(Default)]
pub(crate) struct Packer {
    pub(crate) pending: Vec<Ciphertext>,
    pub(crate) glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
}

impl Packer {
    /// Pack every full GLWE's worth of pending sums (all of them when `last`).
    pub(crate) fn pack(&mut self, keys: &ServerKeys, last: bool) -> Result<()> {
        let per_glwe = keys.compression.lwe_per_glwe.0;
        while self.pending.len() >= per_glwe || (last && !self.pending.is_empty()) {
            let rest = self.pending.split_off(self.pending.len().min(per_glwe));
            let full = std::mem::replace(&mut self.pending, rest);
            let list = keys.compression.compress_ciphertexts_into_list(&full);
            self.glwes
                .extend(packed_glwes(&StoredRow::from_list(list))?);
        }
        Ok(())
    }
}

/// Locate several keys in one pass: per row `1 + K` decompressions (shared by the keys)
/// and, per key, `K` `[k_j ≠ q_j]` PBS (`block_neq`). Nothing else is bootstrapped: the
/// vacant flag and the K mismatch bits are summed [`LOCATE_GROUP`] at a time and handed
/// to the list compression as they are (see [`mismatch_sums`] for why that is exact).
/// u64 keys: 33 + 32·B PBS per row for B keys.
pub fn oblivious_locate_many_streamed<B: AsRef<[u8]> + Sync>(
    env: &KernelEnv<'_>,
    queries: &[&[Ciphertext]],
    total: usize,
    batches: impl Iterator<Item = Result<Vec<B>>>,
    between: BetweenBatches<'_>,
) -> Result<Vec<LocateOutcome>> {
    if queries.is_empty() || queries.len() > MAX_LOCATE_KEYS {
        return Err(FheKvError::InvalidArgument(format!(
            "a locate call takes 1 to {MAX_LOCATE_KEYS} keys, got {}",
            queries.len()
        )));
    }
    let sks = env.sks();
    let luts = super::Luts::new(sks);
    let cleaned: Vec<Vec<Ciphertext>> =
        queries.iter().map(|q| env.clean_inputs(&luts, q)).collect();
    let mut out: Vec<Packer> = (0..queries.len()).map(|_| Packer::default()).collect();
    let mut done = 0;
    for batch in batches {
        let batch = batch?;
        let per_row: Vec<Vec<Vec<Ciphertext>>> = env.install(|| {
            batch
                .par_iter()
                .map(|bytes| {
                    let stored = env.decode(bytes.as_ref())?;
                    let (vacant, key) = decompress_flag_and_key(env.keys, &stored, env.key_width)?;
                    Ok(cleaned
                        .par_iter()
                        .map(|q| {
                            let mut terms: Vec<Ciphertext> = key
                                .par_iter()
                                .zip(q.par_iter())
                                .map(|(k, q)| super::block_neq(sks, &luts, k, q))
                                .collect();
                            terms.insert(0, vacant.clone());
                            mismatch_sums(sks, &terms)
                        })
                        .collect())
                })
                .collect::<Result<_>>()
        })?;
        for row in per_row {
            for (packer, sums) in out.iter_mut().zip(row) {
                packer.pending.extend(sums);
            }
        }
        env.install(|| {
            out.par_iter_mut()
                .try_for_each(|packer| packer.pack(env.keys, false))
        })?;
        done += batch.len();
        between(done, total);
    }
    if done == 0 {
        return Err(FheKvError::InvalidArgument("the table has no slots".into()));
    }
    env.install(|| {
        out.par_iter_mut()
            .try_for_each(|packer| packer.pack(env.keys, true))
    })?;
    Ok(out
        .into_iter()
        .map(|packer| LocateOutcome {
            glwes: packer.glwes,
        })
        .collect())
}

/// Sum `terms` (bits, each a PBS output or a decompressed flag) in groups of
/// [`LOCATE_GROUP`], ready for the list compression, which only the key owner reads.
///
/// * **Exactness.** A group sum `s ≤ 7` has plaintext `s · 2^59` (< 2^63, so the compute
///   padding stays clear). Compression multiplies by 4: `s · 2^61 mod 2^64`, i.e. `s mod 8`
///   in the stored padded 3-bit encoding, and `s < 8`, so the key owner reads `s` itself.
///   The degree is set to 3 to pass the compression's empty-carry check, which guards the
///   mod-4 reading of ordinary blocks; these sums are read mod 8 (`open_locate`).
/// * **Noise.** The sum has 7 times the variance of a PBS output (noise level 7), while
///   compression asserts level 1. After the × 4 shift that is still ~1 % of what the
///   packing key switch and storage modulus switch add (`noise::StoredNoise::for_sum_of(7)`
///   bounds the reading failure below 2^-270; its test pins it), and no PBS ever reads it.
pub(crate) fn mismatch_sums(sks: &ServerKey, terms: &[Ciphertext]) -> Vec<Ciphertext> {
    terms
        .chunks(LOCATE_GROUP)
        .map(|group| {
            let mut acc = group[0].clone();
            // Plain LWE additions: noise level 7 exceeds the compute budget on purpose
            // (no PBS reads these), so TFHE-rs' level bookkeeping is bypassed here.
            for t in &group[1..] {
                lwe_ciphertext_add_assign(&mut acc.ct, &t.ct);
            }
            acc.degree = Degree::new(3);
            acc.set_noise_level(NoiseLevel::NOMINAL, sks.max_noise_level);
            acc
        })
        .collect()
}
