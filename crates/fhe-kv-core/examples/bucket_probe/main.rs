use fhe_kv_core::bucket::ops::{self, VecStore};
use fhe_kv_core::bucket::{client::Placement, BucketLayout};
use fhe_kv_core::codec::decode_integer;
use fhe_kv_core::kernels::{DeleteMode, KernelEnv};
use fhe_kv_core::testkeys::test_keys;
use fhe_kv_core::{Kind, Width};
use std::time::Instant;

fn main() {
    let (client, server) = test_keys();
    let slots: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    let layout = BucketLayout::for_capacity(Width::W64, Width::W64, 6, slots).unwrap();
    let mut p = Placement::new(layout);
    let n = slots / 2;
    for k in 0..n as u64 {
        p.upsert(
            client,
            k.to_le_bytes().to_vec(),
            (k * 10).to_le_bytes().to_vec(),
        )
        .unwrap();
    }
    let t = Instant::now();
    let rows = p.seal(client, |_, _| {}).unwrap();
    eprintln!(
        "sealed {} buckets in {:.2}s",
        rows.len(),
        t.elapsed().as_secs_f64()
    );
    let mut store = VecStore { rows, batch: 256 };
    let env = KernelEnv {
        keys: server,
        key_width: Width::W64,
        value_width: Width::W64,
        pool: None,
        batch_rows: 8,
    };
    let q = |k: u64| {
        let b = client
            .encrypt_bucket_key_le(&layout, &k.to_le_bytes())
            .unwrap();
        let e = ops::check_query(&b, "key", client.key_id(), &layout).unwrap();
        ops::decode_query(&e, "key", client.key_id(), &layout).unwrap()
    };
    let v = decode_integer(
        &client.encrypt_value(7, Width::W64).unwrap(),
        "v",
        Kind::Value,
        client.key_id(),
        Width::W64,
    )
    .unwrap();
    let measure = |name: &str, f: &mut dyn FnMut()| {
        tfhe::reset_pbs_count();
        fhe_kv_core::bucket::select::reset_external_product_count();
        let t = Instant::now();
        f();
        eprintln!(
            "{name}: {:.2}s, {} PBS, {} ext products",
            t.elapsed().as_secs_f64(),
            tfhe::get_pbs_count(),
            fhe_kv_core::bucket::select::external_product_count()
        );
    };
    let query = q(3);
    measure("get", &mut || {
        ops::get_many(&env, &layout, &mut store, std::slice::from_ref(&query)).unwrap();
    });
    measure("read", &mut || {
        ops::read(client.key_id(), None, &layout, &mut store, &query.selectors).unwrap();
    });
    measure("set", &mut || {
        ops::set(&env, &layout, &mut store, &query, &v).unwrap();
    });
    measure("delete", &mut || {
        ops::delete(&env, &layout, &mut store, &query, DeleteMode::Tombstone).unwrap();
    });
    // one PBS alone
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
    let t = Instant::now();
    for _ in 0..20 {
        let _ = sks.apply_lookup_table(&ct, &lut);
    }
    eprintln!(
        "one PBS (1 thread): {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0 / 20.0
    );
}
