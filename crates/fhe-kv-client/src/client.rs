//! Typed access to the `fhe_kv` SQL API.
//!
//! The `enc_*` argument types are domains over `bytea`, which the `postgres` crate will
//! not bind `&[u8]` to; every statement therefore passes plain `bytea` (`$n::bytea`) and
//! casts results back to `bytea`.

use crate::connect::ConnectOptions;
use crate::error::{Error, Result};
use fhe_kv_core::envelope::{Envelope, Kind};
use fhe_kv_core::kernels::{DeleteStatus, SetStatus};
use fhe_kv_core::keys::ClientKeys;
use fhe_kv_core::{KeyId, Width};

/// One row of the `fhe_kv.tables` view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// The table's name as `regclass` text (schema-qualified if not on the search_path).
    pub name: String,
    /// Fingerprint of the server key the table was created with.
    pub key_id: KeyId,
    /// Number of slots.
    pub capacity: u32,
    /// Width of the keys (8/16/32/64).
    pub key_bits: u32,
    /// Width of the values (8/16/32/64).
    pub value_bits: u32,
    /// Storage format of the rows, as reported by the extension.
    pub row_format: String,
}

impl TableInfo {
    pub fn key_width(&self) -> Result<Width> {
        Ok(Width::from_bits(self.key_bits)?)
    }

    pub fn value_width(&self) -> Result<Width> {
        Ok(Width::from_bits(self.value_bits)?)
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
        Client { db: self.db, keys }
    }

    /// The underlying connection.
    pub fn postgres(&mut self) -> &mut postgres::Client {
        &mut self.db
    }

    /// Upload a server key (`fhe_kv.register_server_key`); idempotent. Returns its key_id.
    pub fn register_server_key(&mut self, upload: &[u8]) -> Result<KeyId> {
        register_server_key(&mut self.db, upload)
    }

    /// All fhe_kv tables, by name.
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        tables(&mut self.db)
    }

    /// One table's description (no key check). Errors if it is not an fhe_kv table.
    pub fn table(&mut self, name: &str) -> Result<TableInfo> {
        table(&mut self.db, name)
    }

    /// Add `n` empty slots (`fhe_kv.grow`); returns the new capacity.
    pub fn grow(&mut self, table: &str, n: u32) -> Result<u32> {
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
/// assert_eq!(client.get("prices", 7)?, None);
/// println!("{}", client.delete("prices", 42)?.name()); // deleted
/// # Ok(()) }
/// ```
pub struct Client {
    db: postgres::Client,
    keys: ClientKeys,
}

impl Client {
    /// Connect as described by `conn`, using `keys` for encryption.
    pub fn connect(conn: &ConnectOptions, keys: ClientKeys) -> Result<Client> {
        Ok(Client {
            db: conn.connect()?,
            keys,
        })
    }

    /// Wrap an existing `postgres` connection.
    pub fn new(db: postgres::Client, keys: ClientKeys) -> Client {
        Client { db, keys }
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

    pub fn into_parts(self) -> (postgres::Client, ClientKeys) {
        (self.db, self.keys)
    }

    /// Upload a server key (`fhe_kv.register_server_key`); idempotent. Returns its key_id.
    pub fn register_server_key(&mut self, upload: &[u8]) -> Result<KeyId> {
        register_server_key(&mut self.db, upload)
    }

    /// Create a table for this client key's key_id (its server key must be registered).
    pub fn create_table(
        &mut self,
        name: &str,
        capacity: u32,
        key_bits: u32,
        value_bits: u32,
    ) -> Result<TableInfo> {
        Width::from_bits(key_bits)?;
        Width::from_bits(value_bits)?;
        let capacity = to_i32(capacity, "capacity")?;
        let row = self.db.query_one(
            "SELECT fhe_kv.create_table($1::text, $2::text, $3::int4, $4::int4, $5::int4)::text",
            &[
                &name,
                &self.keys.key_id().to_hex(),
                &capacity,
                &(key_bits as i32),
                &(value_bits as i32),
            ],
        )?;
        let created: String = row.try_get(0)?;
        self.table(&created)
    }

    /// The table's description; errors if it is not an fhe_kv table or was created for
    /// another client key.
    pub fn table(&mut self, name: &str) -> Result<TableInfo> {
        let info = table(&mut self.db, name)?;
        if info.key_id != self.keys.key_id() {
            return Err(Error::KeyMismatch {
                table: info.name,
                table_key_id: info.key_id,
                client_key_id: self.keys.key_id(),
            });
        }
        Ok(info)
    }

    /// All fhe_kv tables (of every key_id).
    pub fn tables(&mut self) -> Result<Vec<TableInfo>> {
        tables(&mut self.db)
    }

    /// Resolve `table` (checking it uses our key) and encrypt `key` at its key width.
    fn encrypted_key_for(&mut self, table: &str, key: u64) -> Result<(TableInfo, Vec<u8>)> {
        let info = self.table(table)?;
        check_fits(&info, key, info.key_width()?, "key")?;
        let key = self.keys.encrypt_key(key, info.key_width()?)?;
        Ok((info, key))
    }

    /// Insert or update `key` (`fhe_kv.fhe_set`). [`SetStatus::Full`] means the key was
    /// absent and there was no free slot: nothing was written (see [`Client::grow`]).
    pub fn put(&mut self, table: &str, key: u64, value: u64) -> Result<SetStatus> {
        let (info, key) = self.encrypted_key_for(table, key)?;
        check_fits(&info, value, info.value_width()?, "value")?;
        let value = self.keys.encrypt_value(value, info.value_width()?)?;
        let status = bytea_result(self.db.query_one(
            "SELECT fhe_kv.fhe_set($1::text::regclass, $2::bytea, $3::bytea)::bytea",
            &[&info.name, &key, &value],
        )?)?;
        Ok(self.keys.decrypt_set_status(&status)?)
    }

    /// Look `key` up (`fhe_kv.fhe_get`): `None` if absent.
    pub fn get(&mut self, table: &str, key: u64) -> Result<Option<u64>> {
        let (info, key) = self.encrypted_key_for(table, key)?;
        let result = bytea_result(self.db.query_one(
            "SELECT fhe_kv.fhe_get($1::text::regclass, $2::bytea)::bytea",
            &[&info.name, &key],
        )?)?;
        Ok(self.keys.decrypt_get(&result)?)
    }

    /// Delete `key` (`fhe_kv.fhe_delete`).
    pub fn delete(&mut self, table: &str, key: u64) -> Result<DeleteStatus> {
        let (info, key) = self.encrypted_key_for(table, key)?;
        let status = bytea_result(self.db.query_one(
            "SELECT fhe_kv.fhe_delete($1::text::regclass, $2::bytea)::bytea",
            &[&info.name, &key],
        )?)?;
        Ok(self.keys.decrypt_delete_status(&status)?)
    }

    /// Add `n` empty slots (`fhe_kv.grow`); returns the new capacity.
    pub fn grow(&mut self, table: &str, n: u32) -> Result<u32> {
        grow(&mut self.db, table, n)
    }
}

const TABLE_COLUMNS: &str = "table_name::text, key_id::text, capacity::int4, key_bits::int4, \
                             value_bits::int4, row_format::text";

fn register_server_key(db: &mut postgres::Client, upload: &[u8]) -> Result<KeyId> {
    // Cheap local check before sending ~76 MB.
    Envelope::parse(upload, "server key")?.expect("server key", Kind::ServerKey, None)?;
    let row = db.query_one(
        "SELECT fhe_kv.register_server_key($1::bytea)::text",
        &[&upload],
    )?;
    let key_id: Option<String> = row.try_get(0)?;
    let key_id = key_id.ok_or_else(|| null_result("fhe_kv.register_server_key"))?;
    Ok(KeyId::parse(&key_id)?)
}

fn tables(db: &mut postgres::Client) -> Result<Vec<TableInfo>> {
    db.query(
        &format!("SELECT {TABLE_COLUMNS} FROM fhe_kv.tables ORDER BY table_name::text"),
        &[],
    )?
    .iter()
    .map(table_info)
    .collect()
}

fn table(db: &mut postgres::Client, name: &str) -> Result<TableInfo> {
    let rows = db.query(
        &format!("SELECT {TABLE_COLUMNS} FROM fhe_kv.tables WHERE table_name = $1::text::regclass"),
        &[&name],
    )?;
    match rows.first() {
        Some(row) => table_info(row),
        None => Err(Error::NotAnFheKvTable(name.to_string())),
    }
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
    })
}

fn bytea_result(row: postgres::Row) -> Result<Vec<u8>> {
    let bytes: Option<Vec<u8>> = row.try_get(0)?;
    bytes.ok_or_else(|| null_result("the fhe_kv function"))
}

fn null_result(what: &str) -> Error {
    Error::Usage(format!(
        "{what} returned NULL (unexpected; check the server log)"
    ))
}

fn check_fits(info: &TableInfo, n: u64, width: Width, what: &str) -> Result<()> {
    if n > width.max_value() {
        return Err(Error::Usage(format!(
            "{what} {n} does not fit in the {}-bit {what}s of table {} (max {})",
            width.bits(),
            info.name,
            width.max_value()
        )));
    }
    Ok(())
}

fn to_i32(n: u32, what: &str) -> Result<i32> {
    i32::try_from(n)
        .map_err(|_| Error::Usage(format!("{what} {n} is too large (max {})", i32::MAX)))
}
