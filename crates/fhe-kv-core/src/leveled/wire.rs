//! Wire formats of leveled equality and their decoders. A query arrives through SQL and a
//! stored key from an ordinary table, so both are decoded like any untrusted input:
//! envelope header (kind, key_id, key width), a size limit, then
//! `safe_deserialize_conformant` against the exact shape the key width needs.
//!
//! | kind | payload | shape checked |
//! |---|---|---|
//! | `leveled_query_key` | [`LeveledQuery`]: one seeded GGSW per chunk | chunk count, body count of every GGSW |
//! | `leveled_row` | [`LeveledRow`]: the key GLWE and the value's lookup-table GLWEs at 32 bits per coefficient | value width, GLWE count, dimensions, log modulus, body counts |

use super::{ChunkLayout, RowLayout};
use crate::bucket::params::{self, STORAGE_LOG_MODULUS};
use crate::bucket::wire::{selector_from_seeded, Selector};
use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limits (bytes) of the payloads.
pub mod limits {
    /// A query: at most 18 chunks (u256 keys) of one 96 KiB seeded GGSW each.
    pub const QUERY: u64 = 2 << 20;
    /// A stored row: the key GLWE (2048 mask coefficients, at most 258 bodies) and at most
    /// 8 value GLWEs (u256 values: 64 nibbles), 16 KiB each, at 4 bytes per coefficient.
    pub const ROW: u64 = 160 << 10;
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

/// A stored slot: the key GLWE (`K(X)` and the vacant flag, bodies of the `B + 2` used
/// coefficients only) and the value as lookup-table GLWEs (all `N` bodies), each
/// modulus-switched to 32 bits.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledRowVersions)]
pub struct LeveledRow {
    pub(crate) value_bits: u16,
    pub(crate) key: CompressedModulusSwitchedGlweCiphertext<u64>,
    pub(crate) values: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledRowVersions {
    V0(LeveledRow),
}

impl tfhe::named::Named for LeveledRow {
    const NAME: &'static str = "fhe_kv::LeveledRow";
}

fn glwe_is(g: &CompressedModulusSwitchedGlweCiphertext<u64>, bodies: usize) -> bool {
    g.is_conformant(&params::glwe_conformance())
        && g.bodies_count().0 == bodies
        && g.packed_integers().log_modulus().0 == STORAGE_LOG_MODULUS
}

impl ParameterSetConformant for LeveledRow {
    type ParameterSet = RowLayout;

    fn is_conformant(&self, layout: &RowLayout) -> bool {
        u32::from(self.value_bits) == layout.value.bits()
            && glwe_is(&self.key, layout.key.used_coefficients())
            && self.values.len() == layout.value_glwes()
            && self
                .values
                .iter()
                .all(|g| glwe_is(g, params::coefficients()))
    }
}

/// A decoded stored slot, at full precision.
pub struct StoredSlot {
    pub key: GlweCiphertextOwned<u64>,
    pub values: Vec<GlweCiphertextOwned<u64>>,
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

fn compress(
    glwe: &GlweCiphertextOwned<u64>,
    bodies: usize,
) -> CompressedModulusSwitchedGlweCiphertext<u64> {
    CompressedModulusSwitchedGlweCiphertext::compress(
        glwe,
        CiphertextModulusLog(STORAGE_LOG_MODULUS),
        LweCiphertextCount(bodies),
    )
}

pub(crate) fn encode_row(
    key_id: KeyId,
    layout: RowLayout,
    key: &GlweCiphertextOwned<u64>,
    values: &[GlweCiphertextOwned<u64>],
) -> Result<Vec<u8>> {
    let row = LeveledRow {
        value_bits: layout.value.bits() as u16,
        key: compress(key, layout.key.used_coefficients()),
        values: values
            .iter()
            .map(|g| compress(g, params::coefficients()))
            .collect(),
    };
    let payload = serialize(&row, limits::ROW, "a leveled row")?;
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
    let what = "leveled row";
    let env = check_header(
        bytes,
        what,
        Kind::LeveledRow,
        key_id,
        layout.key,
        limits::ROW,
    )?;
    let row: LeveledRow =
        safe_deserialize_conformant(env.payload, limits::ROW, &layout).map_err(|detail| {
            FheKvError::BadPayload {
                what,
                detail: format!(
                "{detail} (a row of a {}/{} table holds a key GLWE with {} bodies and {} value \
                 GLWEs)",
                layout.key.width,
                layout.value,
                layout.key.used_coefficients(),
                layout.value_glwes()
            ),
            }
        })?;
    Ok(StoredSlot {
        key: row.key.extract(),
        values: row.values.iter().map(|g| g.extract()).collect(),
    })
}
