//! Private, idempotent SET (upsert) with an encrypted status.

use super::{reduce, two_pbs_sum_for_compression, BetweenBatches, KernelEnv};
use crate::error::{FheKvError, Result};
use crate::row::{encode_row, RowCiphertext};
use crate::runtime::{pbs, pbs_many};
use rayon::prelude::*;
use tfhe::core_crypto::algorithms::{lwe_ciphertext_add_assign, lwe_ciphertext_sub_assign};
use tfhe::shortint::ciphertext::{Degree, NoiseLevel};
use tfhe::shortint::{Ciphertext, ServerKey};

/// Status codes a client decrypts from a SET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SetStatus {
    /// The key was absent and has been written to a free slot.
    Inserted = 1,
    /// The key was present and its value replaced.
    Updated = 2,
    /// The key was absent and there was no free slot: nothing changed.
    Full = 3,
}

impl SetStatus {
    pub fn from_code(code: u8) -> Option<SetStatus> {
        match code {
            1 => Some(SetStatus::Inserted),
            2 => Some(SetStatus::Updated),
            3 => Some(SetStatus::Full),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SetStatus::Inserted => "inserted",
            SetStatus::Updated => "updated",
            SetStatus::Full => "full",
        }
    }
}

pub struct SetOutcome {
    /// Every row, rewritten (same order as the input).
    pub rows: Vec<Vec<u8>>,
    pub status: Ciphertext,
}

/// DESIGN §6 SET:
///
/// ```text
/// found        = OR_i match_i
/// first_free_i = vacant_i AND NOT (vacant_0 OR … OR vacant_{i-1})
/// write_i      = match_i OR (first_free_i AND NOT found)
/// key_i'       = write_i ? q : key_i ;  value_i' = write_i ? v : value_i
/// vacant_i'    = vacant_i AND NOT write_i
/// ```
///
/// PBS per row beyond decompression and match: 1 (prefix, many-LUT) + 1 (write and
/// insert, many-LUT; the new flag is then linear, [`flag_after_set`]) + 1 per key/value
/// block (masked update, [`masked_update`]): no `if_then_else` (3 PBS/block) and no
/// second, cleaning PBS.
pub fn oblivious_set(
    env: &KernelEnv<'_>,
    query: &[Ciphertext],
    value: &[Ciphertext],
    rows: &[impl AsRef<[u8]> + Sync],
    between: BetweenBatches<'_>,
) -> Result<SetOutcome> {
    if rows.is_empty() {
        return Err(FheKvError::InvalidArgument("the table has no slots".into()));
    }
    let sks = env.sks();
    let luts = super::Luts::new(sks);
    let query = &env.clean_inputs_for_write(&luts, query);
    let value = &env.clean_inputs_for_write(&luts, value);
    let total = rows.len();

    // Pass 1: decode, decompress, match. SET rewrites every row, so rows are kept.
    let mut decoded: Vec<(RowCiphertext, Ciphertext)> = Vec::with_capacity(total);
    env.scan_rows(&luts, query, rows, &mut *between, |batch| {
        decoded.extend(batch);
        Ok(())
    })?;

    // Prefix-OR of vacant bits, sequential: one many-LUT PBS per row.
    // Invariant: `before` is 0/1 with nominal noise; x = vacant + 2·before has noise 1 + 2 = 3.
    let (first_free2, any_free) = env.install(|| {
        let mut before = sks.create_trivial(0);
        let mut first_free2 = Vec::with_capacity(total);
        for (row, _) in &decoded {
            let mut x = sks.unchecked_scalar_mul(&before, 2);
            sks.unchecked_add_assign(&mut x, &row.vacant);
            let mut out = pbs_many(sks, &x, &luts.prefix);
            before = out.pop().expect("two outputs");
            first_free2.push(out.pop().expect("two outputs"));
        }
        (first_free2, before)
    });

    let (found4, status) = env.install(|| {
        let matches: Vec<Ciphertext> = decoded.iter().map(|(_, m)| m.clone()).collect();
        let found4 = reduce(sks, matches, &luts.nonzero, &luts.found4);
        // noise: found4 (1) + any_free (1)
        let status = pbs(
            sks,
            &sks.unchecked_add(&found4, &any_free),
            &luts.set_status,
        );
        (found4, status)
    });

    // Pass 2: rewrite every row, batch by batch.
    let mut out_rows = Vec::with_capacity(total);
    let mut done = 0;
    let batch_rows = env.batch_rows.max(1);
    let mut items = decoded.into_iter().zip(first_free2).peekable();
    while items.peek().is_some() {
        let batch: Vec<_> = items.by_ref().take(batch_rows).collect();
        let n = batch.len();
        let encoded: Vec<Vec<u8>> = env.install(|| {
            batch
                .into_par_iter()
                .map(|((row, m), ff2)| {
                    // z = m + 2·first_free + 4·found: noise 3, value ≤ 7.
                    let mut z = sks.unchecked_add(&m, &ff2);
                    sks.unchecked_add_assign(&mut z, &found4);
                    let mut out = pbs_many(sks, &z, &luts.write8_insert);
                    let insert = out.pop().expect("two outputs");
                    let w8 = out.pop().expect("two outputs");
                    let new_row = RowCiphertext {
                        vacant: flag_after_set(sks, &row.vacant, &insert),
                        key: masked_update(sks, &luts, &row.key, query, &w8),
                        value: masked_update(sks, &luts, &row.value, value, &w8),
                    };
                    encode_row(env.keys, &new_row)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        out_rows.extend(encoded);
        done += n;
        between(done, total);
    }
    Ok(SetOutcome {
        rows: out_rows,
        status,
    })
}

/// `vacant' = vacant AND NOT write` as the plain difference `vacant − insert`, no PBS.
///
/// * **Plaintext.** `write = match ∨ insert`. `match = 1` implies `vacant = 0` (the match
///   includes the flag) and `insert = first_free ∧ ¬found` implies `vacant = 1` (the
///   prefix sets `first_free` only on a vacant slot), so `vacant ∧ ¬write = vacant −
///   insert ∈ {0, 1}`, never negative. The degree is set to 1 accordingly.
/// * **Noise.** Two nominal PBS outputs: level 2, the same as [`masked_update`]'s
///   `old + d`, with the same bound (see there). Only the compression reads this block.
fn flag_after_set(sks: &ServerKey, vacant: &Ciphertext, insert: &Ciphertext) -> Ciphertext {
    let mut flag = vacant.clone();
    lwe_ciphertext_sub_assign(&mut flag.ct, &insert.ct);
    two_pbs_sum_for_compression(sks, flag, 1)
}

/// `write ? new : old` per block, **one PBS per block**, left un-normalised for the
/// compression that follows:
///
/// * `y = new − old + 4 + 8·write ∈ [1, 15]` (noise 3: `new`, `−old`, `8·write`, each a
///   nominal PBS output), `d = PBS(y) = write ? (new − old) mod 8 : 0 ∈ [0, 7]`;
/// * block `= old + d ∈ [0, 10]`, which is `old` when not writing and `new` or `new + 8`
///   when writing: `≡ write ? new : old (mod 8)`.
///
/// Two invariants make handing this sum to the list compression exact:
///
/// * **Plaintext.** Compression multiplies each block by `carry_modulus = 4`, i.e. maps
///   the 5-bit padded plaintext `x` (Δ = 2^59) to `x mod 8` at Δ = 2^61, the stored
///   encoding of 2 message bits + padding. `old + d < 16` keeps the compute padding clear
///   and `old + d ≡ result (mod 8)` with `result ∈ [0, 4)` keeps the stored padding clear,
///   so the bit 8 of `new + 8` vanishes in the shift. The degree is set to 3 to pass the
///   compression's empty-carry check, which exists to enforce exactly this.
/// * **Noise.** The sum has twice the variance of a PBS output (noise level 2), while
///   compression asserts level 1. Its stored noise is dominated by the packing key switch
///   and the storage modulus switch (75% + 25%; the scaled input is 0.19% at level 1,
///   0.37% at level 2): with TFHE-rs 1.8.2's own noise model the decompression failure
///   probability goes from 2^-280.4 to 2^-279.9, far inside the 2^-128 class of every PBS
///   (2^-129.6). [`crate::noise`] computes this and a test pins it; see docs/noise.md.
fn masked_update(
    sks: &ServerKey,
    luts: &super::Luts,
    old: &[Ciphertext],
    new: &[Ciphertext],
    w8: &Ciphertext,
) -> Vec<Ciphertext> {
    old.par_iter()
        .zip(new.par_iter())
        .map(|(o, n)| {
            // y = n − o + 4 + 8·write ∈ [1, 15]: the subtraction is exact on the torus and
            // the true sum never leaves [0, 16), so the padding bit stays clear.
            let mut y = n.clone();
            lwe_ciphertext_sub_assign(&mut y.ct, &o.ct);
            lwe_ciphertext_add_assign(&mut y.ct, &w8.ct);
            sks.unchecked_scalar_add_assign(&mut y, 4);
            y.degree = Degree::new(15);
            // three nominal terms (n, −o, 8·write as one PBS output)
            y.set_noise_level(NoiseLevel::NOMINAL * 3, sks.max_noise_level);
            let d = pbs(sks, &y, &luts.delta8);
            // See the invariants above: only compression reads this block.
            two_pbs_sum_for_compression(sks, sks.unchecked_add(o, &d), 3)
        })
        .collect()
}
