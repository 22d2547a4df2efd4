//! The wire envelope. Every ciphertext and key that crosses SQL is
//!
//! ```text
//! offset size field
//!      0    4 magic  "FHKV"
//!      4    1 format version (1)
//!      5    1 kind   (see [`Kind`])
//!      6    2 bits   width of the encrypted integer (8…256), little endian; 0 where not
//!                     applicable (was `bits: u8` + a zero reserved byte, so version-1
//!                     envelopes of widths ≤ 64 read the same)
//!      8   16 key_id fingerprint of the server key the payload belongs to
//!     24    8 payload length, little endian; must equal the remaining length
//!     32    … payload: TFHE-rs `safe_serialize` bytes
//! ```
//!
//! [`Envelope::parse`] checks all of the header cheaply and never touches the payload, so
//! a wrong kind/key/width is reported precisely before any TFHE decoding happens.

use crate::error::{malformed, FheKvError, Result};
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"FHKV";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    ClientKey = 1,
    ServerKey = 2,
    QueryKey = 3,
    Value = 4,
    Row = 5,
    GetResult = 6,
    SetStatus = 7,
    DeleteStatus = 8,
    /// Two-round GET, round 1 answer: per-slot mismatch counts.
    LocateResult = 9,
    /// Two-round GET, round 2 query: the slot index as GGSW bits.
    FetchQuery = 10,
    /// Two-round GET, round 2 answer: the selected slot's GLWEs.
    FetchResult = 11,
    /// A query key for a bucketed table: the encrypted key (a `query_key` envelope) and
    /// its two candidate buckets as GGSW selector bits; `bits` is the key width.
    BucketQueryKey = 12,
    /// The two candidate buckets of a key as GGSW selector bits, nothing else (the bucket
    /// read, `fhe_fetch` on a bucketed table); `bits` is the selector bits per half.
    BucketSelectors = 13,
    /// A stored bucket of a bucketed table (one GLWE); `bits` is its slot count.
    BucketRow = 14,
    /// A bucket read's answer: the two selected buckets.
    BucketReadResult = 15,
    /// A server key with the bucketed layout's key material (packing key-switching key).
    ServerKeyBundle = 16,
    /// A key owner's write to a bucketed table (`fhe_write`): the selectors of a bucket
    /// read, one encrypted delta per half, and the table state the read saw.
    BucketWrite = 17,
    /// A query key for leveled equality: one GGSW per key chunk; `bits` is the key width.
    LeveledQueryKey = 18,
    /// A stored slot of the leveled format (key GLWE + value lookup-table GLWEs); `bits`
    /// is the key width.
    LeveledRow = 19,
    /// A leveled GET's answer: the found flag and the value's nibbles as LWE samples;
    /// `bits` is the value width.
    LeveledAnswer = 20,
    /// Round 1 of a leveled two-round GET: the found flag and the slot's index bits;
    /// `bits` is the number of index bits.
    LeveledLocation = 21,
    /// Round 1 of a leveled two-round SET: the key's location, the any-vacant flag and
    /// the first vacant slot's index bits; `bits` is the number of index bits.
    LeveledSetLocation = 22,
    /// Round 2 of a leveled two-round GET: the slot's index bits as GGSWs; `bits` is
    /// their number.
    LeveledFetchQuery = 23,
    /// Round 2's answer: the fetched slot's value GLWEs; `bits` is the value width.
    LeveledFetchResult = 24,
    /// Round 2 of a leveled two-round SET: index bits and enable as GGSWs, and the new
    /// row; `bits` is the number of index bits.
    LeveledSetWrite = 25,
    /// A leveled DELETE's status: whether the key was there, one LWE sample; `bits` is 1.
    LeveledStatus = 26,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::ClientKey,
            2 => Kind::ServerKey,
            3 => Kind::QueryKey,
            4 => Kind::Value,
            5 => Kind::Row,
            6 => Kind::GetResult,
            7 => Kind::SetStatus,
            8 => Kind::DeleteStatus,
            9 => Kind::LocateResult,
            10 => Kind::FetchQuery,
            11 => Kind::FetchResult,
            12 => Kind::BucketQueryKey,
            13 => Kind::BucketSelectors,
            14 => Kind::BucketRow,
            15 => Kind::BucketReadResult,
            16 => Kind::ServerKeyBundle,
            17 => Kind::BucketWrite,
            18 => Kind::LeveledQueryKey,
            19 => Kind::LeveledRow,
            20 => Kind::LeveledAnswer,
            21 => Kind::LeveledLocation,
            22 => Kind::LeveledSetLocation,
            23 => Kind::LeveledFetchQuery,
            24 => Kind::LeveledFetchResult,
            25 => Kind::LeveledSetWrite,
            26 => Kind::LeveledStatus,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::ClientKey => "client_key",
            Kind::ServerKey => "server_key",
            Kind::QueryKey => "query_key",
            Kind::Value => "value",
            Kind::Row => "row",
            Kind::GetResult => "get_result",
            Kind::SetStatus => "set_status",
            Kind::DeleteStatus => "delete_status",
            Kind::LocateResult => "locate_result",
            Kind::FetchQuery => "fetch_query",
            Kind::FetchResult => "fetch_result",
            Kind::BucketQueryKey => "bucket_query_key",
            Kind::BucketSelectors => "bucket_selectors",
            Kind::BucketRow => "bucket_row",
            Kind::BucketReadResult => "bucket_read_result",
            Kind::ServerKeyBundle => "server_key_bundle",
            Kind::BucketWrite => "bucket_write",
            Kind::LeveledQueryKey => "leveled_query_key",
            Kind::LeveledRow => "leveled_row",
            Kind::LeveledAnswer => "leveled_answer",
            Kind::LeveledLocation => "leveled_location",
            Kind::LeveledSetLocation => "leveled_set_location",
            Kind::LeveledFetchQuery => "leveled_fetch_query",
            Kind::LeveledFetchResult => "leveled_fetch_result",
            Kind::LeveledSetWrite => "leveled_set_write",
            Kind::LeveledStatus => "leveled_status",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Fingerprint of a serialized compressed server key: the first 16 bytes of its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    pub fn of_server_key_bytes(payload: &[u8]) -> KeyId {
        let digest = Sha256::digest(payload);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        KeyId(id)
    }

    pub fn parse(text: &str) -> Result<KeyId> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| FheKvError::InvalidArgument(format!("key_id '{text}' is not hex: {e}")))?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| {
            FheKvError::InvalidArgument(format!("key_id '{text}' must be 32 hex digits"))
        })?;
        Ok(KeyId(arr))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

/// A parsed envelope header plus a borrowed payload.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub kind: Kind,
    pub bits: u16,
    pub key_id: KeyId,
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    pub fn encode(kind: Kind, bits: u16, key_id: KeyId, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(kind as u8);
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(&key_id.0);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Parse and validate the header. `what` names the argument in error messages.
    pub fn parse(bytes: &'a [u8], what: &'static str) -> Result<Envelope<'a>> {
        if bytes.is_empty() {
            return Err(malformed(what, "it is empty"));
        }
        if bytes.len() < HEADER_LEN {
            return Err(malformed(
                what,
                format!(
                    "{} bytes is shorter than the {HEADER_LEN}-byte header",
                    bytes.len()
                ),
            ));
        }
        if bytes[0..4] != MAGIC {
            return Err(malformed(what, "bad magic (expected \"FHKV\")"));
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(malformed(
                what,
                format!(
                    "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                    bytes[4]
                ),
            ));
        }
        let kind = Kind::from_u8(bytes[5])
            .ok_or_else(|| malformed(what, format!("unknown kind {}", bytes[5])))?;
        let bits = u16::from_le_bytes([bytes[6], bytes[7]]);
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&bytes[8..24]);
        let declared = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
        let actual = (bytes.len() - HEADER_LEN) as u64;
        if declared != actual {
            return Err(malformed(
                what,
                format!("header declares a {declared}-byte payload but {actual} bytes follow (truncated or padded)"),
            ));
        }
        Ok(Envelope {
            kind,
            bits,
            key_id: KeyId(key_id),
            payload: &bytes[HEADER_LEN..],
        })
    }

    /// Check kind and key_id, in that order, with precise errors.
    pub fn expect(&self, what: &'static str, kind: Kind, key_id: Option<KeyId>) -> Result<()> {
        if self.kind != kind {
            return Err(FheKvError::WrongKind {
                what,
                expected: kind,
                got: self.kind,
            });
        }
        if let Some(expected) = key_id {
            if self.key_id != expected {
                return Err(FheKvError::KeyMismatch {
                    what,
                    expected,
                    got: self.key_id,
                });
            }
        }
        Ok(())
    }

    pub fn expect_bits(&self, what: &'static str, bits: u32) -> Result<()> {
        if u32::from(self.bits) != bits {
            return Err(FheKvError::WidthMismatch {
                what,
                expected: bits,
                got: u32::from(self.bits),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        Envelope::encode(Kind::QueryKey, 64, KeyId([7; 16]), b"payload")
    }

    #[test]
    fn roundtrip() {
        let bytes = sample();
        let env = Envelope::parse(&bytes, "key").unwrap();
        assert_eq!(env.kind, Kind::QueryKey);
        assert_eq!(env.bits, 64);
        assert_eq!(env.key_id, KeyId([7; 16]));
        assert_eq!(env.payload, b"payload");
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(Envelope::parse(&bytes[..len], "key").is_err(), "len {len}");
        }
    }

    #[test]
    fn header_fields_are_validated() {
        let good = sample();
        for (offset, value) in [(0, b'X'), (4, 2), (5, 0), (5, 99), (24, 0xff), (31, 1)] {
            let mut bad = good.clone();
            bad[offset] = value;
            assert!(Envelope::parse(&bad, "key").is_err(), "offset {offset}");
        }
        let mut padded = good.clone();
        padded.push(0);
        assert!(Envelope::parse(&padded, "key").is_err());
        // The width is a little-endian u16 at offsets 6..8.
        let mut wide = good.clone();
        wide[7] = 1;
        let env = Envelope::parse(&wide, "key").unwrap();
        assert_eq!(env.bits, 256 + u16::from(good[6]));
        assert!(env.expect_bits("key", u32::from(good[6])).is_err());
    }

    #[test]
    fn expect_reports_kind_key_and_width() {
        let bytes = sample();
        let env = Envelope::parse(&bytes, "key").unwrap();
        assert!(matches!(
            env.expect("key", Kind::Value, None),
            Err(FheKvError::WrongKind { .. })
        ));
        assert!(matches!(
            env.expect("key", Kind::QueryKey, Some(KeyId([8; 16]))),
            Err(FheKvError::KeyMismatch { .. })
        ));
        assert!(env
            .expect("key", Kind::QueryKey, Some(KeyId([7; 16])))
            .is_ok());
        assert!(matches!(
            env.expect_bits("key", 32),
            Err(FheKvError::WidthMismatch { .. })
        ));
    }

    #[test]
    fn key_id_hex_roundtrip() {
        let id = KeyId::of_server_key_bytes(b"abc");
        assert_eq!(KeyId::parse(&id.to_hex()).unwrap(), id);
        assert!(KeyId::parse("zz").is_err());
        assert!(KeyId::parse("abcd").is_err());
    }
}
