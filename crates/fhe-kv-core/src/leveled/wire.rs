//! Wire formats of leveled equality and their decoders. A query arrives through SQL and a
//! stored key from an ordinary table, so both are decoded like any untrusted input:
//! envelope header (kind, key_id, key width), a size limit, then
//! `safe_deserialize_conformant` against the exact shape the key width needs.
//!
//! | kind | payload | shape checked |
//! |---|---|---|
//! | `leveled_query_key` | [`LeveledQuery`]: one seeded GGSW per chunk | chunk count, body count of every GGSW |
//! | `leveled_key_row` | [`LeveledKeyRow`]: one GLWE at 32 bits per coefficient | GLWE dimensions, log modulus, body count |

use super::ChunkLayout;
use crate::bucket::params::{self, SELECTOR_BASE_LOG, SELECTOR_LEVELS, STORAGE_LOG_MODULUS};
use crate::bucket::wire::Selector;
use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limits (bytes) of the payloads.
pub mod limits {
    /// A query: at most 18 chunks (u256 keys) of one 96 KiB seeded GGSW each.
    pub const QUERY: u64 = 2 << 20;
    /// A stored key: 2048 mask coefficients and at most 257 bodies at 4 bytes each.
    pub const KEY_ROW: u64 = 12 << 10;
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

/// A stored key: its GLWE modulus-switched to 32 bits, with the bodies of the used
/// coefficients only (`B + 1`).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledKeyRowVersions)]
pub struct LeveledKeyRow {
    pub(crate) glwe: CompressedModulusSwitchedGlweCiphertext<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledKeyRowVersions {
    V0(LeveledKeyRow),
}

impl tfhe::named::Named for LeveledKeyRow {
    const NAME: &'static str = "fhe_kv::LeveledKeyRow";
}

impl ParameterSetConformant for LeveledKeyRow {
    type ParameterSet = ChunkLayout;

    fn is_conformant(&self, layout: &ChunkLayout) -> bool {
        self.glwe.is_conformant(&params::glwe_conformance())
            && self.glwe.bodies_count().0 == layout.used_coefficients()
            && self.glwe.packed_integers().log_modulus().0 == STORAGE_LOG_MODULUS
    }
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

pub(crate) fn encode_key_row(
    key_id: KeyId,
    layout: ChunkLayout,
    glwe: &GlweCiphertextOwned<u64>,
) -> Result<Vec<u8>> {
    let row = LeveledKeyRow {
        glwe: CompressedModulusSwitchedGlweCiphertext::compress(
            glwe,
            CiphertextModulusLog(STORAGE_LOG_MODULUS),
            LweCiphertextCount(layout.used_coefficients()),
        ),
    };
    let payload = serialize(&row, limits::KEY_ROW, "a leveled key row")?;
    Ok(Envelope::encode(
        Kind::LeveledKeyRow,
        width_bits(layout),
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
    Ok(query.chunks.into_iter().map(to_fourier).collect())
}

/// Decode a stored key of `layout`'s width into its GLWE at full precision.
pub fn decode_key_row(
    bytes: &[u8],
    key_id: KeyId,
    layout: ChunkLayout,
) -> Result<GlweCiphertextOwned<u64>> {
    let what = "leveled key row";
    let env = check_header(
        bytes,
        what,
        Kind::LeveledKeyRow,
        key_id,
        layout,
        limits::KEY_ROW,
    )?;
    let row: LeveledKeyRow = safe_deserialize_conformant(env.payload, limits::KEY_ROW, &layout)
        .map_err(|detail| FheKvError::BadPayload { what, detail })?;
    Ok(row.glwe.extract())
}

fn to_fourier(chunk: ChunkGgsw) -> Selector {
    let seeded = SeededGgswCiphertext::from_container(
        chunk.data,
        params::glwe_size(),
        params::polynomial_size(),
        DecompositionBaseLog(SELECTOR_BASE_LOG),
        CompressionSeed::from(Seed(chunk.seed)),
        params::ciphertext_modulus(),
    );
    let ggsw = seeded.decompress_into_ggsw_ciphertext();
    let mut fourier = Selector::new(
        params::glwe_size(),
        params::polynomial_size(),
        DecompositionBaseLog(SELECTOR_BASE_LOG),
        DecompositionLevelCount(SELECTOR_LEVELS),
    );
    convert_standard_ggsw_ciphertext_to_fourier(&ggsw, &mut fourier);
    fourier
}
