//! Rounding ciphertext coefficients to fewer bits for storage or the wire, **ties to
//! even**.
//!
//! Why not round-half-up (`(x + 2^{s−1}) >> s`, what TFHE-rs' modulus switch does): the
//! external products of a write-back come out of an f64 FFT, so their coefficients are
//! multiples of 2^13 or more (the FFT's mantissa), and about one in 45 of them sits
//! exactly halfway between two 32-bit values. Round-half-up sends every such tie the
//! same way, so every rewrite adds the same bias to every mask coefficient; a constant
//! mask offset `μ` decrypts as `μ · (1, …, 1) · s`, an error common to neighbouring
//! coefficients that grows with the number of rewrites, not its square root (measured:
//! ~2^41 after 64 rewrites of a bucket instead of 2^38, docs/leveled.md). Ties to even
//! send half of the ties each way: the rounding error has mean 0 whatever grid the input
//! lies on, so rewrites add independent errors, as the noise formulas assume.

use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::prelude::*;

/// The top `bits` bits of `x` (`1 ≤ bits < 64`), rounded to nearest, ties to even.
pub fn round_half_even(x: u64, bits: u32) -> u64 {
    let shift = 64 - bits;
    let kept = x >> shift;
    let dropped = x & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    let up = dropped > half || (dropped == half && kept & 1 == 1);
    kept.wrapping_add(u64::from(up)) & ((1u64 << bits) - 1)
}

/// `glwe` modulus-switched to `bits` bits per coefficient (the first `bodies` body
/// coefficients kept), rounded ties to even. TFHE-rs' compression rounds half up, so the
/// coefficients are put on the `2^{64−bits}` grid first: its own rounding is then exact.
pub fn compress_glwe(
    glwe: &GlweCiphertextOwned<u64>,
    bits: usize,
    bodies: usize,
) -> CompressedModulusSwitchedGlweCiphertext<u64> {
    let mut on_grid = glwe.clone();
    let shift = 64 - bits as u32;
    for c in on_grid.as_mut().iter_mut() {
        *c = round_half_even(*c, bits as u32) << shift;
    }
    CompressedModulusSwitchedGlweCiphertext::compress(
        &on_grid,
        CiphertextModulusLog(bits),
        LweCiphertextCount(bodies),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_even_and_everything_else_to_nearest() {
        let half = 1u64 << 31;
        assert_eq!(round_half_even(5 << 32 | half, 32), 6);
        assert_eq!(round_half_even(4 << 32 | half, 32), 4);
        assert_eq!(round_half_even(4 << 32 | (half + 1), 32), 5);
        assert_eq!(round_half_even(4 << 32 | (half - 1), 32), 4);
        // The top value wraps around the torus.
        assert_eq!(round_half_even(u64::MAX, 32), 0);
        assert_eq!(round_half_even(u64::MAX << 32 | half, 32), 0);
    }

    #[test]
    fn ties_on_a_coarse_grid_leave_no_bias() {
        // Inputs on the 2^27 grid, as f64 FFT outputs are: 1 in 32 is a tie at 32 bits.
        let (mut up, mut even) = (0i128, 0i128);
        for i in 0..(1u64 << 16) {
            let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 27 << 27;
            let error = |r: u64| ((r << 32).wrapping_sub(x) as i64) as i128;
            up += error(x.wrapping_add(1 << 31) >> 32);
            even += error(round_half_even(x, 32));
        }
        let n = 1i128 << 16;
        // Round-half-up: a mean error of 2^31/32 = 2^26; ties to even: none.
        assert!(up / n > 1 << 25, "{}", up / n);
        assert!((even / n).abs() < 1 << 21, "{}", even / n);
    }

    #[test]
    fn compressing_keeps_the_rounded_coefficients() {
        let mut glwe = GlweCiphertext::new(
            0u64,
            GlweSize(2),
            PolynomialSize(8),
            CiphertextModulus::new_native(),
        );
        for (i, c) in glwe.as_mut().iter_mut().enumerate() {
            *c = (i as u64) << 32 | 1 << 31;
        }
        let back = compress_glwe(&glwe, 32, 8).extract();
        for (i, c) in back.as_ref().iter().enumerate() {
            let i = i as u64;
            assert_eq!(*c >> 32, i + (i & 1), "coefficient {i}");
        }
    }
}
