//! The pool of engines: their threads, channels and counters.
//!
//! Invariants:
//! - Engine ids are dense `0..n` and never reused while the pool lives.
//! - `queued` counts jobs sent and not yet finished; the scheduler reads it
//!   to pick the least-loaded engine and to refuse work past the queue bound.
//! - If an engine's thread is gone (it should not be: panics are caught per
//!   job), sending to it fails with `EngineGone` and the thread is respawned
//!   with an empty namespace.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;

use super::info::{EngineInfo, EngineStatus};
use super::job::Job;
use super::worker::Worker;
use super::Namespace;
use crate::runtime::Runtime;
use crate::{Error, Result};

struct Slot {
    info: Arc<EngineInfo>,
    jobs: crossbeam_channel::Sender<Job>,
}

pub struct EnginePool {
    runtime: Arc<Runtime>,
    slots: RwLock<Vec<Slot>>,
}

impl EnginePool {
    /// Start `n` engines and return once every one of them is ready.
    pub fn start(runtime: Arc<Runtime>, n: usize) -> Result<Arc<EnginePool>> {
        if n == 0 {
            return Err(Error::BadRequest(
                "a cluster needs at least one engine".into(),
            ));
        }
        let pool = Arc::new(EnginePool {
            runtime,
            slots: RwLock::new(Vec::with_capacity(n)),
        });
        let mut waiting = Vec::with_capacity(n);
        for id in 0..n {
            let info = Arc::new(EngineInfo {
                id,
                ..Default::default()
            });
            let (jobs, ready) = pool.spawn(info.clone(), Namespace::default())?;
            pool.slots.write().push(Slot { info, jobs });
            waiting.push(ready);
        }
        for ready in waiting {
            ready
                .recv()
                .map_err(|_| Error::Internal("an engine died while starting".into()))??;
        }
        tracing::info!(engines = n, "engines ready");
        Ok(pool)
    }

    fn spawn(
        &self,
        info: Arc<EngineInfo>,
        namespace: Namespace,
    ) -> Result<(
        crossbeam_channel::Sender<Job>,
        std::sync::mpsc::Receiver<Result<()>>,
    )> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let runtime = self.runtime.clone();
        let id = info.id;
        // Wasm runs on this thread's stack: leave room beyond the wasm limit.
        let stack = runtime.limits.max_wasm_stack * 2 + (8 << 20);
        std::thread::Builder::new()
            .name(format!("wasmpar-engine-{id}"))
            .stack_size(stack)
            .spawn(move || match Worker::new(id, runtime, info, namespace) {
                Ok(worker) => {
                    let _ = ready_tx.send(Ok(()));
                    worker.run(rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start engine {id}: {e}")))?;
        Ok((tx, ready_rx))
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn len(&self) -> usize {
        self.slots.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.read().is_empty()
    }

    pub fn ids(&self) -> Vec<usize> {
        (0..self.len()).collect()
    }

    pub fn info(&self, id: usize) -> Option<Arc<EngineInfo>> {
        self.slots.read().get(id).map(|s| s.info.clone())
    }

    pub fn status(&self) -> Vec<EngineStatus> {
        self.slots
            .read()
            .iter()
            .map(|s| {
                let i = &s.info;
                EngineStatus {
                    id: i.id,
                    state: if i.busy.load(Ordering::Relaxed) {
                        "busy"
                    } else {
                        "idle"
                    }
                    .into(),
                    queued: i.queued.load(Ordering::Relaxed),
                    completed: i.completed.load(Ordering::Relaxed),
                    restarts: i.restarts.load(Ordering::Relaxed),
                    libraries: i.libraries.lock().clone(),
                }
            })
            .collect()
    }

    /// The engine among `candidates` with the fewest queued jobs.
    pub fn least_loaded(&self, candidates: &[usize]) -> Option<usize> {
        let slots = self.slots.read();
        candidates.iter().copied().min_by_key(|&id| {
            slots
                .get(id)
                .map_or(usize::MAX, |s| s.info.queued.load(Ordering::Relaxed))
        })
    }

    /// Refuse new work when any of `targets` has a full queue (backpressure).
    pub fn check_capacity(&self, targets: &[usize]) -> Result<()> {
        let max = self.runtime.limits.queue_max;
        let slots = self.slots.read();
        for &id in targets {
            if slots
                .get(id)
                .is_some_and(|s| s.info.queued.load(Ordering::Relaxed) >= max)
            {
                return Err(Error::Busy(format!(
                    "engine {id} has {max} jobs queued; retry later"
                )));
            }
        }
        Ok(())
    }

    /// Queue a job on engine `id`.
    pub fn send(&self, id: usize, job: Job) -> Result<()> {
        let slots = self.slots.read();
        let slot = slots
            .get(id)
            .ok_or_else(|| Error::not_found("engine", id))?;
        let counted = job.is_counted();
        if counted {
            slot.info.queued.fetch_add(1, Ordering::Relaxed);
        }
        match slot.jobs.send(job) {
            Ok(()) => Ok(()),
            Err(_) => {
                if counted {
                    slot.info.queued.fetch_sub(1, Ordering::Relaxed);
                }
                drop(slots);
                self.respawn(id);
                Err(Error::EngineGone(format!(
                    "engine {id} had stopped; it was restarted with an empty namespace"
                )))
            }
        }
    }

    fn respawn(&self, id: usize) {
        let Some(info) = self.info(id) else { return };
        info.restarts.fetch_add(1, Ordering::Relaxed);
        match self.spawn(info, Namespace::default()) {
            Ok((jobs, _ready)) => {
                if let Some(slot) = self.slots.write().get_mut(id) {
                    slot.jobs = jobs;
                }
            }
            Err(e) => tracing::error!(engine = id, "cannot restart engine: {e}"),
        }
    }

    /// Stop every engine thread (they finish their current job first).
    pub fn shutdown(&self) {
        let mut slots = self.slots.write();
        for slot in slots.iter_mut() {
            let (closed, _) = crossbeam_channel::bounded(0);
            slot.jobs = closed;
        }
    }
}
