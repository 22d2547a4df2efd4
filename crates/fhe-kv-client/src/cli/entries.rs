//! `put`, `get` and `delete`: write, look up and remove single keys with private operations.

use super::bulk::{json_get, key_datum, value_datum};
use super::{Context, Outcome};
use clap::Args;
use fhe_kv_client::{Datum, Result, SetStatus};

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  fhe-kv put prices 42 1999\n\n\
Prints `full` and exits with status 1 when KEY is new and the table has no free slot\n\
(nothing is written; add slots with `fhe-kv grow`).")]
pub struct PutArgs {
    /// Table name.
    pub table: String,
    /// Key: a number for uN keys, a string for text keys (\\x<hex> for raw bytes).
    pub key: String,
    /// Value: a number for uN values, a string for bytes:N values (\\x<hex> for raw bytes).
    pub value: String,
    /// On a bucketed table, run fhe_set (the server computes the upsert, ~2,200
    /// bootstraps) instead of the key owner's read-and-write (none).
    #[arg(long)]
    pub server_side: bool,
}

impl PutArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let PutArgs {
            table,
            key,
            value,
            server_side,
        } = self;
        let mut c = ctx.client()?;
        ctx.timed(|| {
            let t = c.table(&table)?;
            let (k, v) = (key_datum(&t, &key)?, value_datum(&t, &value)?);
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
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  fhe-kv get prices 42\n  fhe-kv get prices 42 43 44\n  fhe-kv get --two-round prices 42"
)]
pub struct GetArgs {
    /// Table name.
    pub table: String,
    /// Key(s) to look up.
    #[arg(required = true, num_args = 1..)]
    pub key: Vec<String>,
    /// Use the two-round GET (fhe_locate, then fhe_fetch): about half the server work
    /// of the one-round GET, at the cost of a second round trip (docs/two-round-get.md).
    /// Bucketed tables always read their key's candidate buckets in one round.
    #[arg(long)]
    pub two_round: bool,
    /// Run fhe_get / fhe_get_many: the server computes the encrypted answer (on a
    /// bucketed table instead of the bucket read).
    #[arg(long, conflicts_with = "two_round")]
    pub server_side: bool,
}

impl GetArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let GetArgs {
            table,
            key,
            two_round,
            server_side,
        } = self;
        let mut c = ctx.client()?;
        ctx.timed(|| {
            let t = c.table(&table)?;
            let datums = key
                .iter()
                .map(|k| key_datum(&t, k))
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
                .map(|(k, v)| match (ctx.json, key.len()) {
                    (true, _) => json_get(k, v.as_ref()),
                    (false, 1) => show(v),
                    (false, _) => format!("{k}\t{}", show(v)),
                })
                .collect();
            Ok(lines.join("\n").into())
        })
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fhe-kv delete prices 42\n  fhe-kv delete --scrub prices 42\n\n\
The freed slot keeps the deleted pair, encrypted and flagged vacant, until an insert reuses it.\n\
--scrub also zeroes every vacant slot's key and value (about 1.6x the cost)."
)]
pub struct DeleteArgs {
    /// Table name.
    pub table: String,
    /// Key to delete.
    pub key: String,
    /// Also zero the contents of every vacant slot (this one and earlier deletes).
    #[arg(long)]
    pub scrub: bool,
    /// On a bucketed table, run fhe_delete (the server computes it) instead of the key
    /// owner's read-and-write.
    #[arg(long)]
    pub server_side: bool,
}

impl DeleteArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let DeleteArgs {
            table,
            key,
            scrub,
            server_side,
        } = self;
        let mut c = ctx.client()?;
        ctx.timed(|| {
            let t = c.table(&table)?;
            let key = key_datum(&t, &key)?;
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
}
