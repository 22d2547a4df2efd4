use fhe_kv_core::codec::decode_integer;
use fhe_kv_core::testkeys::test_keys;
use fhe_kv_core::{Kind, Width};
use std::time::Instant;
use tfhe::core_crypto::prelude::*;

fn main() {
    let (client, server) = test_keys();
    let sks = &server.sks;
    let ct = decode_integer(
        &client.encrypt_value(7, Width::W8).unwrap(),
        "v",
        Kind::Value,
        client.key_id(),
        Width::W8,
    )
    .unwrap()
    .remove(0);
    let lut = sks.generate_lookup_table(|x| x);
    for _ in 0..3 {
        let _ = sks.apply_lookup_table(&ct, &lut);
    }
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        let _ = sks.apply_lookup_table(&ct, &lut);
    }
    eprintln!(
        "apply_lookup_table: {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    // keyswitch and PBS separately
    let ap = match &sks.atomic_pattern {
        tfhe::shortint::atomic_pattern::AtomicPatternServerKey::Standard(ap) => ap,
        _ => panic!(),
    };
    let ksk = &ap.key_switching_key;
    let mut small = LweCiphertext::new(0u64, ksk.output_lwe_size(), ksk.ciphertext_modulus());
    let t = Instant::now();
    for _ in 0..n {
        keyswitch_lwe_ciphertext(ksk, &ct.ct, &mut small);
    }
    eprintln!(
        "keyswitch: {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let bsk = match &ap.bootstrapping_key {
        tfhe::shortint::server_key::ShortintBootstrappingKey::Classic { bsk, .. } => bsk,
        _ => panic!(),
    };
    let mut out = LweCiphertext::new(
        0u64,
        bsk.output_lwe_dimension().to_lwe_size(),
        CiphertextModulus::new_native(),
    );
    let acc = lut.acc.clone();
    let t = Instant::now();
    for _ in 0..n {
        programmable_bootstrap_lwe_ciphertext(&small, &mut out, &acc, bsk);
    }
    eprintln!(
        "core PBS: {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}
