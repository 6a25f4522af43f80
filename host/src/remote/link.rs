//! The controller's side of one engine process's connection: it turns the
//! pool's jobs for that process's engines into messages, and answers back
//! into the jobs' reply channels.
//!
//! Invariants:
//! - Every job sent is in `pending` until its answer arrives or the link
//!   closes; closing drains `pending` so that no reply channel waits for
//!   ever (direct calls see their sender dropped: `EngineLost`; balanced
//!   batches go back to their task's queue while retries remain).
//! - A balanced task on a remote engine is pulled by one proxy task per
//!   engine, which keeps a window of `Call`s in flight so the network's
//!   round trip overlaps the engine's work, each carrying a group of
//!   batches sized so that a group takes about [`GROUP_TIME`] (one batch
//!   when batches are slow, up to [`GROUP_MAX`] tiny ones).
//! - Large pushed values are staged (`super::staging`) for the process to
//!   fetch; their ids leave the shelf when the push is answered or the link
//!   closes.
//! - The link is closed when the socket closes (a killed process: at once)
//!   or when the process is silent for `silence` (a stopped process or a cut
//!   network: no pong to the heartbeat).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value as Json};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{BatchAnswer, ComponentRef, FromEngine, ToEngine};
use super::staging::{self, Staging, STAGE_MIN};
use crate::engine::{Arg, BalancedWork, BatchOutcome, CallSpec, EngineInfo, EnginePool, Job, NsValue, RemoteLink, TaskControl};
use crate::value::{val_to_json, ArrayForm, Encoding};
use crate::wire::{EngineFailure, EngineOutput, FailureCause};

/// Calls a balanced proxy keeps in flight on one remote engine.
const WINDOW_CALLS: usize = 8192;
/// `Call`s in flight while batches are slow (one batch each): enough to
/// hide the round trip, few enough that a slow batch does not hold work
/// other engines could run.
const WINDOW_SLOW: usize = 2;
/// `Call`s in flight while batches are grouped (they are fast).
const WINDOW_FAST: usize = 3;
/// The engine time one group of batches should take.
pub const GROUP_TIME: Duration = Duration::from_millis(2);
/// Most batches in one `Call`.
pub const GROUP_MAX: usize = 256;

enum Pending {
    Call { reply: CallReply, index: usize, calls: usize, batches: usize, task: u64, function: String },
    Push { reply: oneshot::Sender<()>, staged: Vec<String> },
    Pull(oneshot::Sender<Result<Vec<NsValue>, String>>),
    Install { reply: oneshot::Sender<Result<Vec<String>, String>>, index: usize, name: String },
}

enum CallReply {
    Direct(oneshot::Sender<BatchOutcome>),
    /// A balanced proxy: (req, one outcome per batch of the group, or `None`
    /// when the link closed).
    Proxy(mpsc::UnboundedSender<(u64, Option<Vec<BatchOutcome>>)>),
}

/// The tasks with calls in flight on this link, by their wire id.
struct TaskEntry {
    control: Arc<TaskControl>,
    inflight: usize,
    cancel_sent: bool,
}

pub struct EngineLink {
    pub process: String,
    out: mpsc::UnboundedSender<ToEngine>,
    pending: Mutex<HashMap<u64, Pending>>,
    tasks: Mutex<HashMap<u64, TaskEntry>>,
    /// A task's wire id, by the address of its `TaskControl`.
    task_ids: Mutex<HashMap<usize, u64>>,
    next: AtomicU64,
    closed: AtomicBool,
    /// This link's engines, by the process's index.
    infos: Mutex<Vec<Arc<EngineInfo>>>,
    /// When the process was last heard from, as milliseconds since `born`
    /// (set on every message without a lock).
    heard_ms: AtomicU64,
    born: Instant,
    staging: Arc<Staging>,
}

impl EngineLink {
    pub fn new(process: String, out: mpsc::UnboundedSender<ToEngine>, staging: Arc<Staging>) -> Arc<EngineLink> {
        Arc::new(EngineLink {
            process,
            out,
            pending: Mutex::default(),
            tasks: Mutex::default(),
            task_ids: Mutex::default(),
            next: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            infos: Mutex::default(),
            heard_ms: AtomicU64::new(0),
            born: Instant::now(),
            staging,
        })
    }

    /// How long the process has been silent.
    pub fn quiet(&self) -> Duration {
        self.born.elapsed().saturating_sub(Duration::from_millis(self.heard_ms.load(Ordering::Relaxed)))
    }

    /// Show the link's last word as each of its engines' heartbeat.
    fn mark_heard(&self) {
        let at = Instant::now().checked_sub(self.quiet());
        for info in self.infos.lock().iter() {
            *info.last_heard.lock() = at;
        }
    }

    pub fn set_engines(&self, infos: Vec<Arc<EngineInfo>>) {
        *self.infos.lock() = infos;
    }

    fn info(&self, index: usize) -> Option<Arc<EngineInfo>> {
        self.infos.lock().get(index).cloned()
    }

    fn req(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn ping(&self, seq: u64) -> bool {
        self.out.send(ToEngine::Ping { seq }).is_ok()
    }

    /// The wire id of `control`'s task on this link, registering it.
    fn task_id(&self, control: &Arc<TaskControl>, calls: usize) -> u64 {
        let key = Arc::as_ptr(control) as usize;
        let mut ids = self.task_ids.lock();
        let id = *ids.entry(key).or_insert_with(|| self.next.fetch_add(1, Ordering::Relaxed));
        let mut tasks = self.tasks.lock();
        let entry = tasks.entry(id).or_insert_with(|| TaskEntry { control: control.clone(), inflight: 0, cancel_sent: false });
        entry.inflight += calls.max(1);
        id
    }

    fn task_done(&self, task: u64, calls: usize) {
        let mut tasks = self.tasks.lock();
        if let Some(e) = tasks.get_mut(&task) {
            e.inflight = e.inflight.saturating_sub(calls.max(1));
            if e.inflight == 0 {
                let key = Arc::as_ptr(&e.control) as usize;
                tasks.remove(&task);
                self.task_ids.lock().remove(&key);
            }
        }
    }

    /// Tell the process about tasks cancelled since the last look.
    pub fn forward_cancels(&self) {
        let mut tasks = self.tasks.lock();
        for (id, e) in tasks.iter_mut() {
            if !e.cancel_sent && e.control.is_cancelled() {
                e.cancel_sent = true;
                let _ = self.out.send(ToEngine::Cancel { task: *id });
            }
        }
    }

    /// Send a group of batches in one `Call`; its answer goes to `reply`.
    fn send_call(&self, index: usize, spec: &CallSpec, batches: &[&[Vec<Arg>]], reply: CallReply) -> Result<u64, String> {
        let f = spec.component.functions.get(spec.function).ok_or("no such function")?;
        let mut wire_batches = Vec::with_capacity(batches.len());
        let mut total = 0;
        for calls in batches {
            total += calls.len();
            let mut wire_calls = Vec::with_capacity(calls.len());
            for call in calls.iter() {
                let mut args = Vec::with_capacity(call.len());
                for (arg, (pname, ty)) in call.iter().zip(&f.params) {
                    // Numeric lists as base64 array forms: exact, and far
                    // cheaper to write and parse than decimal numbers.
                    args.push(match arg {
                        Arg::Val(v) => val_to_json(ty, v, Encoding::Array),
                        Arg::Ref(name) => json!({"$ref": name}),
                        // Rows go as a slice of the array form's bytes (no `Val`s).
                        Arg::Rows(a, rows) if a.shape.len() == 1 => {
                            let size = a.dtype.size();
                            let (start, end) = (rows.start * size, rows.end * size);
                            if end > a.data.len() || start > end {
                                return Err("rows outside their array".into());
                            }
                            let data = a.data.slice(start..end);
                            ArrayForm { dtype: a.dtype, shape: vec![rows.len()], data }.to_json()
                        }
                        Arg::Row(..) | Arg::Rows(..) => match arg.array_val(ty, pname) {
                            Some(v) => val_to_json(ty, &v.map_err(|e| e.to_string())?, Encoding::Array),
                            None => Json::Null,
                        },
                    });
                }
                wire_calls.push(args);
            }
            wire_batches.push(wire_calls);
        }
        let req = self.req();
        let task = self.task_id(&spec.control, total);
        let function = format!("{}/{}", spec.component.name, f.name);
        self.pending.lock().insert(req, Pending::Call { reply, index, calls: total, batches: batches.len(), task, function });
        let msg = ToEngine::Call {
            req,
            engine: index,
            task,
            component: ComponentRef { name: spec.component.name.clone(), digest: spec.component.digest.clone() },
            function: f.name.clone(),
            encoding: spec.encoding,
            timeout_ms: spec.timeout.as_millis().min(u64::MAX as u128) as u64,
            batches: wire_batches,
        };
        if self.out.send(msg).is_err() {
            self.pending.lock().remove(&req);
            self.task_done(task, total);
            return Err("the link is closed".into());
        }
        Ok(req)
    }

    /// One message from the process.
    pub fn receive(&self, msg: FromEngine) {
        self.heard_ms.store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        match msg {
            FromEngine::Hello { .. } | FromEngine::Pong { .. } => {}
            FromEngine::Started { task } => {
                if let Some(e) = self.tasks.lock().get(&task) {
                    e.control.mark_started();
                }
            }
            FromEngine::Progress { task, done } => {
                if let Some(e) = self.tasks.lock().get(&task) {
                    e.control.done.fetch_add(done, Ordering::Relaxed);
                }
            }
            FromEngine::Outcome { req, outcomes } => self.answer_call(req, outcomes, None),
            FromEngine::Failed { req, message } => {
                let call = match self.pending.lock().get(&req) {
                    Some(Pending::Call { index, function, .. }) => Some((self.info(*index).map_or(0, |i| i.id), function.clone())),
                    _ => None,
                };
                match call {
                    Some((engine, function)) => {
                        let failure = EngineFailure { engine, function, message, trace: String::new(), cause: FailureCause::Dependency };
                        self.answer_call(req, Vec::new(), Some(failure));
                    }
                    None => {
                        tracing::warn!(process = self.process, req, "job failed on the engine process: {message}");
                        // Dropping the reply channel fails the request.
                        if let Some(Pending::Push { staged, .. }) = self.pending.lock().remove(&req) {
                            self.unstage(&staged);
                        }
                    }
                }
            }
            FromEngine::Pushed { req } => {
                if let Some(Pending::Push { reply, staged }) = self.pending.lock().remove(&req) {
                    self.unstage(&staged);
                    let _ = reply.send(());
                }
            }
            FromEngine::Pulled { req, values } => {
                // Large values were uploaded by the process before it answered;
                // they are taken off the shelf even when nobody waits any more.
                // `Err` on the wire names a missing global; a value that does
                // not convert fails the request (its reply is dropped).
                let values = values.map(|vs| vs.iter().map(|v| self.pulled_value(v)).collect::<Result<Vec<_>, _>>());
                let pending = self.pending.lock().remove(&req);
                match (pending, values) {
                    (Some(Pending::Pull(reply)), Err(missing)) => {
                        let _ = reply.send(Err(missing));
                    }
                    (Some(Pending::Pull(reply)), Ok(Ok(values))) => {
                        let _ = reply.send(Ok(values));
                    }
                    (_, Ok(Err(e))) => tracing::warn!(process = self.process, req, "a pulled value did not arrive whole: {e}"),
                    _ => {}
                }
            }
            FromEngine::Installed { req, result } => {
                if let Some(Pending::Install { reply, index, name }) = self.pending.lock().remove(&req) {
                    if let (Ok(interfaces), Some(info)) = (&result, self.info(index)) {
                        let mut libs = info.libraries.lock();
                        if !libs.contains(&name) {
                            libs.push(name);
                        }
                        let mut ifaces = info.interfaces.lock();
                        for i in interfaces {
                            if !ifaces.contains(i) {
                                ifaces.push(i.clone());
                            }
                        }
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// The answer of a `Call`: an outcome per batch. Batches without one
    /// fail with `failure` (the whole group could not run) or as crashed.
    fn answer_call(&self, req: u64, answers: Vec<BatchAnswer>, failure: Option<EngineFailure>) {
        let Some(Pending::Call { reply, index, calls, batches, task, function }) = self.pending.lock().remove(&req) else { return };
        self.task_done(task, calls);
        let Some(info) = self.info(index) else { return };
        let engine = info.id;
        let mut outcomes: Vec<BatchOutcome> = answers
            .into_iter()
            .take(batches)
            .map(|BatchAnswer { results, mut output }| {
                output.engine = engine;
                let results = results.map_err(|mut f| {
                    f.engine = engine;
                    f
                });
                BatchOutcome { engine, batch: 0, results, output }
            })
            .collect();
        let failure = failure.unwrap_or_else(|| EngineFailure {
            engine,
            function,
            message: format!("engine {engine} crashed before it ran this batch; it was restarted"),
            trace: String::new(),
            cause: FailureCause::Engine,
        });
        while outcomes.len() < batches {
            outcomes.push(BatchOutcome { engine, batch: 0, results: Err(failure.clone()), output: EngineOutput::default() });
        }
        match reply {
            CallReply::Direct(tx) => {
                info.queued.fetch_sub(1, Ordering::Relaxed);
                info.completed.fetch_add(1, Ordering::Relaxed);
                if let Some(o) = outcomes.into_iter().next() {
                    let _ = tx.send(o);
                }
            }
            CallReply::Proxy(tx) => {
                let _ = tx.send((req, Some(outcomes)));
            }
        }
    }

    fn unstage(&self, ids: &[String]) {
        for id in ids {
            self.staging.remove(id);
        }
    }

    /// The connection is gone: nothing more is sent, and every job still
    /// waiting is answered (see the module's invariants).
    pub fn close(&self, pool: &EnginePool) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let lost = pool.detach_remote(&self.process);
        tracing::warn!(process = self.process, engines = ?lost, "engine process lost");
        let pending: Vec<(u64, Pending)> = self.pending.lock().drain().collect();
        for (req, p) in pending {
            // Direct replies and namespace jobs: dropping the sender fails them.
            match p {
                Pending::Call { reply: CallReply::Proxy(tx), .. } => {
                    let _ = tx.send((req, None));
                }
                Pending::Push { staged, .. } => self.unstage(&staged),
                _ => {}
            }
        }
        self.tasks.lock().clear();
        self.task_ids.lock().clear();
    }
}

impl RemoteLink for Arc<EngineLink> {
    fn send(&self, index: usize, id: usize, job: Job) -> Result<(), Job> {
        if self.is_closed() {
            return Err(job);
        }
        match job {
            Job::Call { batch, reply } => {
                let sent = self.send_call(index, &batch.spec, &[&batch.calls], CallReply::Direct(reply));
                if let Err(e) = sent {
                    tracing::warn!(engine = id, "cannot send a call: {e}");
                }
                Ok(())
            }
            Job::Balanced(work) => {
                let link = self.clone();
                tokio::spawn(async move { run_balanced(link, index, work).await });
                Ok(())
            }
            Job::Push { values, reply } => {
                let req = self.req();
                let mut staged = Vec::new();
                let values = values.into_iter().map(|(n, v)| (n, self.wire_value(&v, &mut staged))).collect();
                self.pending.lock().insert(req, Pending::Push { reply, staged });
                let _ = self.out.send(ToEngine::Push { req, engine: index, values });
                self.count_done(index);
                Ok(())
            }
            Job::PushStaged { name, staged, reply } => {
                // The scheduler owns the staged entry and removes it.
                let req = self.req();
                self.pending.lock().insert(req, Pending::Push { reply, staged: Vec::new() });
                let header = staging::header(&staged.id, staged.kind, staged.dtype, &staged.shape);
                let _ = self.out.send(ToEngine::Push { req, engine: index, values: vec![(name, header)] });
                self.count_done(index);
                Ok(())
            }
            Job::Pull { names, reply } => {
                let req = self.req();
                self.pending.lock().insert(req, Pending::Pull(reply));
                let _ = self.out.send(ToEngine::Pull { req, engine: index, names });
                self.count_done(index);
                Ok(())
            }
            Job::Install { component, reply } => {
                let req = self.req();
                self.pending.lock().insert(req, Pending::Install { reply, index, name: component.name.clone() });
                let c = ComponentRef { name: component.name.clone(), digest: component.digest.clone() };
                let _ = self.out.send(ToEngine::Install { req, engine: index, component: c });
                self.count_done(index);
                Ok(())
            }
            Job::Forget { digest } => {
                let _ = self.out.send(ToEngine::Forget { engine: index, digest });
                Ok(())
            }
            // Fault injection is for local engine threads only.
            Job::Panic | Job::Exit => Ok(()),
        }
    }
}

impl EngineLink {
    /// A pushed value as the message carries it: large numeric data staged
    /// for the process to fetch (its id added to `staged`), the rest inline.
    fn wire_value(&self, v: &NsValue, staged: &mut Vec<String>) -> Json {
        match v.to_raw() {
            Some((dtype, shape, bytes)) if bytes.len() >= STAGE_MIN => {
                let id = self.staging.put(bytes);
                staged.push(id.clone());
                staging::header(&id, v.kind(), dtype, &shape)
            }
            _ => v.to_json(Encoding::Array),
        }
    }

    /// A value of a `Pulled` answer: inline, or uploaded by the process.
    fn pulled_value(&self, v: &Json) -> Result<NsValue, String> {
        match staging::parse_header(v) {
            Some((id, kind, shape)) => {
                let bytes = self.staging.take_upload(id).ok_or_else(|| format!("the engine process's upload {id} is not here"))?;
                staging::value_from_bytes(kind, shape, &bytes)
            }
            None => NsValue::from_json(v),
        }
    }

    /// Namespace jobs are counted as done when sent: the process answers
    /// them in order with its calls, and the counters only pick engines.
    fn count_done(&self, index: usize) {
        if let Some(info) = self.info(index) {
            info.queued.fetch_sub(1, Ordering::Relaxed);
            info.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Pull batches of a balanced task for one remote engine, keeping a window
/// of groups of them in flight; batches of a lost engine go back to the task.
async fn run_balanced(link: Arc<EngineLink>, index: usize, work: Arc<BalancedWork>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // req → the group's batches (index, calls kept for a retry, attempt), and when it was sent.
    type InFlight = (Vec<(usize, Vec<Vec<Arg>>, usize)>, Instant);
    let mut inflight: HashMap<u64, InFlight> = HashMap::new();
    let mut inflight_calls = 0usize;
    // The engine's time per batch, from answers (starts as "slow").
    let mut per_batch = GROUP_TIME;
    let mut last_answer = Instant::now();
    let info = link.info(index);
    let id = info.as_ref().map_or(0, |i| i.id);
    'outer: loop {
        let group = group_size(per_batch);
        let window = if group > 1 { WINDOW_FAST } else { WINDOW_SLOW };
        while inflight_calls < WINDOW_CALLS && inflight.len() < window && !link.is_closed() {
            let mut taken = Vec::with_capacity(group);
            let mut calls_taken = 0;
            while taken.len() < group && calls_taken < WINDOW_CALLS {
                let Some(b) = work.take_attempt(id) else { break };
                calls_taken += b.1.len();
                taken.push(b);
            }
            if taken.is_empty() {
                break;
            }
            let refs: Vec<&[Vec<Arg>]> = taken.iter().map(|(_, calls, _)| calls.as_slice()).collect();
            match link.send_call(index, &work.spec, &refs, CallReply::Proxy(tx.clone())) {
                Ok(req) => {
                    inflight_calls += calls_taken;
                    inflight.insert(req, (taken, Instant::now()));
                }
                Err(_) => {
                    for (batch, calls, attempt) in taken {
                        work.requeue(batch, calls, attempt);
                    }
                    break;
                }
            }
        }
        if inflight.is_empty() {
            break;
        }
        let Some((req, outcomes)) = rx.recv().await else { break };
        let Some((group, sent)) = inflight.remove(&req) else { continue };
        inflight_calls -= group.iter().map(|(_, calls, _)| calls.len()).sum::<usize>();
        // The engine's share of the wait: from when it could start on this
        // group (sent, or the previous answer if it was busy until then).
        let now = Instant::now();
        let service = now.duration_since(sent.max(last_answer));
        last_answer = now;
        per_batch = (per_batch * 3 + service / group.len().max(1) as u32) / 4;
        match outcomes {
            Some(outcomes) => {
                for ((batch, _, _), mut o) in group.into_iter().zip(outcomes) {
                    o.batch = batch;
                    if work.sink.send(o).is_err() {
                        break 'outer;
                    }
                }
            }
            None => {
                for (batch, calls, attempt) in group {
                    if attempt < work.retries {
                        tracing::warn!(engine = id, batch, "engine lost: the batch runs again elsewhere");
                        work.requeue(batch, calls, attempt + 1);
                        continue;
                    }
                    let f = &work.spec;
                    let function = f.component.functions.get(f.function).map_or("?", |x| x.name.as_str());
                    let failure = EngineFailure {
                        engine: id,
                        function: format!("{}/{function}", f.component.name),
                        message: format!("engine {id} was lost while running batch {batch}, and it had no retries left"),
                        trace: String::new(),
                        cause: FailureCause::Lost,
                    };
                    let _ = work.sink.send(BatchOutcome { engine: id, batch, results: Err(failure), output: EngineOutput::default() });
                }
            }
        }
        if link.is_closed() {
            // Drain: every request in flight is answered with `None` by close().
            continue;
        }
    }
    if let Some(info) = info {
        if !link.is_closed() {
            info.queued.fetch_sub(1, Ordering::Relaxed);
            info.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How many batches to group in one `Call` when each takes `per_batch`.
fn group_size(per_batch: Duration) -> usize {
    let per = per_batch.as_nanos().max(1);
    ((GROUP_TIME.as_nanos() / per) as usize).clamp(1, GROUP_MAX)
}

/// Every `tick`: forward cancels; ping every `heartbeat`; close the link
/// when the process was silent for `silence`. Ends when the link is closed.
pub async fn watch(link: Arc<EngineLink>, pool: Arc<EnginePool>, heartbeat: Duration, silence: Duration) {
    let tick = Duration::from_millis(10);
    let mut last_ping = Instant::now();
    let mut seq = 0u64;
    while !link.is_closed() {
        tokio::time::sleep(tick).await;
        link.forward_cancels();
        if last_ping.elapsed() >= heartbeat {
            seq += 1;
            last_ping = Instant::now();
            if !link.ping(seq) {
                link.close(&pool);
            }
        }
        link.mark_heard();
        let quiet = link.quiet();
        if quiet > silence {
            tracing::warn!(process = link.process, silent_ms = quiet.as_millis() as u64, "engine process silent past the heartbeat limit");
            link.close(&pool);
        }
    }
}
