//! The key owner's side of leveled equality: the stored key GLWE and the query's chunk
//! GGSWs, both under the PBS's GLWE secret key (see the module doc of [`super`]).

use super::get::LeveledAnswer;
use super::messages::{self, LeveledSetWrite};
use super::repack::{plateau_start, plateau_width};
use super::set_locate::{LeveledSetLocation, LeveledSetTarget};
use super::two_round::{index_bits, LeveledLocation};
use super::wire::{self, LeveledQuery, OwnerGlwe, SeededGgsw, VacantFlag};
use super::{bit, ChunkLayout, RowFormat, RowLayout, DELTA_LOG, NIBBLES_PER_GLWE};
use crate::bucket::params::{self, SELECTOR_BASE_LOG, SELECTOR_LEVELS};
use crate::bucket::wire::{encrypt_seeded_bucket_glwe, encrypt_seeded_selector};
use crate::error::{FheKvError, Result};
use crate::keys::ClientKeys;
use tfhe::core_crypto::commons::math::random::CompressionSeed;
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
        let (key_glwe, values) = match layout.format {
            RowFormat::LookupTables => (
                stored_key_glwe(&self.glwe, layout, key, &[]),
                value_lut_glwes(&self.glwe, value),
            ),
            RowFormat::OneGlwe => (stored_key_glwe(&self.glwe, layout, key, value), Vec::new()),
        };
        let vacant = vacant_flag(&self.glwe, entry.is_none());
        wire::encode_row(self.key_id, layout, &key_glwe, &values, vacant)
    }

    /// Open a leveled GET's answer: the value's little-endian bytes, or `None` when the
    /// key is absent.
    pub fn open_leveled_answer(
        &self,
        layout: RowLayout,
        answer: &LeveledAnswer,
    ) -> Result<Option<Vec<u8>>> {
        if answer.nibbles.len() != layout.value_nibbles() {
            return Err(FheKvError::InvalidArgument(format!(
                "an answer of {} nibbles for a {} value",
                answer.nibbles.len(),
                layout.value
            )));
        }
        if !self.open_leveled_flag(&answer.found)? {
            return Ok(None);
        }
        let nibbles: Vec<u64> = answer
            .nibbles
            .iter()
            .map(|lwe| self.open_leveled_block(lwe))
            .collect();
        Ok(Some(bytes_of_nibbles(&nibbles)))
    }

    /// Open a sum of match bits (a GET's found flag, a DELETE's status): whether the key
    /// was in the table.
    pub fn open_leveled_flag(&self, flag: &LweCiphertextOwned<u64>) -> Result<bool> {
        match self.open_leveled_block(flag) {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(FheKvError::Internal(format!(
                "a leveled match sum decrypted to {other}: the table holds a key twice"
            ))),
        }
    }

    /// Read round 1 of a leveled two-round GET: `Some(slot)` holding the key, or `None`.
    /// (After `None` the caller still runs round 2, on a random slot.)
    pub fn open_leveled_location(&self, location: &LeveledLocation) -> Result<Option<usize>> {
        if !self.open_leveled_flag(&location.found)? {
            return Ok(None);
        }
        self.open_leveled_index(&location.index_bits).map(Some)
    }

    /// Read round 1 of a leveled two-round SET: update the slot that holds the key, else
    /// insert into the first vacant slot, else the table is full.
    pub fn open_leveled_set_location(
        &self,
        location: &LeveledSetLocation,
    ) -> Result<LeveledSetTarget> {
        if let Some(slot) = self.open_leveled_location(&location.key)? {
            return Ok(LeveledSetTarget::Update(slot));
        }
        match self.open_leveled_block(&location.any_vacant) {
            0 => Ok(LeveledSetTarget::Full),
            1 => Ok(LeveledSetTarget::Insert(
                self.open_leveled_index(&location.vacant_bits)?,
            )),
            other => Err(FheKvError::Internal(format!(
                "a leveled vacancy bit decrypted to {other}"
            ))),
        }
    }

    /// A slot index from its encrypted bits, least significant first (each 0 or 1).
    fn open_leveled_index(&self, bits: &[LweCiphertextOwned<u64>]) -> Result<usize> {
        let mut index = 0;
        for (j, bit) in bits.iter().enumerate() {
            match self.open_leveled_block(bit) {
                0 => {}
                1 => index |= 1 << j,
                other => {
                    return Err(FheKvError::Internal(format!(
                        "index bit {j} of a leveled location decrypted to {other}"
                    )))
                }
            }
        }
        Ok(index)
    }

    /// Round 2's query for a table of `slots` slots (a `leveled_fetch_query` envelope):
    /// GGSWs of the bits of `slot`, least significant first, and the table `state` round
    /// 1 answered in.
    pub fn leveled_fetch_query(&self, slot: usize, slots: usize, state: u64) -> Result<Vec<u8>> {
        let bits = self.seeded_index_bits(slot, slots)?;
        messages::encode_fetch_query(self.key_id, slots, bits, state)
    }

    /// Seeded GGSWs of the bits of `slot` in a table of `slots` slots.
    fn seeded_index_bits(&self, slot: usize, slots: usize) -> Result<Vec<SeededGgsw>> {
        if slot >= slots {
            return Err(FheKvError::InvalidArgument(format!(
                "slot {slot} of a table of {slots} slots"
            )));
        }
        let mut seeder = new_seeder();
        Ok((0..index_bits(slots))
            .map(|j| {
                let bit = ((slot >> j) & 1) as u64;
                let (seed, data) = encrypt_seeded_selector(&self.glwe, bit, seeder.as_mut());
                SeededGgsw { seed, data }
            })
            .collect())
    }

    /// Round 2 of a SET (a `leveled_set_write` envelope), after round 1 gave `target` in
    /// a table of `slots` slots: write `key` and `value` (little-endian bytes of the
    /// table's widths) there; `state` is the table state round 1 answered in. A full
    /// table gets the same query with `enable` = 0 (slot 0, nothing written), so the
    /// server cannot tell.
    pub fn leveled_set_write_query(
        &self,
        layout: RowLayout,
        target: LeveledSetTarget,
        slots: usize,
        (key, value): (&[u8], &[u8]),
        state: u64,
    ) -> Result<Vec<u8>> {
        let (slot, enable) = match target {
            LeveledSetTarget::Update(slot) | LeveledSetTarget::Insert(slot) => (slot, 1),
            LeveledSetTarget::Full => (0, 0),
        };
        let index = self.seeded_index_bits(slot, slots)?;
        let mut seeder = new_seeder();
        let (seed, data) = encrypt_seeded_selector(&self.glwe, enable, seeder.as_mut());
        let message = LeveledSetWrite {
            index,
            enable: SeededGgsw { seed, data },
            row: self.leveled_row(layout, Some((key, value)))?,
            state,
        };
        messages::encode_set_write(self.key_id, slots, message)
    }

    /// Open round 2's answer, the fetched slot's value GLWEs: the value's little-endian
    /// bytes. Nibble `j` of a lookup-table GLWE is read in the middle of its plateau,
    /// coefficient `2 j·box + box` (see [`value_lut_glwes`]); of a one-GLWE row, at its
    /// coefficient ([`RowLayout::nibble_positions`]).
    pub fn open_leveled_fetch(
        &self,
        layout: RowLayout,
        glwes: &[GlweCiphertextOwned<u64>],
    ) -> Result<Vec<u8>> {
        if glwes.len() != layout.fetched_glwes() {
            return Err(FheKvError::InvalidArgument(format!(
                "{} fetched GLWEs for a {} value",
                glwes.len(),
                layout.value
            )));
        }
        let n = params::coefficients();
        let positions: Vec<usize> = match layout.format {
            RowFormat::LookupTables => (0..NIBBLES_PER_GLWE)
                .map(|j| plateau_start(j) + plateau_width() / 2)
                .collect(),
            RowFormat::OneGlwe => layout.nibble_positions(),
        };
        let mut nibbles = Vec::with_capacity(layout.value_nibbles());
        for glwe in glwes {
            let mut plain = PlaintextList::new(0u64, PlaintextCount(n));
            decrypt_glwe_ciphertext(&self.glwe, glwe, &mut plain);
            nibbles.extend(positions.iter().map(|&p| decode_block(plain.as_ref()[p])));
        }
        Ok(bytes_of_nibbles(&nibbles[..layout.value_nibbles()]))
    }

    /// A big-LWE-key sample at the block encoding, rounded to its 4-bit message.
    pub(crate) fn open_leveled_block(&self, lwe: &LweCiphertextOwned<u64>) -> u64 {
        decode_block(decrypt_lwe_ciphertext(&self.glwe.as_lwe_secret_key(), lwe).0)
    }

    /// A query key for leveled equality (a `leveled_query_key` envelope).
    pub fn leveled_query_key(&self, layout: ChunkLayout, key_le: &[u8]) -> Result<Vec<u8>> {
        check_width(layout, key_le)?;
        let query = encrypt_query(&self.glwe, layout, key_le);
        wire::encode_query(self.key_id, layout, &query)
    }
}

/// A decrypted plaintext at the block encoding: rounded to the nearest multiple of `Δ`,
/// the padding bit dropped.
pub(crate) fn decode_block(plain: u64) -> u64 {
    (plain.wrapping_add(1 << (DELTA_LOG - 1)) >> DELTA_LOG) & 15
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

/// A fresh seeded encryption of `plain` under the bucket (PBS GLWE) key; every GLWE gets
/// its own seed.
fn encrypt_owner_glwe(
    glwe_key: &GlweSecretKeyOwned<u64>,
    plain: &PlaintextListOwned<u64>,
) -> OwnerGlwe {
    let (seed, glwe) = encrypt_seeded_bucket_glwe(glwe_key, plain);
    OwnerGlwe { seed, glwe }
}

/// The vacant flag at `Δ = 2^59`, a fresh seeded LWE under the big LWE key (the GLWE key
/// seen as an LWE key, the key a sample extraction from the stored key GLWE is under).
fn vacant_flag(glwe_key: &GlweSecretKeyOwned<u64>, vacant: bool) -> VacantFlag {
    let mut seeder = new_seeder();
    let seed = seeder.seed();
    let mut lwe = SeededLweCiphertext::new(
        0u64,
        params::lwe_dimension().to_lwe_size(),
        CompressionSeed::from(seed),
        params::ciphertext_modulus(),
    );
    encrypt_seeded_lwe_ciphertext(
        &glwe_key.as_lwe_secret_key(),
        &mut lwe,
        Plaintext(u64::from(vacant) << DELTA_LOG),
        params::noise_distribution(),
        seeder.as_mut(),
    );
    VacantFlag::seeded(seed.0, &lwe)
}

/// `K(X) = Σ_b k_b X^b + X^B` at `Δ = 2^59`, freshly encrypted; in a one-GLWE row also
/// the nibbles of `value_le` at [`RowLayout::nibble_positions`] (`value_le` is empty
/// otherwise).
pub(crate) fn stored_key_glwe(
    glwe_key: &GlweSecretKeyOwned<u64>,
    layout: RowLayout,
    key_le: &[u8],
    value_le: &[u8],
) -> OwnerGlwe {
    let mut plain = PlaintextList::new(0u64, PlaintextCount(params::coefficients()));
    write_slot_plaintext(plain.as_mut(), layout, key_le, value_le);
    encrypt_owner_glwe(glwe_key, &plain)
}

/// A slot's plaintext at the block encoding, from `slot[0]` on: the key bits, the
/// constant 1 at `B`, and the nibbles of `value_le` at [`RowLayout::nibble_positions`]
/// (none when `value_le` is empty). A one-GLWE row is this at offset 0; a bucket of
/// leveled slots ([`super::in_bucket`]) is this at each slot's start.
pub(crate) fn write_slot_plaintext(
    slot: &mut [u64],
    layout: RowLayout,
    key_le: &[u8],
    value_le: &[u8],
) {
    for (b, p) in slot[..layout.key.bits()].iter_mut().enumerate() {
        *p = bit(key_le, b) << DELTA_LOG;
    }
    slot[layout.key.one_at()] = 1 << DELTA_LOG;
    for (p, nibble) in layout.nibble_positions().into_iter().zip(nibbles(value_le)) {
        slot[p] = nibble << DELTA_LOG;
    }
}

/// Little-endian bytes from 4-bit pieces, least significant first (two per byte).
pub(crate) fn bytes_of_nibbles(nibbles: &[u64]) -> Vec<u8> {
    nibbles
        .chunks(2)
        .map(|pair| (pair[0] | pair[1] << 4) as u8)
        .collect()
}

/// The 4-bit pieces of a little-endian value, least significant first.
fn nibbles(value_le: &[u8]) -> impl Iterator<Item = u64> + '_ {
    value_le
        .iter()
        .flat_map(|&b| [u64::from(b & 15), u64::from(b >> 4)])
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
) -> Vec<OwnerGlwe> {
    let n = params::coefficients();
    let nibbles: Vec<u64> = nibbles(value_le).collect();
    nibbles
        .chunks(NIBBLES_PER_GLWE)
        .map(|group| {
            let mut plain = PlaintextList::new(0u64, PlaintextCount(n));
            for (j, &v) in group.iter().enumerate() {
                let start = plateau_start(j);
                plain.as_mut()[start..start + plateau_width()].fill(v << DELTA_LOG);
            }
            encrypt_owner_glwe(glwe_key, &plain)
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
            SeededGgsw { seed, data }
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
