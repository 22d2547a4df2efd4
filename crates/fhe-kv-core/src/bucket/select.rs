//! The server's read of a bucketed table: for each query, select its candidate bucket in
//! each half with a CMux tree over every bucket of that half (one external product per
//! tree node, no bootstrap), then extract the candidates' slots as shortint blocks.
//!
//! Rows arrive in bucket order — the left half's `m` buckets, then the right half's — from
//! a cursor, one batch at a time, and every row feeds every query's tree of its half, so
//! memory holds one batch of rows plus ⌈log2 m⌉ + 1 GLWEs per query and half.

use super::params;
use super::wire::{decode_row, HalfSelectors, Selector};
use super::BucketLayout;
use crate::envelope::KeyId;
use crate::error::{FheKvError, Result};
use crate::kernels::BetweenBatches;
use crate::row::RowCiphertext;
use crate::runtime::Runner;
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use tfhe::core_crypto::commons::computation_buffers::ComputationBuffers;
use tfhe::core_crypto::prelude::*;
use tfhe::shortint::ciphertext::{Degree, NoiseLevel};
use tfhe::shortint::parameters::{CarryModulus, MessageModulus};
use tfhe::shortint::{AtomicPatternKind, Ciphertext, PBSOrder};

/// The noise level (in nominal PBS-output variances) the kernels may assume for a block
/// extracted from a stored bucket: at most 2 (a SET writes sums of two PBS outputs) plus
/// the packing key switch and every write-back and selection since, which
/// [`crate::noise::BucketNoise`] bounds by 1 for more than 10^6 writes. The kernels' PBS
/// inputs combine it with level-1 terms only, so they stay within `max_noise_level = 5`.
pub const STORED_NOISE_LEVEL: u64 = 3;

/// External products computed by this process (CMux selection, write-back expansion):
/// the bench reports them next to the PBS count.
static EXTERNAL_PRODUCTS: AtomicU64 = AtomicU64::new(0);

pub fn external_product_count() -> u64 {
    EXTERNAL_PRODUCTS.load(Ordering::Relaxed)
}

pub fn reset_external_product_count() {
    EXTERNAL_PRODUCTS.store(0, Ordering::Relaxed);
}

thread_local! {
    /// Scratch space of the external product, one per worker thread.
    static BUFFERS: RefCell<ComputationBuffers> = RefCell::new(ComputationBuffers::new());
}

/// `out += selector ⊡ glwe`.
pub(crate) fn add_external_product(
    out: &mut GlweCiphertextOwned<u64>,
    selector: &Selector,
    glwe: &GlweCiphertextOwned<u64>,
) {
    crate::runtime::checkpoint();
    let fft = Fft::new(selector.polynomial_size());
    let fft = fft.as_view();
    BUFFERS.with_borrow_mut(|buffers| {
        buffers.resize(
            add_external_product_assign_mem_optimized_requirement::<u64>(
                selector.glwe_size(),
                selector.polynomial_size(),
                fft,
            )
            .unaligned_bytes_required(),
        );
        add_external_product_assign_mem_optimized(out, selector, glwe, fft, buffers.stack());
    });
    EXTERNAL_PRODUCTS.fetch_add(1, Ordering::Relaxed);
}

/// `b ? right : left` as `left + b ⊡ (right − left)`: the selected input's own noise plus
/// one external product's error (the CMux never bootstraps).
fn cmux(
    mut left: GlweCiphertextOwned<u64>,
    right: &GlweCiphertextOwned<u64>,
    b: &Selector,
) -> GlweCiphertextOwned<u64> {
    let mut diff = right.clone();
    glwe_ciphertext_sub_assign(&mut diff, &left);
    add_external_product(&mut left, b, &diff);
    left
}

pub(crate) fn zero_glwe() -> GlweCiphertextOwned<u64> {
    GlweCiphertext::new(
        0u64,
        params::glwe_size(),
        params::polynomial_size(),
        params::ciphertext_modulus(),
    )
}

/// One query's tree over one half: a binary counter of complete subtrees (`pending[l]`
/// holds a left subtree of 2^l leaves waiting for its right sibling).
pub(crate) struct Tree<'s> {
    selectors: &'s [Selector],
    pending: Vec<Option<GlweCiphertextOwned<u64>>>,
    leaves: usize,
}

impl<'s> Tree<'s> {
    pub(crate) fn new(selectors: &'s [Selector]) -> Tree<'s> {
        Tree {
            selectors,
            pending: vec![None; selectors.len() + 1],
            leaves: 0,
        }
    }

    /// Add the next bucket (in index order).
    pub(crate) fn push(&mut self, leaf: GlweCiphertextOwned<u64>) {
        let mut node = leaf;
        let mut level = 0;
        while let Some(left) = self.pending[level].take() {
            node = cmux(left, &node, &self.selectors[level]);
            level += 1;
        }
        self.pending[level] = Some(node);
        self.leaves += 1;
    }

    /// Pad with zero buckets up to 2^bits (never selected: the index is below m) and
    /// return the root, the selected bucket. An all-zero subtree is zero, so padding costs
    /// one product per level, not one per missing leaf.
    pub(crate) fn finish(mut self) -> GlweCiphertextOwned<u64> {
        let bits = self.selectors.len();
        if let Some(root) = self.pending[bits].take() {
            return root;
        }
        // `carry`: the subtree at `level` made of the leaves after every pending left
        // sibling, zero-padded (`None` = all zero). A subtree whose right sibling is all
        // padding is passed up as it is: an honest index has a 0 bit there.
        let mut carry: Option<GlweCiphertextOwned<u64>> = None;
        for level in 0..bits {
            let b = &self.selectors[level];
            carry = match (self.pending[level].take(), carry) {
                (Some(left), Some(right)) => Some(cmux(left, &right, b)),
                (Some(left), None) | (None, Some(left)) => Some(left),
                (None, None) => None,
            };
        }
        carry.unwrap_or_else(zero_glwe)
    }
}

/// What reading a bucketed table needs: its key_id and layout, and where to compute.
pub struct BucketEnv<'a> {
    pub key_id: KeyId,
    pub layout: BucketLayout,
    /// Pool the work runs on; `None` = rayon's global pool.
    pub pool: Option<&'a dyn Runner>,
}

/// For each query, its two selected buckets `[left, right]`, computed as rows are pushed
/// in bucket order (one batch at a time, so the caller holds one batch of rows).
pub struct BucketSelection<'s> {
    key_id: KeyId,
    layout: BucketLayout,
    /// `trees[query][half]`
    trees: Vec<[Tree<'s>; 2]>,
    done: usize,
}

impl<'s> BucketSelection<'s> {
    pub fn new(key_id: KeyId, layout: BucketLayout, queries: &[&'s HalfSelectors]) -> Result<Self> {
        for q in queries {
            if q.iter().any(|half| half.len() != layout.index_bits()) {
                return Err(FheKvError::InvalidArgument(
                    "selectors do not match the table's bucket count".into(),
                ));
            }
        }
        Ok(BucketSelection {
            key_id,
            layout,
            trees: queries
                .iter()
                .map(|q| [Tree::new(&q[0]), Tree::new(&q[1])])
                .collect(),
            done: 0,
        })
    }

    /// Buckets pushed so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Decode the next stored buckets (in bucket order) and feed them to every tree.
    pub fn push(
        &mut self,
        pool: Option<&dyn Runner>,
        rows: &[impl AsRef<[u8]> + Sync],
    ) -> Result<()> {
        let total = self.layout.buckets();
        if self.done + rows.len() > total {
            return Err(FheKvError::InvalidArgument(format!(
                "the table has more than the {total} buckets its layout records"
            )));
        }
        let (key_id, layout) = (self.key_id, self.layout);
        let m = layout.buckets_per_half;
        let run = || -> Result<()> {
            let glwes: Vec<GlweCiphertextOwned<u64>> = rows
                .par_iter()
                .map(|bytes| decode_row(bytes.as_ref(), key_id, &layout))
                .collect::<Result<_>>()?;
            for glwe in glwes {
                let half = self.done / m;
                self.trees
                    .par_iter_mut()
                    .for_each(|t| t[half].push(glwe.clone()));
                self.done += 1;
            }
            Ok(())
        };
        crate::runtime::install(pool, run)
    }

    /// The selected buckets of every query, once every bucket was pushed.
    pub fn finish(self, pool: Option<&dyn Runner>) -> Result<Vec<[GlweCiphertextOwned<u64>; 2]>> {
        if self.done != self.layout.buckets() {
            return Err(FheKvError::InvalidArgument(format!(
                "the table has {} buckets, its layout records {}",
                self.done,
                self.layout.buckets()
            )));
        }
        let run = move || {
            self.trees
                .into_par_iter()
                .map(|[left, right]| [left.finish(), right.finish()])
                .collect()
        };
        Ok(crate::runtime::install(pool, run))
    }
}

/// [`BucketSelection`] over rows that arrive in batches; `between(done, total)` runs on
/// the caller's thread after each batch (the extension checks for cancel there).
pub fn select_streamed<B: AsRef<[u8]> + Sync>(
    env: &BucketEnv<'_>,
    queries: &[&HalfSelectors],
    batches: impl Iterator<Item = Result<Vec<B>>>,
    between: BetweenBatches<'_>,
) -> Result<Vec<[GlweCiphertextOwned<u64>; 2]>> {
    let mut selection = BucketSelection::new(env.key_id, env.layout, queries)?;
    for batch in batches {
        selection.push(env.pool, &batch?)?;
        between(selection.done(), env.layout.buckets());
    }
    selection.finish(env.pool)
}

/// The two candidate buckets of one query over bucket GLWEs already in memory (both
/// halves in bucket order, `m` each): the CMux trees of [`BucketSelection`] without the
/// row decoding. For bucket formats that have no stored row format yet (the leveled slots
/// of [`crate::leveled::in_bucket`]), their tests and the bench.
pub fn select_in_memory(
    buckets: &[GlweCiphertextOwned<u64>],
    selectors: &HalfSelectors,
) -> Result<[GlweCiphertextOwned<u64>; 2]> {
    let m = buckets.len() / 2;
    if !buckets.len().is_multiple_of(2) || selectors.iter().any(|half| m > 1 << half.len()) {
        return Err(FheKvError::InvalidArgument(format!(
            "{} buckets for selectors of {} and {} bits",
            buckets.len(),
            selectors[0].len(),
            selectors[1].len()
        )));
    }
    let pick = |half: usize| {
        let mut tree = Tree::new(&selectors[half]);
        for bucket in &buckets[half * m..(half + 1) * m] {
            tree.push(bucket.clone());
        }
        tree.finish()
    };
    let (left, right) = rayon::join(|| pick(0), || pick(1));
    Ok([left, right])
}

/// One block of a selected bucket as a shortint ciphertext: the LWE sample at coefficient
/// `at`, under the big LWE key, with the degree of a 2-bit message (`degree`) and the
/// stored noise level.
fn block_at(glwe: &GlweCiphertextOwned<u64>, at: usize, degree: u64) -> Ciphertext {
    let mut lwe = LweCiphertext::new(
        0u64,
        params::lwe_dimension().to_lwe_size(),
        params::ciphertext_modulus(),
    );
    extract_lwe_sample_from_glwe_ciphertext(glwe, &mut lwe, MonomialDegree(at));
    Ciphertext::new(
        lwe,
        Degree::new(degree),
        NoiseLevel::NOMINAL * STORED_NOISE_LEVEL,
        MessageModulus(crate::params::MESSAGE_MODULUS),
        CarryModulus(crate::params::BLOCK_SPACE / crate::params::MESSAGE_MODULUS),
        AtomicPatternKind::Standard(PBSOrder::KeyswitchBootstrap),
    )
}

/// The `2Z` candidate slots of the two selected buckets, in the order SET fills them
/// ([`BucketLayout::candidate_order`]). Sample extraction only: no bootstrap.
pub fn extract_candidates(
    layout: &BucketLayout,
    selected: &[GlweCiphertextOwned<u64>; 2],
) -> Vec<RowCiphertext> {
    let (k, v) = (layout.key.blocks(), layout.value.blocks());
    layout
        .candidate_order()
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(half, slot)| {
            let glwe = &selected[half];
            let at = layout.slot_offset(slot);
            RowCiphertext {
                vacant: block_at(glwe, at, 1),
                key: (0..k).map(|j| block_at(glwe, at + 1 + j, 3)).collect(),
                value: (0..v).map(|j| block_at(glwe, at + 1 + k + j, 3)).collect(),
            }
        })
        .collect()
}
