//! How full a bucketed table can get before a SET may answer `full`.
//!
//! A key has one candidate bucket in each half of the table (two-choice, "d-left" hashing
//! with d = 2). SET writes into the first free slot of the two candidates taken in the
//! interleaved order `(left 0, right 0, left 1, right 1, …)`. Without deletes a bucket
//! fills from slot 0 up, so its first free slot *is* its load, and the rule is exactly
//! Vöcking's "Always Go Left": the less loaded candidate, the left one on a tie. A SET of
//! a new key is refused when both candidates are full.
//!
//! With `m` buckets per half and `t = inserted keys / m`, the fractions `x_i` (left) and
//! `y_i` (right) of buckets holding at least `i` keys follow, as `m → ∞`, the differential
//! equations (Mitzenmacher, "The power of two choices", fluid limit):
//!
//! ```text
//! dx_i/dt = (x_{i-1} − x_i) · y_{i-1}   (a key goes left if left load = i−1 ≤ right load)
//! dy_i/dt = (y_{i-1} − y_i) · x_i       (it goes right if right load = i−1 < left load)
//! ```
//!
//! with `x_0 = y_0 = 1`, capped at the bucket size `Z` (a full left bucket sends every key
//! right). At a load factor `α` (keys / slots, so `t = 2 Z α`) the next new key is refused
//! with probability `x_Z · y_Z`: its two candidates are independent uniform buckets.
//! [`load_limit`] is the largest load factor at which that stays below
//! [`REFUSAL_TARGET`] = 10^-9. The unit tests check the equations against a simulation
//! with the real key-to-bucket PRF; `make bench` prints the table.

/// A SET of a new key is refused with at most this probability up to the load limit.
pub const REFUSAL_TARGET: f64 = 1e-9;

/// Integration steps per unit of `t` (RK4; the fractions are smooth, so 400 steps per
/// unit already agree with 4000 to 4 significant digits).
const STEPS_PER_UNIT: f64 = 400.0;

/// `(x_i, y_i)` for `i = 0..=Z` after inserting `α · 2 Z m` keys into `2m` buckets of `Z`.
pub fn load_fractions(bucket_slots: usize, alpha: f64) -> (Vec<f64>, Vec<f64>) {
    let z = bucket_slots;
    let t_end = 2.0 * z as f64 * alpha;
    let steps = (t_end * STEPS_PER_UNIT).ceil().max(1.0) as usize;
    let dt = t_end / steps as f64;
    let deriv = |x: &[f64], y: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let mut dx = vec![0.0; z + 1];
        let mut dy = vec![0.0; z + 1];
        for i in 1..=z {
            dx[i] = (x[i - 1] - x[i]) * y[i - 1];
            dy[i] = (y[i - 1] - y[i]) * x[i];
        }
        (dx, dy)
    };
    let axpy = |a: &[f64], s: f64, b: &[f64]| -> Vec<f64> {
        a.iter().zip(b).map(|(a, b)| a + s * b).collect()
    };
    let mut x = vec![0.0; z + 1];
    let mut y = vec![0.0; z + 1];
    x[0] = 1.0;
    y[0] = 1.0;
    for _ in 0..steps {
        let (k1x, k1y) = deriv(&x, &y);
        let (k2x, k2y) = deriv(&axpy(&x, dt / 2.0, &k1x), &axpy(&y, dt / 2.0, &k1y));
        let (k3x, k3y) = deriv(&axpy(&x, dt / 2.0, &k2x), &axpy(&y, dt / 2.0, &k2y));
        let (k4x, k4y) = deriv(&axpy(&x, dt, &k3x), &axpy(&y, dt, &k3y));
        for i in 0..=z {
            x[i] += dt / 6.0 * (k1x[i] + 2.0 * k2x[i] + 2.0 * k3x[i] + k4x[i]);
            y[i] += dt / 6.0 * (k1y[i] + 2.0 * k2y[i] + 2.0 * k3y[i] + k4y[i]);
        }
    }
    (x, y)
}

/// Probability that a SET of a new key is refused at load factor `alpha`.
pub fn refusal_probability(bucket_slots: usize, alpha: f64) -> f64 {
    let (x, y) = load_fractions(bucket_slots, alpha);
    x[bucket_slots] * y[bucket_slots]
}

/// The largest load factor (to 0.001, rounded down) at which a SET of a new key is refused
/// with probability below [`REFUSAL_TARGET`].
pub fn load_limit(bucket_slots: usize) -> f64 {
    // The refusal probability grows with the load: bisect on a 0.001 grid.
    let (mut lo, mut hi) = (0u32, 1000u32);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if refusal_probability(bucket_slots, f64::from(mid) / 1000.0) < REFUSAL_TARGET {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    f64::from(lo) / 1000.0
}

/// The number of keys a table of `capacity` slots in buckets of `bucket_slots` holds with
/// refusals below [`REFUSAL_TARGET`] per SET.
pub fn load_limit_keys(bucket_slots: usize, capacity: usize) -> usize {
    (load_limit(bucket_slots) * capacity as f64).floor() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fluid_limit_is_integrated_accurately() {
        // Fewer steps give the same fractions: the integration error is negligible.
        let (x, y) = load_fractions(6, 0.6);
        assert!((x[0] - 1.0).abs() < 1e-12 && (y[0] - 1.0).abs() < 1e-12);
        // Mass conservation: the expected load per bucket is Σ_{i≥1} x_i (and y_i), and
        // both halves together hold every key: t = Σ x_i + Σ y_i.
        let t = 2.0 * 6.0 * 0.6;
        let held: f64 = x[1..].iter().sum::<f64>() + y[1..].iter().sum::<f64>();
        // Keys refused at full buckets (probability ~1e-8 here) are the only loss.
        assert!((held - t).abs() < 1e-6, "{held} vs {t}");
        // Left buckets fill first.
        for i in 1..=6 {
            assert!(x[i] >= y[i] - 1e-15 && x[i] <= x[i - 1] + 1e-15);
        }
    }

    #[test]
    fn load_limits_grow_with_the_bucket_size() {
        let limits: Vec<f64> = (2..=8).map(load_limit).collect();
        eprintln!("load limits (Z = 2..8): {limits:?}");
        for w in limits.windows(2) {
            assert!(w[1] > w[0]);
        }
        // At the limit the refusal probability is just below the target, above it 0.01 later.
        for z in [4, 6, 8] {
            let a = load_limit(z);
            assert!(refusal_probability(z, a) < REFUSAL_TARGET);
            assert!(refusal_probability(z, a + 0.01) > REFUSAL_TARGET);
        }
        assert_eq!(load_limit_keys(6, 1000), (load_limit(6) * 1000.0) as usize);
    }
}
