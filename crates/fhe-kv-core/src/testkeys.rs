//! Real-parameter test keys, generated once per build tree and cached under `target/`
//! (key generation takes seconds; the compressed server key is ~76 MB). Never used outside
//! tests; the files are build output and ignored by git.

use crate::keys::{ClientKeys, ServerKeyUpload, ServerKeys};
use std::path::PathBuf;
use std::sync::OnceLock;

/// `<workspace>/target/fhe-kv-test-keys/`, overridable with `FHE_KV_TEST_KEY_DIR` at run
/// time or at build time (the extension's in-backend tests run inside Postgres, which
/// does not inherit our environment, so scripts/test.sh sets it for the build too).
pub fn cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FHE_KV_TEST_KEY_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = option_env!("FHE_KV_TEST_KEY_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fhe-kv-test-keys")
}

/// (client key file bytes, server key upload bytes), generating them on first use.
pub fn test_key_files() -> (Vec<u8>, Vec<u8>) {
    let dir = cache_dir();
    let ck_path = dir.join("client.key");
    let sk_path = dir.join("server.key");
    // Fast path without the lock: readers (e.g. a Postgres backend running as another OS
    // user) may not be allowed to create files here.
    if let (Ok(ck), Ok(sk)) = (std::fs::read(&ck_path), std::fs::read(&sk_path)) {
        return (ck, sk);
    }
    // An exclusive file lock makes concurrent test processes wait for one generator.
    std::fs::create_dir_all(&dir).expect("create test key dir");
    let lock = std::fs::File::create(dir.join(".lock")).expect("create lock file");
    lock.lock().expect("lock test key dir");
    if let (Ok(ck), Ok(sk)) = (std::fs::read(&ck_path), std::fs::read(&sk_path)) {
        return (ck, sk);
    }
    let (ck, ServerKeyUpload(sk)) = ClientKeys::generate().expect("generate test keys");
    let ck = ck.to_bytes().expect("serialize client key");
    // server key first: the client key's presence marks a complete pair
    std::fs::write(&sk_path, &sk).expect("write server key");
    std::fs::write(&ck_path, &ck).expect("write client key");
    (ck, sk)
}

/// Only the client key (cheap to load): for tests that let the server do the FHE work,
/// e.g. the extension's in-backend tests.
pub fn test_client_keys() -> &'static ClientKeys {
    static KEYS: OnceLock<ClientKeys> = OnceLock::new();
    KEYS.get_or_init(|| ClientKeys::from_bytes(&test_key_files().0).expect("cached client key"))
}

/// Decoded test keys, shared by all tests of one process.
pub fn test_keys() -> &'static (ClientKeys, ServerKeys) {
    static KEYS: OnceLock<(ClientKeys, ServerKeys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (ck, sk) = test_key_files();
        (
            ClientKeys::from_bytes(&ck).expect("cached client key"),
            ServerKeys::from_upload(&sk).expect("cached server key"),
        )
    })
}

/// Test-only view of a stored slot: (occupied, key, value), decrypted with the client key.
/// A real server can do none of this: it needs the secret key.
pub fn decrypt_stored_row(
    client: &ClientKeys,
    server: &ServerKeys,
    bytes: &[u8],
    key: crate::Width,
    value: crate::Width,
) -> (bool, u64, u64) {
    use crate::row::{decode_row, decompress_row};
    let stored = decode_row(bytes, server.key_id, key, value).expect("decode row");
    let row = decompress_row(server, &stored, key, value).expect("decompress row");
    let ck = client.hl.clone().into_raw_parts().0;
    let dec = |blocks: Vec<tfhe::shortint::Ciphertext>| -> u64 {
        ck.decrypt_radix::<u64>(&tfhe::integer::RadixCiphertext::from(blocks))
    };
    let vacant = dec(vec![row.vacant]);
    assert!(vacant <= 1, "vacant flag decrypted to {vacant}");
    (vacant == 0, dec(row.key), dec(row.value))
}

/// The integer client key inside the cached test client key: benchmarks encrypt and
/// decrypt raw blocks with it (a baseline's inputs, a kernel's answer bits).
pub fn test_integer_client_key() -> tfhe::integer::ClientKey {
    test_client_keys().hl.clone().into_raw_parts().0
}
