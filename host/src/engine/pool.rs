//! The pool of engines: their threads, channels and counters.
//!
//! Invariants:
//! - Engine ids are dense `0..n` and never reused while the pool lives.
//! - `queued` counts jobs sent and not yet finished; the scheduler reads it
//!   to pick the least-loaded engine and to refuse work past the queue bound.
//! - If an engine's thread is gone (it should not be: panics are caught per
//!   job), sending to it fails with `EngineGone` and the thread is respawned
//!   with an empty namespace.
//! - Remote engines (`wasmpar engine --connect`) are slots whose jobs go
//!   through a [`RemoteLink`]. When their link is gone the slot is `lost`:
//!   sends fail with `EngineLost`, its id stays reserved, and the same
//!   process re-registering gets the same ids back (with its namespace,
//!   which lives in that process).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;

use super::info::{EngineInfo, EngineStatus, Placement};
use super::job::Job;
use super::worker::Worker;
use super::{affinity, Namespace};
use crate::runtime::Runtime;
use crate::{Error, Result};

/// How jobs reach a remote engine: implemented by the controller's side of
/// an engine process's connection.
pub trait RemoteLink: Send + Sync {
    /// Send `job` to the process's engine `index` (pool id `id`); gives the
    /// job back when the link is closed.
    fn send(&self, index: usize, id: usize, job: Job) -> std::result::Result<(), Job>;
}

enum Link {
    Local(crossbeam_channel::Sender<Job>),
    Remote { link: Arc<dyn RemoteLink>, index: usize, process: String },
    Lost { process: String },
}

struct Slot {
    info: Arc<EngineInfo>,
    link: Link,
    /// The CPU a local engine's thread is pinned to (`affinity.rs`).
    home: Option<usize>,
}

pub struct EnginePool {
    runtime: Arc<Runtime>,
    slots: RwLock<Vec<Slot>>,
}

impl EnginePool {
    /// Start `n` engines and return once every one of them is ready.
    /// `n` may be 0: a controller that waits for remote engines.
    pub fn start(runtime: Arc<Runtime>, n: usize) -> Result<Arc<EnginePool>> {
        let pool = Arc::new(EnginePool { runtime, slots: RwLock::new(Vec::with_capacity(n)) });
        let mut waiting = Vec::with_capacity(n);
        let homes = affinity::homes(n);
        if homes.iter().any(Option::is_some) {
            tracing::info!(engines = n, "one engine thread pinned to each CPU (WASMPAR_PIN_ENGINES=0 turns it off)");
        }
        for (id, home) in homes.into_iter().enumerate() {
            let info = Arc::new(EngineInfo::new(id, Placement::here()));
            let (jobs, ready) = pool.spawn(info.clone(), Namespace::default(), home)?;
            pool.slots.write().push(Slot { info, link: Link::Local(jobs), home });
            waiting.push(ready);
        }
        for ready in waiting {
            ready.recv().map_err(|_| Error::Internal("an engine died while starting".into()))??;
        }
        tracing::info!(engines = n, "engines ready");
        Ok(pool)
    }

    fn spawn(
        &self,
        info: Arc<EngineInfo>,
        namespace: Namespace,
        home: Option<usize>,
    ) -> Result<(crossbeam_channel::Sender<Job>, std::sync::mpsc::Receiver<Result<()>>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let runtime = self.runtime.clone();
        let id = info.id;
        // Wasm runs on this thread's stack: leave room beyond the wasm limit.
        let stack = runtime.limits.max_wasm_stack * 2 + (8 << 20);
        std::thread::Builder::new()
            .name(format!("wasmpar-engine-{id}"))
            .stack_size(stack)
            .spawn(move || {
                if let Some(cpu) = home {
                    if let Err(e) = affinity::pin_current_thread(cpu) {
                        tracing::warn!(engine = id, cpu, error = %e, "cannot pin the engine's thread; it runs unpinned");
                    }
                }
                match Worker::new(id, runtime, info, namespace) {
                    Ok(worker) => {
                        let _ = ready_tx.send(Ok(()));
                        worker.run(rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
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

    /// The engines that can take work (lost remote engines left out).
    pub fn ids(&self) -> Vec<usize> {
        self.slots.read().iter().filter(|s| !matches!(s.link, Link::Lost { .. })).map(|s| s.info.id).collect()
    }

    /// The CPU engine `id`'s thread is pinned to, if it is.
    pub fn home(&self, id: usize) -> Option<usize> {
        self.slots.read().get(id).and_then(|s| s.home)
    }

    /// Whether engine `id` lives in another process (reached over a link).
    pub fn is_remote(&self, id: usize) -> bool {
        self.slots.read().get(id).is_some_and(|s| matches!(s.link, Link::Remote { .. }))
    }

    /// Register a remote process's `n` engines; the same `process` coming
    /// back gets its former ids. Returns the ids in the process's order.
    pub fn attach_remote(&self, process: &str, placement: Placement, n: usize, link: Arc<dyn RemoteLink>) -> Vec<usize> {
        let mut slots = self.slots.write();
        let mut former: Vec<usize> = slots
            .iter()
            .filter(|s| matches!(&s.link, Link::Lost { process: p } | Link::Remote { process: p, .. } if p == process))
            .map(|s| s.info.id)
            .collect();
        if former.len() != n {
            former.clear();
        }
        let mut ids = Vec::with_capacity(n);
        for index in 0..n {
            let id = match former.get(index) {
                Some(&id) => id,
                None => {
                    let id = slots.len();
                    let info = Arc::new(EngineInfo::new(id, placement.clone()));
                    slots.push(Slot { info, link: Link::Lost { process: process.to_string() }, home: None });
                    id
                }
            };
            let slot = &mut slots[id];
            *slot.info.placement.lock() = placement.clone();
            slot.info.lost.store(false, Ordering::SeqCst);
            slot.info.queued.store(0, Ordering::SeqCst);
            slot.info.busy.store(false, Ordering::SeqCst);
            *slot.info.last_heard.lock() = Some(std::time::Instant::now());
            slot.link = Link::Remote { link: link.clone(), index, process: process.to_string() };
            ids.push(id);
        }
        tracing::info!(process, host = placement.host, engines = ?ids, "remote engines registered");
        ids
    }

    /// The link of `process` is gone: its engines are lost until it returns.
    pub fn detach_remote(&self, process: &str) -> Vec<usize> {
        let mut slots = self.slots.write();
        let mut lost = Vec::new();
        for slot in slots.iter_mut() {
            if matches!(&slot.link, Link::Remote { process: p, .. } if p == process) {
                slot.link = Link::Lost { process: process.to_string() };
                slot.info.lost.store(true, Ordering::SeqCst);
                slot.info.queued.store(0, Ordering::SeqCst);
                slot.info.busy.store(false, Ordering::SeqCst);
                lost.push(slot.info.id);
            }
        }
        lost
    }

    /// How many engines can take work now.
    pub fn live(&self) -> usize {
        self.ids().len()
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
                let placement = i.placement.lock().clone();
                let state = if matches!(s.link, Link::Lost { .. }) {
                    "lost"
                } else if i.busy.load(Ordering::Relaxed) || (placement.remote && i.queued.load(Ordering::Relaxed) > 0) {
                    "busy"
                } else {
                    "idle"
                };
                EngineStatus {
                    id: i.id,
                    state: state.into(),
                    queued: i.queued.load(Ordering::Relaxed),
                    completed: i.completed.load(Ordering::Relaxed),
                    restarts: i.restarts.load(Ordering::Relaxed),
                    libraries: i.libraries.lock().clone(),
                    host: placement.host,
                    pid: placement.pid,
                    kind: if placement.remote { "remote" } else { "local" }.into(),
                    labels: placement.labels,
                    last_heartbeat_ms: i.last_heard.lock().map(|t| t.elapsed().as_millis() as u64).filter(|_| placement.remote),
                }
            })
            .collect()
    }

    /// The engine among `candidates` with the fewest queued jobs.
    pub fn least_loaded(&self, candidates: &[usize]) -> Option<usize> {
        let slots = self.slots.read();
        candidates.iter().copied().min_by_key(|&id| slots.get(id).map_or(usize::MAX, |s| s.info.queued.load(Ordering::Relaxed)))
    }

    /// Refuse new work when any of `targets` has a full queue (backpressure).
    pub fn check_capacity(&self, targets: &[usize]) -> Result<()> {
        let max = self.runtime.limits.queue_max;
        let slots = self.slots.read();
        for &id in targets {
            if slots.get(id).is_some_and(|s| s.info.queued.load(Ordering::Relaxed) >= max) {
                return Err(Error::Busy(format!("engine {id} has {max} jobs queued; retry later")));
            }
        }
        Ok(())
    }

    /// Queue each job on its engine, the engine pinned to the calling
    /// thread's CPU last: waking it preempts the caller, which by then has
    /// nothing left to send (`affinity.rs`). The outcomes in `jobs`' order.
    pub fn send_each(&self, jobs: Vec<(usize, Job)>) -> Vec<Result<()>> {
        let mut sent: Vec<Result<()>> = jobs.iter().map(|_| Ok(())).collect();
        let indexed = jobs.into_iter().enumerate().map(|(at, (id, job))| (id, (at, job))).collect();
        for (id, (at, job)) in affinity::wake_order(indexed, |id| self.home(id), affinity::current_cpu()) {
            sent[at] = self.send(id, job);
        }
        sent
    }

    /// Queue a job on engine `id`.
    pub fn send(&self, id: usize, job: Job) -> Result<()> {
        let slots = self.slots.read();
        let slot = slots.get(id).ok_or_else(|| Error::not_found("engine", id))?;
        let counted = job.is_counted();
        if counted {
            slot.info.queued.fetch_add(1, Ordering::Relaxed);
        }
        let uncount = || {
            if counted {
                slot.info.queued.fetch_sub(1, Ordering::Relaxed);
            }
        };
        match &slot.link {
            Link::Local(jobs) => match jobs.send(job) {
                Ok(()) => Ok(()),
                Err(_) => {
                    uncount();
                    drop(slots);
                    self.respawn(id);
                    Err(Error::EngineGone(format!("engine {id} had stopped; it was restarted with an empty namespace")))
                }
            },
            Link::Remote { link, index, .. } => link.send(*index, id, job).map_err(|_| {
                uncount();
                Error::EngineGone(lost_message(id, &slot.info))
            }),
            Link::Lost { .. } => {
                uncount();
                Err(Error::EngineGone(lost_message(id, &slot.info)))
            }
        }
    }

    fn respawn(&self, id: usize) {
        let Some(info) = self.info(id) else { return };
        info.restarts.fetch_add(1, Ordering::Relaxed);
        let home = self.home(id);
        match self.spawn(info, Namespace::default(), home) {
            Ok((jobs, _ready)) => {
                if let Some(slot) = self.slots.write().get_mut(id) {
                    slot.link = Link::Local(jobs);
                }
            }
            Err(e) => tracing::error!(engine = id, "cannot restart engine: {e}"),
        }
    }

    /// Stop every engine thread (they finish their current job first).
    pub fn shutdown(&self) {
        let mut slots = self.slots.write();
        for slot in slots.iter_mut() {
            if let Link::Local(_) = slot.link {
                let (closed, _) = crossbeam_channel::bounded(0);
                slot.link = Link::Local(closed);
            }
        }
    }
}

/// What a failed send to a lost remote engine says.
pub fn lost_message(id: usize, info: &EngineInfo) -> String {
    let p = info.placement.lock();
    format!("engine {id} (pid {} on {}) is lost: its process or its connection is gone", p.pid, p.host)
}
