//! What the scheduler sends an engine, and what comes back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::Val;

use super::NsValue;
use crate::error::EngineFailure;
use crate::runtime::LoadedComponent;
use crate::value::Encoding;
pub use crate::wire::EngineOutput;

/// Shared by every job of one task: cancel flag, progress counter, and when
/// an engine first started on it (until then the task is `pending`).
#[derive(Default)]
pub struct TaskControl {
    pub cancelled: AtomicBool,
    pub done: AtomicUsize,
    started: std::sync::OnceLock<chrono::DateTime<chrono::Utc>>,
}

impl TaskControl {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Called by an engine as it starts a batch of the task.
    pub fn mark_started(&self) {
        self.started.get_or_init(chrono::Utc::now);
    }

    pub fn started_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.started.get().copied()
    }
}

/// One argument of one call: converted up front, or a namespace name the
/// engine resolves against its own globals (`{"$ref": "a"}`).
#[derive(Clone)]
pub enum Arg {
    Val(Val),
    Ref(String),
    /// Row `row` of an array-form sequence, converted by the engine that runs
    /// the call (in parallel, not on the controller). Only used where the
    /// conversion cannot fail, so no type error is found late.
    Row(Arc<crate::value::ArrayForm>, usize),
    /// Rows `range` of an array-form sequence as one list (a `parallel`
    /// chunk), converted as `Row` is.
    Rows(Arc<crate::value::ArrayForm>, std::ops::Range<usize>),
}

impl Arg {
    /// The value of a `Row` or `Rows` argument as type `ty` (`None` for
    /// the other kinds).
    pub fn array_val(&self, ty: &wasmtime::component::types::Type, path: &str) -> Option<Result<Val, crate::value::ConvertError>> {
        let (a, dims, first) = match self {
            Arg::Row(a, row) => (a, a.shape[1..].to_vec(), *row),
            Arg::Rows(a, rows) => {
                let mut dims = a.shape.clone();
                dims[0] = rows.len();
                (a, dims, rows.start)
            }
            Arg::Val(_) | Arg::Ref(_) => return None,
        };
        let mut offset = first * a.shape[1..].iter().product::<usize>();
        Some(crate::value::array_to_val(ty, a, &dims, &mut offset, path))
    }
}

/// The results of a batch of calls on one engine; stops at the first failure.
pub struct BatchOutcome {
    pub engine: usize,
    /// Index of the batch in its task (balanced work) or 0.
    pub batch: usize,
    pub results: Result<Vec<Json>, EngineFailure>,
    pub output: EngineOutput,
}

/// What every call of a task shares: the function, how results are
/// written, the per-call deadline, and the task's cancel flag and progress.
#[derive(Clone)]
pub struct CallSpec {
    pub component: Arc<LoadedComponent>,
    pub function: usize,
    pub encoding: Encoding,
    pub timeout: Duration,
    pub control: Arc<TaskControl>,
}

/// Calls of one function, run in order on one engine.
pub struct CallBatch {
    pub spec: CallSpec,
    pub calls: Vec<Vec<Arg>>,
}

/// A value staged on the controller for remote engines to fetch
/// (`remote::staging`): its id, and what its bytes are.
#[derive(Debug, Clone)]
pub struct StagedRef {
    pub id: String,
    /// `NsValue::kind` of the value the bytes make.
    pub kind: &'static str,
    pub dtype: crate::value::Dtype,
    pub shape: Vec<usize>,
}

/// A batch given back to its task: (index, calls, how often it ran before).
pub type Requeued = (usize, Vec<Vec<Arg>>, usize);

/// Where a load-balanced map's batches come from: built up front (a remote
/// engine's group), or bound from the task's sequences by the engine that
/// takes a batch, so a big map never holds every call's arguments at once.
pub trait CallSource: Send + Sync {
    /// How many batches there are.
    fn batches(&self) -> usize;
    /// The calls of batch `index`; each index is asked for once at most.
    /// `None` past the end; `Err` if its arguments cannot be bound (the
    /// scheduler checked them all before the task started, so only a bug).
    fn batch(&self, index: usize) -> Option<Result<Vec<Vec<Arg>>, String>>;
}

/// Batches built up front.
struct Built(Vec<Mutex<Option<Vec<Vec<Arg>>>>>);

impl CallSource for Built {
    fn batches(&self) -> usize {
        self.0.len()
    }

    fn batch(&self, index: usize) -> Option<Result<Vec<Vec<Arg>>, String>> {
        self.0.get(index).map(|slot| Ok(slot.lock().take().unwrap_or_default()))
    }
}

/// A load-balanced map: batches that whichever engine is free takes next.
pub struct BalancedWork {
    pub spec: CallSpec,
    source: Box<dyn CallSource>,
    pub next: AtomicUsize,
    /// Set after a failure: no new batches are taken, running ones finish.
    pub stop: AtomicBool,
    pub sink: mpsc::UnboundedSender<BatchOutcome>,
    /// How often a batch whose engine was lost runs again elsewhere.
    pub retries: usize,
    /// Batches given back after their engine was lost: (index, calls, attempt).
    pub requeued: Mutex<Vec<Requeued>>,
}

impl BalancedWork {
    pub fn new(spec: CallSpec, batches: Vec<Vec<Vec<Arg>>>, sink: mpsc::UnboundedSender<BatchOutcome>, retries: usize) -> BalancedWork {
        let built = Built(batches.into_iter().map(|b| Mutex::new(Some(b))).collect());
        BalancedWork::from_source(spec, Box::new(built), sink, retries)
    }

    /// Work whose batches `source` binds as engines take them.
    pub fn from_source(
        spec: CallSpec,
        source: Box<dyn CallSource>,
        sink: mpsc::UnboundedSender<BatchOutcome>,
        retries: usize,
    ) -> BalancedWork {
        BalancedWork {
            spec,
            source,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            sink,
            retries,
            requeued: Mutex::new(Vec::new()),
        }
    }

    /// How many batches the work has.
    pub fn batches(&self) -> usize {
        self.source.batches()
    }

    /// The next batch nobody has taken, with its index, for `engine`.
    pub fn take(&self, engine: usize) -> Option<(usize, Vec<Vec<Arg>>)> {
        self.take_attempt(engine).map(|(i, calls, _)| (i, calls))
    }

    /// The next batch, with how many times it ran before (on lost engines).
    /// A batch whose arguments cannot be bound fails the task: its failure
    /// (as `engine`'s) goes to the sink and no batch is taken.
    pub fn take_attempt(&self, engine: usize) -> Option<(usize, Vec<Vec<Arg>>, usize)> {
        if self.spec.control.is_cancelled() || self.stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(again) = self.requeued.lock().pop() {
            return Some(again);
        }
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        match self.source.batch(i)? {
            Ok(calls) => Some((i, calls, 0)),
            Err(message) => {
                self.stop.store(true, Ordering::SeqCst);
                let function = self.spec.component.functions.get(self.spec.function).map_or("?", |f| f.name.as_str());
                let failure = EngineFailure {
                    engine,
                    function: format!("{}/{function}", self.spec.component.name),
                    message: format!("batch {i} could not be bound: {message}"),
                    trace: String::new(),
                    cause: crate::error::FailureCause::Argument,
                };
                let output = EngineOutput { engine, ..Default::default() };
                let _ = self.sink.send(BatchOutcome { engine, batch: i, results: Err(failure), output });
                None
            }
        }
    }

    /// Give a batch back to run elsewhere (its engine was lost).
    pub fn requeue(&self, index: usize, calls: Vec<Vec<Arg>>, attempt: usize) {
        self.requeued.lock().push((index, calls, attempt));
    }

    pub fn has_requeued(&self) -> bool {
        !self.requeued.lock().is_empty()
    }
}

pub enum Job {
    Call {
        batch: CallBatch,
        reply: oneshot::Sender<BatchOutcome>,
    },
    Balanced(Arc<BalancedWork>),
    Push {
        values: Vec<(String, NsValue)>,
        reply: oneshot::Sender<()>,
    },
    /// Remote engines only: bind `name` to a value whose bytes the engine's
    /// process fetches from the controller while they still arrive.
    PushStaged {
        name: String,
        staged: StagedRef,
        reply: oneshot::Sender<()>,
    },
    Pull {
        names: Vec<String>,
        reply: oneshot::Sender<Result<Vec<NsValue>, String>>,
    },
    /// Instantiate a library component and link its exports for later tasks.
    Install {
        component: Arc<LoadedComponent>,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Forget the instance of a component that was deleted or replaced.
    Forget {
        digest: String,
    },
    /// For fault-injection tests only: panic inside the engine thread at
    /// its next call, as a host bug would.
    Panic,
    /// For fault-injection tests only: the engine thread ends at once, as if
    /// it had died; the jobs queued behind this one are dropped unanswered.
    Exit,
}

impl Job {
    /// Whether the job is work a client asked for, counted in `queued` (and
    /// so in backpressure); housekeeping jobs are not.
    pub fn is_counted(&self) -> bool {
        !matches!(self, Job::Forget { .. } | Job::Panic | Job::Exit)
    }
}
