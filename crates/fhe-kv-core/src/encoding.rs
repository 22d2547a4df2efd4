//! How user keys and values become the fixed-width integers the server computes on.
//!
//! * **Integer types** `u8` … `u256`: the plaintext is the number itself.
//! * **Text/byte keys** (`text`): the client maps the key's bytes to a tag
//!   `HMAC-SHA256(tag_secret, "fhe_kv key tag v1" ‖ key)` truncated to the table's key width
//!   (64 or 128 bits). `tag_secret` is derived from the client's LWE secret key, so only the
//!   key owner can compute tags; the server only ever sees encryptions of tags. Two distinct
//!   keys collide with probability 2^-w per pair, so for `n` entries the probability of any
//!   collision is at most `n(n-1)/2 · 2^-w`: the client refuses a width whose bound at the
//!   table's capacity exceeds 2^-40 ([`text_key_bits_for`], [`check_text_capacity`]).
//! * **Byte-string values** (`bytes:N`, `N` ≤ 31): one length byte, the content, zero padding,
//!   in the smallest supported width holding `N + 1` bytes. The server learns only that
//!   maximum size class, never a value's length.

use crate::error::{FheKvError, Result};
use crate::params::Width;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Domain separators: changing either changes every tag (and would orphan stored data).
const TAG_SECRET_DOMAIN: &[u8] = b"fhe_kv tag secret v1";
const TAG_DOMAIN: &[u8] = b"fhe_kv key tag v1";

/// Largest `N` of `bytes:N`: a 256-bit value holds 1 length byte + 31 content bytes.
pub const MAX_BYTES_VALUE: usize = 31;
/// The collision bound the client accepts for text keys at a table's capacity.
pub const MAX_COLLISION_LOG2: u32 = 40;

/// What a table's keys are, as recorded in `fhe_kv.encrypted_tables.key_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Uint(Width),
    /// Text or bytes, mapped to a keyed tag of the table's key width.
    Text,
}

/// What a table's values are, as recorded in `fhe_kv.encrypted_tables.value_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Uint(Width),
    /// A byte string of at most `N` bytes.
    Bytes(usize),
}

fn parse_uint(label: &str) -> Option<Width> {
    let bits: u32 = label.strip_prefix('u')?.parse().ok()?;
    Width::from_bits(bits).ok()
}

impl KeyType {
    pub fn parse(label: &str) -> Result<KeyType> {
        if label == "text" {
            return Ok(KeyType::Text);
        }
        parse_uint(label).map(KeyType::Uint).ok_or_else(|| {
            FheKvError::InvalidArgument(format!(
                "key type must be text or u8/u16/u32/u64/u128/u256, got {label:?}"
            ))
        })
    }

    pub fn label(self) -> String {
        match self {
            KeyType::Uint(w) => w.to_string(),
            KeyType::Text => "text".into(),
        }
    }

    /// The key width for a table of `capacity` slots.
    pub fn width_for(self, capacity: usize) -> Result<Width> {
        match self {
            KeyType::Uint(w) => Ok(w),
            KeyType::Text => text_key_bits_for(capacity),
        }
    }
}

impl ValueType {
    pub fn parse(label: &str) -> Result<ValueType> {
        if let Some(n) = label.strip_prefix("bytes:") {
            let n: usize = n.parse().map_err(|_| {
                FheKvError::InvalidArgument(format!("bytes:N needs a number, got {label:?}"))
            })?;
            if n == 0 || n > MAX_BYTES_VALUE {
                return Err(FheKvError::InvalidArgument(format!(
                    "bytes:N allows 1 ≤ N ≤ {MAX_BYTES_VALUE} (1 length byte + N bytes must fit 256 bits), got {n}"
                )));
            }
            return Ok(ValueType::Bytes(n));
        }
        parse_uint(label).map(ValueType::Uint).ok_or_else(|| {
            FheKvError::InvalidArgument(format!(
                "value type must be bytes:N or u8/u16/u32/u64/u128/u256, got {label:?}"
            ))
        })
    }

    pub fn label(self) -> String {
        match self {
            ValueType::Uint(w) => w.to_string(),
            ValueType::Bytes(n) => format!("bytes:{n}"),
        }
    }

    pub fn width(self) -> Width {
        match self {
            ValueType::Uint(w) => w,
            ValueType::Bytes(n) => Width::ALL
                .into_iter()
                .find(|w| w.bytes() > n)
                .expect("N ≤ 31 fits 256 bits"),
        }
    }

    /// The little-endian plaintext of a byte-string value: `[len, content…, 0…]`.
    pub fn encode_bytes(self, value: &[u8]) -> Result<Vec<u8>> {
        let ValueType::Bytes(max) = self else {
            return Err(FheKvError::InvalidArgument(format!(
                "the table's values are {}, not byte strings",
                self.label()
            )));
        };
        if value.len() > max {
            return Err(FheKvError::InvalidArgument(format!(
                "value is {} bytes, the table holds at most {max} (bytes:{max})",
                value.len()
            )));
        }
        let mut plain = vec![0u8; self.width().bytes()];
        plain[0] = value.len() as u8;
        plain[1..=value.len()].copy_from_slice(value);
        Ok(plain)
    }

    /// Inverse of [`Self::encode_bytes`]; refuses anything `encode_bytes` cannot produce.
    pub fn decode_bytes(self, plain: &[u8]) -> Result<Vec<u8>> {
        let ValueType::Bytes(max) = self else {
            return Err(FheKvError::InvalidArgument(format!(
                "the table's values are {}, not byte strings",
                self.label()
            )));
        };
        let corrupt = |why: &str| FheKvError::BadPayload {
            what: "byte-string value",
            detail: why.to_string(),
        };
        let len = *plain.first().ok_or_else(|| corrupt("empty plaintext"))? as usize;
        if len > max || len + 1 > plain.len() {
            return Err(corrupt(&format!("length byte {len} exceeds bytes:{max}")));
        }
        if plain[len + 1..].iter().any(|&b| b != 0) {
            return Err(corrupt("non-zero padding"));
        }
        Ok(plain[1..=len].to_vec())
    }
}

/// The smallest key width whose collision bound at `capacity` is ≤ 2^-40.
pub fn text_key_bits_for(capacity: usize) -> Result<Width> {
    [Width::W64, Width::W128]
        .into_iter()
        .find(|w| check_text_capacity(*w, capacity).is_ok())
        .ok_or_else(|| {
            FheKvError::InvalidArgument(format!(
                "no tag width keeps text-key collisions below 2^-{MAX_COLLISION_LOG2} at capacity {capacity}"
            ))
        })
}

/// log2 of the collision bound `n(n-1)/2 · 2^-bits` (−∞ for n ≤ 1).
pub fn collision_log2(bits: u32, n: usize) -> f64 {
    if n <= 1 {
        return f64::NEG_INFINITY;
    }
    let pairs = n as f64 * (n as f64 - 1.0) / 2.0;
    pairs.log2() - f64::from(bits)
}

/// Refuse a text-key width whose collision bound at `capacity` exceeds 2^-40.
pub fn check_text_capacity(width: Width, capacity: usize) -> Result<()> {
    if !matches!(width, Width::W64 | Width::W128) {
        return Err(FheKvError::InvalidArgument(format!(
            "text keys use 64- or 128-bit tags, not {} bits",
            width.bits()
        )));
    }
    let log2 = collision_log2(width.bits(), capacity);
    if log2 > -f64::from(MAX_COLLISION_LOG2) {
        return Err(FheKvError::InvalidArgument(format!(
            "{}-bit tags at capacity {capacity} collide with probability up to 2^{log2:.1} (limit 2^-{MAX_COLLISION_LOG2}); use 128-bit keys",
            width.bits()
        )));
    }
    Ok(())
}

/// The secret of the keyed tag PRF, derived from the client's LWE secret key.
#[derive(Clone)]
pub struct TagSecret([u8; 32]);

impl TagSecret {
    /// Derive from the binary coefficients of an LWE secret key.
    pub fn derive(secret_key_coefficients: &[u64]) -> TagSecret {
        let mut h = Sha256::new();
        h.update(TAG_SECRET_DOMAIN);
        for c in secret_key_coefficients {
            h.update(c.to_le_bytes());
        }
        TagSecret(h.finalize().into())
    }

    /// The little-endian plaintext tag of `key` for a key column of `width` (64 or 128).
    pub fn tag(&self, key: &[u8], width: Width) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(TAG_DOMAIN);
        mac.update(key);
        let digest = mac.finalize().into_bytes();
        digest[..width.bytes().min(digest.len())].to_vec()
    }
}

impl std::fmt::Debug for TagSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_labels_round_trip() {
        for label in ["text", "u8", "u64", "u128", "u256"] {
            assert_eq!(KeyType::parse(label).unwrap().label(), label);
        }
        for label in ["bytes:1", "bytes:15", "bytes:31", "u16", "u256"] {
            assert_eq!(ValueType::parse(label).unwrap().label(), label);
        }
        for bad in ["", "u7", "u512", "bytes", "string", "text:64"] {
            assert!(KeyType::parse(bad).is_err(), "{bad}");
        }
        for bad in ["bytes:0", "bytes:32", "bytes:x", "u12", "text"] {
            assert!(ValueType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn byte_values_pick_the_smallest_width_and_round_trip() {
        assert_eq!(ValueType::Bytes(7).width(), Width::W64);
        assert_eq!(ValueType::Bytes(8).width(), Width::W128);
        assert_eq!(ValueType::Bytes(31).width(), Width::W256);
        let t = ValueType::Bytes(31);
        for v in [
            &b""[..],
            b"a",
            "héllo wörld ✓".as_bytes(),
            &[0xffu8; 31],
            &[0u8; 31],
        ] {
            let plain = t.encode_bytes(v).unwrap();
            assert_eq!(plain.len(), 32);
            assert_eq!(t.decode_bytes(&plain).unwrap(), v);
        }
        assert!(t.encode_bytes(&[1u8; 32]).is_err());
        let mut bad = t.encode_bytes(b"ab").unwrap();
        bad[5] = 1;
        assert!(t.decode_bytes(&bad).is_err(), "non-zero padding is refused");
        bad = t.encode_bytes(b"ab").unwrap();
        bad[0] = 40;
        assert!(t.decode_bytes(&bad).is_err(), "length beyond N is refused");
    }

    #[test]
    fn tags_are_keyed_deterministic_and_sized() {
        let a = TagSecret::derive(&[0, 1, 1, 0]);
        let b = TagSecret::derive(&[0, 1, 1, 1]);
        let t = a.tag(b"patient-4711", Width::W64);
        assert_eq!(t.len(), 8);
        assert_eq!(t, a.tag(b"patient-4711", Width::W64));
        assert_ne!(t, a.tag(b"patient-4712", Width::W64));
        assert_ne!(
            t,
            b.tag(b"patient-4711", Width::W64),
            "another key gives other tags"
        );
        assert_eq!(a.tag(b"x", Width::W128)[..8], a.tag(b"x", Width::W64)[..]);
    }

    #[test]
    fn text_key_width_follows_the_collision_bound() {
        assert_eq!(text_key_bits_for(1).unwrap(), Width::W64);
        assert_eq!(text_key_bits_for(5_000).unwrap(), Width::W64);
        assert_eq!(text_key_bits_for(10_000).unwrap(), Width::W128);
        assert!(check_text_capacity(Width::W64, 10_000).is_err());
        assert!(check_text_capacity(Width::W32, 2).is_err());
        assert!(collision_log2(64, 200) < -48.0);
    }
}
