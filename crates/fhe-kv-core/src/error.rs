//! One error type for the whole core crate. Every variant says what is wrong in words a
//! user can act on; [`FheKvError::hint`] adds the likely fix. The extension maps these
//! to `ERROR` reports (message + hint), the CLI prints them to stderr.

use crate::envelope::{KeyId, Kind};

pub type Result<T, E = FheKvError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum FheKvError {
    #[error("{what} is not an fhe_kv envelope: {detail}")]
    Malformed { what: &'static str, detail: String },

    #[error("{what} has envelope kind '{got}', expected '{expected}'")]
    WrongKind {
        what: &'static str,
        expected: Kind,
        got: Kind,
    },

    #[error("{what} was made for key_id {got}, but this table uses key_id {expected}")]
    KeyMismatch {
        what: &'static str,
        expected: KeyId,
        got: KeyId,
    },

    #[error("{what} is {got} bits wide, but the table expects {expected} bits")]
    WidthMismatch {
        what: &'static str,
        expected: u32,
        got: u32,
    },

    #[error("{what} is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: u64,
    },

    #[error("{what}: the TFHE payload could not be decoded: {detail}")]
    BadPayload { what: &'static str, detail: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error("internal error: {0}")]
    Internal(String),
}

impl FheKvError {
    /// A short, actionable hint for the user (shown as the `HINT` of an SQL error).
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            FheKvError::Malformed { .. } => {
                "Pass bytes produced by the fhe-kv CLI or client library (e.g. `fhe-kv encrypt`), unmodified."
            }
            FheKvError::WrongKind {
                expected: Kind::FetchQuery,
                ..
            } => {
                "fhe_fetch takes the fetch query the client library builds from the fhe_locate answer (ClientKeys::fetch_query)."
            }
            FheKvError::WrongKind { .. } => {
                "Each argument has its own kind: encrypt keys with `fhe-kv encrypt --key`, values with `fhe-kv encrypt --value`."
            }
            FheKvError::KeyMismatch { .. } => {
                "Encrypt with the client key whose server key the table was created with (see fhe_kv.tables.key_id)."
            }
            FheKvError::WidthMismatch { .. } => {
                "Encrypt with the table's key_bits/value_bits (see fhe_kv.tables)."
            }
            FheKvError::TooLarge { .. } => "The input is larger than any valid ciphertext of this kind.",
            FheKvError::BadPayload { .. } => {
                "The ciphertext is corrupted or was made with other TFHE parameters; re-encrypt it with the fhe-kv CLI."
            }
            _ => return None,
        })
    }
}

pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> FheKvError {
    FheKvError::Malformed {
        what,
        detail: detail.into(),
    }
}
