//! Client library for `fhe_kv`, the PostgreSQL extension that stores key/value tables
//! encrypted with TFHE and answers GET/SET/DELETE without ever seeing keys or values.
//!
//! The data owner keeps a secret [`ClientKeys`] (in a 0600 file, see
//! [`write_client_key`] / [`read_client_key`]) and uploads the matching server key once
//! ([`Connection::register_server_key`]). A [`Client`] then encrypts each query, calls the
//! extension's SQL functions and decrypts the answers:
//!
//! ```no_run
//! use fhe_kv_client::{
//!     read_client_key, write_client_key, write_server_key, Client, ClientKeys, ConnectOptions,
//! };
//! use std::path::Path;
//!
//! # fn main() -> fhe_kv_client::Result<()> {
//! // once: generate keys (~10 s), keep client.key secret, upload the server key
//! let (keys, upload) = ClientKeys::generate()?;
//! write_client_key(Path::new("client.key"), &keys, false)?;
//! write_server_key(Path::new("server.key"), &upload.0, false)?;
//!
//! // URL, key=value string, or None for DATABASE_URL / PGHOST, PGUSER, …
//! let opts = ConnectOptions::from_url("postgres://alice@localhost/kv");
//! let mut client = Client::connect(&opts, read_client_key(Path::new("client.key"))?)?;
//! client.register_server_key(&upload.0)?;
//! client.create_table("accounts", 16, 64, 64)?;
//!
//! client.put("accounts", 1001, 250)?; // SetStatus::Inserted
//! assert_eq!(client.get("accounts", 1001)?, Some(250));
//! client.delete("accounts", 1001)?; // DeleteStatus::Deleted
//! client.grow("accounts", 16)?; // new capacity: 32
//! # Ok(()) }
//! ```
//!
//! The `fhe-kv` binary of this crate is a command-line front end to the same API.

mod bucketed;
mod bulk;
mod bytea;
mod client;
mod connect;
mod error;
mod keyfile;
mod leveled;

pub use bulk::{Entry, ImportReport, Progress};
pub use bytea::{format_bytea_hex, parse_bytea_hex};
pub use client::{Client, Connection, Layout, TableInfo, TableOptions, GET_MANY_BATCH};
pub use connect::{
    describe as describe_config, ConnectOptions, ResolvedConnection, RootCert, SslMode,
    TlsSettings, DEFAULT_HOST, DEFAULT_PORT,
};
pub use error::{Error, Result};
pub use keyfile::{
    check_writable, read_client_key, read_server_key, write_client_key, write_server_key,
};

pub use fhe_kv_core::kernels::{DeleteStatus, SetStatus};
pub use fhe_kv_core::keys::{ClientKeys, ServerKeyUpload};
pub use fhe_kv_core::{Datum, FheKvError, FromDatum, KeyId, KeyType, ValueType, Width};
pub use postgres;
