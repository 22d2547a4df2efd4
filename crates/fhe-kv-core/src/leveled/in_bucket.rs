//! Leveled slots inside a bucket: `Z` one-GLWE slots ([`RowFormat::OneGlwe`]) packed into
//! one GLWE, the bucketed layout's unit of storage, so that the bucket selection (a CMux
//! tree per half, no bootstrap, [`crate::bucket::select`]) hands the leveled kernels two
//! GLWEs holding all `2Z` candidate slots, and **one external product per chunk and
//! candidate bucket** yields the chunk distance of every slot in it. A u64/u64 GET then
//! bootstraps `2Z · 8` times (96 for the default `Z = 6`) instead of the block kernels'
//! 1,007 (docs/leveled.md, "Leveled slots in buckets").
//!
//! **Layout.** Slot `z` occupies coefficients `[z·W, (z+1)·W)`, `W = B + 2 + nibbles`: the
//! key bits, the constant 1, the value's nibbles (exactly a one-GLWE row, shifted by
//! `z·W`) and, last, the vacant flag. Everything is at the block encoding `Δ = 2^59`.
//!
//! **Why one product serves every slot.** The chunk query is
//! `M_c(X) = Σ_{b ∈ c} (1 − 2 q_b) X^{−b} + (Σ q_b) X^{−B}`. In `K · M_c` a stored
//! coefficient at `z'·W + p` meets the exponent `−t` (`t ≤ B`) at degree `z'·W + p − t`.
//! That is `z·W` only for `z' = z` and `p = t`, because `p − t` lies in `(−B, W)` and
//! `W > B`: the coefficient at `z·W` is slot `z`'s chunk Hamming distance, exactly as the
//! constant coefficient is in a single row. The nibbles and the flag (`p > B`) never meet
//! any `−t` at a slot start. Negacyclic wrap-around (degrees below 0, slot 0 only) lands at
//! degrees `≥ N − B`, above the last slot start `(Z − 1)·W < N − B` whenever `Z·W ≤ N`,
//! which [`LeveledBucketLayout::new`] enforces.
//!
//! **Noise** ([`crate::noise::LeveledBucketNoise`]): the product multiplies the candidate
//! bucket's coefficient noise by `‖M_c‖² ≤ 15 + 15²`; that noise is the key owner's fresh
//! encryption, the storage's modulus switch, one external product per write-back since
//! and per selection level. The vacant flag is added after extraction, not multiplied.
//!
//! The kernels here are the server's part; the SQL surface does not make such tables yet.

use super::equality::{check_chunks, coefficient, decide_match, distance_block, EqualityLuts};
use super::get::{check_answer_slots, zero_sum, LeveledAnswer};
use super::owner::{bytes_of_nibbles, decode_block, write_slot_plaintext};
use super::repack::value_tables_from_coefficients;
use super::{RowFormat, RowLayout, DELTA_LOG};
use crate::bucket::client::encrypt_bucket_glwe;
use crate::bucket::params;
use crate::bucket::select::STORED_NOISE_LEVEL;
use crate::bucket::wire::Selector;
use crate::bucket::write_back::{pack_delta, HalfChanges};
use crate::client_rows::ClearRow;
use crate::error::{FheKvError, Result};
use crate::keys::{ClientKeys, ServerKeys};
use crate::params::Width;
use crate::runtime::pbs;
use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::ciphertext::NoiseLevel;
use tfhe::shortint::{Ciphertext, ServerKey};

/// `Z` one-GLWE slots of `row` in one bucket GLWE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeveledBucketLayout {
    pub row: RowLayout,
    pub slots: usize,
}

impl LeveledBucketLayout {
    /// A bucket of `slots` slots of these widths; refused when the slots do not fit one
    /// GLWE (`slots · W > N`: the equality's wrap-around argument needs it).
    pub fn new(key: Width, value: Width, slots: usize) -> Result<LeveledBucketLayout> {
        let row = RowLayout::of_format(key, value, RowFormat::OneGlwe);
        let max = Self::max_slots(row);
        if slots == 0 || slots > max {
            return Err(FheKvError::InvalidArgument(format!(
                "a bucket of {key}/{value} leveled slots holds 1 to {max} slots ({slots} asked)"
            )));
        }
        Ok(LeveledBucketLayout { row, slots })
    }

    /// How many slots of `row` fit one GLWE.
    pub fn max_slots(row: RowLayout) -> usize {
        params::coefficients() / Self::width_of(row)
    }

    /// The width of a slot of `key`/`value` entries.
    pub fn width_for(key: Width, value: Width) -> usize {
        Self::width_of(RowLayout::of_format(key, value, RowFormat::OneGlwe))
    }

    fn width_of(row: RowLayout) -> usize {
        row.key_glwe_bodies() + 1
    }

    /// Coefficients per slot, `W = B + 2 + nibbles` (82 for u64/u64).
    pub fn slot_width(&self) -> usize {
        Self::width_of(self.row)
    }

    /// Where slot `z` starts: its first key bit, and the degree of its chunk distances.
    pub fn slot_start(&self, z: usize) -> usize {
        z * self.slot_width()
    }

    /// Where slot `z` holds its vacant flag (its last coefficient).
    pub fn vacant_at(&self, z: usize) -> usize {
        self.slot_start(z) + self.slot_width() - 1
    }

    /// Where slot `z` holds its value's nibbles.
    pub fn nibble_positions(&self, z: usize) -> Vec<usize> {
        let start = self.slot_start(z);
        self.row
            .nibble_positions()
            .into_iter()
            .map(|p| start + p)
            .collect()
    }

    /// Body coefficients in use: what a stored bucket keeps.
    pub fn bodies(&self) -> usize {
        self.slots * self.slot_width()
    }

    /// The bucket's plaintext (coefficients at `Δ`): `Some((key, value))` little-endian,
    /// or `None` for a vacant slot (key and value 0, flag 1); each slot as a one-GLWE
    /// row writes it ([`write_slot_plaintext`]), at its start.
    pub(crate) fn plaintext<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        entries: &[Option<(K, V)>],
    ) -> Result<PlaintextListOwned<u64>> {
        let rows: Vec<ClearRow> = entries
            .iter()
            .map(|entry| match entry {
                Some((k, v)) => ClearRow {
                    occupied: true,
                    key: k.as_ref().to_vec(),
                    value: v.as_ref().to_vec(),
                },
                None => ClearRow::vacant(self.row.key.width, self.row.value),
            })
            .collect();
        self.plaintext_of_rows(&rows)
    }

    /// The bucket's plaintext from clear rows: every slot's key and value as a one-GLWE
    /// row writes them ([`write_slot_plaintext`]), at its start, vacant or not (a
    /// tombstone keeps its pair), and the flag `1` where the slot is vacant.
    pub(crate) fn plaintext_of_rows(&self, rows: &[ClearRow]) -> Result<PlaintextListOwned<u64>> {
        if rows.len() != self.slots {
            return Err(FheKvError::InvalidArgument(format!(
                "{} entries for a bucket of {} slots",
                rows.len(),
                self.slots
            )));
        }
        let mut plain = PlaintextList::new(0u64, PlaintextCount(params::coefficients()));
        let p = plain.as_mut();
        for (z, row) in rows.iter().enumerate() {
            if row.key.len() != self.row.key.width.bytes()
                || row.value.len() != self.row.value.bytes()
            {
                return Err(FheKvError::InvalidArgument(format!(
                    "an entry of {}/{} bytes for a {}/{} bucket",
                    row.key.len(),
                    row.value.len(),
                    self.row.key.width,
                    self.row.value
                )));
            }
            write_slot_plaintext(&mut p[self.slot_start(z)..], self.row, &row.key, &row.value);
            p[self.vacant_at(z)] = u64::from(!row.occupied) << DELTA_LOG;
        }
        Ok(plain)
    }
}

impl ClientKeys {
    /// A bucket of leveled slots, freshly encrypted under the bucket (PBS GLWE) key.
    pub fn leveled_bucket_glwe(
        &self,
        layout: &LeveledBucketLayout,
        entries: &[Option<(impl AsRef<[u8]>, impl AsRef<[u8]>)>],
    ) -> Result<GlweCiphertextOwned<u64>> {
        Ok(encrypt_bucket_glwe(&self.glwe, &layout.plaintext(entries)?))
    }

    /// The key owner's write into one candidate bucket (the bucketed layout's
    /// `fhe_write`): a fresh encryption of `after − before`, the plaintexts of the bucket
    /// as read and as it should become. Plaintexts are linear, so the difference is taken
    /// coefficient by coefficient; it is zero wherever nothing changes, and an encryption
    /// of 0 when nothing does (sent all the same: a write looks the same either way).
    ///
    /// Test-only: `None` stands for a vacant slot of key and value 0, so it cannot write
    /// over a tombstone; the key owner's writes go through `BucketAccess`, whose read
    /// keeps the tombstone's pair.
    #[cfg(test)]
    pub(crate) fn leveled_bucket_delta(
        &self,
        layout: &LeveledBucketLayout,
        before: &[Option<(impl AsRef<[u8]>, impl AsRef<[u8]>)>],
        after: &[Option<(impl AsRef<[u8]>, impl AsRef<[u8]>)>],
    ) -> Result<GlweCiphertextOwned<u64>> {
        let mut delta = layout.plaintext(after)?;
        let before = layout.plaintext(before)?;
        for (d, b) in delta.as_mut().iter_mut().zip(before.as_ref()) {
            *d = d.wrapping_sub(*b);
        }
        Ok(encrypt_bucket_glwe(&self.glwe, &delta))
    }

    /// Decrypt a bucket of leveled slots into clear rows: every slot's key and value as
    /// stored (a vacant slot's tombstone too) and whether it is occupied. A flag that is
    /// neither 0 nor 1, or a key bit that is not a bit, is a corrupt bucket.
    pub fn open_leveled_bucket_rows(
        &self,
        layout: &LeveledBucketLayout,
        bucket: &GlweCiphertextOwned<u64>,
        what: &'static str,
    ) -> Result<Vec<ClearRow>> {
        let mut plain = PlaintextList::new(0u64, PlaintextCount(params::coefficients()));
        decrypt_glwe_ciphertext(&self.glwe, bucket, &mut plain);
        let at = |i: usize| decode_block(plain.as_ref()[i]);
        (0..layout.slots)
            .map(|z| {
                let flag = at(layout.vacant_at(z));
                let start = layout.slot_start(z);
                let bits: Vec<u64> = (0..layout.row.key.bits()).map(|b| at(start + b)).collect();
                if flag > 1 || bits.iter().any(|&b| b > 1) {
                    return Err(FheKvError::BadPayload {
                        what,
                        detail: format!(
                            "slot {z} decrypted to a flag or key bit that is not 0 or 1"
                        ),
                    });
                }
                let mut key = vec![0u8; layout.row.key.width.bytes()];
                for (b, bit) in bits.iter().enumerate() {
                    key[b / 8] |= (*bit as u8) << (b % 8);
                }
                let nibbles: Vec<u64> = layout.nibble_positions(z).into_iter().map(at).collect();
                Ok(ClearRow {
                    occupied: flag == 0,
                    key,
                    value: bytes_of_nibbles(&nibbles),
                })
            })
            .collect()
    }

    /// Decrypt a bucket of leveled slots (the tests' view of a selected bucket): per slot
    /// `Some((key, value))`, or `None` when it is vacant.
    #[cfg(test)]
    pub(crate) fn open_leveled_bucket(
        &self,
        layout: &LeveledBucketLayout,
        bucket: &GlweCiphertextOwned<u64>,
    ) -> Vec<Option<(Vec<u8>, Vec<u8>)>> {
        self.open_leveled_bucket_rows(layout, bucket, "leveled bucket")
            .expect("a bucket the tests wrote")
            .into_iter()
            .map(|r| r.occupied.then_some((r.key, r.value)))
            .collect()
    }
}

/// Every slot's chunk distances in one candidate bucket, `[slot][chunk]`, as LWE samples
/// under the big LWE key: one external product per chunk for the whole bucket, then a
/// (free) sample extraction per slot at its start.
pub fn slot_distances(
    layout: &LeveledBucketLayout,
    bucket: &GlweCiphertextOwned<u64>,
    query: &[Selector],
) -> Result<Vec<Vec<LweCiphertextOwned<u64>>>> {
    check_chunks(layout.row.key, query)?;
    let products: Vec<GlweCiphertextOwned<u64>> = query
        .par_iter()
        .map(|ggsw| {
            let mut product = crate::bucket::select::zero_glwe();
            crate::bucket::select::add_external_product(&mut product, ggsw, bucket);
            product
        })
        .collect();
    Ok((0..layout.slots)
        .map(|z| {
            products
                .iter()
                .map(|p| coefficient(p, layout.slot_start(z)))
                .collect()
        })
        .collect())
}

/// `[slot occupied ∧ stored key = query key]` for every slot of one candidate bucket:
/// `chunks` external products for the bucket, then `chunks + 1` PBS per slot (6 for a u64
/// key; 1 for keys of one chunk).
///
/// The last chunk's input is its distance (at most one PBS output's variance,
/// [`crate::noise::LeveledBucketNoise`]) plus the slot's flag as extracted from the
/// bucket, which [`leveled_bucket_delete`] leaves as a PBS output plus a packing key
/// switch and the write-backs' paths, within [`STORED_NOISE_LEVEL`] ([`crate::noise::BucketNoise`]):
/// declared at `1 + STORED_NOISE_LEVEL = 4` nominal variances, within
/// `max_noise_level = 5`.
pub fn bucket_matches(
    sks: &ServerKey,
    luts: &EqualityLuts,
    layout: &LeveledBucketLayout,
    bucket: &GlweCiphertextOwned<u64>,
    query: &[Selector],
) -> Result<Vec<Ciphertext>> {
    let with_flags = matches_and_flags(sks, luts, layout, bucket, query)?;
    Ok(with_flags.into_iter().map(|(m, _)| m).collect())
}

/// [`bucket_matches`], each with the slot's flag as extracted for it (a DELETE rewrites
/// the flag from the same sample).
fn matches_and_flags(
    sks: &ServerKey,
    luts: &EqualityLuts,
    layout: &LeveledBucketLayout,
    bucket: &GlweCiphertextOwned<u64>,
    query: &[Selector],
) -> Result<Vec<(Ciphertext, LweCiphertextOwned<u64>)>> {
    let distances = slot_distances(layout, bucket, query)?;
    let last_level = NoiseLevel::NOMINAL * (1 + STORED_NOISE_LEVEL);
    Ok(distances
        .into_par_iter()
        .enumerate()
        .map(|(z, d)| {
            let vacant = coefficient(bucket, layout.vacant_at(z));
            let m = decide_match(sks, luts, layout.row.key, d, &vacant, last_level);
            (m, vacant)
        })
        .collect())
}

/// A DELETE's result: for the key owner the encrypted status `Σ m` over the `2Z`
/// candidates (1 if the key was there, 0 if not: a sum of match bits, no bootstrap), and
/// per half the delta to expand into every bucket of that half (the bucketed layout's
/// write-back, [`crate::bucket::write_back::DeltaLeaves`]).
pub struct LeveledBucketDelete {
    pub status: LweCiphertextOwned<u64>,
    pub deltas: [GlweCiphertextOwned<u64>; 2],
}

/// Private DELETE of one key over its two selected candidate buckets: every candidate
/// slot's flag becomes `[flag + m ≠ 0]` (a fresh PBS output, so the changes do not show
/// which slot, if any, held the key), and the changes `new − old` at the flags'
/// coefficients are packed into one delta per half (one packing key switch per slot).
/// Per candidate slot, u64 key: 6 + 1 = 7 PBS, as a flat leveled DELETE. Idempotent: a
/// vacant slot never matches. The key and value stay encrypted behind the flag, as in
/// every layout.
///
/// Noise: the written flag is the PBS output plus the packing key switch and the paths
/// of the selection and the expansion (the old flag's stored noise cancels in
/// `stored + (new − selected)` up to the selection path), what
/// [`crate::noise::BucketNoise`] bounds for every block a server-side write leaves; the
/// flag enters the next match after extraction, never multiplied by a query polynomial.
pub fn leveled_bucket_delete(
    server: &ServerKeys,
    luts: &EqualityLuts,
    layout: &LeveledBucketLayout,
    selected: &[GlweCiphertextOwned<u64>; 2],
    query: &[Selector],
) -> Result<LeveledBucketDelete> {
    check_answer_slots("DELETE", 2 * layout.slots)?;
    let packing = server.bucket_packing()?;
    let sks = &server.sks;
    let mut status = zero_sum();
    let mut deltas = Vec::with_capacity(2);
    for bucket in selected {
        let matches = matches_and_flags(sks, luts, layout, bucket, query)?;
        let changes: HalfChanges = matches
            .par_iter()
            .enumerate()
            .map(|(z, (m, old))| {
                let at = layout.vacant_at(z);
                // flag + m ∈ {0, 1} (a match is occupied): degree 2, the flag's stored
                // level plus the match's.
                let mut sum = old.clone();
                lwe_ciphertext_add_assign(&mut sum, &m.ct);
                let level = NoiseLevel::NOMINAL * (1 + STORED_NOISE_LEVEL);
                let flag = pbs(sks, &distance_block(sum, 2, level), &luts.nonzero);
                let mut change = flag.ct;
                lwe_ciphertext_sub_assign(&mut change, old);
                (at, change)
            })
            .collect();
        for (m, _) in &matches {
            lwe_ciphertext_add_assign(&mut status, &m.ct);
        }
        deltas.push(pack_delta(packing, &changes));
    }
    let [left, right]: [GlweCiphertextOwned<u64>; 2] =
        deltas.try_into().expect("one delta per half");
    Ok(LeveledBucketDelete {
        status,
        deltas: [left, right],
    })
}

/// Private GET of one key over its two selected candidate buckets (the roots of the
/// bucket selection's CMux trees): [`bucket_matches`] on each, then per candidate slot its
/// lookup tables rebuilt from its nibble coefficients ([`super::repack`], 16 packing key
/// switches for a u64 value, beside the match) and one blind rotation per table with the
/// match bit, summed over the `2Z` candidates without bootstrapping (at most one holds
/// the key). Per candidate slot, u64/u64: 6 + 2 = 8 PBS, as a flat leveled GET.
pub fn leveled_bucket_get(
    server: &ServerKeys,
    luts: &EqualityLuts,
    layout: &LeveledBucketLayout,
    selected: &[GlweCiphertextOwned<u64>; 2],
    query: &[Selector],
) -> Result<LeveledAnswer> {
    check_answer_slots("GET", 2 * layout.slots)?;
    check_chunks(layout.row.key, query)?;
    let packing = server.bucket_packing()?;
    let sks = &server.sks;
    let mut answer = LeveledAnswer::empty(layout.row);
    for bucket in selected {
        // The rebuild does not depend on the query: it runs beside the match.
        let (matches, tables) = rayon::join(
            || bucket_matches(sks, luts, layout, bucket, query),
            || {
                (0..layout.slots)
                    .into_par_iter()
                    .map(|z| {
                        value_tables_from_coefficients(packing, bucket, &layout.nibble_positions(z))
                    })
                    .collect::<Vec<_>>()
            },
        );
        for (m, tables) in matches?.iter().zip(&tables) {
            answer.add_selected(sks, m, tables);
        }
    }
    Ok(answer)
}
