//! Wire formats of leveled equality and their decoders. A query arrives through SQL and a
//! stored key from an ordinary table, so both are decoded like any untrusted input:
//! envelope header (kind, key_id, key width), a size limit, then
//! `safe_deserialize_conformant` against the exact shape the key width needs.
//!
//! | kind | payload | shape checked |
//! |---|---|---|
//! | `leveled_query_key` | [`LeveledQuery`]: one seeded GGSW per chunk | chunk count, body count of every GGSW |
//! | `leveled_row` | [`LeveledRow`]: the key GLWE and the value's lookup-table GLWEs, either seeded by the key owner (bodies rounded to 32 and 16 bits) or computed by a SET (masks and bodies at 32 bits), and the vacant flag | value width, GLWE count, body and mask counts |

use super::{ChunkLayout, RowFormat, RowLayout, DELTA_LOG};
use crate::bucket::params;
use crate::bucket::wire::{selector_from_seeded, Selector};
use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::params::Width;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe_versionable::{Unversionize, Versionize, VersionsDispatch};

/// Size limits (bytes) of the payloads.
pub mod limits {
    /// A query: at most 18 chunks (u256 keys) of one 96 KiB seeded GGSW each.
    pub const QUERY: u64 = 2 << 20;
    /// A stored row. The largest is one a SET wrote (u256/u256): the key GLWE's mask and
    /// 257 bodies of 4 bytes (9,220 bytes), 8 value GLWEs (u256 values: 64 nibbles) of
    /// 2 · 2048 coefficients of 4 bytes (16 KiB each), a vacant flag of 2049
    /// coefficients of 3 bytes, plus lengths.
    pub const ROW: u64 = 160 << 10;
}

/// A seeded selector-shaped GGSW (a query chunk's polynomial, or an index bit of a
/// round-2 query): its body polynomials and the seed of its masks (a plain `u128`, so no
/// generator state arrives from outside).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(SeededGgswVersions)]
pub struct SeededGgsw {
    pub(crate) seed: u128,
    pub(crate) data: Vec<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum SeededGgswVersions {
    V0(SeededGgsw),
}

/// A query key: one GGSW per chunk, in chunk order.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledQueryVersions)]
pub struct LeveledQuery {
    pub(crate) chunks: Vec<SeededGgsw>,
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

/// Bits kept per coefficient of a GLWE a SET computed ([`ComputedGlwe`]). Every SET
/// rewrites every slot, so this rounding recurs once per SET, next to the `bits` external
/// products the write adds to an unwritten slot. At 32 bits it is 2^-57.6, about one of
/// those products' worth (`crate::noise::LeveledGetNoise::computed_rounding`), so it
/// halves the number of SETs before a stored key's noise matters, leaving ~10^5·5
/// (`crate::noise::LeveledEqualityNoise::sets_until_nominal`). 24 bits would leave ~10^2.
pub const COMPUTED_BITS: u32 = 32;

/// A GLWE a server computed (a slot after a two-round SET): its mask is no seed's, so the
/// row keeps all `k · N` mask coefficients and the first `bodies` body coefficients (the
/// ones the kernels read), each rounded to its top [`COMPUTED_BITS`] bits: a modulus
/// switch of the whole GLWE, whose rounded mask coefficients meet the secret key
/// (variance `(1 + k N / 2) · 2^{−64} / 12`, `crate::noise::LeveledGetNoise`).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(ComputedGlweVersions)]
pub struct ComputedGlwe {
    pub(crate) coefficients: Vec<u32>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum ComputedGlweVersions {
    V0(ComputedGlwe),
}

impl ComputedGlwe {
    /// The mask of `glwe` and its first `bodies` body coefficients, rounded.
    pub(crate) fn round(glwe: &GlweCiphertextOwned<u64>, bodies: usize) -> ComputedGlwe {
        let mask = glwe.get_mask();
        let body = glwe.get_body();
        ComputedGlwe {
            coefficients: mask
                .as_ref()
                .iter()
                .chain(&body.as_ref()[..bodies])
                .map(|&c| round_to(c, COMPUTED_BITS) as u32)
                .collect(),
        }
    }

    fn is_conformant(&self, bodies: usize) -> bool {
        self.coefficients.len() == mask_coefficients() + bodies
    }

    /// The GLWE at full width; body coefficients past the stored ones are 0 (they decrypt
    /// to noise, and no kernel reads them).
    pub(crate) fn expand(&self) -> GlweCiphertextOwned<u64> {
        let mut container = vec![0u64; params::glwe_size().0 * params::coefficients()];
        for (c, &stored) in container.iter_mut().zip(&self.coefficients) {
            *c = u64::from(stored) << (64 - COMPUTED_BITS);
        }
        GlweCiphertext::from_container(
            container,
            params::polynomial_size(),
            params::ciphertext_modulus(),
        )
    }
}

/// Mask coefficients of a GLWE (`k · N`).
fn mask_coefficients() -> usize {
    params::lwe_dimension().0
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

pub(crate) const FLAG_BYTES: usize = FLAG_BITS as usize / 8;

/// Coefficients rounded to their top [`FLAG_BITS`] bits, 3 little-endian bytes each.
pub(crate) fn pack24(coefficients: &[u64]) -> Vec<u8> {
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

/// The inverse of [`pack24`], lifted back to 64 bits.
pub(crate) fn unpack24(packed: &[u8]) -> Vec<u64> {
    packed
        .chunks_exact(FLAG_BYTES)
        .map(|b| {
            let mut le = [0u8; 8];
            le[..FLAG_BYTES].copy_from_slice(b);
            u64::from_le_bytes(le) << (64 - FLAG_BITS)
        })
        .collect()
}

impl VacantFlag {
    /// The key owner's flag: a seeded LWE, its body only.
    pub(crate) fn seeded(seed: u128, lwe: &SeededLweCiphertext<u64>) -> VacantFlag {
        VacantFlag {
            seed: Some(seed),
            packed: pack24(&[*lwe.get_body().data]),
        }
    }

    /// A flag the server computed: the whole LWE.
    pub(crate) fn computed(lwe: &LweCiphertextOwned<u64>) -> VacantFlag {
        VacantFlag {
            seed: None,
            packed: pack24(lwe.as_ref()),
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
        let coefficients = unpack24(&self.packed);
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

/// The key and value GLWEs of a stored slot, as whoever wrote them last.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(RowGlwesVersions)]
pub enum RowGlwes {
    /// The key owner's: the key GLWE (`K(X)`, bodies of the `B + 1` used coefficients at
    /// [`KEY_BODY_BITS`]) and the value as lookup-table GLWEs (all `N` bodies at
    /// [`VALUE_BODY_BITS`]), every mask a seed.
    Owner {
        key: SeededBodies,
        values: Vec<SeededBodies16>,
    },
    /// A server's, after a two-round SET: the same GLWEs with computed masks, at
    /// [`COMPUTED_BITS`] (the key GLWE's `B + 1` used bodies, the values' `N`).
    Server {
        key: ComputedGlwe,
        values: Vec<ComputedGlwe>,
    },
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum RowGlwesVersions {
    V0(RowGlwes),
}

/// A stored slot: its key and value GLWEs ([`RowGlwes`]) and the [`VacantFlag`]. The key
/// owner writes rows with seeded masks; a private DELETE rewrites the flag alone; a
/// two-round SET rewrites every slot with computed masks.
///
/// V0 is the format fhe_kv 0.4.0 stores (`leveled-v1` tables): a change from here on
/// needs a new version that still reads V0 rows. (The earlier modulus-switched rows of
/// 41,622 bytes were never stored by a release.)
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledRowVersions)]
pub struct LeveledRow {
    pub(crate) value_bits: u16,
    pub(crate) glwes: RowGlwes,
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
        let key_bodies = layout.key_glwe_bodies();
        let glwes = match &self.glwes {
            RowGlwes::Owner { key, values } => {
                key.bodies.len() == key_bodies
                    && values.len() == layout.value_glwes()
                    && values
                        .iter()
                        .all(|g| g.bodies.len() == params::coefficients())
            }
            RowGlwes::Server { key, values } => {
                key.is_conformant(key_bodies)
                    && values.len() == layout.value_glwes()
                    && values
                        .iter()
                        .all(|g| g.is_conformant(params::coefficients()))
            }
        };
        u32::from(self.value_bits) == layout.value.bits() && glwes && self.vacant.is_conformant()
    }
}

/// The top `bits` bits of `x`, rounded to nearest, ties to even (a computed GLWE is
/// rounded again at every rewrite: [`crate::rounding`] says why the ties matter).
fn round_to(x: u64, bits: u32) -> u64 {
    crate::rounding::round_half_even(x, bits)
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

/// The `kind` envelope of `value`: its payload serialized with a size limit, behind the
/// header (`bits`: the key width, value width or index-bit count the kind carries).
pub(crate) fn encode_message<T: Serialize + Versionize + Named>(
    kind: Kind,
    bits: usize,
    key_id: KeyId,
    value: &T,
    limit: u64,
) -> Result<Vec<u8>> {
    let mut payload = Vec::new();
    safe_serialize(value, &mut payload, limit)
        .map_err(|e| FheKvError::Internal(format!("serializing a {kind}: {e}")))?;
    Ok(Envelope::encode(kind, bits as u16, key_id, &payload))
}

/// Decode an untrusted `kind` envelope: the header (kind, key_id, `bits`), the size
/// limit, then `safe_deserialize_conformant` against `shape`. A refused payload's error
/// ends with what the table expects (`expected`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_message<T>(
    bytes: &[u8],
    what: &'static str,
    kind: Kind,
    key_id: KeyId,
    bits: usize,
    limit: u64,
    shape: &T::ParameterSet,
    expected: impl FnOnce() -> String,
) -> Result<T>
where
    T: DeserializeOwned + Unversionize + Named + ParameterSetConformant,
{
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, kind, Some(key_id))?;
    env.expect_bits(what, bits as u32)?;
    if env.payload.len() as u64 > limit {
        return Err(FheKvError::TooLarge {
            what,
            size: env.payload.len(),
            limit,
        });
    }
    safe_deserialize_conformant(env.payload, limit, shape).map_err(|detail| {
        FheKvError::BadPayload {
            what,
            detail: format!("{detail} ({})", expected()),
        }
    })
}

pub(crate) fn encode_query(
    key_id: KeyId,
    layout: ChunkLayout,
    query: &LeveledQuery,
) -> Result<Vec<u8>> {
    encode_message(
        Kind::LeveledQueryKey,
        layout.bits(),
        key_id,
        query,
        limits::QUERY,
    )
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
        glwes: RowGlwes::Owner {
            key: SeededBodies {
                seed: key.seed,
                bodies: rounded_bodies(&key.glwe, layout.key_glwe_bodies(), KEY_BODY_BITS)
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
        },
        vacant,
    };
    encode_stored_row(key_id, layout, &row)
}

/// The `leveled_row` envelope of a slot a server computed (after a two-round SET): every
/// part stored whole, at [`COMPUTED_BITS`] ([`RowGlwes::Server`]) and the flag at
/// [`FLAG_BITS`].
pub fn encode_written_row(key_id: KeyId, layout: RowLayout, slot: &StoredSlot) -> Result<Vec<u8>> {
    if slot.values.len() != layout.value_glwes() {
        return Err(FheKvError::Internal("a slot of another value width".into()));
    }
    let row = LeveledRow {
        value_bits: layout.value.bits() as u16,
        glwes: RowGlwes::Server {
            key: ComputedGlwe::round(&slot.key, layout.key_glwe_bodies()),
            values: slot
                .values
                .iter()
                .map(|g| ComputedGlwe::round(g, params::coefficients()))
                .collect(),
        },
        vacant: VacantFlag::computed(&slot.vacant),
    };
    encode_stored_row(key_id, layout, &row)
}

/// The `leveled_row` envelope of a never-written slot, built by the server alone (table
/// creation and growth need no client key): trivial GLWEs of 0 for the key and the value,
/// and a trivial vacant flag of 1. Stored as a computed row ([`RowGlwes::Server`]),
/// 47,490 payload bytes for u64/u64, the size every slot has after the table's first SET
/// anyway.
///
/// The server learns nothing from it that it does not know already: a new slot is
/// empty. The first SET adds an expanded, encrypted delta to every slot, after which no
/// slot is trivial; equality on a vacant slot is decided by its flag (the key GLWE's
/// constant coefficient is 0 here instead of 1, which only changes a distance the flag
/// already makes non-zero).
pub fn empty_row(key_id: KeyId, layout: RowLayout) -> Result<Vec<u8>> {
    let trivial_glwe = || {
        GlweCiphertext::new(
            0u64,
            params::glwe_size(),
            params::polynomial_size(),
            params::ciphertext_modulus(),
        )
    };
    let mut vacant = LweCiphertext::new(
        0u64,
        params::lwe_dimension().to_lwe_size(),
        params::ciphertext_modulus(),
    );
    *vacant.get_mut_body().data = 1 << DELTA_LOG;
    let slot = StoredSlot {
        key: trivial_glwe(),
        values: (0..layout.value_glwes()).map(|_| trivial_glwe()).collect(),
        vacant,
    };
    encode_written_row(key_id, layout, &slot)
}

/// The `leveled_row` envelope of `row`.
pub(crate) fn encode_stored_row(
    key_id: KeyId,
    layout: RowLayout,
    row: &LeveledRow,
) -> Result<Vec<u8>> {
    encode_message(
        Kind::LeveledRow,
        layout.key.bits(),
        key_id,
        row,
        limits::ROW,
    )
}

/// Decode a leveled query key for keys of `layout`'s width into its chunk GGSWs, expanded
/// and in the Fourier domain, ready for external products.
pub fn decode_query(bytes: &[u8], key_id: KeyId, layout: ChunkLayout) -> Result<Vec<Selector>> {
    let query: LeveledQuery = decode_message(
        bytes,
        "leveled query key",
        Kind::LeveledQueryKey,
        key_id,
        layout.bits(),
        limits::QUERY,
        &layout,
        || {
            format!(
                "a {} query key carries {} GGSWs of {} coefficients",
                layout.width,
                layout.chunks(),
                params::selector_len()
            )
        },
    )?;
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

/// The row format of a stored slot of a `key`/`value` table, told from the row itself:
/// the formats differ in their GLWE and body counts, which the conformance check of
/// [`decode_row`] pins. Used when a table is attached without its catalog entry; a row
/// of neither format gets the error of the default format ([`RowFormat::OneGlwe`]).
pub fn row_format_of(bytes: &[u8], key_id: KeyId, key: Width, value: Width) -> Result<RowFormat> {
    let of = |format| decode_stored_row(bytes, key_id, RowLayout::of_format(key, value, format));
    match of(RowFormat::OneGlwe) {
        Ok(_) => Ok(RowFormat::OneGlwe),
        Err(e) => of(RowFormat::LookupTables)
            .map(|_| RowFormat::LookupTables)
            .map_err(|_| e),
    }
}

/// Decode a stored slot, still in its stored form (seeds and rounded bodies).
pub(crate) fn decode_stored_row(
    bytes: &[u8],
    key_id: KeyId,
    layout: RowLayout,
) -> Result<LeveledRow> {
    decode_message(
        bytes,
        "leveled row",
        Kind::LeveledRow,
        key_id,
        layout.key.bits(),
        limits::ROW,
        &layout,
        || {
            let glwes = match layout.format {
                RowFormat::LookupTables => format!(
                    "a key GLWE with {} bodies and {} value GLWEs of {} bodies (row format \
                     {})",
                    layout.key_glwe_bodies(),
                    layout.value_glwes(),
                    params::coefficients(),
                    layout.format.name()
                ),
                RowFormat::OneGlwe => format!(
                    "one GLWE with {} bodies, key bits and value nibbles (row format {})",
                    layout.key_glwe_bodies(),
                    layout.format.name()
                ),
            };
            format!(
                "a row of a {}/{} table holds {glwes}, seeded or with masks of {} \
                 coefficients, and a vacant flag",
                layout.key.width,
                layout.value,
                mask_coefficients()
            )
        },
    )
}

impl LeveledRow {
    /// The slot at full precision: masks regenerated from their seeds or lifted, bodies
    /// lifted.
    pub(crate) fn expand(&self) -> StoredSlot {
        let (key, values) = match &self.glwes {
            RowGlwes::Owner { key, values } => (
                expand(
                    key.seed,
                    key.bodies.iter().map(|&b| u64::from(b)),
                    KEY_BODY_BITS,
                ),
                values
                    .iter()
                    .map(|g| {
                        expand(
                            g.seed,
                            g.bodies.iter().map(|&b| u64::from(b)),
                            VALUE_BODY_BITS,
                        )
                    })
                    .collect(),
            ),
            RowGlwes::Server { key, values } => (
                key.expand(),
                values.iter().map(ComputedGlwe::expand).collect(),
            ),
        };
        StoredSlot {
            key,
            values,
            vacant: self.vacant.expand(),
        }
    }
}
