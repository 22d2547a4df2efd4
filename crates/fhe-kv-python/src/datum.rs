//! Python values <-> table data: `int` for `uN` keys/values, `str` (or `bytes`) for
//! `text:K` keys, `bytes` (or `str`, as UTF-8) for `bytes:N` values.

use fhe_kv_core::Datum;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// A key or value from Python.
pub fn from_py(value: &Bound<'_, PyAny>) -> PyResult<Datum> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Datum::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Datum::Bytes(s.to_cow()?.as_bytes().to_vec()));
    }
    if let Ok(n) = value.extract::<u128>() {
        return Ok(Datum::Uint(n));
    }
    Err(PyTypeError::new_err(format!(
        "keys and values are int (0 <= n < 2**128), str or bytes, not {}",
        value.get_type().name()?
    )))
}

/// A value or key for Python: integers as `int`; byte strings as `str` when `as_text`
/// (text keys) and valid UTF-8, else `bytes`.
pub fn to_py(py: Python<'_>, datum: Datum, as_text: bool) -> Py<PyAny> {
    match datum {
        Datum::Uint(n) => n.into_pyobject(py).expect("int").into_any().unbind(),
        Datum::Bytes(b) => match (as_text, String::from_utf8(b)) {
            (true, Ok(s)) => PyString::new(py, &s).into_any().unbind(),
            (_, Ok(s)) => PyBytes::new(py, s.as_bytes()).into_any().unbind(),
            (_, Err(e)) => PyBytes::new(py, e.as_bytes()).into_any().unbind(),
        },
    }
}
