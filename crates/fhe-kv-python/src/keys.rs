//! The data owner's keys: generate, load, save, and the low-level encrypt/decrypt helpers
//! for users who write their own SQL (flat `uN` tables; for typed or bucketed tables use
//! `Client.encrypt_query_key` / `Client.decrypt_result`, which know the table).

use crate::errors::IntoPy;
use fhe_kv_core::Width;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;

/// A client key (secret): encrypts queries and decrypts answers. Keep its file private
/// (0600); anyone holding it can decrypt every table made for it.
#[pyclass(module = "fhe_kv", frozen)]
pub struct ClientKeys {
    pub inner: fhe_kv_core::keys::ClientKeys,
}

fn width(bits: u32) -> PyResult<Width> {
    Width::from_bits(bits).py_err()
}

#[pymethods]
impl ClientKeys {
    /// Read a client key file (refused if its group or others can read it).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<ClientKeys> {
        load_client_key(path)
    }

    /// Write this key to `path` with mode 0600 (refuses to overwrite unless `overwrite`).
    #[pyo3(signature = (path, overwrite = false))]
    fn save(&self, path: PathBuf, overwrite: bool) -> PyResult<()> {
        fhe_kv_client::write_client_key(&path, &self.inner, overwrite).py_err()
    }

    /// A client key from the bytes of a key file (e.g. kept in a secret manager).
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<ClientKeys> {
        let inner = fhe_kv_core::keys::ClientKeys::from_bytes(data).py_err()?;
        Ok(ClientKeys { inner })
    }

    /// The bytes of a key file (secret).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.to_bytes().py_err()?))
    }

    /// The fingerprint of the matching server key (32 hex digits), as in fhe_kv.tables.
    #[getter]
    fn key_id(&self) -> String {
        self.inner.key_id().to_hex()
    }

    /// Encrypt an integer key for `fhe_kv.fhe_get/fhe_set/fhe_delete` on a flat `uN` table.
    #[pyo3(signature = (key, bits = 64))]
    fn encrypt_key<'py>(
        &self,
        py: Python<'py>,
        key: u64,
        bits: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.inner.encrypt_key(key, width(bits)?).py_err()?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Encrypt an integer value for `fhe_kv.fhe_set` on a flat `uN` table.
    #[pyo3(signature = (value, bits = 64))]
    fn encrypt_value<'py>(
        &self,
        py: Python<'py>,
        value: u64,
        bits: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.inner.encrypt_value(value, width(bits)?).py_err()?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decrypt an `fhe_get` answer of a `uN` table: the value, or None if absent.
    fn decrypt_get(&self, result: &[u8]) -> PyResult<Option<u64>> {
        self.inner.decrypt_get(result).py_err()
    }

    /// Decrypt an `fhe_set` status: "inserted", "updated" or "full".
    fn decrypt_set_status(&self, status: &[u8]) -> PyResult<&'static str> {
        Ok(self.inner.decrypt_set_status(status).py_err()?.name())
    }

    /// Decrypt an `fhe_delete` status: "deleted" or "not_found".
    fn decrypt_delete_status(&self, status: &[u8]) -> PyResult<&'static str> {
        Ok(self.inner.decrypt_delete_status(status).py_err()?.name())
    }

    /// Decrypt any result or status envelope to text (what `fhe-kv decrypt` prints).
    fn decrypt(&self, envelope: &[u8]) -> PyResult<String> {
        self.inner.decrypt_any(envelope).py_err()
    }

    fn __repr__(&self) -> String {
        format!("ClientKeys(key_id='{}')", self.inner.key_id().to_hex())
    }
}

/// Generate a client key (secret) and its server key (public; upload it with
/// `Client.register_server_key` or `Client.load_session_key`). Takes ~10 s.
#[pyfunction]
pub fn generate_keys<'py>(py: Python<'py>) -> PyResult<(ClientKeys, Bound<'py, PyBytes>)> {
    let (keys, upload) = py
        .detach(fhe_kv_core::keys::ClientKeys::generate)
        .py_err()?;
    Ok((ClientKeys { inner: keys }, PyBytes::new(py, &upload.0)))
}

/// Read a client key file (refused if its group or others can read it).
#[pyfunction]
pub fn load_client_key(path: PathBuf) -> PyResult<ClientKeys> {
    let inner = fhe_kv_client::read_client_key(&path).py_err()?;
    Ok(ClientKeys { inner })
}

/// Read a server key file (`fhe-kv keygen`'s server.key).
#[pyfunction]
pub fn read_server_key<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = fhe_kv_client::read_server_key(&path).py_err()?;
    Ok(PyBytes::new(py, &bytes))
}

/// Write a server key file (refuses to overwrite unless `overwrite`).
#[pyfunction]
#[pyo3(signature = (path, server_key, overwrite = false))]
pub fn write_server_key(path: PathBuf, server_key: &[u8], overwrite: bool) -> PyResult<()> {
    fhe_kv_client::write_server_key(&path, server_key, overwrite).py_err()
}
