//! Noise budget of the stored (list-compressed) blocks, from TFHE-rs' own noise formulas
//! (`tfhe::core_crypto::commons::noise_formulas`) and the pinned parameters.
//!
//! A stored block goes through: a PBS (its output variance `σ²_pbs`), TFHE-rs'
//! compression (× `carry_modulus`, packing key switch into the compression GLWE, modulus
//! switch to `storage_log_modulus` bits), and later either the decompression blind
//! rotation or, for answers, the client's GLWE decryption. Both read the sample at the
//! storage modulus (which equals `2N`, so no further switch adds noise) and fail when the
//! noise exceeds half a step of the 3-bit padded encoding: `t = 2^-4` on the torus.
//!
//! TFHE-rs asserts that compression inputs are single PBS outputs. Some kernels hand it a
//! sum of `n` PBS outputs instead (SET's one-PBS masked update: `n = 2`). This module
//! computes what that costs: the scaled input is a small part of the stored variance,
//! which is dominated by the packing key switch and the storage modulus switch, so the
//! failure probability stays far below the `2^-128` class of every PBS. The unit tests
//! pin that for the `n` the kernels use; `cargo test -p fhe-kv-core noise -- --nocapture`
//! prints the table reproduced in docs/noise.md.

use crate::params::{block_params, compression_params};
use tfhe::core_crypto::commons::noise_formulas::lwe_packing_keyswitch::packing_keyswitch_additive_variance_132_bits_security_tuniform;
use tfhe::core_crypto::commons::noise_formulas::lwe_programmable_bootstrap::pbs_variance_132_bits_security_tuniform_fft_mul;
use tfhe::core_crypto::commons::noise_formulas::modulus_switch::modulus_switch_additive_variance;
use tfhe::core_crypto::prelude::{GlweDimension, LweDimension};

/// Mantissa of the f64 FFT the PBS uses (TFHE-rs' noise model parameter).
const FFT_MANTISSA_BITS: f64 = 53.0;

/// Variances (torus-normalised, modulus 1) of one stored block.
#[derive(Clone, Copy, Debug)]
pub struct StoredNoise {
    /// PBS outputs summed into the compressed block.
    pub input_terms: f64,
    /// One PBS output.
    pub pbs: f64,
    /// The compression input after its × carry_modulus shift.
    pub scaled_input: f64,
    /// Added by the packing key switch (a full GLWE of `lwe_per_glwe` blocks: worst case).
    pub packing_keyswitch: f64,
    /// Added by the modulus switch to the storage modulus.
    pub storage_modulus_switch: f64,
}

impl StoredNoise {
    /// The stored variance when the compressed block is a sum of `input_terms`
    /// independent PBS outputs.
    pub fn for_sum_of(input_terms: f64) -> StoredNoise {
        let p = block_params();
        let c = compression_params();
        let q = 2f64.powi(64);
        let pbs = pbs_variance_132_bits_security_tuniform_fft_mul(
            p.lwe_dimension,
            p.glwe_dimension,
            p.polynomial_size,
            p.pbs_base_log,
            p.pbs_level,
            FFT_MANTISSA_BITS,
            q,
        )
        .0;
        let big_lwe = LweDimension(p.glwe_dimension.0 * p.polynomial_size.0);
        let packing_keyswitch = packing_keyswitch_additive_variance_132_bits_security_tuniform(
            big_lwe,
            c.packing_ks_glwe_dimension(),
            c.packing_ks_polynomial_size(),
            c.packing_ks_base_log(),
            c.packing_ks_level(),
            c.lwe_per_glwe().0 as f64,
            q,
        )
        .0;
        let stored_glwe = GlweDimension(c.packing_ks_glwe_dimension().0)
            .to_equivalent_lwe_dimension(c.packing_ks_polynomial_size());
        let storage_modulus_switch = modulus_switch_additive_variance(
            stored_glwe,
            q,
            2f64.powi(c.storage_log_modulus().0 as i32),
        )
        .0;
        let shift = p.carry_modulus.0 as f64;
        StoredNoise {
            input_terms,
            pbs,
            scaled_input: input_terms * pbs * shift * shift,
            packing_keyswitch,
            storage_modulus_switch,
        }
    }

    pub fn total(&self) -> f64 {
        self.scaled_input + self.packing_keyswitch + self.storage_modulus_switch
    }

    /// An upper bound on log2 of the probability that reading the block fails:
    /// `P(|e| ≥ t) = erfc(x)` with `x = t / (σ√2)`, `t = 2^-4`, and
    /// `erfc(x) < e^{-x²} / (x√π)` for `x > 0`.
    pub fn log2_failure_bound(&self) -> f64 {
        let t = 2f64.powi(-4);
        let x = t / (2.0 * self.total()).sqrt();
        (-x * x - (x * std::f64::consts::PI.sqrt()).ln()) / std::f64::consts::LN_2
    }
}

/// Noise of the two-round GET's fetch answer: the stored sample of the selected row
/// plus one external product per CMux level, read by the key owner's GLWE decryption
/// (same threshold `t = 2^-4` as a stored block).
///
/// One CMux `l + b·(r − l)` with a GGSW of `b ∈ {0, 1}` returns the selected input's own
/// noise plus the external product error, whose variance (torus-normalised) is
///
/// `ℓ·(k+1)·N·(B² + 2)/12 · σ²_ggsw  +  (1 + k·N/2) / (12·B^{2ℓ})`
///
/// (decomposed digits are centred in `[−B/2, B/2)`; the second term is the decomposition's
/// rounding against a binary key of expected weight `k·N/2`). σ²_ggsw is the variance of
/// the compression key's own noise distribution, which the GGSWs are encrypted with. The
/// f64 FFT of the product adds far less at N = 256. The answer is then switched to
/// `FETCH_RESULT_LOG_MODULUS` bits, which adds a modulus-switch term.
#[derive(Clone, Copy, Debug)]
pub struct FetchNoise {
    pub stored: f64,
    pub per_level: f64,
    pub levels: usize,
    pub result_modulus_switch: f64,
}

impl FetchNoise {
    pub fn for_index_bits(levels: usize) -> FetchNoise {
        use crate::two_round::{FETCH_BASE_LOG, FETCH_LEVELS, FETCH_RESULT_LOG_MODULUS};
        let c = compression_params();
        let k = c.packing_ks_glwe_dimension().0 as f64;
        let n = c.packing_ks_polynomial_size().0 as f64;
        let ell = FETCH_LEVELS as f64;
        let b = 2f64.powi(FETCH_BASE_LOG as i32);
        let q = 2f64.powi(64);
        let sigma2 = match c.packing_ks_key_noise_distribution() {
            tfhe::core_crypto::prelude::DynamicDistribution::TUniform(t) => t.variance(q).0,
            tfhe::core_crypto::prelude::DynamicDistribution::Gaussian(g) => g.std.powi(2),
        };
        let per_level = ell * (k + 1.0) * n * (b * b + 2.0) / 12.0 * sigma2
            + (1.0 + k * n / 2.0) / (12.0 * b.powf(2.0 * ell));
        let glwe_as_lwe = GlweDimension(c.packing_ks_glwe_dimension().0)
            .to_equivalent_lwe_dimension(c.packing_ks_polynomial_size());
        FetchNoise {
            stored: StoredNoise::for_sum_of(1.0).total(),
            per_level,
            levels,
            result_modulus_switch: modulus_switch_additive_variance(
                glwe_as_lwe,
                q,
                2f64.powi(FETCH_RESULT_LOG_MODULUS as i32),
            )
            .0,
        }
    }

    pub fn total(&self) -> f64 {
        self.stored + self.levels as f64 * self.per_level + self.result_modulus_switch
    }

    /// Same bound as [`StoredNoise::log2_failure_bound`].
    pub fn log2_failure_bound(&self) -> f64 {
        let t = 2f64.powi(-4);
        let x = t / (2.0 * self.total()).sqrt();
        (-x * x - (x * std::f64::consts::PI.sqrt()).ln()) / std::f64::consts::LN_2
    }
}

/// Noise of a bucketed table's stored blocks ([`crate::bucket`]): what a block carries
/// when a kernel extracts it, and how many write-backs it survives.
///
/// A block is written by SET as the sum of two PBS outputs (`w ? new : 0` and
/// `w ? 0 : old`: variance `2 σ²_pbs`, whatever it held before), by DELETE as one, or by
/// the key owner as a fresh encryption (far less). Then:
///
/// * the write adds the packing key switch of its bucket's delta (`packed` blocks: the
///   key term grows with the count, [`packing_keyswitch_additive_variance_132_bits_security_tuniform`]),
///   the selection error of the old block it replaces and the expansion error of its
///   leaf (≤ `levels` external products each), and the storage modulus switch to 32 bits;
/// * every later write that does not pick its bucket adds one leaf's expansion error and
///   one storage modulus switch ([`BucketNoise::per_write`]) — and a write that does pick
///   it rewrites it with fresh PBS outputs, so this is the worst case;
/// * a read adds one selection (≤ `levels` external products).
///
/// One external product with a GGSW of `b ∈ {0, 1}` (`ℓ` levels of base `B`, GLWE key
/// `k = 1`, `N = 2048`, encryption variance `σ²`) adds
/// `ℓ (k+1) N (B²/12 + 1/6) σ²` (decomposed digits against the GGSW's noise) plus, when
/// `b = 1`, `(1 + k N / 2) / (12 B^{2ℓ})` (the decomposition's rounding against the binary
/// key), plus the f64 FFT's error ([`external_product_fft_variance`]):
/// [`BucketNoise::per_level`] takes all three, the worst case.
///
/// The kernels assume a stored block at most [`crate::bucket::select::STORED_NOISE_LEVEL`]
/// nominal variances (3 σ²_pbs): [`BucketNoise::writes_until_level`] is how many writes a
/// never-rewritten block can take before that fails, and the tests pin it above 10^6.
#[derive(Clone, Copy, Debug)]
pub struct BucketNoise {
    /// One PBS output.
    pub pbs: f64,
    /// A fresh encryption under the bucket key.
    pub fresh: f64,
    /// One external product (the `b = 1` worst case).
    pub per_level: f64,
    /// Selector bits per half: external products per selection or expansion path.
    pub levels: usize,
    /// The packing key switch of a delta of `packed` blocks.
    pub packing: f64,
    pub packed: usize,
    /// The storage modulus switch (32 bits).
    pub storage_ms: f64,
    /// The modulus switch of a bucket read's answer (20 bits).
    pub read_ms: f64,
}

impl BucketNoise {
    pub fn new(levels: usize, packed: usize) -> BucketNoise {
        use crate::bucket::params as bp;
        let p = block_params();
        let q = 2f64.powi(64);
        let k = p.glwe_dimension.0 as f64;
        let n = p.polynomial_size.0 as f64;
        let fresh = bucket_fresh_variance();
        let ell = bp::SELECTOR_LEVELS as f64;
        let b = 2f64.powi(bp::SELECTOR_BASE_LOG as i32);
        let per_level = ell * (k + 1.0) * n * (b * b / 12.0 + 1.0 / 6.0) * fresh
            + (1.0 + k * n / 2.0) * (1.0 / (12.0 * b.powf(2.0 * ell)) + 1.0 / (6.0 * q * q))
            + external_product_fft_variance(bp::SELECTOR_LEVELS, bp::SELECTOR_BASE_LOG);
        let big_lwe = bp::lwe_dimension();
        let packing = packing_keyswitch_additive_variance_132_bits_security_tuniform(
            big_lwe,
            p.glwe_dimension,
            p.polynomial_size,
            tfhe::core_crypto::prelude::DecompositionBaseLog(bp::PKS_BASE_LOG),
            tfhe::core_crypto::prelude::DecompositionLevelCount(bp::PKS_LEVELS),
            packed as f64,
            q,
        )
        .0;
        let ms =
            |bits: usize| modulus_switch_additive_variance(big_lwe, q, 2f64.powi(bits as i32)).0;
        BucketNoise {
            pbs: StoredNoise::for_sum_of(1.0).pbs,
            fresh,
            per_level,
            levels,
            packing,
            packed,
            storage_ms: ms(bp::STORAGE_LOG_MODULUS),
            read_ms: ms(bp::READ_LOG_MODULUS),
        }
    }

    /// What every write-back adds to a block it does not rewrite.
    pub fn per_write(&self) -> f64 {
        self.levels as f64 * self.per_level + self.storage_ms
    }

    /// A block written by SET (two PBS outputs), after `writes` later write-backs, as a
    /// kernel extracts it (one more selection).
    pub fn extracted_after(&self, writes: f64) -> f64 {
        let path = self.levels as f64 * self.per_level;
        2.0 * self.pbs
            + self.packing
            + 2.0 * path
            + self.storage_ms
            + writes * self.per_write()
            + path
    }

    /// Write-backs a block survives before an extracted block exceeds `level` nominal
    /// variances.
    pub fn writes_until_level(&self, level: f64) -> f64 {
        (level * self.pbs - self.extracted_after(0.0)) / self.per_write()
    }

    /// log2 of the probability that the key owner misreads a block of a bucket read's
    /// answer after `writes` write-backs (threshold: half a step of the 5-bit padded
    /// encoding, `2^-6`).
    pub fn log2_read_failure(&self, writes: f64) -> f64 {
        let variance = self.extracted_after(writes) + self.read_ms;
        let t = 2f64.powi(-6);
        let x = t / (2.0 * variance).sqrt();
        (-x * x - (x * std::f64::consts::PI.sqrt()).ln()) / std::f64::consts::LN_2
    }
}

/// Noise of a chunk distance in leveled equality ([`crate::leveled`]), as it enters its
/// PBS.
///
/// The stored key is a fresh seeded GLWE (`σ²_fresh`) whose bodies are rounded to
/// `KEY_BODY_BITS = 32` bits for storage (`σ²_round = 2^{−2·32}/12`: a uniform rounding
/// error on the body alone, no mask term). The external product with the GGSW of the chunk
/// polynomial `M_c` gives
///
/// `‖M_c‖² (σ²_fresh + σ²_round)`  (the stored noise, carried through the message product)
/// `+ ℓ (k+1) N (B²/12 + 1/6) σ²_fresh`  (decomposed digits against the GGSW's noise)
/// `+ ‖M_c‖² (1 + k N/2) (1/(12 B^{2ℓ}) + 1/(6 q²))`  (the decomposition's rounding,
/// multiplied by the message)
/// `+` the f64 FFT's error ([`external_product_fft_variance`]),
///
/// with `‖M_c‖² = |c| + (Σ q_b)² ≤ 15 + 15² = 240` in the worst case. Sample extraction
/// adds nothing. The kernel declares the distance at the nominal noise level, i.e. at most
/// one PBS output's variance: [`LeveledEqualityNoise::nominal_margin_log2`] is how far
/// below that it is (the tests require it to be positive and measure the variance).
#[derive(Clone, Copy, Debug)]
pub struct LeveledEqualityNoise {
    pub fresh: f64,
    /// The stored key's body rounding.
    pub storage_rounding: f64,
    /// `‖M_c‖²` of the worst chunk.
    pub message_norm2: f64,
    /// The digit term of one external product.
    pub digits: f64,
    /// The rounding term, per unit of `‖M_c‖²`.
    pub rounding: f64,
    /// The f64 FFT's error of one external product ([`external_product_fft_variance`]).
    pub fft: f64,
    pub pbs: f64,
    /// The stored vacant flag, added to the last chunk: at worst a PBS output (after a
    /// private DELETE) rounded whole to `FLAG_BITS = 24` bits, a modulus switch of an LWE
    /// of dimension `k N`. Every DELETE bootstraps it, so it does not grow.
    pub flag: f64,
}

impl LeveledEqualityNoise {
    pub fn worst_case() -> LeveledEqualityNoise {
        use crate::bucket::params as bp;
        use crate::leveled::CHUNK_BITS;
        let p = block_params();
        let q = 2f64.powi(64);
        let k = p.glwe_dimension.0 as f64;
        let n = p.polynomial_size.0 as f64;
        let fresh = bucket_fresh_variance();
        let ell = bp::SELECTOR_LEVELS as f64;
        let b = 2f64.powi(bp::SELECTOR_BASE_LOG as i32);
        let chunk = CHUNK_BITS as f64;
        let pbs = StoredNoise::for_sum_of(1.0).pbs;
        LeveledEqualityNoise {
            fresh,
            storage_rounding: body_rounding_variance(crate::leveled::wire::KEY_BODY_BITS),
            message_norm2: chunk + chunk * chunk,
            digits: ell * (k + 1.0) * n * (b * b / 12.0 + 1.0 / 6.0) * fresh,
            rounding: (1.0 + k * n / 2.0)
                * (1.0 / (12.0 * b.powf(2.0 * ell)) + 1.0 / (6.0 * q * q)),
            fft: external_product_fft_variance(bp::SELECTOR_LEVELS, bp::SELECTOR_BASE_LOG),
            pbs,
            flag: pbs + big_key_rounding_variance(crate::leveled::wire::FLAG_BITS),
        }
    }

    /// The last chunk's distance plus the vacant flag, as it enters its PBS: declared at
    /// noise level 2, so it must stay below two PBS outputs' variance.
    pub fn last_chunk(&self) -> f64 {
        self.distance() + self.flag
    }

    /// The variance of a chunk distance whose query polynomial has `‖M_c‖² = norm2`.
    pub fn distance_for(&self, norm2: f64) -> f64 {
        norm2 * (self.fresh + self.storage_rounding + self.rounding) + self.digits + self.fft
    }

    /// The worst chunk's variance.
    pub fn distance(&self) -> f64 {
        self.distance_for(self.message_norm2)
    }

    /// log2 of (one PBS output's variance / the worst chunk distance's variance).
    pub fn nominal_margin_log2(&self) -> f64 {
        (self.pbs / self.distance()).log2()
    }

    /// How many two-round SETs on `bits` index bits a slot's stored key survives before
    /// its worst chunk distance reaches one PBS output's variance (the nominal level its
    /// PBS assumes). Each SET adds to every unwritten slot's key GLWE an encryption of 0
    /// with `bits` external products' errors, and the storage's modulus switch
    /// ([`LeveledGetNoise::per_set_elsewhere`]); the chunk's product multiplies both by
    /// `‖M_c‖²`. (A written slot starts again from a fresh row plus `2 bits + 1`
    /// products.)
    pub fn sets_until_nominal(&self, bits: usize) -> f64 {
        let per_set = self.message_norm2 * LeveledGetNoise::new().per_set_elsewhere(bits);
        (self.pbs - self.distance()) / per_set
    }
}

/// Noise of a chunk distance of a leveled slot inside a bucket
/// ([`crate::leveled::in_bucket`]), as it enters its PBS.
///
/// The chunk product reads the candidate bucket as the selection hands it over, whose
/// key coefficients carry (with [`BucketNoise`]'s terms, `L` = selector bits per half)
///
/// `σ²_fresh + σ²_ms(32)`  (the key owner's encryption, stored at 32 bits)
/// `+ w · (L · σ²_ext + σ²_ms(32) + σ²_fresh)`  (each of `w` write-backs since: an
/// expansion path, the storage's modulus switch again, and the delta's own encryption)
/// `+ L · σ²_ext`  (the selection's CMux path),
///
/// and the product with the GGSW of `M_c` multiplies that by
/// [`LeveledBucketNoise::norm_for`] (`‖M_c‖²`, or more where the errors are the key's
/// multiples and neighbouring coefficients correlate) and adds the digit, rounding and FFT terms of [`LeveledEqualityNoise`]. The vacant flag is added
/// after extraction (not multiplied). The kernel declares a distance at the nominal
/// level, so it must stay below one PBS output's variance:
/// [`LeveledBucketNoise::writes_until_nominal`] is how many write-backs a bucket the key
/// owner wrote survives before that could fail.
#[derive(Clone, Copy, Debug)]
pub struct LeveledBucketNoise {
    pub equality: LeveledEqualityNoise,
    pub bucket: BucketNoise,
}

/// The write-back term as measured against the formula: after 64 writes the chunk
/// distances' variance is 1.4–1.8× what the terms above predict (the test
/// `distances_after_64_owner_writes_decrypt_exactly_and_their_noise_is_measured`), so the
/// budget counts every write twice rather than trust a formula the measurement does not
/// meet. (Before storage rounded ties to even, [`crate::rounding`], it was 18–20×.)
pub const WRITE_MEASURED_FACTOR: f64 = 2.0;

impl LeveledBucketNoise {
    /// A table of `levels` selector bits per half.
    pub fn new(levels: usize) -> LeveledBucketNoise {
        LeveledBucketNoise {
            equality: LeveledEqualityNoise::worst_case(),
            bucket: BucketNoise::new(levels, 1),
        }
    }

    /// What one write-back adds to every key coefficient of every bucket, times
    /// [`WRITE_MEASURED_FACTOR`].
    pub fn per_write(&self) -> f64 {
        WRITE_MEASURED_FACTOR * (self.bucket.per_write() + self.bucket.fresh)
    }

    /// A key coefficient of a selected candidate bucket after `writes` write-backs.
    pub fn selected_after(&self, writes: f64) -> f64 {
        let b = &self.bucket;
        b.fresh + b.storage_ms + writes * self.per_write() + b.levels as f64 * b.per_level
    }

    /// The factor a chunk's product multiplies the stored noise by, for a chunk of `len`
    /// key bits whose query has `ones` bits set: `M_c` has weights `w = (1 − 2q_b)` on the
    /// key bits and `Σ q_b` on the constant, and
    ///
    /// * a white error term (a fresh encryption's) gives `‖w‖² = len + ones²`;
    /// * an error that is a white vector times the key, `r · s` (every modulus switch's
    ///   and key switch's mask rounding, an f64 FFT's mask error), is **not** white:
    ///   `s` has mean 1/2, so neighbouring coefficients share half their variance, and
    ///   `E_s[Var(Σ_b w_b (r·s)_b)] = V (‖w‖² + (Σ w)²) / 2` with `Σ w = len − ones`.
    ///
    /// The larger of the two bounds both. It never exceeds the worst case `len + len²`
    /// that [`LeveledEqualityNoise::message_norm2`] and the write budget use
    /// (`(len + len²)/2` at `ones = 0`).
    pub fn norm_for(len: f64, ones: f64) -> f64 {
        let white = len + ones * ones;
        let sum = len - ones;
        f64::max(white, (white + sum * sum) / 2.0)
    }

    /// The variance of a chunk distance whose product multiplies the stored noise by
    /// `norm2` ([`LeveledBucketNoise::norm_for`]) after `writes` write-backs.
    pub fn distance_for(&self, writes: f64, norm2: f64) -> f64 {
        let e = &self.equality;
        norm2 * (self.selected_after(writes) + e.rounding) + e.digits + e.fft
    }

    /// The worst chunk's variance after `writes` write-backs.
    pub fn distance(&self, writes: f64) -> f64 {
        self.distance_for(writes, self.equality.message_norm2)
    }

    /// Write-backs before the worst chunk distance of a never-rewritten bucket reaches
    /// one PBS output's variance.
    pub fn writes_until_nominal(&self) -> f64 {
        let e = &self.equality;
        (e.pbs - self.distance(0.0)) / (e.message_norm2 * self.per_write())
    }
}

/// Noise of a leveled GET's answer ([`crate::leveled::get`]), as the key owner decrypts it.
///
/// Each slot adds one blind rotation's output: a PBS output's variance plus its
/// accumulator's own noise, which a blind rotation carries unchanged (every CMux keeps the
/// selected input's noise) — here the stored value GLWE's, fresh plus the rounding of its
/// bodies to `VALUE_BODY_BITS = 16` bits (`2^{−32}/12`, 2^-6 of a PBS output). The answer sums `S` slots with no bootstrap, and the key owner reads a
/// nibble at the block encoding, failing when the noise exceeds half a step, `2^-6`.
#[derive(Clone, Copy, Debug)]
pub struct LeveledGetNoise {
    pub per_slot: f64,
    /// The stored value's body rounding (part of `per_slot`).
    pub value_rounding: f64,
    /// A stored value GLWE's coefficient: fresh plus the body rounding.
    pub stored_value: f64,
    /// One CMux of the two-round fetch (an external product with a selector bit: the
    /// digit, rounding and FFT terms of [`LeveledEqualityNoise`] at `‖m‖² = 1`).
    pub per_level: f64,
    /// Storing a GLWE a SET computed: a modulus switch of all `k N + 1` coefficients
    /// that meet a coefficient of the GLWE key (`crate::leveled::wire::COMPUTED_BITS`).
    pub computed_rounding: f64,
}

impl Default for LeveledGetNoise {
    fn default() -> Self {
        Self::new()
    }
}

impl LeveledGetNoise {
    pub fn new() -> LeveledGetNoise {
        let e = LeveledEqualityNoise::worst_case();
        let value_rounding = body_rounding_variance(crate::leveled::wire::VALUE_BODY_BITS);
        LeveledGetNoise {
            per_slot: e.pbs + e.fresh + value_rounding,
            value_rounding,
            stored_value: e.fresh + value_rounding,
            per_level: e.digits + e.rounding + e.fft,
            computed_rounding: big_key_rounding_variance(crate::leveled::wire::COMPUTED_BITS),
        }
    }

    /// A coefficient of a value GLWE fetched by a CMux tree of `bits` levels (the
    /// two-round GET's round 2): its stored noise plus one external product per level.
    pub fn fetched(&self, bits: usize) -> f64 {
        self.stored_value + bits as f64 * self.per_level
    }

    /// A coefficient of the slot a two-round SET wrote ([`crate::leveled::set_write`],
    /// `bits` index bits), as stored: the new row's stored noise, plus the selection of
    /// the old slot (`bits` external products), the enable product and the expansion
    /// (`bits` more), whatever the slot held before, plus the storage's modulus switch.
    pub fn written(&self, bits: usize) -> f64 {
        self.stored_value + (2 * bits + 1) as f64 * self.per_level + self.computed_rounding
    }

    /// What one SET adds to every slot it does not write, as stored: an encryption of 0
    /// carrying one external product's error per level of the expansion tree, and the
    /// storage's modulus switch (every slot is stored again).
    pub fn per_set_elsewhere(&self, bits: usize) -> f64 {
        bits as f64 * self.per_level + self.computed_rounding
    }

    /// A GET's per-slot variance over a slot that `sets` SETs on `bits` index bits have
    /// rewritten since the key owner wrote it.
    pub fn per_slot_after_sets(&self, sets: f64, bits: usize) -> f64 {
        self.per_slot + sets * self.per_set_elsewhere(bits)
    }

    /// log2 of the probability that one nibble of an answer over `slots` slots misreads.
    pub fn log2_failure(&self, slots: usize) -> f64 {
        log2_misread(self.per_slot * slots as f64)
    }

    /// What the wire adds to an answer's sample (`crate::leveled::messages`): every
    /// coefficient of the LWE rounded to 24 bits, a modulus switch of dimension `k N`.
    pub fn answer_wire_rounding() -> f64 {
        big_key_rounding_variance(crate::leveled::wire::FLAG_BITS)
    }

    /// log2 of the probability that the key owner misreads a nibble of a fetched value
    /// GLWE (`bits` CMux levels), after the wire's modulus switch to
    /// `crate::bucket::params::READ_LOG_MODULUS` bits.
    pub fn log2_fetch_failure(&self, bits: usize) -> f64 {
        let wire = big_key_rounding_variance(crate::bucket::params::READ_LOG_MODULUS as u32);
        log2_misread(self.fetched(bits) + wire)
    }

    /// The most slots one answer may sum and stay in the `2^-128` class per nibble.
    pub fn max_slots(&self) -> usize {
        let mut slots = 1;
        while self.log2_failure(2 * slots) <= -128.0 {
            slots *= 2;
        }
        slots
    }
}

/// A coefficient of a lookup-table GLWE that [`crate::leveled::repack`] rebuilt from a
/// value stored as single coefficients. Each nibble is one packing key switch of one
/// LWE (the bucketed layout's key, [`packing_keyswitch_additive_variance_132_bits_security_tuniform`]
/// split in its two terms), moved to its plateau and multiplied by
/// `P(X) = Σ_{t < box} X^t`:
///
/// * the decomposition's rounding (`Σ_i r_i s_i`, the `lwe_to_pack`-free term) lands on
///   the constant coefficient only, so `P` copies it over the nibble's own plateau:
///   once per plateau coefficient;
/// * the key term is a polynomial of independent coefficients (`Σ_i d_i e_i(X)`), so a
///   coefficient of the product sums `box` of them, for every nibble of the table:
///   `NIBBLES_PER_GLWE · box` key terms on every coefficient, plateau or not;
/// * the row coefficient's own noise is a scalar: `P` copies it, nothing multiplies it.
pub struct RepackNoise {
    /// One key switch's rounding term.
    pub rounding: f64,
    /// One key switch's key term (one LWE packed).
    pub key_term: f64,
    /// The key terms every coefficient of a table carries.
    pub table_key_terms: f64,
}

impl Default for RepackNoise {
    fn default() -> Self {
        Self::new()
    }
}

impl RepackNoise {
    pub fn new() -> RepackNoise {
        use crate::bucket::params as bp;
        let p = block_params();
        let packing = |packed: f64| {
            packing_keyswitch_additive_variance_132_bits_security_tuniform(
                bp::lwe_dimension(),
                p.glwe_dimension,
                p.polynomial_size,
                tfhe::core_crypto::prelude::DecompositionBaseLog(bp::PKS_BASE_LOG),
                tfhe::core_crypto::prelude::DecompositionLevelCount(bp::PKS_LEVELS),
                packed,
                2f64.powi(64),
            )
            .0
        };
        let rounding = packing(0.0);
        let key_term = packing(1.0) - rounding;
        let width = crate::leveled::repack::plateau_width() as f64;
        RepackNoise {
            rounding,
            key_term,
            table_key_terms: crate::leveled::NIBBLES_PER_GLWE as f64 * width * key_term,
        }
    }

    /// A plateau coefficient of a table rebuilt from a row coefficient of variance `row`.
    pub fn plateau(&self, row: f64) -> f64 {
        row + self.rounding + self.table_key_terms
    }

    /// A coefficient outside every plateau (a 0 of the table).
    pub fn outside(&self) -> f64 {
        self.table_key_terms
    }
}

/// log2 of the probability that a Gaussian error of `variance` exceeds half a step of the
/// block encoding, `2^-6` (a nibble the key owner misreads).
fn log2_misread(variance: f64) -> f64 {
    let x = 2f64.powi(-6) / (2.0 * variance).sqrt();
    (-x * x - (x * std::f64::consts::PI.sqrt()).ln()) / std::f64::consts::LN_2
}

/// The variance (torus scale) of rounding a uniformly spread 64-bit coefficient to its top
/// `bits` bits: a uniform error over one step of `2^{−bits}`.
fn body_rounding_variance(bits: u32) -> f64 {
    2f64.powi(-2 * bits as i32) / 12.0
}

/// The variance a ciphertext under the big LWE key (an LWE of dimension `k N`, or a GLWE
/// coefficient) gains when all its coefficients, mask and body, are rounded to `bits`
/// bits: TFHE-rs' modulus-switch formula, `(1 + k N / 2) · 2^{−2·bits} / 12` (2^-57.6 at
/// 32 bits).
fn big_key_rounding_variance(bits: u32) -> f64 {
    modulus_switch_additive_variance(
        crate::bucket::params::lwe_dimension(),
        2f64.powi(64),
        2f64.powi(bits as i32),
    )
    .0
}

/// The f64 FFT's error of one external product with a GGSW of `levels` levels of base
/// `2^base_log` at the block parameters (`k = 1`, `N = 2048`), torus-normalised: the FFT
/// term of TFHE-rs' own PBS formula (`pbs_variance_132_bits_security_tuniform_fft_mul_impl`,
/// for one CMux and a 53-bit mantissa). At the selectors' parameters it is 2^-62.1, the
/// same order as the digit and rounding terms together (2^-61.5): measured external
/// products showed it (1.5x a formula without it).
pub fn external_product_fft_variance(levels: usize, base_log: usize) -> f64 {
    let p = block_params();
    let k = p.glwe_dimension.0 as f64;
    let n = p.polynomial_size.0 as f64;
    let lost_bits = (64.0 - f64::MANTISSA_DIGITS as f64).max(0.0);
    0.00705
        * 2f64.powf(2.0 * lost_bits + 2.0 * base_log as f64 - 128.0)
        * (levels as f64).powf(1.01827)
        * k.powf(1.22003)
        * n.powf(2.22003)
        * (k + 1.0).powf(1.01827)
}

/// The variance of a fresh encryption under the bucket (PBS GLWE) key, torus-normalised.
pub(crate) fn bucket_fresh_variance() -> f64 {
    match crate::bucket::params::noise_distribution() {
        tfhe::core_crypto::prelude::DynamicDistribution::TUniform(t) => t.variance(2f64.powi(64)).0,
        tfhe::core_crypto::prelude::DynamicDistribution::Gaussian(g) => g.std.powi(2),
    }
}

/// log2 of the failure probability of one PBS of the block parameters (TFHE-rs' figure
/// for an input at `max_noise_level`): the class every kernel step is held to.
pub fn pbs_log2_failure() -> f64 {
    block_params().log2_p_fail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sum_of_two_pbs_outputs_compresses_far_inside_the_pbs_failure_class() {
        let one = StoredNoise::for_sum_of(1.0);
        let two = StoredNoise::for_sum_of(2.0);
        for n in [one, two, StoredNoise::for_sum_of(5.0)] {
            eprintln!(
                "terms {}: log2 var: pbs {:.2}, scaled input {:.2}, packing KS {:.2}, \
                 storage MS {:.2}, total {:.3}; log2 P(fail) < {:.1}",
                n.input_terms,
                n.pbs.log2(),
                n.scaled_input.log2(),
                n.packing_keyswitch.log2(),
                n.storage_modulus_switch.log2(),
                n.total().log2(),
                n.log2_failure_bound()
            );
        }
        eprintln!("one PBS: log2 P(fail) = {:.2}", pbs_log2_failure());
        // The input is a small share of the stored noise…
        assert!(two.scaled_input < 0.01 * two.total());
        // …so doubling it moves the bound by about a bit, and it stays far below any PBS.
        assert!(two.log2_failure_bound() - one.log2_failure_bound() < 1.0);
        assert!(two.log2_failure_bound() < pbs_log2_failure() - 100.0);
    }

    #[test]
    fn locate_sums_of_seven_terms_compress_far_inside_the_pbs_failure_class() {
        let seven = StoredNoise::for_sum_of(7.0);
        eprintln!(
            "locate sum of 7: scaled input {:.2} of total {:.3}; log2 P(fail) < {:.1}",
            seven.scaled_input.log2(),
            seven.total().log2(),
            seven.log2_failure_bound()
        );
        assert!(seven.scaled_input < 0.05 * seven.total());
        assert!(seven.log2_failure_bound() < pbs_log2_failure() - 100.0);
    }

    #[test]
    fn a_fetch_over_a_billion_slots_reads_far_inside_the_pbs_failure_class() {
        for bits in [1, 10, 20, 31] {
            let f = FetchNoise::for_index_bits(bits);
            eprintln!(
                "fetch, {bits} selector bits: log2 var: stored {:.2}, per CMux {:.2}, \
                 result MS {:.2}, total {:.3}; log2 P(fail) < {:.1}",
                f.stored.log2(),
                f.per_level.log2(),
                f.result_modulus_switch.log2(),
                f.total().log2(),
                f.log2_failure_bound()
            );
        }
        let one = FetchNoise::for_index_bits(1);
        let worst = FetchNoise::for_index_bits(crate::two_round::MAX_INDEX_BITS);
        // Each CMux level adds well under a percent of the stored sample's variance…
        assert!(one.per_level < 0.01 * one.stored);
        // …so even 31 levels (2^31 slots) keep the read below 2^-200, far inside the
        // 2^-128 class of every PBS.
        assert!(worst.log2_failure_bound() < -200.0);
        assert!(worst.log2_failure_bound() < pbs_log2_failure());
    }

    #[test]
    fn bucket_blocks_survive_millions_of_writes() {
        // u64/u64 slots, 6 per bucket: 390 blocks packed per delta at most (2048 for
        // the widest buckets).
        for (bits, packed) in [(1, 390), (14, 390), (14, 2048), (20, 2048), (30, 2048)] {
            let n = BucketNoise::new(bits, packed);
            eprintln!(
                "bucketed, {bits} selector bits, {packed} packed: log2 var: pbs {:.2}, fresh \
                 {:.2}, per level {:.2}, packing {:.2}, storage MS {:.2}, per write {:.2}, \
                 extracted after 10^6 writes {:.3} ({:.3} σ²_pbs); writes until level 3: \
                 {:.3e}; log2 P(misread) after 10^6 writes < {:.1}",
                n.pbs.log2(),
                n.fresh.log2(),
                n.per_level.log2(),
                n.packing.log2(),
                n.storage_ms.log2(),
                n.per_write().log2(),
                n.extracted_after(1e6).log2(),
                n.extracted_after(1e6) / n.pbs,
                n.writes_until_level(3.0),
                n.log2_read_failure(1e6)
            );
            // The design claim: a never-rewritten block stays within the kernels' assumed
            // level 3 for more than a million writes, even in a 2^31-slot table.
            assert!(n.writes_until_level(3.0) > 1e6, "{bits} bits");
            assert!(n.log2_read_failure(1e6) < -128.0);
        }
        // A 100,000-slot table (14 bits) has room for 10^7 writes.
        assert!(BucketNoise::new(14, 390).writes_until_level(3.0) > 1e7);
    }

    #[test]
    fn leveled_chunk_distances_enter_their_pbs_far_below_the_nominal_level() {
        let n = LeveledEqualityNoise::worst_case();
        println!(
            "leveled equality, worst chunk: stored 2^{:.1} x {} + digits 2^{:.1} + rounding \
             2^{:.1} x {} = 2^{:.1}; one PBS output 2^{:.1}: margin 2^{:.1}",
            (n.fresh + n.storage_rounding).log2(),
            n.message_norm2,
            n.digits.log2(),
            n.rounding.log2(),
            n.message_norm2,
            n.distance().log2(),
            n.pbs.log2(),
            n.nominal_margin_log2()
        );
        // The kernel declares chunk distances at the nominal level: they must be below
        // one PBS output, with room to spare for what the formulas leave out (the FFT).
        assert!(n.nominal_margin_log2() > 8.0, "{n:?}");
        // The last chunk carries the vacant flag too (a PBS output after a DELETE, stored
        // at 24 bits) and is declared at level 2.
        println!(
            "last chunk with a rewritten vacant flag: 2^{:.2} = {:.4} PBS outputs",
            n.last_chunk().log2(),
            n.last_chunk() / n.pbs
        );
        assert!(n.last_chunk() < 1.01 * n.pbs, "{n:?}");
    }

    #[test]
    fn a_leveled_answer_sums_hundreds_of_slots_inside_the_failure_class() {
        let n = LeveledGetNoise::new();
        let max = n.max_slots();
        println!(
            "leveled GET: 2^{:.1} per slot (value body rounding 2^{:.1}); {max} slots per \
             answer: 2^{:.1} per nibble",
            n.per_slot.log2(),
            n.value_rounding.log2(),
            n.log2_failure(max)
        );
        // The 16-bit value bodies cost a small share of a slot's noise.
        assert!(n.value_rounding < 0.05 * n.per_slot, "{n:?}");
        assert!(n.log2_failure(max) <= -128.0);
        assert!(n.log2_failure(2 * max) > -128.0);
        assert!(max >= 256, "{max}");
    }

    #[test]
    fn server_written_leveled_rows_survive_hundreds_of_thousands_of_sets() {
        let get = LeveledGetNoise::new();
        let key = LeveledEqualityNoise::worst_case();
        println!(
            "a computed GLWE stored at 32 bits: 2^{:.2} per store; one SET elsewhere (10 \
             index bits) 2^{:.2}",
            get.computed_rounding.log2(),
            get.per_set_elsewhere(10).log2()
        );
        // (1 + 2048/2) · 2^-64 / 12, TFHE-rs' modulus-switch formula.
        assert!((get.computed_rounding.log2() - (1025f64 / 12.0).log2() + 64.0).abs() < 0.01);
        // Storage costs about as much as the write's own products, not more.
        assert!(get.computed_rounding < get.per_set_elsewhere(10));
        for bits in [3, 10] {
            let sets = key.sets_until_nominal(bits);
            println!(
                "{bits} index bits: {sets:.3e} SETs before a stored key's chunk distance \
                 reaches one PBS output"
            );
            // 1,024 slots (10 bits, the most one answer sums): over 2^18 SETs.
            assert!(sets > 2f64.powi(18), "{bits} bits: {sets}");
            // The value GLWEs after as many SETs: a GET's per-slot noise hardly moves.
            assert!(get.per_slot_after_sets(sets, bits) < 1.02 * get.per_slot);
        }
    }

    #[test]
    /// The formula's arithmetic. Its write budget assumes independent write-backs (true
    /// since storage rounds ties to even, `crate::rounding`) and counts each write twice,
    /// as measured after 64 writes (leveled::tests_in_bucket: 1.4–1.8× the bare formula).
    fn leveled_bucket_noise_formula_gives_a_budget_of_a_hundred_thousand_writes_or_more() {
        // 14 selector bits: 100,000 slots; 30: the largest table the layout allows.
        for levels in [3, 14, crate::bucket::params::MAX_INDEX_BITS] {
            let n = LeveledBucketNoise::new(levels);
            let writes = n.writes_until_nominal();
            println!(
                "leveled slots in buckets, {levels} selector bits: worst chunk distance \
                 2^{:.1} as the key owner wrote it (one PBS output 2^{:.1}), +2^{:.1} per \
                 write-back: {writes:.3e} writes before the nominal level",
                n.distance(0.0).log2(),
                n.equality.pbs.log2(),
                (n.equality.message_norm2 * n.per_write()).log2()
            );
            // A read of a freshly written bucket is far below the nominal level...
            assert!(n.distance(0.0) < 2f64.powi(-12) * n.equality.pbs, "{n:?}");
            // ...and stays below it for 2 · 10^5 writes at 100,000 slots, 10^5 in the
            // largest table, every write counted twice (WRITE_MEASURED_FACTOR;
            // bucket-v1 blocks: over 10^8; the query's ‖M_c‖² ≤ 240 multiplies every
            // write's noise here, docs/leveled.md).
            let floor = if levels <= 14 { 2e5 } else { 1e5 };
            assert!(writes > floor, "{levels} bits: {writes}");
            assert!(n.distance(writes) <= n.equality.pbs * 1.000_001);
        }
        // The selection adds to the stored noise; it never lowers it.
        let (few, many) = (LeveledBucketNoise::new(3), LeveledBucketNoise::new(30));
        assert!(few.distance(0.0) < many.distance(0.0));
        assert!(few.distance(0.0) > LeveledEqualityNoise::worst_case().digits);
    }

    #[test]
    fn the_wire_formats_of_leveled_answers_cost_nothing_that_matters() {
        let n = LeveledGetNoise::new();
        let answer = LeveledGetNoise::answer_wire_rounding();
        println!(
            "answer samples at 24 bits: 2^{:.1} against 2^{:.1} per slot; a fetch over 30 \
             index bits at 20 bits: P(misread) 2^{:.0}",
            answer.log2(),
            n.per_slot.log2(),
            n.log2_fetch_failure(30)
        );
        assert!(answer < 2f64.powi(-10) * n.per_slot);
        assert!(n.log2_fetch_failure(30) < -128.0);
    }

    #[test]
    fn the_formulas_reproduce_the_pbs_output_variance_scale() {
        // Sanity of the transcription-free use of the formulas: a PBS output is far
        // quieter than the stored sample, and the stored sample far quieter than t = 2^-4.
        let n = StoredNoise::for_sum_of(1.0);
        assert!(n.pbs > 0.0 && n.pbs < 2f64.powi(-25));
        assert!(n.total() < 2f64.powi(-16));
        assert!(n.total() > n.packing_keyswitch);
    }
}
