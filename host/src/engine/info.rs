//! What an engine reports about itself: live counters shared between its
//! thread (which updates them) and the scheduler (which reads them to pick
//! engines and to answer `GET /v1/engines`). Its own file so that the pool and
//! the worker both use it without importing each other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Instant;

use parking_lot::Mutex;

pub use crate::wire::EngineStatus;

/// Live counters of one engine, shared between its thread and the scheduler.
#[derive(Default)]
pub struct EngineInfo {
    pub id: usize,
    pub queued: AtomicUsize,
    pub completed: AtomicU64,
    pub busy: AtomicBool,
    pub restarts: AtomicU64,
    pub libraries: Mutex<Vec<String>>,
    /// Interfaces its installed libraries export.
    pub interfaces: Mutex<Vec<String>>,
    pub placement: Mutex<Placement>,
    /// A remote engine whose link is gone; nothing is sent to it.
    pub lost: AtomicBool,
    /// When its process was last heard from (remote engines).
    pub last_heard: Mutex<Option<Instant>>,
}

/// Where an engine runs.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub host: String,
    pub pid: u32,
    pub labels: BTreeMap<String, String>,
    pub remote: bool,
}

impl Placement {
    /// This process, on this host.
    pub fn here() -> Placement {
        Placement { host: hostname(), pid: std::process::id(), labels: BTreeMap::new(), remote: false }
    }
}

/// This machine's host name (`localhost` if it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; gethostname
    // writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl EngineInfo {
    pub fn new(id: usize, placement: Placement) -> EngineInfo {
        EngineInfo { id, placement: Mutex::new(placement), ..Default::default() }
    }
}
