//! Direct views: one job per engine (one message per engine for a whole
//! chunk), and how the engines' outcomes become the task's result — or,
//! when some failed, its error, which keeps the others' results.

use std::sync::Arc;

use tokio::sync::oneshot;
use wasmtime::component::types::Type;

use super::result::{concat_lists, engine_died, flat_result, merge_outputs};
use super::task::{EngineResult, TaskError, TaskRecord};
use super::Controller;
use crate::engine::{BatchOutcome, CallBatch, Job};
use crate::value::Encoding;
use crate::Result;
use serde_json::Value as Json;

/// How a finished set of engine outcomes becomes the task's result.
#[derive(Clone, Copy)]
pub(super) enum Assemble {
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
    pub(super) fn start_direct(
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
        let mut answers = Vec::with_capacity(jobs.len());
        let sends = jobs
            .into_iter()
            .map(|(id, batch)| {
                let (tx, rx) = oneshot::channel();
                answers.push((id, rx));
                (id, Job::Call { batch, reply: tx })
            })
            .collect();
        // Collected in the jobs' order: a parallel's parts are joined in it.
        let pending: Vec<_> = answers
            .into_iter()
            .zip(self.pool.send_each(sends))
            .map(|((id, rx), sent)| match sent {
                Ok(()) => (id, Some(rx)),
                Err(e) => {
                    tracing::warn!(engine = id, "cannot queue: {e}");
                    (id, None)
                }
            })
            .collect();
        let task = record.clone();
        let me = self.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::with_capacity(pending.len());
            for (id, rx) in pending {
                let got = match rx {
                    Some(rx) => rx.await.ok(),
                    None => None,
                };
                outcomes.push(got.unwrap_or_else(|| engine_died(id, &task, me.pool.info(id).as_deref())));
            }
            finish(&task, outcomes, assemble, result_ty.as_ref(), encoding);
            me.tasks.enforce_bytes();
        });
        Ok(record)
    }
}

pub(super) fn finish(task: &TaskRecord, outcomes: Vec<BatchOutcome>, assemble: Assemble, result_ty: Option<&Type>, encoding: Encoding) {
    let mut failures = Vec::new();
    let mut per_engine = Vec::with_capacity(outcomes.len());
    let mut finished = Vec::with_capacity(outcomes.len());
    let mut outputs = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        outputs.push(o.output);
        match o.results {
            Ok(values) => {
                finished.push(o.engine);
                per_engine.push(values);
            }
            Err(f) => failures.push(f),
        }
    }
    let outputs = merge_outputs(outputs);
    let first = |v: Vec<Json>| v.into_iter().next().unwrap_or(Json::Null);
    if !failures.is_empty() {
        let mut error = TaskError::from_failures(failures, task.control.is_cancelled());
        // The engines that finished keep their outcome (IPython's CompositeError).
        error.results = finished
            .into_iter()
            .zip(per_engine)
            .map(|(engine, values)| EngineResult {
                engine,
                result: match assemble {
                    Assemble::Concat => flat_result(values, result_ty, encoding),
                    Assemble::PerEngine | Assemble::Single | Assemble::Parallel => first(values),
                },
            })
            .collect();
        task.finish(Err(error), outputs);
        return;
    }
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
