//! The connection file (`~/.wasmpar/cluster.json`, mode 0600): where the
//! server is, the token to reach it, and the TLS certificate to trust.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionInfo {
    pub url: String,
    pub token: String,
    pub pid: u32,
    pub engines: usize,
    /// `sha256:<hex>` of the server's TLS certificate, pinned by engines and
    /// the CLI; absent for plain HTTP (and in files older than TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".wasmpar").join("cluster.json")
}

pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Write atomically (temp file + rename) with mode 0600.
pub fn write(path: &Path, info: &ConnectionInfo) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(info).map_err(std::io::Error::other)?.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub fn read(path: &Path) -> std::io::Result<ConnectionInfo> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The token a controller on `path` uses: the one kept beside the file
/// (`cluster.token`, mode 0600) by an earlier controller, so engine processes
/// waiting to reconnect after a restart are let in; a new one otherwise.
pub fn kept_token(path: &Path) -> std::io::Result<String> {
    let token_file = path.with_extension("token");
    if let Ok(t) = std::fs::read_to_string(&token_file) {
        let t = t.trim();
        if t.len() >= 32 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(t.to_string());
        }
    }
    let token = new_token();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&token_file)?;
    f.write_all(token.as_bytes())?;
    Ok(token)
}
