//! `encrypt` and `decrypt`: turn keys/values into ciphertexts for psql and answers back into text.

use super::bulk::{key_datum, value_datum};
use super::{check_fits, parse_bits, Context, Outcome};
use clap::{ArgGroup, Args};
use fhe_kv_client::{format_bytea_hex, parse_bytea_hex, Error, Result, Width};
use std::io::Read;

const ENCRYPT_AFTER_HELP: &str = r#"Example (psql):
  fhe-kv encrypt --key 42 --bits 32 > k.hex
  psql -At -c "SELECT fhe_kv.fhe_get('prices', '$(cat k.hex)')" | fhe-kv decrypt

--bits must match the table's key_bits (for --key) or value_bits (for --value)."#;

const DECRYPT_AFTER_HELP: &str = r#"Examples:
  fhe-kv decrypt '\x46484b5601060000…'
  psql -At -c "SELECT fhe_kv.fhe_delete('prices', '$(cat k.hex)')" | fhe-kv decrypt

Accepts hex with or without the \x prefix; whitespace is ignored."#;

#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("what").required(true).multiple(true).args(["key", "value"])),
    after_help = ENCRYPT_AFTER_HELP
)]
pub struct EncryptArgs {
    /// Encrypt this query key (argument of fhe_get/fhe_set/fhe_delete).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Encrypt this value (argument of fhe_set); with --table, give --key too.
    #[arg(long, value_name = "VALUE")]
    pub value: Option<String>,
    /// Encrypt for TABLE's types (text keys, byte values); needs the database.
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Width in bits: 8, 16, 32 or 64.
    #[arg(long, default_value_t = 64, value_name = "B", value_parser = parse_bits)]
    pub bits: u32,
}

impl EncryptArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        match self {
            EncryptArgs {
                key,
                value,
                table: Some(table),
                ..
            } => {
                let mut c = ctx.client()?;
                ctx.timed(|| {
                    let t = c.table(&table)?;
                    let key = key.as_deref().ok_or_else(|| {
                        Error::Usage(
                            "with --table, give --key (and --value to encrypt a value)".into(),
                        )
                    })?;
                    let k = key_datum(&t, key)?;
                    let bytes = match &value {
                        None => c.encrypt_query_key(&table, k)?,
                        Some(v) => c.encrypt_value_for(&table, k, value_datum(&t, v)?)?,
                    };
                    Ok(format_bytea_hex(&bytes).into())
                })
            }
            EncryptArgs {
                key, value, bits, ..
            } => {
                let keys = ctx.client_keys()?;
                let width = Width::from_bits(bits)?;
                let number = |s: &str, what: &str| -> Result<u64> {
                    let n: u64 = s.parse().map_err(|_| {
                        Error::Usage(format!(
                            "{what} {s:?} is not a number (use --table for text)"
                        ))
                    })?;
                    check_fits(n, width, what)?;
                    Ok(n)
                };
                ctx.timed(|| {
                    let bytes = match (&key, &value) {
                        (Some(k), None) => keys.encrypt_key(number(k, "key")?, width)?,
                        (None, Some(v)) => keys.encrypt_value(number(v, "value")?, width)?,
                        _ => return Err(Error::Usage(
                            "give exactly one of --key and --value (or --table with --key [--value])"
                                .into(),
                        )),
                    };
                    Ok(format_bytea_hex(&bytes).into())
                })
            }
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = DECRYPT_AFTER_HELP)]
pub struct DecryptArgs {
    /// The ciphertext as hex; read from stdin when absent or "-".
    #[arg(value_name = "HEX")]
    pub hex: Option<String>,
    /// Decode a GET answer as TABLE's value type (text, bytes); needs the database.
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
}

impl DecryptArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let DecryptArgs { hex, table } = self;
        let text = match hex.as_deref() {
            None | Some("-") => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|source| Error::Io {
                        action: "reading",
                        path: "standard input".into(),
                        source,
                    })?;
                s
            }
            Some(h) => h.to_string(),
        };
        let bytes = parse_bytea_hex(&text)?;
        let is_result = fhe_kv_core::Envelope::parse(&bytes, "ciphertext")
            .map(|e| {
                matches!(
                    e.kind,
                    fhe_kv_core::Kind::GetResult | fhe_kv_core::Kind::LeveledAnswer
                )
            })
            .unwrap_or(false);
        match table {
            Some(table) if is_result => {
                let mut c = ctx.client()?;
                ctx.timed(|| {
                    Ok(match c.decrypt_result(&table, &bytes)? {
                        Some(v) => format!("found {v}"),
                        None => "not found".to_string(),
                    }
                    .into())
                })
            }
            _ => {
                let keys = ctx.client_keys()?;
                ctx.timed(|| Ok(keys.decrypt_any(&bytes)?.into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhe_kv_client::ClientKeys;

    #[test]
    fn encrypt_then_decrypt_hex_with_test_key() {
        let (ck, _) = fhe_kv_core::testkeys::test_key_files();
        let keys = ClientKeys::from_bytes(&ck).unwrap();
        let w8 = Width::from_bits(8).unwrap();
        let text = format_bytea_hex(&keys.encrypt_key(200, w8).unwrap());
        assert!(text.starts_with("\\x46484b56"), "envelope magic FHKV");
        // wrapped like a pasted psql cell, without prefix
        let wrapped: String = text.as_bytes()[2..]
            .chunks(60)
            .map(|c| format!("  {}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let bytes = parse_bytea_hex(&wrapped).unwrap();
        let env = fhe_kv_core::Envelope::parse(&bytes, "query key").unwrap();
        assert_eq!(env.kind, fhe_kv_core::Kind::QueryKey);
        assert_eq!(env.bits, 8);
        assert_eq!(env.key_id, keys.key_id());
        // a query key is not something decrypt handles: clear error
        let err = keys.decrypt_any(&bytes).unwrap_err();
        assert!(err.to_string().contains("get_result"), "{err}");
        assert!(check_fits(256, w8, "key").is_err());
        assert!(check_fits(255, w8, "key").is_ok());
    }
}
