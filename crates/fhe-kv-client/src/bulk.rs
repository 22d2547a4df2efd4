//! Bulk import and export, done by the key owner without any server-side FHE.
//!
//! A private SET touches every slot, so loading `n` entries with SETs costs `n × capacity`
//! row operations (hours for a few hundred rows). The key owner can do better: it holds
//! the secret key, so it reads every row, decrypts it locally (one GLWE decryption, no
//! bootstrap), merges the new entries, **re-encrypts every slot** with fresh randomness and
//! writes them all back with `fhe_kv.replace_all_rows` — in one transaction that holds the
//! same writer lock a SET takes. The server sees exactly what a SET shows it: every slot
//! rewritten with fresh ciphertexts. An interrupted import commits nothing, and because an
//! import is an upsert by key, re-running it never duplicates entries.

use crate::client::{Client, TableInfo};
use crate::error::{Error, Result};
use fhe_kv_core::client_rows::ClearRow;
use fhe_kv_core::keys::ClientKeys;
use fhe_kv_core::leveled::RowLayout;
use fhe_kv_core::{Datum, TableCodec};
use std::collections::HashMap;

/// Progress of a long step: (step name, done, total). Called from the caller's thread.
pub type Progress<'a> = &'a mut dyn FnMut(&'static str, usize, usize);

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub inserted: usize,
    pub updated: usize,
    /// Input lines whose key appeared again later in the input (the later value wins).
    pub superseded: usize,
    pub slots_rewritten: usize,
}

/// One entry of a table: key and value.
pub type Entry = (Datum, Datum);

impl Client {
    /// Every row of the data table in index order: slots, or buckets of a bucketed table.
    fn rows_in_slot_order(
        db: &mut impl postgres::GenericClient,
        info: &TableInfo,
    ) -> Result<Vec<Vec<u8>>> {
        let (col, expected) = match info.bucket_layout()? {
            Some(layout) => ("bucket", layout.buckets()),
            None => ("slot", info.capacity as usize),
        };
        let rows = db.query(
            &format!("SELECT row FROM {} ORDER BY {col}", info.name),
            &[],
        )?;
        if rows.len() != expected {
            return Err(Error::Usage(format!(
                "table {} has {} {col}s but its catalog entry says {expected}",
                info.name,
                rows.len(),
            )));
        }
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Every entry of `table`, in slot order (reads a consistent snapshot).
    pub fn export(&mut self, table: &str, progress: Progress<'_>) -> Result<Vec<Entry>> {
        let info = self.table(table)?;
        let codec = info.codec()?;
        let rows = {
            let mut tx = self
                .postgres()
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let rows = Self::rows_in_slot_order(&mut tx, &info)?;
            tx.commit()?;
            rows
        };
        if let Some(layout) = info.bucket_layout()? {
            let placement = open_buckets(self.keys(), &info, &layout, &rows, progress)?;
            return placement
                .entries()
                .map(|(k, v)| entry_of(&codec, k, v))
                .collect();
        }
        let slots = SlotRows::of(self.keys(), &info)?;
        Ok(open_rows(&slots, &info, &codec, &rows, progress)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Upsert `entries` into `table` (later duplicates win). Fails with nothing written if
    /// the new keys do not fit the free slots (grow the table first).
    pub fn import(
        &mut self,
        table: &str,
        entries: &[Entry],
        progress: Progress<'_>,
    ) -> Result<ImportReport> {
        let info = self.table(table)?;
        let codec = info.codec()?;
        // Validate (and encode) every entry before touching the database.
        let tags = self.tags().clone();
        for (i, (k, v)) in entries.iter().enumerate() {
            codec
                .key_plain(&tags, k)
                .and_then(|_| codec.value_plain(k, v))
                .map_err(|e| Error::Usage(format!("entry {}: {e}", i + 1)))?;
        }
        // The last occurrence of a key wins.
        let mut latest: HashMap<&Datum, &Datum> = HashMap::new();
        let mut order: Vec<&Datum> = Vec::new();
        for (k, v) in entries {
            if latest.insert(k, v).is_none() {
                order.push(k);
            }
        }
        let mut report = ImportReport {
            superseded: entries.len() - order.len(),
            ..ImportReport::default()
        };

        let name = info.name.clone();
        let (db, keys) = self.parts_mut();
        let sealer = SlotRows::of(keys, &info)?;
        let mut tx = db.transaction()?;
        tx.batch_execute(&format!("LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"))?;
        let rows = Self::rows_in_slot_order(&mut tx, &info)?;
        if let Some(layout) = info.bucket_layout()? {
            // Bucketed: replay the server's SET rule for every entry, then re-seal every
            // bucket (fresh encryptions), exactly what SETs would leave.
            let mut placement = open_buckets(keys, &info, &layout, &rows, progress)?;
            drop(rows);
            let existing: std::collections::HashSet<Vec<u8>> =
                placement.entries().map(|(k, _)| k.clone()).collect();
            for k in order {
                let plain_key = codec.key_plain(&tags, k)?;
                let value = codec.value_plain(k, latest[k])?;
                if existing.contains(&plain_key) {
                    report.updated += 1;
                } else {
                    report.inserted += 1;
                }
                if !placement.upsert(keys, plain_key, value)? {
                    return Err(Error::Usage(format!(
                        "table {name}: both candidate buckets of {k} are full ({} keys placed, \
                         load limit {}); nothing was written (grow it with `fhe-kv grow`)",
                        placement.entries().count(),
                        info.load_limit
                    )));
                }
            }
            let sealed = placement.seal(keys, |done, total| progress("encrypt", done, total))?;
            progress("upload", 0, 1);
            tx.query_one(
                "SELECT fhe_kv.replace_all_rows($1::text::regclass, $2::bytea[])",
                &[&name, &sealed],
            )?;
            tx.commit()?;
            progress("upload", 1, 1);
            report.slots_rewritten = layout.capacity();
            return Ok(report);
        }
        let mut slots = open_rows(&sealer, &info, &codec, &rows, progress)?;
        drop(rows);

        let slot_of: HashMap<Datum, usize> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|(k, _)| (k.clone(), i)))
            .collect();
        let mut free = (0..slots.len())
            .rev()
            .filter(|&i| slots[i].is_none())
            .collect::<Vec<_>>();
        for k in order {
            let v = latest[k];
            let i = match slot_of.get(k) {
                Some(&i) => {
                    report.updated += 1;
                    i
                }
                None => {
                    report.inserted += 1;
                    free.pop().ok_or_else(|| {
                        Error::Usage(format!(
                            "table {name} is full ({} slots): the input has more new keys than free slots; nothing was written (grow it with `fhe-kv grow`)",
                            slots.len()
                        ))
                    })?
                }
            };
            slots[i] = Some((k.clone(), v.clone()));
        }

        let total = slots.len();
        let mut sealed = Vec::with_capacity(total);
        for (i, slot) in slots.iter().enumerate() {
            let clear = match slot {
                None => None,
                Some((k, v)) => Some((codec.key_plain(&tags, k)?, codec.value_plain(k, v)?)),
            };
            sealed.push(sealer.seal(&codec, clear)?);
            progress("encrypt", i + 1, total);
        }
        progress("upload", 0, 1);
        tx.query_one(
            "SELECT fhe_kv.replace_all_rows($1::text::regclass, $2::bytea[])",
            &[&name, &sealed],
        )?;
        tx.commit()?;
        progress("upload", 1, 1);
        report.slots_rewritten = total;
        Ok(report)
    }
}

impl Client {
    /// Grow a bucketed table to hold `n` more keys within its load limit: the key owner decrypts every
    /// bucket, places every entry again into the larger table (the server cannot: it does
    /// not know which bucket a key belongs to) and writes the new rows with
    /// `fhe_kv.rehash`, all in one transaction under the writer lock. Returns the new
    /// capacity. Fails with nothing written if an entry has no room (grow more).
    pub(crate) fn grow_bucketed(
        &mut self,
        info: &TableInfo,
        n: u32,
        progress: Progress<'_>,
    ) -> Result<u32> {
        let old = info
            .bucket_layout()?
            .expect("grow_bucketed is for bucketed tables");
        // Room for `n` more keys within the load limit, and never fewer buckets.
        let keys = info.load_limit as usize + n as usize;
        let per_half = fhe_kv_core::bucket::buckets_for_keys(old.bucket_slots, keys)
            .max(old.buckets_per_half + 1);
        self.rehash_into(info, &old, per_half, progress)
    }

    /// Re-seal every bucket of a bucketed table with fresh encryptions, in the same
    /// buckets: what [`Client::grow`] does without growing. Every write-back (the key
    /// owner's writes, the server's SETs and DELETEs) adds noise to every bucket, and the
    /// extension refuses writes past the table's budget
    /// ([`fhe_kv_core::bucket::BucketLayout::write_budget`], ~2·10^5 write-backs for a
    /// 100,000-slot table of leveled slots, > 10^6 for `bucket-v1`); this sets the count
    /// back to 0. Returns the buckets written. Readers keep reading meanwhile; writers
    /// wait for the writer lock.
    pub fn refresh(&mut self, table: &str) -> Result<u32> {
        self.refresh_with_progress(table, &mut |_, _, _| {})
    }

    /// [`Client::refresh`] reporting its progress.
    pub fn refresh_with_progress(&mut self, table: &str, progress: Progress<'_>) -> Result<u32> {
        let info = self.table(table)?;
        let Some(layout) = info.bucket_layout()? else {
            return Err(Error::Usage(format!(
                "table {}: refresh is for bucketed tables; a {} table's writes re-encrypt the \
                 rows they touch (fhe-kv import re-seals every row)",
                info.name, info.layout
            )));
        };
        self.rehash_into(&info, &layout, layout.buckets_per_half, progress)?;
        Ok(layout.buckets() as u32)
    }

    /// Decrypt every bucket, place every entry again into `per_half` buckets per half of
    /// the same slots and slot format, and write the fresh rows with `fhe_kv.rehash`, all
    /// in one transaction under the writer lock. Returns the new capacity.
    fn rehash_into(
        &mut self,
        info: &TableInfo,
        old: &fhe_kv_core::bucket::BucketLayout,
        per_half: usize,
        progress: Progress<'_>,
    ) -> Result<u32> {
        // Same slots, same slot format: only the number of buckets may change.
        let new = fhe_kv_core::bucket::BucketLayout::of_format(
            old.key,
            old.value,
            old.bucket_slots,
            per_half,
            old.format,
        )?;
        let name = info.name.clone();
        let (db, keys) = self.parts_mut();
        let mut tx = db.transaction()?;
        tx.batch_execute(&format!("LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"))?;
        let rows = Self::rows_in_slot_order(&mut tx, info)?;
        let current = open_buckets(keys, info, old, &rows, progress)?;
        drop(rows);
        let mut placement = fhe_kv_core::bucket::client::Placement::new(new);
        for (k, v) in current.entries() {
            if !placement.upsert(keys, k.clone(), v.clone())? {
                return Err(Error::Usage(format!(
                    "table {name}: {} slots are not enough to place every key again; nothing \
                     was written (grow by more)",
                    new.capacity()
                )));
            }
        }
        let sealed = placement.seal(keys, |done, total| progress("encrypt", done, total))?;
        progress("upload", 0, 1);
        let row = tx.query_one(
            "SELECT fhe_kv.rehash($1::text::regclass, $2::int4, $3::bytea[])::int4",
            &[&name, &(new.buckets_per_half as i32), &sealed],
        )?;
        tx.commit()?;
        progress("upload", 1, 1);
        let capacity: i32 = row.try_get(0)?;
        Ok(capacity as u32)
    }
}

/// Decrypt every bucket of a bucketed table into a placement (key owner, no FHE).
fn open_buckets(
    keys: &fhe_kv_core::keys::ClientKeys,
    info: &TableInfo,
    layout: &fhe_kv_core::bucket::BucketLayout,
    rows: &[Vec<u8>],
    progress: Progress<'_>,
) -> Result<fhe_kv_core::bucket::client::Placement> {
    let mut opened = Vec::with_capacity(rows.len());
    for (i, bytes) in rows.iter().enumerate() {
        opened.push(
            keys.open_bucket(layout, bytes)
                .map_err(|e| Error::Usage(format!("table {}, bucket {i}: {e}", info.name)))?,
        );
        progress("decrypt", i + 1, rows.len());
    }
    Ok(fhe_kv_core::bucket::client::Placement::from_rows(
        *layout, opened,
    )?)
}

/// A stored (key integer, value integer) pair as the typed entry it encodes.
fn entry_of(codec: &TableCodec, key: &[u8], value: &[u8]) -> Result<Entry> {
    let (stored_key, value) = codec.decode_value(value)?;
    let key = match stored_key {
        Some(k) => k,
        None => codec.decode_uint_key(key)?,
    };
    Ok((key, value))
}

/// How the key owner opens and seals the rows of a table with one row per slot: the
/// compact rows of a flat table, or the leveled rows of a leveled one.
enum SlotRows<'a> {
    Compact(fhe_kv_core::RowSealer<'a>),
    Leveled(&'a ClientKeys, RowLayout),
}

impl<'a> SlotRows<'a> {
    fn of(keys: &'a ClientKeys, info: &TableInfo) -> Result<SlotRows<'a>> {
        Ok(if info.is_leveled() {
            SlotRows::Leveled(keys, info.row_layout()?)
        } else {
            SlotRows::Compact(keys.row_sealer())
        })
    }

    /// A stored row: `Some((key, value))` integers (little-endian), or `None` if vacant.
    fn open(&self, codec: &TableCodec, bytes: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(match self {
            SlotRows::Compact(sealer) => {
                let row = sealer.open(bytes, codec.key_width, codec.value_width)?;
                row.occupied.then_some((row.key, row.value))
            }
            SlotRows::Leveled(keys, layout) => keys.open_leveled_row(*layout, bytes)?,
        })
    }

    /// A fresh encryption of a slot: `Some((key, value))` integers, or vacant.
    fn seal(&self, codec: &TableCodec, entry: Option<(Vec<u8>, Vec<u8>)>) -> Result<Vec<u8>> {
        Ok(match self {
            SlotRows::Compact(sealer) => sealer.seal(&match entry {
                None => ClearRow::vacant(codec.key_width, codec.value_width),
                Some((key, value)) => ClearRow {
                    occupied: true,
                    key,
                    value,
                },
            })?,
            SlotRows::Leveled(keys, layout) => keys.leveled_row(
                *layout,
                entry.as_ref().map(|(k, v)| (k.as_slice(), v.as_slice())),
            )?,
        })
    }
}

fn open_rows(
    slots: &SlotRows<'_>,
    info: &TableInfo,
    codec: &TableCodec,
    rows: &[Vec<u8>],
    progress: Progress<'_>,
) -> Result<Vec<Option<Entry>>> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, bytes) in rows.iter().enumerate() {
        let row = slots
            .open(codec, bytes)
            .map_err(|e| Error::Usage(format!("table {}, slot {i}: {e}", info.name)))?;
        out.push(match row {
            Some((key, value)) => Some(entry_of(codec, &key, &value)?),
            None => None,
        });
        progress("decrypt", i + 1, rows.len());
    }
    Ok(out)
}
