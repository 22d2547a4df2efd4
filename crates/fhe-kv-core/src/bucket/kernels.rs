//! The equality-mask kernels of DESIGN §6 on the `2Z` candidate slots of a bucketed table
//! (extracted by [`super::select::extract_candidates`]), and the changes SET and DELETE
//! hand to the write-back.
//!
//! The arithmetic is the flat kernels' ([`crate::kernels`]) with one difference: a stored
//! block is not a fresh PBS output but carries up to [`STORED_NOISE_LEVEL`] = 3 nominal
//! variances, so every PBS that reads one combines it only with level-1 terms — factors
//! of 4 come pre-scaled out of a PBS (`4·match`, `4·write`) instead of being multiplied
//! in — and every block SET or DELETE rewrites is a fresh PBS output (or a sum of two), so
//! stored noise never accumulates across writes.
//!
//! | per candidate slot | PBS (u64/u64) |
//! |---|---|
//! | match | `K` block `≠` + 1 (flag with two of them) + ⌈…⌉ folds + 1 ≈ 43 |
//! | GET | match + `V` selections, + per-operation accumulator folds |
//! | SET | match + 3 control + 2 per key/value block (`w ? new : 0` + `w ? 0 : old`) ≈ 174 |
//! | DELETE | match + 1 (new flag) ≈ 44; scrub: + `K + V` |
//! | locate | `K` block `≠` (sums are compressed for the key owner) |

use super::select::STORED_NOISE_LEVEL;
use super::write_back::HalfChanges;
use super::BucketLayout;
use crate::error::{FheKvError, Result};
use crate::kernels::locate::{mismatch_sums, Packer};
use crate::kernels::{
    block_neq, reduce, sum, DeleteMode, GetOutcome, KernelEnv, LocateOutcome, Luts, SetStatus,
};
use crate::row::RowCiphertext;
use crate::runtime::{pbs, pbs_many};
use rayon::prelude::*;
use tfhe::core_crypto::prelude::{
    lwe_ciphertext_add_assign, lwe_ciphertext_sub_assign, LweCiphertextOwned,
};
use tfhe::shortint::ciphertext::{Degree, NoiseLevel};
use tfhe::shortint::server_key::{LookupTableOwned, ManyLookupTableOwned};
use tfhe::shortint::{Ciphertext, ServerKey};

/// One candidate slot's changes: `(coefficient, new − old)`.
type SlotChanges = Vec<(usize, LweCiphertextOwned<u64>)>;

/// The lookup tables of the bucketed kernels beyond the flat ones ([`Luts`]).
pub(crate) struct BucketLuts {
    pub flat: Luts,
    /// `x ↦ 4·[x = 0]`: the last step of a GET's match, pre-scaled for the selection.
    is_zero4: LookupTableOwned,
    /// on `y = 4m + v ∈ [0, 7]`: `m ? v : 0` (GET selection, SET's `w ? new : 0`).
    select4: LookupTableOwned,
    /// on `y = 4w + b ∈ [0, 7]`: `w ? 0 : b` (SET's `w ? 0 : old`, scrub's zeroing).
    keep_unless4: LookupTableOwned,
    /// on `x = vacant + before2 ∈ [0, 3]` (`before2 ∈ {0, 2}`): `[2·first_free, 2·before']`.
    prefix2: ManyLookupTableOwned,
    /// on `z = m + first_free2 + found4 ∈ [0, 7]`: `[4·write, 2·insert]` with
    /// `write = m ∨ insert`, `insert = first_free ∧ ¬found`.
    write4_insert2: ManyLookupTableOwned,
    /// on `x = vacant + insert2 ∈ {0, 1, 3}`: `vacant ∧ ¬insert`, i.e. `[x = 1]`.
    flag_after_set: LookupTableOwned,
    /// on `x = found4 + any_free2 ∈ {0, 2, 4, 6}`: the SET status code.
    set_status: LookupTableOwned,
    /// on `x = vacant + m ∈ [0, 2]`: `[[x ≠ 0], 4·[x ≠ 0]]` (scrubbing DELETE's new flag).
    tombstone_scaled: ManyLookupTableOwned,
}

impl BucketLuts {
    pub fn new(sks: &ServerKey) -> BucketLuts {
        let first_free2 = |x: u64| 2 * u64::from(x == 1);
        let before2 = |x: u64| 2 * u64::from(x != 0);
        // z = m + 2·first_free + 4·found
        let insert = |z: u64| (z >> 1) & 1 & (1 - ((z >> 2) & 1));
        let write4 = |z: u64| 4 * ((z & 1) | insert(z));
        let insert2 = |z: u64| 2 * insert(z);
        let flag = |x: u64| u64::from(x != 0);
        let flag4 = |x: u64| 4 * u64::from(x != 0);
        BucketLuts {
            flat: Luts::new(sks),
            is_zero4: sks.generate_lookup_table(|x| 4 * u64::from(x == 0)),
            select4: sks.generate_lookup_table(|y| y.saturating_sub(4)),
            keep_unless4: sks.generate_lookup_table(|y| if y < 4 { y } else { 0 }),
            prefix2: sks.generate_many_lookup_table(&[&first_free2, &before2]),
            write4_insert2: sks.generate_many_lookup_table(&[&write4, &insert2]),
            flag_after_set: sks.generate_lookup_table(|x| u64::from(x == 1)),
            set_status: sks.generate_lookup_table(|x| {
                let (found, any_free) = (x >> 2, (x >> 1) & 1);
                if found != 0 {
                    SetStatus::Updated as u64
                } else if any_free != 0 {
                    SetStatus::Inserted as u64
                } else {
                    SetStatus::Full as u64
                }
            }),
            tombstone_scaled: sks.generate_many_lookup_table(&[&flag, &flag4]),
        }
    }
}

/// `occupied ∧ key = query` for a candidate slot, output by the `last` table applied to
/// the final sum (`is_zero` → 1/0, `is_zero4` → 4/0).
///
/// The flag (stored level 3) is summed with two mismatch bits (level 1 each: 5 in all) and
/// folded first, so that every later group holds only level-1 terms.
fn match_bit(
    sks: &ServerKey,
    luts: &BucketLuts,
    row: &RowCiphertext,
    query: &[Ciphertext],
    last: &LookupTableOwned,
) -> Ciphertext {
    let mut neq: Vec<Ciphertext> = row
        .key
        .par_iter()
        .zip(query.par_iter())
        .map(|(k, q)| block_neq(sks, &luts.flat, k, q))
        .collect();
    let with_flag = (crate::params::MAX_NOISE_LEVEL as u64 - STORED_NOISE_LEVEL) as usize;
    let mut first = vec![row.vacant.clone()];
    first.extend(neq.drain(..with_flag.min(neq.len())));
    neq.push(pbs(sks, &sum(sks, &first), &luts.flat.nonzero));
    reduce(sks, neq, &luts.flat.nonzero, last)
}

/// `x` with the degree and noise level it really has, for a PBS to read.
fn declared(sks: &ServerKey, mut x: Ciphertext, degree: u64, level: u64) -> Ciphertext {
    x.degree = Degree::new(degree);
    x.set_noise_level(NoiseLevel::NOMINAL * level, sks.max_noise_level);
    x
}

/// `a + b` for a PBS input: degree and level as stated by the caller's invariant.
fn add(sks: &ServerKey, a: &Ciphertext, b: &Ciphertext, degree: u64, level: u64) -> Ciphertext {
    let mut x = a.clone();
    lwe_ciphertext_add_assign(&mut x.ct, &b.ct);
    declared(sks, x, degree, level)
}

/// `new − old` on the LWEs: the change the write-back packs.
fn change(new: &Ciphertext, old: &Ciphertext) -> LweCiphertextOwned<u64> {
    let mut d = new.ct.clone();
    lwe_ciphertext_sub_assign(&mut d, &old.ct);
    d
}

fn check_candidates(layout: &BucketLayout, candidates: &[RowCiphertext]) -> Result<()> {
    if candidates.len() != 2 * layout.bucket_slots {
        return Err(FheKvError::Internal(format!(
            "{} candidate slots instead of {}",
            candidates.len(),
            2 * layout.bucket_slots
        )));
    }
    Ok(())
}

/// Private GET of several keys, each over its own candidates (`candidates[q]`, in
/// [`BucketLayout::candidate_order`]): `found = OR match`, `value = Σ match · value`.
pub fn bucket_get_many(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    queries: &[&[Ciphertext]],
    candidates: &[Vec<RowCiphertext>],
) -> Result<Vec<GetOutcome>> {
    let sks = env.sks();
    let luts = BucketLuts::new(sks);
    for c in candidates {
        check_candidates(layout, c)?;
    }
    Ok(env.install(|| {
        queries
            .par_iter()
            .zip(candidates.par_iter())
            .map(|(query, rows)| {
                let query = env.clean_inputs(&luts.flat, query);
                // (4·match, masked value blocks) per candidate
                let masked: Vec<(Ciphertext, Vec<Ciphertext>)> = rows
                    .par_iter()
                    .map(|row| {
                        let m4 = match_bit(sks, &luts, row, &query, &luts.is_zero4);
                        let values = row
                            .value
                            .par_iter()
                            .map(|v| {
                                // 4·match (level 1) + stored block (level 3): 4.
                                let y = add(sks, &m4, v, 7, 1 + STORED_NOISE_LEVEL);
                                pbs(sks, &y, &luts.select4)
                            })
                            .collect();
                        (m4, values)
                    })
                    .collect();
                let found_terms: Vec<Ciphertext> = masked.iter().map(|(m, _)| m.clone()).collect();
                let value = (0..layout.value.blocks())
                    .into_par_iter()
                    .map(|j| {
                        let terms: Vec<Ciphertext> =
                            masked.iter().map(|(_, v)| v[j].clone()).collect();
                        reduce(sks, terms, &luts.flat.low2, &luts.flat.low2)
                    })
                    .collect();
                // One-hot sums of 4·match: each group sum is 0 or 4.
                GetOutcome {
                    found: reduce(sks, found_terms, &luts.flat.nonzero, &luts.flat.nonzero),
                    value,
                }
            })
            .collect()
    }))
}

/// Private SET over the candidates: the encrypted status and every candidate block's
/// change, per half, for the write-back. Every candidate slot is rewritten with fresh PBS
/// outputs (its stored noise resets), the written one with the query's key and value.
///
/// ```text
/// found        = OR match_i
/// first_free_i = vacant_i AND NOT (vacant_0 OR … OR vacant_{i-1})   (interleaved order)
/// write_i      = match_i OR (first_free_i AND NOT found)
/// vacant_i'    = vacant_i AND NOT insert_i          key/value' = write_i ? new : old
/// ```
pub fn bucket_set(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    query: &[Ciphertext],
    value: &[Ciphertext],
    candidates: &[RowCiphertext],
) -> Result<(Ciphertext, [HalfChanges; 2])> {
    check_candidates(layout, candidates)?;
    let sks = env.sks();
    let luts = BucketLuts::new(sks);
    let query = &env.clean_inputs_for_write(&luts.flat, query);
    let value = &env.clean_inputs_for_write(&luts.flat, value);
    env.install(|| {
        let matches: Vec<Ciphertext> = candidates
            .par_iter()
            .map(|row| match_bit(sks, &luts, row, query, &luts.flat.is_zero))
            .collect();
        // Prefix-OR of the vacant flags in candidate order: one many-LUT PBS each.
        // x = vacant (level 3) + 2·before (a PBS output, level 1): 4.
        let mut before2 = sks.create_trivial(0);
        let mut first_free2 = Vec::with_capacity(candidates.len());
        for row in candidates {
            let x = add(sks, &row.vacant, &before2, 3, STORED_NOISE_LEVEL + 1);
            let mut out = pbs_many(sks, &x, &luts.prefix2);
            before2 = out.pop().expect("two outputs");
            first_free2.push(out.pop().expect("two outputs"));
        }
        let found4 = reduce(sks, matches.clone(), &luts.flat.nonzero, &luts.flat.found4);
        let status = pbs(sks, &add(sks, &found4, &before2, 6, 2), &luts.set_status);
        let rewritten: Vec<SlotChanges> = candidates
            .par_iter()
            .zip(matches.par_iter().zip(first_free2.par_iter()))
            .zip(layout.candidate_order().collect::<Vec<_>>())
            .map(|((row, (m, ff2)), (_, slot))| {
                // z = m + 2·first_free + 4·found: three level-1 terms, value ≤ 7.
                let z = declared(
                    sks,
                    sum(sks, &[m.clone(), ff2.clone(), found4.clone()]),
                    7,
                    3,
                );
                let mut out = pbs_many(sks, &z, &luts.write4_insert2);
                let insert2 = out.pop().expect("two outputs");
                let w4 = out.pop().expect("two outputs");
                let flag = pbs(
                    sks,
                    &add(sks, &row.vacant, &insert2, 3, STORED_NOISE_LEVEL + 1),
                    &luts.flag_after_set,
                );
                let update = |old: &[Ciphertext], new: &[Ciphertext]| -> Vec<Ciphertext> {
                    old.par_iter()
                        .zip(new.par_iter())
                        .map(|(o, n)| {
                            // w ? new : 0 (levels 1 + 1) and w ? 0 : old (1 + 3), each a
                            // fresh PBS output; their sum is the new block, level 2.
                            let take = pbs(sks, &add(sks, &w4, n, 7, 2), &luts.select4);
                            let keep = pbs(
                                sks,
                                &add(sks, &w4, o, 7, 1 + STORED_NOISE_LEVEL),
                                &luts.keep_unless4,
                            );
                            add(sks, &take, &keep, 3, 2)
                        })
                        .collect()
                };
                let key = update(&row.key, query);
                let val = update(&row.value, value);
                let at = layout.slot_offset(slot);
                let mut changes = Vec::with_capacity(layout.slot_blocks());
                changes.push((at, change(&flag, &row.vacant)));
                for (j, (new, old)) in key.iter().zip(&row.key).enumerate() {
                    changes.push((at + 1 + j, change(new, old)));
                }
                let k = layout.key.blocks();
                for (j, (new, old)) in val.iter().zip(&row.value).enumerate() {
                    changes.push((at + 1 + k + j, change(new, old)));
                }
                changes
            })
            .collect();
        Ok((status, split_by_half(layout, rewritten)))
    })
}

/// Private DELETE over the candidates: the encrypted status (deleted / not found) and the
/// changes. A tombstone changes only the flags (`[vacant + match ≠ 0]`, a fresh PBS
/// output); a scrub also zeroes the key and value of every vacant candidate slot.
pub fn bucket_delete(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    query: &[Ciphertext],
    candidates: &[RowCiphertext],
    mode: DeleteMode,
) -> Result<(Ciphertext, [HalfChanges; 2])> {
    check_candidates(layout, candidates)?;
    let sks = env.sks();
    let luts = BucketLuts::new(sks);
    let query = &env.clean_inputs(&luts.flat, query);
    env.install(|| {
        let per_slot: Vec<(Ciphertext, SlotChanges)> = candidates
            .par_iter()
            .zip(layout.candidate_order().collect::<Vec<_>>())
            .map(|(row, (_, slot))| {
                let m = match_bit(sks, &luts, row, query, &luts.flat.is_zero);
                // vacant (level 3) + match (1): 4, value ≤ 1 (match implies occupied).
                let x = add(sks, &row.vacant, &m, 2, STORED_NOISE_LEVEL + 1);
                let at = layout.slot_offset(slot);
                let changes = match mode {
                    DeleteMode::Tombstone => {
                        let flag = pbs(sks, &x, &luts.flat.nonzero);
                        vec![(at, change(&flag, &row.vacant))]
                    }
                    DeleteMode::Scrub => {
                        let mut out = pbs_many(sks, &x, &luts.tombstone_scaled);
                        let flag4 = out.pop().expect("two outputs");
                        let flag = out.pop().expect("two outputs");
                        let mut changes = vec![(at, change(&flag, &row.vacant))];
                        let blocks = row.key.iter().chain(&row.value).collect::<Vec<_>>();
                        let zeroed: Vec<Ciphertext> = blocks
                            .par_iter()
                            .map(|b| {
                                pbs(
                                    sks,
                                    &add(sks, &flag4, b, 7, 1 + STORED_NOISE_LEVEL),
                                    &luts.keep_unless4,
                                )
                            })
                            .collect();
                        for (j, (new, old)) in zeroed.iter().zip(blocks).enumerate() {
                            changes.push((at + 1 + j, change(new, old)));
                        }
                        changes
                    }
                };
                (m, changes)
            })
            .collect();
        let (matches, changes): (Vec<_>, Vec<_>) = per_slot.into_iter().unzip();
        let status = reduce(sks, matches, &luts.flat.nonzero, &luts.flat.nonzero);
        Ok((status, split_by_half(layout, changes)))
    })
}

/// Two-round GET's round 1 on the candidates: per key, the candidate slots' mismatch sums
/// (the flag and the `K` mismatch bits, seven per group), compressed for the key owner,
/// who reads them as a locate answer over `2Z` slots.
pub fn bucket_locate_many(
    env: &KernelEnv<'_>,
    layout: &BucketLayout,
    queries: &[&[Ciphertext]],
    candidates: &[Vec<RowCiphertext>],
) -> Result<Vec<LocateOutcome>> {
    let sks = env.sks();
    let luts = Luts::new(sks);
    for c in candidates {
        check_candidates(layout, c)?;
    }
    env.install(|| {
        queries
            .par_iter()
            .zip(candidates.par_iter())
            .map(|(query, rows)| {
                let query = env.clean_inputs(&luts, query);
                let mut packer = Packer::default();
                for row in rows {
                    let mut terms: Vec<Ciphertext> = row
                        .key
                        .par_iter()
                        .zip(query.par_iter())
                        .map(|(k, q)| block_neq(sks, &luts, k, q))
                        .collect();
                    terms.insert(0, row.vacant.clone());
                    packer.pending.extend(mismatch_sums(sks, &terms));
                }
                packer.pack(env.keys, true)?;
                Ok(LocateOutcome {
                    glwes: packer.glwes,
                })
            })
            .collect()
    })
}

/// Group per-candidate changes (in candidate order) into each half's, by coefficient.
fn split_by_half(layout: &BucketLayout, per_candidate: Vec<SlotChanges>) -> [HalfChanges; 2] {
    let mut halves: [HalfChanges; 2] = [Vec::new(), Vec::new()];
    for ((half, _), changes) in layout.candidate_order().zip(per_candidate) {
        halves[half].extend(changes);
    }
    for half in &mut halves {
        half.sort_by_key(|(c, _)| *c);
    }
    halves
}
