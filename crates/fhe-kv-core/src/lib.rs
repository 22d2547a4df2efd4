//! fhe_kv core: everything that does not need Postgres.
//!
//! * [`params`]: the pinned TFHE-rs parameter set and table widths;
//! * [`envelope`]: the wire envelope every ciphertext crossing SQL travels in;
//! * [`keys`]: client/server key generation, the `key_id` fingerprint, server-key loading;
//! * [`codec`]: typed payloads (query key, value, get result, status, row), decoded only
//!   with `safe_deserialize_conformant` and size limits;
//! * [`kernels`]: the oblivious GET/SET/DELETE algorithms over a slice of rows;
//! * [`client`]: what a key owner does: encrypt queries, decrypt answers;
//! * [`encoding`]: text keys → keyed tags, byte strings → length-prefixed integers;
//! * [`client_rows`]: the key owner sealing/opening whole stored rows (import/export);
//! * [`noise`]: the stored blocks' noise budget, from TFHE-rs' noise formulas;
//! * [`rounding`]: coefficients rounded for storage and the wire, ties to even;
//! * [`two_round`]: wire formats of the two-round GET (locate, then fetch by CMux tree);
//! * [`bucket`]: the bucketed layout (candidate buckets selected by CMux trees, kernels on
//!   their slots only, write-back by an expansion tree);
//! * [`leveled`]: leveled equality (a stored key GLWE against a query's chunk GGSWs: one
//!   external product per chunk, bootstraps only to decide).

pub mod bucket;
pub mod client;
pub mod client_rows;
pub mod client_two_round;
pub mod codec;
pub mod encoding;
pub mod envelope;
pub mod error;
pub mod kernels;
pub mod keys;
pub mod leveled;
pub mod noise;
pub mod params;
pub mod rounding;
pub mod row;
pub mod runtime;
#[cfg(any(test, feature = "test-keys"))]
pub mod testkeys;
pub mod two_round;

pub use client_rows::{ClearRow, RowSealer};
pub use client_two_round::Located;
pub use encoding::{Datum, FromDatum, KeyType, TableCodec, ValueType};
pub use envelope::{Envelope, KeyId, Kind};
pub use error::{FheKvError, Result};
pub use params::Width;
