//! `fhe-kv`: command-line client for fhe_kv encrypted key/value tables.

use clap::{Args, Parser, Subcommand};
use cli::{bulk, crypt, entries, keys, tables, Context, Outcome};
use fhe_kv_client::Result;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

const ABOUT: &str = "Client for fhe_kv: PostgreSQL key/value tables encrypted with TFHE.\n\
Keys and values are encrypted here with your client key; the server computes on ciphertexts only.";

const MAIN_AFTER_HELP: &str = "\
Getting started:
  fhe-kv keygen --out-dir ~/.fhe-kv
  export FHE_KV_CLIENT_KEY=~/.fhe-kv/client.key
  fhe-kv --db postgres://alice@localhost/kv register --server-key ~/.fhe-kv/server.key
  fhe-kv create-table prices --capacity 64
  fhe-kv put prices 42 1999
  fhe-kv get prices 42
  fhe-kv create-table notes --capacity 256 --key-type text:15 --value-type bytes:15
  fhe-kv import notes notes.csv && fhe-kv get notes patient-4711

Connection: --db (or DATABASE_URL) takes a postgres:// URL or a key=value string; without
it PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE are used (default: unix socket in
/var/run/postgresql, port 5432, user $USER), and ~/.pgpass (PGPASSFILE). TLS as in libpq:
sslmode=disable|prefer|require|verify-ca|verify-full, sslrootcert, sslcert, sslkey in the
URL/string, or PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY; e.g.
  --db 'postgres://alice@db.example/kv?sslmode=verify-full&sslrootcert=ca.pem'";

#[derive(Parser, Debug)]
#[command(name = "fhe-kv", version, about = ABOUT, after_help = MAIN_AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Global {
    /// Database URL (postgres://user:pw@host:port/db) or key=value connection string.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    db: Option<String>,

    /// Client key file (secret; must not be readable by group or others).
    #[arg(
        long,
        global = true,
        env = "FHE_KV_CLIENT_KEY",
        hide_env_values = true,
        default_value = "./client.key",
        value_name = "FILE"
    )]
    client_key: PathBuf,

    /// Server key file to load for this command's session only (fhe_kv.load_session_key):
    /// the server keeps it in memory and never stores it; uploaded on every command.
    #[arg(
        long,
        global = true,
        env = "FHE_KV_SESSION_KEY",
        hide_env_values = true,
        value_name = "FILE"
    )]
    session_key: Option<PathBuf>,

    /// Print the time the operation took to stderr, e.g. "(0.84 s)".
    #[arg(long, global = true)]
    timing: bool,

    /// Machine-readable output: one JSON object per result.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a client key (secret) and the matching server key (to upload). Takes ~10 s.
    Keygen(keys::KeygenArgs),

    /// Upload a server key to the database (idempotent) and print its key_id.
    Register(keys::RegisterArgs),

    /// Create an encrypted table for your client key's key_id.
    CreateTable(tables::CreateTableArgs),

    /// Insert or update KEY; prints inserted, updated or full.
    Put(entries::PutArgs),

    /// Look KEY up; prints its value or "(not found)". Several keys are looked up
    /// together (batched private GET, one pass over the table per 64 keys) and printed one
    /// per line as KEY<TAB>VALUE.
    Get(entries::GetArgs),

    /// Delete KEY; prints deleted or not_found.
    Delete(entries::DeleteArgs),

    /// Load entries from a CSV (key,value) or JSON-lines file: an upsert by key, safe to re-run.
    Import(bulk::ImportArgs),

    /// Decrypt a whole table to CSV or JSON lines (client-side, no server-side FHE).
    Export(bulk::ExportArgs),

    /// Show the client key's key_id, the parameters and the sizes of a table's ciphertexts.
    Info(tables::InfoArgs),

    /// List fhe_kv tables (no client key needed).
    Tables(tables::TablesArgs),

    /// Register a table restored without its catalog entry (pg_dump -t, or a dump made
    /// before fhe_kv 0.2.0) for your client key again, after the server checked every row.
    Attach(tables::AttachArgs),

    /// Add N slots to TABLE; prints the new capacity. A flat table gets N empty slots (no
    /// client key needed); a bucketed table is rehashed client-side into more buckets.
    Grow(tables::GrowArgs),

    /// Re-seal every bucket of a bucketed TABLE with fresh encryptions (same buckets):
    /// resets its write count, which the server's noise budget limits.
    Refresh(tables::RefreshArgs),

    /// Encrypt a query key or a value; prints it as \x<hex>, pasteable into psql.
    Encrypt(crypt::EncryptArgs),

    /// Decrypt a result or status returned by fhe_get/fhe_set/fhe_delete.
    Decrypt(crypt::DecryptArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(out) => {
            if !out.stdout.is_empty() {
                println!("{}", out.stdout);
            }
            ExitCode::from(out.code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<Outcome> {
    let Global {
        db,
        client_key,
        session_key,
        timing,
        json,
    } = cli.global;
    let ctx = Context::new(db, client_key, session_key, timing, json);
    match cli.command {
        Command::Keygen(args) => args.run(&ctx),
        Command::Register(args) => args.run(&ctx),
        Command::CreateTable(args) => args.run(&ctx),
        Command::Put(args) => args.run(&ctx),
        Command::Get(args) => args.run(&ctx),
        Command::Delete(args) => args.run(&ctx),
        Command::Import(args) => args.run(&ctx),
        Command::Export(args) => args.run(&ctx),
        Command::Info(args) => args.run(&ctx),
        Command::Tables(args) => args.run(&ctx),
        Command::Attach(args) => args.run(&ctx),
        Command::Grow(args) => args.run(&ctx),
        Command::Refresh(args) => args.run(&ctx),
        Command::Encrypt(args) => args.run(&ctx),
        Command::Decrypt(args) => args.run(&ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;
    use crypt::{DecryptArgs, EncryptArgs};
    use entries::{DeleteArgs, GetArgs, PutArgs};
    use keys::KeygenArgs;
    use tables::{CreateTableArgs, GrowArgs};

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("fhe-kv").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn put_get_delete() {
        let cli = parse(&["put", "prices", "42", "1999"]).unwrap();
        assert!(
            matches!(cli.command, Command::Put(PutArgs { ref table, ref key, ref value, .. }) if table == "prices" && key == "42" && value == "1999")
        );
        let cli = parse(&["--timing", "get", "prices", "42"]).unwrap();
        assert!(cli.global.timing);
        assert!(matches!(cli.command, Command::Get(GetArgs { ref key, .. }) if key == &["42"]));
        // global options after the subcommand too
        let cli = parse(&[
            "delete",
            "t",
            "7",
            "--db",
            "postgres:///x",
            "--client-key",
            "/k",
        ])
        .unwrap();
        assert_eq!(cli.global.db.as_deref(), Some("postgres:///x"));
        assert_eq!(cli.global.client_key, PathBuf::from("/k"));
        assert!(
            matches!(cli.command, Command::Delete(DeleteArgs { ref key, scrub: false, server_side: false, .. }) if key == "7")
        );
        let cli = parse(&["delete", "--scrub", "t", "7"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Delete(DeleteArgs { scrub: true, .. })
        ));

        assert!(parse(&["put", "t", "1"]).is_err());
        assert!(parse(&["get", "t", "-1"]).is_err());
        // Keys are parsed against the table's type at run time (see cli::bulk::key_datum).
        assert!(parse(&["get", "t", "patient-4711"]).is_ok());
    }

    #[test]
    fn create_table_defaults_and_width_validation() {
        let cli = parse(&["create-table", "prices", "--capacity", "64"]).unwrap();
        match cli.command {
            Command::CreateTable(CreateTableArgs {
                name,
                capacity,
                key_bits,
                value_bits,
                ..
            }) => {
                assert_eq!(
                    (name.as_str(), capacity, key_bits, value_bits),
                    ("prices", 64, 64, 64)
                );
            }
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "create-table",
            "t",
            "--capacity",
            "8",
            "--key-bits",
            "16",
            "--value-bits",
            "8",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::CreateTable(CreateTableArgs {
                key_bits: 16,
                value_bits: 8,
                ..
            })
        ));
        let err = parse(&["create-table", "t", "--capacity", "8", "--key-bits", "12"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(
            parse(&["create-table", "t"]).is_err(),
            "capacity is required"
        );
    }

    #[test]
    fn encrypt_takes_key_value_and_table() {
        let cli = parse(&["encrypt", "--key", "5", "--bits", "8"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Encrypt(EncryptArgs { key: Some(ref k), value: None, bits: 8, table: None }) if k == "5"
        ));
        let cli = parse(&["encrypt", "--value", "5"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Encrypt(EncryptArgs { key: None, value: Some(ref v), bits: 64, .. }) if v == "5"
        ));
        // --key and --value together are for --table mode (checked at run time).
        let cli = parse(&["encrypt", "--table", "notes", "--key", "k", "--value", "v"]).unwrap();
        assert!(
            matches!(cli.command, Command::Encrypt(EncryptArgs { table: Some(ref t), .. }) if t == "notes")
        );
        assert_eq!(
            parse(&["encrypt", "--bits", "8"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn keygen_register_decrypt_grow() {
        let cli = parse(&["keygen", "--out-dir", "/tmp/k", "--force"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Keygen(KeygenArgs { force: true, .. })
        ));
        assert!(parse(&["keygen"]).is_err());
        let cli = parse(&["register", "--server-key", "s.key"]).unwrap();
        assert!(matches!(cli.command, Command::Register(_)));
        let cli = parse(&["decrypt"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Decrypt(DecryptArgs { hex: None, .. })
        ));
        let cli = parse(&["decrypt", "-"]).unwrap();
        assert!(
            matches!(cli.command, Command::Decrypt(DecryptArgs { hex: Some(ref h), .. }) if h == "-")
        );
        let cli = parse(&["decrypt", "\\x4648"]).unwrap();
        assert!(
            matches!(cli.command, Command::Decrypt(DecryptArgs { hex: Some(ref h), .. }) if h == "\\x4648")
        );
        let cli = parse(&["grow", "t", "16"]).unwrap();
        assert!(matches!(cli.command, Command::Grow(GrowArgs { n: 16, .. })));
        assert!(parse(&["tables"]).is_ok());
        assert_eq!(
            parse(&["frobnicate"]).unwrap_err().kind(),
            ErrorKind::InvalidSubcommand
        );
    }

    #[test]
    fn every_subcommand_has_an_example() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let after = sub
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(
                after.contains("fhe-kv "),
                "{} lacks an example",
                sub.get_name()
            );
            assert!(sub.get_about().is_some(), "{} lacks help", sub.get_name());
        }
    }
}
