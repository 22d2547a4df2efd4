//! fhe_kv: PostgreSQL extension for key/value tables encrypted with TFHE.
//!
//! This file is the SQL surface only. The catalog lives in `sql/bootstrap.sql`, the public
//! wrappers (domain-typed) in `sql/api.sql`; FHE work is in [`fhe_ops`], catalog access in
//! [`catalog`], and everything cryptographic in the `fhe-kv-core` crate.

use pgrx::prelude::*;

mod bucketed;
mod catalog;
mod errors;
mod fhe_ops;
mod guc;
mod leveled;
mod session_keys;
mod worker_pool;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
pgrx::extension_sql_file!("../sql/api.sql", name = "api", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::init();
}

/// Register a server key (the bytes of `fhe-kv keygen`'s server.key); returns its key_id.
/// Idempotent: registering the same key again returns the same key_id.
#[pg_extern(volatile, parallel_unsafe)]
fn register_server_key(server_key: Option<&[u8]>) -> String {
    errors::unwrap_or_report(fhe_ops::register_server_key(server_key))
}

/// The empty-slot row of a table bound to `key_id` (used by create_table and grow).
#[pg_extern(volatile, parallel_unsafe)]
fn _empty_row(key_id: Option<&str>, key_bits: Option<i32>, value_bits: Option<i32>) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::empty_row(key_id, key_bits, value_bits))
}

#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_get(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::get(tbl, key))
}

/// Batched private GET: one pass over the table for up to 64 keys (results in key order).
#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_get_many(tbl: Option<pg_sys::Oid>, keys: Option<pgrx::Array<'_, &[u8]>>) -> Vec<Vec<u8>> {
    let keys = keys
        .as_ref()
        .map(|a| a.iter().collect::<Vec<Option<&[u8]>>>());
    errors::unwrap_or_report(fhe_ops::get_many(tbl, keys))
}

/// Two-round GET, round 1 for one key.
#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_locate(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::locate(tbl, key))
}

/// Two-round GET, round 1: per key, the mismatch counts of every slot (key owner reads).
#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_locate_many(
    tbl: Option<pg_sys::Oid>,
    keys: Option<pgrx::Array<'_, &[u8]>>,
) -> Vec<Vec<u8>> {
    let keys = keys
        .as_ref()
        .map(|a| a.iter().collect::<Vec<Option<&[u8]>>>());
    errors::unwrap_or_report(fhe_ops::locate_many(tbl, keys))
}

/// Leveled tables' SET, round 1: the key's slot or the first vacant one, for the key
/// owner to read (round 2 is `_fhe_write`).
#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_set_locate(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::set_locate(tbl, key))
}

/// The never-written slot of a `leveled-v1` table (fhe_kv 0.4.0's form, kept so its SQL
/// keeps working between a library update and `ALTER EXTENSION fhe_kv UPDATE`).
#[pg_extern(volatile, parallel_unsafe)]
fn _empty_leveled_row(
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::empty_leveled_row(
        key_id,
        key_bits,
        value_bits,
        Some(fhe_kv_core::leveled::ROW_FORMAT_LEVELED_V1),
    ))
}

/// The never-written slot of a leveled table of `row_format` (used by create_table and
/// grow).
#[pg_extern(volatile, parallel_unsafe, name = "_empty_leveled_row")]
fn _empty_leveled_row_of_format(
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
    row_format: Option<&str>,
) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::empty_leveled_row(
        key_id, key_bits, value_bits, row_format,
    ))
}

/// The row format of a leveled data table without a catalog entry, told from its first
/// row (used by attach_table).
#[pg_extern(stable, parallel_safe)]
fn _leveled_row_format(
    tbl: Option<pg_sys::Oid>,
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
) -> String {
    errors::unwrap_or_report(fhe_ops::leveled_row_format(
        tbl, key_id, key_bits, value_bits,
    ))
}

/// Slots a leveled table may have (its answers' noise bound).
#[pg_extern(immutable, parallel_safe)]
fn leveled_max_slots() -> i32 {
    leveled::max_slots() as i32
}

/// Two-round GET, round 2: the slot selected by a GGSW-encrypted index.
#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_fetch(tbl: Option<pg_sys::Oid>, query: Option<&[u8]>) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::fetch(tbl, query))
}

#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_set(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::set(tbl, key, value))
}

#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_delete(tbl: Option<pg_sys::Oid>, key: Option<&[u8]>, scrub: Option<bool>) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::delete(tbl, key, scrub))
}

/// Bulk load: replace every slot with rows sealed by the key owner (`fhe-kv import`).
#[pg_extern(volatile, parallel_unsafe)]
fn _replace_all_rows(tbl: Option<pg_sys::Oid>, rows: Option<pgrx::Array<'_, &[u8]>>) -> i32 {
    let rows = rows
        .as_ref()
        .map(|a| a.iter().collect::<Vec<Option<&[u8]>>>());
    errors::unwrap_or_report(fhe_ops::replace_all_rows(tbl, rows))
}

/// `fhe_kv.attach_table`'s check that every row belongs to the key and widths given (and
/// bucket size, for a bucketed table).
#[pg_extern(volatile, parallel_unsafe)]
fn _check_rows(
    tbl: Option<pg_sys::Oid>,
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
    capacity: Option<i32>,
    bucket_slots: Option<i32>,
    leveled: default!(Option<bool>, false),
) -> i32 {
    errors::unwrap_or_report(fhe_ops::check_rows(
        tbl,
        key_id,
        key_bits,
        value_bits,
        capacity,
        bucket_slots,
        leveled,
    ))
}

/// The empty-bucket row of a `bucket-v1` table (fhe_kv 0.5.0's form, kept so its SQL keeps
/// working between a library update and `ALTER EXTENSION fhe_kv UPDATE`).
#[pg_extern(volatile, parallel_unsafe)]
fn _empty_bucket(
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
    bucket_slots: Option<i32>,
    buckets_per_half: Option<i32>,
) -> Vec<u8> {
    _empty_bucket_of_format(
        key_id,
        key_bits,
        value_bits,
        bucket_slots,
        buckets_per_half,
        Some(fhe_kv_core::bucket::ROW_FORMAT_BUCKET_V1),
    )
}

/// The empty-bucket row of a bucketed table of `row_format` (`bucket-v1` or
/// `bucket-leveled-v1`; used by create_table).
#[pg_extern(volatile, parallel_unsafe, name = "_empty_bucket")]
fn _empty_bucket_of_format(
    key_id: Option<&str>,
    key_bits: Option<i32>,
    value_bits: Option<i32>,
    bucket_slots: Option<i32>,
    buckets_per_half: Option<i32>,
    row_format: Option<&str>,
) -> Vec<u8> {
    errors::unwrap_or_report(fhe_ops::empty_bucket(
        key_id,
        key_bits,
        value_bits,
        bucket_slots,
        buckets_per_half,
        row_format,
    ))
}

/// A key owner's write to a bucketed table: encrypted deltas for the buckets its read
/// selected, added to every bucket (no bootstrap).
#[pg_extern(volatile, parallel_unsafe)]
fn _fhe_write(tbl: Option<pg_sys::Oid>, write: Option<&[u8]>) -> i32 {
    errors::unwrap_or_report(fhe_ops::write(tbl, write))
}

/// Grow a bucketed table with the key owner's rehash (`fhe-kv grow`).
#[pg_extern(volatile, parallel_unsafe)]
fn _rehash(
    tbl: Option<pg_sys::Oid>,
    buckets_per_half: Option<i32>,
    rows: Option<pgrx::Array<'_, &[u8]>>,
) -> i32 {
    let rows = rows
        .as_ref()
        .map(|a| a.iter().collect::<Vec<Option<&[u8]>>>());
    errors::unwrap_or_report(fhe_ops::rehash(tbl, buckets_per_half, rows))
}

/// Bootstraps (PBS) this backend has run since it started: for benchmarks and capacity
/// planning (TFHE-rs' `pbs-stats` counter; includes list decompressions).
#[pg_extern(volatile, parallel_safe)]
fn pbs_count() -> i64 {
    tfhe::get_pbs_count() as i64
}

/// External products (GGSW × GLWE: CMux selection and write-back expansion) this backend
/// has computed since it started.
#[pg_extern(volatile, parallel_safe)]
fn external_product_count() -> i64 {
    fhe_kv_core::bucket::select::external_product_count() as i64
}

/// Keys a bucketed table of `capacity` slots in buckets of `bucket_slots` holds with a
/// SET refusing a new key with probability below 10^-9 (docs/bucketed.md).
#[pg_extern(immutable, parallel_safe, strict)]
fn bucket_load_limit(bucket_slots: i32, capacity: i32) -> i32 {
    if bucket_slots < 1 || capacity < 1 {
        return 0;
    }
    fhe_kv_core::bucket::overflow::load_limit_keys(bucket_slots as usize, capacity as usize) as i32
}

/// The bucket size `create_table` picks when none is given.
#[pg_extern(immutable, parallel_safe)]
fn default_bucket_slots() -> i32 {
    fhe_kv_core::bucket::DEFAULT_BUCKET_SLOTS as i32
}

/// Buckets per half a bucketed table of `bucket_slots`-slot buckets needs to hold `keys`
/// keys within its load limit.
#[pg_extern(immutable, parallel_safe, strict)]
fn buckets_for_keys(bucket_slots: i32, keys: i32) -> i32 {
    fhe_kv_core::bucket::buckets_for_keys(bucket_slots.max(1) as usize, keys.max(1) as usize) as i32
}

/// Load a server key for this session only: kept in this backend's memory, never stored
/// (no row, no WAL, no dump); only its key_id is recorded so tables can be bound to it.
/// Returns the key_id. Gone at disconnect; see the fhe_kv.session_keys view.
#[pg_extern(volatile, parallel_unsafe)]
fn load_session_key(server_key: Option<&[u8]>) -> String {
    errors::unwrap_or_report(session_keys::load(server_key))
}

/// Forget a key loaded with load_session_key; true if it was loaded.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn unload_session_key(key_id: &str) -> bool {
    let key_id =
        errors::unwrap_or_report(fhe_kv_core::KeyId::parse(key_id).map_err(errors::ExtError::from));
    session_keys::unload(key_id)
}

/// The keys this session loaded (the fhe_kv.session_keys view).
#[pg_extern(volatile, parallel_unsafe)]
fn _session_keys() -> TableIterator<
    'static,
    (
        name!(key_id, String),
        name!(supports_buckets, bool),
        name!(loaded_at, pgrx::datum::TimestampWithTimeZone),
        name!(upload_bytes, i64),
    ),
> {
    TableIterator::new(session_keys::list())
}

/// Whether this session's copy of key_id carries bucket key material (NULL: not loaded).
#[pg_extern(volatile, parallel_unsafe, strict)]
fn _session_key_supports_buckets(key_id: &str) -> Option<bool> {
    let key_id = fhe_kv_core::KeyId::parse(key_id).ok()?;
    session_keys::get(key_id).map(|k| k.bucket_packing.is_some())
}

/// Describe a ciphertext envelope without decrypting it: kind, width, key_id, size.
/// Returns NULL for bytes that are not an fhe_kv envelope.
#[pg_extern(immutable, parallel_safe, strict)]
fn describe(envelope: &[u8]) -> Option<String> {
    fhe_kv_core::Envelope::parse(envelope, "envelope")
        .ok()
        .map(|e| {
            format!(
                "{} bits={} key_id={} payload={} bytes",
                e.kind,
                e.bits,
                e.key_id,
                e.payload.len()
            )
        })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    // In-backend tests (`cargo pgrx test`): the SQL surface with real keys and real
    // parameters on small u8/u8 tables. Keys come from the per-build cache under target/.

    use pgrx::prelude::*;

    fn client_keys() -> &'static fhe_kv_core::keys::ClientKeys {
        fhe_kv_core::testkeys::test_client_keys()
    }

    fn register() -> String {
        let (_, server_key) = fhe_kv_core::testkeys::test_key_files();
        Spi::get_one_with_args::<String>(
            "SELECT fhe_kv.register_server_key($1)",
            &[server_key.as_slice().into()],
        )
        .unwrap()
        .unwrap()
    }

    fn bytea(query: &str, args: Vec<pgrx::datum::DatumWithOid<'_>>) -> Vec<u8> {
        Spi::get_one_with_args::<Vec<u8>>(query, &args)
            .unwrap()
            .unwrap()
    }

    #[pg_test]
    fn register_is_idempotent_and_fingerprinted() {
        let first = register();
        let second = register();
        assert_eq!(first, second);
        assert_eq!(first, client_keys().key_id().to_hex());
        let count = Spi::get_one::<i64>("SELECT count(*) FROM fhe_kv.server_keys").unwrap();
        assert_eq!(count, Some(1));
    }

    #[pg_test]
    fn session_key_is_used_but_never_stored() {
        let (_, server_key) = fhe_kv_core::testkeys::test_key_files();
        // EXPLAIN ANALYZE's WAL figure is this backend's own (other tests run in parallel
        // on the same cluster and write keys): the key (tens of MB) went to memory, only
        // the key_id row to the WAL.
        let plan = Spi::get_one_with_args::<pgrx::Json>(
            "EXPLAIN (ANALYZE, WAL, FORMAT JSON) SELECT fhe_kv.load_session_key($1)",
            &[server_key.as_slice().into()],
        )
        .unwrap()
        .unwrap();
        let wal_bytes = plan.0[0]["Plan"]["WAL Bytes"].as_u64().unwrap();
        assert!(
            wal_bytes < 100_000 && server_key.len() > 10_000_000,
            "{wal_bytes} bytes of WAL for a {} byte key",
            server_key.len()
        );
        let key_id = Spi::get_one::<String>("SELECT key_id FROM fhe_kv.session_keys")
            .unwrap()
            .unwrap();
        assert_eq!(key_id, client_keys().key_id().to_hex());
        let stored = Spi::get_one::<bool>(
            "SELECT server_key IS NULL AND supports_buckets IS NULL FROM fhe_kv.server_keys",
        )
        .unwrap();
        assert_eq!(stored, Some(true), "only the key_id is recorded");
        let listed = Spi::get_one::<String>(
            "SELECT key_id || ' ' || supports_buckets || ' ' || upload_bytes FROM fhe_kv.session_keys",
        )
        .unwrap()
        .unwrap();
        assert_eq!(listed, format!("{key_id} true {}", server_key.len()));

        // Tables bound to it work in this session; 'auto' asks the session's copy whether
        // the key serves bucketed tables.
        Spi::run_with_args(
            "SELECT fhe_kv.create_table('skb', $1, 12, 'u8', 'u8')",
            &[key_id.as_str().into()],
        )
        .unwrap();
        let layout = Spi::get_one::<String>(
            "SELECT layout FROM fhe_kv.tables WHERE table_name = 'skb'::regclass",
        )
        .unwrap();
        assert_eq!(layout.as_deref(), Some("bucketed"));
        Spi::run_with_args(
            "SELECT fhe_kv.create_table('skv', $1, 2, 'u8', 'u8', layout => 'flat')",
            &[key_id.as_str().into()],
        )
        .unwrap();
        let client = client_keys();
        let w8 = fhe_kv_core::Width::W8;
        let status = bytea(
            "SELECT fhe_kv.fhe_set('skv', $1, $2)",
            vec![
                client.encrypt_key(9, w8).unwrap().into(),
                client.encrypt_value(99, w8).unwrap().into(),
            ],
        );
        assert_eq!(
            client.decrypt_set_status(&status).unwrap().name(),
            "inserted"
        );
        let got = bytea(
            "SELECT fhe_kv.fhe_get('skv', $1)",
            vec![client.encrypt_key(9, w8).unwrap().into()],
        );
        assert_eq!(client.decrypt_get(&got).unwrap(), Some(99));

        // Registering the same key for good stores it in the recorded row.
        assert_eq!(register(), key_id);
        let stored = Spi::get_one::<bool>(
            "SELECT server_key IS NOT NULL AND supports_buckets FROM fhe_kv.server_keys",
        )
        .unwrap();
        assert_eq!(stored, Some(true));
        let unloaded = Spi::get_one_with_args::<bool>(
            "SELECT fhe_kv.unload_session_key($1)",
            &[key_id.as_str().into()],
        )
        .unwrap();
        assert_eq!(unloaded, Some(true));
        let left = Spi::get_one::<i64>("SELECT count(*) FROM fhe_kv.session_keys").unwrap();
        assert_eq!(left, Some(0));
    }

    #[pg_test]
    fn set_get_delete_through_sql() {
        let key_id = register();
        let client = client_keys();
        let w8 = fhe_kv_core::Width::W8;
        Spi::run_with_args(
            "SELECT fhe_kv.create_table('kv', $1, 2, 8, 8)",
            &[key_id.as_str().into()],
        )
        .unwrap();
        let enc_key = |k: u64| client.encrypt_key(k, w8).unwrap();
        let enc_val = |v: u64| client.encrypt_value(v, w8).unwrap();

        let status = bytea(
            "SELECT fhe_kv.fhe_set('kv', $1, $2)",
            vec![enc_key(3).into(), enc_val(33).into()],
        );
        assert_eq!(
            client.decrypt_set_status(&status).unwrap().name(),
            "inserted"
        );

        let got = bytea("SELECT fhe_kv.fhe_get('kv', $1)", vec![enc_key(3).into()]);
        assert_eq!(client.decrypt_get(&got).unwrap(), Some(33));
        let got = bytea("SELECT fhe_kv.fhe_get('kv', $1)", vec![enc_key(4).into()]);
        assert_eq!(client.decrypt_get(&got).unwrap(), None);

        let status = bytea(
            "SELECT fhe_kv.fhe_delete('kv', $1)",
            vec![enc_key(3).into()],
        );
        assert_eq!(
            client.decrypt_delete_status(&status).unwrap().name(),
            "deleted"
        );
        let got = bytea("SELECT fhe_kv.fhe_get('kv', $1)", vec![enc_key(3).into()]);
        assert_eq!(client.decrypt_get(&got).unwrap(), None);

        let capacity = Spi::get_one::<i32>("SELECT fhe_kv.grow('kv', 3)").unwrap();
        assert_eq!(capacity, Some(5));
        let slots = Spi::get_one::<i64>("SELECT count(*) FROM kv").unwrap();
        assert_eq!(slots, Some(5));
    }

    #[pg_test]
    fn bucketed_set_get_fetch_delete_through_sql() {
        let key_id = register();
        let client = client_keys();
        let w8 = fhe_kv_core::Width::W8;
        Spi::run_with_args(
            "SELECT fhe_kv.create_table('bk', $1, 20, 8, 8, layout => 'bucketed')",
            &[key_id.as_str().into()],
        )
        .unwrap();
        let capacity = Spi::get_one::<i32>(
            "SELECT capacity FROM fhe_kv.tables WHERE table_name = 'bk'::regclass",
        )
        .unwrap()
        .unwrap() as usize;
        let z = Spi::get_one::<i32>(
            "SELECT bucket_slots FROM fhe_kv.tables WHERE table_name = 'bk'::regclass",
        )
        .unwrap()
        .unwrap() as usize;
        let layout = fhe_kv_core::bucket::BucketLayout::new(w8, w8, z, capacity / (2 * z)).unwrap();
        let buckets = Spi::get_one::<i64>("SELECT count(*) FROM bk").unwrap();
        assert_eq!(buckets, Some(layout.buckets() as i64));
        let key = client.encrypt_bucket_key_le(&layout, &[3]).unwrap();

        let status = bytea(
            "SELECT fhe_kv.fhe_set('bk', $1, $2)",
            vec![
                key.clone().into(),
                client.encrypt_value(33, w8).unwrap().into(),
            ],
        );
        assert_eq!(
            client.decrypt_set_status(&status).unwrap().name(),
            "inserted"
        );
        let got = bytea("SELECT fhe_kv.fhe_get('bk', $1)", vec![key.clone().into()]);
        assert_eq!(client.decrypt_get(&got).unwrap(), Some(33));
        // The bucket read: the two candidate buckets, searched by the key owner.
        let read = bytea(
            "SELECT fhe_kv.fhe_fetch('bk', $1)",
            vec![client.bucket_read_query(&layout, &[3]).unwrap().into()],
        );
        assert_eq!(
            client.open_bucket_read(&layout, &read, &[3]).unwrap(),
            Some(vec![33])
        );
        let status = bytea(
            "SELECT fhe_kv.fhe_delete('bk', $1)",
            vec![key.clone().into()],
        );
        assert_eq!(
            client.decrypt_delete_status(&status).unwrap().name(),
            "deleted"
        );
        let got = bytea("SELECT fhe_kv.fhe_get('bk', $1)", vec![key.into()]);
        assert_eq!(client.decrypt_get(&got).unwrap(), None);
    }

    #[pg_test]
    fn leveled_set_get_fetch_delete_through_sql() {
        let w8 = fhe_kv_core::Width::W8;
        let one_glwe = fhe_kv_core::leveled::RowLayout::one_glwe(w8, w8);
        leveled_through_sql("leveled", one_glwe, "leveled leveled-v2 3");
    }

    #[pg_test]
    fn leveled_v1_set_get_fetch_delete_through_sql() {
        let w8 = fhe_kv_core::Width::W8;
        let lookup_tables = fhe_kv_core::leveled::RowLayout::new(w8, w8);
        leveled_through_sql("leveled-v1", lookup_tables, "leveled leveled-v1 3");
    }

    /// Every leveled operation through SQL on a 3-slot u8/u8 table made with
    /// `layout => layout_arg`, whose rows are of `layout`.
    fn leveled_through_sql(
        layout_arg: &str,
        layout: fhe_kv_core::leveled::RowLayout,
        catalog_entry: &str,
    ) {
        use fhe_kv_core::leveled::get::LeveledAnswer;
        use fhe_kv_core::leveled::messages::{decode_fetch_result, decode_status};
        use fhe_kv_core::leveled::set_locate::{LeveledSetLocation, LeveledSetTarget};
        use fhe_kv_core::leveled::two_round::LeveledLocation;

        let key_id = register();
        let client = client_keys();
        let kid = client.key_id();
        Spi::run_with_args(
            "SELECT fhe_kv.create_table('lv', $1, 3, 8, 8, layout => $2)",
            &[key_id.as_str().into(), layout_arg.into()],
        )
        .unwrap();
        let format = Spi::get_one::<String>(
            "SELECT layout || ' ' || row_format || ' ' || capacity FROM fhe_kv.tables \
             WHERE table_name = 'lv'::regclass",
        )
        .unwrap();
        assert_eq!(format.as_deref(), Some(catalog_entry));
        let query = |k: u8| client.leveled_query_key(layout.key, &[k]).unwrap();

        // SET in two rounds: the key owner reads round 1 and writes round 2.
        let set = |k: u8, v: u8| {
            let location = bytea(
                "SELECT fhe_kv.fhe_set_locate('lv', $1)",
                vec![query(k).into()],
            );
            let (location, state) = LeveledSetLocation::decode(&location, kid, 3).unwrap();
            let target = client.open_leveled_set_location(&location).unwrap();
            let write = client
                .leveled_set_write_query(layout, target, 3, (&[k], &[v]), state)
                .unwrap();
            let written =
                Spi::get_one_with_args::<i32>("SELECT fhe_kv.fhe_write('lv', $1)", &[write.into()])
                    .unwrap();
            assert_eq!(written, Some(3), "every slot is rewritten");
            target
        };
        let get = |k: u8| {
            let answer = bytea("SELECT fhe_kv.fhe_get('lv', $1)", vec![query(k).into()]);
            let answer = LeveledAnswer::decode(&answer, kid, layout).unwrap();
            client
                .open_leveled_answer(layout, &answer)
                .unwrap()
                .map(|v| v[0])
        };
        assert_eq!(get(3), None, "a new table is empty");
        assert_eq!(set(3, 33), LeveledSetTarget::Insert(0));
        assert_eq!(set(4, 44), LeveledSetTarget::Insert(1));
        assert_eq!(set(3, 34), LeveledSetTarget::Update(0));
        assert_eq!(get(3), Some(34));
        assert_eq!(get(4), Some(44));
        assert_eq!(get(5), None);

        // Batched GET: one answer per key, in order.
        let answers: Vec<Vec<u8>> = Spi::connect(|client| {
            client
                .select(
                    "SELECT a::bytea FROM unnest(fhe_kv.fhe_get_many('lv', \
                     ARRAY[$1, $2]::fhe_kv.enc_key[])) WITH ORDINALITY AS u(a, i) ORDER BY i",
                    None,
                    &[query(4).into(), query(9).into()],
                )?
                .map(|row| row.get::<Vec<u8>>(1).map(Option::unwrap))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
        let opened: Vec<Option<u8>> = answers
            .iter()
            .map(|a| {
                let a = LeveledAnswer::decode(a, kid, layout).unwrap();
                client
                    .open_leveled_answer(layout, &a)
                    .unwrap()
                    .map(|v| v[0])
            })
            .collect();
        assert_eq!(opened, vec![Some(44), None]);

        // Two-round GET: the slot, then its value by an encrypted index.
        let location = bytea("SELECT fhe_kv.fhe_locate('lv', $1)", vec![query(4).into()]);
        let (location, state) = LeveledLocation::decode(&location, kid, 3).unwrap();
        let slot = client.open_leveled_location(&location).unwrap();
        assert_eq!(slot, Some(1));
        let fetch = client.leveled_fetch_query(1, 3, state).unwrap();
        let fetched = bytea("SELECT fhe_kv.fhe_fetch('lv', $1)", vec![fetch.into()]);
        let glwes = decode_fetch_result(&fetched, kid, layout).unwrap();
        assert_eq!(client.open_leveled_fetch(layout, &glwes).unwrap(), vec![44]);

        // DELETE: the status, then the key is gone and its slot is taken by the next SET.
        let status = bytea("SELECT fhe_kv.fhe_delete('lv', $1)", vec![query(3).into()]);
        let status = decode_status(&status, kid).unwrap();
        assert!(client.open_leveled_flag(&status).unwrap(), "deleted");
        assert_eq!(get(3), None);
        assert_eq!(get(4), Some(44));
        assert_eq!(set(6, 66), LeveledSetTarget::Insert(0));
        assert_eq!(get(6), Some(66));

        // grow adds never-written slots.
        let capacity = Spi::get_one::<i32>("SELECT fhe_kv.grow('lv', 2)").unwrap();
        assert_eq!(capacity, Some(5));
        assert_eq!(get(4), Some(44));
    }

    #[pg_test(
        error = "fhe_kv: lv1 is a leveled table: its SET takes two rounds, fhe_set_locate then fhe_write"
    )]
    fn a_one_round_set_on_a_leveled_table_is_refused() {
        let key_id = register();
        Spi::run_with_args(
            "SELECT fhe_kv.create_table('lv1', $1, 2, 8, 8, layout => 'leveled')",
            &[key_id.as_str().into()],
        )
        .unwrap();
        let client = client_keys();
        let w8 = fhe_kv_core::Width::W8;
        Spi::run_with_args(
            "SELECT fhe_kv.fhe_set('lv1', $1, $2)",
            &[
                client.encrypt_key(1, w8).unwrap().into(),
                client.encrypt_value(1, w8).unwrap().into(),
            ],
        )
        .unwrap();
    }

    #[pg_test(error = "fhe_kv: relation \"plain\" is not an fhe_kv table")]
    fn a_plain_table_is_refused() {
        Spi::run("CREATE TABLE plain (slot int, row bytea)").unwrap();
        Spi::run("SELECT fhe_kv.fhe_get('plain', '\\x00')").unwrap();
    }

    #[pg_test(error = "fhe_kv: server_key must not be NULL")]
    fn null_server_key_is_refused() {
        Spi::run("SELECT fhe_kv.register_server_key(NULL)").unwrap();
    }

    #[pg_test(
        error = "fhe_kv: no server key with key_id 00000000000000000000000000000000 is registered"
    )]
    fn unknown_key_id_is_refused_at_create() {
        Spi::run("SELECT fhe_kv.create_table('t', '00000000000000000000000000000000', 4, 8, 8)")
            .unwrap();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
