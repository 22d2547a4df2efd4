//! The oblivious kernels of DESIGN §6 over a slice of stored rows.
//!
//! Every operation touches every row with the same sequence of homomorphic operations, so
//! the server learns nothing about which slot matched. Costs are stated per row in PBS
//! (programmable bootstraps; list decompression counts one per block). With `K` key
//! blocks and `V` value blocks (`bits/2`):
//!
//! | op     | per row                                              | u64/u64 |
//! |--------|------------------------------------------------------|---------|
//! | match  | `K` block `≠` + ⌈(K − 4)/4⌉ + 1 reduction             | 40      |
//! | GET    | decompress `1+K+V`, match, `V` masks, ~`V/4` cleanups | ~145    |
//! | SET    | decompress, match, 2 control PBS, `K+V` updates      | ~171    |
//! | DELETE | decompress, match (the new flag is a plain sum)       | ~105    |
//! | DELETE scrub | the above + 1 flag PBS + `K+V` zeroing masks   | ~170    |
//! | locate | decompress `1+K`, `K` block `≠` (sums not bootstrapped) | 65     |
//! | fetch  | one external product per slot (CMux tree)             | 0       |
//!
//! Per operation (not per row), each incoming block is cleaned first: 1 PBS for the keys of
//! GET, locate and DELETE, 2 for the key and value of SET
//! ([`KernelEnv::clean_inputs_for_write`]).
//!
//! Noise discipline: a PBS input is a sum of nominal-noise terms whose absolute scalar
//! weights add up to at most `max_noise_level = 5` (the parameter set's guarantee for
//! p_fail ≤ 2^-128 per PBS). Each helper states its budget; TFHE-rs' own noise-level
//! bookkeeping asserts it at run time.

mod delete;
mod fetch;
mod get;
pub(crate) mod locate;
pub(crate) mod luts;
mod set;

pub use delete::{oblivious_delete, DeleteMode, DeleteOutcome, DeleteStatus};
pub use fetch::oblivious_fetch_streamed;
pub use get::{
    oblivious_get, oblivious_get_many, oblivious_get_many_streamed, GetOutcome, MAX_BATCH_KEYS,
};
pub use locate::{oblivious_locate_many_streamed, LocateOutcome, MAX_LOCATE_KEYS};
pub use set::{oblivious_set, SetOutcome, SetStatus};

use crate::envelope::KeyId;
use crate::error::Result;
use crate::keys::ServerKeys;
use crate::params::{Width, MAX_NOISE_LEVEL};
use crate::row::{decode_row, decompress_row, RowCiphertext, StoredRow};
use crate::runtime::pbs;
use crate::runtime::Runner;
pub(crate) use luts::Luts;
use rayon::prelude::*;
use tfhe::core_crypto::algorithms::lwe_ciphertext_sub_assign;
use tfhe::shortint::ciphertext::{Degree, NoiseLevel};
use tfhe::shortint::server_key::LookupTableOwned;
use tfhe::shortint::{Ciphertext, ServerKey};

/// Where and how a kernel runs.
pub struct KernelEnv<'a> {
    pub keys: &'a ServerKeys,
    pub key_width: Width,
    pub value_width: Width,
    /// Pool the FHE work runs on; `None` = rayon's global pool.
    pub pool: Option<&'a dyn Runner>,
    /// Rows decoded per batch; the `between_batches` hook runs on the calling thread after
    /// each batch (the extension checks for query cancel there).
    pub batch_rows: usize,
}

/// Called on the caller's thread between batches with (rows done, rows total).
pub type BetweenBatches<'b> = &'b mut dyn FnMut(usize, usize);

/// What reading a table's stored rows needs: no evaluation key. The fetch round runs on
/// this alone, so a backend answers `fhe_fetch` without loading the ~250 MB server key.
pub struct RowEnv<'a> {
    pub key_id: KeyId,
    pub key_width: Width,
    pub value_width: Width,
    /// Pool the work runs on; `None` = rayon's global pool.
    pub pool: Option<&'a dyn Runner>,
}

impl RowEnv<'_> {
    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        crate::runtime::install(self.pool, f)
    }

    /// Decode one stored row of this table (envelope, size limit, conformance, shape).
    fn decode(&self, bytes: &[u8]) -> Result<StoredRow> {
        decode_row(bytes, self.key_id, self.key_width, self.value_width)
    }
}

impl KernelEnv<'_> {
    /// The row-reading part of this environment.
    pub fn rows(&self) -> RowEnv<'_> {
        RowEnv {
            key_id: self.keys.key_id,
            key_width: self.key_width,
            value_width: self.value_width,
            pool: self.pool,
        }
    }

    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.rows().install(f)
    }

    pub(crate) fn sks(&self) -> &ServerKey {
        &self.keys.sks
    }

    fn decode(&self, bytes: &[u8]) -> Result<StoredRow> {
        self.rows().decode(bytes)
    }

    /// Re-encrypt each incoming query block as `x mod 4` with one PBS (per block per
    /// operation, not per row), for kernels that only *compare* the input with stored keys
    /// (GET, locate, DELETE). A conformant ciphertext may still carry a plaintext with its
    /// carry bits set (a forged or bit-flipped payload), which would select the wrong LUT
    /// entry for *other* slots. After this step every block is a fresh PBS output in
    /// `{-3, …, 3}`: in `[0, 4)`, or negated if the input had its padding bit set (the
    /// negacyclic half of the blind rotation), which no single PBS can rule out.
    /// [`block_neq`] reads a negated block as a mismatch with every stored block, so such a
    /// key matches nothing. SET also *writes* its inputs and uses
    /// [`Self::clean_inputs_for_write`].
    ///
    /// `luts.low2` is `x mod 4`, the function of `ServerKey::message_extract`, which would
    /// build a fresh table for every block.
    pub(crate) fn clean_inputs(&self, luts: &Luts, blocks: &[Ciphertext]) -> Vec<Ciphertext> {
        self.install(|| {
            blocks
                .par_iter()
                .map(|b| pbs(self.sks(), b, &luts.low2))
                .collect()
        })
    }

    /// [`Self::clean_inputs`] plus a second PBS, `y ↦ y` on `[0, 4)` and `0` elsewhere, so
    /// that every block is in `[0, 4)` whatever the input: a negated output `-y` of the
    /// first PBS (`y ∈ [1, 3]`) sits at `32 − y`, whose negacyclic image is `−g(16 − y) = 0`.
    /// SET's masked update needs this exact range: `delta8` reads a negative block as a
    /// different row's case and would turn `write = 0` into a non-zero delta, rewriting a
    /// slot the query does not own (its 16 table entries hold the 14 valid cases and no
    /// room for the 6 negated ones). With it, any conformant ciphertext acts as the
    /// encryption of *some* valid key or value, so accepted garbage can only ever land in
    /// the one slot that SET picks. Cost: 2 PBS per input block per operation (not per row).
    pub(crate) fn clean_inputs_for_write(
        &self,
        luts: &Luts,
        blocks: &[Ciphertext],
    ) -> Vec<Ciphertext> {
        let once = self.clean_inputs(luts, blocks);
        self.install(|| {
            once.par_iter()
                .map(|b| pbs(self.sks(), b, &luts.in_range))
                .collect()
        })
    }

    /// Decode + decompress + compute each row's match bit, batch by batch, handing each
    /// decoded batch to `consume`. Rows stay in memory only as long as `consume` keeps them.
    fn scan_rows(
        &self,
        luts: &Luts,
        query: &[Ciphertext],
        rows: &[impl AsRef<[u8]> + Sync],
        between: BetweenBatches<'_>,
        mut consume: impl FnMut(Vec<(RowCiphertext, Ciphertext)>) -> Result<()>,
    ) -> Result<()> {
        let batches = self.slice_batches(rows);
        self.scan_batches(luts, &[query], rows.len(), batches, between, |batch| {
            consume(
                batch
                    .into_iter()
                    .map(|(row, mut m)| (row, m.pop().expect("one query, one match bit")))
                    .collect(),
            )
        })?;
        Ok(())
    }

    /// An in-memory table as the batches [`Self::scan_batches`] reads.
    fn slice_batches<'r, T: AsRef<[u8]> + Sync>(
        &self,
        rows: &'r [T],
    ) -> impl Iterator<Item = Result<Vec<&'r T>>> {
        rows.chunks(self.batch_rows.max(1))
            .map(|chunk| Ok(chunk.iter().collect()))
    }

    /// Decode, decompress and match rows that arrive in batches (from a slice or a
    /// cursor, so only one batch of row bytes need be held), handing each decoded batch to
    /// `consume`. Each row is decompressed **once** (1 + K + V PBS) and matched against
    /// every query (K + ~10 PBS each): that sharing is what makes a batched GET cheaper
    /// than separate GETs. `total` is for progress reports; returns the rows read.
    fn scan_batches<B: AsRef<[u8]> + Sync>(
        &self,
        luts: &Luts,
        queries: &[&[Ciphertext]],
        total: usize,
        batches: impl Iterator<Item = Result<Vec<B>>>,
        between: BetweenBatches<'_>,
        mut consume: impl FnMut(Vec<(RowCiphertext, Vec<Ciphertext>)>) -> Result<()>,
    ) -> Result<usize> {
        let mut done = 0;
        for batch in batches {
            let batch = batch?;
            let decoded: Vec<(RowCiphertext, Vec<Ciphertext>)> = self.install(|| {
                batch
                    .par_iter()
                    .map(|bytes| {
                        let stored = self.decode(bytes.as_ref())?;
                        let row =
                            decompress_row(self.keys, &stored, self.key_width, self.value_width)?;
                        let ms = queries
                            .par_iter()
                            .map(|q| match_bit(self.sks(), luts, &row, q))
                            .collect();
                        Ok((row, ms))
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            done += batch.len();
            consume(decoded)?;
            between(done, total);
        }
        Ok(done)
    }
}

/// `match = [vacant + Σ_j [k_j ≠ q_j] == 0]`, i.e. occupied AND key == query.
///
/// * `[k_j ≠ q_j]`: one PBS per block ([`block_neq`]).
/// * The K mismatch bits and the vacant bit are summed five at a time (noise 5, value ≤ 5)
///   and folded with `[x ≠ 0]` until at most five remain ([`compact`]); the last sum goes
///   through `[x == 0]`. For K = 32: 33 → 9 → 5 → 1, i.e. 8 PBS.
fn match_bit(
    sks: &ServerKey,
    luts: &Luts,
    row: &RowCiphertext,
    query: &[Ciphertext],
) -> Ciphertext {
    let mut terms: Vec<Ciphertext> = row
        .key
        .par_iter()
        .zip(query.par_iter())
        .map(|(k, q)| block_neq(sks, luts, k, q))
        .collect();
    terms.push(row.vacant.clone());
    reduce(sks, terms, &luts.nonzero, &luts.is_zero)
}

/// `[key = query]` on 2-bit blocks, as the block kernels compute it (one [`block_neq`] per
/// block, then [`reduce`]): the baseline `make bench-leveled` compares leveled equality
/// with. `key` blocks at the nominal noise level, `query` blocks clean (`[0, 4)`).
pub fn block_key_match(sks: &ServerKey, key: &[Ciphertext], query: &[Ciphertext]) -> Ciphertext {
    let luts = Luts::new(sks);
    let terms: Vec<Ciphertext> = key
        .par_iter()
        .zip(query.par_iter())
        .map(|(k, q)| block_neq(sks, &luts, k, q))
        .collect();
    reduce(sks, terms, &luts.nonzero, &luts.is_zero)
}

/// Mark a block that is the sum of two independent PBS outputs as fit for the list
/// compression, whose API asserts single-PBS noise and empty carries. `degree` is the
/// plaintext bound the caller has shown (in its own doc); the noise argument is in
/// docs/noise.md: `noise::StoredNoise::for_sum_of(2.0)`, a decompression failure bound of
/// 2^-279.9 against 2^-280.4 for one PBS output. Only the compression may read the result.
pub(crate) fn two_pbs_sum_for_compression(
    sks: &ServerKey,
    mut block: Ciphertext,
    degree: u64,
) -> Ciphertext {
    block.degree = Degree::new(degree);
    block.set_noise_level(NoiseLevel::NOMINAL, sks.max_noise_level);
    block
}

/// `[k ≠ q]` for a stored key block `k ∈ [0, 4)` and a cleaned query block
/// `q ∈ {-3, …, 3}` ([`KernelEnv::clean_inputs`]): one PBS on `x = k − q + 4`.
///
/// * `q ∈ [0, 4)`: `x ∈ [1, 7]`, and `x = 4` iff `k = q`.
/// * `q = −y`, `y ∈ [1, 3]` (the cleaning's output for an input with its padding bit set):
///   `x = k + y + 4 ∈ [5, 10]`, a mismatch. It never reaches the padding half, where the
///   blind rotation would negate the output: the bivariate `4k + q` this replaced turned
///   such a block into a `−1` term that cancelled another block's `+1`, a false match, and
///   writers had to clean twice because of it.
///
/// Noise: the two inputs' levels add: 2 for a decompressed flat row (`k` and `q` are both
/// nominal PBS outputs; the bivariate form was at 5), 4 for a block extracted from a
/// stored bucket (`bucket::select::STORED_NOISE_LEVEL` is 3).
/// The subtraction is done on the LWE directly (exact on the torus) so that the offset is
/// [`luts::NEQ_OFFSET`] whatever degree `q` carries.
pub(crate) fn block_neq(
    sks: &ServerKey,
    luts: &Luts,
    k: &Ciphertext,
    q: &Ciphertext,
) -> Ciphertext {
    let mut x = k.clone();
    lwe_ciphertext_sub_assign(&mut x.ct, &q.ct);
    sks.unchecked_scalar_add_assign(&mut x, luts::NEQ_OFFSET as u8);
    x.degree = Degree::new(10);
    x.set_noise_level(k.noise_level() + q.noise_level(), sks.max_noise_level);
    pbs(sks, &x, &luts.neq)
}

/// Sum terms of nominal noise in groups of `MAX_NOISE_LEVEL`, applying `fold` to each group,
/// until one group is left, then apply `last` to it. `fold` must map a group sum back to a
/// term of the same meaning (e.g. `[x ≠ 0]` for OR, `x mod 4` for one-hot sums), and group
/// sums must stay below 16 (callers sum bits or one-hot 2-bit values).
pub(crate) fn reduce(
    sks: &ServerKey,
    terms: Vec<Ciphertext>,
    fold: &LookupTableOwned,
    last: &LookupTableOwned,
) -> Ciphertext {
    let terms = compact(sks, terms, fold);
    pbs(sks, &sum(sks, &terms), last)
}

/// The first half of [`reduce`]: fold groups until at most `MAX_NOISE_LEVEL` terms remain.
/// Running accumulators use it after every batch so they stay small.
///
/// A fold of g terms removes g − 1, so reaching `MAX_NOISE_LEVEL` from `t` terms takes at
/// least ⌈(t − 5)/4⌉ folds; each round folds only as many full groups as are still needed
/// (for the 33 terms of a u64 match: 6 folds, then 1: 33 → 9 → 5, where folding every
/// group would take 7 + 2: 33 → 7 → 2).
pub(crate) fn compact(
    sks: &ServerKey,
    mut terms: Vec<Ciphertext>,
    fold: &LookupTableOwned,
) -> Vec<Ciphertext> {
    while terms.len() > MAX_NOISE_LEVEL {
        let needed = (terms.len() - MAX_NOISE_LEVEL).div_ceil(MAX_NOISE_LEVEL - 1);
        let groups = needed.min(terms.len() / MAX_NOISE_LEVEL);
        let rest = terms.split_off(groups * MAX_NOISE_LEVEL);
        terms = terms
            .par_chunks(MAX_NOISE_LEVEL)
            .map(|group| pbs(sks, &sum(sks, group), fold))
            .collect();
        terms.extend(rest);
    }
    terms
}

pub(crate) fn sum(sks: &ServerKey, terms: &[Ciphertext]) -> Ciphertext {
    let mut acc = terms[0].clone();
    for t in &terms[1..] {
        sks.unchecked_add_assign(&mut acc, t);
    }
    acc
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_two_round;
