//! The key owner's side of leveled equality: the stored key GLWE and the query's chunk
//! GGSWs, both under the PBS's GLWE secret key (see the module doc of [`super`]).

use super::get::LeveledAnswer;
use super::wire::{self, ChunkGgsw, LeveledQuery};
use super::{bit, ChunkLayout, RowLayout, DELTA_LOG, NIBBLES_PER_GLWE};
use crate::bucket::client::encrypt_bucket_glwe;
use crate::bucket::params::{self, SELECTOR_BASE_LOG, SELECTOR_LEVELS};
use crate::bucket::wire::encrypt_seeded_selector;
use crate::error::{FheKvError, Result};
use crate::keys::ClientKeys;
use tfhe::core_crypto::prelude::*;

impl ClientKeys {
    /// A stored slot of the leveled format (a `leveled_row` envelope): `Some((key, value))`
    /// as little-endian bytes of the table's widths, or `None` for a vacant slot.
    pub fn leveled_row(&self, layout: RowLayout, entry: Option<(&[u8], &[u8])>) -> Result<Vec<u8>> {
        let zero_key = vec![0u8; layout.key.width.bytes()];
        let zero_value = vec![0u8; layout.value.bytes()];
        let (key, value) = entry.unwrap_or((&zero_key, &zero_value));
        check_width(layout.key, key)?;
        if value.len() != layout.value.bytes() {
            return Err(FheKvError::InvalidArgument(format!(
                "a value of {} bytes for a {} value column",
                value.len(),
                layout.value
            )));
        }
        let key_glwe = stored_key_glwe(&self.glwe, layout.key, key, entry.is_none());
        let values = value_lut_glwes(&self.glwe, value);
        wire::encode_row(self.key_id, layout, &key_glwe, &values)
    }

    /// Open a leveled GET's answer: the value's little-endian bytes, or `None` when the
    /// key is absent.
    pub fn open_leveled_answer(
        &self,
        layout: RowLayout,
        answer: &LeveledAnswer,
    ) -> Result<Option<Vec<u8>>> {
        let lwe_key = self.glwe.as_lwe_secret_key();
        let decode = |lwe: &LweCiphertextOwned<u64>| {
            let plain = decrypt_lwe_ciphertext(&lwe_key, lwe).0;
            // round to the nearest multiple of Δ, drop the padding bit
            (plain.wrapping_add(1 << (DELTA_LOG - 1)) >> DELTA_LOG) & 15
        };
        if answer.nibbles.len() != layout.value_nibbles() {
            return Err(FheKvError::InvalidArgument(format!(
                "an answer of {} nibbles for a {} value",
                answer.nibbles.len(),
                layout.value
            )));
        }
        match decode(&answer.found) {
            0 => Ok(None),
            1 => Ok(Some(
                answer
                    .nibbles
                    .chunks(2)
                    .map(|pair| (decode(&pair[0]) | decode(&pair[1]) << 4) as u8)
                    .collect(),
            )),
            other => Err(FheKvError::Internal(format!(
                "a leveled answer's found flag decrypted to {other}: the table holds a key twice"
            ))),
        }
    }

    /// A query key for leveled equality (a `leveled_query_key` envelope).
    pub fn leveled_query_key(&self, layout: ChunkLayout, key_le: &[u8]) -> Result<Vec<u8>> {
        check_width(layout, key_le)?;
        let query = encrypt_query(&self.glwe, layout, key_le);
        wire::encode_query(self.key_id, layout, &query)
    }
}

fn check_width(layout: ChunkLayout, key_le: &[u8]) -> Result<()> {
    if key_le.len() != layout.width.bytes() {
        return Err(FheKvError::InvalidArgument(format!(
            "a key of {} bytes for a {} key column",
            key_le.len(),
            layout.width
        )));
    }
    Ok(())
}

/// `K(X) = Σ_b k_b X^b + X^B + vacant · X^{B+1}` at `Δ = 2^59`, freshly encrypted.
pub(crate) fn stored_key_glwe(
    glwe_key: &GlweSecretKeyOwned<u64>,
    layout: ChunkLayout,
    key_le: &[u8],
    vacant: bool,
) -> GlweCiphertextOwned<u64> {
    let mut plain = PlaintextList::new(0u64, PlaintextCount(params::coefficients()));
    for (b, p) in plain.as_mut()[..layout.bits()].iter_mut().enumerate() {
        *p = bit(key_le, b) << DELTA_LOG;
    }
    plain.as_mut()[layout.one_at()] = 1 << DELTA_LOG;
    plain.as_mut()[layout.vacant_at()] = u64::from(vacant) << DELTA_LOG;
    encrypt_bucket_glwe(glwe_key, &plain)
}

/// The value as lookup-table GLWEs: nibble `j` of a GLWE is function `j` of a many-LUT
/// over a match bit, `m ↦ m · v_j`, in TFHE-rs' accumulator layout
/// (`fill_many_lut_accumulator` with input degree 1): boxes of `N/16` coefficients, two
/// per function, `f(0) = 0` in the first and `f(1) = v_j` in the second, the whole table
/// rotated left by half a box. So `v_j · Δ` fills coefficients
/// `[2 j·box + box/2, 2 j·box + 3 box/2)` and every other coefficient is 0.
pub(crate) fn value_lut_glwes(
    glwe_key: &GlweSecretKeyOwned<u64>,
    value_le: &[u8],
) -> Vec<GlweCiphertextOwned<u64>> {
    let n = params::coefficients();
    let block = n / crate::params::BLOCK_SPACE as usize;
    let nibbles: Vec<u64> = value_le
        .iter()
        .flat_map(|&b| [u64::from(b & 15), u64::from(b >> 4)])
        .collect();
    nibbles
        .chunks(NIBBLES_PER_GLWE)
        .map(|group| {
            let mut plain = PlaintextList::new(0u64, PlaintextCount(n));
            for (j, &v) in group.iter().enumerate() {
                let start = 2 * j * block + block / 2;
                plain.as_mut()[start..start + block].fill(v << DELTA_LOG);
            }
            encrypt_bucket_glwe(glwe_key, &plain)
        })
        .collect()
}

/// The query polynomial of chunk `c`, `M_c(X) = Σ_{b ∈ c} (1 − 2 q_b) X^{−b} + (Σ q_b) X^{−B}`,
/// as coefficients mod `X^N + 1` (`X^{−t} = −X^{N−t}` for `t > 0`) and 2^64.
pub(crate) fn query_polynomial(layout: ChunkLayout, key_le: &[u8], c: usize) -> Vec<u64> {
    let n = params::coefficients();
    let mut m = vec![0u64; n];
    let mut put = |t: usize, value: i64| {
        if t == 0 {
            m[0] = m[0].wrapping_add(value as u64);
        } else {
            m[n - t] = m[n - t].wrapping_sub(value as u64);
        }
    };
    let mut ones = 0i64;
    for b in layout.chunk(c) {
        let q = bit(key_le, b) as i64;
        put(b, 1 - 2 * q);
        ones += q;
    }
    put(layout.one_at(), ones);
    m
}

/// One seeded GGSW per chunk.
///
/// TFHE-rs encrypts constants only, so the polynomial message is added to a GGSW of 0:
/// at decomposition level `l` (factor `g_l = 2^{64 − l·β}`), row `r < k` of an encrypted
/// constant `m` holds the plaintext `−s_r · m · g_l` and the last row `m · g_l`
/// (`encrypt_constant_ggsw_level_matrix_row`). Adding `−g_l · s_r(X) · M(X)` and
/// `g_l · M(X)` to those rows' bodies gives exactly the GGSW of the polynomial `M(X)`,
/// with the noise of the GGSW of 0. A seeded GGSW stores only the bodies, so the masks
/// (regenerated from the seed) are untouched.
pub(crate) fn encrypt_query(
    glwe_key: &GlweSecretKeyOwned<u64>,
    layout: ChunkLayout,
    key_le: &[u8],
) -> LeveledQuery {
    let mut seeder = new_seeder();
    let chunks = (0..layout.chunks())
        .map(|c| {
            let (seed, mut data) = encrypt_seeded_selector(glwe_key, 0, seeder.as_mut());
            let m = query_polynomial(layout, key_le, c);
            add_polynomial_message(glwe_key, &mut data, &m);
            ChunkGgsw { seed, data }
        })
        .collect();
    LeveledQuery { chunks }
}

/// Add the plaintext of a GGSW of the polynomial `m` to the bodies of a seeded GGSW of 0
/// (layout: level matrices from the last decomposition level to the first, each `k + 1`
/// bodies of `N` coefficients).
fn add_polynomial_message(glwe_key: &GlweSecretKeyOwned<u64>, bodies: &mut [u64], m: &[u64]) {
    let n = params::coefficients();
    let rows = params::glwe_size().0;
    let keys = glwe_key.as_polynomial_list();
    // The non-zero coefficients of m (at most CHUNK_BITS + 1): the products are sparse.
    let terms: Vec<(usize, u64)> = m
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != 0)
        .map(|(t, &c)| (t, c))
        .collect();
    for (index, matrix) in bodies.chunks_mut(rows * n).enumerate() {
        let level = SELECTOR_LEVELS - index;
        let g_log = 64 - level * SELECTOR_BASE_LOG;
        for (r, body) in matrix.chunks_mut(n).enumerate() {
            if r + 1 < rows {
                // body −= g · s_r(X) · M(X)  (mod X^N + 1)
                let s = keys.get(r);
                for &(t, c) in &terms {
                    let gc = c.wrapping_shl(g_log as u32);
                    for (j, &sj) in s.as_ref().iter().enumerate() {
                        let p = sj.wrapping_mul(gc);
                        let at = j + t;
                        if at < n {
                            body[at] = body[at].wrapping_sub(p);
                        } else {
                            body[at - n] = body[at - n].wrapping_add(p);
                        }
                    }
                }
            } else {
                // body += g · M(X)
                for &(t, c) in &terms {
                    body[t] = body[t].wrapping_add(c.wrapping_shl(g_log as u32));
                }
            }
        }
    }
}
