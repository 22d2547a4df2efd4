//! The one parameter set fhe_kv uses, pinned explicitly (never `ConfigBuilder::default()`,
//! whose choice moves with TFHE-rs features and versions).
//!
//! * blocks: `PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` — 2 message bits + 2 carry bits
//!   per block, KS→PBS order, failure probability 2^-129.6 per PBS, 128-bit security,
//!   `max_noise_level = 5` (the kernels never let a PBS input exceed it);
//! * list compression: `COMP_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`;
//! * no dedicated OPRF key, no compact public key, no noise squashing.

use crate::error::{FheKvError, Result};
use tfhe::shortint::parameters::{
    ClassicPBSParameters, CompressionParameters,
    COMP_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
};
use tfhe::{Config, ConfigBuilder};

/// Message bits carried by one block.
pub const BITS_PER_BLOCK: u32 = 2;
/// message_modulus of a block.
pub const MESSAGE_MODULUS: u64 = 4;
/// message_modulus * carry_modulus: the full plaintext space of one block.
pub const BLOCK_SPACE: u64 = 16;
/// The parameter set's max_noise_level: a PBS input may be the sum of at most this many
/// nominal-noise terms (weighted by the absolute value of their scalar factors).
pub const MAX_NOISE_LEVEL: usize = 5;

/// Size limits applied before any payload is decoded (bytes).
pub mod limits {
    /// A serialized `CompressedServerKey` is ~76 MB with these parameters.
    pub const SERVER_KEY: u64 = 256 << 20;
    /// A seeded compressed query key/value (≤ 64 bits) is ~4 KB.
    pub const COMPRESSED_INTEGER: u64 = 64 << 10;
    /// An uncompressed FheUint64 is ~527 KB, an FheUint256 ~2.1 MB.
    pub const INTEGER: u64 = 4 << 20;
    /// A stored row (compressed list of flag + key + value, ≤ 129 blocks) is a few KB.
    pub const ROW: u64 = 64 << 10;
    /// The client key is ~32 KB.
    pub const CLIENT_KEY: u64 = 8 << 20;
    /// A locate answer: ⌈(1 + K)/7⌉ blocks per slot, 256 blocks per ~1.9 KB GLWE
    /// (u64 keys: ~37 B per slot, so ~37 MB for a million slots).
    pub const LOCATE_RESULT: u64 = 256 << 20;
    /// A fetch query: one seeded GGSW (~30 KB) per index bit, at most 32 bits.
    pub const FETCH_QUERY: u64 = 2 << 20;
    /// A fetch answer: one stored row's GLWEs at 20 bits per coefficient (~2.7 KB each).
    pub const FETCH_RESULT: u64 = 64 << 10;
}

pub fn block_params() -> ClassicPBSParameters {
    PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128
}

pub fn compression_params() -> CompressionParameters {
    COMP_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128
}

/// The high-level-API configuration used for key generation and conformance checks.
pub fn config() -> Config {
    ConfigBuilder::with_custom_parameters(block_params())
        .enable_compression(compression_params())
        .use_dedicated_oprf_key(false)
        .build()
}

/// Width of a table's keys or values. The server compares/returns fixed-width integers;
/// strings are mapped to tags and byte strings to length-prefixed integers on the client
/// (see [`crate::encoding`]). Cost grows linearly with the number of 2-bit blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    W8,
    W16,
    W32,
    W64,
    W128,
    W256,
}

impl Width {
    pub const ALL: [Width; 6] = [
        Width::W8,
        Width::W16,
        Width::W32,
        Width::W64,
        Width::W128,
        Width::W256,
    ];

    pub fn from_bits(bits: u32) -> Result<Width> {
        Width::ALL
            .into_iter()
            .find(|w| w.bits() == bits)
            .ok_or_else(|| {
                FheKvError::InvalidArgument(format!(
                    "width must be 8, 16, 32, 64, 128 or 256 bits, got {bits}"
                ))
            })
    }

    pub fn bits(self) -> u32 {
        match self {
            Width::W8 => 8,
            Width::W16 => 16,
            Width::W32 => 32,
            Width::W64 => 64,
            Width::W128 => 128,
            Width::W256 => 256,
        }
    }

    /// Plaintext size in bytes (little-endian byte strings of this length are the generic
    /// plaintext representation).
    pub fn bytes(self) -> usize {
        (self.bits() / 8) as usize
    }

    /// Number of 2-bit blocks of a radix ciphertext of this width.
    pub fn blocks(self) -> usize {
        (self.bits() / BITS_PER_BLOCK) as usize
    }

    /// Largest plaintext of this width that fits a `u64` (u64::MAX for widths ≥ 64).
    pub fn max_value(self) -> u64 {
        if self.bits() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.bits()) - 1
        }
    }

    pub fn check_fits(self, value: u64, what: &str) -> Result<()> {
        if value > self.max_value() {
            return Err(FheKvError::InvalidArgument(format!(
                "{what} {value} does not fit in {} bits",
                self.bits()
            )));
        }
        Ok(())
    }

    /// `value` as the little-endian plaintext of this width.
    pub fn le_bytes_of(self, value: u64, what: &str) -> Result<Vec<u8>> {
        self.check_fits(value, what)?;
        let mut out = vec![0u8; self.bytes()];
        let n = self.bytes().min(8);
        out[..n].copy_from_slice(&value.to_le_bytes()[..n]);
        Ok(out)
    }
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "u{}", self.bits())
    }
}
