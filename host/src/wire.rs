//! The wire types: every body the HTTP API answers with, in one place.
//!
//! Invariants:
//! - Each type derives both `Serialize` and `Deserialize`: the server writes
//!   them, the CLI and client read them, so a field renamed on one side fails
//!   to compile on the other.
//! - This module is a leaf: it imports nothing of the crate, so every layer
//!   (engine, scheduler, api, client, cli) may use it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Apply,
    Map,
    Parallel,
    /// A cell of Python code on each target engine (the Python runner).
    Execute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, waiting for an engine.
    Pending,
    /// An engine has started on it.
    Running,
    Done,
    Failed,
    Cancelled,
    /// It was running when its controller stopped (read back from the task
    /// store after a restart): its outcome is unknown.
    Lost,
}

impl Status {
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled | Status::Lost)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskError {
    pub kind: TaskErrorKind,
    pub message: String,
    pub errors: Vec<EngineFailure>,
    /// The engines of a direct task that finished while others failed, with
    /// what each gave (IPython Parallel's `CompositeError` keeps every
    /// engine's outcome); their printed output is in the task's `outputs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<EngineResult>,
}

/// One engine's result inside a failed task.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineResult {
    pub engine: usize,
    /// What the engine's call gave, as `result` holds it for that engine
    /// (for `map`, the list of its chunk's results).
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskView {
    pub id: String,
    pub op: Op,
    pub component: String,
    pub function: String,
    pub status: Status,
    pub progress: Progress,
    /// Any JSON: a function's result, a list of them, or null until done.
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Json>,
    pub engines: Vec<usize>,
    pub outputs: Vec<EngineOutput>,
    pub error: Option<TaskError>,
    pub timing: Timing,
    /// True once the result and outputs went out in a blocking answer; the
    /// record then keeps only status, error and timing (memory stays bounded
    /// under load).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
    /// True when the result and outputs were dropped to keep the finished
    /// tasks' results under their byte bound (`--tasks-kept-mib`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evicted: bool,
}

impl TaskView {
    /// A copy of everything but the result (which may be large).
    pub fn without_result(&self) -> TaskView {
        TaskView {
            id: self.id.clone(),
            op: self.op,
            component: self.component.clone(),
            function: self.function.clone(),
            status: self.status,
            progress: self.progress.clone(),
            result: None,
            engines: self.engines.clone(),
            outputs: self.outputs.clone(),
            error: self.error.clone(),
            timing: self.timing.clone(),
            delivered: self.delivered,
            evicted: self.evicted,
        }
    }
}

/// What a call printed and showed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineOutput {
    pub engine: usize,
    pub stdout: String,
    pub stderr: String,
    /// PNG images shown through `display`, base64.
    pub images: Vec<String>,
}

impl EngineOutput {
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty() && self.images.is_empty()
    }
}

/// A snapshot of an engine for `GET /v1/engines`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineStatus {
    pub id: usize,
    /// `idle`, `busy`, or `lost` (a remote engine whose process or link is gone).
    pub state: String,
    pub queued: usize,
    pub completed: u64,
    pub restarts: u64,
    pub libraries: Vec<String>,
    /// The host and process it runs in (the controller's own for local engines).
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid: u32,
    /// `local` (a thread of the controller) or `remote` (`wasmpar engine --connect`).
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Milliseconds since its process was last heard from (remote engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_ms: Option<u64>,
}

/// One engine's failure inside a task (IPython Parallel's `RemoteError`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineFailure {
    pub engine: usize,
    pub function: String,
    pub message: String,
    /// The wasm backtrace, when the failure was a trap.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trace: String,
    /// What went wrong: `trap`, `timeout`, `cancelled`, `engine`, `argument`, `dependency`, `lost`, `error` (a returned `err`).
    #[serde(default)]
    pub cause: FailureCause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureCause {
    #[default]
    Trap,
    Timeout,
    Cancelled,
    /// The engine thread itself died (a host bug); the engine is replaced.
    Engine,
    /// An argument could not be converted (e.g. a `$ref` of the wrong type).
    Argument,
    /// The component's imports could not be satisfied on this engine.
    Dependency,
    /// A remote engine's process or connection went away mid-call.
    Lost,
    /// The function returned a WIT `err` (e.g. a Python cell raised).
    Error,
}

/// Where an import of a component is satisfied from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportSource {
    Host,
    Wasi,
    Library,
    Unresolved,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportInfo {
    pub name: String,
    pub source: ImportSource,
    /// The uploaded library component that exports it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
}

/// What `POST /v1/install` reports.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstallReport {
    pub component: String,
    pub engines: Vec<usize>,
    pub interfaces: Vec<String>,
    /// Libraries this install replaced, as `engine: library (interface)`.
    pub replaced: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub engines: usize,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineList {
    pub engines: Vec<EngineStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunctionInfo {
    pub name: String,
    pub params: Vec<Param>,
    /// The result's WIT type, if the function returns one.
    pub result: Option<String>,
    /// The whole signature in WIT: `func(x: s64) -> s64`.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComponentInfo {
    pub name: String,
    pub digest: String,
    pub size: usize,
    pub exports: Vec<FunctionInfo>,
    /// Interfaces it exports (a library, when not empty).
    pub interfaces: Vec<String>,
    pub imports: Vec<String>,
    /// Where each import is satisfied from on this cluster.
    pub import_sources: Vec<ImportInfo>,
    /// Imports that neither the engines nor any uploaded library provide:
    /// the component cannot run until a library exporting them is installed.
    #[serde(default)]
    pub unsatisfied: Vec<String>,
    /// Says so in words when `unsatisfied` is not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComponentList {
    pub components: Vec<ComponentInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EngineIds {
    pub engines: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullAnswer {
    pub engines: Vec<usize>,
    #[schema(value_type = Vec<Object>)]
    pub values: Vec<Map<String, Json>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GatherAnswer {
    /// A list, or with `encoding=array` the array form.
    #[schema(value_type = serde_json::Value)]
    pub values: Json,
}

/// What kind of failure ended a task, as IPython Parallel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TaskErrorKind {
    /// One engine's call failed (a trap, an error result, a bad argument).
    RemoteError,
    /// Calls failed on several engines.
    CompositeError,
    /// Every failed call ran past its deadline.
    TimeoutError,
    /// The user cancelled the task.
    Cancelled,
    /// The component's imports are not met.
    DependencyError,
    /// The engine itself failed (a host bug; it was restarted).
    EngineError,
    /// No engine could take the work.
    NoEngine,
    /// A remote engine running the task was lost (its process or link died).
    EngineLost,
}

impl TaskErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskErrorKind::RemoteError => "RemoteError",
            TaskErrorKind::CompositeError => "CompositeError",
            TaskErrorKind::TimeoutError => "TimeoutError",
            TaskErrorKind::Cancelled => "Cancelled",
            TaskErrorKind::DependencyError => "DependencyError",
            TaskErrorKind::EngineError => "EngineError",
            TaskErrorKind::NoEngine => "NoEngine",
            TaskErrorKind::EngineLost => "EngineLost",
        }
    }
}

impl std::fmt::Display for TaskErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
