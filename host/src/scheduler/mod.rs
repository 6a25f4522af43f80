//! The controller: turns requests into engine jobs and results back into
//! answers — targets, partitioning, load balancing, dependencies, the task
//! lifecycle, and the namespace operations (push, pull, scatter, gather).
//!
//! Invariants:
//! - Everything a request can get wrong (unknown names, bad targets, wrong
//!   argument types, unmet imports, full queues) is found here, before any
//!   job is sent; a task that is accepted has all its arguments converted.
//! - Direct views send one job per engine (one message per engine for a
//!   whole chunk); the balanced view shares one queue of batches that free
//!   engines pull from, so no engine idles while batches remain.

pub mod binding;
pub mod partition;
pub mod targets;
pub mod task;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::types::Type;

use crate::engine::{Arg, BalancedWork, BatchOutcome, CallBatch, CallSpec, EngineOutput, EnginePool, Job, NsValue};
use crate::error::{EngineFailure, FailureCause};
use crate::runtime::{interface_matches_pub as interface_matches, LoadedComponent, Runtime, HOST_INTERFACES};
use crate::value::{ArrayForm, Dtype, Encoding};
use crate::{Error, Result};

use binding::Sequence;
pub use targets::{Selection, Targets};
pub use task::{Op, Status, TaskError, TaskRecord, TaskView};

fn default_true() -> bool {
    true
}

/// A task as submitted (API.md, "Tasks").
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub op: Op,
    pub component: String,
    pub function: String,
    /// Positional arguments (apply).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub args: Vec<Json>,
    /// Named arguments (apply), or constants for every call (map, parallel).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub kwargs: Map<String, Json>,
    /// Sequences (map, parallel): JSON lists or array forms.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub sequences: Vec<Json>,
    #[serde(default)]
    pub targets: Targets,
    #[serde(default)]
    pub block: bool,
    /// Balanced map: items per batch (default: automatic).
    #[serde(default)]
    pub chunksize: Option<usize>,
    /// Balanced map: keep results in input order (default true).
    #[serde(default = "default_true")]
    pub ordered: bool,
    /// Per-call deadline in seconds (default: the server's).
    #[serde(default)]
    pub timeout_s: Option<f64>,
    #[serde(default)]
    pub result_encoding: Encoding,
}

/// What `POST /v1/install` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstallReport {
    pub component: String,
    pub engines: Vec<usize>,
    pub interfaces: Vec<String>,
    /// Libraries this install replaced, as `engine: library (interface)`.
    pub replaced: Vec<String>,
}

pub struct Controller {
    pub pool: Arc<EnginePool>,
    pub runtime: Arc<Runtime>,
    pub tasks: task::TaskTable,
}

/// How a finished set of engine outcomes becomes the task's result.
#[derive(Clone, Copy)]
enum Assemble {
    /// One result per engine, as a list.
    PerEngine,
    /// One engine, its single result.
    Single,
    /// Per-engine lists concatenated in order (map).
    Concat,
    /// Parallel: concatenated if the function returns a list, else per engine.
    Parallel,
}

impl Controller {
    pub fn new(pool: Arc<EnginePool>) -> Arc<Controller> {
        let runtime = pool.runtime().clone();
        let tasks = task::TaskTable::new(runtime.limits.tasks_kept, runtime.limits.tasks_min_age);
        Arc::new(Controller { pool, runtime, tasks })
    }

    fn direct(&self, targets: &Targets, what: &str) -> Result<Vec<usize>> {
        match targets.resolve(self.pool.len())? {
            Selection::Direct(ids) => Ok(ids),
            Selection::Balanced => Err(Error::BadRequest(format!("{what} needs direct targets (\"all\", a slice, ids), not \"balanced\""))),
        }
    }

    // ---- dependencies ----------------------------------------------------

    /// Interfaces `component` imports that only a library can provide.
    fn library_imports(component: &LoadedComponent) -> Vec<&str> {
        component
            .imports
            .iter()
            .map(String::as_str)
            .filter(|i| !i.starts_with("wasi:") && !HOST_INTERFACES.iter().any(|h| i.starts_with(h)))
            .collect()
    }

    fn engine_provides(&self, engine: usize, interface: &str) -> bool {
        self.pool.info(engine).is_some_and(|info| info.interfaces.lock().iter().any(|i| interface_matches(i, interface)))
    }

    /// The engines among `candidates` that can link `component`.
    fn capable(&self, component: &LoadedComponent, candidates: &[usize]) -> Vec<usize> {
        let needs = Self::library_imports(component);
        candidates.iter().copied().filter(|&e| needs.iter().all(|i| self.engine_provides(e, i))).collect()
    }

    fn dependency_error(&self, component: &LoadedComponent, engines: &[usize]) -> Error {
        let mut parts = Vec::new();
        for iface in Self::library_imports(component) {
            let lacking: Vec<String> = engines.iter().filter(|&&e| !self.engine_provides(e, iface)).map(|e| e.to_string()).collect();
            if lacking.is_empty() {
                continue;
            }
            let providers = self.runtime.components.exporters_of(iface);
            let hint = match providers.first() {
                Some(lib) => format!("install `{lib}`, which exports it: POST /v1/install {{\"component\": \"{lib}\"}} or `wasmpar install {lib}`"),
                None => "no uploaded component exports it: upload a library that does, then install it".to_string(),
            };
            parts.push(format!("`{}` imports `{iface}`, which engine(s) {} lack; {hint}", component.name, lacking.join(", ")));
        }
        Error::Dependency(parts.join("; "))
    }

    fn require_all(&self, component: &LoadedComponent, ids: &[usize]) -> Result<()> {
        if self.capable(component, ids).len() == ids.len() {
            Ok(())
        } else {
            Err(self.dependency_error(component, ids))
        }
    }

    fn require_some(&self, component: &LoadedComponent) -> Result<Vec<usize>> {
        let all = self.pool.ids();
        let ok = self.capable(component, &all);
        if ok.is_empty() {
            Err(self.dependency_error(component, &all))
        } else {
            Ok(ok)
        }
    }

    // ---- tasks -------------------------------------------------------------

    pub fn task(&self, id: &str) -> Result<Arc<TaskRecord>> {
        self.tasks.get(id).ok_or_else(|| Error::not_found("task", id))
    }

    /// Validate and start a task; the returned record finishes on its own.
    pub fn submit(self: &Arc<Self>, spec: TaskSpec) -> Result<Arc<TaskRecord>> {
        let component = self.runtime.components.get(&spec.component)?;
        let function = component
            .functions
            .iter()
            .position(|f| f.name == spec.function || f.name.replace('-', "_") == spec.function)
            .ok_or_else(|| component.function(&spec.function).err().unwrap_or_else(|| Error::not_found("function", &spec.function)))?;
        let f = &component.functions[function];
        let timeout = match spec.timeout_s {
            None => self.runtime.limits.call_timeout,
            Some(s) if s.is_finite() && s > 0.0 && s <= 7.0 * 86400.0 => Duration::from_secs_f64(s),
            Some(s) => return Err(Error::BadRequest(format!("timeout_s must be a positive number of seconds, got {s}"))),
        };
        if spec.op == Op::Apply && !spec.sequences.is_empty() {
            return Err(Error::BadRequest("apply takes args and kwargs, not sequences (use op \"map\")".into()));
        }
        if spec.op != Op::Apply && !spec.args.is_empty() {
            return Err(Error::BadRequest(format!("{:?} takes sequences (and kwargs for constants), not args", spec.op).to_lowercase()));
        }
        let selection = spec.targets.resolve(self.pool.len())?;
        let seqs = spec.sequences.iter().cloned().enumerate().map(|(i, s)| Sequence::parse(s, i)).collect::<Result<Vec<_>>>()?;
        let len = binding::common_len(&seqs);
        if len > self.runtime.limits.max_sequence_len {
            return Err(Error::TooLarge(format!("sequences of {len} items exceed the limit of {}", self.runtime.limits.max_sequence_len)));
        }
        let result_ty = f.results.first().cloned();
        let call_spec = |control| CallSpec { component: component.clone(), function, encoding: spec.result_encoding, timeout, control };
        let batch = |calls: Vec<Vec<Arg>>, control| CallBatch { spec: call_spec(control), calls };

        match (spec.op, selection) {
            (Op::Apply, Selection::Direct(ids)) => {
                self.require_all(&component, &ids)?;
                let args = binding::bind_call(f, &spec.args, &spec.kwargs)?;
                let record = TaskRecord::new(spec.op, &component.name, &f.name, ids.len(), ids.clone());
                let jobs = ids.iter().map(|&id| (id, batch(vec![args.clone()], record.control.clone()))).collect();
                self.start_direct(record, jobs, Assemble::PerEngine, result_ty, spec.result_encoding)
            }
            (Op::Apply, Selection::Balanced) => {
                let capable = self.require_some(&component)?;
                let args = binding::bind_call(f, &spec.args, &spec.kwargs)?;
                let id = self.pool.least_loaded(&capable).ok_or_else(|| Error::Internal("no engine".into()))?;
                let record = TaskRecord::new(spec.op, &component.name, &f.name, 1, vec![id]);
                let jobs = vec![(id, batch(vec![args], record.control.clone()))];
                self.start_direct(record, jobs, Assemble::Single, result_ty, spec.result_encoding)
            }
            (Op::Map, Selection::Direct(ids)) => {
                self.require_all(&component, &ids)?;
                let mut calls = binding::bind_map(f, &seqs, &spec.kwargs)?;
                let record = TaskRecord::new(spec.op, &component.name, &f.name, len, ids.clone());
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
                let calls = binding::bind_map(f, &seqs, &spec.kwargs)?;
                let chunksize = match spec.chunksize {
                    Some(0) => return Err(Error::BadRequest("chunksize must be at least 1".into())),
                    Some(c) => c,
                    None => partition::automatic_chunksize(len, capable.len()),
                };
                let record = TaskRecord::new(spec.op, &component.name, &f.name, len, capable.clone());
                let work = call_spec(record.control.clone());
                self.start_balanced(record, work, calls, chunksize, capable, spec.ordered, result_ty)
            }
            (Op::Parallel, Selection::Direct(ids)) => {
                self.require_all(&component, &ids)?;
                let pairs: Vec<_> = ids.iter().copied().zip(partition::contiguous(len, ids.len())).filter(|(_, r)| !r.is_empty()).collect();
                let ranges: Vec<_> = pairs.iter().map(|(_, r)| r.clone()).collect();
                let calls = binding::bind_parallel(f, &seqs, &spec.kwargs, &ranges)?;
                let used: Vec<usize> = pairs.iter().map(|(id, _)| *id).collect();
                let record = TaskRecord::new(spec.op, &component.name, &f.name, used.len(), used.clone());
                let jobs = used.iter().zip(calls).map(|(&id, call)| (id, batch(vec![call], record.control.clone()))).collect();
                self.start_direct(record, jobs, Assemble::Parallel, result_ty, spec.result_encoding)
            }
            (Op::Parallel, Selection::Balanced) => {
                Err(Error::BadRequest("parallel gives each engine its chunk: use direct targets, not \"balanced\"".into()))
            }
        }
    }

    fn start_direct(
        self: &Arc<Self>,
        record: Arc<TaskRecord>,
        jobs: Vec<(usize, CallBatch)>,
        assemble: Assemble,
        result_ty: Option<Type>,
        encoding: Encoding,
    ) -> Result<Arc<TaskRecord>> {
        let ids: Vec<usize> = jobs.iter().map(|(id, _)| *id).collect();
        self.pool.check_capacity(&ids)?;
        self.tasks.insert(record.clone());
        let mut pending = Vec::with_capacity(jobs.len());
        for (id, batch) in jobs {
            let (tx, rx) = oneshot::channel();
            match self.pool.send(id, Job::Call { batch, reply: tx }) {
                Ok(()) => pending.push((id, Some(rx))),
                Err(e) => {
                    tracing::warn!(engine = id, "cannot queue: {e}");
                    pending.push((id, None));
                }
            }
        }
        record.mark_running();
        let task = record.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::with_capacity(pending.len());
            for (id, rx) in pending {
                let got = match rx {
                    Some(rx) => rx.await.ok(),
                    None => None,
                };
                outcomes.push(got.unwrap_or_else(|| engine_died(id, &task)));
            }
            finish(&task, outcomes, assemble, result_ty.as_ref(), encoding);
        });
        Ok(record)
    }

    // The arguments are the parts of one task; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn start_balanced(
        self: &Arc<Self>,
        record: Arc<TaskRecord>,
        call_spec: CallSpec,
        calls: Vec<Vec<Arg>>,
        chunksize: usize,
        engines: Vec<usize>,
        ordered: bool,
        result_ty: Option<Type>,
    ) -> Result<Arc<TaskRecord>> {
        self.pool.check_capacity(&engines)?;
        let ranges = partition::batches(calls.len(), chunksize);
        let mut calls = calls;
        let mut batches: Vec<Mutex<Option<Vec<Vec<Arg>>>>> = Vec::with_capacity(ranges.len());
        for range in ranges.iter().rev() {
            batches.push(Mutex::new(Some(calls.split_off(range.start))));
        }
        batches.reverse();
        let n_batches = batches.len();
        let (sink, mut results) = mpsc::unbounded_channel();
        let encoding = call_spec.encoding;
        let work = Arc::new(BalancedWork { spec: call_spec, batches, next: Default::default(), stop: Default::default(), sink });
        self.tasks.insert(record.clone());
        for &id in &engines {
            if let Err(e) = self.pool.send(id, Job::Balanced(work.clone())) {
                tracing::warn!(engine = id, "cannot queue balanced work: {e}");
            }
        }
        record.mark_running();
        let task = record.clone();
        tokio::spawn(async move {
            let mut slots: Vec<Option<Vec<Json>>> = vec![None; n_batches];
            let mut arrival: Vec<usize> = Vec::with_capacity(n_batches);
            let mut outputs = Vec::new();
            let mut failures = Vec::new();
            let mut used = Vec::new();
            let mut received = 0;
            while received < n_batches {
                let stopping = !failures.is_empty() || task.control.is_cancelled();
                if stopping && received >= work.next.load(Ordering::SeqCst).min(n_batches) {
                    break;
                }
                // Wake up now and then to notice a cancel with nothing in flight.
                let Ok(got) = tokio::time::timeout(Duration::from_millis(50), results.recv()).await else { continue };
                let Some(BatchOutcome { engine, batch, results: r, output }) = got else { break };
                received += 1;
                if !used.contains(&engine) {
                    used.push(engine);
                }
                if !output.is_empty() {
                    outputs.push(output);
                }
                match r {
                    Ok(values) => {
                        slots[batch] = Some(values);
                        arrival.push(batch);
                    }
                    Err(f) => {
                        work.stop.store(true, Ordering::SeqCst);
                        failures.push(f);
                    }
                }
            }
            used.sort_unstable();
            task.set_engines(used);
            let outputs = merge_outputs(outputs);
            if !failures.is_empty() || task.control.is_cancelled() {
                task.finish(Err(TaskError::from_failures(failures, task.control.is_cancelled())), outputs);
                return;
            }
            let order: Vec<usize> = if ordered { (0..n_batches).collect() } else { arrival };
            let mut flat = Vec::with_capacity(task.total);
            for b in order {
                flat.extend(slots[b].take().unwrap_or_default());
            }
            task.finish(Ok(flat_result(flat, result_ty.as_ref(), encoding)), outputs);
        });
        Ok(record)
    }

    pub async fn cancel(&self, id: &str) -> Result<TaskView> {
        let task = self.task(id)?;
        if !task.status().is_finished() {
            task.control.cancel();
            task.wait(Duration::from_secs(5)).await;
        }
        Ok(task.view())
    }

    // ---- namespace -----------------------------------------------------------

    async fn each_engine<T: Send + 'static>(
        &self,
        ids: &[usize],
        make: impl Fn(usize, oneshot::Sender<T>) -> Job,
    ) -> Result<Vec<T>> {
        let mut rxs = Vec::with_capacity(ids.len());
        for &id in ids {
            let (tx, rx) = oneshot::channel();
            self.pool.send(id, make(id, tx))?;
            rxs.push((id, rx));
        }
        let mut out = Vec::with_capacity(rxs.len());
        for (id, rx) in rxs {
            out.push(rx.await.map_err(|_| Error::EngineGone(format!("engine {id} failed while handling the request; it was restarted")))?);
        }
        Ok(out)
    }

    pub async fn push(&self, targets: &Targets, values: &Map<String, Json>) -> Result<Vec<usize>> {
        let ids = self.direct(targets, "push")?;
        if values.is_empty() {
            return Err(Error::BadRequest("push: `values` names nothing to push".into()));
        }
        let mut parsed = Vec::with_capacity(values.len());
        for (name, v) in values {
            check_global_name(name)?;
            let value = NsValue::from_json(v).map_err(|m| Error::BadRequest(format!("push `{name}`: {m}")))?;
            parsed.push((name.clone(), value));
        }
        self.each_engine(&ids, |_, reply| Job::Push { values: parsed.clone(), reply }).await?;
        Ok(ids)
    }

    /// Push one already-decoded value (the binary route).
    pub async fn push_value(&self, targets: &Targets, name: &str, value: NsValue) -> Result<Vec<usize>> {
        check_global_name(name)?;
        let ids = self.direct(targets, "push")?;
        self.each_engine(&ids, |_, reply| Job::Push { values: vec![(name.to_string(), value.clone())], reply }).await?;
        Ok(ids)
    }

    /// One engine's value of `name` (the binary route).
    pub async fn pull_value(&self, targets: &Targets, name: &str) -> Result<NsValue> {
        let ids = self.direct(targets, "pull")?;
        let [id] = ids.as_slice() else {
            return Err(Error::BadRequest(format!("a binary pull reads one engine; the targets select {}", ids.len())));
        };
        let mut values = self.pull_values(&[*id], &[name.to_string()]).await?;
        values.pop().and_then(|mut v| v.pop()).ok_or_else(|| Error::not_found("name", name))
    }

    async fn pull_values(&self, ids: &[usize], names: &[String]) -> Result<Vec<Vec<NsValue>>> {
        if names.is_empty() {
            return Err(Error::BadRequest("pull: give at least one name".into()));
        }
        let replies = self.each_engine(ids, |_, reply| Job::Pull { names: names.to_vec(), reply }).await?;
        ids.iter()
            .zip(replies)
            .map(|(id, r)| r.map_err(|name| Error::not_found_hint("name", &name, format!(" on engine {id}"))))
            .collect()
    }

    pub async fn pull(&self, targets: &Targets, names: &[String], encoding: Encoding) -> Result<(Vec<usize>, Vec<Map<String, Json>>)> {
        let ids = self.direct(targets, "pull")?;
        let values = self.pull_values(&ids, names).await?;
        let maps = values
            .into_iter()
            .map(|vals| names.iter().cloned().zip(vals.iter().map(|v| v.to_json(encoding))).collect())
            .collect();
        Ok((ids, maps))
    }

    pub async fn scatter(&self, name: &str, values: &Json, targets: &Targets) -> Result<Vec<usize>> {
        check_global_name(name)?;
        let ids = self.direct(targets, "scatter")?;
        let chunks: Vec<NsValue> = match values {
            Json::Array(items) => partition::contiguous(items.len(), ids.len())
                .into_iter()
                .map(|r| NsValue::from_json(&Json::Array(items[r].to_vec())))
                .collect::<std::result::Result<_, _>>()
                .map_err(|m| Error::BadRequest(format!("scatter: {m}")))?,
            Json::Object(obj) => match ArrayForm::from_json(obj) {
                Some(Ok(a)) if !a.shape.is_empty() => {
                    let whole = NsValue::from_array(a);
                    let len = whole.rows().unwrap_or(0);
                    partition::contiguous(len, ids.len())
                        .into_iter()
                        .map(|r| whole.slice(r.start, r.end).ok_or_else(|| Error::BadRequest("scatter: cannot split this array".into())))
                        .collect::<Result<_>>()?
                }
                Some(Err(m)) => return Err(Error::BadRequest(format!("scatter: {m}"))),
                _ => return Err(Error::BadRequest("scatter: `values` must be a list or an array form".into())),
            },
            other => {
                return Err(Error::BadRequest(format!(
                    "scatter: `values` must be a list or an array form, got {}",
                    crate::value::describe_json(other)
                )))
            }
        };
        self.each_engine(&ids, |i, reply| {
            let pos = ids.iter().position(|&x| x == i).unwrap_or(0);
            Job::Push { values: vec![(name.to_string(), chunks[pos].clone())], reply }
        })
        .await?;
        Ok(ids)
    }

    pub async fn gather(&self, name: &str, targets: &Targets, encoding: Encoding) -> Result<Json> {
        let ids = self.direct(targets, "gather")?;
        let values = self.pull_values(&ids, &[name.to_string()]).await?;
        let parts: Vec<NsValue> = values.into_iter().flatten().collect();
        let whole = NsValue::concat(&parts).map_err(|m| Error::BadRequest(format!("gather `{name}`: {m}")))?;
        Ok(whole.to_json(encoding))
    }

    // ---- libraries -----------------------------------------------------------

    pub async fn install(&self, component: &str, targets: &Targets) -> Result<InstallReport> {
        let lib = self.runtime.components.get(component)?;
        if lib.interfaces.is_empty() {
            return Err(Error::BadRequest(format!(
                "`{component}` exports no interface, so there is nothing to install; tasks are called, libraries are installed"
            )));
        }
        let ids = self.direct(targets, "install")?;
        let missing: Vec<usize> = ids.iter().copied().filter(|&e| !self.capable(&lib, &[e]).contains(&e)).collect();
        if !missing.is_empty() {
            return Err(self.dependency_error(&lib, &missing));
        }
        let mut replaced = Vec::new();
        for &e in &ids {
            let Some(info) = self.pool.info(e) else { continue };
            for prev in info.libraries.lock().iter().filter(|l| l.as_str() != component) {
                if let Ok(p) = self.runtime.components.get(prev) {
                    for i in p.interfaces.iter().filter(|i| lib.interfaces.contains(i)) {
                        replaced.push(format!("engine {e}: {prev} ({i})"));
                    }
                }
            }
        }
        let replies = self.each_engine(&ids, |_, reply| Job::Install { component: lib.clone(), reply }).await?;
        let errors: Vec<String> = replies.into_iter().filter_map(|r| r.err()).collect();
        if !errors.is_empty() {
            return Err(Error::Dependency(errors.join("; ")));
        }
        for r in &replaced {
            tracing::info!(library = component, "install replaces {r}");
        }
        Ok(InstallReport { component: component.to_string(), engines: ids, interfaces: lib.interfaces.clone(), replaced })
    }

    /// Drop a component everywhere (its instances go with it).
    pub fn remove_component(&self, name: &str) -> Result<()> {
        let removed = self.runtime.components.remove(name)?;
        for id in self.pool.ids() {
            let _ = self.pool.send(id, Job::Forget { digest: removed.digest.clone() });
        }
        Ok(())
    }

    /// Where each import of `component` comes from, on this cluster.
    pub fn import_sources(&self, component: &LoadedComponent) -> Vec<crate::runtime::ImportInfo> {
        use crate::runtime::{ImportInfo, ImportSource};
        component
            .imports
            .iter()
            .map(|name| {
                if HOST_INTERFACES.iter().any(|h| name.starts_with(h)) {
                    ImportInfo { name: name.clone(), source: ImportSource::Host, library: None }
                } else if name.starts_with("wasi:") {
                    ImportInfo { name: name.clone(), source: ImportSource::Wasi, library: None }
                } else {
                    let lib = self.runtime.components.exporters_of(name).into_iter().next();
                    let source = if lib.is_some() { ImportSource::Library } else { ImportSource::Unresolved };
                    ImportInfo { name: name.clone(), source, library: lib }
                }
            })
            .collect()
    }
}

fn check_global_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!("{name:?} is not a usable global name")));
    }
    Ok(())
}

fn engine_died(id: usize, task: &TaskRecord) -> BatchOutcome {
    BatchOutcome {
        engine: id,
        batch: 0,
        results: Err(EngineFailure {
            engine: id,
            function: format!("{}/{}", task.component, task.function),
            message: format!("engine {id} crashed while running this task; it was restarted (its namespace is kept)"),
            trace: String::new(),
            cause: FailureCause::Engine,
        }),
        output: EngineOutput { engine: id, ..Default::default() },
    }
}

fn merge_outputs(outputs: Vec<EngineOutput>) -> Vec<EngineOutput> {
    let mut merged: Vec<EngineOutput> = Vec::new();
    for o in outputs {
        match merged.iter_mut().find(|m| m.engine == o.engine) {
            Some(m) => {
                m.stdout.push_str(&o.stdout);
                m.stderr.push_str(&o.stderr);
                m.images.extend(o.images);
            }
            None => merged.push(o),
        }
    }
    merged
}

fn finish(task: &TaskRecord, outcomes: Vec<BatchOutcome>, assemble: Assemble, result_ty: Option<&Type>, encoding: Encoding) {
    let mut failures = Vec::new();
    let mut per_engine = Vec::with_capacity(outcomes.len());
    let mut outputs = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        outputs.push(o.output);
        match o.results {
            Ok(values) => per_engine.push(values),
            Err(f) => failures.push(f),
        }
    }
    let outputs = merge_outputs(outputs);
    if !failures.is_empty() {
        task.finish(Err(TaskError::from_failures(failures, task.control.is_cancelled())), outputs);
        return;
    }
    let first = |v: Vec<Json>| v.into_iter().next().unwrap_or(Json::Null);
    let result = match assemble {
        Assemble::PerEngine => Json::Array(per_engine.into_iter().map(first).collect()),
        Assemble::Single => per_engine.into_iter().next().map(first).unwrap_or(Json::Null),
        Assemble::Concat => flat_result(per_engine.into_iter().flatten().collect(), result_ty, encoding),
        Assemble::Parallel => {
            let results: Vec<Json> = per_engine.into_iter().map(first).collect();
            if matches!(result_ty, Some(Type::List(_))) {
                concat_lists(results)
            } else {
                Json::Array(results)
            }
        }
    };
    task.finish(Ok(result), outputs);
}

/// A map's flat results; as one array form when asked and the items are numbers.
fn flat_result(flat: Vec<Json>, result_ty: Option<&Type>, encoding: Encoding) -> Json {
    if encoding == Encoding::Array {
        let dtype = match result_ty {
            Some(Type::Float64 | Type::Float32) => Some(Dtype::F64),
            Some(Type::S8 | Type::S16 | Type::S32 | Type::S64 | Type::U8 | Type::U16 | Type::U32) => Some(Dtype::I64),
            _ => None,
        };
        match dtype {
            Some(Dtype::F64) => {
                let xs: Option<Vec<f64>> = flat.iter().map(Json::as_f64).collect();
                if let Some(xs) = xs {
                    return ArrayForm::from_f64(vec![xs.len()], &xs).to_json();
                }
            }
            Some(_) => {
                let xs: Option<Vec<i64>> = flat.iter().map(Json::as_i64).collect();
                if let Some(xs) = xs {
                    return ArrayForm::from_i64(vec![xs.len()], &xs).to_json();
                }
            }
            None => {}
        }
    }
    Json::Array(flat)
}

/// Concatenate per-engine lists (JSON lists, or array forms of one dtype).
fn concat_lists(parts: Vec<Json>) -> Json {
    let arrays: Option<Vec<ArrayForm>> = parts
        .iter()
        .map(|p| p.as_object().and_then(ArrayForm::from_json).and_then(|r| r.ok()))
        .collect();
    if let Some(arrays) = arrays.filter(|a| !a.is_empty()) {
        let dtype = arrays[0].dtype;
        if arrays.iter().all(|a| a.dtype == dtype && a.shape[1..] == arrays[0].shape[1..]) {
            let mut shape = arrays[0].shape.clone();
            shape[0] = arrays.iter().map(|a| a.shape[0]).sum();
            let data = arrays.iter().flat_map(|a| a.data.iter().copied()).collect();
            return ArrayForm { dtype, shape, data }.to_json();
        }
    }
    Json::Array(parts.into_iter().flat_map(|p| match p {
        Json::Array(items) => items,
        other => vec![other],
    }).collect())
}
