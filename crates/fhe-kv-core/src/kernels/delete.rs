//! Private DELETE: `vacant_i' = vacant_i OR match_i`, the matching slot's key and value
//! zeroed, encrypted status (deleted / not found).

use super::{compact, reduce, BetweenBatches, KernelEnv};
use crate::error::{FheKvError, Result};
use crate::row::{encode_row, RowCiphertext};
use rayon::prelude::*;
use tfhe::shortint::Ciphertext;

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

/// Per row beyond decompression and match: 1 PBS for the flag (`vacant + match`, the two
/// are exclusive so the sum is a bit; noise 2) and one bivariate PBS per key/value block
/// `(m, b) ↦ m ? 0 : b` (noise 5). Zeroing matters: a deleted value must not survive
/// in the table for a later key compromise to reveal.
pub fn oblivious_delete(
    env: &KernelEnv<'_>,
    query: &[Ciphertext],
    rows: &[impl AsRef<[u8]> + Sync],
    between: BetweenBatches<'_>,
) -> Result<DeleteOutcome> {
    if rows.is_empty() {
        return Err(FheKvError::InvalidArgument("the table has no slots".into()));
    }
    let query = &env.clean_inputs(query);
    let sks = env.sks();
    let luts = super::Luts::new(sks);
    let mut found_terms: Vec<Ciphertext> = Vec::new();
    let mut out_rows = Vec::with_capacity(rows.len());

    env.scan_rows(&luts, query, rows, between, |batch| {
        let encoded: Vec<Vec<u8>> = env.install(|| {
            batch
                .par_iter()
                .map(|(row, m)| {
                    let zero_if_match = |blocks: &[Ciphertext]| -> Vec<Ciphertext> {
                        blocks
                            .par_iter()
                            .map(|b| {
                                sks.unchecked_apply_lookup_table_bivariate(m, b, &luts.keep_unless)
                            })
                            .collect()
                    };
                    let new_row = RowCiphertext {
                        vacant: sks
                            .apply_lookup_table(&sks.unchecked_add(&row.vacant, m), &luts.nonzero),
                        key: zero_if_match(&row.key),
                        value: zero_if_match(&row.value),
                    };
                    encode_row(env.keys, &new_row)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        out_rows.extend(encoded);
        found_terms.extend(batch.into_iter().map(|(_, m)| m));
        found_terms = env.install(|| compact(sks, std::mem::take(&mut found_terms), &luts.nonzero));
        Ok(())
    })?;

    let status = env.install(|| reduce(sks, found_terms, &luts.nonzero, &luts.nonzero));
    Ok(DeleteOutcome {
        rows: out_rows,
        status,
    })
}
