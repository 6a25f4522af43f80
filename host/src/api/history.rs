//! Issue 15 wired into the API: every task into the task store, the
//! dashboard's events and the metrics; `GET /v1/tasks` (query),
//! `DELETE /v1/tasks?before=` (purge), and `GET /v1/tasks/{id}` falling back
//! to the store for tasks the controller no longer holds.
//!
//! Invariants:
//! - Every submitted task is put in the store when submitted and again when
//!   it finishes, with its finished view taken before a blocking answer
//!   drops its result (`TaskRecord::deliver`).
//! - Nothing is serialized or copied for the store on the request path: it
//!   gets an `Arc` (`put_lazy`; a blocking answer's view is shared with the
//!   answer) and makes the record on its writer thread.
//! - Only a non-blocking task (or any task while a dashboard listens) gets a
//!   follower: a tokio task that sends its progress at most every
//!   [`PROGRESS_EVERY`] and records its finish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;

use super::body::ApiQuery;
use super::dashboard::{DashboardEvent, TaskBrief};
use super::error::{ApiResult, ErrorBody};
use super::metrics::Finished;
use super::AppState;
use crate::scheduler::{Op, Status, TaskRecord, TaskView};
use crate::store::{StoredError, StoredProgress, StoredStatus, StoredTask, TaskPage, TaskQueryParams, TaskSource};
use crate::Error;

/// The most often a task's progress is sent to the dashboard.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(200);

fn op_str(op: Op) -> String {
    serde_json::to_value(op).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn stored_status(status: Status) -> StoredStatus {
    match status {
        Status::Pending => StoredStatus::Pending,
        Status::Running => StoredStatus::Running,
        Status::Done => StoredStatus::Done,
        Status::Failed => StoredStatus::Failed,
        Status::Cancelled => StoredStatus::Cancelled,
        Status::Lost => StoredStatus::Lost,
    }
}

/// A view as the store keeps it.
pub fn stored(view: &TaskView, digest: &str, targets: &Json_) -> StoredTask {
    let mut task = columns(view, digest, targets);
    task.view = serde_json::to_value(view).unwrap_or_else(|e| {
        tracing::error!(task = %view.id, error = %e, "a task view did not serialize for the store");
        Json_::Null
    });
    task
}

/// As [`stored`], with the view as JSON text (and `view` left `Null`).
fn stored_text(view: &TaskView, digest: &str, targets: &Json_) -> (StoredTask, String) {
    let text = serde_json::to_string(view).unwrap_or_else(|e| {
        tracing::error!(task = %view.id, error = %e, "a task view did not serialize for the store");
        "null".into()
    });
    (columns(view, digest, targets), text)
}

/// The record's columns (its `view` `Null`).
fn columns(view: &TaskView, digest: &str, targets: &Json_) -> StoredTask {
    StoredTask {
        id: view.id.clone(),
        op: op_str(view.op),
        component: view.component.clone(),
        digest: digest.to_string(),
        function: view.function.clone(),
        targets: targets.clone(),
        engines: view.engines.clone(),
        status: stored_status(view.status),
        submitted: view.timing.submitted,
        started: view.timing.started,
        completed: view.timing.completed,
        progress: StoredProgress { done: view.progress.done as u64, total: view.progress.total as u64 },
        error: view.error.as_ref().map(|e| StoredError { kind: e.kind.as_str().to_string(), message: e.message.clone() }),
        view: Json_::Null,
    }
}

/// A view shared by a blocking answer and the store's record of it.
pub struct SharedView(pub Arc<TaskView>);

impl Serialize for SharedView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A view as the dashboard's task stream shows it.
pub fn brief(view: &TaskView) -> TaskBrief {
    TaskBrief {
        id: view.id.clone(),
        op: op_str(view.op),
        component: view.component.clone(),
        function: view.function.clone(),
        status: stored_status(view.status).as_str().to_string(),
        done: view.progress.done as u64,
        total: view.progress.total as u64,
        engines: view.engines.clone(),
        submitted: view.timing.submitted,
        completed: view.timing.completed,
        wall_ms: view.timing.completed.map(|_| view.timing.wall_ms),
        error: view.error.as_ref().map(|e| e.message.clone()),
    }
}

/// A live task: its record is made on the store's writer thread.
struct Live {
    task: Arc<TaskRecord>,
    digest: String,
    targets: Json_,
}

impl TaskSource for Live {
    fn task_id(&self) -> String {
        self.task.id.clone()
    }
    fn stored(&self) -> StoredTask {
        stored(&self.task.view(), &self.digest, &self.targets)
    }
    fn stored_text(&self) -> (StoredTask, String) {
        stored_text(&self.task.view(), &self.digest, &self.targets)
    }
}

/// A finished task's view, taken before a blocking answer drops its result;
/// shared with that answer, so its result is not copied for the store.
struct Snapshot {
    view: Arc<TaskView>,
    digest: String,
    targets: Json_,
}

impl TaskSource for Snapshot {
    fn task_id(&self) -> String {
        self.view.id.clone()
    }
    fn stored(&self) -> StoredTask {
        stored(&self.view, &self.digest, &self.targets)
    }
    fn stored_text(&self) -> (StoredTask, String) {
        stored_text(&self.view, &self.digest, &self.targets)
    }
}

/// A submitted task being recorded; [`Tracked::finished`] records its end.
pub struct Tracked {
    s: Arc<AppState>,
    task: Arc<TaskRecord>,
    digest: String,
    targets: Json_,
    /// Calls already counted for the throughput chart from progress.
    reported: Arc<AtomicU64>,
    /// A blocking request's handle: if the request goes away (the client
    /// disconnected) before it recorded the finish, a waiter does it.
    owes_finish: bool,
}

/// Record a submitted task: into the store, the metrics, and the events.
pub fn track(s: &Arc<AppState>, task: &Arc<TaskRecord>, targets: Json_, block: bool) -> Tracked {
    let digest = s.controller.component_digest(&task.component).unwrap_or_default();
    s.metrics.task_submitted();
    s.store.put_lazy(Arc::new(Live { task: task.clone(), digest: digest.clone(), targets: targets.clone() }));
    let listening = s.events.listeners() > 0;
    if listening {
        s.events.send(DashboardEvent::TaskSubmitted { task: brief(&task.view()) });
    }
    let tracked = Tracked { s: s.clone(), task: task.clone(), digest, targets, reported: Arc::default(), owes_finish: block };
    if !block || listening {
        let follow = tracked.clone_handle();
        tokio::spawn(async move {
            while !follow.task.status().is_finished() {
                follow.task.wait(PROGRESS_EVERY).await;
                if follow.task.status().is_finished() {
                    break;
                }
                let done = follow.task.control.done.load(Ordering::Relaxed).min(follow.task.total) as u64;
                let last = follow.reported.swap(done, Ordering::Relaxed);
                if done != last {
                    follow.s.events.calls_finished(done.saturating_sub(last));
                    follow.s.events.send(DashboardEvent::TaskProgress {
                        id: follow.task.id.clone(),
                        done,
                        total: follow.task.total as u64,
                    });
                }
            }
            if !block {
                follow.record_finish(Arc::new(follow.task.view()));
            }
        });
    }
    tracked
}

impl Tracked {
    fn clone_handle(&self) -> Tracked {
        Tracked {
            s: self.s.clone(),
            task: self.task.clone(),
            digest: self.digest.clone(),
            targets: self.targets.clone(),
            reported: self.reported.clone(),
            owes_finish: false,
        }
    }

    /// The task finished with `view` (a blocking answer's, from `TaskRecord::deliver`).
    pub fn finished(&mut self, view: Arc<TaskView>) {
        self.owes_finish = false;
        self.record_finish(view);
    }

    fn record_finish(&self, view: Arc<TaskView>) {
        let s = &self.s;
        let done = view.progress.done as u64;
        let reported = self.reported.swap(done, Ordering::Relaxed);
        s.store.put_lazy(Arc::new(Snapshot { view: view.clone(), digest: self.digest.clone(), targets: self.targets.clone() }));
        if let Some(f) = Finished::parse(stored_status(view.status).as_str()) {
            s.metrics.task_finished(f);
        }
        // The calls of a task are timed together: each gets its share of the
        // task's wall time (the histogram's resolution for a map).
        let n = view.progress.total.max(1) as u64;
        let each = Duration::from_secs_f64((view.timing.wall_ms / 1e3 / n as f64).max(0.0));
        s.metrics.calls_finished(n, each, view.status == Status::Done);
        s.events.calls_finished(done.saturating_sub(reported));
        if s.events.listeners() > 0 {
            s.events.send(DashboardEvent::TaskFinished { task: brief(&view) });
        }
    }
}

#[utoipa::path(get, path = "/v1/tasks", params(TaskQueryParams),
    responses((status = 200, body = TaskPage, description = "the matching tasks, newest first"),
              (status = 400, body = ErrorBody, description = "a bad status, time, limit or cursor")))]
pub async fn list(State(s): State<Arc<AppState>>, ApiQuery(q): ApiQuery<TaskQueryParams>) -> ApiResult<Json<TaskPage>> {
    let q = q.parse()?;
    let store = s.store.clone();
    let page = tokio::task::spawn_blocking(move || store.query(&q))
        .await
        .map_err(|e| Error::Internal(format!("the task query panicked: {e}")))??;
    Ok(Json(page))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurgeQuery {
    /// Remove finished tasks completed before this instant: RFC 3339, or
    /// seconds since the epoch.
    #[param(example = "2026-11-25T12:00:00Z")]
    pub before: String,
}

/// The answer of a purge.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Purged {
    pub removed: u64,
}

#[utoipa::path(delete, path = "/v1/tasks", params(PurgeQuery),
    responses((status = 200, body = Purged, description = "how many finished tasks were removed from the store"),
              (status = 400, body = ErrorBody, description = "a bad or missing `before`")))]
pub async fn purge(State(s): State<Arc<AppState>>, ApiQuery(q): ApiQuery<PurgeQuery>) -> ApiResult<Json<Purged>> {
    let before = crate::store::parse_time("before", &q.before)?;
    let store = s.store.clone();
    let removed = tokio::task::spawn_blocking(move || store.purge(before))
        .await
        .map_err(|e| Error::Internal(format!("the purge panicked: {e}")))??;
    tracing::info!(removed, %before, "task store purged");
    Ok(Json(Purged { removed }))
}

/// `GET /v1/tasks/{id}` for a task only the store knows (finished long ago,
/// or from before a restart): its view as stored.
pub async fn from_store(s: &Arc<AppState>, id: &str) -> ApiResult<Json<Json_>> {
    let store = s.store.clone();
    let key = id.to_string();
    let found = tokio::task::spawn_blocking(move || store.get(&key))
        .await
        .map_err(|e| Error::Internal(format!("the task store read panicked: {e}")))??;
    match found {
        Some(t) if !t.view.is_null() => Ok(Json(t.view)),
        _ => Err(Error::not_found("task", id).into()),
    }
}

#[utoipa::path(get, path = "/v1/events",
    responses((status = 200, body = String, content_type = "text/event-stream",
               description = "server-sent events, one JSON object per `data:` line (docs/history.md); it does not end")))]
pub fn events_doc() {}

#[utoipa::path(get, path = "/metrics",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4",
               description = "Prometheus text format (docs/history.md)")))]
pub fn metrics_doc() {}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.owes_finish {
            return;
        }
        // The blocking request was dropped while its task ran: record the
        // finish when it comes (the result was not delivered, so it is whole).
        let waiter = self.clone_handle();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    waiter.task.wait(Duration::MAX).await;
                    waiter.record_finish(Arc::new(waiter.task.view()));
                });
            }
            Err(_) => tracing::warn!(task = %self.task.id, "a task's finish is not recorded: no runtime to wait on"),
        }
    }
}
