//! Task records: status, progress, results, outputs, errors and timing, and
//! the table that keeps them for later `GET`s.
//!
//! Invariants:
//! - A record moves pending → running → done | failed | cancelled, once.
//! - Finished records are kept: at most `tasks_kept` of them, evicting the
//!   oldest finished first, but never one younger than `tasks_min_age`.
//! - A task is `pending` until an engine starts one of its batches (the
//!   engine marks its `TaskControl`); cancelling a pending task answers at
//!   once, and the engine skips its queued batches when it reaches them.
//! - A result answered in full to a blocking request is not kept twice: the
//!   record drops its result and outputs (`delivered: true`), and the
//!   results a failed task's error carries, and keeps its status, error and
//!   timing.
//! - Kept results hold at most `tasks_kept_bytes` in all (estimated when a
//!   task finishes); past it the oldest results are dropped (`evicted: true`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::Value as Json;
use tokio::sync::watch;

use crate::engine::TaskControl;
pub use crate::wire::{
    EngineFailure, EngineOutput, EngineResult, FailureCause, Op, Progress, Status, TaskError, TaskErrorKind, TaskView, Timing,
};

impl TaskError {
    /// The error of a task whose engines reported `failures`.
    pub fn from_failures(mut failures: Vec<EngineFailure>, cancelled_by_user: bool) -> TaskError {
        failures.sort_by_key(|f| f.engine);
        // A group of batches that could not run at all (a remote engine
        // without the component) fails each batch the same way: once is enough.
        let mut seen = std::collections::HashSet::new();
        failures.retain(|f| seen.insert((f.engine, f.function.clone(), f.message.clone(), f.trace.clone())));
        let all = |c: FailureCause| failures.iter().all(|f| f.cause == c);
        let kind = if cancelled_by_user {
            TaskErrorKind::Cancelled
        } else if all(FailureCause::Timeout) {
            TaskErrorKind::TimeoutError
        } else if all(FailureCause::Dependency) {
            TaskErrorKind::DependencyError
        } else if all(FailureCause::Engine) {
            TaskErrorKind::EngineError
        } else if failures.iter().any(|f| f.cause == FailureCause::Lost) {
            TaskErrorKind::EngineLost
        } else if failures.len() == 1 {
            TaskErrorKind::RemoteError
        } else {
            TaskErrorKind::CompositeError
        };
        let message = match (kind, failures.as_slice()) {
            (TaskErrorKind::Cancelled, _) => "the task was cancelled".to_string(),
            (_, [one]) => format!("engine {}: {}: {}", one.engine, one.function, one.message),
            (_, many) => format!(
                "{} engines failed: {}",
                many.len(),
                many.iter().map(|f| format!("[{}] {}", f.engine, f.message)).collect::<Vec<_>>().join("; ")
            ),
        };
        TaskError { kind, message, errors: failures, results: Vec::new() }
    }
}

struct TaskState {
    status: Status,
    result: Option<Json>,
    outputs: Vec<EngineOutput>,
    error: Option<TaskError>,
    completed: Option<DateTime<Utc>>,
    wall: Option<Duration>,
    engines: Vec<usize>,
    delivered: bool,
    evicted: bool,
    /// Estimated bytes of `result` and `outputs`, counted in the table's total.
    bytes: usize,
}

pub struct TaskRecord {
    pub id: String,
    pub op: Op,
    pub component: String,
    pub function: String,
    pub total: usize,
    pub control: Arc<TaskControl>,
    submitted: DateTime<Utc>,
    submitted_at: Instant,
    state: Mutex<TaskState>,
    finished: watch::Sender<bool>,
    /// The table's total of kept result bytes (this record's share included).
    kept_bytes: Arc<AtomicUsize>,
}

impl TaskRecord {
    fn new(op: Op, component: &str, function: &str, total: usize, engines: Vec<usize>, kept_bytes: Arc<AtomicUsize>) -> Arc<TaskRecord> {
        let (finished, _) = watch::channel(false);
        Arc::new(TaskRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            op,
            component: component.to_string(),
            function: function.to_string(),
            total,
            control: Arc::new(TaskControl::default()),
            submitted: Utc::now(),
            submitted_at: Instant::now(),
            state: Mutex::new(TaskState {
                status: Status::Pending,
                result: None,
                outputs: Vec::new(),
                error: None,
                completed: None,
                wall: None,
                engines,
                delivered: false,
                evicted: false,
                bytes: 0,
            }),
            finished,
            kept_bytes,
        })
    }

    fn status_of(&self, s: &TaskState) -> Status {
        if s.status == Status::Pending && self.control.started_at().is_some() {
            Status::Running
        } else {
            s.status
        }
    }

    pub fn status(&self) -> Status {
        let s = self.state.lock();
        self.status_of(&s)
    }

    pub fn set_engines(&self, engines: Vec<usize>) {
        self.state.lock().engines = engines;
    }

    /// Record the outcome; the first call wins.
    pub fn finish(&self, result: Result<Json, TaskError>, mut outputs: Vec<EngineOutput>) {
        {
            let mut s = self.state.lock();
            if s.status.is_finished() {
                return;
            }
            outputs.retain(|o| !o.is_empty());
            outputs.sort_by_key(|o| o.engine);
            s.bytes = outputs.iter().map(|o| o.stdout.len() + o.stderr.len() + o.images.iter().map(String::len).sum::<usize>()).sum();
            s.outputs = outputs;
            s.completed = Some(Utc::now());
            s.wall = Some(self.submitted_at.elapsed());
            match result {
                Ok(r) => {
                    s.status = Status::Done;
                    s.bytes += json_bytes(&r);
                    s.result = Some(r);
                }
                Err(e) => {
                    s.status = if e.kind == TaskErrorKind::Cancelled { Status::Cancelled } else { Status::Failed };
                    s.bytes += e.results.iter().map(|r| json_bytes(&r.result)).sum::<usize>();
                    s.error = Some(e);
                }
            }
            self.kept_bytes.fetch_add(s.bytes, Ordering::Relaxed);
        }
        self.finished.send_replace(true);
    }

    /// The task ended without any engine running it (cancelled while queued).
    pub fn finish_cancelled(&self) {
        self.finish(
            Err(TaskError {
                kind: TaskErrorKind::Cancelled,
                message: "the task was cancelled before it started".into(),
                errors: Vec::new(),
                results: Vec::new(),
            }),
            Vec::new(),
        );
    }

    /// Wait until the task has finished or `timeout` has passed.
    pub async fn wait(&self, timeout: Duration) {
        let mut rx = self.finished.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|done| *done)).await;
    }

    /// Drop the result and outputs; `delivered` says they went out in full
    /// to a blocking request, otherwise they were evicted by the byte bound.
    fn drop_result(&self, delivered: bool) {
        let mut s = self.state.lock();
        let error_results = s.error.as_ref().is_some_and(|e| !e.results.is_empty());
        if s.status.is_finished() && (s.result.is_some() || !s.outputs.is_empty() || error_results) {
            if delivered {
                s.delivered = true;
            } else {
                s.evicted = true;
            }
            s.result = None;
            self.clear_bulk(&mut s);
        }
    }

    /// Drops what a finished record keeps besides its result (outputs, a
    /// failure's partial results) and gives back their bytes.
    fn clear_bulk(&self, s: &mut TaskState) {
        s.outputs = Vec::new();
        if let Some(e) = s.error.as_mut() {
            e.results = Vec::new();
        }
        self.kept_bytes.fetch_sub(s.bytes, Ordering::Relaxed);
        s.bytes = 0;
    }

    fn kept(&self) -> usize {
        self.state.lock().bytes
    }

    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.state.lock().completed
    }

    pub fn view(&self) -> TaskView {
        let s = self.state.lock();
        self.view_of(&s, s.result.clone())
    }

    /// The finished task's view for a blocking request that answers it in
    /// full, then the record drops its bulky parts (`delivered: true`,
    /// under the same lock): the result moves into the view instead of
    /// being copied, so a big map's result is never held twice.
    pub fn deliver(&self) -> TaskView {
        let mut s = self.state.lock();
        if !self.status_of(&s).is_finished() {
            return self.view_of(&s, s.result.clone());
        }
        let result = s.result.take();
        let has_bulk = result.is_some() || !s.outputs.is_empty() || s.error.as_ref().is_some_and(|e| !e.results.is_empty());
        let view = self.view_of(&s, result);
        if has_bulk {
            s.delivered = true;
            self.clear_bulk(&mut s);
        }
        view
    }

    fn view_of(&self, s: &TaskState, result: Option<Json>) -> TaskView {
        let status = self.status_of(s);
        let done = if status == Status::Done { self.total } else { self.control.done.load(Ordering::Relaxed).min(self.total) };
        let started = self.control.started_at().or(s.completed);
        TaskView {
            id: self.id.clone(),
            op: self.op,
            component: self.component.clone(),
            function: self.function.clone(),
            status,
            progress: Progress { done, total: self.total },
            result,
            engines: s.engines.clone(),
            outputs: s.outputs.clone(),
            error: s.error.clone(),
            timing: Timing {
                submitted: self.submitted,
                started,
                completed: s.completed,
                wall_ms: s.wall.unwrap_or_else(|| self.submitted_at.elapsed()).as_secs_f64() * 1e3,
            },
            delivered: s.delivered,
            evicted: s.evicted,
        }
    }
}

/// A cheap estimate of a JSON value's size in memory (not its text).
fn json_bytes(v: &Json) -> usize {
    const NODE: usize = std::mem::size_of::<Json>();
    match v {
        Json::String(s) => NODE + s.len(),
        Json::Array(items) => NODE + items.iter().map(json_bytes).sum::<usize>(),
        Json::Object(map) => NODE + map.iter().map(|(k, v)| k.len() + 32 + json_bytes(v)).sum::<usize>(),
        _ => NODE,
    }
}

/// Held tasks one insert looks at, at most, for one to evict.
const EVICTION_SCAN: usize = 64;

/// Tasks by id, and their ids in submission order (for eviction).
#[derive(Default)]
struct TaskIndex {
    by_id: HashMap<String, Arc<TaskRecord>>,
    order: VecDeque<String>,
}

/// Every task still known, by id.
pub struct TaskTable {
    tasks: Mutex<TaskIndex>,
    kept: usize,
    min_age: Duration,
    bytes_max: usize,
    kept_bytes: Arc<AtomicUsize>,
}

impl TaskTable {
    pub fn new(kept: usize, min_age: Duration, bytes_max: usize) -> Self {
        TaskTable { tasks: Mutex::new(TaskIndex::default()), kept, min_age, bytes_max, kept_bytes: Arc::default() }
    }

    /// A new record whose result bytes count in this table's total.
    pub fn record(&self, op: Op, component: &str, function: &str, total: usize, engines: Vec<usize>) -> Arc<TaskRecord> {
        TaskRecord::new(op, component, function, total, engines, self.kept_bytes.clone())
    }

    /// Make `task` known for later `GET`s.
    pub fn insert(&self, task: Arc<TaskRecord>) {
        let mut guard = self.tasks.lock();
        let TaskIndex { by_id: map, order } = &mut *guard;
        order.push_back(task.id.clone());
        map.insert(task.id.clone(), task);
        // Evict the oldest finished tasks beyond the bound, sparing young ones.
        let now = Utc::now();
        let min_age = chrono::Duration::from_std(self.min_age).unwrap_or_else(|_| chrono::Duration::hours(1));
        // A bounded look per insert: with more than `kept` tasks all younger
        // than `min_age`, a full scan made every submit O(tasks held)
        // (~2 ms per apply at 10 000). Unevictable ids go to the back, so
        // successive inserts look at them all in turn and still evict more
        // than they add.
        let mut scanned = 0;
        while map.len() > self.kept && scanned < order.len().min(EVICTION_SCAN) {
            let Some(id) = order.pop_front() else { break };
            let evictable = map.get(&id).and_then(|t| t.finished_at()).is_some_and(|at| now - at >= min_age);
            if evictable {
                if let Some(t) = map.remove(&id) {
                    t.drop_result(false);
                }
            } else {
                order.push_back(id);
                scanned += 1;
            }
        }
    }

    /// A task finished: keep the results' bytes under the bound by dropping
    /// the oldest kept results first (whatever their age).
    pub fn enforce_bytes(&self) {
        if self.kept_bytes.load(Ordering::Relaxed) <= self.bytes_max {
            return;
        }
        let guard = self.tasks.lock();
        for id in &guard.order {
            if self.kept_bytes.load(Ordering::Relaxed) <= self.bytes_max {
                break;
            }
            if let Some(t) = guard.by_id.get(id).filter(|t| t.kept() > 0) {
                tracing::info!(task = %t.id, bytes = t.kept(), "kept results over their byte bound: result evicted");
                t.drop_result(false);
            }
        }
    }

    pub fn kept_bytes(&self) -> usize {
        self.kept_bytes.load(Ordering::Relaxed)
    }

    pub fn get(&self, id: &str) -> Option<Arc<TaskRecord>> {
        self.tasks.lock().by_id.get(id).cloned()
    }

    /// How many of the held tasks are pending and running.
    pub fn live_counts(&self) -> (u64, u64) {
        let guard = self.tasks.lock();
        let (mut pending, mut running) = (0, 0);
        for t in guard.by_id.values() {
            match t.status() {
                Status::Pending => pending += 1,
                Status::Running => running += 1,
                _ => {}
            }
        }
        (pending, running)
    }

    pub fn len(&self) -> usize {
        self.tasks.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(table: &TaskTable) -> Arc<TaskRecord> {
        let t = table.record(Op::Apply, "seed", "identity", 1, vec![0]);
        t.finish(Ok(Json::Null), Vec::new());
        t
    }

    #[test]
    fn insert_stays_cheap_when_every_held_task_is_too_young_to_evict() {
        // 20 000 young tasks over a bound of 10: a full scan per insert took
        // seconds here (and ~2 ms per apply in a server); 64 looks take ms.
        let table = TaskTable::new(10, Duration::from_secs(3600), usize::MAX);
        let started = Instant::now();
        for _ in 0..20_000 {
            table.insert(finished(&table));
        }
        let took = started.elapsed();
        assert_eq!(table.len(), 20_000, "young tasks are kept");
        assert!(took < Duration::from_millis(1500), "20 000 inserts took {took:?}");
    }

    #[test]
    fn insert_still_evicts_finished_tasks_behind_running_ones() {
        let table = TaskTable::new(10, Duration::ZERO, usize::MAX);
        let running: Vec<_> = (0..3000)
            .map(|_| {
                let t = table.record(Op::Apply, "seed", "identity", 1, vec![0]);
                table.insert(t.clone());
                t
            })
            .collect();
        for _ in 0..3000 {
            table.insert(finished(&table));
        }
        assert!(table.len() <= running.len() + 10 + EVICTION_SCAN, "{} held", table.len());
        assert!(running.iter().all(|t| table.get(&t.id).is_some()), "running tasks are never evicted");
    }
}
