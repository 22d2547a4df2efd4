//! The libpq password file (`~/.pgpass`, `PGPASSFILE`, `passfile=`).
//!
//! Each line is `hostname:port:database:username:password`; `*` matches anything, `\`
//! escapes `:` and `\`, lines starting with `#` are comments, the first matching line
//! wins. As in libpq, a unix-socket connection to the default socket directory matches
//! `localhost`, and a file that its group or others can read is ignored with a warning.

use std::path::Path;

/// Who we are connecting as, for matching lines of the file.
pub(crate) struct PassfileQuery<'a> {
    /// TCP host name, or the unix socket directory.
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The password for `query` from the file at `path`, if the file exists, is private and has
/// a matching line. Problems are warnings on stderr (libpq's behaviour), never errors.
pub(crate) fn lookup(
    path: &Path,
    query: &PassfileQuery,
    default_socket_dir: &str,
) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "warning: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    find_password(&text, query, default_socket_dir)
}

pub(crate) fn find_password(
    text: &str,
    query: &PassfileQuery,
    default_socket_dir: &str,
) -> Option<String> {
    let host = if query.host.is_empty()
        || query.host == default_socket_dir
        || query.host.trim_end_matches('/') == default_socket_dir
    {
        "localhost"
    } else {
        query.host
    };
    let port = query.port.to_string();
    let wanted = [host, port.as_str(), query.dbname, query.user];
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            // libpq: the password ends at the next unescaped ':'
            matches.then(|| fields[4].clone())
        })
}

/// Split on unescaped `:`, removing the escapes.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.trim_end_matches('\r').chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    fields.last_mut().unwrap().push(escaped);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\
        db.example:5432:kv:alice:pw1\n\
        localhost:*:*:bob:local\\:pw\n\
        /run/pg:6000:*:bob:sock\n\
        *:*:*:carol:any\\\\thing:with:colons\n";

    fn q<'a>(host: &'a str, port: u16, dbname: &'a str, user: &'a str) -> PassfileQuery<'a> {
        PassfileQuery {
            host,
            port,
            dbname,
            user,
        }
    }

    #[test]
    fn first_matching_line_wins() {
        let d = "/var/run/postgresql";
        assert_eq!(
            find_password(FILE, &q("db.example", 5432, "kv", "alice"), d).as_deref(),
            Some("pw1")
        );
        assert_eq!(
            find_password(FILE, &q("db.example", 5433, "kv", "alice"), d),
            None
        );
        // the default socket directory matches "localhost"; another directory itself
        assert_eq!(
            find_password(FILE, &q(d, 5432, "x", "bob"), d).as_deref(),
            Some("local:pw")
        );
        assert_eq!(
            find_password(FILE, &q("/run/pg", 6000, "x", "bob"), d).as_deref(),
            Some("sock")
        );
        assert_eq!(
            find_password(FILE, &q("/run/pg", 6001, "x", "bob"), d),
            None
        );
        assert_eq!(
            find_password(FILE, &q("h", 1, "d", "carol"), d).as_deref(),
            Some("any\\thing")
        );
        assert_eq!(
            find_password("short:line\n", &q("short", 1, "d", "u"), d),
            None
        );
    }

    #[test]
    fn readable_by_others_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fhe-kv-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let query = q("h", 1, "d", "u");
        assert_eq!(lookup(&path, &query, "/s"), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, &query, "/s").as_deref(), Some("secret"));
        assert_eq!(lookup(&dir.join("missing"), &query, "/s"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
