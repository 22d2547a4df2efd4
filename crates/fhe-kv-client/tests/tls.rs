//! TLS and the password file against a real server (issue: "Where users already are").
//!
//! A cluster of its own (port PGPORT+14) with `ssl = on`, a certificate for `localhost`
//! signed by a CA made here with the `openssl` CLI, and a pg_hba.conf that accepts TCP
//! only over TLS: `postgres` trusted, `pwuser` by SCRAM password, `certuser` by client
//! certificate. Checks that
//! * verify-full connects with the right CA and host name, and refuses a wrong CA or a
//!   host name the certificate does not name, with a clear error and hint;
//! * verify-ca skips only the host name; require encrypts without verifying; prefer (the
//!   default) uses TLS when offered; disable is refused by this server's pg_hba.conf;
//! * the settings work from URLs, key=value strings and PGSSL* variables;
//! * `~/.pgpass` / PGPASSFILE / passfile= supply the password, and client certificates
//!   (sslcert/sslkey) authenticate;
//! * the library (a bucketed table's GET/SET/DELETE) and the CLI work over verify-full.
//!
//! Needs the `make test` cluster's settings (FHE_KV_TEST_PGPORT) and the extension
//! installed.

mod common;

use common::{cluster, fresh_database_on, running_as_root, OwnCluster};
use fhe_kv_client::{
    Client, ClientKeys, ConnectOptions, DeleteStatus, Error, Layout, SetStatus, TableOptions,
};
use fhe_kv_core::testkeys::test_key_files;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// CA, a second CA, a server certificate for `localhost` and a client certificate for
/// `certuser`, made with the openssl CLI in `dir`.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"set -e
        req() { openssl req -new -newkey rsa:2048 -nodes -sha256 "$@" 2>/dev/null; }
        req -x509 -days 2 -keyout ca.key -out ca.crt -subj "/CN=fhe_kv test CA"
        req -x509 -days 2 -keyout other-ca.key -out other-ca.crt -subj "/CN=fhe_kv test CA"
        req -keyout server.key -out server.csr -subj "/CN=localhost"
        printf 'subjectAltName=DNS:localhost\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -sha256 -extfile server.ext -out server.crt 2>/dev/null
        req -keyout client.key -out client.csr -subj "/CN=certuser"
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -sha256 -out client.crt 2>/dev/null
        chmod 600 ./*.key
    "#;
    let status = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .status()
        .expect("the openssl CLI is needed for this test");
    assert!(
        status.success(),
        "making test certificates in {}",
        dir.display()
    );
}

struct TlsCluster {
    cluster: OwnCluster,
    certs: PathBuf,
}

impl TlsCluster {
    fn start() -> TlsCluster {
        let (_, port) = cluster();
        let port: u16 = port.parse::<u16>().unwrap() + 14;
        let cluster = OwnCluster::start("tls-cluster", port);
        let certs = cluster.dir.join("certs");
        make_certificates(&certs);
        if running_as_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&certs)
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
        let mut db = cluster.connect_when_ready("postgres");
        db.batch_execute(
            "CREATE ROLE pwuser LOGIN PASSWORD 'correct horse'; \
             CREATE ROLE certuser LOGIN;",
        )
        .unwrap();
        drop(db);
        std::fs::write(
            cluster.dir.join("data/pg_hba.conf"),
            "local all all trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all pwuser 127.0.0.1/32 scram-sha-256\n\
             hostssl all postgres 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        cluster.stop();
        let c = certs.display();
        cluster.restart_with(&format!(
            "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={c}/server.crt \
             -c ssl_key_file={c}/server.key -c ssl_ca_file={c}/ca.crt"
        ));
        cluster.connect_when_ready("postgres");
        TlsCluster { cluster, certs }
    }

    fn cert(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    fn port(&self) -> &str {
        &self.cluster.port
    }
}

/// A HOME with no ~/.postgresql and no ~/.pgpass, so only what a case sets counts.
fn empty_home() -> PathBuf {
    let home = std::env::temp_dir().join(format!("fhe-kv-tls-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    home
}

fn connect(conninfo: &str, env: &[(&str, &str)]) -> Result<postgres::Client, Error> {
    let home = empty_home();
    let mut vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.entry("HOME".into())
        .or_insert_with(|| home.display().to_string());
    ConnectOptions::from_url(conninfo)
        .resolve_with(|k| vars.get(k).cloned())?
        .connect()
}

/// Whether this session is encrypted, and as whom it is logged in.
fn session(db: &mut postgres::Client) -> (bool, String) {
    let row = db
        .query_one(
            "SELECT ssl, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn refused(result: Result<postgres::Client, Error>, what: &str) -> (String, String) {
    match result {
        Ok(_) => panic!("{what}: connected, but must be refused"),
        Err(e) => {
            let (message, hint) = (e.to_string(), e.hint().unwrap_or_default());
            println!("{what}:\n  error: {message}\n  hint: {hint}");
            (message, hint)
        }
    }
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn tls_modes_password_file_and_client_certificates() {
    let tls = TlsCluster::start();
    let port = tls.port().to_string();
    let ca = tls.cert("ca.crt");
    let other_ca = tls.cert("other-ca.crt");

    // verify-full: right CA and host name
    let mut db = connect(
        &format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
        ),
        &[],
    )
    .unwrap();
    assert_eq!(session(&mut db), (true, "postgres".to_string()));

    // verify-full: a CA that did not sign the server's certificate
    let (message, hint) = refused(
        connect(
            &format!("host=localhost port={port} user=postgres sslmode=verify-full sslrootcert={other_ca}"),
            &[],
        ),
        "wrong CA",
    );
    assert!(message.contains("certificate verify failed"), "{message}");
    assert!(message.contains("sslmode=verify-full"), "{message}");
    assert!(hint.contains("sslrootcert"), "{hint}");

    // verify-full: the certificate names localhost, not 127.0.0.1
    let (message, hint) = refused(
        connect(
            &format!(
                "host=127.0.0.1 port={port} user=postgres sslmode=verify-full sslrootcert={ca}"
            ),
            &[],
        ),
        "wrong host name",
    );
    assert!(message.contains("certificate verify failed"), "{message}");
    assert!(hint.contains("does not name the host"), "{hint}");

    // verify-ca checks the chain but not the name; it still refuses the wrong CA
    let mut db = connect(
        &format!("host=127.0.0.1 port={port} user=postgres sslmode=verify-ca sslrootcert={ca}"),
        &[],
    )
    .unwrap();
    assert!(session(&mut db).0);
    refused(
        connect(
            &format!(
                "host=127.0.0.1 port={port} user=postgres sslmode=verify-ca sslrootcert={other_ca}"
            ),
            &[],
        ),
        "verify-ca with the wrong CA",
    );

    // require: encrypted, nothing verified (no root certificate anywhere)
    let mut db = connect(
        &format!("host=127.0.0.1 port={port} user=postgres sslmode=require"),
        &[],
    )
    .unwrap();
    assert!(session(&mut db).0);
    // prefer, the default: TLS because the server offers it
    let mut db = connect(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        &[],
    )
    .unwrap();
    assert!(session(&mut db).0);
    // disable: plain text, which this server's pg_hba.conf rejects
    let (message, hint) = refused(
        connect(
            &format!("host=127.0.0.1 port={port} user=postgres sslmode=disable"),
            &[],
        ),
        "sslmode=disable against hostnossl reject",
    );
    assert!(message.contains("no encryption"), "{message}");
    assert!(hint.contains("sslmode=require"), "{hint}");

    // the PGSSL* variables, as libpq reads them; the string wins over them
    let mut db = connect(
        &format!("host=localhost port={port} user=postgres"),
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)],
    )
    .unwrap();
    assert!(session(&mut db).0);
    refused(
        connect(
            &format!("host=localhost port={port} user=postgres"),
            &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &other_ca)],
        ),
        "PGSSLROOTCERT with the wrong CA",
    );
    connect(
        &format!("host=localhost port={port} user=postgres sslrootcert={ca}"),
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &other_ca)],
    )
    .unwrap();
    // ~/.postgresql/root.crt is the default root certificate
    let home = std::env::temp_dir().join(format!("fhe-kv-tls-home2-{}", std::process::id()));
    std::fs::create_dir_all(home.join(".postgresql")).unwrap();
    std::fs::copy(&ca, home.join(".postgresql/root.crt")).unwrap();
    let home_str = home.display().to_string();
    connect(
        &format!("host=localhost port={port} user=postgres sslmode=verify-full"),
        &[("HOME", &home_str)],
    )
    .unwrap();
    // …and without it, verify-full says what is missing before connecting
    let (message, hint) = refused(
        connect(
            &format!("host=localhost port={port} user=postgres sslmode=verify-full"),
            &[],
        ),
        "verify-full without a root certificate",
    );
    assert!(
        message.contains("root.crt") && message.contains("does not exist"),
        "{message}"
    );
    assert!(hint.contains("sslrootcert"), "{hint}");

    // password authentication: the password file, in all three places libpq looks
    let pgpass_line = format!("localhost:{port}:postgres:pwuser:correct horse\n");
    let passfile = home.join("passfile");
    std::fs::write(&passfile, &pgpass_line).unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let passfile_str = passfile.display().to_string();
    let pw_url = format!("host=localhost port={port} user=pwuser dbname=postgres sslmode=verify-full sslrootcert={ca}");
    let (message, hint) = refused(connect(&pw_url, &[]), "no password");
    assert!(message.contains("password"), "{message}");
    assert!(hint.contains(".pgpass"), "{hint}");
    let mut db = connect(&pw_url, &[("PGPASSFILE", &passfile_str)]).unwrap();
    assert_eq!(session(&mut db), (true, "pwuser".to_string()));
    connect(&format!("{pw_url} passfile={passfile_str}"), &[]).unwrap();
    std::fs::copy(&passfile, home.join(".pgpass")).unwrap();
    std::fs::set_permissions(home.join(".pgpass"), std::fs::Permissions::from_mode(0o600)).unwrap();
    connect(&pw_url, &[("HOME", &home_str)]).unwrap();
    // a world-readable password file is ignored, as libpq does
    std::fs::set_permissions(home.join(".pgpass"), std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(
        connect(&pw_url, &[("HOME", &home_str)]),
        "world-readable ~/.pgpass",
    );

    // client certificate authentication (a key file of our own, 0600)
    let key = home.join("client.key");
    std::fs::copy(tls.cert("client.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let client_crt = tls.cert("client.crt");
    let cert_url = format!(
        "postgres://certuser@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}&sslcert={client_crt}&sslkey={}",
        key.display()
    );
    let mut db = connect(&cert_url, &[]).unwrap();
    assert_eq!(session(&mut db), (true, "certuser".to_string()));
    let (_, hint) = refused(
        connect(
            &format!("postgres://certuser@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"),
            &[],
        ),
        "cert authentication without a client certificate",
    );
    assert!(hint.contains("sslcert"), "{hint}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (message, _) = refused(connect(&cert_url, &[]), "a group-readable client key");
    assert!(message.contains("group or world access"), "{message}");

    std::fs::remove_dir_all(&home).unwrap();
    std::fs::remove_dir_all(empty_home()).unwrap();
}

#[test]
#[ignore = "needs a cluster with fhe_kv installed: run `make test`"]
fn library_and_cli_over_verify_full() {
    let tls = TlsCluster::start();
    let port = tls.port().to_string();
    let ca = tls.cert("ca.crt");
    // set up over the unix socket, then use only TLS
    fresh_database_on(&tls.cluster.host(), &port, "tls_kv");
    let url =
        format!("postgres://postgres@localhost:{port}/tls_kv?sslmode=verify-full&sslrootcert={ca}");

    let (client_key, _) = test_key_files();
    let keys = ClientKeys::from_bytes(&client_key).unwrap();
    let mut client = Client::connect(&ConnectOptions::from_url(&url), keys).unwrap();
    client
        .create_table_with(
            "over_tls",
            12,
            64,
            64,
            TableOptions {
                layout: Layout::Bucketed,
                bucket_slots: None,
            },
        )
        .unwrap();
    assert_eq!(
        client.put("over_tls", 7u64, 70u64).unwrap(),
        SetStatus::Inserted
    );
    assert_eq!(client.get::<u64>("over_tls", 7u64).unwrap(), Some(70));
    assert_eq!(
        client.delete("over_tls", 7u64).unwrap(),
        DeleteStatus::Deleted
    );
    assert_eq!(client.get::<u64>("over_tls", 7u64).unwrap(), None);
    drop(client);

    // the CLI: same URL; a wrong CA gives the error and the hint
    let key_dir = std::env::var("FHE_KV_TEST_KEY_DIR").unwrap_or_default();
    let cli = |url: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhe-kv"));
        cmd.args(["--db", url, "tables"]);
        if !key_dir.is_empty() {
            cmd.env("FHE_KV_CLIENT_KEY", Path::new(&key_dir).join("client.key"));
        }
        cmd.env("HOME", empty_home()).output().unwrap()
    };
    let out = cli(&url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("over_tls"), "{stdout}");
    let wrong = url.replace("ca.crt", "other-ca.crt");
    let out = cli(&wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("certificate verify failed"), "{stderr}");
    assert!(
        stderr.contains("hint:") && stderr.contains("sslrootcert"),
        "{stderr}"
    );
    std::fs::remove_dir_all(empty_home()).ok();
}
