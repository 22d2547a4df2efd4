//! Turning errors into Postgres `ERROR`s with a message, SQLSTATE and hint.

use fhe_kv_core::FheKvError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Everything the extension can refuse.
#[derive(Debug, thiserror::Error)]
pub enum ExtError {
    #[error("{0}")]
    Core(#[from] FheKvError),
    #[error("{0} must not be NULL")]
    Null(&'static str),
    #[error("relation \"{0}\" is not an fhe_kv table")]
    NotFheTable(String),
    #[error("relation with OID {0} does not exist")]
    NoSuchRelation(u32),
    #[error("no server key with key_id {0} is registered")]
    UnknownKey(String),
    /// The key_id is registered for session-only use and this session has not loaded it.
    #[error("server key {0} is loaded per session, and this session has not loaded it")]
    SessionKeyNotLoaded(String),
    #[error(
        "this session already holds {loaded} session keys (fhe_kv.server_key_cache_size = {limit})"
    )]
    TooManySessionKeys { loaded: usize, limit: usize },
    #[error("fhe_kv table \"{table}\" is inconsistent: {detail}")]
    Corrupt { table: String, detail: String },
    #[error("SPI error: {0}")]
    Spi(String),
    /// A key owner's write whose read is out of date: another write came in between.
    #[error("{0} changed since the bucket read this write was computed from")]
    StaleWrite(String),
    /// A leveled table's round 2 whose round 1 is out of date: a write came in between.
    #[error(
        "{0} changed since the round 1 (fhe_locate / fhe_set_locate) this call was computed from"
    )]
    StaleRound(String),
    /// `fhe_set` on a leveled table, whose SET needs the key owner between two rounds.
    #[error("{0} is a leveled table: its SET takes two rounds, fhe_set_locate then fhe_write")]
    LeveledSetTakesTwoRounds(String),
    /// A server-side SET or locate on a bucketed table of leveled slots, which has neither:
    /// the key owner's bucket read and write do both, with no bootstrap.
    #[error(
        "{0} is a bucketed table of leveled slots (bucket-leveled-v1): {1} is not computed \
         there; its SET is the key owner's fhe_fetch then fhe_write"
    )]
    LeveledBucketsByOwner(String, &'static str),
    /// A write-back past a bucketed table's noise budget: refused, nothing changed.
    #[error(
        "{table} has had {writes} write-backs since the key owner last sealed its rows, its \
         row format's noise budget ({budget}): further writes are refused until the key owner \
         re-seals them"
    )]
    WriteBudget {
        table: String,
        writes: u64,
        budget: u64,
    },
    /// An error about one element of an array argument (1-based position, as in SQL).
    #[error("{what}[{position}]: {source}")]
    Element {
        what: &'static str,
        position: usize,
        source: Box<ExtError>,
    },
}

impl From<pgrx::spi::SpiError> for ExtError {
    fn from(e: pgrx::spi::SpiError) -> Self {
        ExtError::Spi(e.to_string())
    }
}

impl ExtError {
    fn code(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            ExtError::Element { source, .. } => source.code(),
            ExtError::Core(FheKvError::Malformed { .. })
            | ExtError::Core(FheKvError::BadPayload { .. })
            | ExtError::Core(FheKvError::TooLarge { .. }) => ERRCODE_INVALID_BINARY_REPRESENTATION,
            ExtError::Core(FheKvError::Internal(_)) | ExtError::Core(FheKvError::Io(_)) => {
                ERRCODE_INTERNAL_ERROR
            }
            ExtError::Core(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            ExtError::Null(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            ExtError::NotFheTable(_) => ERRCODE_WRONG_OBJECT_TYPE,
            ExtError::NoSuchRelation(_) => ERRCODE_UNDEFINED_TABLE,
            ExtError::UnknownKey(_) => ERRCODE_UNDEFINED_OBJECT,
            ExtError::SessionKeyNotLoaded(_) => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            ExtError::TooManySessionKeys { .. } => ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            ExtError::Corrupt { .. } => ERRCODE_DATA_CORRUPTED,
            ExtError::Spi(_) => ERRCODE_INTERNAL_ERROR,
            ExtError::StaleWrite(_) | ExtError::StaleRound(_) => ERRCODE_T_R_SERIALIZATION_FAILURE,
            ExtError::LeveledSetTakesTwoRounds(_) | ExtError::LeveledBucketsByOwner(..) => {
                ERRCODE_WRONG_OBJECT_TYPE
            }
            ExtError::WriteBudget { .. } => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            ExtError::Element { source, .. } => source.hint(),
            ExtError::Core(e) => e.hint(),
            ExtError::Null(_) => {
                Some("Pass a value; fhe_kv functions do not treat NULL as a key or value.")
            }
            ExtError::NotFheTable(_) => Some(
                "Create encrypted tables with fhe_kv.create_table; see the fhe_kv.tables view. \
                 A table restored without its catalog entry (pg_dump -t, or a dump made before \
                 fhe_kv 0.2.0) is registered again with fhe_kv.attach_table (fhe-kv attach).",
            ),
            ExtError::UnknownKey(_) => {
                Some("Upload it first with fhe_kv.register_server_key (fhe-kv register).")
            }
            ExtError::SessionKeyNotLoaded(_) => Some(
                "Load the server key in this session first: SELECT fhe_kv.load_session_key(<server.key \
                 bytes>) (fhe-kv --session-key FILE, Connection::load_session_key), or register it \
                 for every session with fhe_kv.register_server_key.",
            ),
            ExtError::TooManySessionKeys { .. } => Some(
                "Unload one with fhe_kv.unload_session_key(key_id) (see fhe_kv.session_keys), or \
                 raise fhe_kv.server_key_cache_size; each loaded key takes ~250 MB of this \
                 backend's memory.",
            ),
            ExtError::StaleWrite(_) => Some(
                "Read the buckets again (fhe_fetch) and recompute the write; to avoid this, run \
                 LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE, fhe_fetch and fhe_write in one \
                 transaction, as the fhe-kv client does.",
            ),
            ExtError::LeveledSetTakesTwoRounds(_) => Some(
                "The key owner reads round 1's answer and computes round 2: use `fhe-kv put` or \
                 Client::put, which run both rounds in one transaction.",
            ),
            ExtError::LeveledBucketsByOwner(..) => Some(
                "Use `fhe-kv put` / `fhe-kv get --two-round` or Client::put / get_two_round: the \
                 key owner reads the key's two buckets (fhe_fetch) and writes the change \
                 (fhe_write) in one transaction. fhe_get and fhe_delete run on the server.",
            ),
            ExtError::WriteBudget { .. } => Some(
                "Run `fhe-kv refresh TABLE` (Client::refresh): the key owner decrypts and \
                 re-seals every bucket (fhe_kv.rehash), which sets the count back to 0. Reads \
                 keep working meanwhile (docs/leveled.md, \"The budget is writes\").",
            ),
            ExtError::StaleRound(_) => Some(
                "Run round 1 again and recompute round 2; to avoid this, run LOCK TABLE ... IN \
                 SHARE ROW EXCLUSIVE MODE and both rounds in one transaction, as the fhe-kv \
                 client does.",
            ),
            ExtError::Corrupt { .. } => {
                Some("Slots were added or removed outside fhe_kv; restore the table from a backup.")
            }
            _ => None,
        }
    }
}

/// Unwrap or raise an `ERROR` (never returns on error). Postgres unwinds the statement;
/// no data has been written when this is reached before the final UPDATE.
pub fn unwrap_or_report<T>(result: Result<T, ExtError>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            let mut report = ErrorReport::new(e.code(), format!("fhe_kv: {e}"), "fhe_kv");
            if let Some(hint) = e.hint() {
                report = report.set_hint(hint);
            }
            report.report(PgLogLevel::ERROR);
            unreachable!("ERROR does not return")
        }
    }
}
