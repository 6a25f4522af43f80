//! What an engine reports about itself: live counters shared between its
//! thread (which updates them) and the scheduler (which reads them to pick
//! engines and to answer `GET /v1/engines`). Its own file so that the pool and
//! the worker both use it without importing each other.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

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
}
