//! `import fhe_kv`: the fhe_kv client for Python, built from the Rust client library.
//!
//! The data owner's secret key and all encryption stay in this process, as with the
//! `fhe-kv` CLI; the database only ever sees ciphertexts. See crates/fhe-kv-python/README.md.

use pyo3::prelude::*;

mod client;
mod datum;
mod errors;
mod keys;

#[pymodule]
fn fhe_kv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("Error", m.py().get_type::<errors::Error>())?;
    m.add_class::<keys::ClientKeys>()?;
    m.add_class::<client::Client>()?;
    m.add_function(wrap_pyfunction!(keys::generate_keys, m)?)?;
    m.add_function(wrap_pyfunction!(keys::load_client_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::read_server_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::write_server_key, m)?)?;
    m.add_function(wrap_pyfunction!(client::connect, m)?)?;
    Ok(())
}
