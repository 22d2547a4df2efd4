//! The CLI side of keys/values as text: parsing arguments and files, writing CSV/JSON
//! lines, progress bars, `info`.

use fhe_kv_client::{
    parse_bytea_hex, Client, ClientKeys, Datum, Error, KeyType, Result, TableInfo, ValueType,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::Path;

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

pub fn import(
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

pub fn export(c: &mut Client, table: &str, format: &str, output: Option<&Path>) -> Result<String> {
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

pub fn info(keys: &ClientKeys, table: Option<&TableInfo>, json: bool) -> Result<String> {
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
                    (Some(l), Some(z)) => format!(
                        "bucketed: {} buckets of {z} slots in two halves; an operation \
                         bootstraps {} candidate slots",
                        l.buckets(),
                        2 * z
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
