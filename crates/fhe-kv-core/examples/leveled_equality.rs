//! Key comparison per slot: leveled equality (external products, bootstraps only to
//! decide) next to the block kernels' comparison and a naive TFHE-rs integer `eq`, in the
//! same process on the same machine. Prints PBS per slot (exact, TFHE-rs `pbs-stats`),
//! external products per slot, seconds per slot, PBS-equivalents per slot (seconds per
//! slot divided by one measured keyswitch + PBS) and the stored key's bytes per slot.
//!
//!   make bench-leveled                                     # u64 keys, 8 slots
//!   cargo run -p fhe-kv-core --features test-keys --example leveled_equality -- 16 8
//!     (key bits, slots)
//!
//! Every answer is decrypted and checked: slot 0 holds the query key, the others do not.

use fhe_kv_core::bucket::select::{external_product_count, reset_external_product_count};
use fhe_kv_core::kernels::block_key_match;
use fhe_kv_core::leveled::equality::{leveled_match, EqualityLuts};
use fhe_kv_core::leveled::wire::{decode_key_row, decode_query};
use fhe_kv_core::leveled::ChunkLayout;
use fhe_kv_core::testkeys::{test_integer_client_key, test_keys};
use fhe_kv_core::Width;
use std::time::Instant;
use tfhe::integer::IntegerCiphertext;

struct Line {
    name: &'static str,
    pbs: f64,
    external_products: f64,
    seconds: f64,
    stored_bytes: Option<usize>,
}

fn measure(slots: usize, mut run: impl FnMut(usize) -> bool) -> (f64, f64, f64) {
    tfhe::reset_pbs_count();
    reset_external_product_count();
    let start = Instant::now();
    for slot in 0..slots {
        assert_eq!(run(slot), slot == 0, "wrong answer at slot {slot}");
    }
    let seconds = start.elapsed().as_secs_f64() / slots as f64;
    let pbs = tfhe::get_pbs_count() as f64 / slots as f64;
    let eps = external_product_count() as f64 / slots as f64;
    (pbs, eps, seconds)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bits: u32 = args.first().map_or(64, |a| a.parse().expect("key bits"));
    let slots: usize = args.get(1).map_or(8, |a| a.parse().expect("slots"));
    let width = Width::ALL
        .into_iter()
        .find(|w| w.bits() == bits)
        .expect("key bits: 8, 16, 32, 64, 128 or 256");
    let (client, server) = test_keys();
    let ck = test_integer_client_key();
    let sks = &server.sks;
    let layout = ChunkLayout::new(width);
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let query_key = 0x0123_4567_89AB_CDEF_u64 & mask;
    // Slot 0 holds the query key; slot i > 0 differs from it in bit (7 i) mod bits.
    let keys: Vec<u64> = (0..slots as u64)
        .map(|i| {
            if i == 0 {
                query_key
            } else {
                query_key ^ (1 << ((7 * i) % u64::from(bits.min(64))))
            }
        })
        .collect();
    let le = |v: u64| {
        v.to_le_bytes()
            .into_iter()
            .chain(std::iter::repeat(0))
            .take(width.bytes())
            .collect::<Vec<u8>>()
    };
    let bit = |ct: tfhe::shortint::Ciphertext| {
        ck.decrypt_radix::<u64>(&tfhe::integer::RadixCiphertext::from(vec![ct])) == 1
    };

    // One keyswitch + PBS: the unit of a PBS-equivalent.
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
    let pbs_seconds = times[times.len() / 2];

    let mut lines = Vec::new();

    // Leveled equality: stored key GLWEs, one query of chunk GGSWs.
    let rows: Vec<Vec<u8>> = keys
        .iter()
        .map(|&k| client.leveled_key_row(layout, &le(k)).unwrap())
        .collect();
    let stored_bytes = rows[0].len();
    let stored: Vec<_> = rows
        .iter()
        .map(|r| decode_key_row(r, server.key_id, layout).unwrap())
        .collect();
    let query_envelope = client.leveled_query_key(layout, &le(query_key)).unwrap();
    let query_bytes = query_envelope.len();
    let query = decode_query(&query_envelope, server.key_id, layout).unwrap();
    let luts = EqualityLuts::new(sks);
    let (pbs, eps, seconds) = measure(slots, |s| {
        bit(leveled_match(sks, &luts, layout, &stored[s], &query).unwrap())
    });
    lines.push(Line {
        name: "leveled equality",
        pbs,
        external_products: eps,
        seconds,
        stored_bytes: Some(stored_bytes),
    });

    // The block kernels' comparison, on 2-bit blocks they already hold (as a bucketed
    // table's extracted blocks; a flat table first pays ~2 PBS per block to decompress).
    let blocks = width.blocks();
    let key_blocks: Vec<_> = keys
        .iter()
        .map(|&k| ck.encrypt_radix(k, blocks).blocks().to_vec())
        .collect();
    let query_blocks = ck.encrypt_radix(query_key, blocks).blocks().to_vec();
    let (pbs, eps, seconds) = measure(slots, |s| {
        bit(block_key_match(sks, &key_blocks[s], &query_blocks))
    });
    lines.push(Line {
        name: "block kernels (compact)",
        pbs,
        external_products: eps,
        seconds,
        stored_bytes: None,
    });

    // Naive: TFHE-rs integer equality on the same radix ciphertexts.
    let integer = tfhe::integer::ServerKey::new_radix_server_key_from_shortint(sks.clone());
    let radix =
        |b: &Vec<tfhe::shortint::Ciphertext>| tfhe::integer::RadixCiphertext::from(b.clone());
    let q = radix(&query_blocks);
    let (pbs, eps, seconds) = measure(slots, |s| {
        let eq = integer.eq_parallelized(&radix(&key_blocks[s]), &q);
        bit(eq.into_raw_parts())
    });
    lines.push(Line {
        name: "naive (integer eq)",
        pbs,
        external_products: eps,
        seconds,
        stored_bytes: None,
    });

    println!(
        "\nkey comparison per slot, u{bits} keys, {slots} slots, {} threads; one KS+PBS = {:.1} ms",
        rayon::current_num_threads(),
        pbs_seconds * 1e3
    );
    println!(
        "leveled query key: {query_bytes} bytes ({} chunk GGSWs)",
        layout.chunks()
    );
    println!("| method | PBS/slot | external products/slot | s/slot | PBS-equivalents/slot | stored key bytes/slot |");
    println!("|---|---:|---:|---:|---:|---:|");
    for l in &lines {
        println!(
            "| {} | {:.1} | {:.1} | {:.4} | {:.1} | {} |",
            l.name,
            l.pbs,
            l.external_products,
            l.seconds,
            l.seconds / pbs_seconds,
            l.stored_bytes.map_or("-".to_string(), |b| b.to_string())
        );
    }
}
