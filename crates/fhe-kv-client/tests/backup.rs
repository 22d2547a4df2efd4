//! Backups with PostgreSQL's own tools (issue: "Backups lose the key registry").
//!
//! * `pg_dump | psql` into a fresh database and `pg_dump -Fc | pg_restore` into a fresh
//!   cluster (with and without the roles restored first): every fhe_kv table comes back
//!   registered and answers GET, two-round GET, SET, DELETE, import and export exactly as
//!   an in-memory oracle of the source says.
//! * `pg_dump -t` of one table into a database that has the extension and the key:
//!   `fhe-kv attach` registers it again.
//! * A database made with fhe_kv 0.1.0 (whose dumps lacked the catalog): its dump is
//!   recovered with `attach`, `ALTER EXTENSION fhe_kv UPDATE` makes its dumps complete,
//!   and the upgraded catalog equals a fresh install's.
//! * `attach_table` refuses hostile input and non-owners, and changes nothing then.
//!
//! Needs the `make test` cluster (FHE_KV_TEST_PGHOST / FHE_KV_TEST_PGPORT); starts a second
//! cluster of its own on port PGPORT+13.

mod common;

use common::{
    client, client_key_file, cluster, db_message, fingerprint, fresh_database, options, OwnCluster,
};
use fhe_kv_client::{
    Client, ClientKeys, ConnectOptions, Datum, DeleteStatus, KeyType, Layout, SetStatus,
    TableOptions, ValueType,
};
use fhe_kv_core::client_rows::ClearRow;
use fhe_kv_core::testkeys::test_key_files;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// What the source database holds, per table: key → value.
type Oracle = BTreeMap<String, BTreeMap<Datum, Datum>>;

fn pg_bin(tool: &str) -> PathBuf {
    let pg_config = std::env::var("PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let out = Command::new(pg_config).arg("--bindir").output().unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join(tool)
}

/// Run a Postgres client tool against host/port as `postgres`; returns (success, stderr).
fn tool(name: &str, host: &str, port: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(pg_bin(name))
        .args(["-h", host, "-p", port, "-U", "postgres"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tool_ok(name: &str, host: &str, port: &str, args: &[&str]) {
    let (ok, stderr) = tool(name, host, port, args);
    assert!(ok, "{name} {args:?} failed:\n{stderr}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = common::repo_root().join("target/backup-test");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn create_database(host: &str, port: &str, name: &str) {
    let mut db = options(host, port, "postgres", "postgres")
        .connect()
        .unwrap();
    db.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    db.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
}

fn entries(pairs: &[(&str, &str)]) -> Vec<(Datum, Datum)> {
    pairs
        .iter()
        .map(|(k, v)| (Datum::from(*k), Datum::from(*v)))
        .collect()
}

/// The source: a u16/u16 table owned by a non-superuser role (with free slots left for
/// SETs), and a text-key table, both loaded with import plus a private SET and DELETE.
fn build_source(opts: &ConnectOptions) -> Oracle {
    let mut c = client(opts);
    c.postgres()
        .batch_execute(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_owner') THEN
                     CREATE ROLE backup_owner;
                 END IF;
             END $$;
             GRANT CREATE ON SCHEMA public TO backup_owner;",
        )
        .unwrap();
    let mut oracle = Oracle::new();

    c.create_table("prices", 6, 16, 16).unwrap();
    let prices: Vec<(Datum, Datum)> = [(1u128, 100u128), (2, 200), (3, 300)]
        .iter()
        .map(|&(k, v)| (Datum::Uint(k), Datum::Uint(v)))
        .collect();
    c.import("prices", &prices, &mut |_, _, _| {}).unwrap();
    assert_eq!(c.put("prices", 4u64, 400u64).unwrap(), SetStatus::Inserted);
    assert_eq!(c.delete("prices", 2u64).unwrap(), DeleteStatus::Deleted);
    let mut o: BTreeMap<Datum, Datum> = prices.into_iter().collect();
    o.insert(Datum::Uint(4), Datum::Uint(400));
    o.remove(&Datum::Uint(2));
    oracle.insert("prices".into(), o);
    c.postgres()
        .batch_execute("ALTER TABLE prices OWNER TO backup_owner")
        .unwrap();

    // Small types keep the private GET on it short (a 128-bit value integer).
    c.create_typed_table("notes", 6, KeyType::Text(5), ValueType::Bytes(3))
        .unwrap();
    let notes = entries(&[
        ("alice", "A+"),
        ("bob", "0-"),
        ("carol", "B+"),
        ("dave", "AB-"),
    ]);
    c.import("notes", &notes, &mut |_, _, _| {}).unwrap();
    oracle.insert("notes".into(), notes.into_iter().collect());

    // A bucketed table, written by import and by the key owner's protocol.
    c.create_table_with(
        "bk",
        30,
        16,
        16,
        TableOptions {
            layout: Layout::Bucketed,
            bucket_slots: None,
        },
    )
    .unwrap();
    let bk: Vec<(Datum, Datum)> = (1u128..=10)
        .map(|k| (Datum::Uint(k), Datum::Uint(k * 10)))
        .collect();
    c.import("bk", &bk, &mut |_, _, _| {}).unwrap();
    assert_eq!(c.put("bk", 11u64, 110u64).unwrap(), SetStatus::Inserted);
    let mut o: BTreeMap<Datum, Datum> = bk.into_iter().collect();
    o.insert(Datum::Uint(11), Datum::Uint(110));
    oracle.insert("bk".into(), o);
    oracle
}

fn exported(c: &mut Client, table: &str) -> BTreeMap<Datum, Datum> {
    c.export(table, &mut |_, _, _| {})
        .unwrap()
        .into_iter()
        .collect()
}

/// How much of a user's work `verify_restored` repeats on a restored database. Every
/// restore gets the catalog, every table's export and one private GET per layout; one
/// restore per test also gets the private writes, which take ~40 s of real FHE each time
/// and test the same restored bytes.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    ReadOnly,
    ReadWrite,
}

/// Everything a user does with a restored database works and agrees with the oracle.
fn verify_restored(opts: &ConnectOptions, oracle: &Oracle, what: &str, check: Check) {
    let started = std::time::Instant::now();
    let mut c = client(opts);
    let mut names: Vec<String> = c.tables().unwrap().into_iter().map(|t| t.name).collect();
    names.sort();
    assert_eq!(
        names,
        ["bk", "notes", "prices"],
        "{what}: the catalog came back"
    );
    for (table, want) in oracle {
        assert_eq!(&exported(&mut c, table), want, "{what}: export of {table}");
    }
    // Private operations on the restored ciphertexts.
    assert_eq!(c.get::<u64>("prices", 3u64).unwrap(), Some(300), "{what}");
    let got: Option<String> = c.get("notes", "carol").unwrap();
    assert_eq!(got.as_deref(), Some("B+"), "{what}: text keys");
    assert_eq!(c.get::<u64>("bk", 11u64).unwrap(), Some(110), "{what}");
    if check == Check::ReadOnly {
        eprintln!(
            "verified {what} (read-only) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        return;
    }
    assert_eq!(c.get::<u64>("prices", 2u64).unwrap(), None, "{what}");
    assert_eq!(
        c.get_two_round::<u64>("prices", 4u64).unwrap(),
        Some(400),
        "{what}"
    );
    assert_eq!(c.put("prices", 3u64, 333u64).unwrap(), SetStatus::Updated);
    assert_eq!(c.put("prices", 9u64, 900u64).unwrap(), SetStatus::Inserted);
    assert_eq!(c.delete("prices", 1u64).unwrap(), DeleteStatus::Deleted);
    c.import("notes", &entries(&[("erin", "0+")]), &mut |_, _, _| {})
        .unwrap();

    // The bucketed table: the owner's protocol and the server-side kernels.
    assert_eq!(c.put("bk", 3u64, 33u64).unwrap(), SetStatus::Updated);
    assert_eq!(
        c.get_server_side::<u64>("bk", 3u64).unwrap(),
        Some(33),
        "{what}"
    );
    let mut bk = oracle["bk"].clone();
    bk.insert(Datum::Uint(3), Datum::Uint(33));
    assert_eq!(exported(&mut c, "bk"), bk, "{what}: bucketed after writes");

    let mut prices = oracle["prices"].clone();
    prices.insert(Datum::Uint(3), Datum::Uint(333));
    prices.insert(Datum::Uint(9), Datum::Uint(900));
    prices.remove(&Datum::Uint(1));
    assert_eq!(exported(&mut c, "prices"), prices, "{what}: after writes");
    let mut notes = oracle["notes"].clone();
    notes.insert(Datum::from("erin"), Datum::from("0+"));
    assert_eq!(exported(&mut c, "notes"), notes, "{what}: after import");
    eprintln!(
        "verified {what} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn dumps_restore_into_a_fresh_database_and_a_fresh_cluster() {
    let (host, port) = cluster();
    let src = fresh_database("backup_src");
    let oracle = build_source(&src);

    // Plain format, psql, same cluster, new database.
    let plain = scratch("backup_src.sql");
    tool_ok(
        "pg_dump",
        &host,
        &port,
        &["-d", "backup_src", "-f", plain.to_str().unwrap()],
    );
    create_database(&host, &port, "backup_plain");
    tool_ok(
        "psql",
        &host,
        &port,
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "backup_plain",
            "-f",
            plain.to_str().unwrap(),
        ],
    );
    verify_restored(
        &options(&host, &port, "postgres", "backup_plain"),
        &oracle,
        "pg_dump | psql",
        Check::ReadOnly,
    );

    // Custom format into a fresh cluster.
    let custom = scratch("backup_src.dump");
    tool_ok(
        "pg_dump",
        &host,
        &port,
        &["-Fc", "-d", "backup_src", "-f", custom.to_str().unwrap()],
    );
    let other_port: u16 = port.parse::<u16>().unwrap() + 13;
    let fresh = OwnCluster::start("backup-cluster", other_port);
    let (fhost, fport) = (fresh.host(), fresh.port.clone());

    // Without the roles: ownership of `prices` cannot be restored (pg_restore reports
    // that), but the key registry and the bindings must come back all the same.
    create_database(&fhost, &fport, "no_roles");
    let (_, stderr) = tool(
        "pg_restore",
        &fhost,
        &fport,
        &["-d", "no_roles", custom.to_str().unwrap()],
    );
    for line in stderr.lines().filter(|l| l.contains("error:")) {
        assert!(
            line.contains("role \"backup_owner\" does not exist")
                || line.contains("errors ignored on restore"),
            "unexpected restore error: {line}\n{stderr}"
        );
    }
    verify_restored(
        &options(&fhost, &fport, "postgres", "no_roles"),
        &oracle,
        "pg_restore without roles",
        Check::ReadWrite,
    );

    // As the README says: roles first (pg_dumpall --globals-only), then pg_restore: clean.
    let globals = scratch("globals.sql");
    tool_ok(
        "pg_dumpall",
        &host,
        &port,
        &["--globals-only", "-f", globals.to_str().unwrap()],
    );
    // The globals include the `postgres` role itself, which exists: that one error is fine.
    tool(
        "psql",
        &fhost,
        &fport,
        &[
            "-X",
            "-q",
            "-d",
            "postgres",
            "-f",
            globals.to_str().unwrap(),
        ],
    );
    create_database(&fhost, &fport, "with_roles");
    tool_ok(
        "pg_restore",
        &fhost,
        &fport,
        &["-d", "with_roles", custom.to_str().unwrap()],
    );
    let opts = options(&fhost, &fport, "postgres", "with_roles");
    let mut db = opts.connect().unwrap();
    let owner: String = db
        .query_one(
            "SELECT relowner::regrole::text FROM pg_class WHERE oid = 'prices'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, "backup_owner");
    verify_restored(
        &opts,
        &oracle,
        "pg_restore into a fresh cluster",
        Check::ReadOnly,
    );
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn a_single_table_dump_is_attached_again() {
    let (host, port) = cluster();
    let src = fresh_database("backup_one_src");
    let mut c = client(&src);
    c.create_typed_table("notes", 4, KeyType::Text(8), ValueType::Bytes(8))
        .unwrap();
    let notes = entries(&[("x", "1"), ("y", "22")]);
    c.import("notes", &notes, &mut |_, _, _| {}).unwrap();
    let file = scratch("notes.sql");
    tool_ok(
        "pg_dump",
        &host,
        &port,
        &[
            "-d",
            "backup_one_src",
            "-t",
            "notes",
            "-f",
            file.to_str().unwrap(),
        ],
    );

    // A database that has the extension and the key already.
    let dst = fresh_database("backup_one_dst");
    tool_ok(
        "psql",
        &host,
        &port,
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "backup_one_dst",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let mut c = client(&dst);
    let err = c.get::<String>("notes", "x").unwrap_err();
    assert!(err.to_string().contains("not an fhe_kv table"), "{err}");
    assert!(
        err.hint().unwrap_or_default().contains("fhe-kv attach"),
        "the hint names the way back: {:?}",
        err.hint()
    );
    // The comment pg_dump -t carried says what to attach it as.
    let comment: String = c
        .postgres()
        .query_one("SELECT obj_description('notes'::regclass)", &[])
        .unwrap()
        .get(0);
    assert!(
        comment.contains("text:8") && comment.contains("bytes:8"),
        "{comment}"
    );

    // The CLI attaches it; then it works.
    let key = client_key_file(&scratch("attach-key"));
    let url = format!("host={host} port={port} user=postgres dbname=backup_one_dst");
    let out = Command::new(env!("CARGO_BIN_EXE_fhe-kv"))
        .args(["--db", &url, "--client-key"])
        .arg(&key)
        .args([
            "attach",
            "notes",
            "--key-type",
            "text:8",
            "--value-type",
            "bytes:8",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("attached notes"));
    let got: Option<String> = c.get("notes", "y").unwrap();
    assert_eq!(got.as_deref(), Some("22"));
    assert_eq!(exported(&mut c, "notes"), notes.into_iter().collect());
}

/// Every object of the extension, described with what defines it, for comparing an
/// upgraded database with a fresh install.
const EXTENSION_OBJECTS: &str = "
SELECT pg_describe_object(d.classid, d.objid, 0) || ' ' || coalesce(
         (SELECT md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(p.proacl::text, '')
                 || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
            FROM pg_proc p WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid),
         (SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':'
                            || a.attnotnull || ':' || a.attstorage::text || ':'
                            || coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''),
                            ',' ORDER BY a.attnum)
                 || ' ' || coalesce(c.relacl::text, '')
                 || ' ' || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), ';' ORDER BY k.conname)
                                       FROM pg_constraint k WHERE k.conrelid = c.oid), '')
                 || ' ' || coalesce((SELECT string_agg(pg_get_triggerdef(t.oid), ';' ORDER BY t.tgname)
                                       FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '')
                 || ' ' || coalesce((SELECT string_agg(pg_get_viewdef(c.oid), '')
                                      WHERE c.relkind = 'v'), '')
            FROM pg_class c
            LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
           WHERE d.classid = 'pg_class'::regclass AND c.oid = d.objid
           GROUP BY c.oid, c.relacl),
         '')
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fhe_kv')
   AND d.deptype = 'e'
UNION ALL
SELECT 'config ' || array_to_string(extconfig::regclass[]::text[], ',')
  FROM pg_extension WHERE extname = 'fhe_kv'
ORDER BY 1";

fn extension_objects(opts: &ConnectOptions) -> Vec<String> {
    let mut db = opts.connect().unwrap();
    db.query(EXTENSION_OBJECTS, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn a_database_made_with_0_1_0_is_recovered_and_upgraded() {
    let (host, port) = cluster();
    create_database(&host, &port, "backup_old");
    let old = options(&host, &port, "postgres", "backup_old");
    let mut db = old.connect().unwrap();
    db.batch_execute("CREATE EXTENSION fhe_kv VERSION '0.1.0'")
        .expect("scripts/test.sh installs the frozen 0.1.0 script (tests/upgrade)");
    drop(db);
    let mut c = client(&old);
    c.register_server_key(&test_key_files().1).unwrap();
    // This client speaks 0.2.0 (layouts, the tables view's new columns): build the
    // 0.1.0 table the way a 0.1.0 client did, through the 0.1.0 SQL functions.
    let err = c.create_table("too_new", 4, 16, 16).unwrap_err();
    assert!(
        err.hint()
            .unwrap_or_default()
            .contains("ALTER EXTENSION fhe_kv UPDATE"),
        "{err}: {:?}",
        err.hint()
    );
    let w16 = fhe_kv_client::Width::W16;
    let prices = [
        (Datum::Uint(5), Datum::Uint(50)),
        (Datum::Uint(6), Datum::Uint(60)),
    ];
    let key_id = c.keys().key_id().to_hex();
    c.postgres()
        .execute(
            "SELECT fhe_kv.create_table('prices', $1::text, 4, 16, 16)",
            &[&key_id],
        )
        .unwrap();
    let clear = |k: u16, v: u16| ClearRow {
        occupied: true,
        key: k.to_le_bytes().to_vec(),
        value: v.to_le_bytes().to_vec(),
    };
    let rows: Vec<Vec<u8>> = [
        clear(5, 50),
        clear(6, 60),
        ClearRow::vacant(w16, w16),
        ClearRow::vacant(w16, w16),
    ]
    .iter()
    .map(|row| c.keys().row_sealer().seal(row).unwrap())
    .collect();
    c.postgres()
        .execute(
            "SELECT fhe_kv.replace_all_rows('prices'::regclass, $1::bytea[])",
            &[&rows],
        )
        .unwrap();

    // A 0.1.0 dump has the encrypted table but neither keys nor bindings.
    let file = scratch("backup_old.sql");
    tool_ok(
        "pg_dump",
        &host,
        &port,
        &["-d", "backup_old", "-f", file.to_str().unwrap()],
    );
    let dump = std::fs::read_to_string(&file).unwrap();
    assert!(!dump.contains("COPY fhe_kv.encrypted_tables"));
    create_database(&host, &port, "backup_old_restored");
    tool_ok(
        "psql",
        &host,
        &port,
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "backup_old_restored",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let restored = options(&host, &port, "postgres", "backup_old_restored");
    let mut r = client(&restored);
    assert!(r.get::<u64>("prices", 5u64).is_err(), "not registered yet");
    // The recovery path: register the key again, attach the table.
    r.register_server_key(&test_key_files().1).unwrap();
    r.attach_table(
        "prices",
        KeyType::Uint(fhe_kv_client::Width::W16),
        ValueType::Uint(fhe_kv_client::Width::W16),
        None,
    )
    .unwrap();
    assert_eq!(r.get::<u64>("prices", 6u64).unwrap(), Some(60));
    assert_eq!(exported(&mut r, "prices"), prices.iter().cloned().collect());

    // In place: ALTER EXTENSION UPDATE keeps the data and makes dumps complete.
    c.postgres()
        .batch_execute("ALTER EXTENSION fhe_kv UPDATE")
        .unwrap();
    let version: String = c
        .postgres()
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'fhe_kv'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(c.get::<u64>("prices", 5u64).unwrap(), Some(50));
    tool_ok(
        "pg_dump",
        &host,
        &port,
        &["-d", "backup_old", "-f", file.to_str().unwrap()],
    );
    let dump = std::fs::read_to_string(&file).unwrap();
    assert!(dump.contains("COPY fhe_kv.server_keys"));
    assert!(dump.contains("COPY fhe_kv.encrypted_tables"));

    // The upgraded extension is the same, object for object, as a fresh install.
    let fresh = fresh_database("backup_fresh_install");
    let (upgraded, installed) = (extension_objects(&old), extension_objects(&fresh));
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    };
    assert_eq!(
        (only(&upgraded, &installed), only(&installed, &upgraded)),
        (vec![], vec![]),
        "objects only after the upgrade / only in a fresh install"
    );
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn a_database_made_with_0_2_0_is_upgraded_in_place() {
    let (host, port) = cluster();
    create_database(&host, &port, "upgrade_020");
    let old = options(&host, &port, "postgres", "upgrade_020");
    let mut db = old.connect().unwrap();
    db.batch_execute("CREATE EXTENSION fhe_kv VERSION '0.2.0'")
        .expect("scripts/test.sh installs the frozen 0.2.0 script (tests/upgrade)");
    drop(db);
    // 0.2.0's API is this client's, minus session keys: build tables with it.
    let mut c = client(&old);
    c.register_server_key(&test_key_files().1).unwrap();
    c.create_table_with(
        "bk",
        12,
        64,
        64,
        TableOptions {
            layout: Layout::Bucketed,
            bucket_slots: None,
        },
    )
    .unwrap();
    assert_eq!(c.put("bk", 1u64, 10u64).unwrap(), SetStatus::Inserted);
    c.create_table("flat", 2, 16, 16).unwrap();
    c.import(
        "flat",
        &[(Datum::Uint(2), Datum::Uint(20))],
        &mut |_, _, _| {},
    )
    .unwrap();
    assert!(
        c.load_session_key(&test_key_files().1).is_err(),
        "0.2.0 has no session keys"
    );

    c.postgres()
        .batch_execute("ALTER EXTENSION fhe_kv UPDATE")
        .unwrap();
    let version: String = c
        .postgres()
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'fhe_kv'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(c.get::<u64>("bk", 1u64).unwrap(), Some(10));
    assert_eq!(c.get::<u64>("flat", 2u64).unwrap(), Some(20));
    assert_eq!(c.load_session_key(&test_key_files().1).unwrap(), c.key_id());

    let fresh = fresh_database("upgrade_020_fresh");
    let (upgraded, installed) = (extension_objects(&old), extension_objects(&fresh));
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    };
    assert_eq!(
        (only(&upgraded, &installed), only(&installed, &upgraded)),
        (vec![], vec![]),
        "objects only after the upgrade / only in a fresh install"
    );
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn attach_refuses_what_it_cannot_verify_and_changes_nothing() {
    let (host, port) = cluster();
    let opts = fresh_database("backup_attach");
    let mut c = client(&opts);
    let key_id = c.key_id().to_hex();
    c.create_table("src", 3, 16, 16).unwrap();
    c.import(
        "src",
        &[(Datum::Uint(1), Datum::Uint(10))],
        &mut |_, _, _| {},
    )
    .unwrap();
    let db = c.postgres();
    // Unregistered copies of the table to attach, each spoiled in one way.
    db.batch_execute(
        "CREATE TABLE good (slot integer PRIMARY KEY, row bytea NOT NULL);
         INSERT INTO good SELECT slot, row FROM src;
         CREATE TABLE gap (slot integer PRIMARY KEY, row bytea NOT NULL);
         INSERT INTO gap SELECT slot * 2, row FROM src;
         CREATE TABLE garbage (slot integer PRIMARY KEY, row bytea NOT NULL);
         INSERT INTO garbage SELECT slot, row FROM src;
         UPDATE garbage SET row = substring(row FROM 1 FOR 40) WHERE slot = 1;
         CREATE TABLE wrong_columns (slot integer PRIMARY KEY, payload text);
         CREATE TABLE empty (slot integer PRIMARY KEY, row bytea NOT NULL);
         DROP ROLE IF EXISTS attach_stranger;
         CREATE ROLE attach_stranger;
         GRANT SELECT ON good TO attach_stranger;",
    )
    .unwrap();
    // A second, registered key whose rows these are not.
    let (stranger_keys, stranger_upload) = ClientKeys::generate().unwrap();
    c.register_server_key(&stranger_upload.0).unwrap();
    let other_key_id = stranger_keys.key_id().to_hex();
    let db = c.postgres();
    let before = (fingerprint(db, "good"), catalog_rows(db));

    let attach = |db: &mut postgres::Client, args: &str| -> String {
        let sql = format!("SELECT fhe_kv.attach_table({args})");
        db_message(&db.batch_execute(&sql).unwrap_err())
    };
    let cases: Vec<(String, &str)> = vec![
        (
            format!("'good', '{other_key_id}', 'u16', 'u16'"),
            "was made for key_id",
        ),
        (format!("'good', '{key_id}', 'u64', 'u16'"), "slot 0"),
        (
            format!("'good', '{key_id}', 'u16', 'text:3'"),
            "value_type must be",
        ),
        (
            "'good', '00000000000000000000000000000000', 'u16', 'u16'".to_string(),
            "no server key with key_id",
        ),
        (
            "'good', 'zz', 'u16', 'u16'".to_string(),
            "no server key with key_id",
        ),
        (format!("'gap', '{key_id}', 'u16', 'u16'"), "slots 0 to n-1"),
        (format!("'garbage', '{key_id}', 'u16', 'u16'"), "slot 1"),
        (
            format!("'wrong_columns', '{key_id}', 'u16', 'u16'"),
            "not (slot integer, row bytea)",
        ),
        (
            format!("'empty', '{key_id}', 'u16', 'u16'"),
            "slots 0 to n-1",
        ),
        (
            format!("'src', '{key_id}', 'u16', 'u16'"),
            "already an fhe_kv table",
        ),
        (
            format!("'pg_class', '{key_id}', 'u16', 'u16'"),
            "not (slot integer, row bytea)",
        ),
        (
            format!("NULL, '{key_id}', 'u16', 'u16'"),
            "must not be NULL",
        ),
        ("'good', NULL, 'u16', 'u16'".to_string(), "must not be NULL"),
    ];
    for (args, want) in &cases {
        let msg = attach(db, args);
        assert!(msg.contains(want), "attach_table({args}): {msg}");
    }
    // Not the owner: refused before anything is read.
    let msg = db_message(
        &db.batch_execute(&format!(
            "SET ROLE attach_stranger; SELECT fhe_kv.attach_table('good', '{key_id}', 'u16', 'u16')"
        ))
        .unwrap_err(),
    );
    db.batch_execute("RESET ROLE").unwrap();
    assert!(msg.contains("only the owner"), "{msg}");
    assert_eq!(
        (fingerprint(db, "good"), catalog_rows(db)),
        before,
        "refused attaches change neither rows nor catalog"
    );
    // And the good one attaches.
    db.batch_execute(&format!(
        "SELECT fhe_kv.attach_table('good', '{key_id}', 'u16', 'u16')"
    ))
    .unwrap();
    let _ = (host, port);
    assert_eq!(c.get::<u64>("good", 1u64).unwrap(), Some(10));
}

fn catalog_rows(db: &mut postgres::Client) -> Vec<String> {
    db.query(
        "SELECT relid::text || ' ' || key_id || ' ' || capacity FROM fhe_kv.encrypted_tables ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}
