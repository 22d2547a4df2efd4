//! `fhe_kv.Client`: the typed API of the Rust client (`fhe_kv_client::Client`).
//!
//! The client runs its own database session, opened from a connection string or from a
//! psycopg connection's parameters (same host, port, user, database, password and TLS
//! settings): fhe_kv operations manage their own transactions (a bucketed SET locks the
//! table, reads and writes in one transaction), so they do not run inside the caller's
//! psycopg transaction. Every call releases the GIL while it waits for the server or
//! encrypts, so other Python threads keep running.

use crate::datum;
use crate::errors::{to_py, IntoPy};
use crate::keys::ClientKeys;
use fhe_kv_client::{ConnectOptions, Datum, KeyType, Layout, TableInfo, TableOptions, ValueType};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::sync::Mutex;

/// A connection to a database with the fhe_kv extension, plus your client key.
#[pyclass(module = "fhe_kv", frozen)]
pub struct Client {
    /// `None` once closed.
    inner: Mutex<Option<fhe_kv_client::Client>>,
}

/// psycopg connection parameters the client understands (libpq names).
const PSYCOPG_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "dbname",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "passfile",
    "connect_timeout",
    "options",
    "target_session_attrs",
];

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn open(keys: &ClientKeys, conninfo: Option<String>, py: Python<'_>) -> PyResult<Client> {
    let key_bytes = keys.inner.to_bytes().py_err()?;
    let opts = ConnectOptions {
        url: conninfo,
        notices_to_stderr: false,
    };
    let client = py
        .detach(|| {
            let keys = fhe_kv_core::keys::ClientKeys::from_bytes(&key_bytes)?;
            fhe_kv_client::Client::connect(&opts, keys)
        })
        .py_err()?;
    Ok(Client {
        inner: Mutex::new(Some(client)),
    })
}

/// Connect with a `postgresql://` URL or libpq `key=value` string (None: DATABASE_URL or
/// the PG* variables, ~/.pgpass and PGSSL* settings, as psql does).
#[pyfunction]
#[pyo3(signature = (keys, dsn = None))]
pub fn connect(py: Python<'_>, keys: &ClientKeys, dsn: Option<String>) -> PyResult<Client> {
    open(keys, dsn, py)
}

fn info_dict<'py>(py: Python<'py>, t: &TableInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &t.name)?;
    d.set_item("key_id", t.key_id.to_hex())?;
    d.set_item("capacity", t.capacity)?;
    d.set_item("key_type", &t.key_type)?;
    d.set_item("value_type", &t.value_type)?;
    d.set_item("key_bits", t.key_bits)?;
    d.set_item("value_bits", t.value_bits)?;
    d.set_item("layout", &t.layout)?;
    d.set_item("writes", t.writes)?;
    d.set_item("row_format", &t.row_format)?;
    d.set_item("bucket_slots", t.bucket_slots)?;
    d.set_item("load_limit", t.load_limit)?;
    Ok(d)
}

impl Client {
    /// Run `f` on the open client without the GIL.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut fhe_kv_client::Client) -> fhe_kv_client::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let client = guard.as_mut().ok_or_else(|| {
                fhe_kv_client::Error::Usage("this fhe_kv.Client is closed".into())
            })?;
            f(client)
        })
        .map_err(to_py)
    }

    /// Whether `table`'s keys are text (returned as `str`).
    fn text_keys(&self, py: Python<'_>, table: &str) -> PyResult<bool> {
        let table = table.to_string();
        Ok(self
            .with(py, move |c| c.table(&table))?
            .key_type
            .starts_with("text:"))
    }
}

#[pymethods]
impl Client {
    /// Open a client session with the parameters of a psycopg connection (host, port,
    /// user, database, password, TLS settings). The psycopg connection stays yours;
    /// fhe_kv operations run in the client's own session.
    #[staticmethod]
    fn from_psycopg(
        py: Python<'_>,
        conn: &Bound<'_, PyAny>,
        keys: &ClientKeys,
    ) -> PyResult<Client> {
        let info = conn.getattr("info")?;
        let params = info.call_method0("get_parameters")?;
        let mut parts = Vec::new();
        for name in PSYCOPG_PARAMETERS {
            if let Ok(value) = params.get_item(*name) {
                let value: String = value.extract()?;
                if !value.is_empty() {
                    parts.push(format!("{name}={}", quote(&value)));
                }
            }
        }
        let password: Option<String> = info.getattr("password")?.extract()?;
        if let Some(pw) = password.filter(|p| !p.is_empty()) {
            parts.push(format!("password={}", quote(&pw)));
        }
        open(keys, Some(parts.join(" ")), py)
    }

    /// Upload a server key for every session (stored in fhe_kv.server_keys); returns its
    /// key_id. Idempotent.
    fn register_server_key(&self, py: Python<'_>, server_key: Vec<u8>) -> PyResult<String> {
        Ok(self
            .with(py, move |c| c.register_server_key(&server_key))?
            .to_hex())
    }

    /// Load a server key for this client's session only (never stored by the server);
    /// returns its key_id.
    fn load_session_key(&self, py: Python<'_>, server_key: Vec<u8>) -> PyResult<String> {
        Ok(self
            .with(py, move |c| c.load_session_key(&server_key))?
            .to_hex())
    }

    /// Forget a session key; False if it was not loaded.
    fn unload_session_key(&self, py: Python<'_>, key_id: &str) -> PyResult<bool> {
        let key_id = fhe_kv_core::KeyId::parse(key_id).py_err()?;
        self.with(py, move |c| c.unload_session_key(key_id))
    }

    /// Create a table for `capacity` keys bound to this client key. key_type: "u8".."u256"
    /// or "text:K"; value_type: "u8".."u256" or "bytes:N"; layout: "auto", "flat",
    /// "bucketed", "bucketed-leveled", "leveled" or "leveled-v1". Returns the table's description.
    #[pyo3(signature = (name, capacity, key_type = "u64", value_type = "u64", layout = "auto", bucket_slots = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_table<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        capacity: u32,
        key_type: &str,
        value_type: &str,
        layout: &str,
        bucket_slots: Option<u32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let key_type = KeyType::parse(key_type).py_err()?;
        let value_type = ValueType::parse(value_type).py_err()?;
        let layout = Layout::parse(layout).py_err()?;
        let name = name.to_string();
        let info = self.with(py, move |c| {
            c.create_typed_table_with(
                &name,
                capacity,
                key_type,
                value_type,
                TableOptions {
                    layout,
                    bucket_slots,
                },
            )
        })?;
        info_dict(py, &info)
    }

    /// Every fhe_kv table: a list of dicts (name, key_id, capacity, key_type, …).
    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let tables = self.with(py, |c| c.tables())?;
        let list = PyList::empty(py);
        for t in &tables {
            list.append(info_dict(py, t)?)?;
        }
        Ok(list)
    }

    /// One table's description (it must use this client key).
    fn table<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let name = name.to_string();
        let info = self.with(py, move |c| c.table(&name))?;
        info_dict(py, &info)
    }

    /// Insert or update: "inserted", "updated" or "full" (no room: nothing written).
    fn put(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<&'static str> {
        let (key, value, table) = (
            datum::from_py(key)?,
            datum::from_py(value)?,
            table.to_string(),
        );
        Ok(self.with(py, move |c| c.put(&table, key, value))?.name())
    }

    /// The value stored under `key`, or None.
    fn get(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let key = datum::from_py(key)?;
        let name = table.to_string();
        let value = self.with(py, move |c| c.get::<Datum>(&name, key))?;
        Ok(value.map(|v| datum::to_py(py, v, false)))
    }

    /// The values of several keys, in order (None where absent): one pass over a flat
    /// table per 64 keys.
    fn get_many(
        &self,
        py: Python<'_>,
        table: &str,
        keys: Vec<Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Option<Py<PyAny>>>> {
        let keys: Vec<Datum> = keys.iter().map(datum::from_py).collect::<PyResult<_>>()?;
        let name = table.to_string();
        let values = self.with(py, move |c| c.get_many::<Datum, Datum>(&name, keys))?;
        Ok(values
            .into_iter()
            .map(|v| v.map(|v| datum::to_py(py, v, false)))
            .collect())
    }

    /// GET with the two-round protocol (flat tables: about half the server's work).
    fn get_two_round(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let key = datum::from_py(key)?;
        let name = table.to_string();
        let value = self.with(py, move |c| c.get_two_round::<Datum>(&name, key))?;
        Ok(value.map(|v| datum::to_py(py, v, false)))
    }

    /// Delete: "deleted" or "not_found". `scrub`: also zero every vacant slot.
    #[pyo3(signature = (table, key, scrub = false))]
    fn delete(
        &self,
        py: Python<'_>,
        table: &str,
        key: &Bound<'_, PyAny>,
        scrub: bool,
    ) -> PyResult<&'static str> {
        let key = datum::from_py(key)?;
        let name = table.to_string();
        let status = self.with(py, move |c| {
            if scrub {
                c.delete_scrub(&name, key)
            } else {
                c.delete(&name, key)
            }
        })?;
        Ok(status.name())
    }

    /// Upsert many (key, value) pairs at once (client-side; later duplicates win). Fails
    /// with nothing written if the new keys do not fit. Returns counts.
    fn import_rows<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        rows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut entries = Vec::new();
        for row in rows.try_iter()? {
            let row = row?;
            let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = row.extract().map_err(|_| {
                PyValueError::new_err("import_rows takes an iterable of (key, value) pairs")
            })?;
            entries.push((datum::from_py(&k)?, datum::from_py(&v)?));
        }
        let name = table.to_string();
        let report = self.with(py, move |c| c.import(&name, &entries, &mut |_, _, _| {}))?;
        let d = PyDict::new(py);
        d.set_item("inserted", report.inserted)?;
        d.set_item("updated", report.updated)?;
        d.set_item("superseded", report.superseded)?;
        d.set_item("slots_rewritten", report.slots_rewritten)?;
        Ok(d)
    }

    /// Every (key, value) pair of the table, decrypted here.
    fn export_rows(&self, py: Python<'_>, table: &str) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        let text = self.text_keys(py, table)?;
        let name = table.to_string();
        let entries = self.with(py, move |c| c.export(&name, &mut |_, _, _| {}))?;
        Ok(entries
            .into_iter()
            .map(|(k, v)| (datum::to_py(py, k, text), datum::to_py(py, v, false)))
            .collect())
    }

    /// Add room for `n` keys; returns the new capacity.
    fn grow(&self, py: Python<'_>, table: &str, n: u32) -> PyResult<u32> {
        let name = table.to_string();
        self.with(py, move |c| c.grow(&name, n))
    }

    /// Re-seal every bucket of a bucketed table with fresh encryptions (same buckets),
    /// which sets its write count (`tables()[…]["writes"]`) back to 0: writes past the
    /// table's noise budget are refused until then. Returns the buckets written.
    fn refresh(&self, py: Python<'_>, table: &str) -> PyResult<u32> {
        let name = table.to_string();
        self.with(py, move |c| c.refresh(&name))
    }

    /// The `enc_key` argument for `fhe_kv.fhe_get/fhe_set/fhe_delete(table, …)` in your
    /// own SQL (any table type or layout).
    fn encrypt_query_key<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let key = datum::from_py(key)?;
        let name = table.to_string();
        let bytes = self.with(py, move |c| c.encrypt_query_key(&name, key))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The `enc_value` argument of `fhe_kv.fhe_set(table, key, value)` in your own SQL.
    fn encrypt_value<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (key, value, name) = (
            datum::from_py(key)?,
            datum::from_py(value)?,
            table.to_string(),
        );
        let bytes = self.with(py, move |c| c.encrypt_value_for(&name, key, value))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decrypt an `fhe_kv.fhe_get` answer for `table`: the value, or None.
    fn decrypt_result(
        &self,
        py: Python<'_>,
        table: &str,
        result: Vec<u8>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let name = table.to_string();
        let value = self.with(py, move |c| c.decrypt_result(&name, &result))?;
        Ok(value.map(|v| datum::to_py(py, v, false)))
    }

    /// Decrypt an `fhe_set` / `fhe_delete` status: "inserted", "updated", "full",
    /// "deleted" or "not_found".
    fn decrypt_status(&self, py: Python<'_>, status: Vec<u8>) -> PyResult<String> {
        self.with(py, move |c| Ok(c.keys().decrypt_any(&status)?))
    }

    /// Close the session (also on `with fhe_kv.connect(...) as kv:` exit).
    fn close(&self) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, _exc_type: Py<PyAny>, _exc: Py<PyAny>, _tb: Py<PyAny>) -> bool {
        self.close();
        false
    }
}
