//! Typed payloads inside envelopes, and the only place untrusted bytes become ciphertexts.
//!
//! Every decode goes: envelope header check → kind/key_id/width check → size limit →
//! `safe_deserialize_conformant` against the pinned parameters. A payload that passes has
//! the exact LWE dimension, block count, moduli, degree and noise level the kernels
//! assume, so no later TFHE-rs call can panic or abort on it.

use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::keys::ServerKeys;
use crate::params::{block_params, limits, Width};
use tfhe::integer::IntegerRadixCiphertext;
use tfhe::integer::U256;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::shortint::Ciphertext;
use tfhe::{
    CompressedFheUint, FheUint128Id, FheUint16Id, FheUint256Id, FheUint32Id, FheUint64Id,
    FheUint8Id,
};

/// The clear type every width is encrypted from / decrypted to; plaintexts cross the API as
/// little-endian byte strings of exactly `width.bytes()` bytes.
fn clear_of(width: Width, plain: &[u8], what: &str) -> Result<U256> {
    if plain.len() != width.bytes() {
        return Err(FheKvError::InvalidArgument(format!(
            "{what} has {} bytes, but a {width} plaintext has {}",
            plain.len(),
            width.bytes()
        )));
    }
    // copy_from_le_byte_slice wants all 32 bytes of a U256.
    let mut all = [0u8; 32];
    all[..plain.len()].copy_from_slice(plain);
    let mut clear = U256::ZERO;
    clear.copy_from_le_byte_slice(&all);
    Ok(clear)
}

/// Run `$body` with `$id` bound to the FheUintId type of `$width`.
macro_rules! with_width {
    ($width:expr, $id:ident => $body:expr) => {
        match $width {
            Width::W8 => {
                type $id = FheUint8Id;
                $body
            }
            Width::W16 => {
                type $id = FheUint16Id;
                $body
            }
            Width::W32 => {
                type $id = FheUint32Id;
                $body
            }
            Width::W64 => {
                type $id = FheUint64Id;
                $body
            }
            Width::W128 => {
                type $id = FheUint128Id;
                $body
            }
            Width::W256 => {
                type $id = FheUint256Id;
                $body
            }
        }
    };
}

fn check_size(what: &'static str, payload: &[u8], limit: u64) -> Result<()> {
    if payload.len() as u64 > limit {
        return Err(FheKvError::TooLarge {
            what,
            size: payload.len(),
            limit,
        });
    }
    Ok(())
}

fn serialize<T: serde::Serialize + tfhe::Versionize + tfhe::named::Named>(
    value: &T,
    limit: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    safe_serialize(value, &mut out, limit)
        .map_err(|e| FheKvError::Internal(format!("serialization failed: {e}")))?;
    Ok(out)
}

/// Client side: encrypt the little-endian plaintext `plain` (exactly `width.bytes()` long)
/// as a seeded compressed integer of `width` (~4 KB for u64).
pub(crate) fn encrypt_integer(
    hl: &tfhe::ClientKey,
    key_id: KeyId,
    kind: Kind,
    width: Width,
    plain: &[u8],
) -> Result<Vec<u8>> {
    use tfhe::prelude::FheTryEncrypt;
    let clear = clear_of(width, plain, kind.name())?;
    let payload = with_width!(width, Id => {
        let ct = CompressedFheUint::<Id>::try_encrypt(clear, hl)
            .map_err(|e| FheKvError::Internal(format!("encryption failed: {e:?}")))?;
        serialize(&ct, limits::COMPRESSED_INTEGER)?
    });
    Ok(Envelope::encode(
        kind,
        width.bits() as u16,
        key_id,
        &payload,
    ))
}

/// Server side, step 1: check an integer envelope's header (kind, key_id, width, size)
/// without touching the payload. Cheap; run it on every argument before decoding any.
pub fn check_integer_header<'a>(
    bytes: &'a [u8],
    what: &'static str,
    kind: Kind,
    key_id: KeyId,
    width: Width,
) -> Result<Envelope<'a>> {
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, kind, Some(key_id))?;
    env.expect_bits(what, width.bits())?;
    check_size(what, env.payload, limits::COMPRESSED_INTEGER)?;
    Ok(env)
}

/// Server side, step 2: decode a checked envelope's payload into blocks, with
/// `safe_deserialize_conformant` (exact block count, dimensions, moduli).
pub fn decode_integer_payload(
    env: &Envelope<'_>,
    what: &'static str,
    width: Width,
) -> Result<Vec<Ciphertext>> {
    let blocks = with_width!(width, Id => {
        let ct: CompressedFheUint<Id> = safe_deserialize_conformant(
            env.payload,
            limits::COMPRESSED_INTEGER,
            &block_params().into(),
        )
        .map_err(|detail| FheKvError::BadPayload { what, detail })?;
        // Conformance does not cover every field of a seeded ciphertext: a forged one can
        // still make TFHE-rs index out of bounds while expanding it. Contain that panic
        // here so it becomes a precise refusal, never an abort.
        let radix = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ct.decompress().into_raw_parts().0
        }))
        .map_err(|_| FheKvError::BadPayload {
            what,
            detail: "the seeded ciphertext could not be expanded (forged fields)".into(),
        })?;
        radix.into_blocks()
    });
    if blocks.len() != width.blocks() {
        return Err(FheKvError::BadPayload {
            what,
            detail: format!("{} blocks instead of {}", blocks.len(), width.blocks()),
        });
    }
    Ok(blocks)
}

/// Both steps for one argument.
pub fn decode_integer(
    bytes: &[u8],
    what: &'static str,
    kind: Kind,
    key_id: KeyId,
    width: Width,
) -> Result<Vec<Ciphertext>> {
    let env = check_integer_header(bytes, what, kind, key_id, width)?;
    decode_integer_payload(&env, what, width)
}

/// Server side: encode a GET result `(found, value)` for the key of `keys`: one
/// compressed list `[found, value blocks…]`, ~1.9 KB for a u64 value instead of ~590 KB
/// of uncompressed blocks. Compression costs no PBS; the client reads the list with one
/// GLWE decryption (see [`crate::client_rows`]). Both `found` and the value blocks are
/// fresh PBS outputs with empty carries, as compression requires.
pub fn encode_get_result(
    keys: &ServerKeys,
    width: Width,
    found: Ciphertext,
    value: Vec<Ciphertext>,
) -> Result<Vec<u8>> {
    let mut blocks = Vec::with_capacity(1 + value.len());
    blocks.push(found);
    blocks.extend(value);
    let payload = crate::row::compress_blocks(keys, &blocks)?;
    Ok(Envelope::encode(
        Kind::GetResult,
        width.bits() as u16,
        keys.key_id,
        &payload,
    ))
}

/// Server side: encode a SET/DELETE status code (a one-block compressed list).
pub fn encode_status(keys: &ServerKeys, kind: Kind, status: Ciphertext) -> Result<Vec<u8>> {
    let payload = crate::row::compress_blocks(keys, &[status])?;
    Ok(Envelope::encode(kind, 8, keys.key_id, &payload))
}
