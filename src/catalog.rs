//! Catalog and data-table access through SPI. No FHE here.

use crate::errors::ExtError;
use fhe_kv_core::bucket::{BucketLayout, SlotFormat};
use fhe_kv_core::leveled::RowFormat;
use fhe_kv_core::{KeyId, Width};
use pgrx::prelude::*;

/// One row of `fhe_kv.encrypted_tables`, resolved.
pub struct TableInfo {
    /// The table name as `regclass::text` prints it (quoted and qualified as needed), safe
    /// to splice into SQL.
    pub name: String,
    pub key_id: KeyId,
    pub capacity: i32,
    pub key_width: Width,
    pub value_width: Width,
    /// The bucketed layout (its slot format says `bucket-v1` or `bucket-leveled-v1`), or
    /// `None` for a flat table.
    pub bucket: Option<BucketLayout>,
    /// A flat table of leveled rows ([`crate::leveled`]), and their format (row format
    /// `leveled-v1` or `leveled-v2`).
    pub leveled: Option<RowFormat>,
    /// Whether the catalog counts write-backs (`encrypted_tables.writes`, from 0.6.0; a
    /// database whose catalog is older has no such column until ALTER EXTENSION UPDATE).
    pub counts_writes: bool,
}

impl TableInfo {
    pub fn is_leveled(&self) -> bool {
        self.leveled.is_some()
    }

    /// The data table's row index column: `slot` (flat) or `bucket` (bucketed).
    pub fn index_column(&self) -> &'static str {
        if self.bucket.is_some() {
            "bucket"
        } else {
            "slot"
        }
    }

    /// Rows of the data table: one per slot, or one per bucket.
    pub fn rows(&self) -> usize {
        match &self.bucket {
            Some(layout) => layout.buckets(),
            None => self.capacity as usize,
        }
    }
}

/// First column of the first row, `None` for no rows or NULL. (pgrx' `get_one` treats
/// "no rows" as an error.)
fn select_one<T: FromDatum + IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<Option<T>, ExtError> {
    Ok(Spi::connect(|client| {
        let mut table = client.select(query, Some(1), args)?;
        if table.is_empty() {
            return Ok::<_, pgrx::spi::SpiError>(None);
        }
        table.next().map_or(Ok(None), |row| row.get::<T>(1))
    })?)
}

/// The row at index 0 of a data table (`slot` or `bucket` 0), `None` if it has none.
pub fn first_row(name: &str, index_column: &str) -> Result<Option<Vec<u8>>, ExtError> {
    select_one(
        &format!("SELECT row FROM {name} WHERE {index_column} = 0"),
        &[],
    )
}

/// A relation's name as `regclass::text` prints it (quoted and qualified as needed).
pub fn relation_name(relid: pg_sys::Oid) -> Result<String, ExtError> {
    let name: Option<String> = select_one(
        "SELECT oid::regclass::text FROM pg_catalog.pg_class WHERE oid = $1",
        &[relid.into()],
    )?;
    name.ok_or(ExtError::NoSuchRelation(relid.to_u32()))
}

pub fn table_info(relid: pg_sys::Oid) -> Result<TableInfo, ExtError> {
    let name = relation_name(relid)?;
    type Row = (String, i32, i32, i32, String, Option<i32>, bool);
    let row: Option<Row> = Spi::connect(|client| {
        let table = client.select(
            // bucket_slots arrived in 0.2.0; read through to_jsonb so a database whose
            // catalog is still 0.1.0 (library replaced, ALTER EXTENSION UPDATE not yet
            // run) keeps working: all its tables are flat.
            "SELECT key_id, capacity, key_bits, value_bits, row_format, \
                    (to_jsonb(t) ->> 'bucket_slots')::int4, to_jsonb(t) ? 'writes' \
               FROM fhe_kv.encrypted_tables t WHERE relid = $1::regclass",
            Some(1),
            &[relid.into()],
        )?;
        let mut out = None;
        for r in table {
            out = Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?.unwrap_or_default(),
                r.get::<i32>(3)?.unwrap_or_default(),
                r.get::<i32>(4)?.unwrap_or_default(),
                r.get::<String>(5)?.unwrap_or_default(),
                r.get::<i32>(6)?,
                r.get::<bool>(7)?.unwrap_or(false),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?;
    let (key_id, capacity, key_bits, value_bits, row_format, bucket_slots, counts_writes) =
        row.ok_or_else(|| ExtError::NotFheTable(name.clone()))?;
    let key_width = Width::from_bits(key_bits as u32)?;
    let value_width = Width::from_bits(value_bits as u32)?;
    let corrupt = |detail: String| ExtError::Corrupt {
        table: name.clone(),
        detail,
    };
    let leveled = RowFormat::from_name(&row_format).filter(|_| bucket_slots.is_none());
    let bucket = match (SlotFormat::of_row_format(&row_format), bucket_slots) {
        (None, None)
            if row_format == fhe_kv_core::row::ROW_FORMAT_COMPACT_V1 || leveled.is_some() =>
        {
            None
        }
        (Some(format), Some(z)) if z > 0 && capacity % (2 * z) == 0 => Some(
            BucketLayout::of_format(
                key_width,
                value_width,
                z as usize,
                (capacity / (2 * z)) as usize,
                format,
            )
            .map_err(|e| corrupt(e.to_string()))?,
        ),
        _ => {
            return Err(corrupt(format!(
                "unknown row format '{row_format}' with bucket_slots {bucket_slots:?}"
            )))
        }
    };
    Ok(TableInfo {
        key_id: KeyId::parse(&key_id)?,
        capacity,
        key_width,
        value_width,
        bucket,
        leveled,
        counts_writes,
        name,
    })
}

/// A bucketed table's write-backs since the key owner last sealed its rows (`None` when
/// the catalog predates the count). Read under the writer lock, it is exact.
pub fn writes(info: &TableInfo) -> Result<Option<i64>, ExtError> {
    if !info.counts_writes {
        return Ok(None);
    }
    select_one(
        "SELECT writes FROM fhe_kv.encrypted_tables WHERE relid = $1::regclass",
        &[info.name.as_str().into()],
    )
}

/// Count one write-back (in the writing statement's transaction: a failed or cancelled
/// write counts nothing). The catalog's guard lets any role that may UPDATE the table do
/// this, and nothing else.
pub fn count_write(info: &TableInfo) -> Result<(), ExtError> {
    if info.counts_writes {
        Spi::run_with_args(
            "UPDATE fhe_kv.encrypted_tables SET writes = writes + 1 WHERE relid = $1::regclass",
            &[info.name.as_str().into()],
        )?;
    }
    Ok(())
}

/// Serialize writers: SHARE ROW EXCLUSIVE conflicts with itself and with writes, not with
/// the ACCESS SHARE lock readers take, so GETs keep running (they see the old snapshot).
pub fn lock_for_write(info: &TableInfo) -> Result<(), ExtError> {
    Spi::run(&format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        info.name
    ))?;
    Ok(())
}

/// All slots, ordered: (slot numbers, row envelopes). Checks the slot count against the
/// catalog so a table edited outside fhe_kv is reported, not silently computed on.
pub fn read_rows(info: &TableInfo) -> Result<(Vec<i32>, Vec<Vec<u8>>), ExtError> {
    let query = format!(
        "SELECT {col}, row FROM {} ORDER BY {col}",
        info.name,
        col = info.index_column()
    );
    let (slots, rows) = Spi::connect(|client| {
        let table = client.select(query.as_str(), None, &[])?;
        let mut slots = Vec::with_capacity(table.len());
        let mut rows = Vec::with_capacity(table.len());
        for r in table {
            slots.push(r.get::<i32>(1)?);
            rows.push(r.get::<Vec<u8>>(2)?);
        }
        Ok::<_, pgrx::spi::SpiError>((slots, rows))
    })?;
    if slots.len() != info.rows() {
        return Err(ExtError::Corrupt {
            table: info.name.clone(),
            detail: match info.bucket {
                None => format!(
                    "it has {} slots but the catalog records capacity {}",
                    slots.len(),
                    info.capacity
                ),
                Some(_) => format!(
                    "it has {} buckets but the catalog records {}",
                    slots.len(),
                    info.rows()
                ),
            },
        });
    }
    let corrupt = |detail: &str| ExtError::Corrupt {
        table: info.name.clone(),
        detail: detail.to_string(),
    };
    let slots: Vec<i32> = slots
        .into_iter()
        .map(|s| s.ok_or_else(|| corrupt("a slot number is NULL")))
        .collect::<Result<_, _>>()?;
    let rows: Vec<Vec<u8>> = rows
        .into_iter()
        .map(|r| r.ok_or_else(|| corrupt("a slot's row is NULL")))
        .collect::<Result<_, _>>()?;
    Ok((slots, rows))
}

/// Stream the rows in slot order through a cursor, `batch` rows per fetch, and hand them to
/// `f` as an iterator of batches: a GET holds one batch of row bytes at a time, not the
/// table. The slot count is checked against the catalog as rows arrive (too many) and
/// once the cursor is exhausted (too few), so a table edited outside fhe_kv is reported.
pub fn with_row_batches<R>(
    info: &TableInfo,
    batch: usize,
    f: impl FnOnce(
        &mut dyn Iterator<Item = fhe_kv_core::Result<Vec<Vec<u8>>>>,
    ) -> fhe_kv_core::Result<R>,
) -> Result<R, ExtError> {
    let query = format!(
        "SELECT row FROM {} ORDER BY {}",
        info.name,
        info.index_column()
    );
    let capacity = info.rows();
    let (unit, what) = match info.bucket {
        Some(_) => ("buckets", "buckets"),
        None => ("slots", "capacity"),
    };
    let corrupt = |detail: String| ExtError::Corrupt {
        table: info.name.clone(),
        detail,
    };
    // Errors of the row source travel next to the kernel's iterator (whose items are core
    // results) and take precedence over whatever the kernel made of the early end.
    let mut source_error: Option<ExtError> = None;
    let mut seen = 0usize;
    let result = Spi::connect(|client| {
        let mut cursor = client.try_open_cursor(query.as_str(), &[])?;
        let mut next_batch = || -> Result<Option<Vec<Vec<u8>>>, ExtError> {
            let table = cursor.fetch(batch.max(1) as libc::c_long)?;
            let mut rows = Vec::with_capacity(batch);
            for r in table {
                let row = r.get::<Vec<u8>>(1)?;
                rows.push(row.ok_or_else(|| corrupt("a slot's row is NULL".into()))?);
            }
            // The tuple table stays in SPI memory until SPI_finish unless freed: free it
            // so memory holds one batch, whatever the table size.
            // SAFETY: the rows were copied out above; nothing refers to the table now.
            unsafe { pg_sys::SPI_freetuptable(pg_sys::SPI_tuptable) };
            seen += rows.len();
            if seen > capacity {
                return Err(corrupt(format!(
                    "it has more than the {capacity} {unit} the catalog records"
                )));
            }
            Ok((!rows.is_empty()).then_some(rows))
        };
        let mut batches = std::iter::from_fn(|| match next_batch() {
            Ok(Some(rows)) => Some(Ok(rows)),
            Ok(None) => None,
            Err(e) => {
                source_error = Some(e);
                Some(Err(fhe_kv_core::FheKvError::Internal(
                    "reading the table's rows failed".into(),
                )))
            }
        });
        Ok::<_, pgrx::spi::SpiError>(f(&mut batches))
    })?;
    if let Some(e) = source_error {
        return Err(e);
    }
    let value = result?;
    if seen != capacity {
        return Err(corrupt(format!(
            "it has {seen} {unit} but the catalog records {what} {capacity}"
        )));
    }
    Ok(value)
}

/// Write every slot back in one statement.
pub fn write_rows(info: &TableInfo, slots: Vec<i32>, rows: Vec<Vec<u8>>) -> Result<(), ExtError> {
    let expected = slots.len();
    let query = format!(
        "UPDATE {} AS t SET row = u.r FROM unnest($1::int4[], $2::bytea[]) AS u(s, r) \
         WHERE t.{} = u.s",
        info.name,
        info.index_column()
    );
    let updated = Spi::connect_mut(|client| {
        client
            .update(query.as_str(), None, &[slots.into(), rows.into()])
            .map(|t| t.len())
    })?;
    if updated != expected {
        return Err(ExtError::Corrupt {
            table: info.name.clone(),
            detail: format!("updated {updated} slots instead of {expected}"),
        });
    }
    Ok(())
}

/// Rewrite every row, `batch` at a time in index order: read a range, let `rewrite`
/// compute its new rows, UPDATE them, check for interrupts. The table must be locked
/// against other writers; everything happens in the statement's transaction, so a
/// failure or cancel anywhere leaves the table as it was.
pub fn rewrite_in_batches(
    info: &TableInfo,
    batch: usize,
    mut rewrite: impl FnMut(&[Vec<u8>]) -> fhe_kv_core::Result<Vec<Vec<u8>>>,
) -> Result<(), ExtError> {
    let col = info.index_column();
    let select = format!(
        "SELECT row FROM {} WHERE {col} >= $1 AND {col} < $2 ORDER BY {col}",
        info.name
    );
    let update = format!(
        "UPDATE {} AS t SET row = u.r FROM unnest($1::int4[], $2::bytea[]) AS u(s, r) \
         WHERE t.{col} = u.s",
        info.name
    );
    let total = info.rows();
    let corrupt = |detail: String| ExtError::Corrupt {
        table: info.name.clone(),
        detail,
    };
    let mut start = 0usize;
    while start < total {
        let end = (start + batch.max(1)).min(total);
        let rows: Vec<Vec<u8>> = Spi::connect(|client| {
            let table = client.select(
                select.as_str(),
                None,
                &[(start as i32).into(), (end as i32).into()],
            )?;
            let mut rows = Vec::with_capacity(end - start);
            for r in table {
                rows.push(r.get::<Vec<u8>>(1)?);
            }
            Ok::<_, pgrx::spi::SpiError>(rows)
        })?
        .into_iter()
        .map(|r| r.ok_or_else(|| corrupt(format!("a {col}'s row is NULL"))))
        .collect::<Result<_, _>>()?;
        if rows.len() != end - start {
            return Err(corrupt(format!(
                "{col}s {start} to {} are not all present (found {})",
                end - 1,
                rows.len()
            )));
        }
        let new_rows = rewrite(&rows)?;
        drop(rows);
        let indices: Vec<i32> = (start as i32..end as i32).collect();
        let updated = Spi::connect_mut(|client| {
            client
                .update(update.as_str(), None, &[indices.into(), new_rows.into()])
                .map(|t| t.len())
        })?;
        if updated != end - start {
            return Err(corrupt(format!(
                "updated {updated} {col}s instead of {}",
                end - start
            )));
        }
        start = end;
        pgrx::check_for_interrupts!();
    }
    Ok(())
}

/// Replace all rows of a table by `rows` (index 0..n), e.g. after a rehash changed their
/// number: DELETE, then INSERT in one statement.
pub fn replace_rows(info: &TableInfo, rows: Vec<Vec<u8>>) -> Result<(), ExtError> {
    let col = info.index_column();
    let n = rows.len();
    let indices: Vec<i32> = (0..n as i32).collect();
    let inserted = Spi::connect_mut(|client| {
        client.update(&format!("DELETE FROM {}", info.name), None, &[])?;
        client
            .update(
                &format!(
                    "INSERT INTO {} ({col}, row) SELECT s, r FROM unnest($1::int4[], $2::bytea[]) AS u(s, r)",
                    info.name
                ),
                None,
                &[indices.into(), rows.into()],
            )
            .map(|t| t.len())
    })?;
    if inserted != n {
        return Err(ExtError::Corrupt {
            table: info.name.clone(),
            detail: format!("inserted {inserted} {col}s instead of {n}"),
        });
    }
    Ok(())
}

/// Record a rehash: the table's new capacity (the catalog guard checks ownership and
/// growth) and, its rows being the key owner's fresh sealing, no write-back since.
pub fn set_resealed(info: &TableInfo, capacity: i32) -> Result<(), ExtError> {
    let query = if info.counts_writes {
        "UPDATE fhe_kv.encrypted_tables SET capacity = $2, writes = 0 WHERE relid = $1::regclass"
    } else {
        "UPDATE fhe_kv.encrypted_tables SET capacity = $2 WHERE relid = $1::regclass"
    };
    Spi::run_with_args(query, &[info.name.as_str().into(), capacity.into()])?;
    Ok(())
}

/// The SQL expression of a table's version token, on its index-0 row: every write
/// rewrites every row, so row 0's version (`xmin`, and `cmin` for writes within one
/// transaction) changes with each.
const STATE_TOKEN: &str = "(xmin::text::bigint << 32) | cmin::text::bigint";

/// A token of a bucketed or leveled table's current version. A key owner's round 2 (a
/// write, or a leveled fetch) must carry the token of the round 1 it was computed from.
pub fn state_token(info: &TableInfo) -> Result<u64, ExtError> {
    let token: Option<i64> = select_one(
        &format!(
            "SELECT {STATE_TOKEN} FROM {} WHERE {} = 0",
            info.name,
            info.index_column()
        ),
        &[],
    )?;
    token.map(|t| t as u64).ok_or_else(|| ExtError::Corrupt {
        table: info.name.clone(),
        detail: format!("{} 0 is missing", info.index_column()),
    })
}

/// All rows in index order and the table's [`state_token`], read by one statement (one
/// snapshot): a read that carries its state to round 2 without the writer lock cannot
/// pair rows of one version with the token of another.
pub fn read_rows_with_state(info: &TableInfo) -> Result<(u64, Vec<Vec<u8>>), ExtError> {
    let query = format!(
        "SELECT row, CASE WHEN {col} = 0 THEN {STATE_TOKEN} END FROM {} ORDER BY {col}",
        info.name,
        col = info.index_column()
    );
    let (rows, token) = Spi::connect(|client| {
        let table = client.select(query.as_str(), None, &[])?;
        let mut rows = Vec::with_capacity(table.len());
        let mut token = None;
        for r in table {
            rows.push(r.get::<Vec<u8>>(1)?);
            if let Some(t) = r.get::<i64>(2)? {
                token = Some(t as u64);
            }
        }
        Ok::<_, pgrx::spi::SpiError>((rows, token))
    })?;
    let corrupt = |detail: String| ExtError::Corrupt {
        table: info.name.clone(),
        detail,
    };
    if rows.len() != info.rows() {
        return Err(corrupt(format!(
            "it has {} rows but the catalog records {}",
            rows.len(),
            info.rows()
        )));
    }
    let token = token.ok_or_else(|| corrupt(format!("{} 0 is missing", info.index_column())))?;
    let rows = rows
        .into_iter()
        .map(|r| r.ok_or_else(|| corrupt("a row is NULL".into())))
        .collect::<Result<_, _>>()?;
    Ok((token, rows))
}

/// Whether a registered key carries the bucketed layout's key material. For a session-only
/// key the session's loaded copy answers.
pub fn key_supports_buckets(key_id: KeyId) -> Result<bool, ExtError> {
    // -1: registered for session-only use (server_key NULL, supports_buckets NULL).
    let supports: Option<i32> = select_one(
        "SELECT coalesce(supports_buckets::int, -1) FROM fhe_kv.server_keys WHERE key_id = $1",
        &[key_id.to_hex().into()],
    )?;
    match supports {
        None => Err(ExtError::UnknownKey(key_id.to_hex())),
        Some(-1) => crate::session_keys::get(key_id)
            .map(|keys| keys.bucket_packing.is_some())
            .ok_or_else(|| ExtError::SessionKeyNotLoaded(key_id.to_hex())),
        Some(flag) => Ok(flag == 1),
    }
}

/// Where a registered key's material is.
pub enum StoredServerKey {
    /// In `fhe_kv.server_keys`.
    Stored(Vec<u8>),
    /// Registered for session-only use: only sessions that loaded it have it.
    SessionOnly,
}

pub fn server_key_bytes(key_id: KeyId) -> Result<StoredServerKey, ExtError> {
    // A valid upload is never empty, so '' stands for NULL (session-only).
    let bytes: Option<Vec<u8>> = select_one(
        "SELECT coalesce(server_key, ''::bytea) FROM fhe_kv.server_keys WHERE key_id = $1",
        &[key_id.to_hex().into()],
    )?;
    match bytes {
        None => Err(ExtError::UnknownKey(key_id.to_hex())),
        Some(b) if b.is_empty() => Ok(StoredServerKey::SessionOnly),
        Some(b) => Ok(StoredServerKey::Stored(b)),
    }
}

/// That `key_id` is registered (stored, or recorded for session-only use), without
/// reading the key itself.
pub fn server_key_registered(key_id: KeyId) -> Result<(), ExtError> {
    let found: Option<bool> = select_one(
        "SELECT true FROM fhe_kv.server_keys WHERE key_id = $1",
        &[key_id.to_hex().into()],
    )?;
    found
        .map(|_| ())
        .ok_or_else(|| ExtError::UnknownKey(key_id.to_hex()))
}

/// Record a session-only key's fingerprint (no key material) unless the key_id is known.
pub fn insert_session_key_id(key_id: KeyId) -> Result<(), ExtError> {
    Spi::run_with_args(
        "INSERT INTO fhe_kv.server_keys (key_id) VALUES ($1) ON CONFLICT (key_id) DO NOTHING",
        &[key_id.to_hex().into()],
    )?;
    Ok(())
}

/// Insert unless present (idempotent); a key_id registered session-only gets its key
/// stored (the guard trigger allows only that update). The table's CHECK re-verifies the
/// fingerprint.
pub fn insert_server_key(key_id: KeyId, bytes: &[u8]) -> Result<(), ExtError> {
    Spi::run_with_args(
        "INSERT INTO fhe_kv.server_keys (key_id, server_key) VALUES ($1, $2) \
         ON CONFLICT (key_id) DO UPDATE SET server_key = EXCLUDED.server_key \
         WHERE fhe_kv.server_keys.server_key IS NULL",
        &[key_id.to_hex().into(), bytes.into()],
    )?;
    Ok(())
}
