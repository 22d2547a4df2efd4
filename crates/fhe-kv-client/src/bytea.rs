//! `bytea` hex text, as psql prints it and accepts it (`\x0a1b…`).

use crate::error::{Error, Result};

/// `\x` followed by lowercase hex: pasteable into psql as `'\x…'::bytea`.
pub fn format_bytea_hex(bytes: &[u8]) -> String {
    format!("\\x{}", hex::encode(bytes))
}

/// Parse hex text with or without a leading `\x` (also `0x`); whitespace anywhere
/// (line breaks from copy/paste, psql's wrapping) is ignored.
pub fn parse_bytea_hex(text: &str) -> Result<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = compact
        .strip_prefix("\\x")
        .or_else(|| compact.strip_prefix("0x"))
        .unwrap_or(&compact);
    if digits.is_empty() {
        return Err(Error::Usage(
            "no hex input (expected \\x followed by hex digits)".into(),
        ));
    }
    hex::decode(digits).map_err(|e| {
        let what = match e {
            hex::FromHexError::InvalidHexCharacter { c, index } => {
                format!("invalid character {c:?} at hex digit {}", index + 1)
            }
            hex::FromHexError::OddLength => {
                format!(
                    "odd number of hex digits ({}); input truncated?",
                    digits.len()
                )
            }
            other => other.to_string(),
        };
        Error::Usage(format!("input is not hex bytea text: {what}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_prefixes() {
        let bytes = vec![0x46, 0x48, 0x4b, 0x56, 0x00, 0xff];
        let text = format_bytea_hex(&bytes);
        assert_eq!(text, "\\x46484b5600ff");
        assert_eq!(parse_bytea_hex(&text).unwrap(), bytes);
        assert_eq!(parse_bytea_hex("46484b5600ff").unwrap(), bytes);
        assert_eq!(parse_bytea_hex("0x46484B5600FF").unwrap(), bytes);
        assert_eq!(
            parse_bytea_hex("  \\x4648\n4b56 00\tff\r\n").unwrap(),
            bytes
        );
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in ["", "  \n", "\\x", "\\x123", "\\xzz", "\\x\\x00", "hello"] {
            let err = parse_bytea_hex(bad).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad:?}: {err}");
        }
        assert!(parse_bytea_hex("\\x123")
            .unwrap_err()
            .to_string()
            .contains("odd"));
    }
}
