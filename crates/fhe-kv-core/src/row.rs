//! Row format `compact-v1`: one slot = one compressed ciphertext list holding
//! `[vacant, key blocks…, value blocks…]` (1 + key_bits/2 + value_bits/2 blocks),
//! ~2 KB for u64/u64 instead of ~1 MB uncompressed.
//!
//! The flag is stored as **vacant** (1 = empty slot) rather than occupied: the kernels
//! add it straight into the key-mismatch sum (`match = vacant + Σ[k_j≠q_j] == 0`) and use
//! it as the `free` bit of SET, so it never needs a negation PBS.
//!
//! Rows are written by the extension, but they are read back from an ordinary table, so
//! they are decoded like any untrusted input: envelope, size limit, conformance, length.

use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::keys::ServerKeys;
use crate::params::{compression_params, limits, Width, BLOCK_SPACE, MESSAGE_MODULUS};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::prelude::{
    CiphertextModulus, GlweCiphertextConformanceParams, LweCiphertextCount,
};
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::shortint::ciphertext::{CompressedCiphertextList, Degree, NoiseLevel};
use tfhe::shortint::parameters::{
    CarryModulus, CompressedCiphertextConformanceParams, CompressionParameters, MessageModulus,
};
use tfhe::shortint::{AtomicPatternKind, Ciphertext, PBSOrder};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Name of the only row format so far, recorded per table in the catalog.
pub const ROW_FORMAT_COMPACT_V1: &str = "compact-v1";

/// A stored slot as it sits in the table: a shortint compressed list.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(StoredRowVersions)]
pub struct StoredRow {
    list: CompressedCiphertextList,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum StoredRowVersions {
    V0(StoredRow),
}

impl StoredRow {
    pub(crate) fn from_list(list: CompressedCiphertextList) -> StoredRow {
        StoredRow { list }
    }

    pub(crate) fn list(&self) -> &CompressedCiphertextList {
        &self.list
    }
}

impl tfhe::named::Named for StoredRow {
    const NAME: &'static str = "fhe_kv::StoredRow";
}

/// What a stored row must look like: the list parameters and the exact block count.
pub struct RowShape {
    list: CompressedCiphertextConformanceParams,
    blocks: usize,
}

impl RowShape {
    pub fn new(key: Width, value: Width) -> RowShape {
        RowShape::with_blocks(1 + key.blocks() + value.blocks())
    }

    /// Any compressed block list of exactly `blocks` blocks (rows, GET results, statuses).
    pub fn with_blocks(blocks: usize) -> RowShape {
        let CompressionParameters::Classic(p) = compression_params() else {
            unreachable!("fhe_kv pins classic compression parameters")
        };
        RowShape {
            list: CompressedCiphertextConformanceParams {
                ct_params: GlweCiphertextConformanceParams {
                    glwe_dim: p.packing_ks_glwe_dimension,
                    polynomial_size: p.packing_ks_polynomial_size,
                    ct_modulus: CiphertextModulus::new_native(),
                },
                lwe_per_glwe: p.lwe_per_glwe,
                message_modulus: MessageModulus(MESSAGE_MODULUS),
                carry_modulus: CarryModulus(BLOCK_SPACE / MESSAGE_MODULUS),
                degree: Degree::new(MESSAGE_MODULUS - 1),
                noise_level: NoiseLevel::NOMINAL,
                atomic_pattern: AtomicPatternKind::Standard(PBSOrder::KeyswitchBootstrap),
            },
            blocks,
        }
    }
}

impl ParameterSetConformant for StoredRow {
    type ParameterSet = RowShape;

    fn is_conformant(&self, shape: &RowShape) -> bool {
        self.list.is_conformant(&shape.list) && self.list.len() == shape.blocks
    }
}

/// A slot after decompression: every block has nominal noise and degree ≤ 3.
#[derive(Clone)]
pub struct RowCiphertext {
    pub vacant: Ciphertext,
    pub key: Vec<Ciphertext>,
    pub value: Vec<Ciphertext>,
}

/// Compress a row and wrap it in a `row` envelope.
///
/// Invariant: every block has nominal (post-PBS) or zero (trivial) noise and empty carries,
/// which TFHE-rs' compression asserts for its failure-probability guarantee. The one
/// documented exception is SET's masked update (`kernels::set::masked_update`): a sum of
/// two PBS outputs whose plaintext is exact modulo the compression's shift; docs/noise.md
/// shows the stored failure probability stays ~2^-280.
pub fn encode_row(keys: &ServerKeys, row: &RowCiphertext) -> Result<Vec<u8>> {
    let mut blocks = Vec::with_capacity(1 + row.key.len() + row.value.len());
    blocks.push(row.vacant.clone());
    blocks.extend(row.key.iter().cloned());
    blocks.extend(row.value.iter().cloned());
    let payload = compress_blocks(keys, &blocks)?;
    Ok(Envelope::encode(Kind::Row, 0, keys.key_id, &payload))
}

/// Compress blocks into one list payload (no PBS: a packing key switch and a modulus
/// switch). Invariant, as for [`encode_row`]: nominal or zero noise, empty carries.
pub fn compress_blocks(keys: &ServerKeys, blocks: &[Ciphertext]) -> Result<Vec<u8>> {
    crate::runtime::checkpoint();
    let list = keys.compression.compress_ciphertexts_into_list(blocks);
    let mut payload = Vec::new();
    safe_serialize(&StoredRow { list }, &mut payload, limits::ROW)
        .map_err(|e| FheKvError::Internal(format!("serializing a block list: {e}")))?;
    Ok(payload)
}

/// Decode a block-list payload of exactly `blocks` blocks (size limit, conformance).
pub fn decode_block_list(payload: &[u8], blocks: usize, what: &'static str) -> Result<StoredRow> {
    decode_block_list_within(payload, blocks, what, limits::ROW)
}

/// [`decode_block_list`] with another size limit.
pub fn decode_block_list_within(
    payload: &[u8],
    blocks: usize,
    what: &'static str,
    limit: u64,
) -> Result<StoredRow> {
    if payload.len() as u64 > limit {
        return Err(FheKvError::TooLarge {
            what,
            size: payload.len(),
            limit,
        });
    }
    safe_deserialize_conformant(payload, limit, &RowShape::with_blocks(blocks))
        .map_err(|detail| FheKvError::BadPayload { what, detail })
}

/// A fresh empty slot: trivial encryptions of (vacant=1, key=0, value=0). The server
/// knows a new slot is empty anyway; the first SET rewrites it with real ciphertexts.
pub fn empty_row(keys: &ServerKeys, key: Width, value: Width) -> RowCiphertext {
    RowCiphertext {
        vacant: keys.sks.create_trivial(1),
        key: (0..key.blocks())
            .map(|_| keys.sks.create_trivial(0))
            .collect(),
        value: (0..value.blocks())
            .map(|_| keys.sks.create_trivial(0))
            .collect(),
    }
}

/// Decode a stored row envelope (no PBS yet).
pub fn decode_row(bytes: &[u8], key_id: KeyId, key: Width, value: Width) -> Result<StoredRow> {
    let what = "stored row";
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, Kind::Row, Some(key_id))?;
    decode_block_list(env.payload, 1 + key.blocks() + value.blocks(), what)
}

/// Decompress a stored row: one blind rotation per block (counted by `pbs-stats`).
pub fn decompress_row(
    keys: &ServerKeys,
    row: &StoredRow,
    key: Width,
    value: Width,
) -> Result<RowCiphertext> {
    let mut blocks = decompress_first(keys, row, 1 + key.blocks() + value.blocks())?;
    let value_blocks = blocks.split_off(1 + key.blocks());
    let key_blocks = blocks.split_off(1);
    Ok(RowCiphertext {
        vacant: blocks.pop().expect("one flag block"),
        key: key_blocks,
        value: value_blocks,
    })
}

/// One message step inside a packed GLWE: packing puts a block's message in its carry bits
/// (`m · message_modulus`), with the padding bit on top: `2^64 / (2 · 16) · 4 = 2^61`.
pub(crate) const PACKED_STEP_LOG: u32 = 61;

/// The plain serde layout of a shortint `CompressedCiphertextList` (TFHE-rs 1.8.2), whose
/// GLWEs TFHE-rs does not expose: its GLWE vector, then its metadata. It is only used on
/// lists that already passed the conformance check (reading) or to build lists that the
/// same check then validates (writing); the unit tests pin the layout, so a TFHE-rs upgrade
/// that changes it fails them instead of misreading rows.
#[derive(Serialize, Deserialize)]
struct ListLayout {
    glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
    meta: Option<ListMeta>,
}

#[derive(Serialize, Deserialize)]
struct ListMeta {
    ciphertext_modulus: CiphertextModulus<u64>,
    message_modulus: MessageModulus,
    carry_modulus: CarryModulus,
    atomic_pattern: AtomicPatternKind,
    lwe_per_glwe: LweCiphertextCount,
}

/// The modulus-switched GLWEs of a decoded (conformant) list.
pub(crate) fn packed_glwes(
    stored: &StoredRow,
) -> Result<Vec<CompressedModulusSwitchedGlweCiphertext<u64>>> {
    let internal = |e: bincode::Error| FheKvError::Internal(format!("reading a list's GLWEs: {e}"));
    let plain = bincode::serialize(stored.list()).map_err(internal)?;
    let layout: ListLayout = bincode::deserialize(&plain).map_err(internal)?;
    Ok(layout.glwes)
}

/// A compressed list of fhe_kv's parameters made of the given packed GLWEs.
pub(crate) fn list_of_glwes(
    glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
) -> Result<CompressedCiphertextList> {
    let layout = ListLayout {
        glwes,
        meta: Some(ListMeta {
            ciphertext_modulus: crate::params::block_params().ciphertext_modulus,
            message_modulus: MessageModulus(MESSAGE_MODULUS),
            carry_modulus: CarryModulus(BLOCK_SPACE / MESSAGE_MODULUS),
            atomic_pattern: AtomicPatternKind::Standard(PBSOrder::KeyswitchBootstrap),
            lwe_per_glwe: compression_params().lwe_per_glwe(),
        }),
    };
    let internal = |e: bincode::Error| FheKvError::Internal(format!("building a list: {e}"));
    bincode::deserialize(&bincode::serialize(&layout).map_err(internal)?).map_err(internal)
}

/// Decompress only a row's flag and key blocks (1 + K PBS): all the locate round reads.
pub fn decompress_flag_and_key(
    keys: &ServerKeys,
    row: &StoredRow,
    key: Width,
) -> Result<(Ciphertext, Vec<Ciphertext>)> {
    let mut blocks = decompress_first(keys, row, 1 + key.blocks())?;
    let key_blocks = blocks.split_off(1);
    Ok((blocks.pop().expect("one flag block"), key_blocks))
}

/// Decompress the first `n` blocks of a stored row: one blind rotation each.
fn decompress_first(keys: &ServerKeys, row: &StoredRow, n: usize) -> Result<Vec<Ciphertext>> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            crate::runtime::checkpoint();
            keys.decompression.unpack(&row.list, i)
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| FheKvError::BadPayload {
            what: "stored row",
            detail: e.to_string(),
        })
}
