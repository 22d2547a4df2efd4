//! Catalog and data-table access through SPI. No FHE here.

use crate::errors::ExtError;
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
    let row: Option<(String, i32, i32, i32, String)> = Spi::connect(|client| {
        let table = client.select(
            "SELECT key_id, capacity, key_bits, value_bits, row_format \
               FROM fhe_kv.encrypted_tables WHERE relid = $1::regclass",
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
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?;
    let (key_id, capacity, key_bits, value_bits, row_format) =
        row.ok_or_else(|| ExtError::NotFheTable(name.clone()))?;
    if row_format != fhe_kv_core::row::ROW_FORMAT_COMPACT_V1 {
        return Err(ExtError::Corrupt {
            table: name,
            detail: format!("unknown row format '{row_format}'"),
        });
    }
    Ok(TableInfo {
        key_id: KeyId::parse(&key_id)?,
        capacity,
        key_width: Width::from_bits(key_bits as u32)?,
        value_width: Width::from_bits(value_bits as u32)?,
        name,
    })
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
    let query = format!("SELECT slot, row FROM {} ORDER BY slot", info.name);
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
    if slots.len() != info.capacity as usize {
        return Err(ExtError::Corrupt {
            table: info.name.clone(),
            detail: format!(
                "it has {} slots but the catalog records capacity {}",
                slots.len(),
                info.capacity
            ),
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
    let query = format!("SELECT row FROM {} ORDER BY slot", info.name);
    let capacity = info.capacity as usize;
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
                    "it has more than the {capacity} slots the catalog records"
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
            "it has {seen} slots but the catalog records capacity {capacity}"
        )));
    }
    Ok(value)
}

/// Write every slot back in one statement.
pub fn write_rows(info: &TableInfo, slots: Vec<i32>, rows: Vec<Vec<u8>>) -> Result<(), ExtError> {
    let expected = slots.len();
    let query = format!(
        "UPDATE {} AS t SET row = u.r FROM unnest($1::int4[], $2::bytea[]) AS u(s, r) \
         WHERE t.slot = u.s",
        info.name
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

pub fn server_key_bytes(key_id: KeyId) -> Result<Vec<u8>, ExtError> {
    let bytes: Option<Vec<u8>> = select_one(
        "SELECT server_key FROM fhe_kv.server_keys WHERE key_id = $1",
        &[key_id.to_hex().into()],
    )?;
    bytes.ok_or_else(|| ExtError::UnknownKey(key_id.to_hex()))
}

/// Insert unless present (idempotent). The table's CHECK re-verifies the fingerprint.
pub fn insert_server_key(key_id: KeyId, bytes: &[u8]) -> Result<(), ExtError> {
    Spi::run_with_args(
        "INSERT INTO fhe_kv.server_keys (key_id, server_key) VALUES ($1, $2) \
         ON CONFLICT (key_id) DO NOTHING",
        &[key_id.to_hex().into(), bytes.into()],
    )?;
    Ok(())
}
