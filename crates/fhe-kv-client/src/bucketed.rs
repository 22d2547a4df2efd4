//! The key owner's protocol on bucketed tables: every operation reads the key's two
//! candidate buckets with `fhe_fetch` (CMux trees on the server, no bootstrap) and
//! decrypts them here; a SET or DELETE then sends `fhe_write` with the encrypted change,
//! which the server adds to every bucket through its expansion trees. Read and write run
//! in one transaction under the table's writer lock, so no other write comes in between.
//! The server sees a bucket read (GET) or a bucket read and a write (SET, DELETE), the
//! same for a hit, a miss, an insert, an update or a full table.

use crate::client::{bytea_result, key_plain, Client, TableInfo};
use crate::error::Result;
use fhe_kv_core::bucket::BucketLayout;
use fhe_kv_core::kernels::{DeleteStatus, SetStatus};
use fhe_kv_core::{Datum, FromDatum};

impl Client {
    /// The bucket read of each key, in order, typed.
    pub(crate) fn get_by_owner<V: FromDatum>(
        &mut self,
        info: &TableInfo,
        layout: &BucketLayout,
        keys: &[Datum],
    ) -> Result<Vec<Option<V>>> {
        let codec = info.codec()?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let plain = key_plain(self.tags(), info, &codec, key)?;
            let query = self.keys().bucket_read_query(layout, &plain)?;
            let (db, keys_) = self.parts_mut();
            let answer = bytea_result(db.query_one(
                "SELECT fhe_kv.fhe_fetch($1::text::regclass, $2::bytea)::bytea",
                &[&info.name, &query],
            )?)?;
            let value = keys_.open_bucket_read(layout, &answer, &plain)?;
            out.push(self.typed_value(info, &codec, key, value)?);
        }
        Ok(out)
    }

    pub(crate) fn put_by_owner(
        &mut self,
        info: &TableInfo,
        layout: &BucketLayout,
        key: &Datum,
        value: &Datum,
    ) -> Result<SetStatus> {
        let codec = info.codec()?;
        let plain = key_plain(self.tags(), info, &codec, key)?;
        let value_plain = codec
            .value_plain(key, value)
            .map_err(|e| crate::Error::Usage(format!("table {}: {e}", info.name)))?;
        self.read_then_write(info, layout, &plain, |access, keys, answer| {
            Ok(access.upsert(keys, answer, &value_plain)?)
        })
    }

    pub(crate) fn delete_by_owner(
        &mut self,
        info: &TableInfo,
        layout: &BucketLayout,
        key: &Datum,
        scrub: bool,
    ) -> Result<DeleteStatus> {
        let codec = info.codec()?;
        let plain = key_plain(self.tags(), info, &codec, key)?;
        self.read_then_write(info, layout, &plain, |access, keys, answer| {
            Ok(access.remove(keys, answer, scrub)?)
        })
    }

    /// Lock, read the key's candidate buckets, let `decide` compute the status and the
    /// write from the answer, write, commit.
    fn read_then_write<T>(
        &mut self,
        info: &TableInfo,
        layout: &BucketLayout,
        key_plain: &[u8],
        decide: impl FnOnce(
            &fhe_kv_core::bucket::client::BucketAccess,
            &fhe_kv_core::keys::ClientKeys,
            &[u8],
        ) -> Result<(T, Vec<u8>)>,
    ) -> Result<T> {
        let access = self.keys().bucket_access(layout, key_plain);
        let query = access.read_query(self.keys())?;
        let name = info.name.clone();
        let (db, keys) = self.parts_mut();
        let mut tx = db.transaction()?;
        // Writers queue here; readers (fhe_fetch, fhe_get) go on.
        tx.batch_execute(&format!("LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"))?;
        let answer = bytea_result(tx.query_one(
            "SELECT fhe_kv.fhe_fetch($1::text::regclass, $2::bytea)::bytea",
            &[&name, &query],
        )?)?;
        let (status, write) = decide(&access, keys, &answer)?;
        tx.query_one(
            "SELECT fhe_kv.fhe_write($1::text::regclass, $2::bytea)",
            &[&name, &write],
        )?;
        tx.commit()?;
        Ok(status)
    }
}
