//! `import` and `export`: load CSV/JSON lines into a table and decrypt it back, client-side.

use super::{Context, Outcome};
use clap::Args;
use fhe_kv_client::{parse_bytea_hex, Client, Datum, Error, KeyType, Result, TableInfo, ValueType};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fhe-kv import notes notes.csv\n  fhe-kv import notes notes.jsonl\n\n\
CSV: two columns key,value (an optional header line `key,value`). JSON lines: {\"key\": …, \"value\": …}.\n\
Runs client-side: decrypts every slot, merges, re-encrypts every slot and writes them in one\n\
transaction (no server-side FHE). Interrupted imports write nothing; re-running never duplicates."
)]
pub struct ImportArgs {
    /// Table name.
    pub table: String,
    /// Input file (.csv or .jsonl/.json); `-` reads CSV from stdin.
    pub file: PathBuf,
    /// Input format (default: from the file extension).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    pub format: Option<String>,
}

impl ImportArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let mut c = ctx.client()?;
        ctx.timed(|| {
            import(
                &mut c,
                &self.table,
                &self.file,
                self.format.as_deref(),
                ctx.json,
            )
            .map(Into::into)
        })
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  fhe-kv export notes > notes.csv\n  fhe-kv export notes --format jsonl -o notes.jsonl"
)]
pub struct ExportArgs {
    /// Table name.
    pub table: String,
    /// Output format.
    #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
    pub format: String,
    /// Output file (default: stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl ExportArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let mut c = ctx.client()?;
        ctx.timed(|| {
            export(&mut c, &self.table, &self.format, self.output.as_deref()).map(Into::into)
        })
    }
}

// Keys and values as text, and JSON output: shared with the other commands.

/// `\x<hex>` is raw bytes (as psql prints bytea); anything else is the string's UTF-8.
fn bytes_datum(s: &str) -> Result<Datum> {
    if s.starts_with("\\x") {
        return Ok(Datum::Bytes(parse_bytea_hex(s)?));
    }
    Ok(Datum::Bytes(s.as_bytes().to_vec()))
}

fn uint_datum(s: &str, what: &str) -> Result<Datum> {
    s.trim()
        .parse::<u128>()
        .map(Datum::Uint)
        .map_err(|_| Error::Usage(format!("{what} {s:?} is not a non-negative integer")))
}

pub fn key_datum(t: &TableInfo, s: &str) -> Result<Datum> {
    match KeyType::parse(&t.key_type)? {
        KeyType::Uint(_) => uint_datum(s, "key"),
        KeyType::Text(_) => bytes_datum(s),
    }
}

pub fn value_datum(t: &TableInfo, s: &str) -> Result<Datum> {
    match ValueType::parse(&t.value_type)? {
        ValueType::Uint(_) => uint_datum(s, "value"),
        ValueType::Bytes(_) => bytes_datum(s),
    }
}

fn json_of(d: &Datum) -> serde_json::Value {
    match d {
        Datum::Uint(v) => match u64::try_from(*v) {
            Ok(small) => small.into(),
            Err(_) => v.to_string().into(),
        },
        Datum::Bytes(_) => d.to_string().into(),
    }
}

fn datum_of_json(t: &TableInfo, v: &serde_json::Value, key: bool, line: usize) -> Result<Datum> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(Error::Usage(format!(
                "line {line}: expected a string or number, got {other}"
            )))
        }
    };
    if key {
        key_datum(t, &text)
    } else {
        value_datum(t, &text)
    }
}

pub fn json_get(key: &str, found: Option<&Datum>) -> String {
    serde_json::json!({
        "key": key,
        "found": found.is_some(),
        "value": found.map(json_of),
    })
    .to_string()
}

pub fn json_tables(tables: &[TableInfo]) -> String {
    tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "table": t.name,
                "key_id": t.key_id.to_string(),
                "capacity": t.capacity,
                "key_type": t.key_type,
                "value_type": t.value_type,
                "key_bits": t.key_bits,
                "value_bits": t.value_bits,
                "row_format": t.row_format,
                "layout": t.layout,
                "bucket_slots": t.bucket_slots,
                "load_limit": t.load_limit,
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A progress bar per step on stderr (hidden when stderr is not a terminal).
struct Bars {
    current: Option<(&'static str, ProgressBar)>,
}

impl Bars {
    fn new() -> Bars {
        Bars { current: None }
    }

    fn update(&mut self, step: &'static str, done: usize, total: usize) {
        if self.current.as_ref().map(|(s, _)| *s) != Some(step) {
            if let Some((_, bar)) = self.current.take() {
                bar.finish();
            }
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {pos}/{len} rows, {elapsed} elapsed, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(step);
            self.current = Some((step, bar));
        }
        if let Some((_, bar)) = &self.current {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish();
        }
    }
}

/// A progress callback that draws bars on stderr (for long client-side steps).
pub fn progress_bar() -> impl FnMut(&'static str, usize, usize) {
    let mut bars = Bars::new();
    move |step, done, total| {
        bars.update(step, done, total);
        if done == total && step == "upload" {
            bars.finish();
        }
    }
}

fn read_entries(t: &TableInfo, file: &Path, format: &str) -> Result<Vec<(Datum, Datum)>> {
    let io_err = |source| Error::Io {
        action: "reading",
        path: file.to_path_buf(),
        source,
    };
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(io_err)?;
        s
    } else {
        std::fs::read_to_string(file).map_err(io_err)?
    };
    let mut out = Vec::new();
    if format == "jsonl" {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::Usage(format!("line {}: not JSON: {e}", i + 1)))?;
            let (Some(k), Some(val)) = (v.get("key"), v.get("value")) else {
                return Err(Error::Usage(format!(
                    "line {}: expected {{\"key\": …, \"value\": …}}",
                    i + 1
                )));
            };
            out.push((
                datum_of_json(t, k, true, i + 1)?,
                datum_of_json(t, val, false, i + 1)?,
            ));
        }
        return Ok(out);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::Usage(format!("CSV: {e}")))?;
        if record.len() != 2 {
            return Err(Error::Usage(format!(
                "CSV line {}: expected 2 fields (key,value), got {}",
                i + 1,
                record.len()
            )));
        }
        if i == 0 && &record[0] == "key" && &record[1] == "value" {
            continue;
        }
        let at = |e: Error| Error::Usage(format!("CSV line {}: {e}", i + 1));
        out.push((
            key_datum(t, &record[0]).map_err(at)?,
            value_datum(t, &record[1]).map_err(at)?,
        ));
    }
    Ok(out)
}

fn import(
    c: &mut Client,
    table: &str,
    file: &Path,
    format: Option<&str>,
    json: bool,
) -> Result<String> {
    let t = c.table(table)?;
    let format = format.unwrap_or_else(|| match file.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json" | "ndjson") => "jsonl",
        _ => "csv",
    });
    let entries = read_entries(&t, file, format)?;
    eprintln!(
        "importing {} entries into {} ({} slots; every slot is re-encrypted)…",
        entries.len(),
        t.name,
        t.capacity
    );
    let mut bars = Bars::new();
    let report = c.import(table, &entries, &mut |step, done, total| {
        bars.update(step, done, total)
    });
    bars.finish();
    let r = report?;
    Ok(if json {
        serde_json::json!({
            "table": t.name, "inserted": r.inserted, "updated": r.updated,
            "superseded": r.superseded, "slots_rewritten": r.slots_rewritten,
        })
        .to_string()
    } else {
        format!(
            "imported into {}: {} inserted, {} updated, {} superseded by a later line; {} slots rewritten",
            t.name, r.inserted, r.updated, r.superseded, r.slots_rewritten
        )
    })
}

fn export(c: &mut Client, table: &str, format: &str, output: Option<&Path>) -> Result<String> {
    let mut bars = Bars::new();
    let entries = c.export(table, &mut |step, done, total| {
        bars.update(step, done, total)
    });
    bars.finish();
    let entries = entries?;
    let mut out: Vec<u8> = Vec::new();
    if format == "jsonl" {
        for (k, v) in &entries {
            let line = serde_json::json!({"key": json_of(k), "value": json_of(v)});
            writeln!(out, "{line}").expect("writing to memory");
        }
    } else {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(["key", "value"])
            .and_then(|_| {
                entries
                    .iter()
                    .try_for_each(|(k, v)| w.write_record([k.to_string(), v.to_string()]))
            })
            .map_err(|e| Error::Usage(format!("CSV: {e}")))?;
        w.flush().map_err(|source| Error::Io {
            action: "writing",
            path: "CSV".into(),
            source,
        })?;
    }
    match output {
        Some(path) => {
            std::fs::write(path, &out).map_err(|source| Error::Io {
                action: "writing",
                path: path.to_path_buf(),
                source,
            })?;
            eprintln!("exported {} entries to {}", entries.len(), path.display());
            Ok(String::new())
        }
        None => {
            std::io::stdout()
                .write_all(&out)
                .map_err(|source| Error::Io {
                    action: "writing",
                    path: "standard output".into(),
                    source,
                })?;
            eprintln!("exported {} entries", entries.len());
            Ok(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableInfo {
        TableInfo {
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
            writes: None,
        }
    }

    #[test]
    fn keys_and_values_parse_by_table_type() {
        let mut t = table();
        assert_eq!(key_datum(&t, "42").unwrap(), Datum::Uint(42));
        assert!(key_datum(&t, "forty-two").is_err());
        assert!(key_datum(&t, "-1").is_err());
        assert_eq!(value_datum(&t, "42").unwrap(), Datum::from("42"));
        assert_eq!(
            value_datum(&t, "\\x00ff").unwrap(),
            Datum::Bytes(vec![0, 0xff])
        );
        t.key_type = "text:15".into();
        assert_eq!(
            key_datum(&t, "patient-4711").unwrap(),
            Datum::from("patient-4711")
        );
    }

    #[test]
    fn json_tables_show_the_layout() {
        let flat = table();
        let bucketed = TableInfo {
            name: "b".into(),
            capacity: 48,
            layout: "bucketed".into(),
            bucket_slots: Some(6),
            load_limit: 32,
            writes: None,
            ..table()
        };
        let out = json_tables(&[flat, bucketed]);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["table"], "t");
        assert_eq!(lines[0]["key_type"], "u64");
        assert_eq!(lines[0]["layout"], "flat");
        assert_eq!(lines[0]["bucket_slots"], serde_json::Value::Null);
        assert_eq!(lines[0]["load_limit"], 4);
        assert_eq!(lines[1]["layout"], "bucketed");
        assert_eq!(lines[1]["bucket_slots"], 6);
        assert_eq!(lines[1]["load_limit"], 32);
    }
}
