//! The server's write of a bucketed table (SET, DELETE): the changed candidate slots
//! become one GLWE **delta** per half, and an **expansion tree** driven by the query's
//! selectors turns it into one delta per bucket — the delta itself at the candidate,
//! an encryption of zero everywhere else — which is added to every stored bucket.
//!
//! * **Delta.** For every candidate block that changes, `new − old` where `old` is the
//!   block as extracted from the selected bucket (an LWE under the big key) and `new` a
//!   fresh PBS output (or a sum of two): packed into the half's GLWE at the block's
//!   coefficient by the packing key switch. Adding it to the candidate bucket `B` gives
//!   `B + new − old = new + (B − old)`: the stored block becomes `new`, up to the
//!   selection and packing errors, whatever noise it carried before.
//! * **Expansion.** At a tree node holding delta `X` and selector bit `b` (most
//!   significant first), the right child is `b ⊡ X` and the left `X − b ⊡ X`: the leaf
//!   of bucket `j` holds `X` if `j` is the candidate, else an encryption of 0 with one
//!   external product's error per level. Subtrees beyond the `m` real buckets are never
//!   computed. Leaves come out in bucket order with a stack of depth ⌈log2 m⌉, so memory
//!   holds one batch of rows whatever the table size.
//! * **Every row changes.** A non-candidate bucket receives a nonzero ciphertext of 0 (the
//!   external products' masks), so the rewritten table shows neither bucket nor slot.

use super::params;
use super::select::{add_external_product, zero_glwe};
use super::wire::{decode_row, encode_row, HalfSelectors, Selector};
use super::BucketLayout;
use crate::envelope::KeyId;
use crate::error::{FheKvError, Result};
use crate::runtime::Runner;
use rayon::prelude::*;
use tfhe::core_crypto::algorithms::polynomial_algorithms;
use tfhe::core_crypto::prelude::*;

/// Changed blocks of one half's candidate bucket: `(coefficient, new − old)`.
pub type HalfChanges = Vec<(usize, LweCiphertextOwned<u64>)>;

/// Pack one half's changes into a GLWE delta (packing key switch; no bootstrap).
///
/// Noise: every packed LWE adds the key switch's error to every coefficient of the
/// output, so a delta of `n` blocks carries `n` times one key switch's key term
/// ([`crate::noise::BucketNoise`]: at most 2048 · 2^-57.2 = 2^-46.2 at the PKS parameters).
pub fn pack_delta(
    packing_key: &LwePackingKeyswitchKeyOwned<u64>,
    changes: &HalfChanges,
) -> GlweCiphertextOwned<u64> {
    let mut delta = zero_glwe();
    let contiguous = changes.iter().enumerate().all(|(i, (c, _))| *c == i);
    if contiguous {
        // Chunks of PACK_CHUNK blocks, a cancel checkpoint before each (a u64/u64 half is
        // 390 key switches, ~3 s): chunk `j` is packed at coefficients 0.. and moved to
        // `j · PACK_CHUNK` by a monomial product (exact; the sum is the single packing's
        // value and noise, the same key switches added once each).
        for (j, chunk) in changes.chunks(PACK_CHUNK).enumerate() {
            crate::runtime::checkpoint();
            let mut list = LweCiphertextList::new(
                0u64,
                params::lwe_dimension().to_lwe_size(),
                LweCiphertextCount(chunk.len()),
                params::ciphertext_modulus(),
            );
            for (mut dst, (_, lwe)) in list.iter_mut().zip(chunk) {
                dst.as_mut().copy_from_slice(lwe.as_ref());
            }
            let mut part = zero_glwe();
            par_keyswitch_lwe_ciphertext_list_and_pack_in_glwe_ciphertext(
                packing_key,
                &list,
                &mut part,
            );
            rotate(&mut part, j * PACK_CHUNK);
            glwe_ciphertext_add_assign(&mut delta, &part);
        }
        return delta;
    }
    // A few scattered blocks (DELETE's flags): one key switch each, moved to its
    // coefficient by a monomial product.
    let parts: Vec<GlweCiphertextOwned<u64>> = changes
        .par_iter()
        .map(|(coefficient, lwe)| {
            crate::runtime::checkpoint();
            let mut one = zero_glwe();
            keyswitch_lwe_ciphertext_into_glwe_ciphertext(packing_key, lwe, &mut one);
            rotate(&mut one, *coefficient);
            one
        })
        .collect();
    for part in &parts {
        glwe_ciphertext_add_assign(&mut delta, part);
    }
    delta
}

/// Blocks packed per key-switch call of [`pack_delta`] (between cancel checkpoints).
const PACK_CHUNK: usize = 64;

/// Multiply every polynomial of `glwe` by `X^degree` (`degree` < N: a negacyclic shift
/// that moves coefficient `i` to `i + degree` without wrapping, exact).
pub(crate) fn rotate(glwe: &mut GlweCiphertextOwned<u64>, degree: usize) {
    if degree == 0 {
        return;
    }
    for mut poly in glwe.as_mut_polynomial_list().iter_mut() {
        polynomial_algorithms::polynomial_wrapping_monic_monomial_mul_assign(
            &mut poly,
            MonomialDegree(degree),
        );
    }
}

/// The expansion tree of one half, yielding each bucket's delta in bucket order.
pub struct DeltaLeaves<'s> {
    selectors: &'s [Selector],
    buckets: usize,
    /// Nodes still to visit: (level, first bucket, delta). Level 0 is a leaf.
    stack: Vec<(usize, usize, GlweCiphertextOwned<u64>)>,
}

impl<'s> DeltaLeaves<'s> {
    pub fn new(selectors: &'s [Selector], buckets: usize, delta: GlweCiphertextOwned<u64>) -> Self {
        DeltaLeaves {
            selectors,
            buckets,
            stack: vec![(selectors.len(), 0, delta)],
        }
    }
}

impl Iterator for DeltaLeaves<'_> {
    type Item = GlweCiphertextOwned<u64>;

    fn next(&mut self) -> Option<GlweCiphertextOwned<u64>> {
        loop {
            let (level, start, delta) = self.stack.pop()?;
            if level == 0 {
                return Some(delta);
            }
            // Bit `level − 1` splits this node's buckets into two halves of 2^(level−1).
            let right_start = start + (1 << (level - 1));
            if right_start >= self.buckets {
                // No real bucket on the right: an honest index has this bit 0 here, so
                // the left child is the node itself (no product needed).
                self.stack.push((level - 1, start, delta));
                continue;
            }
            let mut right = zero_glwe();
            add_external_product(&mut right, &self.selectors[level - 1], &delta);
            let mut left = delta;
            glwe_ciphertext_sub_assign(&mut left, &right);
            self.stack.push((level - 1, right_start, right));
            self.stack.push((level - 1, start, left));
        }
    }
}

/// Rewrites every bucket, batch by batch in bucket order: each stored bucket gets its
/// leaf of the expansion tree added and is stored again at 32 bits per coefficient.
pub struct WriteBack<'s> {
    key_id: KeyId,
    layout: BucketLayout,
    leaves: std::iter::Chain<DeltaLeaves<'s>, DeltaLeaves<'s>>,
    done: usize,
}

impl<'s> WriteBack<'s> {
    pub fn new(
        key_id: KeyId,
        layout: BucketLayout,
        selectors: &'s HalfSelectors,
        deltas: [GlweCiphertextOwned<u64>; 2],
    ) -> Self {
        let m = layout.buckets_per_half;
        let [left, right] = deltas;
        WriteBack {
            key_id,
            layout,
            leaves: DeltaLeaves::new(&selectors[0], m, left).chain(DeltaLeaves::new(
                &selectors[1],
                m,
                right,
            )),
            done: 0,
        }
    }

    /// Buckets rewritten so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// The new rows of the next stored buckets (in bucket order).
    pub fn rewrite(
        &mut self,
        pool: Option<&dyn Runner>,
        rows: &[impl AsRef<[u8]> + Sync],
    ) -> Result<Vec<Vec<u8>>> {
        let total = self.layout.buckets();
        if self.done + rows.len() > total {
            return Err(FheKvError::InvalidArgument(format!(
                "the table has more than the {total} buckets its layout records"
            )));
        }
        let (key_id, layout) = (self.key_id, self.layout);
        let leaves = &mut self.leaves;
        let run = move || -> Result<Vec<Vec<u8>>> {
            let deltas: Vec<GlweCiphertextOwned<u64>> = leaves.by_ref().take(rows.len()).collect();
            if deltas.len() != rows.len() {
                return Err(FheKvError::Internal(
                    "the expansion tree ended early".into(),
                ));
            }
            rows.par_iter()
                .zip(deltas.par_iter())
                .map(|(bytes, delta)| {
                    let mut glwe = decode_row(bytes.as_ref(), key_id, &layout)?;
                    glwe_ciphertext_add_assign(&mut glwe, delta);
                    encode_row(key_id, &layout, &glwe)
                })
                .collect()
        };
        let out = crate::runtime::install(pool, run)?;
        self.done += rows.len();
        Ok(out)
    }

    /// Check that every bucket was rewritten.
    pub fn finish(self) -> Result<()> {
        if self.done != self.layout.buckets() {
            return Err(FheKvError::InvalidArgument(format!(
                "the table has {} buckets, its layout records {}",
                self.done,
                self.layout.buckets()
            )));
        }
        Ok(())
    }
}
