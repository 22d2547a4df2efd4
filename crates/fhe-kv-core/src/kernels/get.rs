//! Private GET: `value = Σ_i match_i · value_i`, `found = OR_i match_i`.

use super::{compact, reduce, BetweenBatches, KernelEnv};
use crate::error::{FheKvError, Result};
use rayon::prelude::*;
use tfhe::shortint::Ciphertext;

pub struct GetOutcome {
    /// 1 if the key is present, else 0.
    pub found: Ciphertext,
    /// The value's blocks (all zero when absent).
    pub value: Vec<Ciphertext>,
}

/// Per row: decompress (1+K+V), match (K + reduction), `V` selections
/// `(m, v_j) ↦ m ? v_j : 0` (noise 4·1 + 1 = 5), plus the amortised accumulator cleanups.
///
/// Accumulators: at most one row matches, so each value-block sum is one-hot and stays in
/// [0, 3]; groups of five are cleaned with `x mod 4` (noise 5) after every batch, which
/// keeps memory at O(batch) rows.
pub fn oblivious_get(
    env: &KernelEnv<'_>,
    query: &[Ciphertext],
    rows: &[impl AsRef<[u8]> + Sync],
    between: BetweenBatches<'_>,
) -> Result<GetOutcome> {
    if rows.is_empty() {
        return Err(FheKvError::InvalidArgument("the table has no slots".into()));
    }
    let query = &env.clean_inputs(query);
    let sks = env.sks();
    let luts = super::Luts::new(sks);
    let mut found_terms: Vec<Ciphertext> = Vec::new();
    let mut value_terms: Vec<Vec<Ciphertext>> = vec![Vec::new(); env.value_width.blocks()];

    env.scan_rows(&luts, query, rows, between, |batch| {
        env.install(|| {
            let masked: Vec<Vec<Ciphertext>> = batch
                .par_iter()
                .map(|(row, m)| {
                    row.value
                        .par_iter()
                        .map(|v| sks.unchecked_apply_lookup_table_bivariate(m, v, &luts.select))
                        .collect()
                })
                .collect();
            for ((_, m), row_masked) in batch.into_iter().zip(masked) {
                found_terms.push(m);
                for (acc, t) in value_terms.iter_mut().zip(row_masked) {
                    acc.push(t);
                }
            }
            found_terms = compact(sks, std::mem::take(&mut found_terms), &luts.nonzero);
            value_terms = std::mem::take(&mut value_terms)
                .into_par_iter()
                .map(|terms| compact(sks, terms, &luts.low2))
                .collect();
        });
        Ok(())
    })?;

    Ok(env.install(|| {
        let found = reduce(sks, found_terms, &luts.nonzero, &luts.nonzero);
        let value = value_terms
            .into_par_iter()
            .map(|terms| reduce(sks, terms, &luts.low2, &luts.low2))
            .collect();
        GetOutcome { found, value }
    }))
}
