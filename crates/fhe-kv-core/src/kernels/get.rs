//! Private GET: `value = Σ_i match_i · value_i`, `found = OR_i match_i`, for one key or a
//! batch of keys that share the decoding of every row.

use super::{compact, reduce, BetweenBatches, KernelEnv};
use crate::error::{FheKvError, Result};
use crate::runtime::pbs_bivariate;
use rayon::prelude::*;
use tfhe::shortint::Ciphertext;

/// Most keys one batched GET accepts. Each key keeps its own accumulators (≤ 5 terms per
/// value block between batches), so memory grows with the batch; the limit keeps one call
/// within a few tens of MB beyond the decoded row batch.
pub const MAX_BATCH_KEYS: usize = 64;

pub struct GetOutcome {
    /// 1 if the key is present, else 0.
    pub found: Ciphertext,
    /// The value's blocks (all zero when absent).
    pub value: Vec<Ciphertext>,
}

/// Private GET of one key; see [`oblivious_get_many`] for the costs.
pub fn oblivious_get(
    env: &KernelEnv<'_>,
    query: &[Ciphertext],
    rows: &[impl AsRef<[u8]> + Sync],
    between: BetweenBatches<'_>,
) -> Result<GetOutcome> {
    let mut out = oblivious_get_many(env, &[query], rows, between)?;
    Ok(out.pop().expect("one query, one outcome"))
}

/// Private GET of several keys in one pass over the table (results in query order).
///
/// Per row: decompress once (1+K+V), then per key: match (K + reduction), `V` selections
/// `(m, v_j) ↦ m ? v_j : 0` (noise 4·1 + 1 = 5), plus the amortised accumulator cleanups.
/// For B keys that is `1+K+V + B·(K + ~10 + V + ~V/4)` instead of `B·(1+K+V + …)`.
///
/// Accumulators: at most one row matches a given key, so each value-block sum is one-hot
/// and stays in [0, 3]; groups of five are cleaned with `x mod 4` (noise 5) after every
/// batch, which keeps memory at O(batch) rows. Equal keys in one batch are fine: each
/// key has its own match bits and accumulators.
pub fn oblivious_get_many(
    env: &KernelEnv<'_>,
    queries: &[&[Ciphertext]],
    rows: &[impl AsRef<[u8]> + Sync],
    between: BetweenBatches<'_>,
) -> Result<Vec<GetOutcome>> {
    let batches = env.slice_batches(rows);
    oblivious_get_many_streamed(env, queries, rows.len(), batches, between)
}

/// [`oblivious_get_many`] over rows that arrive in batches (the extension reads them
/// through a cursor): memory holds one batch of rows, never the whole table. `total` is
/// the number of rows the batches will yield (for progress reports); a source that
/// yields no row at all is refused.
pub fn oblivious_get_many_streamed<B: AsRef<[u8]> + Sync>(
    env: &KernelEnv<'_>,
    queries: &[&[Ciphertext]],
    total: usize,
    batches: impl Iterator<Item = Result<Vec<B>>>,
    between: BetweenBatches<'_>,
) -> Result<Vec<GetOutcome>> {
    if queries.is_empty() || queries.len() > MAX_BATCH_KEYS {
        return Err(FheKvError::InvalidArgument(format!(
            "a batched GET takes 1 to {MAX_BATCH_KEYS} keys, got {}",
            queries.len()
        )));
    }
    let sks = env.sks();
    let luts = super::Luts::new(sks);
    let cleaned: Vec<Vec<Ciphertext>> =
        queries.iter().map(|q| env.clean_inputs(&luts, q)).collect();
    let cleaned: Vec<&[Ciphertext]> = cleaned.iter().map(Vec::as_slice).collect();
    let value_blocks = env.value_width.blocks();
    // Per key: found terms and one term list per value block.
    let mut found_terms: Vec<Vec<Ciphertext>> = vec![Vec::new(); queries.len()];
    let mut value_terms: Vec<Vec<Vec<Ciphertext>>> =
        vec![vec![Vec::new(); value_blocks]; queries.len()];

    let seen = env.scan_batches(&luts, &cleaned, total, batches, between, |batch| {
        env.install(|| {
            // masked[r][k][j] = match(row r, key k) ? value_j(row r) : 0
            let masked: Vec<Vec<Vec<Ciphertext>>> = batch
                .par_iter()
                .map(|(row, ms)| {
                    ms.par_iter()
                        .map(|m| {
                            row.value
                                .par_iter()
                                .map(|v| pbs_bivariate(sks, m, v, &luts.select))
                                .collect()
                        })
                        .collect()
                })
                .collect();
            for ((_, ms), row_masked) in batch.into_iter().zip(masked) {
                for (k, (m, key_masked)) in ms.into_iter().zip(row_masked).enumerate() {
                    found_terms[k].push(m);
                    for (acc, t) in value_terms[k].iter_mut().zip(key_masked) {
                        acc.push(t);
                    }
                }
            }
            found_terms = std::mem::take(&mut found_terms)
                .into_par_iter()
                .map(|terms| compact(sks, terms, &luts.nonzero))
                .collect();
            value_terms = std::mem::take(&mut value_terms)
                .into_par_iter()
                .map(|per_block| {
                    per_block
                        .into_par_iter()
                        .map(|terms| compact(sks, terms, &luts.low2))
                        .collect()
                })
                .collect();
        });
        Ok(())
    })?;
    if seen == 0 {
        return Err(FheKvError::InvalidArgument("the table has no slots".into()));
    }

    Ok(env.install(|| {
        found_terms
            .into_par_iter()
            .zip(value_terms)
            .map(|(found, per_block)| GetOutcome {
                found: reduce(sks, found, &luts.nonzero, &luts.nonzero),
                value: per_block
                    .into_par_iter()
                    .map(|terms| reduce(sks, terms, &luts.low2, &luts.low2))
                    .collect(),
            })
            .collect()
    }))
}
