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
//!   A tag cannot be inverted, so a `text:K` table also stores the key itself (length byte +
//!   up to `K` bytes) in front of the value, inside the value ciphertext: `export` gives the
//!   keys back, and SET updates key and value together obliviously.
//! * **Byte-string values** (`bytes:N`): one length byte, the content, zero padding.
//! * The stored value integer is `[key part][value part]` (little-endian bytes) in the smallest
//!   supported width that holds it (≤ 256 bits). The server learns only that size class.
//!
//! ```
//! use fhe_kv_core::{Datum, KeyType, TableCodec, ValueType};
//! // A 256-slot table of text keys (≤ 15 bytes) and byte-string values (≤ 15 bytes).
//! let codec = TableCodec::new(KeyType::Text(15), ValueType::Bytes(15), 256)?;
//! assert_eq!((codec.key_width.bits(), codec.value_width.bits()), (64, 256));
//! let (key, value) = (Datum::from("patient-4711"), Datum::from("blood: A+"));
//! let plain = codec.value_plain(&key, &value)?;
//! assert_eq!(codec.decode_value(&plain)?, (Some(key), value));
//! # Ok::<(), fhe_kv_core::FheKvError>(())
//! ```

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
    /// Text or bytes of at most this many bytes, mapped to a keyed tag of the table's key
    /// width; the key itself is kept in the value ciphertext (for export).
    Text(usize),
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
        if let Some(k) = label.strip_prefix("text:") {
            let k: usize = k.parse().map_err(|_| {
                FheKvError::InvalidArgument(format!("text:K needs a number, got {label:?}"))
            })?;
            if k == 0 || k > MAX_BYTES_VALUE - 1 {
                return Err(FheKvError::InvalidArgument(format!(
                    "text:K allows 1 ≤ K ≤ {}, got {k}",
                    MAX_BYTES_VALUE - 1
                )));
            }
            return Ok(KeyType::Text(k));
        }
        parse_uint(label).map(KeyType::Uint).ok_or_else(|| {
            FheKvError::InvalidArgument(format!(
                "key type must be text:K or u8/u16/u32/u64/u128/u256, got {label:?}"
            ))
        })
    }

    pub fn label(self) -> String {
        match self {
            KeyType::Uint(w) => w.to_string(),
            KeyType::Text(k) => format!("text:{k}"),
        }
    }

    /// The key width for a table of `capacity` slots.
    pub fn width_for(self, capacity: usize) -> Result<Width> {
        match self {
            KeyType::Uint(w) => Ok(w),
            KeyType::Text(_) => text_key_bits_for(capacity),
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

    /// Bytes of the value part of the stored value integer.
    pub fn plain_len(self) -> usize {
        match self {
            ValueType::Uint(w) => w.bytes(),
            ValueType::Bytes(n) => n + 1,
        }
    }
}

/// A key or value as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Datum {
    /// For `uN` columns (values above 2^128 need the `*_le` APIs).
    Uint(u128),
    /// For `text:K` keys and `bytes:N` values; UTF-8 text is just bytes.
    Bytes(Vec<u8>),
}

impl From<u64> for Datum {
    fn from(v: u64) -> Datum {
        Datum::Uint(v.into())
    }
}
impl From<&str> for Datum {
    fn from(v: &str) -> Datum {
        Datum::Bytes(v.as_bytes().to_vec())
    }
}
impl From<String> for Datum {
    fn from(v: String) -> Datum {
        Datum::Bytes(v.into_bytes())
    }
}
impl From<&[u8]> for Datum {
    fn from(v: &[u8]) -> Datum {
        Datum::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Datum {
    fn from(v: Vec<u8>) -> Datum {
        Datum::Bytes(v)
    }
}

impl std::fmt::Display for Datum {
    /// Integers in decimal, UTF-8 bytes as text, other bytes as `\x` hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Datum::Uint(v) => write!(f, "{v}"),
            Datum::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => f.write_str(s),
                Err(_) => write!(f, "\\x{}", hex::encode(b)),
            },
        }
    }
}

/// Typed extraction of a [`Datum`] (what `Client::get` returns). Implemented for one
/// integer type only (`u64`), so integer literals in `assert_eq!(get(..), Some(7))` infer;
/// wider integers come back as [`Datum::Uint`].
pub trait FromDatum: Sized {
    fn from_datum(d: Datum) -> Result<Self>;
}

fn wrong_type(want: &str, got: &Datum) -> FheKvError {
    let kind = match got {
        Datum::Uint(_) => "an integer",
        Datum::Bytes(_) => "a byte string",
    };
    FheKvError::InvalidArgument(format!("expected {want}, the table holds {kind}"))
}

impl FromDatum for Datum {
    fn from_datum(d: Datum) -> Result<Datum> {
        Ok(d)
    }
}
impl FromDatum for u64 {
    fn from_datum(d: Datum) -> Result<u64> {
        match d {
            Datum::Uint(v) => u64::try_from(v)
                .map_err(|_| FheKvError::InvalidArgument(format!("{v} does not fit a u64"))),
            other => Err(wrong_type("an integer", &other)),
        }
    }
}
impl FromDatum for Vec<u8> {
    fn from_datum(d: Datum) -> Result<Vec<u8>> {
        match d {
            Datum::Bytes(b) => Ok(b),
            other => Err(wrong_type("a byte string", &other)),
        }
    }
}
impl FromDatum for String {
    fn from_datum(d: Datum) -> Result<String> {
        let bytes = Vec::<u8>::from_datum(d)?;
        String::from_utf8(bytes)
            .map_err(|e| FheKvError::InvalidArgument(format!("the value is not UTF-8 text: {e}")))
    }
}

/// How one table's keys and values map to its key and value integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableCodec {
    pub key: KeyType,
    pub value: ValueType,
    pub key_width: Width,
    pub value_width: Width,
}

fn uint_le(v: u128, width: Width, what: &str) -> Result<Vec<u8>> {
    if width.bits() < 128 && v >> width.bits() != 0 {
        return Err(FheKvError::InvalidArgument(format!(
            "{what} {v} does not fit in {} bits",
            width.bits()
        )));
    }
    let mut out = vec![0u8; width.bytes()];
    let n = width.bytes().min(16);
    out[..n].copy_from_slice(&v.to_le_bytes()[..n]);
    Ok(out)
}

fn uint_of_le(le: &[u8]) -> Result<u128> {
    if le.iter().skip(16).any(|&b| b != 0) {
        return Err(FheKvError::InvalidArgument(
            "the value exceeds 2^128; read it with the *_le APIs".into(),
        ));
    }
    let mut word = [0u8; 16];
    let n = le.len().min(16);
    word[..n].copy_from_slice(&le[..n]);
    Ok(u128::from_le_bytes(word))
}

/// `[len, content, zero padding]` of exactly `max + 1` bytes.
fn length_prefixed(bytes: &[u8], max: usize, what: &str) -> Result<Vec<u8>> {
    if bytes.len() > max {
        return Err(FheKvError::InvalidArgument(format!(
            "{what} is {} bytes, the table holds at most {max}",
            bytes.len()
        )));
    }
    let mut out = vec![0u8; max + 1];
    out[0] = bytes.len() as u8;
    out[1..=bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

fn of_length_prefixed(plain: &[u8], max: usize, what: &'static str) -> Result<Vec<u8>> {
    let corrupt = |detail: String| FheKvError::BadPayload { what, detail };
    let len = plain[0] as usize;
    if len > max {
        return Err(corrupt(format!("length byte {len} exceeds {max}")));
    }
    if plain[len + 1..].iter().any(|&b| b != 0) {
        return Err(corrupt("non-zero padding".into()));
    }
    Ok(plain[1..=len].to_vec())
}

impl TableCodec {
    /// The codec of a new table: chooses the key width (text tags: by capacity) and the
    /// smallest value width holding the key part and the value part.
    pub fn new(key: KeyType, value: ValueType, capacity: usize) -> Result<TableCodec> {
        let key_width = key.width_for(capacity)?;
        let need = Self::key_part_len(key) + value.plain_len();
        let value_width = Width::ALL
            .into_iter()
            .find(|w| w.bytes() >= need)
            .ok_or_else(|| {
                FheKvError::InvalidArgument(format!(
                    "{} keys plus {} values need {need} bytes per value, more than 32 (256 bits)",
                    key.label(),
                    value.label()
                ))
            })?;
        Ok(TableCodec {
            key,
            value,
            key_width,
            value_width,
        })
    }

    /// The codec of an existing table, checking that its recorded widths are consistent.
    pub fn of_table(
        key_type: &str,
        value_type: &str,
        key_bits: u32,
        value_bits: u32,
    ) -> Result<TableCodec> {
        let key = KeyType::parse(key_type)?;
        let value = ValueType::parse(value_type)?;
        let codec = TableCodec {
            key,
            value,
            key_width: Width::from_bits(key_bits)?,
            value_width: Width::from_bits(value_bits)?,
        };
        let need = Self::key_part_len(key) + value.plain_len();
        if codec.value_width.bytes() < need {
            return Err(FheKvError::InvalidArgument(format!(
                "{value_type} values with {key_type} keys need {need} bytes, the table has {value_bits} bits"
            )));
        }
        if let KeyType::Text(_) = key {
            if !matches!(codec.key_width, Width::W64 | Width::W128) {
                return Err(FheKvError::InvalidArgument(format!(
                    "text keys use 64- or 128-bit tags, the table has {key_bits}"
                )));
            }
        }
        Ok(codec)
    }

    fn key_part_len(key: KeyType) -> usize {
        match key {
            KeyType::Uint(_) => 0,
            KeyType::Text(k) => k + 1,
        }
    }

    /// The plaintext of the key integer: the tag (text) or the number.
    pub fn key_plain(&self, tags: &TagSecret, key: &Datum) -> Result<Vec<u8>> {
        match (self.key, key) {
            (KeyType::Uint(w), Datum::Uint(v)) => uint_le(*v, w, "key"),
            (KeyType::Text(k), Datum::Bytes(b)) => {
                if b.len() > k {
                    return Err(FheKvError::InvalidArgument(format!(
                        "key is {} bytes, the table's keys are text:{k}",
                        b.len()
                    )));
                }
                Ok(tags.tag(b, self.key_width))
            }
            (t, d) => Err(wrong_type(&format!("a {} key", t.label()), d)),
        }
    }

    /// The plaintext of the value integer: `[key part][value part][zero padding]`.
    pub fn value_plain(&self, key: &Datum, value: &Datum) -> Result<Vec<u8>> {
        let mut plain = match (self.key, key) {
            (KeyType::Text(k), Datum::Bytes(b)) => length_prefixed(b, k, "key")?,
            (KeyType::Uint(_), _) => Vec::new(),
            (t, d) => return Err(wrong_type(&format!("a {} key", t.label()), d)),
        };
        match (self.value, value) {
            (ValueType::Uint(w), Datum::Uint(v)) => plain.extend(uint_le(*v, w, "value")?),
            (ValueType::Bytes(n), Datum::Bytes(b)) => plain.extend(length_prefixed(b, n, "value")?),
            (t, d) => return Err(wrong_type(&format!("a {} value", t.label()), d)),
        }
        plain.resize(self.value_width.bytes(), 0);
        Ok(plain)
    }

    /// Inverse of [`Self::value_plain`]: the stored key (text tables) and the value.
    pub fn decode_value(&self, plain: &[u8]) -> Result<(Option<Datum>, Datum)> {
        if plain.len() != self.value_width.bytes() {
            return Err(FheKvError::BadPayload {
                what: "value",
                detail: format!(
                    "{} bytes instead of {}",
                    plain.len(),
                    self.value_width.bytes()
                ),
            });
        }
        let split = Self::key_part_len(self.key);
        let (key_part, rest) = plain.split_at(split);
        let key = match self.key {
            KeyType::Text(k) => Some(Datum::Bytes(of_length_prefixed(key_part, k, "stored key")?)),
            KeyType::Uint(_) => None,
        };
        let value_len = self.value.plain_len();
        if rest[value_len..].iter().any(|&b| b != 0) {
            return Err(FheKvError::BadPayload {
                what: "value",
                detail: "non-zero padding".into(),
            });
        }
        let value = match self.value {
            ValueType::Uint(_) => Datum::Uint(uint_of_le(&rest[..value_len])?),
            ValueType::Bytes(n) => {
                Datum::Bytes(of_length_prefixed(&rest[..value_len], n, "value")?)
            }
        };
        Ok((key, value))
    }

    /// The key of a stored row of a `uN` table (text tables keep it in the value).
    pub fn decode_uint_key(&self, plain: &[u8]) -> Result<Datum> {
        Ok(Datum::Uint(uint_of_le(plain)?))
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
        for label in ["text:15", "u8", "u64", "u128", "u256"] {
            assert_eq!(KeyType::parse(label).unwrap().label(), label);
        }
        for label in ["bytes:1", "bytes:15", "bytes:31", "u16", "u256"] {
            assert_eq!(ValueType::parse(label).unwrap().label(), label);
        }
        for bad in [
            "", "u7", "u512", "bytes", "string", "text", "text:31", "text:0",
        ] {
            assert!(KeyType::parse(bad).is_err(), "{bad}");
        }
        for bad in ["bytes:0", "bytes:32", "bytes:x", "u12", "text:4"] {
            assert!(ValueType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codecs_pick_the_smallest_width_and_round_trip() {
        let c = TableCodec::new(KeyType::Uint(Width::W64), ValueType::Bytes(7), 10).unwrap();
        assert_eq!((c.key_width, c.value_width), (Width::W64, Width::W64));
        let c = TableCodec::new(KeyType::Uint(Width::W64), ValueType::Bytes(31), 10).unwrap();
        assert_eq!(c.value_width, Width::W256);
        let c = TableCodec::new(KeyType::Text(15), ValueType::Bytes(15), 200).unwrap();
        assert_eq!((c.key_width, c.value_width), (Width::W64, Width::W256));
        assert!(TableCodec::new(KeyType::Text(16), ValueType::Bytes(15), 2).is_err());
        let tags = TagSecret::derive(&[1, 0, 1]);
        for (k, v) in [
            ("", ""),
            ("patient-4711", "héllo ✓"),
            ("k", "0123456789abcde"),
        ] {
            let (k, v) = (Datum::from(k), Datum::from(v));
            assert_eq!(c.key_plain(&tags, &k).unwrap().len(), 8);
            let plain = c.value_plain(&k, &v).unwrap();
            assert_eq!(plain.len(), 32);
            assert_eq!(c.decode_value(&plain).unwrap(), (Some(k), v));
        }
        assert!(c
            .value_plain(&"k".into(), &"0123456789abcdef".into())
            .is_err());
        assert!(c.key_plain(&tags, &Datum::Uint(3)).is_err());
        let mut bad = c.value_plain(&"ab".into(), &"cd".into()).unwrap();
        bad[31] = 1;
        assert!(c.decode_value(&bad).is_err(), "non-zero padding is refused");
        bad = c.value_plain(&"ab".into(), &"cd".into()).unwrap();
        bad[0] = 40;
        assert!(
            c.decode_value(&bad).is_err(),
            "a length beyond K is refused"
        );
        let u =
            TableCodec::new(KeyType::Uint(Width::W16), ValueType::Uint(Width::W128), 4).unwrap();
        let plain = u
            .value_plain(&Datum::Uint(7), &Datum::Uint(u128::MAX))
            .unwrap();
        assert_eq!(
            u.decode_value(&plain).unwrap(),
            (None, Datum::Uint(u128::MAX))
        );
        assert!(u.key_plain(&tags, &Datum::Uint(1 << 16)).is_err());
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
