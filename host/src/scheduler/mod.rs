//! The controller: turns requests into engine jobs and results back into
//! answers — targets, partitioning, load balancing, dependencies, the task
//! lifecycle, and the namespace operations (push, pull, scatter, gather).
//!
//! Invariants:
//! - Everything a request can get wrong (unknown names, bad targets, wrong
//!   argument types, unmet imports, full queues) is found here, before any
//!   job is sent; a task that is accepted has all its arguments converted
//!   (a balanced map converts each item once to check it, then binds each
//!   batch again when an engine takes it, so only running batches hold
//!   their arguments).
//! - Direct views send one job per engine (one message per engine for a
//!   whole chunk); the balanced view shares one queue of batches that free
//!   engines pull from, so no engine idles while batches remain.

mod balanced;
pub mod binding;
mod dependencies;
mod direct;
mod namespace;
pub mod partition;
mod result;
mod submit;
pub mod targets;
pub mod task;

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{EnginePool, EngineStatus, Job};
use crate::runtime::{Limits, Runtime};
use crate::wire::ComponentInfo;
use crate::{Error, Result};

pub use crate::runtime::Limits as EngineLimits;
pub use binding::SentSequence;
pub use dependencies::InstallReport;
pub use namespace::{cut, RawData};
pub use submit::TaskSpec;
pub use targets::{Selection, Targets};
pub use task::{Op, Status, TaskError, TaskRecord, TaskView};

/// The controller: the one entry point of the layers below for the API.
/// Its fields are private; `api` calls its methods.
pub struct Controller {
    pool: Arc<EnginePool>,
    runtime: Arc<Runtime>,
    tasks: task::TaskTable,
    /// Pushed arrays waiting for engine processes to fetch them.
    staging: Arc<crate::remote::staging::Staging>,
}

impl Controller {
    /// Start `engines` engines under `limits` and a controller over them
    /// (blocking: compiling nothing, but starting threads and stores).
    pub fn start(limits: Limits, engines: usize) -> Result<Arc<Controller>> {
        let runtime = Runtime::new(limits)?;
        Ok(Controller::new(EnginePool::start(runtime, engines)?))
    }

    pub fn new(pool: Arc<EnginePool>) -> Arc<Controller> {
        let runtime = pool.runtime().clone();
        let tasks = task::TaskTable::new(runtime.limits.tasks_kept, runtime.limits.tasks_min_age, runtime.limits.tasks_kept_bytes);
        Arc::new(Controller { pool, runtime, tasks, staging: Arc::default() })
    }

    fn direct(&self, targets: &Targets, what: &str) -> Result<Vec<usize>> {
        match self.resolve(targets)? {
            Selection::Direct(ids) => Ok(ids),
            Selection::Balanced => Err(Error::BadRequest(format!("{what} needs direct targets (\"all\", a slice, ids), not \"balanced\""))),
        }
    }

    // ---- tasks -------------------------------------------------------------

    /// Targets against the engines that can take work now: slices and
    /// negative ids count over the live ids, as IPython Parallel's `rc.ids`.
    pub(super) fn resolve(&self, targets: &Targets) -> Result<Selection> {
        let live = self.pool.ids();
        if live.is_empty() {
            return Err(Error::EngineGone(
                "the cluster has no engine yet: start some (`wasmpar engine --connect`) or wait for them (`wasmpar engines --wait N`)"
                    .into(),
            ));
        }
        targets.resolve_among(&live)
    }

    pub fn task(&self, id: &str) -> Result<Arc<TaskRecord>> {
        self.tasks.get(id).ok_or_else(|| Error::not_found("task", id))
    }

    pub async fn cancel(&self, id: &str) -> Result<TaskView> {
        let task = self.task(id)?;
        if !task.status().is_finished() {
            task.control.cancel();
            if task.control.started_at().is_none() {
                // Still queued behind other work: it ends now; the engines
                // skip its batches when they reach them (the flag is set).
                task.finish_cancelled();
            } else {
                task.wait(Duration::from_secs(5)).await;
            }
        }
        Ok(task.view())
    }

    // ---- what the API reads ---------------------------------------------------

    pub fn limits(&self) -> &Limits {
        &self.runtime.limits
    }

    pub fn engine_count(&self) -> usize {
        self.pool.len()
    }

    pub fn engines(&self) -> Vec<EngineStatus> {
        self.pool.status()
    }

    pub fn components(&self) -> Vec<ComponentInfo> {
        self.runtime.components.list().iter().map(|c| self.describe(c)).collect()
    }

    /// The digest of the component `name` now (what the task store records).
    pub fn component_digest(&self, name: &str) -> Option<String> {
        self.runtime.components.get(name).ok().map(|c| c.digest.clone())
    }

    /// Tasks this controller holds that are pending and running (`/metrics`).
    pub fn live_tasks(&self) -> (u64, u64) {
        self.tasks.live_counts()
    }

    pub fn component(&self, name: &str) -> Result<ComponentInfo> {
        let c = self.runtime.components.get(name)?;
        Ok(self.describe(&c))
    }

    /// Compile and register an upload (off the async runtime: compiling takes
    /// seconds), then tell every engine to drop instances of the version it
    /// replaces, so their memory is freed (wasmtime frees it with the store).
    pub async fn upload(&self, name: String, bytes: bytes::Bytes) -> Result<ComponentInfo> {
        let runtime = self.runtime.clone();
        let (loaded, replaced) = tokio::task::spawn_blocking(move || runtime.components.add(&name, &bytes))
            .await
            .map_err(|e| Error::Internal(format!("compilation panicked: {e}")))??;
        if let Some(old) = replaced.filter(|old| old.digest != loaded.digest) {
            self.forget_everywhere(&old.digest);
        }
        Ok(self.describe(&loaded))
    }

    fn forget_everywhere(&self, digest: &str) {
        for id in self.pool.ids() {
            if let Err(e) = self.pool.send(id, Job::Forget { digest: digest.to_string() }) {
                tracing::warn!(engine = id, "cannot forget an old component version: {e}");
            }
        }
    }

    /// Serve an engine process's WebSocket (`wasmpar engine --connect`)
    /// until it closes: its engines join the pool while it lasts.
    pub async fn serve_engine_process(&self, socket: axum::extract::ws::WebSocket) {
        crate::remote::serve(socket, self.pool.clone(), self.staging.clone()).await;
    }

    /// An engine process hands over a pulled array's bytes (see `remote::staging`).
    pub fn staged_upload(&self, id: &str, bytes: bytes::Bytes) -> Result<()> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BadRequest(format!("`{}` is not a staging id", cut(id))));
        }
        self.staging.upload(id.to_string(), bytes);
        Ok(())
    }

    /// A pushed array staged for an engine process: whole, or still arriving.
    pub fn staged(&self, id: &str) -> Result<crate::remote::staging::Staged> {
        self.staging.get(id).ok_or_else(|| Error::not_found("staged value", cut(id)))
    }

    /// The uploaded bytes with this digest (what engine processes fetch).
    pub fn component_bytes(&self, digest: &str) -> Result<bytes::Bytes> {
        self.runtime.components.by_digest(digest).map(|c| c.bytes.clone()).ok_or_else(|| Error::not_found("component digest", cut(digest)))
    }

    /// Stop every engine thread (each finishes its current job first).
    pub fn shutdown_engines(&self) {
        self.pool.shutdown();
    }

    /// Fault injection for tests: the engine's thread panics at its next
    /// call, or (`exit`) ends when it reaches this job, dropping what is
    /// queued behind it.
    pub fn inject_fault(&self, engine: usize, exit: bool) -> Result<()> {
        self.pool.send(engine, if exit { Job::Exit } else { Job::Panic })
    }
}
