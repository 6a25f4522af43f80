//! The embedded default store: one SQLite file (`~/.wasmpar/tasks.sqlite`)
//! in WAL mode, written by one thread, read through its own connection.
//!
//! Invariants:
//! - Exactly one connection writes: the writer thread's. Every write (puts,
//!   purges, retention, marking lost) goes through its channel, in order.
//! - `put` only sends on an unbounded channel. The writer gathers what
//!   arrives for up to `batch_window` (or `batch_max` records), keeps the
//!   last record of each id, and commits them in one transaction. While it
//!   gathers it is parked, not waiting on the channel, so a put wakes no
//!   thread; only the first put of a batch does.
//! - `synchronous = NORMAL` in WAL mode: a committed batch survives the
//!   process being killed (SIGKILL), so a crash loses at most the batch
//!   being gathered — `batch_window` of puts. Only an OS crash or power loss
//!   can lose more (the last commits since a checkpoint), never corrupt it.
//! - The file is created mode 0600 (SQLite gives `-wal` and `-shm` the same
//!   mode): it holds task arguments' results and outputs.
//! - Dropping the store commits what was sent and joins the writer.
//! - One store per file: `open` takes `<db>.lock` (`lock.rs`) first and
//!   holds it until the store is dropped or the process ends.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::lock::StoreLock;
use super::query::encode_cursor;
use super::{Retention, StoreStats, StoredError, StoredProgress, StoredStatus, StoredTask, TaskPage, TaskQuery, TaskSource, TaskStore};
use crate::{Error, Result};

/// Each connection's page cache, in KiB (`PRAGMA cache_size = -N`): SQLite's
/// own default, stated, because it is the store's share of the controller's
/// memory — two connections, 4 MiB in all, whatever the file's size. Reads
/// beyond it come from the OS's file cache, not the process's.
const CACHE_KIB: u32 = 2048;

/// How often a gathering writer looks at its channel: ≤ 10 wake-ups per
/// 50 ms window whatever the load, and a batch overshoots `batch_max` by at
/// most what arrives in this long.
const PARK_STEP: Duration = Duration::from_millis(5);

/// The writer thread's nice value: the lowest. Its commits are work nobody
/// waits for, and at nice 0 its batches of big results (the tutorial's
/// Mandelbrot, 320 kB of view a task, 300 tasks a second) took cores the
/// engines needed: with engines pinned, those calls' p90 was 4.95 ms at
/// nice 0 and 3.67 ms at 19 (docs/benchmarks.md). At 19 it still gets its
/// share when every core is busy (about 1/70 of a nice-0 thread's), and
/// all of any idle one.
pub const WRITER_NICE: i32 = 19;

/// Give the calling thread (the writer) [`WRITER_NICE`]; a failure is logged.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread (Linux keeps a nice value per thread).
    let done = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WRITER_NICE)
    };
    if done != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower the task store writer's priority");
    }
}

/// The schema's version, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    op             TEXT NOT NULL,
    component      TEXT NOT NULL,
    digest         TEXT NOT NULL,
    function       TEXT NOT NULL,
    targets        TEXT NOT NULL,
    engines        TEXT NOT NULL,
    status         TEXT NOT NULL,
    submitted_us   INTEGER NOT NULL,
    started_us     INTEGER,
    completed_us   INTEGER,
    progress_done  INTEGER NOT NULL,
    progress_total INTEGER NOT NULL,
    error_kind     TEXT,
    error_message  TEXT,
    view           TEXT NOT NULL,
    bytes          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status, seq);
CREATE INDEX IF NOT EXISTS tasks_component ON tasks(component, seq);
CREATE INDEX IF NOT EXISTS tasks_submitted ON tasks(submitted_us);
CREATE INDEX IF NOT EXISTS tasks_completed ON tasks(completed_us) WHERE completed_us IS NOT NULL;
";

const FINISHED: &str = "status IN ('done', 'failed', 'cancelled', 'lost')";

const COLUMNS: &str = "seq, id, op, component, digest, function, targets, engines, status, submitted_us, \
     started_us, completed_us, progress_done, progress_total, error_kind, error_message";

/// The writer's tunables, each with the reason for its default.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long the writer gathers puts before committing: what a SIGKILL can
    /// lose. 50 ms keeps commits at ≤ 20 a second under any load, which is
    /// what keeps the store off the tiny-task benchmark's figures.
    pub batch_window: Duration,
    /// Commit early once this many records are waiting, to bound a
    /// transaction's memory and time.
    pub batch_max: usize,
    pub retention: Retention,
    /// This controller as a rival opening the same file is told it
    /// (`pid 123, connection file …`), through the file's lock.
    pub holder: String,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            batch_window: Duration::from_millis(50),
            batch_max: 1000,
            retention: Retention::default(),
            holder: format!("pid {}", std::process::id()),
        }
    }
}

enum Command {
    Put(Box<StoredTask>),
    PutLazy(Arc<dyn TaskSource>),
    Flush(Sender<Result<(), String>>),
    Purge(DateTime<Utc>, Sender<Result<u64, String>>),
    Retain(Retention, Sender<Result<u64, String>>),
}

pub struct SqliteStore {
    path: PathBuf,
    tx: Option<Sender<Command>>,
    reader: Mutex<Connection>,
    writer: Option<std::thread::JoinHandle<()>>,
    backlog: Arc<AtomicU64>,
    writer_gone_logged: AtomicBool,
    /// Released after the writer has stopped (field order: dropped last).
    _lock: StoreLock,
}

fn db_err<'a>(path: &'a Path, what: &str) -> impl Fn(rusqlite::Error) -> Error + 'a {
    let what = what.to_string();
    move |e| Error::Internal(format!("task store {}: {what}: {e}", path.display()))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl SqliteStore {
    /// Open (or create) the store at `path`, mark unfinished tasks `lost`,
    /// apply retention once, and start the writer.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::BadRequest(format!("cannot create the task store's directory {}: {e}", dir.display())))?;
        }
        // Before the database is touched: a rival must not mark our tasks lost.
        let lock = StoreLock::acquire(&path, &options.holder)?;
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::BadRequest(format!("cannot create the task store {}: {e}", path.display())))?;
        }
        let mut conn =
            Connection::open(&path).map_err(|e| Error::BadRequest(format!("cannot open the task store {}: {e}", path.display())))?;
        prepare_writer(&conn, &path)?;
        let lost = mark_lost(&mut conn, &path)?;
        if lost > 0 {
            tracing::warn!(lost, db = %path.display(), "tasks left unfinished by the last controller are marked lost");
        }
        match retain(&conn, &options.retention) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, db = %path.display(), "task store retention"),
            Err(e) => {
                tracing::error!(error = %e, db = %path.display(), "task store retention failed")
            }
        }
        let reader =
            Connection::open(&path).map_err(|e| Error::BadRequest(format!("cannot open the task store {}: {e}", path.display())))?;
        reader
            .execute_batch(&format!("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; PRAGMA cache_size = -{CACHE_KIB};"))
            .map_err(db_err(&path, "setting up the reader"))?;

        let (tx, rx) = crossbeam_channel::unbounded();
        let backlog = Arc::new(AtomicU64::new(0));
        let writer = {
            let backlog = backlog.clone();
            let path = path.clone();
            std::thread::Builder::new()
                .name("wasmpar-store".into())
                .spawn(move || Writer { conn, path, rx, backlog, options }.run())
                .map_err(|e| Error::Internal(format!("cannot start the task store's writer: {e}")))?
        };
        tracing::info!(db = %path.display(), "task store open");
        Ok(SqliteStore {
            path,
            tx: Some(tx),
            reader: Mutex::new(reader),
            writer: Some(writer),
            backlog,
            writer_gone_logged: AtomicBool::new(false),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, command: Command) -> bool {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(command).is_ok());
        if !sent && !self.writer_gone_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(db = %self.path.display(), "the task store's writer has stopped: records are no longer saved");
        }
        sent
    }

    /// End the writer's gathering now (puts leave it parked until its window ends).
    fn wake_writer(&self) {
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
        }
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<Result<T, String>>) -> Command) -> Result<T> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        if !self.send(make(reply)) {
            return Err(Error::Internal(format!("the task store {} has stopped writing", self.path.display())));
        }
        self.wake_writer();
        match answer.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::Internal(format!("task store {}: {e}", self.path.display()))),
            Err(_) => Err(Error::Internal(format!("the task store {} stopped before answering", self.path.display()))),
        }
    }

    /// `PRAGMA integrity_check` through the reader: `"ok"` when sound.
    pub fn integrity_check(&self) -> Result<String> {
        let conn = self.reader.lock();
        conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)).map_err(db_err(&self.path, "integrity check"))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel makes the writer commit what it has and stop.
        self.tx = None;
        self.wake_writer();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(db = %self.path.display(), "the task store's writer panicked");
            }
        }
    }
}

fn prepare_writer(conn: &Connection, path: &Path) -> Result<()> {
    // auto_vacuum must be chosen before the first table exists.
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = 5000;
         PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -{CACHE_KIB};"
    ))
    .map_err(|e| Error::BadRequest(format!("{} is not a usable SQLite task store: {e}", path.display())))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db_err(path, "reading the version"))?;
    if version > SCHEMA_VERSION {
        return Err(Error::BadRequest(format!(
            "the task store {} was written by a newer wasmpar (schema {version}, this one knows {SCHEMA_VERSION}); use another --db",
            path.display()
        )));
    }
    conn.execute_batch(SCHEMA).map_err(|e| Error::BadRequest(format!("{} is not a usable SQLite task store: {e}", path.display())))?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db_err(path, "writing the version"))?;
    Ok(())
}

/// Mark every pending or running task lost; answers how many.
fn mark_lost(conn: &mut Connection, path: &Path) -> Result<u64> {
    let now = Utc::now();
    let tx = conn.transaction().map_err(db_err(path, "marking lost tasks"))?;
    let unfinished: Vec<StoredTask> = {
        let mut stmt = tx
            .prepare(&format!("SELECT {COLUMNS}, view FROM tasks WHERE status IN ('pending', 'running')"))
            .map_err(db_err(path, "marking lost tasks"))?;
        let rows = stmt.query_map([], |r| read_row(r, true)).map_err(db_err(path, "marking lost tasks"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err(path, "marking lost tasks"))?
    };
    let n = unfinished.len() as u64;
    for task in unfinished {
        upsert(&tx, &task.into_lost(now)).map_err(db_err(path, "marking lost tasks"))?;
    }
    tx.commit().map_err(db_err(path, "marking lost tasks"))?;
    Ok(n)
}

fn upsert(conn: &Connection, t: &StoredTask) -> rusqlite::Result<()> {
    upsert_text(conn, t, &serde_json::to_string(&t.view).unwrap_or_else(|_| "null".into()))
}

/// As `upsert`, with the view already JSON text (`t.view` is not read).
fn upsert_text(conn: &Connection, t: &StoredTask, view: &str) -> rusqlite::Result<()> {
    let targets = serde_json::to_string(&t.targets).unwrap_or_else(|_| "null".into());
    let engines = serde_json::to_string(&t.engines).unwrap_or_else(|_| "[]".into());
    let bytes = t.weight(view.len()) as i64;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO tasks (id, op, component, digest, function, targets, engines, status, submitted_us,
             started_us, completed_us, progress_done, progress_total, error_kind, error_message, view, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT(id) DO UPDATE SET op = excluded.op, component = excluded.component,
             digest = excluded.digest, function = excluded.function, targets = excluded.targets,
             engines = excluded.engines, status = excluded.status, submitted_us = excluded.submitted_us,
             started_us = excluded.started_us, completed_us = excluded.completed_us,
             progress_done = excluded.progress_done, progress_total = excluded.progress_total,
             error_kind = excluded.error_kind, error_message = excluded.error_message,
             view = excluded.view, bytes = excluded.bytes",
    )?;
    stmt.execute(params![
        t.id,
        t.op,
        t.component,
        t.digest,
        t.function,
        targets,
        engines,
        t.status.as_str(),
        micros(t.submitted),
        t.started.map(micros),
        t.completed.map(micros),
        t.progress.done as i64,
        t.progress.total as i64,
        t.error.as_ref().map(|e| e.kind.as_str()),
        t.error.as_ref().map(|e| e.message.as_str()),
        view,
        bytes,
    ])?;
    Ok(())
}

fn corrupt(column: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.into())
}

/// A row of `COLUMNS` (and `view` after them when `with_view`).
fn read_row(r: &Row<'_>, with_view: bool) -> rusqlite::Result<StoredTask> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| corrupt(i, format!("not JSON: {e}")))
    };
    let status: String = r.get(8)?;
    let engines: Vec<usize> = serde_json::from_value(json(7)?).map_err(|e| corrupt(7, e.to_string()))?;
    let error = match (r.get::<_, Option<String>>(14)?, r.get::<_, Option<String>>(15)?) {
        (Some(kind), message) => Some(StoredError { kind, message: message.unwrap_or_default() }),
        (None, _) => None,
    };
    Ok(StoredTask {
        id: r.get(1)?,
        op: r.get(2)?,
        component: r.get(3)?,
        digest: r.get(4)?,
        function: r.get(5)?,
        targets: json(6)?,
        engines,
        status: StoredStatus::parse(&status).map_err(|e| corrupt(8, e.to_string()))?,
        submitted: from_micros(r.get(9)?),
        started: r.get::<_, Option<i64>>(10)?.map(from_micros),
        completed: r.get::<_, Option<i64>>(11)?.map(from_micros),
        progress: StoredProgress { done: r.get::<_, i64>(12)?.max(0) as u64, total: r.get::<_, i64>(13)?.max(0) as u64 },
        error,
        view: if with_view { json(16)? } else { serde_json::Value::Null },
    })
}

fn purge(conn: &Connection, before: DateTime<Utc>) -> rusqlite::Result<u64> {
    let n = conn.execute(&format!("DELETE FROM tasks WHERE {FINISHED} AND completed_us < ?1"), [micros(before)])?;
    Ok(n as u64)
}

fn retain(conn: &Connection, r: &Retention) -> rusqlite::Result<u64> {
    let mut n = 0u64;
    if let Some(age) = r.max_age {
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        n += purge(conn, Utc::now().checked_sub_signed(age).unwrap_or(DateTime::<Utc>::MIN_UTC))?;
    }
    if let Some(max) = r.max_tasks {
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))?;
        let excess = count - i64::try_from(max).unwrap_or(i64::MAX);
        if excess > 0 {
            n += conn.execute(
                &format!("DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE {FINISHED} ORDER BY seq LIMIT ?1)"),
                [excess],
            )? as u64;
        }
    }
    if let Some(max) = r.max_bytes {
        let total: i64 = conn.query_row("SELECT COALESCE(SUM(bytes), 0) FROM tasks", [], |r| r.get(0))?;
        let mut excess = total - i64::try_from(max).unwrap_or(i64::MAX);
        if excess > 0 {
            // The newest position to delete up to: oldest finished first.
            let mut last = None;
            let mut stmt = conn.prepare(&format!("SELECT seq, bytes FROM tasks WHERE {FINISHED} ORDER BY seq"))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                last = Some(row.get::<_, i64>(0)?);
                excess -= row.get::<_, i64>(1)?;
                if excess <= 0 {
                    break;
                }
            }
            drop(rows);
            if let Some(last) = last {
                n += conn.execute(&format!("DELETE FROM tasks WHERE {FINISHED} AND seq <= ?1"), [last])? as u64;
            }
        }
    }
    if n > 0 {
        // Give freed pages back to the file system, a bounded number at a time.
        conn.execute_batch("PRAGMA incremental_vacuum(2000);")?;
    }
    Ok(n)
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    rx: Receiver<Command>,
    backlog: Arc<AtomicU64>,
    options: SqliteOptions,
}

/// What one batch gathered: the last record of each id, in first-put order.
#[derive(Default)]
struct Batch {
    slot_of: HashMap<String, usize>,
    records: Vec<Pending>,
    sent: u64,
    flushes: Vec<Sender<Result<(), String>>>,
}

enum Pending {
    Ready(Box<StoredTask>),
    Lazy(Arc<dyn TaskSource>),
}

impl Batch {
    fn add(&mut self, id: String, record: Pending) {
        self.sent += 1;
        match self.slot_of.get(&id) {
            Some(&i) => self.records[i] = record,
            None => {
                self.slot_of.insert(id, self.records.len());
                self.records.push(record);
            }
        }
    }
}

impl Writer {
    fn run(mut self) {
        lower_priority();
        let mut next_retention = Instant::now() + self.options.retention.interval;
        loop {
            let wait = next_retention.saturating_duration_since(Instant::now());
            let first = match self.rx.recv_timeout(wait) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    let retention = self.options.retention.clone();
                    let _ = self.retain_logged(&retention);
                    next_retention = Instant::now() + self.options.retention.interval;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = Batch::default();
            let mut after = self.take(first, &mut batch);
            let deadline = Instant::now() + self.options.batch_window;
            let mut closed = false;
            while after.is_none() && batch.flushes.is_empty() && batch.records.len() < self.options.batch_max {
                match self.rx.try_recv() {
                    Ok(c) => after = self.take(c, &mut batch),
                    Err(TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        // Parked rather than blocked on the channel: a put
                        // then wakes nobody (no futex call, no context
                        // switch per task); flushes and questions unpark us.
                        // Looks every PARK_STEP, to see `batch_max` reached.
                        std::thread::park_timeout((deadline - now).min(PARK_STEP));
                    }
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let outcome = self.commit(&mut batch);
            for reply in batch.flushes {
                let _ = reply.send(outcome.clone());
            }
            if let Some(command) = after {
                self.run_after(command);
            }
            if closed {
                return;
            }
        }
    }

    /// Add a put to the batch; anything else ends the gathering (returned).
    fn take(&self, command: Command, batch: &mut Batch) -> Option<Command> {
        match command {
            Command::Put(task) => batch.add(task.id.clone(), Pending::Ready(task)),
            Command::PutLazy(source) => {
                // The id is needed now, to coalesce; the record is made at commit.
                batch.add(source.task_id(), Pending::Lazy(source));
            }
            Command::Flush(reply) => batch.flushes.push(reply),
            other => return Some(other),
        }
        None
    }

    fn commit(&mut self, batch: &mut Batch) -> Result<(), String> {
        let records = std::mem::take(&mut batch.records);
        let sent = batch.sent;
        let outcome = (|| -> rusqlite::Result<()> {
            if records.is_empty() {
                return Ok(());
            }
            let tx = self.conn.transaction()?;
            for record in &records {
                match record {
                    Pending::Ready(task) => upsert(&tx, task)?,
                    Pending::Lazy(source) => {
                        let (task, view) = source.stored_text();
                        upsert_text(&tx, &task, &view)?
                    }
                }
            }
            tx.commit()
        })();
        self.backlog.fetch_sub(sent, Ordering::Relaxed);
        outcome.map_err(|e| {
            tracing::error!(error = %e, db = %self.path.display(), records = records.len(), "task store commit failed: these records are not saved");
            e.to_string()
        })
    }

    fn run_after(&mut self, command: Command) {
        match command {
            Command::Purge(before, reply) => {
                let outcome = purge(&self.conn, before).map_err(|e| e.to_string());
                if outcome.as_ref().is_ok_and(|n| *n > 0) {
                    let _ = self.conn.execute_batch("PRAGMA incremental_vacuum(2000);");
                }
                let _ = reply.send(outcome);
            }
            Command::Retain(retention, reply) => {
                let _ = reply.send(self.retain_logged(&retention));
            }
            // `take` keeps puts and flushes in the batch.
            Command::Put(_) | Command::PutLazy(_) | Command::Flush(_) => {}
        }
    }

    fn retain_logged(&mut self, retention: &Retention) -> Result<u64, String> {
        let outcome = retain(&self.conn, retention);
        match &outcome {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, db = %self.path.display(), "task store retention"),
            Err(e) => {
                tracing::error!(error = %e, db = %self.path.display(), "task store retention failed")
            }
        }
        outcome.map_err(|e| e.to_string())
    }
}

impl TaskStore for SqliteStore {
    fn put(&self, task: StoredTask) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if !self.send(Command::Put(Box::new(task))) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn put_lazy(&self, source: Arc<dyn TaskSource>) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if !self.send(Command::PutLazy(source)) {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn get(&self, id: &str) -> Result<Option<StoredTask>> {
        let conn = self.reader.lock();
        conn.query_row(&format!("SELECT {COLUMNS}, view FROM tasks WHERE id = ?1"), [id], |r| read_row(r, true))
            .optional()
            .map_err(db_err(&self.path, "reading a task"))
    }

    fn query(&self, q: &TaskQuery) -> Result<TaskPage> {
        let mut sql = format!("SELECT {COLUMNS}{} FROM tasks WHERE 1", if q.include_view { ", view" } else { "" });
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if !q.status.is_empty() {
            sql += &format!(" AND status IN ({})", vec!["?"; q.status.len()].join(", "));
            args.extend(q.status.iter().map(|s| s.as_str().to_string().into()));
        }
        if let Some(c) = &q.component {
            sql += " AND component = ?";
            args.push(c.clone().into());
        }
        if let Some(t) = q.since {
            sql += " AND submitted_us >= ?";
            args.push(micros(t).into());
        }
        if let Some(t) = q.until {
            sql += " AND submitted_us < ?";
            args.push(micros(t).into());
        }
        if let Some(seq) = q.before_seq {
            sql += " AND seq < ?";
            args.push(i64::try_from(seq).unwrap_or(i64::MAX).into());
        }
        // One more than asked: whether there is a next page.
        sql += " ORDER BY seq DESC LIMIT ?";
        args.push((q.limit as i64 + 1).into());
        let conn = self.reader.lock();
        let mut stmt = conn.prepare(&sql).map_err(db_err(&self.path, "querying tasks"))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| Ok((r.get::<_, i64>(0)?, read_row(r, q.include_view)?)))
            .map_err(db_err(&self.path, "querying tasks"))?;
        let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err(&self.path, "querying tasks"))?;
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        let next_cursor = if more { rows.last().map(|(seq, _)| encode_cursor(*seq as u64)) } else { None };
        Ok(TaskPage { tasks: rows.into_iter().map(|(_, t)| t).collect(), next_cursor })
    }

    fn purge(&self, before: DateTime<Utc>) -> Result<u64> {
        self.ask(|reply| Command::Purge(before, reply))
    }

    fn retain(&self, retention: &Retention) -> Result<u64> {
        self.ask(|reply| Command::Retain(retention.clone(), reply))
    }

    fn flush(&self) -> Result<()> {
        self.ask(Command::Flush)
    }

    fn stats(&self) -> Result<StoreStats> {
        let conn = self.reader.lock();
        let (tasks, bytes) = conn
            .query_row("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM tasks", [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .map_err(db_err(&self.path, "counting tasks"))?;
        Ok(StoreStats { tasks: tasks.max(0) as u64, bytes: bytes.max(0) as u64, backlog: self.backlog.load(Ordering::Relaxed) })
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}
