//! Keys.
//!
//! * The **client key** (secret) is a TFHE-rs high-level `ClientKey` with compression
//!   enabled; it stays with the data owner, in a file written 0600.
//! * The **server key** the owner uploads is the high-level `CompressedServerKey`
//!   (~76 MB serialized). Its `key_id` is the fingerprint of exactly those bytes, so
//!   uploading the same key twice is idempotent and a key cannot be silently replaced.
//! * [`ServerKeys`] is what a backend keeps in memory after loading: the shortint
//!   server key and the list compression/decompression keys (~250 MB).

use crate::bucket::hash::BucketSecret;
use crate::bucket::params as bucket_params;
use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::params::{config, limits};
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::prelude::{
    allocate_and_generate_new_seeded_lwe_packing_keyswitch_key, new_seeder, DecompositionBaseLog,
    DecompositionLevelCount, GlweSecretKeyOwned, LwePackingKeyswitchKeyConformanceParams,
    LwePackingKeyswitchKeyOwned, SeededLwePackingKeyswitchKeyOwned,
};
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe::shortint::list_compression::{CompressionKey, CompressionPrivateKeys, DecompressionKey};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// The data owner's secret key plus the key_id of its server key.
pub struct ClientKeys {
    pub(crate) hl: tfhe::ClientKey,
    pub(crate) key_id: KeyId,
    /// The private compression key inside `hl`, taken out once: every answer, status and
    /// stored row is a compressed list the client opens with it (`client_rows`), and
    /// TFHE-rs only hands it out by consuming a clone of the whole client key.
    pub(crate) compression: CompressionPrivateKeys,
    /// The PBS's GLWE secret key inside `hl` (k = 1, N = 2048): bucketed tables store
    /// their buckets under it and queries carry GGSW selectors under it.
    pub(crate) glwe: GlweSecretKeyOwned<u64>,
    /// The secret of the key → bucket PRF ([`crate::bucket::hash`]).
    pub(crate) buckets: BucketSecret,
}

/// What a server-key upload carries: the high-level compressed server key and, for
/// bucketed tables, the packing key-switching key from the big LWE key to the bucket
/// GLWE key ([`crate::bucket::params`]). Envelope kind `server_key_bundle`; the older
/// kind `server_key` carries the compressed server key alone (flat tables only).
#[derive(Serialize, Deserialize, Versionize)]
#[versionize(ServerKeyBundleVersions)]
pub struct ServerKeyBundle {
    hl: tfhe::CompressedServerKey,
    bucket_packing_key: SeededLwePackingKeyswitchKeyOwned<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum ServerKeyBundleVersions {
    V0(ServerKeyBundle),
}

impl tfhe::named::Named for ServerKeyBundle {
    const NAME: &'static str = "fhe_kv::ServerKeyBundle";
}

/// The conformance parameters of a bundle: the pinned configuration and the packing key's.
pub struct ServerKeyBundleShape {
    hl: tfhe::Config,
    packing: LwePackingKeyswitchKeyConformanceParams<u64>,
}

impl ParameterSetConformant for ServerKeyBundle {
    type ParameterSet = ServerKeyBundleShape;

    fn is_conformant(&self, shape: &ServerKeyBundleShape) -> bool {
        self.hl.is_conformant(&shape.hl.into())
            && self.bucket_packing_key.is_conformant(&shape.packing)
    }
}

/// Bytes to upload with `fhe_kv.register_server_key` (an envelope of kind `server_key`).
pub struct ServerKeyUpload(pub Vec<u8>);

impl ClientKeys {
    /// Generate a fresh client key and the matching server key bundle (compressed server
    /// key + the bucketed layout's packing key). Takes several seconds.
    pub fn generate() -> Result<(ClientKeys, ServerKeyUpload)> {
        let hl = tfhe::ClientKey::generate(config());
        let compressed = tfhe::CompressedServerKey::new(&hl);
        let glwe = glwe_secret_key(&hl)?;
        let lwe = glwe.clone().into_lwe_secret_key();
        let mut seeder = new_seeder();
        let bucket_packing_key = allocate_and_generate_new_seeded_lwe_packing_keyswitch_key(
            &lwe,
            &glwe,
            DecompositionBaseLog(bucket_params::PKS_BASE_LOG),
            DecompositionLevelCount(bucket_params::PKS_LEVELS),
            bucket_params::noise_distribution(),
            bucket_params::ciphertext_modulus(),
            seeder.as_mut(),
        );
        let bundle = ServerKeyBundle {
            hl: compressed,
            bucket_packing_key,
        };
        let mut payload = Vec::new();
        safe_serialize(&bundle, &mut payload, limits::SERVER_KEY)
            .map_err(|e| FheKvError::Internal(format!("serializing the server key: {e}")))?;
        let key_id = KeyId::of_server_key_bytes(&payload);
        let upload = Envelope::encode(Kind::ServerKeyBundle, 0, key_id, &payload);
        Ok((ClientKeys::new(hl, key_id)?, ServerKeyUpload(upload)))
    }

    /// Generate a key pair whose upload is the older `server_key` kind (no bucket key
    /// material): what fhe_kv before 0.2.0 made. For tests of flat-only keys.
    pub fn generate_flat_only() -> Result<(ClientKeys, ServerKeyUpload)> {
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
        let glwe = glwe_secret_key(&hl)?;
        let buckets = BucketSecret::derive(glwe.as_ref());
        Ok(ClientKeys {
            hl,
            key_id,
            compression,
            glwe,
            buckets,
        })
    }
}

/// The PBS's GLWE secret key of a high-level client key (the big LWE key, as a GLWE key).
fn glwe_secret_key(hl: &tfhe::ClientKey) -> Result<GlweSecretKeyOwned<u64>> {
    let shortint = hl.clone().into_raw_parts().0.into_raw_parts();
    match shortint.atomic_pattern {
        tfhe::shortint::client_key::atomic_pattern::AtomicPatternClientKey::Standard(ap) => {
            Ok(ap.into_raw_parts().0)
        }
        _ => Err(FheKvError::BadPayload {
            what: "client key",
            detail: "it is not for fhe_kv's parameter set (KS-PBS atomic pattern)".into(),
        }),
    }
}

/// The evaluation keys a backend needs, decompressed and ready.
pub struct ServerKeys {
    pub key_id: KeyId,
    pub sks: tfhe::shortint::ServerKey,
    pub compression: CompressionKey,
    pub decompression: DecompressionKey,
    /// The bucketed layout's packing key (~128 MiB); `None` for a `server_key` upload
    /// made before fhe_kv 0.2.0, which serves flat tables only.
    pub bucket_packing: Option<LwePackingKeyswitchKeyOwned<u64>>,
}

impl ServerKeys {
    /// Validate an uploaded server-key envelope without decompressing it: header, the
    /// fingerprint, and TFHE-rs conformance with the pinned parameters.
    /// Returns the key_id and the compressed key.
    pub fn validate_upload(bytes: &[u8]) -> Result<(KeyId, ValidatedUpload)> {
        let env = Envelope::parse(bytes, "server key")?;
        if env.kind != Kind::ServerKeyBundle {
            env.expect("server key", Kind::ServerKey, None)?;
        }
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
        let bad = |detail| FheKvError::BadPayload {
            what: "server key",
            detail,
        };
        let upload = if env.kind == Kind::ServerKeyBundle {
            let shape = ServerKeyBundleShape {
                hl: config(),
                packing: bucket_params::pksk_conformance(),
            };
            let bundle: ServerKeyBundle =
                safe_deserialize_conformant(env.payload, limits::SERVER_KEY, &shape)
                    .map_err(bad)?;
            ValidatedUpload {
                hl: bundle.hl,
                bucket_packing: Some(bundle.bucket_packing_key),
            }
        } else {
            ValidatedUpload {
                hl: safe_deserialize_conformant(env.payload, limits::SERVER_KEY, &config().into())
                    .map_err(bad)?,
                bucket_packing: None,
            }
        };
        Ok((fingerprint, upload))
    }

    /// Load a server key from its upload envelope (validates, then decompresses: ~1-3 s).
    pub fn from_upload(bytes: &[u8]) -> Result<ServerKeys> {
        let (key_id, upload) = Self::validate_upload(bytes)?;
        Self::from_validated(key_id, upload)
    }

    /// Decompress an upload [`ServerKeys::validate_upload`] accepted (for callers that
    /// look at the key_id before paying for the decompression).
    pub fn from_validated(key_id: KeyId, upload: ValidatedUpload) -> Result<ServerKeys> {
        let bucket_packing = upload
            .bucket_packing
            .map(|seeded| seeded.decompress_into_lwe_packing_keyswitch_key());
        let hl = upload.hl.decompress();
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
            bucket_packing,
        })
    }

    /// The bucketed layout's packing key, or a clear refusal for a flat-only key.
    pub fn bucket_packing(&self) -> Result<&LwePackingKeyswitchKeyOwned<u64>> {
        self.bucket_packing.as_ref().ok_or_else(|| {
            FheKvError::InvalidArgument(format!(
                "server key {} was made before fhe_kv 0.2.0 and has no key material for \
                 bucketed tables: generate a new key pair (fhe-kv keygen) for bucketed tables, \
                 or use layout => 'flat' with this key",
                self.key_id
            ))
        })
    }
}

/// A validated (conformant, fingerprinted) server-key upload, not yet decompressed.
pub struct ValidatedUpload {
    pub hl: tfhe::CompressedServerKey,
    pub bucket_packing: Option<SeededLwePackingKeyswitchKeyOwned<u64>>,
}

impl ValidatedUpload {
    /// Whether this key serves bucketed tables.
    pub fn has_bucket_key(&self) -> bool {
        self.bucket_packing.is_some()
    }
}
