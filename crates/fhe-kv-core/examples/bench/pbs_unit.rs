//! The unit of a PBS-equivalent: the median time of one keyswitch + PBS (21 runs of the
//! identity on a one-block ciphertext), measured in the bench's own process.

use std::time::Instant;
use tfhe::integer::{ClientKey, IntegerCiphertext};
use tfhe::shortint::ServerKey;

pub fn one_pbs_seconds(ck: &ClientKey, sks: &ServerKey) -> f64 {
    let one = ck.encrypt_radix(1u64, 1).blocks()[0].clone();
    let identity = sks.generate_lookup_table(|x| x);
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            let _ = std::hint::black_box(sks.apply_lookup_table(&one, &identity));
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
