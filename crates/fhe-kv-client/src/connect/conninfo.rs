//! Connection strings: the libpq parameters the `postgres` crate does not parse.
//!
//! libpq accepts `sslmode=verify-ca|verify-full`, `sslrootcert`, `sslcert`, `sslkey` and
//! `passfile`; the `postgres` crate rejects them ("unknown option" / "invalid value"). We
//! take them out of the string, whichever form it has, and hand the rest to the crate:
//!
//! * URLs (`postgres://…?sslmode=verify-full&sslrootcert=ca.pem`): query parameters,
//!   percent-decoded; the other parameters are kept byte for byte.
//! * key=value strings (`host=db sslmode=verify-full`): libpq's grammar (spaces around
//!   `=` allowed, values single-quoted with `\'` and `\\` escapes, or bare with `\`
//!   escapes); the other pairs are written back quoted.

use crate::error::{Error, Result};
use std::collections::HashMap;

/// Parameters handled by this crate rather than by the `postgres` crate.
pub(crate) const EXTRACTED: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey", "passfile"];

/// `conninfo` without the [`EXTRACTED`] parameters, and their values (last one wins, as in
/// libpq).
pub(crate) fn extract(conninfo: &str) -> Result<(String, HashMap<String, String>)> {
    let trimmed = conninfo.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        Ok(extract_from_url(conninfo))
    } else {
        extract_from_pairs(conninfo)
    }
}

fn extract_from_url(url: &str) -> (String, HashMap<String, String>) {
    let mut found = HashMap::new();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), found);
    };
    let mut kept = Vec::new();
    for segment in query.split('&') {
        let (raw_key, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
        let key = percent_decode(raw_key);
        if EXTRACTED.contains(&key.as_str()) {
            found.insert(key, percent_decode(raw_value));
        } else if !segment.is_empty() {
            kept.push(segment);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, found)
}

/// `%XX` decoding; malformed escapes are kept as they are (the `postgres` crate reports
/// them for the parameters it parses).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's key=value grammar, split into pairs.
fn parse_pairs(s: &str) -> Result<Vec<(String, String)>> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "invalid connection string (expected postgres://user@host:port/dbname or key=value pairs): {why}"
        ))
    };
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(bad(&format!("missing \"=\" after \"{key}\"")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(bad(&format!("unterminated quoted value of \"{key}\""))),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(bad(&format!("unterminated quoted value of \"{key}\"")))
                        }
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn extract_from_pairs(s: &str) -> Result<(String, HashMap<String, String>)> {
    let mut found = HashMap::new();
    let mut kept = Vec::new();
    for (key, value) in parse_pairs(s)? {
        if EXTRACTED.contains(&key.as_str()) {
            found.insert(key, value);
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_out() {
        let (rest, found) = extract(
            "postgres://u@db:5/kv?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u@db:5/kv?application_name=x&connect_timeout=3"
        );
        assert_eq!(found["sslmode"], "verify-full");
        assert_eq!(found["sslrootcert"], "/tmp/ca x.pem");

        let (rest, found) = extract("postgresql://h/d?sslcert=c&sslkey=k").unwrap();
        assert_eq!(rest, "postgresql://h/d");
        assert_eq!(
            (found["sslcert"].as_str(), found["sslkey"].as_str()),
            ("c", "k")
        );

        let (rest, found) = extract("postgres://h/d").unwrap();
        assert_eq!(rest, "postgres://h/d");
        assert!(found.is_empty());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%é"), "%é");
    }

    #[test]
    fn key_value_pairs_are_taken_out_and_the_rest_requoted() {
        let (rest, found) = extract(
            "host=db  port = 5 sslmode=verify-ca sslrootcert='/a b/it\\'s.pem' password='p w\\\\' passfile=/x",
        )
        .unwrap();
        assert_eq!(rest, "host='db' port='5' password='p w\\\\'");
        assert_eq!(found["sslmode"], "verify-ca");
        assert_eq!(found["sslrootcert"], "/a b/it's.pem");
        assert_eq!(found["passfile"], "/x");
        // the postgres crate reads the rewritten string back to the same values
        let config: postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"p w\\"[..]));
        assert_eq!(config.get_ports(), &[5]);

        assert!(extract("host").is_err());
        assert!(extract("host='db").is_err());
        assert_eq!(extract("").unwrap().0, "");
    }
}
