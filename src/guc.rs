//! Settings (all `USERSET`, so a session can tune its own work).

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// How many decompressed server keys (~250 MB each) a backend keeps.
pub static SERVER_KEY_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(2);
/// FHE worker threads per backend; 0 = one per CPU core.
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
/// Rows decoded per batch; query cancel and statement_timeout are checked between batches.
pub static BATCH_ROWS: GucSetting<i32> = GucSetting::<i32>::new(8);

pub fn init() {
    GucRegistry::define_int_guc(
        c"fhe_kv.server_key_cache_size",
        c"Decompressed server keys kept per backend (each ~250 MB).",
        c"Only the first operation with a key in a session pays its ~1-3 s load; least recently used keys are evicted.",
        &SERVER_KEY_CACHE_SIZE,
        1,
        16,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"fhe_kv.threads",
        c"Worker threads for FHE work in this backend (0 = number of CPU cores).",
        c"Workers block all signals and never call Postgres; the backend checks for cancel between batches.",
        &THREADS,
        0,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"fhe_kv.batch_rows",
        c"Slots processed per batch between cancel checks.",
        c"Smaller batches react to cancel sooner; larger ones parallelise better.",
        &BATCH_ROWS,
        1,
        100000,
        GucContext::Userset,
        GucFlags::default(),
    );
}
