//! The key owner's map from keys to candidate buckets: a keyed PRF (HMAC-SHA256) under a
//! secret derived from the client key, as the text-key tags are. Every holder of the client
//! key computes the same layout; the server never sees a bucket number (it receives the
//! candidates as GGSW-encrypted bits) and could not compute one without the secret.

use super::BucketLayout;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const SECRET_DOMAIN: &[u8] = b"fhe_kv bucket secret v1";
const PRF_DOMAIN: &[u8] = b"fhe_kv bucket of key v1";

/// The secret of the bucket PRF.
#[derive(Clone)]
pub struct BucketSecret([u8; 32]);

impl BucketSecret {
    /// Derive from the binary coefficients of the client's secret key (a different domain
    /// than the tag secret, so the two PRFs are independent).
    pub fn derive(secret_key_coefficients: &[u64]) -> BucketSecret {
        let mut h = Sha256::new();
        h.update(SECRET_DOMAIN);
        for c in secret_key_coefficients {
            h.update(c.to_le_bytes());
        }
        BucketSecret(h.finalize().into())
    }

    /// The candidate bucket of the key integer `key_le` (little-endian, the table's key
    /// width) in each half: `(left, right)`, each in `0..buckets_per_half`. 128 PRF bits
    /// per half reduced mod `m`: the bias is below `m / 2^128`.
    pub fn candidates(&self, key_le: &[u8], layout: &BucketLayout) -> (usize, usize) {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(PRF_DOMAIN);
        mac.update(key_le);
        let digest = mac.finalize().into_bytes();
        let m = layout.buckets_per_half as u128;
        let half =
            |bytes: &[u8]| (u128::from_le_bytes(bytes.try_into().expect("16 bytes")) % m) as usize;
        (half(&digest[..16]), half(&digest[16..]))
    }
}

impl std::fmt::Debug for BucketSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BucketSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::overflow;
    use crate::params::Width;

    /// Insert `n` keys with the real PRF and the server's rule (first free slot of the
    /// candidates in interleaved order, which without deletes is "less loaded, left on a
    /// tie"); returns the per-half bucket loads and the number of refused keys.
    fn fill(
        secret: &BucketSecret,
        layout: &BucketLayout,
        keys: std::ops::Range<u64>,
    ) -> (Vec<usize>, Vec<usize>, usize) {
        let m = layout.buckets_per_half;
        let z = layout.bucket_slots;
        let (mut left, mut right) = (vec![0usize; m], vec![0usize; m]);
        let mut refused = 0;
        for k in keys {
            let (l, r) = secret.candidates(&k.to_le_bytes(), layout);
            if left[l] < z && left[l] <= right[r] {
                left[l] += 1;
            } else if right[r] < z {
                right[r] += 1;
            } else if left[l] < z {
                left[l] += 1;
            } else {
                refused += 1;
            }
        }
        (left, right, refused)
    }

    #[test]
    fn candidates_are_deterministic_and_in_range() {
        let s = BucketSecret::derive(&[1, 0, 1, 1]);
        let layout = BucketLayout::new(Width::W64, Width::W64, 6, 1000).unwrap();
        for k in 0u64..1000 {
            let (l, r) = s.candidates(&k.to_le_bytes(), &layout);
            assert!(l < 1000 && r < 1000);
            assert_eq!((l, r), s.candidates(&k.to_le_bytes(), &layout));
        }
        let other = BucketSecret::derive(&[1, 0, 1, 0]);
        let moved = (0u64..100)
            .filter(|k| {
                s.candidates(&k.to_le_bytes(), &layout)
                    != other.candidates(&k.to_le_bytes(), &layout)
            })
            .count();
        assert!(moved > 95, "another client key gives another layout");
    }

    /// The load analysis of [`overflow`] against the real PRF: at loads where full
    /// buckets are common enough to count, the simulated fractions match the fluid limit.
    #[test]
    fn the_real_prf_fills_buckets_as_the_fluid_limit_predicts() {
        let secret = BucketSecret::derive(&[0, 1, 1, 0, 1]);
        let m = 40_000;
        for (z, alpha) in [(4usize, 0.6f64), (6, 0.75), (8, 0.8)] {
            let layout = BucketLayout::new(Width::W64, Width::W64, z, m).unwrap();
            let n = (alpha * layout.capacity() as f64) as u64;
            let (left, right, refused) = fill(&secret, &layout, 0..n);
            let full =
                |loads: &[usize]| loads.iter().filter(|&&l| l == z).count() as f64 / m as f64;
            let (x, y) = overflow::load_fractions(z, alpha);
            eprintln!(
                "Z={z} load {alpha}: full buckets left {:.5} (fluid {:.5}), right {:.5} \
                 (fluid {:.5}); refused {refused} of {n}",
                full(&left),
                x[z],
                full(&right),
                y[z]
            );
            // Binomial standard error of a fraction p over m buckets is sqrt(p(1-p)/m).
            for (got, want) in [(full(&left), x[z]), (full(&right), y[z])] {
                let se = (want * (1.0 - want) / m as f64).sqrt().max(1.0 / m as f64);
                assert!(
                    (got - want).abs() < 5.0 * se + 0.02 * want,
                    "{got} vs {want}"
                );
            }
        }
    }
}
