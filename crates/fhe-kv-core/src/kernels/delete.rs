//! Private DELETE: `vacant_i' = vacant_i OR match_i` (a tombstone), encrypted status
//! (deleted / not found). With `scrub`, every vacant slot's key and value are also zeroed.

use super::{compact, reduce, two_pbs_sum_for_compression, BetweenBatches, KernelEnv};
use crate::error::{FheKvError, Result};
use crate::row::encode_row;
use crate::runtime::{pbs, pbs_bivariate};
use rayon::prelude::*;
use tfhe::shortint::{Ciphertext, ServerKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DeleteStatus {
    NotFound = 0,
    Deleted = 1,
}

impl DeleteStatus {
    pub fn from_code(code: u8) -> Option<DeleteStatus> {
        match code {
            0 => Some(DeleteStatus::NotFound),
            1 => Some(DeleteStatus::Deleted),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DeleteStatus::NotFound => "not_found",
            DeleteStatus::Deleted => "deleted",
        }
    }
}

pub struct DeleteOutcome {
    pub rows: Vec<Vec<u8>>,
    pub status: Ciphertext,
}

/// How DELETE treats the contents of the slot it frees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteMode {
    /// Only the vacant flag changes (no PBS per row beyond decompression and match). The
    /// deleted key and value stay encrypted in the slot until a later insert reuses it or
    /// a scrubbing DELETE / `fhe-kv import` zeroes it. Readers never see them: every
    /// kernel's match includes the vacant flag, and SET's masked update overwrites every
    /// block of the slot it inserts into, whatever it held.
    Tombstone,
    /// Also zero the key and value of **every** vacant slot (the one freed now and any
    /// earlier tombstone): the new flag through one PBS (`[vacant + match ≠ 0]`, noise 2)
    /// so it is a nominal term, then one more bivariate PBS per key/value block,
    /// `(vacant', b) ↦ vacant' ? 0 : b` on `4·vacant' + b` (noise 4 + 1 = 5), so deleted
    /// data does not survive in the live table for a later key compromise to reveal.
    Scrub,
}

/// Per row beyond decompression and match: nothing for a tombstone ([`tombstone_flag`]),
/// `1 + K + V` for [`DeleteMode::Scrub`]. Per operation: one cleaning PBS per key block
/// (the key is only compared, see `KernelEnv::clean_inputs`).
pub fn oblivious_delete(
    env: &KernelEnv<'_>,
    query: &[Ciphertext],
    rows: &[impl AsRef<[u8]> + Sync],
    mode: DeleteMode,
    between: BetweenBatches<'_>,
) -> Result<DeleteOutcome> {
    if rows.is_empty() {
        return Err(FheKvError::InvalidArgument("the table has no slots".into()));
    }
    let sks = env.sks();
    let luts = super::Luts::new(sks);
    let query = &env.clean_inputs(&luts, query);
    let mut found_terms: Vec<Ciphertext> = Vec::new();
    let mut out_rows = Vec::with_capacity(rows.len());

    env.scan_rows(&luts, query, rows, between, |batch| {
        // Rows are moved, not cloned: a tombstone re-encodes the decompressed blocks as they
        // are, with only the new flag.
        let rewritten: Vec<(Vec<u8>, Ciphertext)> = env.install(|| {
            batch
                .into_par_iter()
                .map(|(mut row, m)| {
                    if mode == DeleteMode::Tombstone {
                        row.vacant = tombstone_flag(sks, &row.vacant, &m);
                    } else {
                        // The zeroing masks weigh the flag by 4: it must be nominal.
                        row.vacant = pbs(sks, &sks.unchecked_add(&row.vacant, &m), &luts.nonzero);
                        let vacant = &row.vacant;
                        let zero_if_vacant = |blocks: &[Ciphertext]| -> Vec<Ciphertext> {
                            blocks
                                .par_iter()
                                .map(|b| pbs_bivariate(sks, vacant, b, &luts.keep_unless))
                                .collect()
                        };
                        row.key = zero_if_vacant(&row.key);
                        row.value = zero_if_vacant(&row.value);
                    }
                    Ok((encode_row(env.keys, &row)?, m))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        for (bytes, m) in rewritten {
            out_rows.push(bytes);
            found_terms.push(m);
        }
        found_terms = env.install(|| compact(sks, std::mem::take(&mut found_terms), &luts.nonzero));
        Ok(())
    })?;

    let status = env.install(|| reduce(sks, found_terms, &luts.nonzero, &luts.nonzero));
    Ok(DeleteOutcome {
        rows: out_rows,
        status,
    })
}

/// `vacant' = vacant OR match` as the plain sum `vacant + match`, no PBS.
///
/// * **Plaintext.** `match` includes the flag (`match_bit` sums it with the mismatch
///   bits), so `match = 1` implies `vacant = 0`: the two are never both 1 and the sum is
///   exactly the OR, in `{0, 1}`. The degree is set to 1 accordingly.
/// * **Noise.** Two nominal PBS outputs (the decompressed flag and the match bit): level 2,
///   the same sum SET's masked update hands to the compression (`old + d`), whose bound
///   is computed in [`crate::noise`] (decompression failure 2^-279.9 against 2^-280.4 at
///   level 1; docs/noise.md). Only the compression reads this block.
fn tombstone_flag(sks: &ServerKey, vacant: &Ciphertext, m: &Ciphertext) -> Ciphertext {
    two_pbs_sum_for_compression(sks, sks.unchecked_add(vacant, m), 1)
}
