//! `create-table`, `tables`, `grow`, `attach`, `info`: create, list, enlarge, re-attach, describe.

use super::bulk::{json_tables, progress_bar};
use super::{parse_bits, Context, Outcome};
use clap::Args;
use fhe_kv_client::{
    ClientKeys, KeyType, Layout, Result, TableInfo, TableOptions, ValueType, Width,
};
use fhe_kv_core::bucket::SlotFormat;

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fhe-kv create-table prices --capacity 64 --key-bits 32\n\n\
The server key must have been registered first (`fhe-kv register`). Every operation\n\
touches all slots, so its cost grows with the capacity; `fhe-kv grow` adds slots later."
)]
pub struct CreateTableArgs {
    /// Table name (may be schema-qualified).
    pub name: String,
    /// Number of slots (the maximum number of keys).
    #[arg(long, value_name = "N")]
    pub capacity: u32,
    /// Width of integer keys: 8, 16, 32, 64, 128 or 256.
    #[arg(long, default_value_t = 64, value_name = "BITS", value_parser = parse_bits,
          conflicts_with = "key_type")]
    pub key_bits: u32,
    /// Width of integer values: 8, 16, 32, 64, 128 or 256.
    #[arg(long, default_value_t = 64, value_name = "BITS", value_parser = parse_bits,
          conflicts_with = "value_type")]
    pub value_bits: u32,
    /// Key type: text:K (strings/bytes of up to K bytes, stored as keyed tags) or u8…u256.
    #[arg(long, value_name = "TYPE", value_parser = |s: &str| KeyType::parse(s).map_err(|e| e.to_string()))]
    pub key_type: Option<KeyType>,
    /// Value type: bytes:N (byte strings of up to N bytes; UTF-8 text works) or u8…u256.
    #[arg(long, value_name = "TYPE", value_parser = |s: &str| ValueType::parse(s).map_err(|e| e.to_string()))]
    pub value_type: Option<ValueType>,
    /// auto (bucketed from four buckets' worth of slots up, if the key supports it),
    /// flat (every operation touches every slot), bucketed (only the key's two
    /// candidate buckets; a SET may answer `full` above the load limit), leveled (every
    /// slot at ~20x fewer bootstraps than flat, at most 1,024 slots; SET in two rounds;
    /// one GLWE per slot), leveled-v1 (leveled with lookup-table rows: a faster GET,
    /// three times the bytes after a SET) or bucketed-leveled (bucketed, each slot
    /// leveled: the server's GET and DELETE ~10x cheaper per candidate slot; SET by the
    /// key owner only).
    #[arg(long, default_value = "auto", value_parser = |s: &str| Layout::parse(s).map_err(|e| e.to_string()))]
    pub layout: Layout,
    /// Slots per bucket of a bucketed table (default 6).
    #[arg(long, value_name = "Z")]
    pub bucket_slots: Option<u32>,
}

impl CreateTableArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let CreateTableArgs {
            name,
            capacity,
            key_bits,
            value_bits,
            key_type,
            value_type,
            layout,
            bucket_slots,
        } = self;
        let mut c = ctx.client()?;
        let options = TableOptions {
            layout,
            bucket_slots,
        };
        ctx.timed(|| {
            let t = if key_type.is_some() || value_type.is_some() {
                let kt = key_type.unwrap_or(KeyType::Uint(Width::from_bits(key_bits)?));
                let vt = value_type.unwrap_or(ValueType::Uint(Width::from_bits(value_bits)?));
                c.create_typed_table_with(&name, capacity, kt, vt, options)?
            } else {
                c.create_table_with(&name, capacity, key_bits, value_bits, options)?
            };
            let layout = match t.bucket_slots {
                Some(z) => format!(
                    "bucketed{} ({z} slots per bucket; load limit {} keys)",
                    match t.row_format.as_str() {
                        fhe_kv_core::bucket::ROW_FORMAT_BUCKET_LEVELED_V1 => ", leveled slots",
                        _ => "",
                    },
                    t.load_limit
                ),
                None => t.layout.clone(),
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
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  fhe-kv tables")]
pub struct TablesArgs {}

impl TablesArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let mut conn = ctx.connect()?;
        ctx.timed(|| {
            let tables = conn.tables()?;
            Ok(if ctx.json {
                json_tables(&tables)
            } else {
                format_tables(&tables)
            }
            .into())
        })
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  fhe-kv grow prices 64\n\n\
A bucketed table's keys move to new buckets: the client decrypts every bucket, places\n\
every key again and writes the table in one transaction (no server-side FHE).")]
pub struct GrowArgs {
    /// Table name.
    pub table: String,
    /// Number of slots to add.
    #[arg(value_name = "N")]
    pub n: u32,
}

impl GrowArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let GrowArgs { table, n } = self;
        let mut conn = ctx.connect()?;
        if conn.table(&table)?.layout == "bucketed" {
            // A rehash: the client key places every key again.
            drop(conn);
            let mut c = ctx.client()?;
            let mut bar = progress_bar();
            return ctx.timed(|| {
                Ok(c.grow_with_progress(&table, n, &mut bar)?
                    .to_string()
                    .into())
            });
        }
        ctx.timed(|| Ok(conn.grow(&table, n)?.to_string().into()))
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  fhe-kv refresh labs\n\n\
Every write to a bucketed table (yours, and the server's SET and DELETE) adds noise to\n\
every bucket; past the table's budget (`fhe-kv info` shows it) the server refuses writes.\n\
This decrypts every bucket and writes it again freshly encrypted, in one transaction\n\
(no server-side FHE), which sets the count back to 0.")]
pub struct RefreshArgs {
    /// Table name.
    pub table: String,
}

impl RefreshArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let mut c = ctx.client()?;
        let mut bar = progress_bar();
        ctx.timed(|| {
            let buckets = c.refresh_with_progress(&self.table, &mut bar)?;
            Ok(format!("refreshed {}: {buckets} buckets re-sealed", self.table).into())
        })
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fhe-kv attach prices\n  fhe-kv attach notes --key-type text:15 --value-type bytes:15\n\n\
Give the types the table was created with (`fhe-kv tables` on the source database, or the\n\
table's COMMENT). Only the table's owner can attach it; every row must be a row of your key."
)]
pub struct AttachArgs {
    /// Table name (may be schema-qualified).
    pub name: String,
    /// Key type the table was created with: text:K or u8…u256.
    #[arg(long, default_value = "u64", value_name = "TYPE", value_parser = |s: &str| KeyType::parse(s).map_err(|e| e.to_string()))]
    pub key_type: KeyType,
    /// Value type the table was created with: bytes:N or u8…u256.
    #[arg(long, default_value = "u64", value_name = "TYPE", value_parser = |s: &str| ValueType::parse(s).map_err(|e| e.to_string()))]
    pub value_type: ValueType,
    /// For a bucketed table: its slots per bucket (the table's COMMENT says it).
    #[arg(long, value_name = "Z")]
    pub bucket_slots: Option<u32>,
}

impl AttachArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let AttachArgs {
            name,
            key_type,
            value_type,
            bucket_slots,
        } = self;
        let mut c = ctx.client()?;
        ctx.timed(|| {
            let t = c.attach_table(&name, key_type, value_type, bucket_slots)?;
            Ok(format!(
                "attached {}: capacity {}, keys {}, values {}, key_id {}",
                t.name, t.capacity, t.key_type, t.value_type, t.key_id
            )
            .into())
        })
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  fhe-kv info\n  fhe-kv info notes")]
pub struct InfoArgs {
    /// A table to describe as well.
    pub table: Option<String>,
}

impl InfoArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let keys = ctx.client_keys()?;
        let table = match self.table {
            Some(t) => Some(ctx.connect()?.table(&t)?),
            None => None,
        };
        Ok(info(&keys, table.as_ref(), ctx.json)?.into())
    }
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
        "layout",
        "load_limit",
    ];
    let rows: Vec<[String; 9]> = tables
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
                t.layout.clone(),
                t.load_limit.to_string(),
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

fn info(keys: &ClientKeys, table: Option<&TableInfo>, json: bool) -> Result<String> {
    let params = "PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 + COMP_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 (TFHE-rs 1.8.2)";
    let mut fields = vec![
        ("key_id".to_string(), keys.key_id().to_string()),
        ("parameters".to_string(), params.to_string()),
    ];
    if let Some(t) = table {
        let codec = t.codec()?;
        let enc_key = keys.encrypt_key_le(&vec![0; codec.key_width.bytes()], codec.key_width)?;
        let enc_value =
            keys.encrypt_value_le(&vec![0; codec.value_width.bytes()], codec.value_width)?;
        let layout = t.bucket_layout()?;
        let (enc_key, stored_per_slot) = match &layout {
            Some(layout) => {
                let key = keys.encrypt_bucket_key_le(layout, &vec![0; codec.key_width.bytes()])?;
                let bucket = keys.seal_bucket(
                    layout,
                    &vec![
                        fhe_kv_core::ClearRow::vacant(codec.key_width, codec.value_width);
                        layout.bucket_slots
                    ],
                )?;
                (key, bucket.len() / layout.bucket_slots)
            }
            None if t.is_leveled() => {
                let rows = t.row_layout()?;
                let key = keys.leveled_query_key(rows.key, &vec![0; codec.key_width.bytes()])?;
                // As the key owner writes it (import); a row a SET wrote keeps computed
                // masks and is larger (docs/leveled.md).
                (key, keys.leveled_row(rows, None)?.len())
            }
            None => {
                let stored = keys.row_sealer().seal(&fhe_kv_core::ClearRow::vacant(
                    codec.key_width,
                    codec.value_width,
                ))?;
                (enc_key, stored.len())
            }
        };
        fields.extend([
            ("table".into(), t.name.clone()),
            ("table_key_id".into(), t.key_id.to_string()),
            ("capacity".into(), t.capacity.to_string()),
            (
                "layout".into(),
                match (&layout, t.bucket_slots) {
                    (Some(l), Some(z)) if l.format == SlotFormat::Leveled => format!(
                        "bucketed, leveled slots ({}): {} buckets of {z} slots in two halves; \
                         the server's GET and DELETE bootstrap {} candidate slots, ~8 each (u64 \
                         keys); SET by the key owner only",
                        t.row_format,
                        l.buckets(),
                        2 * z
                    ),
                    (Some(l), Some(z)) => format!(
                        "bucketed: {} buckets of {z} slots in two halves; an operation \
                         bootstraps {} candidate slots",
                        l.buckets(),
                        2 * z
                    ),
                    _ if t.is_leveled() => format!(
                        "leveled ({}): every operation touches every slot, ~6-8 bootstraps \
                         each (u64 keys); SET in two rounds",
                        t.row_format
                    ),
                    _ => "flat: every operation bootstraps every slot".to_string(),
                },
            ),
            (
                "load limit".into(),
                match layout {
                    Some(_) => format!(
                        "{} keys (a SET refuses a new key with probability < 1e-9 up to this load)",
                        t.load_limit
                    ),
                    None => format!("{} keys (every slot)", t.load_limit),
                },
            ),
            (
                "keys".into(),
                format!("{} ({} bits)", t.key_type, t.key_bits),
            ),
            (
                "values".into(),
                format!("{} ({} bits)", t.value_type, t.value_bits),
            ),
            ("encrypted key bytes".into(), enc_key.len().to_string()),
            ("encrypted value bytes".into(), enc_value.len().to_string()),
            ("stored bytes per slot".into(), stored_per_slot.to_string()),
        ]);
        if let (Some(l), Some(writes)) = (&layout, t.writes) {
            fields.push((
                "write-backs".into(),
                format!(
                    "{writes} of {} since the rows were last sealed (writes past it are \
                     refused; `fhe-kv refresh {}` re-seals them)",
                    l.write_budget(),
                    t.name
                ),
            ));
        }
    }
    Ok(if json {
        serde_json::Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.replace(' ', "_"), v.into()))
                .collect(),
        )
        .to_string()
    } else {
        fields
            .iter()
            .map(|(k, v)| format!("{k:<22} {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned() {
        let flat = TableInfo {
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
            writes: None,
        };
        let bucketed = TableInfo {
            name: "notes".into(),
            capacity: 1536,
            key_type: "text:15".into(),
            value_type: "bytes:15".into(),
            key_bits: 64,
            value_bits: 128,
            layout: "bucketed".into(),
            bucket_slots: Some(6),
            load_limit: 1024,
            writes: None,
            ..flat.clone()
        };
        let out = format_tables(std::slice::from_ref(&flat));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("table   key_id"), "{out}");
        assert!(lines[0].ends_with("layout  load_limit"), "{out}");
        assert!(lines[1].starts_with("prices  abab"), "{out}");
        assert!(lines[1].ends_with("  flat    64"), "{out}");

        let out = format_tables(&[flat, bucketed]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].ends_with("value_bits  layout    load_limit"),
            "{out}"
        );
        assert!(lines[1].ends_with("64          flat      64"), "{out}");
        assert!(lines[2].starts_with("notes   abab"), "{out}");
        assert!(lines[2].ends_with("128         bucketed  1024"), "{out}");
        // the columns line up
        let at = |line: &str, s: &str| line.find(s).unwrap();
        assert_eq!(at(lines[0], "layout"), at(lines[1], "flat"));
        assert_eq!(at(lines[0], "layout"), at(lines[2], "bucketed"));
        assert_eq!(at(lines[0], "load_limit"), at(lines[2], "1024"));
        assert_eq!(format_tables(&[]), "(no tables)");
    }
}
