//! Wire formats of the bucketed layout, and their decoders. Everything here arrives through
//! SQL (queries) or from an ordinary table (stored buckets), so it is decoded like any
//! untrusted input: envelope header first, then a size limit, then
//! `safe_deserialize_conformant` against the exact shape the table needs.
//!
//! | kind | payload | shape checked |
//! |---|---|---|
//! | `bucket_query_key` | [`BucketQuery`]: a `query_key` envelope + both halves' selectors | selector count and GGSW size; the inner key like any query key |
//! | `bucket_selectors` | [`BucketSelectors`]: both halves' selectors | count and GGSW size |
//! | `bucket_row` | [`BucketRow`]: one GLWE at 32 bits per coefficient | GLWE dimensions, log modulus, body count |
//! | `bucket_read_result` | [`BucketReadResult`]: the two selected GLWEs at 20 bits | same, for both |

use super::params::{
    self, READ_LOG_MODULUS, SELECTOR_BASE_LOG, SELECTOR_LEVELS, STORAGE_LOG_MODULUS,
};
use super::BucketLayout;
use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::fft_impl::fft64::ABox;
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::{safe_deserialize_conformant, safe_serialize};
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limits (bytes) of the payloads.
pub mod limits {
    /// A query: the key (≤ 64 KiB) and 2 × 30 selectors of 96 KiB.
    pub const QUERY: u64 = 8 << 20;
    /// A stored bucket: 2048 + 2048 coefficients of 4 bytes, plus a few bytes of framing.
    pub const ROW: u64 = 20 << 10;
    /// A bucket read's answer: two GLWEs at 20 bits per coefficient.
    pub const READ_RESULT: u64 = 24 << 10;
}

/// One selector bit: a seeded GGSW's body polynomials and the seed of its masks (a plain
/// `u128`, so no generator state arrives from outside).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(BucketSelectorBitVersions)]
pub struct BucketSelectorBit {
    seed: u128,
    data: Vec<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum BucketSelectorBitVersions {
    V0(BucketSelectorBit),
}

/// Both halves' selector bits: `bits` for the left half's bucket index (least significant
/// first), then `bits` for the right half's.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(BucketSelectorsVersions)]
pub struct BucketSelectors {
    bits: Vec<BucketSelectorBit>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum BucketSelectorsVersions {
    V0(BucketSelectors),
}

impl tfhe::named::Named for BucketSelectors {
    const NAME: &'static str = "fhe_kv::BucketSelectors";
}

/// Selector bits per half the decoder expects.
pub struct SelectorShape {
    pub bits_per_half: usize,
}

impl ParameterSetConformant for BucketSelectors {
    type ParameterSet = SelectorShape;

    fn is_conformant(&self, shape: &SelectorShape) -> bool {
        self.bits.len() == 2 * shape.bits_per_half
            && self
                .bits
                .iter()
                .all(|b| b.data.len() == params::selector_len())
    }
}

/// A query key for a bucketed table.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(BucketQueryVersions)]
pub struct BucketQuery {
    /// A `query_key` envelope (decoded like any query key).
    key: Vec<u8>,
    selectors: BucketSelectors,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum BucketQueryVersions {
    V0(BucketQuery),
}

impl tfhe::named::Named for BucketQuery {
    const NAME: &'static str = "fhe_kv::BucketQuery";
}

/// What a bucket query must look like for a table: its selectors' shape, and the most
/// bytes its inner key envelope may take (an integer query key in `bucket-v1`, a leveled
/// query's chunk GGSWs in `bucket-leveled-v1`).
pub struct QueryShape {
    pub selectors: SelectorShape,
    pub key_limit: u64,
}

impl QueryShape {
    fn of(layout: &BucketLayout) -> QueryShape {
        let key_payload = match layout.format {
            super::SlotFormat::Blocks => crate::params::limits::COMPRESSED_INTEGER,
            super::SlotFormat::Leveled => crate::leveled::wire::limits::QUERY,
        };
        QueryShape {
            selectors: SelectorShape {
                bits_per_half: layout.index_bits(),
            },
            // The inner envelope's header on top of its payload.
            key_limit: key_payload + 64,
        }
    }
}

impl ParameterSetConformant for BucketQuery {
    type ParameterSet = QueryShape;

    fn is_conformant(&self, shape: &QueryShape) -> bool {
        self.key.len() as u64 <= shape.key_limit && self.selectors.is_conformant(&shape.selectors)
    }
}

/// One stored bucket: its GLWE, modulus-switched to [`STORAGE_LOG_MODULUS`] bits, with the
/// bodies of the used coefficients only.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(BucketRowVersions)]
pub struct BucketRow {
    pub(crate) glwe: CompressedModulusSwitchedGlweCiphertext<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum BucketRowVersions {
    V0(BucketRow),
}

impl tfhe::named::Named for BucketRow {
    const NAME: &'static str = "fhe_kv::BucketRow";
}

/// A bucket GLWE of exactly `bodies` bodies at `log_modulus` bits.
pub struct GlweShape {
    pub bodies: usize,
    pub log_modulus: usize,
}

pub(crate) fn glwe_is(g: &CompressedModulusSwitchedGlweCiphertext<u64>, shape: &GlweShape) -> bool {
    g.is_conformant(&params::glwe_conformance())
        && g.bodies_count().0 == shape.bodies
        && g.packed_integers().log_modulus().0 == shape.log_modulus
}

impl ParameterSetConformant for BucketRow {
    type ParameterSet = GlweShape;

    fn is_conformant(&self, shape: &GlweShape) -> bool {
        glwe_is(&self.glwe, shape)
    }
}

/// The two selected buckets of a bucket read, and the table state they were read in (an
/// opaque token the server checks when the key owner writes back, see [`BucketWrite`]).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(BucketReadResultVersions)]
pub struct BucketReadResult {
    pub(crate) glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
    pub(crate) state: u64,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum BucketReadResultVersions {
    V0(BucketReadResult),
}

impl tfhe::named::Named for BucketReadResult {
    const NAME: &'static str = "fhe_kv::BucketReadResult";
}

impl ParameterSetConformant for BucketReadResult {
    type ParameterSet = GlweShape;

    fn is_conformant(&self, shape: &GlweShape) -> bool {
        self.glwes.len() == 2 && self.glwes.iter().all(|g| glwe_is(g, shape))
    }
}

/// A selector bit ready for external products (Fourier domain).
pub type Selector = FourierGgswCiphertext<ABox<[c64]>>;

/// Decoded selectors: `[left half bits, right half bits]`, least significant first.
pub type HalfSelectors = [Vec<Selector>; 2];

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

/// Encrypt the two candidate bucket indices as selector bits (client side).
pub(crate) fn encrypt_selectors(
    glwe_key: &GlweSecretKeyOwned<u64>,
    layout: &BucketLayout,
    candidates: (usize, usize),
) -> BucketSelectors {
    let n = layout.index_bits();
    let mut seeder = new_seeder();
    let bits = [candidates.0, candidates.1]
        .into_iter()
        .flat_map(|index| (0..n).map(move |i| ((index >> i) & 1) as u64))
        .map(|bit| {
            let (seed, data) = encrypt_seeded_selector(glwe_key, bit, seeder.as_mut());
            BucketSelectorBit { seed, data }
        })
        .collect();
    BucketSelectors { bits }
}

/// A seeded selector-shaped GGSW (base 2^12, 3 levels) of the constant `cleartext`: its
/// mask seed and body coefficients.
pub(crate) fn encrypt_seeded_selector(
    glwe_key: &GlweSecretKeyOwned<u64>,
    cleartext: u64,
    seeder: &mut dyn Seeder,
) -> (u128, Vec<u64>) {
    let seed = seeder.seed();
    let mut ggsw = SeededGgswCiphertext::new(
        0u64,
        params::glwe_size(),
        params::polynomial_size(),
        DecompositionBaseLog(SELECTOR_BASE_LOG),
        DecompositionLevelCount(SELECTOR_LEVELS),
        CompressionSeed::from(seed),
        params::ciphertext_modulus(),
    );
    encrypt_constant_seeded_ggsw_ciphertext(
        glwe_key,
        &mut ggsw,
        Cleartext(cleartext),
        params::noise_distribution(),
        seeder,
    );
    (seed.0, ggsw.into_container())
}

/// The `bucket_selectors` envelope of `selectors` (client side).
pub(crate) fn encode_selectors(
    key_id: KeyId,
    layout: &BucketLayout,
    selectors: &BucketSelectors,
) -> Result<Vec<u8>> {
    let payload = serialize(selectors, limits::QUERY, "bucket selectors")?;
    Ok(Envelope::encode(
        Kind::BucketSelectors,
        layout.index_bits() as u16,
        key_id,
        &payload,
    ))
}

/// The `bucket_query_key` envelope: the key's `query_key` envelope and its selectors.
pub(crate) fn encode_query(
    key_id: KeyId,
    layout: &BucketLayout,
    key_envelope: Vec<u8>,
    selectors: BucketSelectors,
) -> Result<Vec<u8>> {
    let payload = serialize(
        &BucketQuery {
            key: key_envelope,
            selectors,
        },
        limits::QUERY,
        "a bucket query",
    )?;
    Ok(Envelope::encode(
        Kind::BucketQueryKey,
        layout.key.bits() as u16,
        key_id,
        &payload,
    ))
}

/// Check a bucket query's header for a table (no payload decoding): kind, key_id, key
/// width, size.
pub fn check_query_header<'a>(
    bytes: &'a [u8],
    what: &'static str,
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<Envelope<'a>> {
    let env = Envelope::parse(bytes, what)?;
    if env.kind == Kind::QueryKey {
        return Err(FheKvError::InvalidArgument(format!(
            "{what} is a plain query key, but this table is bucketed: its queries also carry \
             the key's encrypted bucket indices (encrypt it for the table, e.g. with \
             `fhe-kv encrypt --table`, Client::encrypt_query_key)"
        )));
    }
    env.expect(what, Kind::BucketQueryKey, Some(key_id))?;
    env.expect_bits(what, layout.key.bits())?;
    check_size(what, env.payload, limits::QUERY)?;
    Ok(env)
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

/// Decode a checked bucket query's payload: the inner key envelope's bytes (still to be
/// decoded as a query key) and the selectors. The selector count must match the table.
pub fn decode_query_payload(
    env: &Envelope<'_>,
    what: &'static str,
    layout: &BucketLayout,
) -> Result<(Vec<u8>, HalfSelectors)> {
    let shape = QueryShape::of(layout);
    let query: BucketQuery = safe_deserialize_conformant(env.payload, limits::QUERY, &shape)
        .map_err(|detail| selector_error(what, detail, layout))?;
    Ok((query.key, to_fourier(query.selectors, layout)))
}

/// Check a `bucket_selectors` envelope's header: kind, key_id, the bit count the table's
/// bucket count needs, size.
pub fn check_selectors_header<'a>(
    bytes: &'a [u8],
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<Envelope<'a>> {
    let what = "bucket selectors";
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, Kind::BucketSelectors, Some(key_id))?;
    if usize::from(env.bits) != layout.index_bits() {
        return Err(FheKvError::InvalidArgument(format!(
            "the selectors address 2^{} buckets per half but the table has {} (2^{}): \
             they were made for another table, or before it was rehashed",
            env.bits,
            layout.buckets_per_half,
            layout.index_bits()
        )));
    }
    check_size(what, env.payload, limits::QUERY)?;
    Ok(env)
}

/// Decode a checked `bucket_selectors` payload.
pub fn decode_selectors_payload(
    env: &Envelope<'_>,
    layout: &BucketLayout,
) -> Result<HalfSelectors> {
    let what = "bucket selectors";
    let shape = SelectorShape {
        bits_per_half: layout.index_bits(),
    };
    let selectors: BucketSelectors =
        safe_deserialize_conformant(env.payload, limits::QUERY, &shape)
            .map_err(|detail| selector_error(what, detail, layout))?;
    Ok(to_fourier(selectors, layout))
}

fn selector_error(what: &'static str, detail: String, layout: &BucketLayout) -> FheKvError {
    FheKvError::BadPayload {
        what,
        detail: format!(
            "{detail} (a query of this table carries 2 × {} selector GGSWs of {} coefficients)",
            layout.index_bits(),
            params::selector_len()
        ),
    }
}

/// Expand one seeded selector-shaped GGSW and move it to the Fourier domain.
pub(crate) fn selector_from_seeded(seed: u128, data: Vec<u64>) -> Selector {
    let seeded = SeededGgswCiphertext::from_container(
        data,
        params::glwe_size(),
        params::polynomial_size(),
        DecompositionBaseLog(SELECTOR_BASE_LOG),
        CompressionSeed::from(Seed(seed)),
        params::ciphertext_modulus(),
    );
    let ggsw = seeded.decompress_into_ggsw_ciphertext();
    let mut f = Selector::new(
        params::glwe_size(),
        params::polynomial_size(),
        DecompositionBaseLog(SELECTOR_BASE_LOG),
        DecompositionLevelCount(SELECTOR_LEVELS),
    );
    convert_standard_ggsw_ciphertext_to_fourier(&ggsw, &mut f);
    f
}

/// Expand the seeded GGSWs and move them to the Fourier domain.
fn to_fourier(selectors: BucketSelectors, layout: &BucketLayout) -> HalfSelectors {
    let n = layout.index_bits();
    let mut fourier: Vec<Selector> = selectors
        .bits
        .into_iter()
        .map(|bit| selector_from_seeded(bit.seed, bit.data))
        .collect();
    let right = fourier.split_off(n);
    [fourier, right]
}

/// The `bucket_row` envelope of a bucket GLWE at full precision (server and client).
pub(crate) fn encode_row(
    key_id: KeyId,
    layout: &BucketLayout,
    glwe: &GlweCiphertextOwned<u64>,
) -> Result<Vec<u8>> {
    let row = BucketRow {
        glwe: crate::rounding::compress_glwe(glwe, STORAGE_LOG_MODULUS, layout.used_coefficients()),
    };
    let payload = serialize(&row, limits::ROW, "a bucket row")?;
    Ok(Envelope::encode(
        Kind::BucketRow,
        layout.bucket_slots as u16,
        key_id,
        &payload,
    ))
}

/// Decode a stored bucket of a table (envelope, kind, key_id, slot count, size limit,
/// conformance) into its GLWE at full precision.
pub fn decode_row(
    bytes: &[u8],
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<GlweCiphertextOwned<u64>> {
    let what = "stored bucket";
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, Kind::BucketRow, Some(key_id))?;
    if usize::from(env.bits) != layout.bucket_slots {
        return Err(FheKvError::InvalidArgument(format!(
            "{what} holds {} slots, but the table's buckets hold {}",
            env.bits, layout.bucket_slots
        )));
    }
    check_size(what, env.payload, limits::ROW)?;
    let row: BucketRow = safe_deserialize_conformant(
        env.payload,
        limits::ROW,
        &GlweShape {
            bodies: layout.used_coefficients(),
            log_modulus: STORAGE_LOG_MODULUS,
        },
    )
    .map_err(|detail| FheKvError::BadPayload { what, detail })?;
    Ok(row.glwe.extract())
}

/// The `bucket_read_result` envelope of the two selected buckets (server side); `state`
/// identifies the table version they were read from.
pub fn encode_read_result(
    key_id: KeyId,
    layout: &BucketLayout,
    selected: &[GlweCiphertextOwned<u64>; 2],
    state: u64,
) -> Result<Vec<u8>> {
    let result = BucketReadResult {
        state,
        glwes: selected
            .iter()
            .map(|g| {
                crate::rounding::compress_glwe(g, READ_LOG_MODULUS, layout.used_coefficients())
            })
            .collect(),
    };
    let payload = serialize(&result, limits::READ_RESULT, "a bucket read")?;
    Ok(Envelope::encode(
        Kind::BucketReadResult,
        layout.bucket_slots as u16,
        key_id,
        &payload,
    ))
}

/// Decode a bucket read's answer (client side) into the two GLWEs and the state token.
pub(crate) fn decode_read_result(
    bytes: &[u8],
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<([GlweCiphertextOwned<u64>; 2], u64)> {
    let what = "bucket read result";
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, Kind::BucketReadResult, Some(key_id))?;
    let result: BucketReadResult = safe_deserialize_conformant(
        env.payload,
        limits::READ_RESULT,
        &GlweShape {
            bodies: layout.used_coefficients(),
            log_modulus: READ_LOG_MODULUS,
        },
    )
    .map_err(|detail| FheKvError::BadPayload { what, detail })?;
    let state = result.state;
    let mut glwes = result.glwes.into_iter().map(|g| g.extract());
    Ok((
        [
            glwes.next().expect("conformant: two GLWEs"),
            glwes.next().expect("conformant: two GLWEs"),
        ],
        state,
    ))
}

/// One half's delta of a key owner's write: a seeded GLWE (body and the seed of its mask).
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(SeededDeltaVersions)]
pub struct SeededDelta {
    seed: u128,
    body: Vec<u64>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum SeededDeltaVersions {
    V0(SeededDelta),
}

/// A key owner's write to a bucketed table: the selectors of its bucket read, one delta per
/// half (an encryption of `new − old` at the changed coefficients of the candidate bucket,
/// of 0 elsewhere and in the untouched half) and the state token of the read. The server
/// adds the deltas through the expansion tree, exactly as its own SET does, without any
/// bootstrap; it refuses the write if the table changed since the read.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(BucketWriteVersions)]
pub struct BucketWrite {
    selectors: BucketSelectors,
    deltas: Vec<SeededDelta>,
    state: u64,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum BucketWriteVersions {
    V0(BucketWrite),
}

impl tfhe::named::Named for BucketWrite {
    const NAME: &'static str = "fhe_kv::BucketWrite";
}

impl ParameterSetConformant for BucketWrite {
    type ParameterSet = SelectorShape;

    fn is_conformant(&self, shape: &SelectorShape) -> bool {
        self.selectors.is_conformant(shape)
            && self.deltas.len() == 2
            && self
                .deltas
                .iter()
                .all(|d| d.body.len() == params::coefficients())
    }
}

/// A decoded write: selectors, the two deltas, the state the key owner read.
pub struct DecodedWrite {
    pub selectors: HalfSelectors,
    pub deltas: [GlweCiphertextOwned<u64>; 2],
    pub state: u64,
}

/// A fresh seeded encryption of `plaintext` under the bucket (PBS GLWE) key: the seed of
/// its mask (drawn first; the noise comes from the seeder's next draw) and the GLWE.
pub(crate) fn encrypt_seeded_bucket_glwe(
    glwe_key: &GlweSecretKeyOwned<u64>,
    plaintext: &PlaintextListOwned<u64>,
) -> (u128, SeededGlweCiphertextOwned<u64>) {
    let mut seeder = new_seeder();
    let seed = seeder.seed();
    let mut glwe = SeededGlweCiphertext::new(
        0u64,
        params::glwe_size(),
        params::polynomial_size(),
        CompressionSeed::from(seed),
        params::ciphertext_modulus(),
    );
    encrypt_seeded_glwe_ciphertext(
        glwe_key,
        &mut glwe,
        plaintext,
        params::noise_distribution(),
        seeder.as_mut(),
    );
    (seed.0, glwe)
}

/// Encrypt one half's delta (its plaintext coefficients, already scaled) as a seeded GLWE
/// under the bucket key (client side).
pub(crate) fn encrypt_delta(
    glwe_key: &GlweSecretKeyOwned<u64>,
    plaintext: &PlaintextListOwned<u64>,
) -> SeededDelta {
    let (seed, glwe) = encrypt_seeded_bucket_glwe(glwe_key, plaintext);
    SeededDelta {
        seed,
        body: glwe.into_container(),
    }
}

/// The `bucket_write` envelope (client side): `selectors` as sent with the read, one
/// delta per half ([`encrypt_delta`]), the read's state token.
pub(crate) fn encode_write(
    key_id: KeyId,
    layout: &BucketLayout,
    selectors: BucketSelectors,
    deltas: [SeededDelta; 2],
    state: u64,
) -> Result<Vec<u8>> {
    let payload = serialize(
        &BucketWrite {
            selectors,
            deltas: deltas.into(),
            state,
        },
        limits::QUERY,
        "a bucket write",
    )?;
    Ok(Envelope::encode(
        Kind::BucketWrite,
        layout.index_bits() as u16,
        key_id,
        &payload,
    ))
}

/// Check a `bucket_write` envelope's header: kind, key_id, the table's selector count, size.
pub fn check_write_header<'a>(
    bytes: &'a [u8],
    key_id: KeyId,
    layout: &BucketLayout,
) -> Result<Envelope<'a>> {
    let what = "bucket write";
    let env = Envelope::parse(bytes, what)?;
    env.expect(what, Kind::BucketWrite, Some(key_id))?;
    if usize::from(env.bits) != layout.index_bits() {
        return Err(FheKvError::InvalidArgument(format!(
            "the write addresses 2^{} buckets per half but the table has {} (2^{}): it was \
             made for another table, or before it was rehashed",
            env.bits,
            layout.buckets_per_half,
            layout.index_bits()
        )));
    }
    check_size(what, env.payload, limits::QUERY)?;
    Ok(env)
}

/// Decode a checked `bucket_write` payload (conformance: selector count and sizes, two
/// deltas of exactly one GLWE body each).
pub fn decode_write_payload(env: &Envelope<'_>, layout: &BucketLayout) -> Result<DecodedWrite> {
    let what = "bucket write";
    let shape = SelectorShape {
        bits_per_half: layout.index_bits(),
    };
    let write: BucketWrite = safe_deserialize_conformant(env.payload, limits::QUERY, &shape)
        .map_err(|detail| selector_error(what, detail, layout))?;
    let mut deltas = write.deltas.into_iter().map(|d| {
        SeededGlweCiphertext::from_container(
            d.body,
            params::glwe_size(),
            CompressionSeed::from(Seed(d.seed)),
            params::ciphertext_modulus(),
        )
        .decompress_into_glwe_ciphertext()
    });
    let deltas = [
        deltas.next().expect("conformant: two deltas"),
        deltas.next().expect("conformant: two deltas"),
    ];
    Ok(DecodedWrite {
        selectors: to_fourier(write.selectors, layout),
        deltas,
        state: write.state,
    })
}
