//! Lookup-table GLWEs rebuilt from a value stored as single coefficients: what a
//! one-round GET needs on a **one-GLWE row** ([`super::RowFormat::OneGlwe`],
//! docs/leveled.md), where the key bits, the constant and the value's nibbles are
//! coefficients of the same GLWE, so a row a SET computed is one mask and a few bodies
//! plus the vacant flag (14,794 bytes for u64/u64) instead of a mask per part with every
//! body of two lookup-table GLWEs (47,522 bytes).
//!
//! The one-round GET selects a nibble by bootstrapping the match bit with an accumulator
//! that holds the nibble on a plateau of `box = N/16` coefficients
//! ([`super::get`], [`super::owner::value_lut_glwes`]). From a single coefficient the
//! server builds that accumulator without the secret key:
//!
//! 1. sample-extract the nibble's coefficient: an LWE of `v_j · Δ` under the big LWE key
//!    (exact, free);
//! 2. key-switch it into the constant coefficient of a GLWE under the bucket GLWE key
//!    (the bucketed layout's packing key, base 2^15, 2 levels);
//! 3. move it to the start of function `j`'s plateau, `2 j·box + box/2`, by a monomial
//!    product (exact), and add the eight nibbles of a table;
//! 4. multiply the sum by the plaintext plateau `P(X) = Σ_{t < box} X^t` (a sliding sum,
//!    `O(N)` per polynomial): `v_j · Δ` then fills `[2 j·box + box/2, 2 j·box + 3 box/2)`,
//!    exactly [`super::owner::value_lut_glwes`]' layout.
//!
//! Noise ([`crate::noise::RepackNoise`]): a coefficient of a plateau carries the row
//! coefficient's own noise (a scalar times `P` is that scalar in every coefficient of the
//! plateau, not a sum of 128 errors), its own key switch's rounding term (which lands on
//! the constant coefficient only), and the key terms of all eight key switches, each a
//! polynomial of independent coefficients summed over the 128 positions of `P`:
//! `8 · 128` key terms, ~2^-47.2, far below one PBS output (~2^-29.6). Nothing here
//! multiplies the stored noise, so a row keeps the SET budget it has today. A GET's
//! per-slot term on such rows stays below [`crate::noise::LeveledGetNoise`]'s, which
//! counts the lookup-table rows' 16-bit value bodies (2^-35.6 of rounding; a one-GLWE
//! row keeps its nibbles at the key's 32 bits), so its slot bound holds for both.
//!
//! Cost: one packing key switch per nibble, `(n + 1) · levels · (k + 1) · N`
//! multiply-adds (~0.3 KS+PBS on one thread, measured), 16 for a u64 value; they run in
//! parallel.

use super::NIBBLES_PER_GLWE;
use crate::bucket::params;
use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;

/// Coefficients per plateau (a box of the many-LUT layout): `N / 16`.
pub fn plateau_width() -> usize {
    params::coefficients() / crate::params::BLOCK_SPACE as usize
}

/// Where nibble `j` of a table starts: function `j`'s second box, the table rotated left
/// by half a box (`fill_many_lut_accumulator` with input degree 1).
pub fn plateau_start(j: usize) -> usize {
    let block = plateau_width();
    2 * j * block + block / 2
}

/// The lookup-table GLWEs (eight nibbles each, in [`super::get`]'s layout) of the nibbles
/// stored at coefficients `positions` of `row` (under the bucket GLWE key). The packing
/// key switches run in parallel, a cancel checkpoint before each.
pub fn value_tables_from_coefficients(
    packing_key: &LwePackingKeyswitchKeyOwned<u64>,
    row: &GlweCiphertextOwned<u64>,
    positions: &[usize],
) -> Vec<GlweCiphertextOwned<u64>> {
    positions
        .chunks(NIBBLES_PER_GLWE)
        .map(|group| {
            let parts: Vec<GlweCiphertextOwned<u64>> = group
                .par_iter()
                .enumerate()
                .map(|(j, &position)| {
                    crate::runtime::checkpoint();
                    let mut nibble = LweCiphertext::new(
                        0u64,
                        params::lwe_dimension().to_lwe_size(),
                        params::ciphertext_modulus(),
                    );
                    extract_lwe_sample_from_glwe_ciphertext(
                        row,
                        &mut nibble,
                        MonomialDegree(position),
                    );
                    let mut part = zero_glwe();
                    keyswitch_lwe_ciphertext_into_glwe_ciphertext(packing_key, &nibble, &mut part);
                    crate::bucket::write_back::rotate(&mut part, plateau_start(j));
                    part
                })
                .collect();
            let mut table = zero_glwe();
            for part in &parts {
                glwe_ciphertext_add_assign(&mut table, part);
            }
            multiply_by_plateau(&mut table, plateau_width());
            table
        })
        .collect()
}

fn zero_glwe() -> GlweCiphertextOwned<u64> {
    GlweCiphertext::new(
        0u64,
        params::glwe_size(),
        params::polynomial_size(),
        params::ciphertext_modulus(),
    )
}

/// Multiply every polynomial of `glwe` by `Σ_{t < width} X^t` mod `X^N + 1`: coefficient
/// `c` becomes `Σ_{t < width} a_{c − t}`, where `a_{−i} = −a_{N − i}` (negacyclic). A
/// sliding sum: add the coefficient entering the window, drop the one leaving it.
pub fn multiply_by_plateau(glwe: &mut GlweCiphertextOwned<u64>, width: usize) {
    for mut poly in glwe.as_mut_polynomial_list().iter_mut() {
        let a = poly.as_ref().to_vec();
        let n = a.len();
        // a_{c} for c in (−N, N).
        let at = |c: isize| -> u64 {
            if c >= 0 {
                a[c as usize]
            } else {
                a[(c + n as isize) as usize].wrapping_neg()
            }
        };
        let mut sum = (0..width as isize).fold(0u64, |s, t| s.wrapping_add(at(-t)));
        let out = poly.as_mut();
        out[0] = sum;
        for (c, o) in out.iter_mut().enumerate().skip(1) {
            let c = c as isize;
            sum = sum.wrapping_add(at(c)).wrapping_sub(at(c - width as isize));
            *o = sum;
        }
    }
}
