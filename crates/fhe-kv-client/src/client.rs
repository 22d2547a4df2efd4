//! Typed access to the `fhe_kv` SQL API.
//!
//! The `enc_*` argument types are domains over `bytea`, which the `postgres` crate will
//! not bind `&[u8]` to; every statement therefore passes plain `bytea` (`$n::bytea`) and
//! casts results back to `bytea`.

use crate::connect::ConnectOptions;
use crate::error::{Error, Result};
use fhe_kv_core::bucket::{BucketLayout, SlotFormat};
use fhe_kv_core::encoding::TagSecret;
use fhe_kv_core::envelope::{Envelope, Kind};
use fhe_kv_core::kernels::{DeleteStatus, SetStatus};
use fhe_kv_core::keys::ClientKeys;
use fhe_kv_core::{Datum, FromDatum, KeyId, KeyType, TableCodec, ValueType, Width};

/// One row of the `fhe_kv.tables` view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's name as `regclass` text (schema-qualified if not on the search_path).
    pub name: String,
    /// Fingerprint of the server key the table was created with.
    pub key_id: KeyId,
    /// Number of slots.
    pub capacity: u32,
    /// Width of the key integers (8…256).
    pub key_bits: u32,
    /// Width of the value integers (8…256).
    pub value_bits: u32,
    /// What the keys are: `u8`…`u256` or `text:K`.
    pub key_type: String,
    /// What the values are: `u8`…`u256` or `bytes:N`.
    pub value_type: String,
    /// Storage format of the rows, as reported by the extension.
    pub row_format: String,
    /// `flat` (every operation bootstraps every slot), `bucketed` (only the key's two
    /// candidate buckets; docs/bucketed.md) or `leveled` (every slot, ~20× cheaper per
    /// slot than flat; docs/leveled.md).
    pub layout: String,
    /// Slots per bucket of a bucketed table.
    pub bucket_slots: Option<u32>,
    /// Keys a SET can always store: `capacity` for a flat table; for a bucketed one the
    /// load up to which a SET refuses a new key with probability below 10^-9.
    pub load_limit: u32,
    /// Write-backs of a bucketed table since the key owner last sealed its rows (`None`
    /// before fhe_kv 0.6.0). The extension refuses writes past
    /// [`BucketLayout::write_budget`]; [`Client::refresh`] re-seals the rows.
    pub writes: Option<u64>,
}

/// How [`Client::create_table_with`] lays a table out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Bucketed where it is cheaper (from four buckets' worth of slots up) if the key
    /// supports it, else flat.
    #[default]
    Auto,
    /// One row per slot; every operation bootstraps every slot.
    Flat,
    /// One row per bucket; an operation bootstraps its key's two candidate buckets only.
    Bucketed,
    /// Bucketed, each bucket's slots leveled (row format `bucket-leveled-v1`): the
    /// server's GET and DELETE bootstrap ~10x less per candidate slot; a SET is the key
    /// owner's fetch and write only (docs/leveled.md).
    BucketedLeveled,
    /// One leveled row per slot (at most 1,024): every operation touches each slot at
    /// ~6-8 bootstraps instead of ~150; a SET takes two rounds (docs/leveled.md). Rows
    /// of one GLWE (row format `leveled-v2`, ~15 KB per u64/u64 slot after a SET).
    Leveled,
    /// Leveled, with fhe_kv 0.4.0's rows (`leveled-v1`): the value as lookup tables, a
    /// GET ~1.5x faster for three times the bytes after a SET.
    LeveledV1,
}

impl Layout {
    pub fn label(self) -> &'static str {
        match self {
            Layout::Auto => "auto",
            Layout::Flat => "flat",
            Layout::Bucketed => "bucketed",
            Layout::BucketedLeveled => "bucketed-leveled",
            Layout::Leveled => "leveled",
            Layout::LeveledV1 => "leveled-v1",
        }
    }

    pub fn parse(s: &str) -> Result<Layout> {
        match s {
            "auto" => Ok(Layout::Auto),
            "flat" => Ok(Layout::Flat),
            "bucketed" => Ok(Layout::Bucketed),
            "bucketed-leveled" => Ok(Layout::BucketedLeveled),
            "leveled" => Ok(Layout::Leveled),
            "leveled-v1" => Ok(Layout::LeveledV1),
            other => Err(Error::Usage(format!(
                "layout must be auto, flat, bucketed, bucketed-leveled, leveled or leveled-v1, got \
                 {other:?}"
            ))),
        }
    }
}

/// Layout options of a new table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TableOptions {
    pub layout: Layout,
    /// Slots per bucket (bucketed tables; default: 6, fewer for very wide rows).
    pub bucket_slots: Option<u32>,
}

impl TableInfo {
    /// The bucketed layout of this table, `None` if it is flat or leveled.
    pub fn bucket_layout(&self) -> Result<Option<BucketLayout>> {
        match (self.layout.as_str(), self.bucket_slots) {
            ("flat" | "leveled", _) => Ok(None),
            ("bucketed", Some(z)) if z > 0 => {
                let format = SlotFormat::of_row_format(&self.row_format).ok_or_else(|| {
                    Error::Usage(format!(
                        "table {} has an unknown bucketed row format {:?}: upgrade fhe-kv",
                        self.name, self.row_format
                    ))
                })?;
                Ok(Some(BucketLayout::of_format(
                    self.key_width()?,
                    self.value_width()?,
                    z as usize,
                    (self.capacity / (2 * z)) as usize,
                    format,
                )?))
            }
            (layout, z) => Err(Error::Usage(format!(
                "table {} has an unknown layout {layout:?} (bucket_slots {z:?}): upgrade fhe-kv",
                self.name
            ))),
        }
    }

    pub fn key_width(&self) -> Result<Width> {
        Ok(Width::from_bits(self.key_bits)?)
    }

    pub fn value_width(&self) -> Result<Width> {
        Ok(Width::from_bits(self.value_bits)?)
    }

    /// How this table's keys and values map to its integers.
    pub fn codec(&self) -> Result<TableCodec> {
        Ok(TableCodec::of_table(
            &self.key_type,
            &self.value_type,
            self.key_bits,
            self.value_bits,
        )?)
    }
}

/// A connection without a client key: enough to upload a server key, list tables and
/// grow a table (none of which needs the secret key).
///
/// ```no_run
/// use fhe_kv_client::{Connection, ConnectOptions, read_server_key};
/// # fn main() -> fhe_kv_client::Result<()> {
/// let mut conn = Connection::connect(&ConnectOptions::from_env())?;
/// let key_id = conn.register_server_key(&read_server_key("server.key".as_ref())?)?;
/// for t in conn.tables()? {
///     println!("{} {} {}", t.name, t.key_id, t.capacity);
/// }
/// # let _ = key_id; Ok(()) }
/// ```
pub struct Connection {
    db: postgres::Client,
}

impl Connection {
    /// Connect as described by `opts`.
    pub fn connect(opts: &ConnectOptions) -> Result<Connection> {
        Ok(Connection {
            db: opts.connect()?,
        })
    }

    /// Wrap an existing `postgres` connection.
    pub fn from_postgres(db: postgres::Client) -> Connection {
        Connection { db }
    }

    /// Attach a client key, for the operations that encrypt/decrypt.
    pub fn with_keys(self, keys: ClientKeys) -> Client {
        Client::new(self.db, keys)
    }

    /// The underlying connection.
    pub fn postgres(&mut self) -> &mut postgres::Client {
        &mut self.db
    }

    /// Upload a server key (`fhe_kv.register_server_key`); idempotent. Returns its key_id.
    pub fn register_server_key(&mut self, upload: &[u8]) -> Result<KeyId> {
        register_server_key(&mut self.db, upload)
    }

    /// Load a server key for this session only (`fhe_kv.load_session_key`): the server
    /// keeps it in this connection's memory, never on disk, and records only its key_id.
    /// Tables bound to that key_id work on this connection until it closes.
    pub fn load_session_key(&mut self, upload: &[u8]) -> Result<KeyId> {
        load_session_key(&mut self.db, upload)
    }

    /// Forget a session key (`fhe_kv.unload_session_key`); false if it was not loaded.
    pub fn unload_session_key(&mut self, key_id: KeyId) -> Result<bool> {
        unload_session_key(&mut self.db, key_id)
    }

    /// The key_ids this session loaded with [`Connection::load_session_key`].
    pub fn session_keys(&mut self) -> Result<Vec<KeyId>> {
        session_keys(&mut self.db)
    }

    /// All fhe_kv tables, by name.
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        tables(&mut self.db)
    }

    /// One table's description (no key check). Errors if it is not an fhe_kv table.
    pub fn table(&mut self, name: &str) -> Result<TableInfo> {
        table(&mut self.db, name)
    }

    /// Add `n` empty slots to a flat table (`fhe_kv.grow`); returns the new capacity.
    /// Growing a bucketed table moves keys between buckets, which needs the client key:
    /// use [`Client::grow`].
    pub fn grow(&mut self, table: &str, n: u32) -> Result<u32> {
        if self.table(table)?.layout == "bucketed" {
            return Err(Error::Usage(format!(
                "table {table} is bucketed: growing it rehashes every key client-side, which \
                 needs your client key (`fhe-kv grow` with --client-key, or Client::grow)"
            )));
        }
        grow(&mut self.db, table, n)
    }
}

/// A connection plus the data owner's client key: the full typed API.
///
/// Every operation looks the table up in `fhe_kv.tables` first, checks that it was made
/// for this client key and that the key/value fit its widths, then encrypts, calls the
/// extension and decrypts the answer.
///
/// ```no_run
/// use fhe_kv_client::{read_client_key, Client, ConnectOptions};
/// # fn main() -> fhe_kv_client::Result<()> {
/// let keys = read_client_key("client.key".as_ref())?;
/// let mut client = Client::connect(&ConnectOptions::from_url("postgres:///kv"), keys)?;
/// client.create_table("prices", 64, 32, 64)?;
/// println!("{}", client.put("prices", 42, 1999)?.name()); // inserted
/// assert_eq!(client.get("prices", 42)?, Some(1999));
/// assert_eq!(client.get::<u64>("prices", 7)?, None);
/// println!("{}", client.delete("prices", 42)?.name()); // deleted
/// # Ok(()) }
/// ```
pub struct Client {
    db: postgres::Client,
    keys: ClientKeys,
    tags: TagSecret,
}

impl Client {
    /// Connect as described by `conn`, using `keys` for encryption.
    pub fn connect(conn: &ConnectOptions, keys: ClientKeys) -> Result<Client> {
        Ok(Client::new(conn.connect()?, keys))
    }

    /// Wrap an existing `postgres` connection.
    pub fn new(db: postgres::Client, keys: ClientKeys) -> Client {
        let tags = keys.tag_secret();
        Client { db, keys, tags }
    }

    pub fn keys(&self) -> &ClientKeys {
        &self.keys
    }

    /// The key_id of this client key's server key.
    pub fn key_id(&self) -> KeyId {
        self.keys.key_id()
    }

    /// The underlying connection.
    pub fn postgres(&mut self) -> &mut postgres::Client {
        &mut self.db
    }

    /// The text-key tag secret, derived once per client.
    pub(crate) fn tags(&self) -> &TagSecret {
        &self.tags
    }

    pub(crate) fn parts_mut(&mut self) -> (&mut postgres::Client, &ClientKeys) {
        (&mut self.db, &self.keys)
    }

    pub fn into_parts(self) -> (postgres::Client, ClientKeys) {
        (self.db, self.keys)
    }

    /// Upload a server key (`fhe_kv.register_server_key`); idempotent. Returns its key_id.
    pub fn register_server_key(&mut self, upload: &[u8]) -> Result<KeyId> {
        register_server_key(&mut self.db, upload)
    }

    /// Load a server key for this session only; see [`Connection::load_session_key`].
    pub fn load_session_key(&mut self, upload: &[u8]) -> Result<KeyId> {
        load_session_key(&mut self.db, upload)
    }

    /// Forget a session key; see [`Connection::unload_session_key`].
    pub fn unload_session_key(&mut self, key_id: KeyId) -> Result<bool> {
        unload_session_key(&mut self.db, key_id)
    }

    /// Create a table for this client key's key_id (its server key must be registered),
    /// with the default layout ([`Layout::Auto`]).
    pub fn create_table(
        &mut self,
        name: &str,
        capacity: u32,
        key_bits: u32,
        value_bits: u32,
    ) -> Result<TableInfo> {
        self.create_table_with(
            name,
            capacity,
            key_bits,
            value_bits,
            TableOptions::default(),
        )
    }

    /// [`Client::create_table`] with layout options. `capacity` is the number of keys the
    /// table must hold: a flat table gets that many slots, a bucketed one enough buckets
    /// that `capacity` keys are within its load limit ([`TableInfo::load_limit`]), where a
    /// SET refuses a new key with probability below 10^-9.
    pub fn create_table_with(
        &mut self,
        name: &str,
        capacity: u32,
        key_bits: u32,
        value_bits: u32,
        options: TableOptions,
    ) -> Result<TableInfo> {
        Width::from_bits(key_bits)?;
        Width::from_bits(value_bits)?;
        let capacity = to_i32(capacity, "capacity")?;
        let bucket_slots = options.bucket_slots.map(|z| z as i32);
        let row = self.db.query_one(
            "SELECT fhe_kv.create_table($1::text, $2::text, $3::int4, $4::int4, $5::int4, \
             layout => $6::text, bucket_slots => $7::int4)::text",
            &[
                &name,
                &self.keys.key_id().to_hex(),
                &capacity,
                &(key_bits as i32),
                &(value_bits as i32),
                &options.layout.label(),
                &bucket_slots,
            ],
        )?;
        let created: String = row.try_get(0)?;
        self.table(&created)
    }

    /// Create a table with typed keys and values, e.g. `text:15` keys and `bytes:15`
    /// values (widths chosen by [`TableCodec::new`]; text-key widths keep the collision
    /// bound at `capacity` below 2^-40).
    pub fn create_typed_table(
        &mut self,
        name: &str,
        capacity: u32,
        key_type: KeyType,
        value_type: ValueType,
    ) -> Result<TableInfo> {
        self.create_typed_table_with(
            name,
            capacity,
            key_type,
            value_type,
            TableOptions::default(),
        )
    }

    /// [`Client::create_typed_table`] with layout options.
    pub fn create_typed_table_with(
        &mut self,
        name: &str,
        capacity: u32,
        key_type: KeyType,
        value_type: ValueType,
        options: TableOptions,
    ) -> Result<TableInfo> {
        TableCodec::new(key_type, value_type, capacity as usize)?;
        let capacity = to_i32(capacity, "capacity")?;
        let bucket_slots = options.bucket_slots.map(|z| z as i32);
        let row = self.db.query_one(
            "SELECT fhe_kv.create_table($1::text, $2::text, $3::int4, $4::text, $5::text, \
             layout => $6::text, bucket_slots => $7::int4)::text",
            &[
                &name,
                &self.keys.key_id().to_hex(),
                &capacity,
                &key_type.label(),
                &value_type.label(),
                &options.layout.label(),
                &bucket_slots,
            ],
        )?;
        let created: String = row.try_get(0)?;
        let info = self.table(&created)?;
        info.codec()?;
        Ok(info)
    }

    /// Register an existing slot table for this client key again (`fhe_kv.attach_table`):
    /// a table restored with `pg_dump -t`, or from a dump made before fhe_kv 0.2.0, whose
    /// catalog entry is missing. The extension checks every row against this key and the
    /// types first; only the table's owner can attach it.
    pub fn attach_table(
        &mut self,
        name: &str,
        key_type: KeyType,
        value_type: ValueType,
        bucket_slots: Option<u32>,
    ) -> Result<TableInfo> {
        let bucket_slots = bucket_slots.map(|z| z as i32);
        let row = self.db.query_one(
            "SELECT fhe_kv.attach_table($1::text::regclass, $2::text, $3::text, $4::text, \
             bucket_slots => $5::int4)::text",
            &[
                &name,
                &self.keys.key_id().to_hex(),
                &key_type.label(),
                &value_type.label(),
                &bucket_slots,
            ],
        )?;
        let attached: String = row.try_get(0)?;
        let info = self.table(&attached)?;
        info.codec()?;
        Ok(info)
    }

    /// The table's description; errors if it is not an fhe_kv table or was created for
    /// another client key.
    pub fn table(&mut self, name: &str) -> Result<TableInfo> {
        owned_table(&mut self.db, name, self.keys.key_id())
    }

    /// All fhe_kv tables (of every key_id).
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        tables(&mut self.db)
    }

    /// Resolve `table` (checking it uses our key) and encrypt `key` for it.
    fn encrypted_key_for(
        &mut self,
        table: &str,
        key: &Datum,
    ) -> Result<(TableInfo, TableCodec, Vec<u8>)> {
        let info = self.table(table)?;
        let codec = info.codec()?;
        let key = self.encrypted_key(&info, &codec, key)?;
        Ok((info, codec, key))
    }

    /// Encode `key` for `info`'s key integer and encrypt it: a query key, which for a
    /// bucketed table also carries the key's candidate buckets as selector bits.
    fn encrypted_key(&self, info: &TableInfo, codec: &TableCodec, key: &Datum) -> Result<Vec<u8>> {
        let plain = key_plain(&self.tags, info, codec, key)?;
        if info.is_leveled() {
            return Ok(self
                .keys
                .leveled_query_key(info.row_layout()?.key, &plain)?);
        }
        Ok(match info.bucket_layout()? {
            Some(layout) => self.keys.encrypt_bucket_key_le(&layout, &plain)?,
            None => self.keys.encrypt_key_le(&plain, codec.key_width)?,
        })
    }

    /// Insert or update `key`. Keys and values are integers (`u64`) or, for
    /// `text:K`/`bytes:N` tables, `&str`/`String`/`&[u8]`/`Vec<u8>` (see [`Datum`]).
    /// [`SetStatus::Full`] means the key was absent and there was no free slot: nothing
    /// was written (see [`Client::grow`]).
    ///
    /// A flat table runs `fhe_kv.fhe_set`. A leveled table runs its two-round SET
    /// (`fhe_set_locate`, then `fhe_write`, under the writer lock in one transaction). A
    /// bucketed table runs the key owner's write:
    /// `fhe_fetch` of the key's two candidate buckets, then `fhe_write` of the change,
    /// computed here, under the writer lock in one transaction — no bootstrap on the
    /// server (docs/bucketed.md); [`Client::put_server_side`] runs `fhe_set` instead.
    pub fn put(
        &mut self,
        table: &str,
        key: impl Into<Datum>,
        value: impl Into<Datum>,
    ) -> Result<SetStatus> {
        let key = key.into();
        let value = value.into();
        let info = self.table(table)?;
        if info.is_leveled() {
            return self.put_leveled(&info, &key, &value);
        }
        if let Some(layout) = info.bucket_layout()? {
            return self.put_by_owner(&info, &layout, &key, &value);
        }
        self.put_server_side(table, key, value)
    }

    /// Insert or update `key` with `fhe_kv.fhe_set`: the server computes the upsert on
    /// the encrypted table (both layouts).
    pub fn put_server_side(
        &mut self,
        table: &str,
        key: impl Into<Datum>,
        value: impl Into<Datum>,
    ) -> Result<SetStatus> {
        let key = key.into();
        let (info, codec, enc_key) = self.encrypted_key_for(table, &key)?;
        let value = self.encrypted_value(&info, &codec, &key, &value.into())?;
        let status = bytea_result(self.db.query_one(
            "SELECT fhe_kv.fhe_set($1::text::regclass, $2::bytea, $3::bytea)::bytea",
            &[&info.name, &enc_key, &value],
        )?)?;
        Ok(self.keys.decrypt_set_status(&status)?)
    }

    /// Look `key` up: `None` if absent. `V` is `u64`/`u128` for integer values,
    /// `String`/`Vec<u8>` for `bytes:N` values, or [`Datum`].
    ///
    /// A flat table runs `fhe_kv.fhe_get`; a bucketed table the bucket read (`fhe_fetch`
    /// of the key's two candidate buckets, searched here: one round, no bootstrap).
    /// [`Client::get_server_side`] runs `fhe_get` on either.
    pub fn get<V: FromDatum>(&mut self, table: &str, key: impl Into<Datum>) -> Result<Option<V>> {
        let key = key.into();
        let info = self.table(table)?;
        if let Some(layout) = info.bucket_layout()? {
            let mut out = self.get_by_owner(&info, &layout, std::slice::from_ref(&key))?;
            return Ok(out.pop().expect("one key, one answer"));
        }
        self.get_server_side(table, key)
    }

    /// Look `key` up with `fhe_kv.fhe_get`: the server computes the encrypted answer
    /// (both layouts).
    pub fn get_server_side<V: FromDatum>(
        &mut self,
        table: &str,
        key: impl Into<Datum>,
    ) -> Result<Option<V>> {
        let key = key.into();
        let (info, codec, enc_key) = self.encrypted_key_for(table, &key)?;
        let result = bytea_result(self.db.query_one(
            "SELECT fhe_kv.fhe_get($1::text::regclass, $2::bytea)::bytea",
            &[&info.name, &enc_key],
        )?)?;
        self.typed_result(&info, &codec, &key, &result)
    }

    /// Look `key` up with the two-round GET: `fhe_locate` (the server decompresses only
    /// the keys: ~65 PBS per slot for u64 keys instead of ~146), then `fhe_fetch` of the
    /// located slot, or of a random slot after a miss, so the server sees the same two
    /// calls either way. Both rounds run in one REPEATABLE READ READ ONLY transaction, so
    /// they see the same table. Same answers as [`Client::get`] (docs/two-round-get.md).
    ///
    /// On a bucketed table one round suffices and no bootstrap at all: `fhe_fetch` of the
    /// key's two candidate buckets, which the key owner decrypts and searches.
    pub fn get_two_round<V: FromDatum>(
        &mut self,
        table: &str,
        key: impl Into<Datum>,
    ) -> Result<Option<V>> {
        let mut out = self.get_many_two_round(table, [key.into()])?;
        Ok(out.pop().expect("one key, one answer"))
    }

    /// [`Client::get_two_round`] for several keys: one `fhe_locate_many` pass per 64 keys
    /// (each slot's key decompressed once for all of them), then one `fhe_fetch` per key.
    pub fn get_many_two_round<V: FromDatum, K: Into<Datum>>(
        &mut self,
        table: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<V>>> {
        let keys: Vec<Datum> = keys.into_iter().map(Into::into).collect();
        let mut out = Vec::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(out);
        }
        let mut tx = self
            .db
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        // The catalog is read inside the snapshot too: capacity fixes the fetch queries.
        let info = owned_table(&mut tx, table, self.keys.key_id())?;
        let codec = info.codec()?;
        let (key_width, value_width) = (codec.key_width, info.value_width()?);
        let capacity = info.capacity as usize;
        let mut answers = Vec::with_capacity(keys.len());
        if info.is_leveled() {
            answers = crate::leveled::get_two_round_leveled(
                &self.keys, &self.tags, &mut tx, &info, &keys,
            )?;
        } else if let Some(layout) = info.bucket_layout()? {
            // A bucketed table needs only the second round: its two candidate buckets
            // come back whole (CMux trees, no bootstrap) and the key owner finds the key
            // among their slots.
            tx.commit()?;
            return self.get_by_owner(&info, &layout, &keys);
        } else {
            for chunk in keys.chunks(GET_MANY_BATCH) {
                let plains = chunk
                    .iter()
                    .map(|key| key_plain(&self.tags, &info, &codec, key))
                    .collect::<Result<Vec<_>>>()?;
                let encrypted = plains
                    .iter()
                    .map(|p| Ok(self.keys.encrypt_key_le(p, key_width)?))
                    .collect::<Result<Vec<_>>>()?;
                let row = tx.query_one(
                    "SELECT fhe_kv.fhe_locate_many($1::text::regclass, $2::bytea[])::bytea[]",
                    &[&info.name, &encrypted],
                )?;
                let located = bytea_array_result(row, "fhe_kv.fhe_locate_many", chunk.len())?;
                for (plain, answer) in plains.into_iter().zip(located) {
                    let at = self.keys.open_locate(&answer, key_width, capacity)?;
                    let query = self.keys.fetch_query(at, capacity)?;
                    let fetched = bytea_result(tx.query_one(
                        "SELECT fhe_kv.fhe_fetch($1::text::regclass, $2::bytea)::bytea",
                        &[&info.name, &query],
                    )?)?;
                    answers.push(self.keys.open_two_round(
                        at,
                        &fetched,
                        &plain,
                        key_width,
                        value_width,
                    )?);
                }
            }
        }
        tx.commit()?;
        for (key, plain) in keys.iter().zip(answers) {
            out.push(self.typed_value(&info, &codec, key, plain)?);
        }
        Ok(out)
    }

    /// Decrypt a GET answer for `key` and check it belongs to `key`.
    fn typed_result<V: FromDatum>(
        &self,
        info: &TableInfo,
        codec: &TableCodec,
        key: &Datum,
        result: &[u8],
    ) -> Result<Option<V>> {
        let plain = self.open_get_answer(info, result)?;
        self.typed_value(info, codec, key, plain)
    }

    /// Open an `fhe_get` answer of `info`'s table (a `get_result`, or a `leveled_answer`
    /// on a table of leveled slots): the value integer, little-endian, or `None` when
    /// absent.
    fn open_get_answer(&self, info: &TableInfo, result: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(match info.leveled_slot_layout()? {
            Some(layout) => self.keys.open_leveled_answer_bytes(layout, result)?,
            None => self.keys.decrypt_get_le(result)?,
        })
    }

    /// A decrypted value (little-endian, `None` when absent) as `V`, checked against `key`.
    pub(crate) fn typed_value<V: FromDatum>(
        &self,
        info: &TableInfo,
        codec: &TableCodec,
        key: &Datum,
        plain: Option<Vec<u8>>,
    ) -> Result<Option<V>> {
        let Some(plain) = plain else {
            return Ok(None);
        };
        let (stored_key, value) = codec.decode_value(&plain)?;
        if let Some(stored_key) = stored_key {
            // Text tables keep the key next to the value: a different key here means two
            // keys share a tag (probability ≤ 2^-40 by construction), never a silent mix-up.
            if &stored_key != key {
                return Err(Error::Usage(format!(
                    "table {}: the tag of {key} collides with the stored key {stored_key}",
                    info.name
                )));
            }
        }
        Ok(Some(V::from_datum(value)?))
    }

    /// The `enc_key` argument for `table` (for calling the SQL functions yourself, e.g.
    /// from another driver): what [`Client::get`] sends.
    pub fn encrypt_query_key(&mut self, table: &str, key: impl Into<Datum>) -> Result<Vec<u8>> {
        Ok(self.encrypted_key_for(table, &key.into())?.2)
    }

    /// The `enc_value` argument of `fhe_set` for `key` → `value` in `table` (a `text:K`
    /// table stores the key next to the value, so the key is needed here too).
    pub fn encrypt_value_for(
        &mut self,
        table: &str,
        key: impl Into<Datum>,
        value: impl Into<Datum>,
    ) -> Result<Vec<u8>> {
        let info = self.table(table)?;
        let codec = info.codec()?;
        self.encrypted_value(&info, &codec, &key.into(), &value.into())
    }

    /// Encode `key` → `value` for `info`'s value integer and encrypt it.
    fn encrypted_value(
        &self,
        info: &TableInfo,
        codec: &TableCodec,
        key: &Datum,
        value: &Datum,
    ) -> Result<Vec<u8>> {
        let plain = codec
            .value_plain(key, value)
            .map_err(|e| Error::Usage(format!("table {}: {e}", info.name)))?;
        Ok(self.keys.encrypt_value_le(&plain, codec.value_width)?)
    }

    /// Decrypt an `fhe_get` answer for `table` into its typed value (`None`: absent).
    pub fn decrypt_result(&mut self, table: &str, result: &[u8]) -> Result<Option<Datum>> {
        let info = self.table(table)?;
        let codec = info.codec()?;
        match self.open_get_answer(&info, result)? {
            None => Ok(None),
            Some(plain) => Ok(Some(codec.decode_value(&plain)?.1)),
        }
    }

    /// [`Client::get`] for several keys, in order. A flat table runs batched private GETs
    /// (`fhe_kv.fhe_get_many`, up to [`GET_MANY_BATCH`] keys per pass over the table:
    /// every row is decoded once per batch instead of once per key); a bucketed table one
    /// bucket read per key.
    pub fn get_many<V: FromDatum, K: Into<Datum>>(
        &mut self,
        table: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<V>>> {
        let keys: Vec<Datum> = keys.into_iter().map(Into::into).collect();
        let info = self.table(table)?;
        if let Some(layout) = info.bucket_layout()? {
            return self.get_by_owner(&info, &layout, &keys);
        }
        self.get_many_server_side(table, keys)
    }

    /// [`Client::get_many`] with `fhe_kv.fhe_get_many` on either layout.
    pub fn get_many_server_side<V: FromDatum, K: Into<Datum>>(
        &mut self,
        table: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<V>>> {
        let keys: Vec<Datum> = keys.into_iter().map(Into::into).collect();
        let mut out = Vec::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(out);
        }
        let info = self.table(table)?;
        let codec = info.codec()?;
        for chunk in keys.chunks(GET_MANY_BATCH) {
            let encrypted = chunk
                .iter()
                .map(|key| self.encrypted_key(&info, &codec, key))
                .collect::<Result<Vec<_>>>()?;
            let row = self.db.query_one(
                "SELECT fhe_kv.fhe_get_many($1::text::regclass, $2::bytea[])::bytea[]",
                &[&info.name, &encrypted],
            )?;
            let results = bytea_array_result(row, "fhe_kv.fhe_get_many", chunk.len())?;
            for (key, result) in chunk.iter().zip(results) {
                out.push(self.typed_result(&info, &codec, key, &result)?);
            }
        }
        Ok(out)
    }

    /// Delete `key`. The freed slot becomes a tombstone: flagged vacant, its old contents
    /// still encrypted in it until an insert reuses it. Use [`Client::delete_scrub`] to
    /// zero them. A flat table runs `fhe_kv.fhe_delete`, a bucketed table the key owner's
    /// write (as for [`Client::put`]).
    pub fn delete(&mut self, table: &str, key: impl Into<Datum>) -> Result<DeleteStatus> {
        self.delete_with(table, key.into(), false)
    }

    /// Delete `key` and zero the key and value of every vacant slot, this one and earlier
    /// tombstones (flat: `fhe_kv.fhe_delete(…, scrub => true)`, about 1.6× the cost of a
    /// DELETE; bucketed: the vacant slots of the key's two candidate buckets).
    pub fn delete_scrub(&mut self, table: &str, key: impl Into<Datum>) -> Result<DeleteStatus> {
        self.delete_with(table, key.into(), true)
    }

    fn delete_with(&mut self, table: &str, key: Datum, scrub: bool) -> Result<DeleteStatus> {
        let info = self.table(table)?;
        if let Some(layout) = info.bucket_layout()? {
            return self.delete_by_owner(&info, &layout, &key, scrub);
        }
        self.delete_server_side(table, key, scrub)
    }

    /// Delete `key` with `fhe_kv.fhe_delete` on either layout (`scrub`: also zero vacant
    /// slots: every slot of a flat table, the candidate buckets' of a bucketed one).
    pub fn delete_server_side(
        &mut self,
        table: &str,
        key: impl Into<Datum>,
        scrub: bool,
    ) -> Result<DeleteStatus> {
        let (info, _, key) = self.encrypted_key_for(table, &key.into())?;
        let status = bytea_result(self.db.query_one(
            "SELECT fhe_kv.fhe_delete($1::text::regclass, $2::bytea, scrub => $3)::bytea",
            &[&info.name, &key, &scrub],
        )?)?;
        if info.leveled_slot_layout()?.is_some() {
            return Ok(match self.keys.open_leveled_status(&status)? {
                true => DeleteStatus::Deleted,
                false => DeleteStatus::NotFound,
            });
        }
        Ok(self.keys.decrypt_delete_status(&status)?)
    }

    /// Add at least `n` slots; returns the new capacity. A flat table gets `n` empty slots
    /// (`fhe_kv.grow`); a bucketed one is rehashed into more buckets by this client
    /// (`fhe_kv.rehash`), since only the key owner knows where keys belong.
    pub fn grow(&mut self, table: &str, n: u32) -> Result<u32> {
        self.grow_with_progress(table, n, &mut |_, _, _| {})
    }

    /// [`Client::grow`] reporting the progress of a bucketed rehash.
    pub fn grow_with_progress(
        &mut self,
        table: &str,
        n: u32,
        progress: crate::bulk::Progress<'_>,
    ) -> Result<u32> {
        let info = self.table(table)?;
        if info.bucket_layout()?.is_some() {
            return self.grow_bucketed(&info, n, progress);
        }
        grow(&mut self.db, table, n)
    }
}

/// Keys per `fhe_get_many` call (the extension accepts up to 64).
pub const GET_MANY_BATCH: usize = 64;

const TABLE_COLUMNS: &str = "table_name::text, key_id::text, capacity::int4, key_bits::int4, \
                             value_bits::int4, row_format::text, key_type::text, value_type::text, \
                             layout::text, bucket_slots::int4, load_limit::int4, \
                             (to_jsonb(t) ->> 'writes')::int8";

fn register_server_key(db: &mut postgres::Client, upload: &[u8]) -> Result<KeyId> {
    upload_server_key(db, upload, "fhe_kv.register_server_key")
}

fn load_session_key(db: &mut postgres::Client, upload: &[u8]) -> Result<KeyId> {
    upload_server_key(db, upload, "fhe_kv.load_session_key")
}

/// Send a server key to `function` (register or load), which returns its key_id.
fn upload_server_key(db: &mut postgres::Client, upload: &[u8], function: &str) -> Result<KeyId> {
    // Cheap local check before sending ~143 MB.
    let env = Envelope::parse(upload, "server key")?;
    if env.kind != Kind::ServerKeyBundle {
        env.expect("server key", Kind::ServerKey, None)?;
    }
    let row = db.query_one(&format!("SELECT {function}($1::bytea)::text"), &[&upload])?;
    let key_id: Option<String> = row.try_get(0)?;
    let key_id = key_id.ok_or_else(|| null_result(function))?;
    Ok(KeyId::parse(&key_id)?)
}

fn unload_session_key(db: &mut postgres::Client, key_id: KeyId) -> Result<bool> {
    let row = db.query_one(
        "SELECT fhe_kv.unload_session_key($1::text)",
        &[&key_id.to_hex()],
    )?;
    Ok(row.try_get(0)?)
}

fn session_keys(db: &mut postgres::Client) -> Result<Vec<KeyId>> {
    db.query(
        "SELECT key_id::text FROM fhe_kv.session_keys ORDER BY loaded_at",
        &[],
    )?
    .iter()
    .map(|row| Ok(KeyId::parse(&row.try_get::<_, String>(0)?)?))
    .collect()
}

fn tables(db: &mut postgres::Client) -> Result<Vec<TableInfo>> {
    db.query(
        &format!("SELECT {TABLE_COLUMNS} FROM fhe_kv.tables t ORDER BY table_name::text"),
        &[],
    )?
    .iter()
    .map(table_info)
    .collect()
}

fn table(db: &mut impl postgres::GenericClient, name: &str) -> Result<TableInfo> {
    let rows = db.query(
        &format!(
            "SELECT {TABLE_COLUMNS} FROM fhe_kv.tables t WHERE table_name = $1::text::regclass"
        ),
        &[&name],
    )?;
    match rows.first() {
        Some(row) => table_info(row),
        None => Err(Error::NotAnFheKvTable(name.to_string())),
    }
}

/// [`table`], refused unless it was created for the client key `ours`.
fn owned_table(
    db: &mut impl postgres::GenericClient,
    name: &str,
    ours: KeyId,
) -> Result<TableInfo> {
    let info = table(db, name)?;
    if info.key_id != ours {
        return Err(Error::KeyMismatch {
            table: info.name,
            table_key_id: info.key_id,
            client_key_id: ours,
        });
    }
    Ok(info)
}

/// `key` as the little-endian plaintext of `info`'s key integer.
pub(crate) fn key_plain(
    tags: &TagSecret,
    info: &TableInfo,
    codec: &TableCodec,
    key: &Datum,
) -> Result<Vec<u8>> {
    codec
        .key_plain(tags, key)
        .map_err(|e| Error::Usage(format!("table {}: {e}", info.name)))
}

fn grow(db: &mut postgres::Client, table: &str, n: u32) -> Result<u32> {
    let n = to_i32(n, "n")?;
    let row = db.query_one(
        "SELECT fhe_kv.grow($1::text::regclass, $2::int4)::int4",
        &[&table, &n],
    )?;
    let capacity: Option<i32> = row.try_get(0)?;
    let capacity = capacity.ok_or_else(|| null_result("fhe_kv.grow"))?;
    Ok(capacity as u32)
}

fn table_info(row: &postgres::Row) -> Result<TableInfo> {
    let int = |i: usize| -> Result<u32> {
        let v: i32 = row.try_get(i)?;
        Ok(v as u32)
    };
    let key_id: String = row.try_get(1)?;
    Ok(TableInfo {
        name: row.try_get(0)?,
        key_id: KeyId::parse(&key_id)?,
        capacity: int(2)?,
        key_bits: int(3)?,
        value_bits: int(4)?,
        row_format: row.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
        key_type: row.try_get(6)?,
        value_type: row.try_get(7)?,
        layout: row.try_get(8)?,
        bucket_slots: row.try_get::<_, Option<i32>>(9)?.map(|z| z as u32),
        load_limit: int(10)?,
        writes: row
            .try_get::<_, Option<i64>>(11)?
            .map(|w| u64::try_from(w).unwrap_or(0)),
    })
}

/// A `bytea[]` result of a batched call that must hold one non-NULL element per key.
fn bytea_array_result(row: postgres::Row, function: &str, keys: usize) -> Result<Vec<Vec<u8>>> {
    let results: Option<Vec<Option<Vec<u8>>>> = row.try_get(0)?;
    let results = results.ok_or_else(|| null_result(function))?;
    if results.len() != keys {
        return Err(Error::Usage(format!(
            "{function} returned {} results for {keys} keys",
            results.len()
        )));
    }
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| null_result(function)))
        .collect()
}

pub(crate) fn bytea_result(row: postgres::Row) -> Result<Vec<u8>> {
    let bytes: Option<Vec<u8>> = row.try_get(0)?;
    bytes.ok_or_else(|| null_result("the fhe_kv function"))
}

fn null_result(what: &str) -> Error {
    Error::Usage(format!(
        "{what} returned NULL (unexpected; check the server log)"
    ))
}

fn to_i32(n: u32, what: &str) -> Result<i32> {
    i32::try_from(n)
        .map_err(|_| Error::Usage(format!("{what} {n} is too large (max {})", i32::MAX)))
}
