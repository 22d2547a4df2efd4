//! The key owner's protocol on leveled tables (`layout = 'leveled'`, docs/leveled.md).
//!
//! GET, batched GET and DELETE are one server call each (`fhe_get`, `fhe_get_many`,
//! `fhe_delete`), only the ciphertexts differ; [`crate::Client`] routes them through its
//! usual paths with the leveled query key and opener. What is leveled-specific lives
//! here:
//!
//! * **SET** takes two rounds: `fhe_set_locate` (the key's slot or the first vacant one,
//!   readable only here), then `fhe_write` of the new row and its encrypted slot index,
//!   both under the writer lock in one transaction, so no write comes in between.
//! * **Two-round GET**: `fhe_locate`, then `fhe_fetch` of the located slot (a random one
//!   after a miss), in one REPEATABLE READ transaction, so both rounds see one table
//!   state (the server checks it: a round 2 computed from an older state is refused).

use crate::client::{bytea_result, key_plain, Client, TableInfo};
use crate::error::Result;
use fhe_kv_core::bucket::SlotFormat;
use fhe_kv_core::encoding::TagSecret;
use fhe_kv_core::kernels::SetStatus;
use fhe_kv_core::keys::ClientKeys;
use fhe_kv_core::leveled::set_locate::LeveledSetTarget;
use fhe_kv_core::leveled::{RowFormat, RowLayout};
use fhe_kv_core::Datum;

impl TableInfo {
    /// Whether the table stores leveled rows (`layout = 'leveled'`).
    pub fn is_leveled(&self) -> bool {
        self.layout == "leveled"
    }

    /// The leveled row layout of this table: its widths and row format.
    pub fn row_layout(&self) -> Result<RowLayout> {
        let format = RowFormat::from_name(&self.row_format).ok_or_else(|| {
            crate::Error::Usage(format!(
                "table {} has an unknown leveled row format {:?}: upgrade fhe-kv",
                self.name, self.row_format
            ))
        })?;
        Ok(RowLayout::of_format(
            self.key_width()?,
            self.value_width()?,
            format,
        ))
    }

    /// The row layout of this table's slots if they are leveled (a leveled table, or a
    /// bucketed one of row format `bucket-leveled-v1`): the server's GET answers
    /// (`leveled_answer`) and DELETE statuses (`leveled_status`) are opened with it.
    pub fn leveled_slot_layout(&self) -> Result<Option<RowLayout>> {
        if self.is_leveled() {
            return Ok(Some(self.row_layout()?));
        }
        Ok(match self.bucket_layout()? {
            Some(layout) if layout.format == SlotFormat::Leveled => {
                Some(layout.leveled("a leveled answer")?.row)
            }
            _ => None,
        })
    }
}

impl Client {
    /// A SET on a leveled table: round 1 and round 2 under the writer lock, in one
    /// transaction.
    pub(crate) fn put_leveled(
        &mut self,
        info: &TableInfo,
        key: &Datum,
        value: &Datum,
    ) -> Result<SetStatus> {
        let codec = info.codec()?;
        let layout = info.row_layout()?;
        let plain = key_plain(self.tags(), info, &codec, key)?;
        let value_plain = codec
            .value_plain(key, value)
            .map_err(|e| crate::Error::Usage(format!("table {}: {e}", info.name)))?;
        let query = self.keys().leveled_query_key(layout.key, &plain)?;
        let slots = info.capacity as usize;
        let name = info.name.clone();
        let (db, keys) = self.parts_mut();
        let mut tx = db.transaction()?;
        // Writers queue here; readers (fhe_get, fhe_locate, fhe_fetch) go on.
        tx.batch_execute(&format!("LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"))?;
        let location = bytea_result(tx.query_one(
            "SELECT fhe_kv.fhe_set_locate($1::text::regclass, $2::bytea)::bytea",
            &[&name, &query],
        )?)?;
        let (target, state) = keys.open_leveled_set_location_bytes(&location, slots)?;
        // A full table gets the same round 2, with nothing enabled: the server cannot
        // tell it from a write.
        let write =
            keys.leveled_set_write_query(layout, target, slots, (&plain, &value_plain), state)?;
        tx.query_one(
            "SELECT fhe_kv.fhe_write($1::text::regclass, $2::bytea)",
            &[&name, &write],
        )?;
        tx.commit()?;
        Ok(match target {
            LeveledSetTarget::Update(_) => SetStatus::Updated,
            LeveledSetTarget::Insert(_) => SetStatus::Inserted,
            LeveledSetTarget::Full => SetStatus::Full,
        })
    }
}

/// The two-round GET of `keys` on a leveled table, in `tx`, a REPEATABLE READ READ ONLY
/// transaction (so round 1's state is still the table's at round 2): each key's value
/// bytes, or `None` when absent.
pub(crate) fn get_two_round_leveled(
    owner: &ClientKeys,
    tags: &TagSecret,
    tx: &mut postgres::Transaction<'_>,
    info: &TableInfo,
    keys: &[Datum],
) -> Result<Vec<Option<Vec<u8>>>> {
    let codec = info.codec()?;
    let layout = info.row_layout()?;
    let slots = info.capacity as usize;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let plain = key_plain(tags, info, &codec, key)?;
        let query = owner.leveled_query_key(layout.key, &plain)?;
        let location = bytea_result(tx.query_one(
            "SELECT fhe_kv.fhe_locate($1::text::regclass, $2::bytea)::bytea",
            &[&info.name, &query],
        )?)?;
        let (located, state) = owner.open_leveled_location_bytes(&location, slots)?;
        let fetch = owner.leveled_fetch_query_after(located, slots, state)?;
        let fetched = bytea_result(tx.query_one(
            "SELECT fhe_kv.fhe_fetch($1::text::regclass, $2::bytea)::bytea",
            &[&info.name, &fetch],
        )?)?;
        let value = owner.open_leveled_fetch_bytes(layout, &fetched)?;
        out.push(located.map(|_| value));
    }
    Ok(out)
}
