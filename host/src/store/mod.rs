//! The task store: every task's record, kept beyond the controller's memory
//! and its lifetime (IPython Parallel's hub database, `--sqlitedb`).
//!
//! Invariants:
//! - One trait, [`TaskStore`]; [`SqliteStore`] is the embedded default
//!   (`~/.wasmpar/tasks.sqlite`), [`MemoryStore`] is `--db none`.
//! - `put` never blocks on disk: it hands the record to the store, which
//!   writes it later (SQLite: one writer thread, batched commits). A `get` or
//!   `query` sees a `put` once it is committed — at most one batch window
//!   later, or at once after `flush`.
//! - A record is keyed by its task id; a later `put` of the same id replaces
//!   it. `view` is kept verbatim, so a stored task answers `GET /v1/tasks/{id}`
//!   exactly as the live one did.
//! - One controller per SQLite file: opening a file another live process
//!   holds fails, naming that process (an `flock` the kernel drops when the
//!   holder dies, so a SIGKILLed controller never blocks its successor).
//! - Opening a store marks every task that was `pending` or `running` as
//!   `lost`: after a restart nothing can still be running.
//! - Purges and retention remove finished tasks only (done, failed,
//!   cancelled, lost), oldest first.

mod lock;
mod memory;
mod query;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use lock::{lock_path, StoreLock};
pub use memory::MemoryStore;
pub use query::{parse_time, TaskPage, TaskQuery, TaskQueryParams};
pub use sqlite::{SqliteOptions, SqliteStore};

use crate::Result;

/// The error `kind` of a task found unfinished when its store was opened.
pub const LOST_KIND: &str = "LostError";

/// A task's status as stored: the live ones plus `lost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoredStatus {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
    /// The controller stopped (restart or crash) before the task finished.
    Lost,
}

impl StoredStatus {
    pub const ALL: [StoredStatus; 6] = [
        StoredStatus::Pending,
        StoredStatus::Running,
        StoredStatus::Done,
        StoredStatus::Failed,
        StoredStatus::Cancelled,
        StoredStatus::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Pending => "pending",
            StoredStatus::Running => "running",
            StoredStatus::Done => "done",
            StoredStatus::Failed => "failed",
            StoredStatus::Cancelled => "cancelled",
            StoredStatus::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Result<StoredStatus> {
        StoredStatus::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            crate::Error::BadRequest(format!(
                "unknown task status `{s}`: expected one of {}",
                StoredStatus::ALL.map(|v| v.as_str()).join(", ")
            ))
        })
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, StoredStatus::Pending | StoredStatus::Running)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredProgress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredError {
    pub kind: String,
    pub message: String,
}

/// One task's record. The columns a query filters on are fields; the rest
/// (result, per-engine outputs and images, error details, timing) is in
/// `view`, the task exactly as the API answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredTask {
    pub id: String,
    /// `apply`, `map` or `parallel`.
    pub op: String,
    /// The component's name, and the digest of the bytes that ran.
    pub component: String,
    pub digest: String,
    pub function: String,
    /// The targets as submitted (`"all"`, `"::2"`, `[1, 3]`, `"balanced"`).
    #[schema(value_type = serde_json::Value)]
    pub targets: Json,
    pub engines: Vec<usize>,
    pub status: StoredStatus,
    pub submitted: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub completed: Option<DateTime<Utc>>,
    pub progress: StoredProgress,
    pub error: Option<StoredError>,
    /// The `GET /v1/tasks/{id}` answer, verbatim. `Json::Null` in query
    /// answers that did not ask for it.
    #[schema(value_type = serde_json::Value)]
    pub view: Json,
}

impl StoredTask {
    /// What the record weighs for byte retention: its view and its columns.
    pub fn weight(&self, view_text_len: usize) -> u64 {
        let columns = self.id.len()
            + self.op.len()
            + self.component.len()
            + self.digest.len()
            + self.function.len()
            + self.error.as_ref().map_or(0, |e| e.kind.len() + e.message.len())
            + 64;
        (view_text_len + columns) as u64
    }

    /// This record as found unfinished by a store being opened at `now`.
    pub fn into_lost(mut self, now: DateTime<Utc>) -> StoredTask {
        let message = format!(
            "the controller stopped (restart or crash) while this task was {}; it did not finish and its result is lost: submit it again",
            self.status.as_str()
        );
        if let Json::Object(view) = &mut self.view {
            view.insert("status".into(), Json::from("lost"));
            view.insert("error".into(), serde_json::json!({"kind": LOST_KIND, "message": message, "errors": []}));
            if let Some(Json::Object(timing)) = view.get_mut("timing") {
                timing.insert("completed".into(), Json::from(now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
            }
        }
        self.status = StoredStatus::Lost;
        self.completed = Some(now);
        self.error = Some(StoredError { kind: LOST_KIND.into(), message });
        self
    }
}

/// Something that can make its own record, later: the writer calls
/// `stored()` when it commits, so the caller's hot path only clones an `Arc`.
/// The record is the source's state at commit time, not at `put` time.
pub trait TaskSource: Send + Sync {
    fn task_id(&self) -> String;
    fn stored(&self) -> StoredTask;
    /// The record with `view` left `Null`, and the view as JSON text: what
    /// the SQLite writer stores. A source holding a typed view serializes it
    /// straight to text, without building a `serde_json::Value` tree first
    /// (a 100 000-item result is 100 000 allocations fewer per task).
    fn stored_text(&self) -> (StoredTask, String) {
        let mut task = self.stored();
        let text = serde_json::to_string(&task.view).unwrap_or_else(|_| "null".into());
        task.view = Json::Null;
        (task, text)
    }
}

/// How much history to keep. Each bound is optional (`None` = unbounded);
/// only finished tasks are ever removed, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    pub max_tasks: Option<u64>,
    pub max_age: Option<Duration>,
    /// Bytes of records (views and columns), not of the file: SQLite reuses
    /// freed pages and gives them back to the file system incrementally.
    pub max_bytes: Option<u64>,
    /// How often the SQLite writer applies these bounds by itself.
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            // ipyparallel's hub database grew without bound (its issues 84,
            // 125, 203): every bound is on by default, generous enough for a
            // month of interactive work.
            max_tasks: Some(100_000),
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            max_bytes: Some(1 << 30),
            interval: Duration::from_secs(60),
        }
    }
}

/// Counts for `/metrics` and `wasmpar history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreStats {
    pub tasks: u64,
    pub bytes: u64,
    /// Records handed to the store and not committed yet.
    pub backlog: u64,
}

/// The task store. Reads (`get`, `query`, `stats`) and `purge`/`retain`/
/// `flush` may touch the disk: call them from blocking contexts
/// (`tokio::task::spawn_blocking`), not on an async worker.
pub trait TaskStore: Send + Sync {
    /// Insert or replace the record of `task.id`. Never blocks on disk.
    fn put(&self, task: StoredTask);
    /// As `put`, with the record made at commit time.
    fn put_lazy(&self, source: Arc<dyn TaskSource>);
    fn get(&self, id: &str) -> Result<Option<StoredTask>>;
    /// Newest first; see [`TaskQuery`].
    fn query(&self, query: &TaskQuery) -> Result<TaskPage>;
    /// Remove finished tasks completed before `before`; answers how many.
    fn purge(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Apply the count, age and byte bounds now; answers how many went.
    fn retain(&self, retention: &Retention) -> Result<u64>;
    /// Return once everything `put` so far is committed.
    fn flush(&self) -> Result<()>;
    fn stats(&self) -> Result<StoreStats>;
    /// `sqlite:PATH` or `memory`, for logs and `wasmpar history`.
    fn describe(&self) -> String;
}

/// Where the store lives: the `--db` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `--db none`: in memory, gone with the process.
    Memory,
    Sqlite(PathBuf),
}

impl StoreLocation {
    /// `None` (no flag) is the default file; `"none"` is memory; anything
    /// else is a path.
    pub fn from_flag(flag: Option<&str>) -> Result<StoreLocation> {
        match flag {
            None => Ok(StoreLocation::Sqlite(default_path())),
            Some("none") => Ok(StoreLocation::Memory),
            Some("") => Err(crate::Error::BadRequest("--db needs a path to an SQLite file, or `none` to keep tasks in memory only".into())),
            Some(path) => Ok(StoreLocation::Sqlite(PathBuf::from(path))),
        }
    }

    pub fn open(&self, options: SqliteOptions) -> Result<Arc<dyn TaskStore>> {
        match self {
            StoreLocation::Memory => Ok(Arc::new(MemoryStore::with_retention(options.retention.clone()))),
            StoreLocation::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path, options)?)),
        }
    }
}

/// `~/.wasmpar/tasks.sqlite`.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".wasmpar").join("tasks.sqlite")
}

#[cfg(test)]
mod tests;
