//! Wire formats and parameters of the two-round GET ([docs/two-round-get.md]).
//!
//! * Round 1, **locate** (`fhe_locate`): for every slot the server returns the number of
//!   mismatching key blocks plus the vacant flag, in groups of [`LOCATE_GROUP`] terms, as
//!   one compressed list per query key ([`Kind::LocateResult`]). The key owner decrypts it
//!   and learns which slot, if any, holds its key.
//! * Round 2, **fetch** (`fhe_fetch`): the key owner sends the slot index as
//!   [`index_bits`] GGSW encryptions of its bits under the compression GLWE key
//!   ([`Kind::FetchQuery`]); the server selects that slot's stored GLWEs with a CMux tree
//!   (external products, no bootstrap) and returns them ([`Kind::FetchResult`]).
//!
//! The server learns nothing it did not learn from a one-round GET: both rounds touch every
//! slot with data-independent work, and the client must run round 2 after a miss too (on a
//! random slot), so even the number of calls does not depend on the answer.

use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::params::{compression_params, limits, Width};
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::fft_impl::fft64::ABox;
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Terms (vacant flag and per-block `[k ≠ q]` bits) summed into one locate block. The
/// sum is at most 7, so it is exact in the compression's padded 3-bit encoding (mod 8).
pub const LOCATE_GROUP: usize = 7;

/// Locate blocks per slot for keys of `key` width: ⌈(1 + K) / 7⌉ (5 for u64 keys).
pub fn locate_groups(key: Width) -> usize {
    (1 + key.blocks()).div_ceil(LOCATE_GROUP)
}

/// Decomposition of the fetch selectors' GGSW ciphertexts: base 2^6, 3 levels. With the
/// compression GLWE (k = 4, N = 256) this adds a variance of ~2^-23.3 per CMux level to
/// the stored sample's ~2^-16.6 ([`crate::noise::FetchNoise`]).
pub const FETCH_BASE_LOG: usize = 6;
pub const FETCH_LEVELS: usize = 3;
/// Bits per coefficient of the fetch answer: fine enough that re-switching the selected
/// GLWE adds no noise worth counting (the stored rows use 12).
pub const FETCH_RESULT_LOG_MODULUS: usize = 20;
/// Largest slot index width accepted (capacity is an `integer`, so < 2^31).
pub const MAX_INDEX_BITS: usize = 31;

/// Number of selector bits for a table of `capacity` slots: ⌈log2 capacity⌉, at least 1.
pub fn index_bits(capacity: usize) -> usize {
    (usize::BITS - capacity.saturating_sub(1).leading_zeros()).max(1) as usize
}

fn glwe_size() -> GlweSize {
    compression_params()
        .packing_ks_glwe_dimension()
        .to_glwe_size()
}

fn polynomial_size() -> PolynomialSize {
    compression_params().packing_ks_polynomial_size()
}

fn selector_len() -> usize {
    seeded_ggsw_ciphertext_size(
        glwe_size(),
        polynomial_size(),
        DecompositionLevelCount(FETCH_LEVELS),
    )
}

/// One selector bit on the wire: a seeded GGSW's body polynomials and the seed of its
/// masks (a plain `u128`, so no generator state arrives from outside).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(SelectorBitVersions)]
pub struct SelectorBit {
    seed: u128,
    data: Vec<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum SelectorBitVersions {
    V0(SelectorBit),
}

/// The fetch query: selector bits, least significant first.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(FetchQueryVersions)]
pub struct FetchQuery {
    bits: Vec<SelectorBit>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum FetchQueryVersions {
    V0(FetchQuery),
}

impl tfhe::named::Named for FetchQuery {
    const NAME: &'static str = "fhe_kv::FetchQuery";
}

/// A fetch query must have exactly this many bits, each of the exact GGSW size.
pub struct FetchQueryShape {
    pub bits: usize,
}

impl ParameterSetConformant for FetchQuery {
    type ParameterSet = FetchQueryShape;

    fn is_conformant(&self, shape: &FetchQueryShape) -> bool {
        self.bits.len() == shape.bits && self.bits.iter().all(|b| b.data.len() == selector_len())
    }
}

/// A selector bit ready for external products (Fourier domain).
pub type Selector = FourierGgswCiphertext<ABox<[c64]>>;

/// Encrypt `slot` as a fetch query for a table of `capacity` slots (client side).
pub(crate) fn encrypt_fetch_query(
    glwe_key: &GlweSecretKeyOwned<u64>,
    key_id: KeyId,
    slot: usize,
    capacity: usize,
) -> Result<Vec<u8>> {
    if slot >= capacity {
        return Err(FheKvError::InvalidArgument(format!(
            "slot {slot} is outside a table of {capacity} slots"
        )));
    }
    let n = index_bits(capacity);
    let mut seeder = new_seeder();
    let bits = (0..n)
        .map(|i| {
            let seed = seeder.seed();
            let mut ggsw = SeededGgswCiphertext::new(
                0u64,
                glwe_size(),
                polynomial_size(),
                DecompositionBaseLog(FETCH_BASE_LOG),
                DecompositionLevelCount(FETCH_LEVELS),
                CompressionSeed::from(seed),
                CiphertextModulus::new_native(),
            );
            encrypt_constant_seeded_ggsw_ciphertext(
                glwe_key,
                &mut ggsw,
                Cleartext(((slot >> i) & 1) as u64),
                compression_params().packing_ks_key_noise_distribution(),
                seeder.as_mut(),
            );
            SelectorBit {
                seed: seed.0,
                data: ggsw.into_container(),
            }
        })
        .collect();
    let mut payload = Vec::new();
    safe_serialize(&FetchQuery { bits }, &mut payload, limits::FETCH_QUERY)
        .map_err(|e| FheKvError::Internal(format!("serializing a fetch query: {e}")))?;
    Ok(Envelope::encode(
        Kind::FetchQuery,
        n as u16,
        key_id,
        &payload,
    ))
}

/// Check a fetch query's envelope header for a table (no payload decoding yet): kind,
/// key_id, and a bit count that matches the table's capacity.
pub fn check_fetch_header<'a>(
    bytes: &'a [u8],
    key_id: KeyId,
    capacity: usize,
) -> Result<Envelope<'a>> {
    let what = "fetch query";
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, Kind::FetchQuery, Some(key_id))?;
    let want = index_bits(capacity);
    if usize::from(env.bits) != want {
        return Err(FheKvError::InvalidArgument(format!(
            "the fetch query selects among 2^{} slots but the table has {capacity} (2^{want}); \
             it was made for another table or before fhe_kv.grow: run the locate round again",
            env.bits
        )));
    }
    if env.payload.len() as u64 > limits::FETCH_QUERY {
        return Err(FheKvError::TooLarge {
            what,
            size: env.payload.len(),
            limit: limits::FETCH_QUERY,
        });
    }
    Ok(env)
}

/// Decode a checked fetch query's payload (size limit, conformance) into selectors.
pub fn decode_fetch_payload(env: &Envelope<'_>) -> Result<Vec<Selector>> {
    let shape = FetchQueryShape {
        bits: usize::from(env.bits),
    };
    let query: FetchQuery = safe_deserialize_conformant(env.payload, limits::FETCH_QUERY, &shape)
        .map_err(|detail| FheKvError::BadPayload {
        what: "fetch query",
        detail,
    })?;
    Ok(query
        .bits
        .into_iter()
        .map(|bit| {
            let seeded = SeededGgswCiphertext::from_container(
                bit.data,
                glwe_size(),
                polynomial_size(),
                DecompositionBaseLog(FETCH_BASE_LOG),
                CompressionSeed::from(Seed(bit.seed)),
                CiphertextModulus::new_native(),
            );
            let ggsw = seeded.decompress_into_ggsw_ciphertext();
            let mut fourier = Selector::new(
                glwe_size(),
                polynomial_size(),
                DecompositionBaseLog(FETCH_BASE_LOG),
                DecompositionLevelCount(FETCH_LEVELS),
            );
            convert_standard_ggsw_ciphertext_to_fourier(&ggsw, &mut fourier);
            fourier
        })
        .collect())
}

/// Encode one key's locate answer (server side): its per-slot sums as one compressed list.
pub fn encode_locate_result(
    keys: &crate::keys::ServerKeys,
    key: Width,
    outcome: crate::kernels::LocateOutcome,
) -> Result<Vec<u8>> {
    let list = crate::row::list_of_glwes(outcome.glwes)?;
    let mut payload = Vec::new();
    safe_serialize(
        &crate::row::StoredRow::from_list(list),
        &mut payload,
        limits::LOCATE_RESULT,
    )
    .map_err(|e| FheKvError::Internal(format!("serializing a locate result: {e}")))?;
    Ok(Envelope::encode(
        Kind::LocateResult,
        key.bits() as u16,
        keys.key_id,
        &payload,
    ))
}

/// The fetch answer: the selected slot's GLWEs, modulus-switched to
/// [`FETCH_RESULT_LOG_MODULUS`] bits.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(FetchResultVersions)]
pub struct FetchResult {
    pub(crate) glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum FetchResultVersions {
    V0(FetchResult),
}

impl tfhe::named::Named for FetchResult {
    const NAME: &'static str = "fhe_kv::FetchResult";
}

/// A fetch answer holds exactly the GLWEs of one row of `blocks` blocks.
pub struct FetchResultShape {
    pub blocks: usize,
}

impl ParameterSetConformant for FetchResult {
    type ParameterSet = FetchResultShape;

    fn is_conformant(&self, shape: &FetchResultShape) -> bool {
        let per_glwe = compression_params().lwe_per_glwe().0;
        let params = GlweCiphertextConformanceParams {
            glwe_dim: compression_params().packing_ks_glwe_dimension(),
            polynomial_size: polynomial_size(),
            ct_modulus: CiphertextModulus::new_native(),
        };
        self.glwes.len() == shape.blocks.div_ceil(per_glwe)
            && self.glwes.iter().enumerate().all(|(i, g)| {
                g.is_conformant(&params)
                    && g.bodies_count().0 == (shape.blocks - i * per_glwe).min(per_glwe)
            })
    }
}

/// Encode a fetch answer (server side).
pub fn encode_fetch_result(key_id: KeyId, result: &FetchResult) -> Result<Vec<u8>> {
    let mut payload = Vec::new();
    safe_serialize(result, &mut payload, limits::FETCH_RESULT)
        .map_err(|e| FheKvError::Internal(format!("serializing a fetch result: {e}")))?;
    Ok(Envelope::encode(Kind::FetchResult, 0, key_id, &payload))
}

/// Decode a fetch answer for a row of `blocks` blocks (client side).
pub(crate) fn decode_fetch_result(
    bytes: &[u8],
    key_id: KeyId,
    blocks: usize,
) -> Result<FetchResult> {
    let what = "fetch result";
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, Kind::FetchResult, Some(key_id))?;
    safe_deserialize_conformant(
        env.payload,
        limits::FETCH_RESULT,
        &FetchResultShape { blocks },
    )
    .map_err(|detail| FheKvError::BadPayload { what, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_bits_cover_every_slot() {
        assert_eq!(index_bits(1), 1);
        assert_eq!(index_bits(2), 1);
        assert_eq!(index_bits(3), 2);
        assert_eq!(index_bits(4), 2);
        assert_eq!(index_bits(5), 3);
        assert_eq!(index_bits(1000), 10);
        assert_eq!(index_bits(1024), 10);
        assert_eq!(index_bits(1025), 11);
        for capacity in 1..300 {
            assert!(1usize << index_bits(capacity) >= capacity);
        }
    }

    #[test]
    fn locate_groups_hold_at_most_seven_terms() {
        assert_eq!(locate_groups(Width::W8), 1);
        assert_eq!(locate_groups(Width::W16), 2);
        assert_eq!(locate_groups(Width::W64), 5);
    }
}
