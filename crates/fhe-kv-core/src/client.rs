//! What the key owner does: encrypt query keys and values, decrypt answers.

use crate::codec;
use crate::envelope::Kind;
use crate::error::{FheKvError, Result};
use crate::kernels::{DeleteStatus, SetStatus};
use crate::keys::ClientKeys;
use crate::params::Width;

impl ClientKeys {
    /// The secret of this key's text-key tags (see [`crate::encoding`]), derived from the
    /// LWE secret key so it needs no extra key material.
    pub fn tag_secret(&self) -> crate::encoding::TagSecret {
        let shortint_ck = self.hl.clone().into_raw_parts().0.into_raw_parts();
        crate::encoding::TagSecret::derive(shortint_ck.encryption_key().as_ref())
    }

    /// Encrypt a key to query a table whose keys are `width` wide (envelope `query_key`).
    pub fn encrypt_key(&self, key: u64, width: Width) -> Result<Vec<u8>> {
        self.encrypt_key_le(&width.le_bytes_of(key, "key")?, width)
    }

    /// Encrypt a value for a table whose values are `width` wide (envelope `value`).
    pub fn encrypt_value(&self, value: u64, width: Width) -> Result<Vec<u8>> {
        self.encrypt_value_le(&width.le_bytes_of(value, "value")?, width)
    }

    /// [`Self::encrypt_key`] for any width: `plain` is the little-endian plaintext,
    /// exactly `width.bytes()` long (see [`crate::encoding`] for text keys).
    pub fn encrypt_key_le(&self, plain: &[u8], width: Width) -> Result<Vec<u8>> {
        codec::encrypt_integer(&self.hl, self.key_id, Kind::QueryKey, width, plain)
    }

    /// [`Self::encrypt_value`] for any width (see [`crate::encoding`] for byte strings).
    pub fn encrypt_value_le(&self, plain: &[u8], width: Width) -> Result<Vec<u8>> {
        codec::encrypt_integer(&self.hl, self.key_id, Kind::Value, width, plain)
    }

    /// Decrypt the answer of `fhe_get`: `None` when the key is absent. Values wider than
    /// 64 bits must be read with [`Self::decrypt_get_le`].
    pub fn decrypt_get(&self, result: &[u8]) -> Result<Option<u64>> {
        match self.decrypt_get_le(result)? {
            None => Ok(None),
            Some(le) => u64_of_le(&le).map(Some),
        }
    }

    /// Decrypt the answer of `fhe_get` to the little-endian plaintext of the table's value
    /// width: `None` when the key is absent.
    pub fn decrypt_get_le(&self, result: &[u8]) -> Result<Option<Vec<u8>>> {
        self.row_sealer().open_get_result(result).map(|(_, v)| v)
    }

    /// Decrypt the status returned by `fhe_set`.
    pub fn decrypt_set_status(&self, status: &[u8]) -> Result<SetStatus> {
        let code = self.row_sealer().open_status(Kind::SetStatus, status)?;
        SetStatus::from_code(code).ok_or_else(|| FheKvError::BadPayload {
            what: "set status",
            detail: format!("unknown status code {code}"),
        })
    }

    /// Decrypt the status returned by `fhe_delete`.
    pub fn decrypt_delete_status(&self, status: &[u8]) -> Result<DeleteStatus> {
        let code = self.row_sealer().open_status(Kind::DeleteStatus, status)?;
        DeleteStatus::from_code(code).ok_or_else(|| FheKvError::BadPayload {
            what: "delete status",
            detail: format!("unknown status code {code}"),
        })
    }

    /// Decrypt any envelope this key can read, for `fhe-kv decrypt`: returns a
    /// human-readable rendering.
    pub fn decrypt_any(&self, bytes: &[u8]) -> Result<String> {
        let env = crate::envelope::Envelope::parse(bytes, "ciphertext")?;
        let found = |value: Option<Vec<u8>>| match value {
            Some(le) => match u64_of_le(&le) {
                Ok(v) => format!("found {v}"),
                Err(_) => format!(
                    "found 0x{}",
                    hex::encode(le.iter().rev().copied().collect::<Vec<u8>>())
                ),
            },
            None => "not found".to_string(),
        };
        match env.kind {
            Kind::GetResult => Ok(found(self.decrypt_get_le(bytes)?)),
            Kind::SetStatus => Ok(self.decrypt_set_status(bytes)?.name().to_string()),
            Kind::DeleteStatus => Ok(self.decrypt_delete_status(bytes)?.name().to_string()),
            Kind::LeveledAnswer => {
                // The envelope carries the value width; an answer does not depend on the
                // key width.
                let value = Width::from_bits(u32::from(env.bits))?;
                let layout = crate::leveled::RowLayout::new(value, value);
                Ok(found(self.open_leveled_answer_bytes(layout, bytes)?))
            }
            Kind::LeveledStatus => Ok(match self.open_leveled_status(bytes)? {
                true => DeleteStatus::Deleted.name().to_string(),
                false => DeleteStatus::NotFound.name().to_string(),
            }),
            other => Err(FheKvError::InvalidArgument(format!(
                "cannot decrypt an envelope of kind '{other}' (expected get_result, set_status, \
                 delete_status, leveled_answer or leveled_status)"
            ))),
        }
    }
}

/// A little-endian plaintext as a u64, if it fits.
pub fn u64_of_le(le: &[u8]) -> Result<u64> {
    if le.iter().skip(8).any(|&b| b != 0) {
        return Err(FheKvError::InvalidArgument(format!(
            "a {}-bit value does not fit in a u64",
            le.len() * 8
        )));
    }
    let mut word = [0u8; 8];
    let n = le.len().min(8);
    word[..n].copy_from_slice(&le[..n]);
    Ok(u64::from_le_bytes(word))
}
