//! Two-round GET, round 2: select one slot's stored GLWEs with a CMux tree whose
//! selectors are the client's GGSW-encrypted index bits. No bootstrap: one external
//! product per internal tree node (microseconds each), on the rows as they are stored.

use super::{BetweenBatches, RowEnv};
use crate::error::{FheKvError, Result};
use crate::row::packed_glwes;
use crate::two_round::{FetchResult, Selector, FETCH_RESULT_LOG_MODULUS};
use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;

/// One tree node: a row's GLWEs (one per `lwe_per_glwe` blocks), at the full modulus.
type Node = Vec<GlweCiphertextOwned<u64>>;

/// Select slot `Σ b_j 2^j` of the table, where `selectors[j]` encrypts `b_j`.
///
/// Rows arrive in slot order and are folded into a binary counter of partial subtrees
/// (`pending[j]` holds the left child at level `j`), so memory holds one batch plus
/// ⌈log2 capacity⌉ nodes. Missing leaves up to `2^bits` are zero GLWEs: the client's
/// index is below the capacity, so they are never selected.
///
/// Noise: a CMux returns the selected input's own noise plus one external product's
/// error (`noise::FetchNoise`); a stored row's sample is read by the key owner's GLWE
/// decryption exactly as `open_row` reads it, with ⌈log2 capacity⌉ such terms added.
pub fn oblivious_fetch_streamed<B: AsRef<[u8]> + Sync>(
    env: &RowEnv<'_>,
    selectors: &[Selector],
    total: usize,
    batches: impl Iterator<Item = Result<Vec<B>>>,
    between: BetweenBatches<'_>,
) -> Result<FetchResult> {
    let bits = selectors.len();
    if bits == 0 || total > 1usize << bits {
        return Err(FheKvError::InvalidArgument(format!(
            "{bits} selector bits cannot address {total} slots"
        )));
    }
    let mut pending: Vec<Option<Node>> = vec![None; bits + 1];
    let mut bodies: Option<Vec<usize>> = None;
    let mut done = 0;
    for batch in batches {
        let batch = batch?;
        let leaves: Vec<(Node, Vec<usize>)> = env.install(|| {
            batch
                .par_iter()
                .map(|bytes| {
                    let stored = env.decode(bytes.as_ref())?;
                    let glwes = packed_glwes(&stored)?;
                    let counts = glwes.iter().map(|g| g.bodies_count().0).collect();
                    Ok((glwes.iter().map(|g| g.extract()).collect(), counts))
                })
                .collect::<Result<_>>()
        })?;
        for (leaf, counts) in leaves {
            if done >= 1usize << bits {
                return Err(FheKvError::InvalidArgument(format!(
                    "the table has more slots than {bits} selector bits address"
                )));
            }
            // Every row of a table has the same shape (decode_row checks the block count).
            bodies.get_or_insert(counts);
            env.install(|| push_leaf(&mut pending, leaf, selectors));
            done += 1;
        }
        between(done, total);
    }
    let bodies =
        bodies.ok_or_else(|| FheKvError::InvalidArgument("the table has no slots".into()))?;
    let zero: Node = pending
        .iter()
        .flatten()
        .next()
        .expect("at least one leaf was pushed")
        .iter()
        .map(|g| {
            GlweCiphertext::new(
                0u64,
                g.glwe_size(),
                g.polynomial_size(),
                g.ciphertext_modulus(),
            )
        })
        .collect();
    env.install(|| {
        for _ in done..1usize << bits {
            push_leaf(&mut pending, zero.clone(), selectors);
        }
    });
    let root = pending[bits].take().expect("2^bits leaves make one root");
    Ok(FetchResult {
        glwes: root
            .iter()
            .zip(bodies)
            .map(|(glwe, count)| {
                crate::rounding::compress_glwe(glwe, FETCH_RESULT_LOG_MODULUS, count)
            })
            .collect(),
    })
}

/// Add the next leaf (in slot order) to the binary counter of subtrees.
fn push_leaf(pending: &mut [Option<Node>], leaf: Node, selectors: &[Selector]) {
    let mut node = leaf;
    let mut level = 0;
    while let Some(left) = pending[level].take() {
        node = cmux_node(left, node, &selectors[level]);
        level += 1;
    }
    pending[level] = Some(node);
}

/// `b ? right : left` for every GLWE of the node: `left + b·(right − left)`.
fn cmux_node(left: Node, right: Node, selector: &Selector) -> Node {
    left.into_par_iter()
        .zip(right)
        .map(|(mut l, mut r)| {
            crate::runtime::checkpoint();
            cmux_assign(&mut l, &mut r, selector);
            l
        })
        .collect()
}
