//! One controller per store file: an exclusive advisory lock (`flock`) on
//! `<db>.lock` beside the database, held for the store's lifetime.
//!
//! Invariants:
//! - The lock is taken before the database is touched: a second controller
//!   fails before it could mark the first one's running tasks `lost`.
//! - The kernel drops the lock when its holder's file closes, however the
//!   process ends (SIGKILL included): a successor never meets a stale lock,
//!   and the file itself is left in place (removing it would race a
//!   successor's open).
//! - The file's text names the holder (pid, connection file, since when); it
//!   only informs the error. The lock, not the text, decides.
//! - The descriptor is close-on-exec (std's default): engine processes a
//!   controller launches do not inherit the lock.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The lock held on a store file; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
    // Kept open: closing it is what releases the lock.
    _file: File,
}

/// `tasks.sqlite` → `tasks.sqlite.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "tasks.sqlite".into());
    name.push(".lock");
    db.with_file_name(name)
}

impl StoreLock {
    /// Take the lock of `db` for `holder` (a description of this controller),
    /// or fail at once naming the file and the controller that holds it.
    pub fn acquire(db: &Path, holder: &str) -> Result<StoreLock> {
        let path = lock_path(db);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::BadRequest(format!("cannot open the task store's lock {}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut other = String::new();
                let _ = file.read_to_string(&mut other);
                let other = other.trim();
                let other = if other.is_empty() { "one that has not written its name yet" } else { other };
                return Err(Error::BadRequest(format!(
                    "the task store {} is in use by another controller ({other}): one controller per store file. \
                     Stop that one first (`wasmpar stop`), or give this one another --db (or --db none)",
                    db.display()
                )));
            }
            return Err(Error::BadRequest(format!("cannot lock the task store {} ({}): {e}", db.display(), path.display())));
        }
        let text = format!("{holder}, since {}\n", chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(text.as_bytes()));
        if let Err(e) = written {
            // The lock holds anyway; only the name in a rival's error is missing.
            tracing::warn!(error = %e, lock = %path.display(), "cannot write the holder into the task store's lock");
        }
        Ok(StoreLock { path, _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
