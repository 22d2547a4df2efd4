//! A cancel request stops a running kernel at its next checkpoint, and the pool and keys
//! stay usable. Its own test binary: the cancel flag is process-wide, and the kernel tests
//! of the library run in parallel.
//!
//! Real parameters, u64/u64 rows (the widest common rows: the slowest unit of work
//! between two batch boundaries). The latencies are printed, not asserted.

use fhe_kv_core::codec::{decode_integer, encode_get_result};
use fhe_kv_core::kernels::{oblivious_get, oblivious_set, KernelEnv};
use fhe_kv_core::keys::{ClientKeys, ServerKeys};
use fhe_kv_core::row::{empty_row, encode_row};
use fhe_kv_core::runtime::{self, Cancelled};
use fhe_kv_core::{Kind, Width};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn keys() -> (ClientKeys, ServerKeys) {
    let dir = std::env::var("FHE_KV_TEST_KEY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fhe-kv-test-keys")
        });
    let (client, upload) = match (
        std::fs::read(dir.join("client.key")),
        std::fs::read(dir.join("server.key")),
    ) {
        (Ok(ck), Ok(sk)) => (ClientKeys::from_bytes(&ck).unwrap(), sk),
        _ => {
            let (client, upload) = ClientKeys::generate().unwrap();
            (client, upload.0)
        }
    };
    (client, ServerKeys::from_upload(&upload).unwrap())
}

/// Run `job`, requesting a cancel `after` it started; returns how long the job took to
/// stop after the request, or `None` if it finished first.
fn cancel_after<R>(after: Duration, job: impl FnOnce() -> R) -> Option<Duration> {
    runtime::clear_cancel();
    let requested = std::sync::Mutex::new(None);
    let finished = std::sync::atomic::AtomicBool::new(false);
    let stopped = std::thread::scope(|s| {
        let canceller = s.spawn(|| {
            let start = Instant::now();
            while start.elapsed() < after {
                if finished.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            *requested.lock().unwrap() = Some(Instant::now());
            runtime::request_cancel();
        });
        let outcome = catch_unwind(AssertUnwindSafe(job));
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
        canceller.join().unwrap();
        match outcome {
            Ok(_) => None,
            Err(payload) => {
                assert!(
                    payload.is::<Cancelled>(),
                    "the kernel panicked with something else than Cancelled"
                );
                Some(Instant::now())
            }
        }
    });
    runtime::clear_cancel();
    stopped.map(|at| at - requested.lock().unwrap().expect("a cancel was requested"))
}

#[test]
fn a_cancel_request_stops_kernels_at_the_next_checkpoint() {
    let (client, server) = keys();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let w = Width::W64;
    let env = KernelEnv {
        keys: &server,
        key_width: w,
        value_width: w,
        pool: Some(&pool),
        // One batch for the whole table: without checkpoints inside the batch, nothing
        // could stop before the end.
        batch_rows: 4,
    };
    let empty = encode_row(&server, &empty_row(&server, w, w)).unwrap();
    let rows = vec![empty; 4];
    let blocks = |kind: Kind, bytes: Vec<u8>| {
        decode_integer(&bytes, "input", kind, server.key_id, w).unwrap()
    };
    let key = blocks(Kind::QueryKey, client.encrypt_key(7, w).unwrap());
    let value = blocks(Kind::Value, client.encrypt_value(70, w).unwrap());

    // Random moments (a fixed xorshift sequence) inside operations of ~5-15 s.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut latencies = Vec::new();
    for round in 0..4 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_millis(300 + seed % 1500);
        let latency = if round % 2 == 0 {
            cancel_after(after, || {
                oblivious_get(&env, &key, &rows, &mut |_, _| {}).unwrap()
            })
        } else {
            cancel_after(after, || {
                oblivious_set(&env, &key, &value, &rows, &mut |_, _| {}).unwrap()
            })
        };
        let latency = latency.unwrap_or_else(|| {
            panic!("round {round}: the kernel ran to the end despite a cancel after {after:?}")
        });
        latencies.push(latency.as_secs_f64());
    }
    eprintln!(
        "cancel latency, u64/u64 GET and SET on 2 threads: {}",
        latencies
            .iter()
            .map(|s| format!("{s:.3} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The pool and keys still work: a full SET then GET.
    let set = oblivious_set(&env, &key, &value, &rows, &mut |_, _| {}).unwrap();
    let got = oblivious_get(&env, &key, &set.rows, &mut |_, _| {}).unwrap();
    let answer = encode_get_result(&server, w, got.found, got.value).unwrap();
    assert_eq!(client.decrypt_get(&answer).unwrap(), Some(70));
}
