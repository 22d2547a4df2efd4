//! Wire formats of the messages between a leveled operation's rounds: what the server
//! answers the key owner, and the key owner's round-2 queries. Each is an envelope (kind,
//! key_id, a width or index-bit count) around a versioned payload, decoded with a size
//! limit and `safe_deserialize_conformant` against the exact shape the table needs, on
//! either side: the server decodes queries as untrusted input, and the key owner does not
//! trust the answers' shapes either.
//!
//! | kind | from | payload | shape checked |
//! |---|---|---|---|
//! | `leveled_answer` | server | [`LeveledSamples`]: found, then the value's nibbles | sample count, dimension |
//! | `leveled_location` | server | [`LeveledLocated`]: the table state, found, then the index bits | same |
//! | `leveled_set_location` | server | [`LeveledLocated`]: the table state, found, index bits, any vacant, vacant bits | same |
//! | `leveled_status` | server | [`LeveledSamples`]: one sample (a DELETE's status) | same |
//! | `leveled_fetch_query` | key owner | [`LeveledSelectors`]: one seeded GGSW per index bit, the table state | GGSW count and length |
//! | `leveled_fetch_result` | server | [`LeveledFetchResult`]: the value GLWEs, modulus-switched to 20 bits | GLWE count, bodies, modulus |
//! | `leveled_set_write` | key owner | [`LeveledSetWrite`]: index and enable GGSWs, a `leveled_row` envelope, the table state | GGSW counts and lengths, row size (the row is decoded as any row) |
//!
//! **Table state.** Round 2 acts on the slot round 1 pointed at, so both rounds must see
//! the same table: a SET or DELETE in between could give two inserts one vacant slot, or
//! make a fetch read a slot that now holds another key. Round 1's answers carry the
//! table's write counter (`state`, chosen by the caller: the SQL layer's counter), the
//! key owner copies it into round 2's query, and the caller refuses round 2 when it is
//! not the table's current state (the key owner then runs both rounds again), as a
//! bucketed table's write does.
//!
//! **Precision.** The answers' LWE samples are computed (no seed): all `k N + 1`
//! coefficients, rounded to 24 bits (3 bytes each, 6,147 bytes a sample; the rounding adds
//! `(1 + k N / 2) · 2^{−48} / 12 = 2^-41.6`, nothing next to an answer's sum of PBS outputs,
//! 2^-29.6 per slot). The fetched GLWEs carry a stored value's noise plus a CMux per index
//! bit, ~2^-35.6, and are read at half a step, 2^-6: 20 bits per coefficient add 2^-33.6
//! (TFHE-rs' compressed modulus-switched GLWE, as a bucket read's answer).

use super::get::LeveledAnswer;
use super::set_locate::LeveledSetLocation;
use super::set_write::LeveledSetWriteQuery;
use super::two_round::{index_bits, LeveledLocation};
use super::wire::{self, decode_message, encode_message, pack24, unpack24, SeededGgsw, FLAG_BYTES};
use super::RowLayout;
use crate::bucket::params::{self, READ_LOG_MODULUS};
use crate::bucket::wire::{glwe_is, selector_from_seeded, GlweShape, Selector};
use crate::envelope::{KeyId, Kind, HEADER_LEN};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::prelude::*;
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limits (bytes) of the payloads.
pub mod limits {
    /// LWE samples: at most 1 + 64 (a u256 value's nibbles) of 6,147 bytes.
    pub const SAMPLES: u64 = 420 << 10;
    /// Index-bit GGSWs: at most 30 index bits (2^30 slots) and the enable bit, 96 KiB each.
    pub const SELECTORS: u64 = 3 << 20;
    /// Fetched value GLWEs: at most 8 (u256) of 2 · 2048 coefficients at 20 bits.
    pub const FETCH_RESULT: u64 = 96 << 10;
    /// A SET's round-2 query: its GGSWs and a row.
    pub const SET_WRITE: u64 = SELECTORS + super::wire::limits::ROW;
}

/// LWE samples under the big LWE key, each rounded to 24 bits per coefficient.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledSamplesVersions)]
pub struct LeveledSamples {
    pub(crate) samples: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledSamplesVersions {
    V0(LeveledSamples),
}

impl tfhe::named::Named for LeveledSamples {
    const NAME: &'static str = "fhe_kv::LeveledSamples";
}

/// The number of samples a message must hold.
pub struct SampleCount(pub usize);

impl ParameterSetConformant for LeveledSamples {
    type ParameterSet = SampleCount;

    fn is_conformant(&self, count: &SampleCount) -> bool {
        let bytes = params::lwe_dimension().to_lwe_size().0 * FLAG_BYTES;
        self.samples.len() == count.0 && self.samples.iter().all(|s| s.len() == bytes)
    }
}

impl LeveledSamples {
    fn of<'a>(samples: impl IntoIterator<Item = &'a LweCiphertextOwned<u64>>) -> LeveledSamples {
        LeveledSamples {
            samples: samples.into_iter().map(|s| pack24(s.as_ref())).collect(),
        }
    }

    fn expand(self) -> Vec<LweCiphertextOwned<u64>> {
        self.samples
            .iter()
            .map(|s| LweCiphertext::from_container(unpack24(s), params::ciphertext_modulus()))
            .collect()
    }
}

/// A round-1 answer of a two-round operation: the table state it was computed in, and
/// its samples.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledLocatedVersions)]
pub struct LeveledLocated {
    pub(crate) state: u64,
    pub(crate) samples: LeveledSamples,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledLocatedVersions {
    V0(LeveledLocated),
}

impl tfhe::named::Named for LeveledLocated {
    const NAME: &'static str = "fhe_kv::LeveledLocated";
}

impl ParameterSetConformant for LeveledLocated {
    type ParameterSet = SampleCount;

    fn is_conformant(&self, count: &SampleCount) -> bool {
        self.samples.is_conformant(count)
    }
}

/// Index-bit GGSWs of a round-2 fetch, least significant first, and the table state
/// round 1 answered in.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledSelectorsVersions)]
pub struct LeveledSelectors {
    pub(crate) bits: Vec<SeededGgsw>,
    pub(crate) state: u64,
}

/// A decoded round-2 fetch: the selectors, and the table state round 1 answered in (the
/// caller refuses the fetch if the table changed since).
pub struct LeveledFetchQuery {
    pub index: Vec<Selector>,
    pub state: u64,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledSelectorsVersions {
    V0(LeveledSelectors),
}

impl tfhe::named::Named for LeveledSelectors {
    const NAME: &'static str = "fhe_kv::LeveledSelectors";
}

impl ParameterSetConformant for LeveledSelectors {
    type ParameterSet = SampleCount;

    fn is_conformant(&self, count: &SampleCount) -> bool {
        self.bits.len() == count.0 && self.bits.iter().all(is_selector)
    }
}

fn is_selector(g: &SeededGgsw) -> bool {
    g.data.len() == params::selector_len()
}

fn expand_selectors(bits: Vec<SeededGgsw>) -> Vec<Selector> {
    bits.into_iter()
        .map(|g| selector_from_seeded(g.seed, g.data))
        .collect()
}

/// A round-2 fetch's answer: the selected slot's value GLWEs, modulus-switched.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledFetchResultVersions)]
pub struct LeveledFetchResult {
    pub(crate) glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledFetchResultVersions {
    V0(LeveledFetchResult),
}

impl tfhe::named::Named for LeveledFetchResult {
    const NAME: &'static str = "fhe_kv::LeveledFetchResult";
}

impl ParameterSetConformant for LeveledFetchResult {
    type ParameterSet = RowLayout;

    fn is_conformant(&self, layout: &RowLayout) -> bool {
        let shape = GlweShape {
            bodies: params::coefficients(),
            log_modulus: READ_LOG_MODULUS,
        };
        self.glwes.len() == layout.fetched_glwes() && self.glwes.iter().all(|g| glwe_is(g, &shape))
    }
}

/// A SET's round-2 query: the target's index bits, the enable bit, the new row (a
/// `leveled_row` envelope, decoded by the server as any row) and the table state round 1
/// answered in.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(LeveledSetWriteVersions)]
pub struct LeveledSetWrite {
    pub(crate) index: Vec<SeededGgsw>,
    pub(crate) enable: SeededGgsw,
    pub(crate) row: Vec<u8>,
    pub(crate) state: u64,
}

#[derive(Serialize, Deserialize, VersionsDispatch)]
#[allow(dead_code)]
pub enum LeveledSetWriteVersions {
    V0(LeveledSetWrite),
}

impl tfhe::named::Named for LeveledSetWrite {
    const NAME: &'static str = "fhe_kv::LeveledSetWrite";
}

impl ParameterSetConformant for LeveledSetWrite {
    type ParameterSet = SampleCount;

    fn is_conformant(&self, index_bits: &SampleCount) -> bool {
        self.index.len() == index_bits.0
            && self.index.iter().all(is_selector)
            && is_selector(&self.enable)
            && self.row.len() as u64 <= wire::limits::ROW + HEADER_LEN as u64
    }
}

fn encode_samples<'a>(
    kind: Kind,
    bits: usize,
    key_id: KeyId,
    samples: impl IntoIterator<Item = &'a LweCiphertextOwned<u64>>,
) -> Result<Vec<u8>> {
    let samples = LeveledSamples::of(samples);
    encode_message(kind, bits, key_id, &samples, limits::SAMPLES)
}

/// What a refused message of `count` samples should have held.
fn samples_expected(count: usize) -> String {
    format!(
        "it holds {count} LWE samples of {} coefficients",
        params::lwe_dimension().to_lwe_size().0
    )
}

/// Decode `count` samples from a `kind` envelope whose `bits` must be `bits`.
fn decode_samples(
    bytes: &[u8],
    what: &'static str,
    kind: Kind,
    key_id: KeyId,
    bits: usize,
    count: usize,
) -> Result<Vec<LweCiphertextOwned<u64>>> {
    let samples: LeveledSamples = decode_message(
        bytes,
        what,
        kind,
        key_id,
        bits,
        limits::SAMPLES,
        &SampleCount(count),
        || samples_expected(count),
    )?;
    Ok(samples.expand())
}

impl LeveledAnswer {
    /// The `leveled_answer` envelope (server side).
    pub fn encode(&self, key_id: KeyId, layout: RowLayout) -> Result<Vec<u8>> {
        encode_samples(
            Kind::LeveledAnswer,
            layout.value.bits() as usize,
            key_id,
            std::iter::once(&self.found).chain(&self.nibbles),
        )
    }

    /// Decode a `leveled_answer` envelope (key owner side).
    pub fn decode(bytes: &[u8], key_id: KeyId, layout: RowLayout) -> Result<LeveledAnswer> {
        let mut samples = decode_samples(
            bytes,
            "leveled answer",
            Kind::LeveledAnswer,
            key_id,
            layout.value.bits() as usize,
            1 + layout.value_nibbles(),
        )?;
        let nibbles = samples.split_off(1);
        Ok(LeveledAnswer {
            found: samples.remove(0),
            nibbles,
        })
    }
}

/// A round-1 envelope over `slots` slots: `state` and the samples (server side).
fn encode_located<'a>(
    kind: Kind,
    slots: usize,
    key_id: KeyId,
    state: u64,
    samples: impl IntoIterator<Item = &'a LweCiphertextOwned<u64>>,
) -> Result<Vec<u8>> {
    let located = LeveledLocated {
        state,
        samples: LeveledSamples::of(samples),
    };
    encode_message(kind, index_bits(slots), key_id, &located, limits::SAMPLES)
}

/// Decode a round-1 envelope of a table of `slots` slots holding `count` samples (key
/// owner side): the samples and the table state.
fn decode_located(
    bytes: &[u8],
    what: &'static str,
    kind: Kind,
    key_id: KeyId,
    slots: usize,
    count: usize,
) -> Result<(Vec<LweCiphertextOwned<u64>>, u64)> {
    let located: LeveledLocated = decode_message(
        bytes,
        what,
        kind,
        key_id,
        index_bits(slots),
        limits::SAMPLES,
        &SampleCount(count),
        || format!("a table of {slots} slots: {}", samples_expected(count)),
    )?;
    Ok((located.samples.expand(), located.state))
}

impl LeveledLocation {
    /// The `leveled_location` envelope of round 1 over `slots` slots in table state
    /// `state` (server side).
    pub fn encode(&self, key_id: KeyId, slots: usize, state: u64) -> Result<Vec<u8>> {
        encode_located(
            Kind::LeveledLocation,
            slots,
            key_id,
            state,
            std::iter::once(&self.found).chain(&self.index_bits),
        )
    }

    /// Decode a `leveled_location` envelope of a table of `slots` slots (key owner side):
    /// the location and the table state to send back in round 2.
    pub fn decode(bytes: &[u8], key_id: KeyId, slots: usize) -> Result<(LeveledLocation, u64)> {
        let bits = index_bits(slots);
        let (mut samples, state) = decode_located(
            bytes,
            "leveled location",
            Kind::LeveledLocation,
            key_id,
            slots,
            1 + bits,
        )?;
        let index_bits = samples.split_off(1);
        Ok((
            LeveledLocation {
                found: samples.remove(0),
                index_bits,
            },
            state,
        ))
    }
}

impl LeveledSetLocation {
    /// The `leveled_set_location` envelope of round 1 over `slots` slots in table state
    /// `state` (server side).
    pub fn encode(&self, key_id: KeyId, slots: usize, state: u64) -> Result<Vec<u8>> {
        encode_located(
            Kind::LeveledSetLocation,
            slots,
            key_id,
            state,
            std::iter::once(&self.key.found)
                .chain(&self.key.index_bits)
                .chain(std::iter::once(&self.any_vacant))
                .chain(&self.vacant_bits),
        )
    }

    /// Decode a `leveled_set_location` envelope of a table of `slots` slots (key owner
    /// side): the location and the table state to send back in round 2.
    pub fn decode(bytes: &[u8], key_id: KeyId, slots: usize) -> Result<(LeveledSetLocation, u64)> {
        let bits = index_bits(slots);
        let (mut samples, state) = decode_located(
            bytes,
            "leveled SET location",
            Kind::LeveledSetLocation,
            key_id,
            slots,
            2 + 2 * bits,
        )?;
        let vacant_bits = samples.split_off(2 + bits);
        let any_vacant = samples.pop().expect("conformant: 2 + 2 bits samples");
        let index_bits = samples.split_off(1);
        Ok((
            LeveledSetLocation {
                key: LeveledLocation {
                    found: samples.remove(0),
                    index_bits,
                },
                any_vacant,
                vacant_bits,
            },
            state,
        ))
    }
}

/// The `leveled_status` envelope of a DELETE's status (server side).
pub fn encode_status(key_id: KeyId, status: &LweCiphertextOwned<u64>) -> Result<Vec<u8>> {
    encode_samples(Kind::LeveledStatus, 1, key_id, [status])
}

/// Decode a `leveled_status` envelope (key owner side).
pub fn decode_status(bytes: &[u8], key_id: KeyId) -> Result<LweCiphertextOwned<u64>> {
    let mut samples = decode_samples(bytes, "leveled status", Kind::LeveledStatus, key_id, 1, 1)?;
    Ok(samples.remove(0))
}

/// The `leveled_fetch_query` envelope of a table of `slots` slots (key owner side).
pub(crate) fn encode_fetch_query(
    key_id: KeyId,
    slots: usize,
    bits: Vec<SeededGgsw>,
    state: u64,
) -> Result<Vec<u8>> {
    encode_message(
        Kind::LeveledFetchQuery,
        index_bits(slots),
        key_id,
        &LeveledSelectors { bits, state },
        limits::SELECTORS,
    )
}

/// Decode a `leveled_fetch_query` for a table of `slots` slots (server side) into its
/// selectors, ready for the CMux tree, and the table state round 1 answered in.
pub fn decode_fetch_query(bytes: &[u8], key_id: KeyId, slots: usize) -> Result<LeveledFetchQuery> {
    let bits = index_bits(slots);
    let query: LeveledSelectors = decode_message(
        bytes,
        "leveled fetch query",
        Kind::LeveledFetchQuery,
        key_id,
        bits,
        limits::SELECTORS,
        &SampleCount(bits),
        || {
            format!(
                "a table of {slots} slots needs {bits} GGSWs of {} coefficients",
                params::selector_len()
            )
        },
    )?;
    Ok(LeveledFetchQuery {
        index: expand_selectors(query.bits),
        state: query.state,
    })
}

/// The `leveled_fetch_result` envelope of round 2's fetched value GLWEs (server side).
pub fn encode_fetch_result(
    key_id: KeyId,
    layout: RowLayout,
    glwes: &[GlweCiphertextOwned<u64>],
) -> Result<Vec<u8>> {
    let result = LeveledFetchResult {
        glwes: glwes
            .iter()
            .map(|g| crate::rounding::compress_glwe(g, READ_LOG_MODULUS, params::coefficients()))
            .collect(),
    };
    encode_message(
        Kind::LeveledFetchResult,
        layout.value.bits() as usize,
        key_id,
        &result,
        limits::FETCH_RESULT,
    )
}

/// Decode a `leveled_fetch_result` (key owner side) into the value GLWEs.
pub fn decode_fetch_result(
    bytes: &[u8],
    key_id: KeyId,
    layout: RowLayout,
) -> Result<Vec<GlweCiphertextOwned<u64>>> {
    let result: LeveledFetchResult = decode_message(
        bytes,
        "leveled fetch result",
        Kind::LeveledFetchResult,
        key_id,
        layout.value.bits() as usize,
        limits::FETCH_RESULT,
        &layout,
        || {
            format!(
                "a {} value is {} GLWEs of {} bodies at {READ_LOG_MODULUS} bits",
                layout.value,
                layout.fetched_glwes(),
                params::coefficients()
            )
        },
    )?;
    Ok(result.glwes.iter().map(|g| g.extract()).collect())
}

/// The `leveled_set_write` envelope (key owner side).
pub(crate) fn encode_set_write(
    key_id: KeyId,
    slots: usize,
    message: LeveledSetWrite,
) -> Result<Vec<u8>> {
    encode_message(
        Kind::LeveledSetWrite,
        index_bits(slots),
        key_id,
        &message,
        limits::SET_WRITE,
    )
}

/// Decode a `leveled_set_write` for a table of `slots` slots (server side). The new row
/// stays bytes: [`super::set_write::leveled_set_write_rows`] decodes it as any row.
pub fn decode_set_write(bytes: &[u8], key_id: KeyId, slots: usize) -> Result<LeveledSetWriteQuery> {
    let bits = index_bits(slots);
    let message: LeveledSetWrite = decode_message(
        bytes,
        "leveled SET write",
        Kind::LeveledSetWrite,
        key_id,
        bits,
        limits::SET_WRITE,
        &SampleCount(bits),
        || {
            format!(
                "a table of {slots} slots needs {bits} index GGSWs and an enable GGSW of {} \
                 coefficients, and a row",
                params::selector_len()
            )
        },
    )?;
    Ok(LeveledSetWriteQuery {
        index: expand_selectors(message.index),
        enable: selector_from_seeded(message.enable.seed, message.enable.data),
        row: message.row,
        state: message.state,
    })
}
