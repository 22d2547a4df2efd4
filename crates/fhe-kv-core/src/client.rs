//! What the key owner does: encrypt query keys and values, decrypt answers.

use crate::codec;
use crate::envelope::Kind;
use crate::error::{FheKvError, Result};
use crate::kernels::{DeleteStatus, SetStatus};
use crate::keys::ClientKeys;
use crate::params::Width;

impl ClientKeys {
    /// Encrypt a key to query a table whose keys are `width` wide (envelope `query_key`).
    pub fn encrypt_key(&self, key: u64, width: Width) -> Result<Vec<u8>> {
        codec::encrypt_integer(&self.hl, self.key_id, Kind::QueryKey, width, key)
    }

    /// Encrypt a value for a table whose values are `width` wide (envelope `value`).
    pub fn encrypt_value(&self, value: u64, width: Width) -> Result<Vec<u8>> {
        codec::encrypt_integer(&self.hl, self.key_id, Kind::Value, width, value)
    }

    /// Decrypt the answer of `fhe_get`: `None` when the key is absent.
    pub fn decrypt_get(&self, result: &[u8]) -> Result<Option<u64>> {
        codec::decrypt_get_result(&self.hl, self.key_id, result).map(|(_, v)| v)
    }

    /// Decrypt the status returned by `fhe_set`.
    pub fn decrypt_set_status(&self, status: &[u8]) -> Result<SetStatus> {
        let code = codec::decrypt_status(&self.hl, self.key_id, Kind::SetStatus, status)?;
        SetStatus::from_code(code).ok_or_else(|| FheKvError::BadPayload {
            what: "set status",
            detail: format!("unknown status code {code}"),
        })
    }

    /// Decrypt the status returned by `fhe_delete`.
    pub fn decrypt_delete_status(&self, status: &[u8]) -> Result<DeleteStatus> {
        let code = codec::decrypt_status(&self.hl, self.key_id, Kind::DeleteStatus, status)?;
        DeleteStatus::from_code(code).ok_or_else(|| FheKvError::BadPayload {
            what: "delete status",
            detail: format!("unknown status code {code}"),
        })
    }

    /// Decrypt any envelope this key can read, for `fhe-kv decrypt`: returns a
    /// human-readable rendering.
    pub fn decrypt_any(&self, bytes: &[u8]) -> Result<String> {
        let env = crate::envelope::Envelope::parse(bytes, "ciphertext")?;
        match env.kind {
            Kind::GetResult => Ok(match self.decrypt_get(bytes)? {
                Some(v) => format!("found {v}"),
                None => "not found".to_string(),
            }),
            Kind::SetStatus => Ok(self.decrypt_set_status(bytes)?.name().to_string()),
            Kind::DeleteStatus => Ok(self.decrypt_delete_status(bytes)?.name().to_string()),
            other => Err(FheKvError::InvalidArgument(format!(
                "cannot decrypt an envelope of kind '{other}' (expected get_result, set_status or delete_status)"
            ))),
        }
    }
}
