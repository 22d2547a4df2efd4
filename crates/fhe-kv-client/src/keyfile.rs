//! Key files: the secret client key (mode 0600, checked on read) and the server key upload.

use crate::error::{Error, Result};
use fhe_kv_core::keys::ClientKeys;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Write the client key to `path`, created with mode 0600.
///
/// Refuses to overwrite an existing file unless `force`; with `force` the new key is
/// written to a temporary 0600 file next to `path` and renamed over it, so the result
/// is 0600 whatever the old file's mode was.
pub fn write_client_key(path: &Path, keys: &ClientKeys, force: bool) -> Result<()> {
    let bytes = keys.to_bytes()?;
    write_file(path, &bytes, 0o600, force, "writing client key")
}

/// Read a client key file. Refuses a file whose mode lets its group or others access it
/// (`mode & 0o077 != 0`), before reading a byte of it.
pub fn read_client_key(path: &Path) -> Result<ClientKeys> {
    let action = "reading client key";
    let mut file = File::open(path).map_err(|e| Error::io(action, path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(action, path, e))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecureKeyFile {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(action, path, e))?;
    Ok(ClientKeys::from_bytes(&bytes)?)
}

/// Write the server key upload (not secret: mode 0644). Refuses to overwrite unless `force`.
pub fn write_server_key(path: &Path, upload: &[u8], force: bool) -> Result<()> {
    write_file(path, upload, 0o644, force, "writing server key")
}

/// Read a server key upload file (no permission check: it is not secret).
pub fn read_server_key(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("reading server key", path, e))
}

/// Fail early (before a slow key generation) if `path` exists and `force` is off.
pub fn check_writable(path: &Path, force: bool) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(Error::io(
            "writing",
            path,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"),
        ));
    }
    Ok(())
}

fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    force: bool,
    action: &'static str,
) -> Result<()> {
    let io = |e| Error::io(action, path, e);
    if !force {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        return file.sync_all().map_err(io);
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fhe-kv-client-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn group_or_world_accessible_key_is_refused_before_parsing() {
        let dir = scratch("perm");
        let path = dir.join("client.key");
        std::fs::write(&path, b"not a key").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o610] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_client_key(&path).err().expect("must refuse");
            assert!(
                matches!(err, Error::InsecureKeyFile { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(
                err.hint().unwrap().contains("chmod 600"),
                "{:?}",
                err.hint()
            );
        }
        // 0600 passes the check and fails only on the contents
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_client_key(&path).err().unwrap();
        assert!(matches!(err, Error::Fhe(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_key_file_has_a_hint() {
        let err = read_client_key(Path::new("/nonexistent/client.key"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/client.key"), "{err}");
        assert!(err.hint().unwrap().contains("keygen"));
    }

    #[test]
    fn client_key_roundtrip_with_mode_0600() {
        let (ck_bytes, _) = fhe_kv_core::testkeys::test_key_files();
        let keys = ClientKeys::from_bytes(&ck_bytes).unwrap();
        let dir = scratch("roundtrip");
        let path = dir.join("client.key");

        write_client_key(&path, &keys, false).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let loaded = read_client_key(&path).unwrap();
        assert_eq!(loaded.key_id(), keys.key_id());

        // no overwrite without force
        let err = write_client_key(&path, &keys, false).unwrap_err();
        assert!(err.hint().unwrap().contains("--force"), "{err}");
        assert!(check_writable(&path, false).is_err());
        assert!(check_writable(&path, true).is_ok());

        // force replaces a too-open file with a 0600 one
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_client_key(&path).is_err());
        write_client_key(&path, &keys, true).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(read_client_key(&path).unwrap().key_id(), keys.key_id());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
