//! Task records: status, progress, results, outputs, errors and timing, and
//! the table that keeps them for later `GET`s.
//!
//! Invariants:
//! - A record moves pending → running → done | failed | cancelled, once.
//! - Finished records are kept: at most `tasks_kept` of them, evicting the
//!   oldest finished first, but never one younger than `tasks_min_age`.
//! - A result answered in full to a blocking request is not kept twice: the
//!   record drops its result and outputs (`delivered: true`) and keeps its
//!   status, error and timing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value as Json;
use tokio::sync::watch;

use crate::engine::{EngineOutput, TaskControl};
use crate::error::{EngineFailure, FailureCause};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Apply,
    Map,
    Parallel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskError {
    /// `RemoteError`, `CompositeError`, `TimeoutError`, `Cancelled`, `DependencyError` or `EngineError`.
    pub kind: String,
    pub message: String,
    pub errors: Vec<EngineFailure>,
}

impl TaskError {
    /// The error of a task whose engines reported `failures`.
    pub fn from_failures(mut failures: Vec<EngineFailure>, cancelled_by_user: bool) -> TaskError {
        failures.sort_by_key(|f| f.engine);
        let all = |c: FailureCause| failures.iter().all(|f| f.cause == c);
        let kind = if cancelled_by_user {
            "Cancelled"
        } else if all(FailureCause::Timeout) {
            "TimeoutError"
        } else if all(FailureCause::Dependency) {
            "DependencyError"
        } else if all(FailureCause::Engine) {
            "EngineError"
        } else if failures.len() == 1 {
            "RemoteError"
        } else {
            "CompositeError"
        };
        let message = match (kind, failures.as_slice()) {
            ("Cancelled", _) => "the task was cancelled".to_string(),
            (_, [one]) => format!("engine {}: {}: {}", one.engine, one.function, one.message),
            (_, many) => format!(
                "{} engines failed: {}",
                many.len(),
                many.iter().map(|f| format!("[{}] {}", f.engine, f.message)).collect::<Vec<_>>().join("; ")
            ),
        };
        TaskError { kind: kind.to_string(), message, errors: failures }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Timing {
    pub submitted: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<DateTime<Utc>>,
    /// Milliseconds from submission to completion (or until now).
    pub wall_ms: f64,
}

/// A task as the API answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub id: String,
    pub op: Op,
    pub component: String,
    pub function: String,
    pub status: Status,
    pub progress: Progress,
    #[schema(value_type = Object)]
    pub result: Option<Json>,
    pub engines: Vec<usize>,
    pub outputs: Vec<EngineOutput>,
    pub error: Option<TaskError>,
    pub timing: Timing,
    /// True once the result and outputs went out in a blocking answer; the
    /// record then keeps only status, error and timing (memory stays bounded
    /// under load).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
}

struct TaskState {
    status: Status,
    result: Option<Json>,
    outputs: Vec<EngineOutput>,
    error: Option<TaskError>,
    started: Option<DateTime<Utc>>,
    completed: Option<DateTime<Utc>>,
    wall: Option<Duration>,
    engines: Vec<usize>,
    delivered: bool,
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
}

impl TaskRecord {
    pub fn new(op: Op, component: &str, function: &str, total: usize, engines: Vec<usize>) -> Arc<TaskRecord> {
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
                started: None,
                completed: None,
                wall: None,
                engines,
                delivered: false,
            }),
            finished,
        })
    }

    pub fn status(&self) -> Status {
        self.state.lock().status
    }

    pub fn set_engines(&self, engines: Vec<usize>) {
        self.state.lock().engines = engines;
    }

    pub fn mark_running(&self) {
        let mut s = self.state.lock();
        if s.status == Status::Pending {
            s.status = Status::Running;
            s.started = Some(Utc::now());
        }
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
            s.outputs = outputs;
            s.completed = Some(Utc::now());
            s.wall = Some(self.submitted_at.elapsed());
            if s.started.is_none() {
                s.started = s.completed;
            }
            match result {
                Ok(r) => {
                    s.status = Status::Done;
                    s.result = Some(r);
                }
                Err(e) => {
                    s.status = if e.kind == "Cancelled" { Status::Cancelled } else { Status::Failed };
                    s.error = Some(e);
                }
            }
        }
        self.finished.send_replace(true);
    }

    /// Wait until the task has finished or `timeout` has passed.
    pub async fn wait(&self, timeout: Duration) {
        let mut rx = self.finished.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|done| *done)).await;
    }

    /// The finished task was answered in full to a blocking request: drop
    /// its bulky parts.
    pub fn mark_delivered(&self) {
        let mut s = self.state.lock();
        if s.status.is_finished() {
            s.delivered = true;
            s.result = None;
            s.outputs = Vec::new();
        }
    }

    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.state.lock().completed
    }

    pub fn view(&self) -> TaskView {
        let s = self.state.lock();
        let done = if s.status == Status::Done { self.total } else { self.control.done.load(Ordering::Relaxed).min(self.total) };
        TaskView {
            id: self.id.clone(),
            op: self.op,
            component: self.component.clone(),
            function: self.function.clone(),
            status: s.status,
            progress: Progress { done, total: self.total },
            result: s.result.clone(),
            engines: s.engines.clone(),
            outputs: s.outputs.clone(),
            error: s.error.clone(),
            timing: Timing {
                submitted: self.submitted,
                started: s.started,
                completed: s.completed,
                wall_ms: s.wall.unwrap_or_else(|| self.submitted_at.elapsed()).as_secs_f64() * 1e3,
            },
            delivered: s.delivered,
        }
    }
}

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
}

impl TaskTable {
    pub fn new(kept: usize, min_age: Duration) -> Self {
        TaskTable { tasks: Mutex::new(TaskIndex::default()), kept, min_age }
    }

    pub fn insert(&self, task: Arc<TaskRecord>) {
        let mut guard = self.tasks.lock();
        let TaskIndex { by_id: map, order } = &mut *guard;
        order.push_back(task.id.clone());
        map.insert(task.id.clone(), task);
        // Evict the oldest finished tasks beyond the bound, sparing young ones.
        let now = Utc::now();
        let min_age = chrono::Duration::from_std(self.min_age).unwrap_or_else(|_| chrono::Duration::hours(1));
        let mut scanned = 0;
        while map.len() > self.kept && scanned < order.len() {
            let Some(id) = order.pop_front() else { break };
            let evictable = map.get(&id).and_then(|t| t.finished_at()).is_some_and(|at| now - at >= min_age);
            if evictable {
                map.remove(&id);
            } else {
                order.push_back(id);
                scanned += 1;
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<TaskRecord>> {
        self.tasks.lock().by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.tasks.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
