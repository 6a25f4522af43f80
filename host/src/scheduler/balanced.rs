//! The balanced view: one shared queue of batches that free engines pull
//! from, so no engine idles while batches remain; results are collected in
//! batch order (or arrival order when `ordered` is false) into one list as
//! they come, only batches that came early waiting aside.
//!
//! A batch's calls are bound from the task's sequences when an engine takes
//! it (`MapBatches`), not all up front: only the batches running hold their
//! arguments. Every item was converted once at submission to find a type
//! error before anything runs, so binding a batch again cannot fail.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::mpsc;
use wasmtime::component::types::Type;

use super::binding::MapCalls;
use super::partition;
use super::result::{flat_result, merge_outputs};
use super::task::{TaskError, TaskErrorKind, TaskRecord};
use super::Controller;
use crate::engine::{Arg, BalancedWork, BatchOutcome, CallSource, CallSpec, Job};
use crate::{Error, Result};

/// A balanced map's batches, each bound from the sequences by the engine
/// that takes it (the items were all checked at submission).
struct MapBatches {
    calls: MapCalls,
    ranges: Vec<Range<usize>>,
}

impl CallSource for MapBatches {
    fn batches(&self) -> usize {
        self.ranges.len()
    }

    fn batch(&self, index: usize) -> Option<std::result::Result<Vec<Vec<Arg>>, String>> {
        let range = self.ranges.get(index)?.clone();
        Some(self.calls.calls(range).map_err(|e| e.to_string()))
    }
}

impl Controller {
    // The arguments are the parts of one task; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_balanced(
        self: &Arc<Self>,
        record: Arc<TaskRecord>,
        call_spec: CallSpec,
        calls: MapCalls,
        chunksize: usize,
        engines: Vec<usize>,
        ordered: bool,
        retries: usize,
        result_ty: Option<Type>,
    ) -> Result<Arc<TaskRecord>> {
        self.pool.check_capacity(&engines)?;
        let ranges = partition::batches(calls.len(), chunksize);
        let n_batches = ranges.len();
        let (sink, mut results) = mpsc::unbounded_channel();
        let encoding = call_spec.encoding;
        let source = Box::new(MapBatches { calls, ranges });
        let work = Arc::new(BalancedWork::from_source(call_spec, source, sink, retries));
        let mut accepted = 0;
        let sent = self.pool.send_each(engines.iter().map(|&id| (id, Job::Balanced(work.clone()))).collect());
        for (&id, sent) in engines.iter().zip(sent) {
            match sent {
                Ok(()) => accepted += 1,
                Err(e) => tracing::warn!(engine = id, "cannot queue balanced work: {e}"),
            }
        }
        if accepted == 0 {
            return Err(Error::EngineGone(format!("none of engines {engines:?} accepted the work; retry once they are back")));
        }
        self.tasks.insert(record.clone());
        let task = record.clone();
        let me = self.clone();
        tokio::spawn(async move {
            // Results go into `flat` as soon as their turn comes (the next
            // batch in order, or any batch when unordered): only batches that
            // arrived early wait in `slots`, so the results are not held
            // twice when the task ends.
            let mut slots: Vec<Option<Vec<Json>>> = vec![None; n_batches];
            let mut seen = vec![false; n_batches];
            let mut next_in_order = 0;
            let mut flat: Vec<Json> = Vec::with_capacity(task.total);
            let mut outputs = Vec::new();
            let mut failures = Vec::new();
            let mut used = Vec::new();
            let mut received = 0;
            let mut abandoned = false;
            while received < n_batches {
                let stopping = !failures.is_empty() || task.control.is_cancelled();
                if stopping && received >= work.next.load(Ordering::SeqCst).min(n_batches) {
                    break;
                }
                // Wake up now and then to notice a cancel with nothing in
                // flight, or that no engine holds the work any more (each
                // drops its share when it has no batch left or its thread
                // died): the batches not answered by then never will be.
                let Ok(got) = tokio::time::timeout(Duration::from_millis(50), results.recv()).await else {
                    if Arc::strong_count(&work) == 1 && results.is_empty() {
                        if stopping {
                            // Nobody runs anything more of a stopping task.
                            break;
                        }
                        // Batches given back by a lost engine run on the
                        // engines still there, if any can take them.
                        let live: Vec<usize> = me.pool.ids().into_iter().filter(|e| engines.contains(e)).collect();
                        if work.has_requeued() && live.iter().any(|&e| me.pool.send(e, Job::Balanced(work.clone())).is_ok()) {
                            continue;
                        }
                        abandoned = true;
                        break;
                    }
                    continue;
                };
                let Some(BatchOutcome { engine, batch, results: r, output }) = got else {
                    break;
                };
                received += 1;
                if !used.contains(&engine) {
                    used.push(engine);
                }
                if !output.is_empty() {
                    outputs.push(output);
                }
                match r {
                    Ok(values) => {
                        if batch < n_batches && !std::mem::replace(&mut seen[batch], true) {
                            if ordered {
                                slots[batch] = Some(values);
                                while let Some(done) = slots.get_mut(next_in_order).and_then(Option::take) {
                                    flat.extend(done);
                                    next_in_order += 1;
                                }
                            } else {
                                flat.extend(values);
                            }
                        }
                    }
                    Err(f) => {
                        work.stop.store(true, Ordering::SeqCst);
                        failures.push(f);
                    }
                }
            }
            // The sequences go before the answer is made (engines drop
            // their share once no batch is left).
            drop(work);
            used.sort_unstable();
            task.set_engines(used);
            let outputs = merge_outputs(outputs);
            if !failures.is_empty() || task.control.is_cancelled() {
                task.finish(Err(TaskError::from_failures(failures, task.control.is_cancelled())), outputs);
                return;
            }
            if abandoned {
                let message = format!(
                    "{} of {n_batches} batches were never run: no engine took them (engines stopped or were restarted)",
                    n_batches - received
                );
                task.finish(Err(TaskError { kind: TaskErrorKind::NoEngine, message, errors: Vec::new(), results: Vec::new() }), outputs);
                return;
            }
            task.finish(Ok(flat_result(flat, result_ty.as_ref(), encoding)), outputs);
            me.tasks.enforce_bytes();
        });
        Ok(record)
    }
}
