//! `keygen` and `register`: generate a key pair, upload the server key to the database.

use super::{Context, Outcome};
use clap::Args;
use fhe_kv_client::{
    check_writable, read_server_key, write_client_key, write_server_key, ClientKeys, Error, Result,
};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  fhe-kv keygen --out-dir ~/.fhe-kv\n\n\
Writes DIR/client.key (mode 0600; keep it secret and backed up: without it the data is lost)\n\
and DIR/server.key (~76 MB; upload it with `fhe-kv register --server-key DIR/server.key`).")]
pub struct KeygenArgs {
    /// Directory to write client.key and server.key to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

impl KeygenArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let KeygenArgs { out_dir, force } = self;
        let ck_path = out_dir.join("client.key");
        let sk_path = out_dir.join("server.key");
        std::fs::create_dir_all(&out_dir).map_err(|e| Error::Io {
            action: "creating directory",
            path: out_dir.clone(),
            source: e,
        })?;
        // fail before the slow part
        check_writable(&ck_path, force)?;
        check_writable(&sk_path, force)?;
        eprintln!("generating keys… (~10 s)");
        ctx.timed(|| {
            let (keys, upload) = ClientKeys::generate()?;
            write_server_key(&sk_path, &upload.0, force)?;
            write_client_key(&ck_path, &keys, force)?;
            Ok(format!(
                "key_id:     {}\nclient key: {} (secret, mode 0600)\nserver key: {} ({} MB; upload with `fhe-kv register --server-key {}`)",
                keys.key_id(),
                ck_path.display(),
                sk_path.display(),
                upload.0.len() / 1_000_000,
                sk_path.display(),
            )
            .into())
        })
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  fhe-kv register --server-key ~/.fhe-kv/server.key")]
pub struct RegisterArgs {
    /// The server.key file written by `fhe-kv keygen`.
    #[arg(long, value_name = "FILE")]
    pub server_key: PathBuf,
}

impl RegisterArgs {
    pub fn run(self, ctx: &Context) -> Result<Outcome> {
        let upload = read_server_key(&self.server_key)?;
        let mut conn = ctx.connect()?;
        eprintln!("uploading server key ({} MB)…", upload.len() / 1_000_000);
        ctx.timed(|| Ok(conn.register_server_key(&upload)?.to_string().into()))
    }
}
