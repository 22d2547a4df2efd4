//! Keys.
//!
//! * The **client key** (secret) is a TFHE-rs high-level `ClientKey` with compression
//!   enabled; it stays with the data owner, in a file written 0600.
//! * The **server key** the owner uploads is the high-level `CompressedServerKey`
//!   (~76 MB serialized). Its `key_id` is the fingerprint of exactly those bytes, so
//!   uploading the same key twice is idempotent and a key cannot be silently replaced.
//! * [`ServerKeys`] is what a backend keeps in memory after loading: the shortint
//!   server key and the list compression/decompression keys (~250 MB).

use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::params::{config, limits};
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::shortint::list_compression::{CompressionKey, CompressionPrivateKeys, DecompressionKey};

/// The data owner's secret key plus the key_id of its server key.
pub struct ClientKeys {
    pub(crate) hl: tfhe::ClientKey,
    pub(crate) key_id: KeyId,
    /// The private compression key inside `hl`, taken out once: every answer, status and
    /// stored row is a compressed list the client opens with it (`client_rows`), and
    /// TFHE-rs only hands it out by consuming a clone of the whole client key.
    pub(crate) compression: CompressionPrivateKeys,
}

/// Bytes to upload with `fhe_kv.register_server_key` (an envelope of kind `server_key`).
pub struct ServerKeyUpload(pub Vec<u8>);

impl ClientKeys {
    /// Generate a fresh client key and the matching compressed server key.
    /// Takes a few seconds with the production parameters.
    pub fn generate() -> Result<(ClientKeys, ServerKeyUpload)> {
        let hl = tfhe::ClientKey::generate(config());
        let compressed = tfhe::CompressedServerKey::new(&hl);
        let mut payload = Vec::new();
        safe_serialize(&compressed, &mut payload, limits::SERVER_KEY)
            .map_err(|e| FheKvError::Internal(format!("serializing the server key: {e}")))?;
        let key_id = KeyId::of_server_key_bytes(&payload);
        let upload = Envelope::encode(Kind::ServerKey, 0, key_id, &payload);
        Ok((ClientKeys::new(hl, key_id)?, ServerKeyUpload(upload)))
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Serialize for the key file (an envelope of kind `client_key`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut payload = Vec::new();
        safe_serialize(&self.hl, &mut payload, limits::CLIENT_KEY)
            .map_err(|e| FheKvError::Internal(format!("serializing the client key: {e}")))?;
        Ok(Envelope::encode(Kind::ClientKey, 0, self.key_id, &payload))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ClientKeys> {
        let env = Envelope::parse(bytes, "client key")?;
        env.expect("client key", Kind::ClientKey, None)?;
        let hl: tfhe::ClientKey =
            tfhe::safe_serialization::safe_deserialize(env.payload, limits::CLIENT_KEY).map_err(
                |detail| FheKvError::BadPayload {
                    what: "client key",
                    detail,
                },
            )?;
        ClientKeys::new(hl, env.key_id)
    }

    fn new(hl: tfhe::ClientKey, key_id: KeyId) -> Result<ClientKeys> {
        let (_, _, private_compression, ..) = hl.clone().into_raw_parts();
        let compression = private_compression
            .ok_or_else(|| FheKvError::BadPayload {
                what: "client key",
                detail: "it has no compression key (not an fhe_kv client key)".into(),
            })?
            .into_raw_parts();
        Ok(ClientKeys {
            hl,
            key_id,
            compression,
        })
    }
}

/// The evaluation keys a backend needs, decompressed and ready.
pub struct ServerKeys {
    pub key_id: KeyId,
    pub sks: tfhe::shortint::ServerKey,
    pub compression: CompressionKey,
    pub decompression: DecompressionKey,
}

impl ServerKeys {
    /// Validate an uploaded server-key envelope without decompressing it: header, the
    /// fingerprint, and TFHE-rs conformance with the pinned parameters.
    /// Returns the key_id and the compressed key.
    pub fn validate_upload(bytes: &[u8]) -> Result<(KeyId, tfhe::CompressedServerKey)> {
        let env = Envelope::parse(bytes, "server key")?;
        env.expect("server key", Kind::ServerKey, None)?;
        if env.payload.len() as u64 > limits::SERVER_KEY {
            return Err(FheKvError::TooLarge {
                what: "server key",
                size: env.payload.len(),
                limit: limits::SERVER_KEY,
            });
        }
        let fingerprint = KeyId::of_server_key_bytes(env.payload);
        if fingerprint != env.key_id {
            return Err(FheKvError::Malformed {
                what: "server key",
                detail: format!(
                    "its header says key_id {} but the payload's fingerprint is {fingerprint}",
                    env.key_id
                ),
            });
        }
        let compressed: tfhe::CompressedServerKey =
            safe_deserialize_conformant(env.payload, limits::SERVER_KEY, &config().into())
                .map_err(|detail| FheKvError::BadPayload {
                    what: "server key",
                    detail,
                })?;
        Ok((fingerprint, compressed))
    }

    /// Load a server key from its upload envelope (validates, then decompresses: ~1-3 s).
    pub fn from_upload(bytes: &[u8]) -> Result<ServerKeys> {
        let (key_id, compressed) = Self::validate_upload(bytes)?;
        let hl = compressed.decompress();
        let (integer_key, _, compression, decompression, ..) = hl.into_raw_parts();
        let compression = compression
            .ok_or_else(|| FheKvError::Internal("server key lacks a compression key".into()))?
            .into_raw_parts();
        let decompression = decompression
            .ok_or_else(|| FheKvError::Internal("server key lacks a decompression key".into()))?
            .into_raw_parts();
        Ok(ServerKeys {
            key_id,
            sks: integer_key.into_raw_parts(),
            compression,
            decompression,
        })
    }
}
