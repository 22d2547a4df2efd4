//! `fhe-kv`: command-line client for fhe_kv encrypted key/value tables.

use clap::{ArgGroup, Args, Parser, Subcommand};
use fhe_kv_client::{
    check_writable, format_bytea_hex, parse_bytea_hex, read_client_key, read_server_key,
    write_client_key, write_server_key, Client, ClientKeys, ConnectOptions, Connection, Datum,
    Error, KeyType, Layout, Result, SetStatus, TableInfo, TableOptions, ValueType, Width,
};

mod bulk_io;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

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
/var/run/postgresql, port 5432, user $USER). TLS is not supported.";

const ENCRYPT_AFTER_HELP: &str = r#"Example (psql):
  fhe-kv encrypt --key 42 --bits 32 > k.hex
  psql -At -c "SELECT fhe_kv.fhe_get('prices', '$(cat k.hex)')" | fhe-kv decrypt

--bits must match the table's key_bits (for --key) or value_bits (for --value)."#;

const DECRYPT_AFTER_HELP: &str = r#"Examples:
  fhe-kv decrypt '\x46484b5601060000…'
  psql -At -c "SELECT fhe_kv.fhe_delete('prices', '$(cat k.hex)')" | fhe-kv decrypt

Accepts hex with or without the \x prefix; whitespace is ignored."#;

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
    #[command(after_help = "Example:\n  fhe-kv keygen --out-dir ~/.fhe-kv\n\n\
Writes DIR/client.key (mode 0600; keep it secret and backed up: without it the data is lost)\n\
and DIR/server.key (~76 MB; upload it with `fhe-kv register --server-key DIR/server.key`).")]
    Keygen {
        /// Directory to write client.key and server.key to (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },

    /// Upload a server key to the database (idempotent) and print its key_id.
    #[command(after_help = "Example:\n  fhe-kv register --server-key ~/.fhe-kv/server.key")]
    Register {
        /// The server.key file written by `fhe-kv keygen`.
        #[arg(long, value_name = "FILE")]
        server_key: PathBuf,
    },

    /// Create an encrypted table for your client key's key_id.
    #[command(
        after_help = "Example:\n  fhe-kv create-table prices --capacity 64 --key-bits 32\n\n\
The server key must have been registered first (`fhe-kv register`). Every operation\n\
touches all slots, so its cost grows with the capacity; `fhe-kv grow` adds slots later."
    )]
    CreateTable {
        /// Table name (may be schema-qualified).
        name: String,
        /// Number of slots (the maximum number of keys).
        #[arg(long, value_name = "N")]
        capacity: u32,
        /// Width of integer keys: 8, 16, 32, 64, 128 or 256.
        #[arg(long, default_value_t = 64, value_name = "BITS", value_parser = parse_bits,
              conflicts_with = "key_type")]
        key_bits: u32,
        /// Width of integer values: 8, 16, 32, 64, 128 or 256.
        #[arg(long, default_value_t = 64, value_name = "BITS", value_parser = parse_bits,
              conflicts_with = "value_type")]
        value_bits: u32,
        /// Key type: text:K (strings/bytes of up to K bytes, stored as keyed tags) or u8…u256.
        #[arg(long, value_name = "TYPE", value_parser = |s: &str| KeyType::parse(s).map_err(|e| e.to_string()))]
        key_type: Option<KeyType>,
        /// Value type: bytes:N (byte strings of up to N bytes; UTF-8 text works) or u8…u256.
        #[arg(long, value_name = "TYPE", value_parser = |s: &str| ValueType::parse(s).map_err(|e| e.to_string()))]
        value_type: Option<ValueType>,
        /// auto (bucketed from four buckets' worth of slots up, if the key supports it),
        /// flat (every operation touches every slot) or bucketed (only the key's two
        /// candidate buckets; a SET may answer `full` above the load limit).
        #[arg(long, default_value = "auto", value_parser = |s: &str| Layout::parse(s).map_err(|e| e.to_string()))]
        layout: Layout,
        /// Slots per bucket of a bucketed table (default 6).
        #[arg(long, value_name = "Z")]
        bucket_slots: Option<u32>,
    },

    /// Insert or update KEY; prints inserted, updated or full.
    #[command(after_help = "Example:\n  fhe-kv put prices 42 1999\n\n\
Prints `full` and exits with status 1 when KEY is new and the table has no free slot\n\
(nothing is written; add slots with `fhe-kv grow`).")]
    Put {
        /// Table name.
        table: String,
        /// Key: a number for uN keys, a string for text keys (\\x<hex> for raw bytes).
        key: String,
        /// Value: a number for uN values, a string for bytes:N values (\\x<hex> for raw bytes).
        value: String,
        /// On a bucketed table, run fhe_set (the server computes the upsert, ~2,200
        /// bootstraps) instead of the key owner's read-and-write (none).
        #[arg(long)]
        server_side: bool,
    },

    /// Look KEY up; prints its value or "(not found)". Several keys are looked up
    /// together (batched private GET, one pass over the table per 64 keys) and printed one
    /// per line as KEY<TAB>VALUE.
    #[command(
        after_help = "Examples:\n  fhe-kv get prices 42\n  fhe-kv get prices 42 43 44\n  fhe-kv get --two-round prices 42"
    )]
    Get {
        /// Table name.
        table: String,
        /// Key(s) to look up.
        #[arg(required = true, num_args = 1..)]
        key: Vec<String>,
        /// Use the two-round GET (fhe_locate, then fhe_fetch): about half the server work
        /// of the one-round GET, at the cost of a second round trip (docs/two-round-get.md).
        /// Bucketed tables always read their key's candidate buckets in one round.
        #[arg(long)]
        two_round: bool,
        /// Run fhe_get / fhe_get_many: the server computes the encrypted answer (on a
        /// bucketed table instead of the bucket read).
        #[arg(long, conflicts_with = "two_round")]
        server_side: bool,
    },

    /// Delete KEY; prints deleted or not_found.
    #[command(
        after_help = "Example:\n  fhe-kv delete prices 42\n  fhe-kv delete --scrub prices 42\n\n\
The freed slot keeps the deleted pair, encrypted and flagged vacant, until an insert reuses it.\n\
--scrub also zeroes every vacant slot's key and value (about 1.6x the cost)."
    )]
    Delete {
        /// Table name.
        table: String,
        /// Key to delete.
        key: String,
        /// Also zero the contents of every vacant slot (this one and earlier deletes).
        #[arg(long)]
        scrub: bool,
        /// On a bucketed table, run fhe_delete (the server computes it) instead of the key
        /// owner's read-and-write.
        #[arg(long)]
        server_side: bool,
    },

    /// Load entries from a CSV (key,value) or JSON-lines file: an upsert by key, safe to re-run.
    #[command(
        after_help = "Example:\n  fhe-kv import notes notes.csv\n  fhe-kv import notes notes.jsonl\n\n\
CSV: two columns key,value (an optional header line `key,value`). JSON lines: {\"key\": …, \"value\": …}.\n\
Runs client-side: decrypts every slot, merges, re-encrypts every slot and writes them in one\n\
transaction (no server-side FHE). Interrupted imports write nothing; re-running never duplicates."
    )]
    Import {
        /// Table name.
        table: String,
        /// Input file (.csv or .jsonl/.json); `-` reads CSV from stdin.
        file: PathBuf,
        /// Input format (default: from the file extension).
        #[arg(long, value_parser = ["csv", "jsonl"])]
        format: Option<String>,
    },

    /// Decrypt a whole table to CSV or JSON lines (client-side, no server-side FHE).
    #[command(
        after_help = "Example:\n  fhe-kv export notes > notes.csv\n  fhe-kv export notes --format jsonl -o notes.jsonl"
    )]
    Export {
        /// Table name.
        table: String,
        /// Output format.
        #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
        format: String,
        /// Output file (default: stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Show the client key's key_id, the parameters and the sizes of a table's ciphertexts.
    #[command(after_help = "Example:\n  fhe-kv info\n  fhe-kv info notes")]
    Info {
        /// A table to describe as well.
        table: Option<String>,
    },

    /// List fhe_kv tables (no client key needed).
    #[command(after_help = "Example:\n  fhe-kv tables")]
    Tables,

    /// Register a table restored without its catalog entry (pg_dump -t, or a dump made
    /// before fhe_kv 0.2.0) for your client key again, after the server checked every row.
    #[command(
        after_help = "Example:\n  fhe-kv attach prices\n  fhe-kv attach notes --key-type text:15 --value-type bytes:15\n\n\
Give the types the table was created with (`fhe-kv tables` on the source database, or the\n\
table's COMMENT). Only the table's owner can attach it; every row must be a row of your key."
    )]
    Attach {
        /// Table name (may be schema-qualified).
        name: String,
        /// Key type the table was created with: text:K or u8…u256.
        #[arg(long, default_value = "u64", value_name = "TYPE", value_parser = |s: &str| KeyType::parse(s).map_err(|e| e.to_string()))]
        key_type: KeyType,
        /// Value type the table was created with: bytes:N or u8…u256.
        #[arg(long, default_value = "u64", value_name = "TYPE", value_parser = |s: &str| ValueType::parse(s).map_err(|e| e.to_string()))]
        value_type: ValueType,
        /// For a bucketed table: its slots per bucket (the table's COMMENT says it).
        #[arg(long, value_name = "Z")]
        bucket_slots: Option<u32>,
    },

    /// Add N slots to TABLE; prints the new capacity. A flat table gets N empty slots (no
    /// client key needed); a bucketed table is rehashed client-side into more buckets.
    #[command(after_help = "Example:\n  fhe-kv grow prices 64\n\n\
A bucketed table's keys move to new buckets: the client decrypts every bucket, places\n\
every key again and writes the table in one transaction (no server-side FHE).")]
    Grow {
        /// Table name.
        table: String,
        /// Number of slots to add.
        #[arg(value_name = "N")]
        n: u32,
    },

    /// Encrypt a query key or a value; prints it as \x<hex>, pasteable into psql.
    #[command(
        group(ArgGroup::new("what").required(true).multiple(true).args(["key", "value"])),
        after_help = ENCRYPT_AFTER_HELP
    )]
    Encrypt {
        /// Encrypt this query key (argument of fhe_get/fhe_set/fhe_delete).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Encrypt this value (argument of fhe_set); with --table, give --key too.
        #[arg(long, value_name = "VALUE")]
        value: Option<String>,
        /// Encrypt for TABLE's types (text keys, byte values); needs the database.
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
        /// Width in bits: 8, 16, 32 or 64.
        #[arg(long, default_value_t = 64, value_name = "B", value_parser = parse_bits)]
        bits: u32,
    },

    /// Decrypt a result or status returned by fhe_get/fhe_set/fhe_delete.
    #[command(after_help = DECRYPT_AFTER_HELP)]
    Decrypt {
        /// The ciphertext as hex; read from stdin when absent or "-".
        #[arg(value_name = "HEX")]
        hex: Option<String>,
        /// Decode a GET answer as TABLE's value type (text, bytes); needs the database.
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
    },
}

fn parse_bits(s: &str) -> std::result::Result<u32, String> {
    let bits: u32 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number (expected 8, 16, 32 or 64)"))?;
    Width::from_bits(bits).map_err(|e| e.to_string())?;
    Ok(bits)
}

/// What a command wants printed on success, and its exit status.
struct Outcome {
    stdout: String,
    code: u8,
}

impl From<String> for Outcome {
    fn from(stdout: String) -> Self {
        Outcome { stdout, code: 0 }
    }
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
    let g = &cli.global;
    let opts = ConnectOptions {
        url: g.db.clone(),
        notices_to_stderr: true,
    };
    let client = || -> Result<Client> {
        let keys = read_client_key(&g.client_key)?;
        Client::connect(&opts, keys)
    };
    let timed = |f: &mut dyn FnMut() -> Result<Outcome>| -> Result<Outcome> {
        let start = Instant::now();
        let out = f();
        if g.timing {
            eprintln!("({:.2} s)", start.elapsed().as_secs_f64());
        }
        out
    };

    match cli.command {
        Command::Keygen { out_dir, force } => {
            let ck_path = out_dir.join("client.key");
            let sk_path = out_dir.join("server.key");
            std::fs::create_dir_all(&out_dir).map_err(|e| Error::Io {
                action: "creating directory",
                path: out_dir.clone(),
                source: e,
            })?;
            // fail before the slow part
            check_writable(&ck_path, force)?;
            check_writable(&sk_path, force)?;
            eprintln!("generating keys… (~10 s)");
            timed(&mut || {
                let (keys, upload) = ClientKeys::generate()?;
                write_server_key(&sk_path, &upload.0, force)?;
                write_client_key(&ck_path, &keys, force)?;
                Ok(format!(
                    "key_id:     {}\nclient key: {} (secret, mode 0600)\nserver key: {} ({} MB; upload with `fhe-kv register --server-key {}`)",
                    keys.key_id(),
                    ck_path.display(),
                    sk_path.display(),
                    upload.0.len() / 1_000_000,
                    sk_path.display(),
                )
                .into())
            })
        }
        Command::Register { server_key } => {
            let upload = read_server_key(&server_key)?;
            let mut conn = Connection::connect(&opts)?;
            eprintln!("uploading server key ({} MB)…", upload.len() / 1_000_000);
            timed(&mut || Ok(conn.register_server_key(&upload)?.to_string().into()))
        }
        Command::CreateTable {
            name,
            capacity,
            key_bits,
            value_bits,
            key_type,
            value_type,
            layout,
            bucket_slots,
        } => {
            let mut c = client()?;
            let options = TableOptions {
                layout,
                bucket_slots,
            };
            timed(&mut || {
                let t = if key_type.is_some() || value_type.is_some() {
                    let kt = key_type.unwrap_or(KeyType::Uint(Width::from_bits(key_bits)?));
                    let vt = value_type.unwrap_or(ValueType::Uint(Width::from_bits(value_bits)?));
                    c.create_typed_table_with(&name, capacity, kt, vt, options)?
                } else {
                    c.create_table_with(&name, capacity, key_bits, value_bits, options)?
                };
                let layout = match t.bucket_slots {
                    Some(z) => format!(
                        "bucketed ({z} slots per bucket; load limit {} keys)",
                        t.load_limit
                    ),
                    None => "flat".to_string(),
                };
                Ok(format!(
                    "created {}: capacity {}, {layout}, keys {} ({} bits), values {} ({} bits), key_id {}",
                    t.name,
                    t.capacity,
                    t.key_type,
                    t.key_bits,
                    t.value_type,
                    t.value_bits,
                    t.key_id
                )
                .into())
            })
        }
        Command::Put {
            table,
            key,
            value,
            server_side,
        } => {
            let mut c = client()?;
            timed(&mut || {
                let t = c.table(&table)?;
                let (k, v) = (
                    bulk_io::key_datum(&t, &key)?,
                    bulk_io::value_datum(&t, &value)?,
                );
                let status = if server_side {
                    c.put_server_side(&table, k, v)?
                } else {
                    c.put(&table, k, v)?
                };
                if status == SetStatus::Full {
                    eprintln!(
                        "hint: table {table} is full: key {key} was not stored; add slots with `fhe-kv grow {table} N`"
                    );
                }
                Ok(Outcome {
                    stdout: status.name().to_string(),
                    code: u8::from(status == SetStatus::Full),
                })
            })
        }
        Command::Get {
            table,
            key,
            two_round,
            server_side,
        } => {
            let mut c = client()?;
            timed(&mut || {
                let t = c.table(&table)?;
                let datums = key
                    .iter()
                    .map(|k| bulk_io::key_datum(&t, k))
                    .collect::<Result<Vec<_>, _>>()?;
                let found: Vec<Option<Datum>> = if two_round {
                    c.get_many_two_round(&table, datums)?
                } else if server_side {
                    c.get_many_server_side(&table, datums)?
                } else {
                    c.get_many(&table, datums)?
                };
                let show = |v: &Option<Datum>| match v {
                    Some(v) => v.to_string(),
                    None => "(not found)".to_string(),
                };
                let lines: Vec<String> = key
                    .iter()
                    .zip(&found)
                    .map(|(k, v)| match (g.json, key.len()) {
                        (true, _) => bulk_io::json_get(k, v.as_ref()),
                        (false, 1) => show(v),
                        (false, _) => format!("{k}\t{}", show(v)),
                    })
                    .collect();
                Ok(lines.join("\n").into())
            })
        }
        Command::Delete {
            table,
            key,
            scrub,
            server_side,
        } => {
            let mut c = client()?;
            timed(&mut || {
                let t = c.table(&table)?;
                let key = bulk_io::key_datum(&t, &key)?;
                let status = if server_side {
                    c.delete_server_side(&table, key, scrub)?
                } else if scrub {
                    c.delete_scrub(&table, key)?
                } else {
                    c.delete(&table, key)?
                };
                Ok(status.name().to_string().into())
            })
        }
        Command::Tables => {
            let mut conn = Connection::connect(&opts)?;
            timed(&mut || {
                let tables = conn.tables()?;
                Ok(if g.json {
                    bulk_io::json_tables(&tables)
                } else {
                    format_tables(&tables)
                }
                .into())
            })
        }
        Command::Attach {
            name,
            key_type,
            value_type,
            bucket_slots,
        } => {
            let mut c = client()?;
            timed(&mut || {
                let t = c.attach_table(&name, key_type, value_type, bucket_slots)?;
                Ok(format!(
                    "attached {}: capacity {}, keys {}, values {}, key_id {}",
                    t.name, t.capacity, t.key_type, t.value_type, t.key_id
                )
                .into())
            })
        }
        Command::Grow { table, n } => {
            let mut conn = Connection::connect(&opts)?;
            if conn.table(&table)?.layout == "bucketed" {
                // A rehash: the client key places every key again.
                drop(conn);
                let mut c = client()?;
                let mut bar = bulk_io::progress_bar();
                return timed(&mut || {
                    Ok(c.grow_with_progress(&table, n, &mut bar)?
                        .to_string()
                        .into())
                });
            }
            timed(&mut || Ok(conn.grow(&table, n)?.to_string().into()))
        }
        Command::Import {
            table,
            file,
            format,
        } => {
            let mut c = client()?;
            timed(&mut || {
                bulk_io::import(&mut c, &table, &file, format.as_deref(), g.json).map(Into::into)
            })
        }
        Command::Export {
            table,
            format,
            output,
        } => {
            let mut c = client()?;
            timed(&mut || {
                bulk_io::export(&mut c, &table, &format, output.as_deref()).map(Into::into)
            })
        }
        Command::Info { table } => {
            let keys = read_client_key(&g.client_key)?;
            let table = match table {
                Some(t) => Some(Connection::connect(&opts)?.table(&t)?),
                None => None,
            };
            Ok(bulk_io::info(&keys, table.as_ref(), g.json)?.into())
        }
        Command::Encrypt {
            key,
            value,
            table: Some(table),
            ..
        } => {
            let mut c = client()?;
            timed(&mut || {
                let t = c.table(&table)?;
                let key = key.as_deref().ok_or_else(|| {
                    Error::Usage("with --table, give --key (and --value to encrypt a value)".into())
                })?;
                let k = bulk_io::key_datum(&t, key)?;
                let bytes = match &value {
                    None => c.encrypt_query_key(&table, k)?,
                    Some(v) => c.encrypt_value_for(&table, k, bulk_io::value_datum(&t, v)?)?,
                };
                Ok(format_bytea_hex(&bytes).into())
            })
        }
        Command::Encrypt {
            key, value, bits, ..
        } => {
            let keys = read_client_key(&g.client_key)?;
            let width = Width::from_bits(bits)?;
            let number = |s: &str, what: &str| -> Result<u64> {
                let n: u64 = s.parse().map_err(|_| {
                    Error::Usage(format!(
                        "{what} {s:?} is not a number (use --table for text)"
                    ))
                })?;
                check_fits(n, width, what)?;
                Ok(n)
            };
            timed(&mut || {
                let bytes = match (&key, &value) {
                    (Some(k), None) => keys.encrypt_key(number(k, "key")?, width)?,
                    (None, Some(v)) => keys.encrypt_value(number(v, "value")?, width)?,
                    _ => return Err(Error::Usage(
                        "give exactly one of --key and --value (or --table with --key [--value])"
                            .into(),
                    )),
                };
                Ok(format_bytea_hex(&bytes).into())
            })
        }
        Command::Decrypt { hex, table } => {
            let text = match hex.as_deref() {
                None | Some("-") => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|source| Error::Io {
                            action: "reading",
                            path: "standard input".into(),
                            source,
                        })?;
                    s
                }
                Some(h) => h.to_string(),
            };
            let bytes = parse_bytea_hex(&text)?;
            let is_result = fhe_kv_core::Envelope::parse(&bytes, "ciphertext")
                .map(|e| e.kind == fhe_kv_core::Kind::GetResult)
                .unwrap_or(false);
            match table {
                Some(table) if is_result => {
                    let mut c = client()?;
                    timed(&mut || {
                        Ok(match c.decrypt_result(&table, &bytes)? {
                            Some(v) => format!("found {v}"),
                            None => "not found".to_string(),
                        }
                        .into())
                    })
                }
                _ => {
                    let keys = read_client_key(&g.client_key)?;
                    timed(&mut || Ok(keys.decrypt_any(&bytes)?.into()))
                }
            }
        }
    }
}

fn check_fits(n: u64, width: Width, what: &str) -> Result<()> {
    if n > width.max_value() {
        return Err(Error::Usage(format!(
            "{what} {n} does not fit in {} bits (max {})",
            width.bits(),
            width.max_value()
        )));
    }
    Ok(())
}

fn format_tables(tables: &[TableInfo]) -> String {
    if tables.is_empty() {
        return "(no tables)".to_string();
    }
    let header = [
        "table",
        "key_id",
        "capacity",
        "keys",
        "values",
        "key_bits",
        "value_bits",
        "occupancy",
    ];
    let rows: Vec<[String; 8]> = tables
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.key_id.to_string(),
                t.capacity.to_string(),
                t.key_type.clone(),
                t.value_type.clone(),
                t.key_bits.to_string(),
                t.value_bits.to_string(),
                // The server cannot know it; `fhe-kv export` counts it client-side.
                "unknown".to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(&header)];
    for row in &rows {
        out.push(line(&row.each_ref().map(String::as_str)));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

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
            matches!(cli.command, Command::Put { ref table, ref key, ref value, .. } if table == "prices" && key == "42" && value == "1999")
        );
        let cli = parse(&["--timing", "get", "prices", "42"]).unwrap();
        assert!(cli.global.timing);
        assert!(matches!(cli.command, Command::Get { ref key, .. } if key == &["42"]));
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
            matches!(cli.command, Command::Delete { ref key, scrub: false, server_side: false, .. } if key == "7")
        );
        let cli = parse(&["delete", "--scrub", "t", "7"]).unwrap();
        assert!(matches!(cli.command, Command::Delete { scrub: true, .. }));

        assert!(parse(&["put", "t", "1"]).is_err());
        assert!(parse(&["get", "t", "-1"]).is_err());
        // Keys are parsed against the table's type at run time (see bulk_io::key_datum).
        assert!(parse(&["get", "t", "patient-4711"]).is_ok());
    }

    #[test]
    fn keys_and_values_parse_by_table_type() {
        let mut t = TableInfo {
            name: "t".into(),
            key_id: fhe_kv_client::KeyId([1; 16]),
            capacity: 4,
            key_bits: 64,
            value_bits: 256,
            row_format: "compact-v1".into(),
            key_type: "u64".into(),
            value_type: "bytes:15".into(),
            layout: "flat".into(),
            bucket_slots: None,
            load_limit: 4,
        };
        assert_eq!(bulk_io::key_datum(&t, "42").unwrap(), Datum::Uint(42));
        assert!(bulk_io::key_datum(&t, "forty-two").is_err());
        assert!(bulk_io::key_datum(&t, "-1").is_err());
        assert_eq!(bulk_io::value_datum(&t, "42").unwrap(), Datum::from("42"));
        assert_eq!(
            bulk_io::value_datum(&t, "\\x00ff").unwrap(),
            Datum::Bytes(vec![0, 0xff])
        );
        t.key_type = "text:15".into();
        assert_eq!(
            bulk_io::key_datum(&t, "patient-4711").unwrap(),
            Datum::from("patient-4711")
        );
    }

    #[test]
    fn create_table_defaults_and_width_validation() {
        let cli = parse(&["create-table", "prices", "--capacity", "64"]).unwrap();
        match cli.command {
            Command::CreateTable {
                name,
                capacity,
                key_bits,
                value_bits,
                ..
            } => {
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
            Command::CreateTable {
                key_bits: 16,
                value_bits: 8,
                ..
            }
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
            Command::Encrypt { key: Some(ref k), value: None, bits: 8, table: None } if k == "5"
        ));
        let cli = parse(&["encrypt", "--value", "5"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Encrypt { key: None, value: Some(ref v), bits: 64, .. } if v == "5"
        ));
        // --key and --value together are for --table mode (checked at run time).
        let cli = parse(&["encrypt", "--table", "notes", "--key", "k", "--value", "v"]).unwrap();
        assert!(matches!(cli.command, Command::Encrypt { table: Some(ref t), .. } if t == "notes"));
        assert_eq!(
            parse(&["encrypt", "--bits", "8"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn keygen_register_decrypt_grow() {
        let cli = parse(&["keygen", "--out-dir", "/tmp/k", "--force"]).unwrap();
        assert!(matches!(cli.command, Command::Keygen { force: true, .. }));
        assert!(parse(&["keygen"]).is_err());
        let cli = parse(&["register", "--server-key", "s.key"]).unwrap();
        assert!(matches!(cli.command, Command::Register { .. }));
        let cli = parse(&["decrypt"]).unwrap();
        assert!(matches!(cli.command, Command::Decrypt { hex: None, .. }));
        let cli = parse(&["decrypt", "-"]).unwrap();
        assert!(matches!(cli.command, Command::Decrypt { hex: Some(ref h), .. } if h == "-"));
        let cli = parse(&["decrypt", "\\x4648"]).unwrap();
        assert!(matches!(cli.command, Command::Decrypt { hex: Some(ref h), .. } if h == "\\x4648"));
        let cli = parse(&["grow", "t", "16"]).unwrap();
        assert!(matches!(cli.command, Command::Grow { n: 16, .. }));
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

    #[test]
    fn encrypt_then_decrypt_hex_with_test_key() {
        let (ck, _) = fhe_kv_core::testkeys::test_key_files();
        let keys = ClientKeys::from_bytes(&ck).unwrap();
        let w8 = Width::from_bits(8).unwrap();
        let text = format_bytea_hex(&keys.encrypt_key(200, w8).unwrap());
        assert!(text.starts_with("\\x46484b56"), "envelope magic FHKV");
        // wrapped like a pasted psql cell, without prefix
        let wrapped: String = text.as_bytes()[2..]
            .chunks(60)
            .map(|c| format!("  {}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let bytes = parse_bytea_hex(&wrapped).unwrap();
        let env = fhe_kv_core::Envelope::parse(&bytes, "query key").unwrap();
        assert_eq!(env.kind, fhe_kv_core::Kind::QueryKey);
        assert_eq!(env.bits, 8);
        assert_eq!(env.key_id, keys.key_id());
        // a query key is not something decrypt handles: clear error
        let err = keys.decrypt_any(&bytes).unwrap_err();
        assert!(err.to_string().contains("get_result"), "{err}");
        assert!(check_fits(256, w8, "key").is_err());
        assert!(check_fits(255, w8, "key").is_ok());
    }

    #[test]
    fn tables_are_aligned() {
        let t = TableInfo {
            name: "prices".into(),
            key_id: fhe_kv_client::KeyId([0xab; 16]),
            capacity: 64,
            key_bits: 32,
            value_bits: 64,
            row_format: "v1".into(),
            key_type: "u32".into(),
            value_type: "u64".into(),
            layout: "flat".into(),
            bucket_slots: None,
            load_limit: 64,
        };
        let out = format_tables(&[t]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("table   key_id"), "{out}");
        assert!(lines[1].starts_with("prices  abab"), "{out}");
        assert_eq!(format_tables(&[]), "(no tables)");
    }
}
