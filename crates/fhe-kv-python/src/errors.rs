//! `fhe_kv.Error`: every failure, with the CLI's message and hint.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    fhe_kv,
    Error,
    PyException,
    "An fhe_kv error: str(e) is the message, e.hint the likely fix (or None), e.sqlstate the server's SQLSTATE (or None)."
);

/// The Rust client's error as `fhe_kv.Error`, with `hint` and `sqlstate` attributes.
pub fn to_py(e: fhe_kv_client::Error) -> PyErr {
    let err = Error::new_err(e.to_string());
    Python::attach(|py| {
        let value = err.value(py);
        // Setting attributes on a fresh exception instance cannot fail in practice; if it
        // did, the message alone is still the right error.
        let _ = value.setattr("hint", e.hint());
        let _ = value.setattr("sqlstate", e.sql_state().map(|s| s.code().to_string()));
    });
    err
}

pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for fhe_kv_client::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

impl<T> IntoPy<T> for Result<T, fhe_kv_core::FheKvError> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| to_py(e.into()))
    }
}
