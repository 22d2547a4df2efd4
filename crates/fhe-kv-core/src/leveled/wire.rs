//! Wire formats of leveled equality and their decoders. A query arrives through SQL and a
//! stored key from an ordinary table, so both are decoded like any untrusted input:
//! envelope header (kind, key_id, key width), a size limit, then
//! `safe_deserialize_conformant` against the exact shape the key width needs.
//!
//! | kind | payload | shape checked |
//! |---|---|---|
//! | `leveled_query_key` | [`LeveledQuery`]: one seeded GGSW per chunk | chunk count, body count of every GGSW |
//! | `leveled_row` | [`LeveledRow`]: the key GLWE and the value's lookup-table GLWEs, seeded, bodies rounded to 32 and 16 bits | value width, GLWE count, body counts |

use super::{ChunkLayout, RowLayout};
use crate::bucket::params;
use crate::bucket::wire::{selector_from_seeded, Selector};
use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limits (bytes) of the payloads.
pub mod limits {
    /// A query: at most 18 chunks (u256 keys) of one 96 KiB seeded GGSW each.
    pub const QUERY: u64 = 2 << 20;
    /// A stored row: the key GLWE (at most 257 bodies of 4 bytes), at most 8 value GLWEs
    /// (u256 values: 64 nibbles) of 2048 bodies of 2 bytes, 4 KiB each, a vacant flag of
    /// at most 2049 coefficients of 3 bytes, plus seeds.
    pub const ROW: u64 = 48 << 10;
}

/// One chunk's GGSW: the body polynomials of a seeded GGSW and the seed of its masks (a
/// plain `u128`, so no generator state arrives from outside).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(ChunkGgswVersions)]
pub struct ChunkGgsw {
    pub(crate) seed: u128,
    pub(crate) data: Vec<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum ChunkGgswVersions {
    V0(ChunkGgsw),
}

/// A query key: one GGSW per chunk, in chunk order.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledQueryVersions)]
pub struct LeveledQuery {
    pub(crate) chunks: Vec<ChunkGgsw>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledQueryVersions {
    V0(LeveledQuery),
}

impl tfhe::named::Named for LeveledQuery {
    const NAME: &'static str = "fhe_kv::LeveledQuery";
}

impl ParameterSetConformant for LeveledQuery {
    type ParameterSet = ChunkLayout;

    fn is_conformant(&self, layout: &ChunkLayout) -> bool {
        self.chunks.len() == layout.chunks()
            && self
                .chunks
                .iter()
                .all(|c| c.data.len() == params::selector_len())
    }
}

/// Bits kept per body coefficient of a stored key GLWE. The key's noise is multiplied by
/// `‖M_c‖² ≤ 240` in the external product, so its rounding error must stay far below a
/// PBS output's: 32 bits (`crate::noise::LeveledEqualityNoise`).
pub const KEY_BODY_BITS: u32 = 32;

/// Bits kept per body coefficient of a stored value GLWE. Its rounding error reaches an
/// answer once per slot, next to a PBS output's variance that is 2^6 larger at 16 bits
/// (`crate::noise::LeveledGetNoise`).
pub const VALUE_BODY_BITS: u32 = 16;

/// A seeded GLWE as a row stores it: the seed its mask is regenerated from, and the first
/// bodies' coefficients rounded to their top `bits` bits (`u32` holds up to 32). Only the
/// key owner writes such rows: a seeded mask comes from the encryption, never from a
/// server's computation.
///
/// Rounding the body alone adds a uniform error of variance `2^{-2·bits}/12` (torus
/// scale) and nothing else: unlike a modulus switch of the whole GLWE, no rounded mask
/// coefficient is multiplied by the secret key.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(SeededBodiesVersions)]
pub struct SeededBodies {
    pub(crate) seed: u128,
    pub(crate) bodies: Vec<u32>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum SeededBodiesVersions {
    V0(SeededBodies),
}

/// [`SeededBodies`] at 16 bits per coefficient (the value GLWEs, stored in full).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(SeededBodies16Versions)]
pub struct SeededBodies16 {
    pub(crate) seed: u128,
    pub(crate) bodies: Vec<u16>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum SeededBodies16Versions {
    V0(SeededBodies16),
}

/// Bits kept per coefficient of a stored vacant flag. A flag the server rewrote is a PBS
/// output stored whole (mask and body), so the rounding of its 2048 mask coefficients
/// counts (`crate::noise::LeveledEqualityNoise::flag`): at 24 bits it is 2^-12 of the PBS
/// output's variance.
pub const FLAG_BITS: u32 = 24;

/// The vacant flag (1: no entry), an LWE sample under the big LWE key, its coefficients
/// rounded to [`FLAG_BITS`] and stored as 3 little-endian bytes each.
///
/// * `seed: Some(_)`: written by the key owner, a seeded LWE: the body alone (3 bytes).
/// * `seed: None`: rewritten by a private DELETE: all `n + 1` coefficients (6,147 bytes).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(VacantFlagVersions)]
pub struct VacantFlag {
    pub(crate) seed: Option<u128>,
    pub(crate) packed: Vec<u8>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum VacantFlagVersions {
    V0(VacantFlag),
}

const FLAG_BYTES: usize = FLAG_BITS as usize / 8;

impl VacantFlag {
    fn pack(coefficients: &[u64]) -> Vec<u8> {
        coefficients
            .iter()
            .flat_map(|&c| {
                round_to(c, FLAG_BITS)
                    .to_le_bytes()
                    .into_iter()
                    .take(FLAG_BYTES)
            })
            .collect()
    }

    fn unpack(&self) -> Vec<u64> {
        self.packed
            .chunks_exact(FLAG_BYTES)
            .map(|b| {
                let mut le = [0u8; 8];
                le[..FLAG_BYTES].copy_from_slice(b);
                u64::from_le_bytes(le) << (64 - FLAG_BITS)
            })
            .collect()
    }

    /// The key owner's flag: a seeded LWE, its body only.
    pub(crate) fn seeded(seed: u128, lwe: &SeededLweCiphertext<u64>) -> VacantFlag {
        VacantFlag {
            seed: Some(seed),
            packed: Self::pack(&[*lwe.get_body().data]),
        }
    }

    /// A flag the server computed: the whole LWE.
    pub(crate) fn computed(lwe: &LweCiphertextOwned<u64>) -> VacantFlag {
        VacantFlag {
            seed: None,
            packed: Self::pack(lwe.as_ref()),
        }
    }

    fn is_conformant(&self) -> bool {
        let coefficients = match self.seed {
            Some(_) => 1,
            None => params::lwe_dimension().to_lwe_size().0,
        };
        self.packed.len() == coefficients * FLAG_BYTES
    }

    fn expand(&self) -> LweCiphertextOwned<u64> {
        let coefficients = self.unpack();
        match self.seed {
            Some(seed) => SeededLweCiphertext::from_scalar(
                coefficients[0],
                params::lwe_dimension().to_lwe_size(),
                CompressionSeed::from(Seed(seed)),
                params::ciphertext_modulus(),
            )
            .decompress_into_lwe_ciphertext(),
            None => LweCiphertext::from_container(coefficients, params::ciphertext_modulus()),
        }
    }
}

/// A stored slot: the key GLWE (`K(X)`, bodies of the `B + 1` used coefficients at
/// [`KEY_BODY_BITS`]), the value as lookup-table GLWEs (all `N` bodies at
/// [`VALUE_BODY_BITS`]), every mask a seed, and the [`VacantFlag`]. The key owner writes
/// all of it; a private DELETE rewrites the flag alone.
///
/// (The format is not reachable from SQL yet, so nothing stored needs the earlier
/// modulus-switched rows of 41,622 bytes; this is the only version.)
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledRowVersions)]
pub struct LeveledRow {
    pub(crate) value_bits: u16,
    pub(crate) key: SeededBodies,
    pub(crate) values: Vec<SeededBodies16>,
    pub(crate) vacant: VacantFlag,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledRowVersions {
    V0(LeveledRow),
}

impl tfhe::named::Named for LeveledRow {
    const NAME: &'static str = "fhe_kv::LeveledRow";
}

impl ParameterSetConformant for LeveledRow {
    type ParameterSet = RowLayout;

    fn is_conformant(&self, layout: &RowLayout) -> bool {
        u32::from(self.value_bits) == layout.value.bits()
            && self.key.bodies.len() == layout.key.used_coefficients()
            && self.values.len() == layout.value_glwes()
            && self
                .values
                .iter()
                .all(|g| g.bodies.len() == params::coefficients())
            && self.vacant.is_conformant()
    }
}

/// The top `bits` bits of `x`, rounded to nearest.
fn round_to(x: u64, bits: u32) -> u64 {
    x.wrapping_add(1 << (63 - bits)) >> (64 - bits)
}

/// The first `bodies` body coefficients of `glwe`, rounded to `bits` bits each.
fn rounded_bodies(glwe: &SeededGlweCiphertextOwned<u64>, bodies: usize, bits: u32) -> Vec<u64> {
    glwe.get_body().as_ref()[..bodies]
        .iter()
        .map(|&b| round_to(b, bits))
        .collect()
}

/// A stored GLWE at full width: the mask regenerated from `seed`, the given bodies lifted
/// back to 64 bits, the remaining bodies 0 (those coefficients decrypt to noise; the
/// kernels never read them).
fn expand(seed: u128, bodies: impl Iterator<Item = u64>, bits: u32) -> GlweCiphertextOwned<u64> {
    let mut container = vec![0u64; params::coefficients()];
    for (c, b) in container.iter_mut().zip(bodies) {
        *c = b << (64 - bits);
    }
    SeededGlweCiphertext::from_container(
        container,
        params::glwe_size(),
        CompressionSeed::from(Seed(seed)),
        params::ciphertext_modulus(),
    )
    .decompress_into_glwe_ciphertext()
}

/// A decoded stored slot, at full precision.
pub struct StoredSlot {
    pub key: GlweCiphertextOwned<u64>,
    pub values: Vec<GlweCiphertextOwned<u64>>,
    pub vacant: LweCiphertextOwned<u64>,
}

fn serialize<T: Serialize + Versionize + tfhe::named::Named>(
    value: &T,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    safe_serialize(value, &mut out, limit)
        .map_err(|e| FheKvError::Internal(format!("serializing {what}: {e}")))?;
    Ok(out)
}

fn width_bits(layout: ChunkLayout) -> u16 {
    layout.width.bits() as u16
}

pub(crate) fn encode_query(
    key_id: KeyId,
    layout: ChunkLayout,
    query: &LeveledQuery,
) -> Result<Vec<u8>> {
    let payload = serialize(query, limits::QUERY, "a leveled query key")?;
    Ok(Envelope::encode(
        Kind::LeveledQueryKey,
        width_bits(layout),
        key_id,
        &payload,
    ))
}

/// A GLWE the key owner encrypted with a mask from `seed`.
pub(crate) struct OwnerGlwe {
    pub(crate) seed: u128,
    pub(crate) glwe: SeededGlweCiphertextOwned<u64>,
}

pub(crate) fn encode_row(
    key_id: KeyId,
    layout: RowLayout,
    key: &OwnerGlwe,
    values: &[OwnerGlwe],
    vacant: VacantFlag,
) -> Result<Vec<u8>> {
    let row = LeveledRow {
        value_bits: layout.value.bits() as u16,
        key: SeededBodies {
            seed: key.seed,
            bodies: rounded_bodies(&key.glwe, layout.key.used_coefficients(), KEY_BODY_BITS)
                .into_iter()
                .map(|b| b as u32)
                .collect(),
        },
        values: values
            .iter()
            .map(|g| SeededBodies16 {
                seed: g.seed,
                bodies: rounded_bodies(&g.glwe, params::coefficients(), VALUE_BODY_BITS)
                    .into_iter()
                    .map(|b| b as u16)
                    .collect(),
            })
            .collect(),
        vacant,
    };
    encode_stored_row(key_id, layout, &row)
}

/// The `leveled_row` envelope of `row`.
pub(crate) fn encode_stored_row(
    key_id: KeyId,
    layout: RowLayout,
    row: &LeveledRow,
) -> Result<Vec<u8>> {
    let payload = serialize(row, limits::ROW, "a leveled row")?;
    Ok(Envelope::encode(
        Kind::LeveledRow,
        width_bits(layout.key),
        key_id,
        &payload,
    ))
}

fn check_header<'a>(
    bytes: &'a [u8],
    what: &'static str,
    kind: Kind,
    key_id: KeyId,
    layout: ChunkLayout,
    limit: u64,
) -> Result<Envelope<'a>> {
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, kind, Some(key_id))?;
    env.expect_bits(what, layout.width.bits())?;
    if env.payload.len() as u64 > limit {
        return Err(FheKvError::TooLarge {
            what,
            size: env.payload.len(),
            limit,
        });
    }
    Ok(env)
}

/// Decode a leveled query key for keys of `layout`'s width into its chunk GGSWs, expanded
/// and in the Fourier domain, ready for external products.
pub fn decode_query(bytes: &[u8], key_id: KeyId, layout: ChunkLayout) -> Result<Vec<Selector>> {
    let what = "leveled query key";
    let env = check_header(
        bytes,
        what,
        Kind::LeveledQueryKey,
        key_id,
        layout,
        limits::QUERY,
    )?;
    let query: LeveledQuery = safe_deserialize_conformant(env.payload, limits::QUERY, &layout)
        .map_err(|detail| FheKvError::BadPayload {
            what,
            detail: format!(
                "{detail} (a {} query key carries {} GGSWs of {} coefficients)",
                layout.width,
                layout.chunks(),
                params::selector_len()
            ),
        })?;
    Ok(query
        .chunks
        .into_iter()
        .map(|c| selector_from_seeded(c.seed, c.data))
        .collect())
}

/// Decode a stored slot of a table of `layout` into its GLWEs at full precision.
pub fn decode_row(bytes: &[u8], key_id: KeyId, layout: RowLayout) -> Result<StoredSlot> {
    Ok(decode_stored_row(bytes, key_id, layout)?.expand())
}

/// Decode a stored slot, still in its stored form (seeds and rounded bodies).
pub(crate) fn decode_stored_row(
    bytes: &[u8],
    key_id: KeyId,
    layout: RowLayout,
) -> Result<LeveledRow> {
    let what = "leveled row";
    let env = check_header(
        bytes,
        what,
        Kind::LeveledRow,
        key_id,
        layout.key,
        limits::ROW,
    )?;
    safe_deserialize_conformant(env.payload, limits::ROW, &layout).map_err(|detail| {
        FheKvError::BadPayload {
            what,
            detail: format!(
                "{detail} (a row of a {}/{} table holds a key GLWE with {} bodies, {} value \
                 GLWEs and a vacant flag)",
                layout.key.width,
                layout.value,
                layout.key.used_coefficients(),
                layout.value_glwes()
            ),
        }
    })
}

impl LeveledRow {
    /// The slot at full precision: masks regenerated from their seeds, bodies lifted.
    pub(crate) fn expand(&self) -> StoredSlot {
        StoredSlot {
            key: expand(
                self.key.seed,
                self.key.bodies.iter().map(|&b| u64::from(b)),
                KEY_BODY_BITS,
            ),
            values: self
                .values
                .iter()
                .map(|g| {
                    expand(
                        g.seed,
                        g.bodies.iter().map(|&b| u64::from(b)),
                        VALUE_BODY_BITS,
                    )
                })
                .collect(),
            vacant: self.vacant.expand(),
        }
    }
}
