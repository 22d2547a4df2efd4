//! Parameters of the bucketed layout. Every choice here is argued, with the numbers, in
//! [`crate::noise::BucketNoise`] and docs/bucketed.md.
//!
//! * **Stored buckets** are GLWE ciphertexts under the PBS's own GLWE secret key
//!   (`k = 1`, `N = 2048`): a coefficient extracted from one is an LWE sample under the big
//!   LWE key, i.e. a shortint block the kernels can bootstrap directly — no decompression
//!   PBS. The bootstrapping key already holds GGSW encryptions under this key, so using
//!   it for the table is the same assumption TFHE-rs makes.
//! * **Selectors** (the bucket index bits of a query) are GGSW encryptions under the same
//!   key, decomposed in base 2^12 with 3 levels: each external product adds a variance
//!   of ~2^-61.5, so ~10^8 writes fit in the noise budget.
//! * **Packing key switch** (server key material, ~64 MiB seeded): from the big LWE key to
//!   the same GLWE key, base 2^15 with 2 levels, so packing a whole bucket (up to 2048
//!   blocks) adds at most ~2^-46 to a stored block.
//! * **Storage**: the stored GLWE is modulus-switched to 32 bits per coefficient, which
//!   adds ~2^-57.6 per rewrite.

use crate::params::block_params;
use tfhe::core_crypto::prelude::*;

/// Decomposition of the selector GGSWs.
pub const SELECTOR_BASE_LOG: usize = 12;
pub const SELECTOR_LEVELS: usize = 3;

/// Decomposition of the packing key-switching key (big LWE key → bucket GLWE key).
pub const PKS_BASE_LOG: usize = 15;
pub const PKS_LEVELS: usize = 2;

/// Bits per stored coefficient.
pub const STORAGE_LOG_MODULUS: usize = 32;

/// Bits per coefficient of a bucket read's answer (`fhe_fetch` on a bucketed table): the
/// stored noise (~2^-28.6) is far above what re-switching to 20 bits adds (~2^-33.6).
pub const READ_LOG_MODULUS: usize = 20;

/// Largest number of selector bits per half (a table has at most 2^31 slots).
pub const MAX_INDEX_BITS: usize = 30;

pub fn glwe_size() -> GlweSize {
    block_params().glwe_dimension.to_glwe_size()
}

pub fn polynomial_size() -> PolynomialSize {
    block_params().polynomial_size
}

/// Coefficients of one stored bucket (the GLWE's polynomial size).
pub fn coefficients() -> usize {
    polynomial_size().0
}

/// The big LWE dimension (`k · N`): the dimension of every extracted block.
pub fn lwe_dimension() -> LweDimension {
    block_params()
        .glwe_dimension
        .to_equivalent_lwe_dimension(block_params().polynomial_size)
}

/// The noise distribution of every fresh encryption under the bucket key: the one the
/// parameter set gives the GLWE key (TUniform, 128-bit security at `k · N = 2048`).
pub fn noise_distribution() -> DynamicDistribution<u64> {
    block_params().glwe_noise_distribution
}

pub fn ciphertext_modulus() -> CiphertextModulus<u64> {
    CiphertextModulus::new_native()
}

/// Conformance parameters of a stored or answered bucket GLWE.
pub fn glwe_conformance() -> GlweCiphertextConformanceParams<u64> {
    GlweCiphertextConformanceParams {
        glwe_dim: block_params().glwe_dimension,
        polynomial_size: polynomial_size(),
        ct_modulus: ciphertext_modulus(),
    }
}

/// Conformance parameters of the packing key-switching key in a server key bundle.
pub fn pksk_conformance() -> LwePackingKeyswitchKeyConformanceParams<u64> {
    LwePackingKeyswitchKeyConformanceParams {
        decomp_base_log: DecompositionBaseLog(PKS_BASE_LOG),
        decomp_level_count: DecompositionLevelCount(PKS_LEVELS),
        input_lwe_dimension: lwe_dimension(),
        output_glwe_size: glwe_size(),
        output_polynomial_size: polynomial_size(),
        ciphertext_modulus: ciphertext_modulus(),
    }
}

/// `u64` coefficients of one seeded selector GGSW (its body polynomials).
pub fn selector_len() -> usize {
    seeded_ggsw_ciphertext_size(
        glwe_size(),
        polynomial_size(),
        DecompositionLevelCount(SELECTOR_LEVELS),
    )
}
