//! Submitting a task: the spec as sent, its validation, and the choice of how
//! it runs (direct, balanced), with every argument converted (or, for a
//! balanced map, checked) before any job is sent (the invariant of
//! `scheduler`). Lists of numbers arrive as columns (`SentSequence`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::binding::{self, SentSequence, Sequence};
use super::direct::Assemble;
use super::partition;
use super::targets::{Selection, Targets};
use super::task::{Op, TaskRecord};
use super::Controller;
use crate::engine::{Arg, CallBatch, CallSpec};
use crate::runtime::LoadedComponent;
use crate::value::Encoding;
use crate::{Error, Result};

fn default_true() -> bool {
    true
}

/// A task as submitted (API.md, "Tasks").
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub op: Op,
    /// The component and its function (every op but execute).
    #[serde(default)]
    pub component: String,
    #[serde(default)]
    pub function: String,
    /// Python source of one cell (execute): runs on each target engine in
    /// the Python runner, which is uploaded as `python` on first use.
    #[serde(default)]
    pub code: Option<String>,
    /// Positional arguments (apply).
    #[serde(default)]
    #[schema(value_type = Vec<serde_json::Value>)]
    pub args: Vec<Json>,
    /// Named arguments (apply), or constants for every call (map, parallel).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Json>,
    /// Sequences (map, parallel): JSON lists or array forms.
    #[serde(default)]
    #[schema(value_type = Vec<serde_json::Value>)]
    pub sequences: Vec<SentSequence>,
    #[serde(default)]
    pub targets: Targets,
    #[serde(default)]
    pub block: bool,
    /// Balanced map: items per batch (default: automatic).
    #[serde(default)]
    #[schema(maximum = 4294967295.0)]
    pub chunksize: Option<usize>,
    /// Balanced map: keep results in input order (default true).
    #[serde(default = "default_true")]
    pub ordered: bool,
    /// Per-call deadline in seconds (default: the server's).
    #[serde(default)]
    pub timeout_s: Option<f64>,
    #[serde(default)]
    pub result_encoding: Encoding,
    /// Balanced map: how often a batch whose engine was lost runs again
    /// elsewhere (IPython Parallel's `retries`; default 1).
    #[serde(default)]
    #[schema(maximum = 4294967295.0)]
    pub retries: Option<usize>,
    /// The buffers of a framed body (`value::frames`), which array forms in
    /// `args`, `kwargs` and `sequences` name; not part of the JSON.
    #[serde(skip)]
    pub buffers: Vec<bytes::Bytes>,
}

/// The longest per-call deadline a task may ask for: 7 days.
const MAX_TIMEOUT_S: f64 = 7.0 * 86400.0;

/// Tasks with more items than this are converted on a blocking thread, so
/// one large map does not stall the async runtime's other requests.
const INLINE_ITEMS: usize = 4096;

impl TaskSpec {
    /// Roughly how many items converting this task touches: list items, or
    /// an array form's bytes / 8.
    pub fn weight(&self) -> usize {
        self.sequences.iter().map(SentSequence::weight).sum::<usize>() + self.argument_weight()
    }

    /// [`TaskSpec::weight`] of `args` and `kwargs` alone.
    fn argument_weight(&self) -> usize {
        let one = |v: &Json| match v {
            Json::Array(items) => items.len(),
            Json::Object(o) => o.get("data").and_then(Json::as_str).map_or(1, |d| d.len() / 8),
            _ => 1,
        };
        self.args.iter().map(one).sum::<usize>() + self.kwargs.values().map(one).sum::<usize>()
    }
}

impl Controller {
    /// [`Controller::submit`], off the async runtime when the task is large.
    pub async fn submit_off_runtime(self: &Arc<Self>, spec: TaskSpec) -> Result<Arc<TaskRecord>> {
        // execute may compile the runner first (seconds): never inline.
        if spec.op != Op::Execute && (spec.weight() <= INLINE_ITEMS || self.binds_in_place(&spec)) {
            return self.submit(spec);
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.submit(spec)).await.map_err(|e| Error::Internal(format!("task submission panicked: {e}")))?
    }

    /// A `parallel` whose arrays the engines read in place from the body
    /// (`binding::rows_bind_in_place`) binds in a few µs whatever their
    /// size: submitted on the runtime, since a blocking thread's two
    /// wake-ups cost more than that (and on a machine with as many engines
    /// as cores, each is a chance to be queued behind an engine's call).
    fn binds_in_place(&self, spec: &TaskSpec) -> bool {
        if spec.op != Op::Parallel || spec.argument_weight() > INLINE_ITEMS {
            return false;
        }
        let Ok(component) = self.runtime.components.get(&spec.component) else { return false };
        let Ok(function) = function_index(&component, &spec.function) else { return false };
        binding::rows_bind_in_place(&component.functions[function], &spec.kwargs, &spec.sequences, &spec.buffers)
    }

    pub fn submit(self: &Arc<Self>, spec: TaskSpec) -> Result<Arc<TaskRecord>> {
        let mut spec = if spec.op == Op::Execute { self.execute_as_apply(spec)? } else { spec };
        if spec.code.is_some() {
            return Err(Error::BadRequest("code is for op \"execute\"".into()));
        }
        let component = self.runtime.components.get(&spec.component)?;
        let function = function_index(&component, &spec.function)?;
        let f = &component.functions[function];
        let timeout = match spec.timeout_s {
            None => self.runtime.limits.call_timeout,
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_S => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(Error::BadRequest(format!(
                    "timeout_s must be more than 0 and at most {MAX_TIMEOUT_S} seconds (7 days), got {s}"
                )))
            }
        };
        if spec.op == Op::Apply && !spec.sequences.is_empty() {
            return Err(Error::BadRequest("apply takes args and kwargs, not sequences (use op \"map\")".into()));
        }
        if !matches!(spec.op, Op::Apply | Op::Execute) && !spec.args.is_empty() {
            return Err(Error::BadRequest(format!("{:?} takes sequences (and kwargs for constants), not args", spec.op).to_lowercase()));
        }
        let selection = self.resolve(&spec.targets)?;
        let buffers = std::mem::take(&mut spec.buffers);
        binding::all_buffers_named(&spec, &buffers)?;
        // Moved, not copied: a big map's sequences are held once.
        let seqs = std::mem::take(&mut spec.sequences)
            .into_iter()
            .enumerate()
            .map(|(i, s)| Sequence::parse(s, i, &buffers))
            .collect::<Result<Vec<_>>>()?;
        let len = binding::common_len(&seqs);
        if len > self.runtime.limits.max_sequence_len {
            return Err(Error::TooLarge(format!("sequences of {len} items exceed the limit of {}", self.runtime.limits.max_sequence_len)));
        }
        let result_ty = f.value_type();
        let call_spec = |control| CallSpec { component: component.clone(), function, encoding: spec.result_encoding, timeout, control };
        let batch = |calls: Vec<Vec<Arg>>, control| CallBatch { spec: call_spec(control), calls };

        match (spec.op, selection) {
            (Op::Execute, Selection::Balanced) => {
                Err(Error::BadRequest("execute runs the cell on each target engine: use direct targets, not \"balanced\"".into()))
            }
            (Op::Apply | Op::Execute, Selection::Direct(ids)) => {
                self.require_all(&component, &ids)?;
                let args = binding::bind_call(f, &spec.args, &spec.kwargs, &buffers)?;
                let record = self.tasks.record(spec.op, &component.name, &f.name, ids.len(), ids.clone());
                let jobs = ids.iter().map(|&id| (id, batch(vec![args.clone()], record.control.clone()))).collect();
                self.start_direct(record, jobs, Assemble::PerEngine, result_ty, spec.result_encoding)
            }
            (Op::Apply, Selection::Balanced) => {
                let capable = self.require_some(&component)?;
                let args = binding::bind_call(f, &spec.args, &spec.kwargs, &buffers)?;
                let id = self.pool.least_loaded(&capable).ok_or_else(|| Error::Internal("no engine".into()))?;
                let record = self.tasks.record(spec.op, &component.name, &f.name, 1, vec![id]);
                let jobs = vec![(id, batch(vec![args], record.control.clone()))];
                self.start_direct(record, jobs, Assemble::Single, result_ty, spec.result_encoding)
            }
            (Op::Map, Selection::Direct(ids)) => {
                self.require_all(&component, &ids)?;
                let mut calls = binding::bind_map(f, seqs, &spec.kwargs, &buffers)?;
                let record = self.tasks.record(spec.op, &component.name, &f.name, len, ids.clone());
                let ranges = partition::contiguous(len, ids.len());
                let mut jobs = Vec::new();
                // Split from the back so each chunk is moved, not copied.
                for (&id, range) in ids.iter().zip(ranges).rev() {
                    let chunk = calls.split_off(range.start);
                    if !chunk.is_empty() {
                        jobs.push((id, batch(chunk, record.control.clone())));
                    }
                }
                jobs.reverse();
                self.start_direct(record, jobs, Assemble::Concat, result_ty, spec.result_encoding)
            }
            (Op::Map, Selection::Balanced) => {
                let capable = self.require_some(&component)?;
                let calls = binding::MapCalls::new(f, seqs, &spec.kwargs, &buffers)?;
                calls.check()?;
                let chunksize = match spec.chunksize {
                    Some(0) => return Err(Error::BadRequest("chunksize must be at least 1".into())),
                    Some(c) => c,
                    None => partition::automatic_chunksize(len, capable.len()),
                };
                let record = self.tasks.record(spec.op, &component.name, &f.name, len, capable.clone());
                let work = call_spec(record.control.clone());
                self.start_balanced(record, work, calls, chunksize, capable, spec.ordered, spec.retries.unwrap_or(1), result_ty)
            }
            (Op::Parallel, Selection::Direct(ids)) => {
                self.require_all(&component, &ids)?;
                let pairs: Vec<_> = ids.iter().copied().zip(partition::contiguous(len, ids.len())).filter(|(_, r)| !r.is_empty()).collect();
                let ranges: Vec<_> = pairs.iter().map(|(_, r)| r.clone()).collect();
                let calls = binding::bind_parallel(f, &seqs, &spec.kwargs, &ranges, &buffers)?;
                let used: Vec<usize> = pairs.iter().map(|(id, _)| *id).collect();
                let record = self.tasks.record(spec.op, &component.name, &f.name, used.len(), used.clone());
                let jobs = used.iter().zip(calls).map(|(&id, call)| (id, batch(vec![call], record.control.clone()))).collect();
                self.start_direct(record, jobs, Assemble::Parallel, result_ty, spec.result_encoding)
            }
            (Op::Parallel, Selection::Balanced) => {
                Err(Error::BadRequest("parallel gives each engine its chunk: use direct targets, not \"balanced\"".into()))
            }
        }
    }
}

/// The Python runner's name once uploaded, and the function a cell calls.
pub const PYTHON_RUNNER: &str = "python";
const RUNNER_FUNCTION: &str = "execute";

impl Controller {
    /// An execute task is an apply of `python/execute` with the cell as its
    /// one argument; the op stays `execute` on the record.
    fn execute_as_apply(&self, spec: TaskSpec) -> Result<TaskSpec> {
        let Some(code) = spec.code.clone() else {
            return Err(Error::BadRequest("execute takes the cell's Python source as \"code\"".into()));
        };
        if !spec.component.is_empty()
            || !spec.function.is_empty()
            || !spec.args.is_empty()
            || !spec.kwargs.is_empty()
            || !spec.sequences.is_empty()
        {
            return Err(Error::BadRequest(
                "execute takes code (and targets, block, timeout_s), not component, function, args, kwargs or sequences".into(),
            ));
        }
        self.python_runner()?;
        Ok(TaskSpec {
            component: PYTHON_RUNNER.into(),
            function: RUNNER_FUNCTION.into(),
            args: vec![Json::String(code)],
            code: None,
            ..spec
        })
    }

    /// The uploaded runner, or the runner file compiled and registered now
    /// (blocking: a cold compile of the 20 MB runner takes seconds, then the
    /// compile cache makes it quick).
    fn python_runner(&self) -> Result<Arc<LoadedComponent>> {
        if let Ok(c) = self.runtime.components.get(PYTHON_RUNNER) {
            if function_index(&c, RUNNER_FUNCTION).is_ok() {
                return Ok(c);
            }
        }
        let path = self.runtime.limits.python_runner.clone().or_else(default_runner_path).ok_or_else(|| {
            Error::Dependency("no Python runner: start the server with --python-runner PATH or set WASMPAR_PYTHON_RUNNER".into())
        })?;
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::Dependency(format!(
                "the Python runner {} cannot be read ({e}): build it with scripts/setup.d/15-python-runner.sh, \
                 or start the server with --python-runner PATH",
                path.display()
            ))
        })?;
        let started = std::time::Instant::now();
        tracing::info!(path = %path.display(), "loading the Python runner (a first compile takes seconds)");
        let (loaded, replaced) = self.runtime.components.add(PYTHON_RUNNER, &bytes)?;
        if let Some(old) = replaced.filter(|old| old.digest != loaded.digest) {
            self.forget_everywhere(&old.digest);
        }
        tracing::info!(ms = started.elapsed().as_millis() as u64, "Python runner ready");
        Ok(loaded)
    }
}

/// `$WASMPAR_PYTHON_RUNNER`, else `target/guests/other/python_runner.wasm`
/// of the build tree holding this binary (`target/release/wasmpar`).
fn default_runner_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("WASMPAR_PYTHON_RUNNER") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("guests/other/python_runner.wasm"))
}

/// The index of `name` among `component`'s functions (WIT or snake_case spelling).
pub(super) fn function_index(component: &LoadedComponent, name: &str) -> Result<usize> {
    component.functions.iter().position(|f| crate::value::wit_name_matches(&f.name, name)).ok_or_else(|| {
        let known: Vec<&str> = component.functions.iter().map(|f| f.name.as_str()).collect();
        Error::not_found_hint(
            "function",
            format!("{}/{}", component.name, name),
            format!("; it exports: {}", if known.is_empty() { "nothing".into() } else { known.join(", ") }),
        )
    })
}
