//! Assembling results: engines' outputs merged, map results flattened (as
//! one array form when asked), per-engine lists concatenated.

use serde_json::Value as Json;
use wasmtime::component::types::Type;

use super::task::TaskRecord;
use crate::engine::{lost_message, BatchOutcome, EngineInfo, EngineOutput};
use crate::error::{EngineFailure, FailureCause};
use crate::value::array::concat_forms_text;
use crate::value::{ArrayForm, Dtype, Encoding};

/// The outcome of a call whose engine never answered: a local engine thread
/// that crashed (and was restarted), or a remote engine that was lost.
pub(super) fn engine_died(id: usize, task: &TaskRecord, info: Option<&EngineInfo>) -> BatchOutcome {
    let (message, cause) = match info {
        Some(i) if i.placement.lock().remote => (lost_message(id, i), FailureCause::Lost),
        _ => (format!("engine {id} crashed while running this task; it was restarted (its namespace is kept)"), FailureCause::Engine),
    };
    BatchOutcome {
        engine: id,
        batch: 0,
        results: Err(EngineFailure {
            engine: id,
            function: format!("{}/{}", task.component, task.function),
            message,
            trace: String::new(),
            cause,
        }),
        output: EngineOutput { engine: id, ..Default::default() },
    }
}

pub(super) fn merge_outputs(outputs: Vec<EngineOutput>) -> Vec<EngineOutput> {
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

/// A map's flat results; as one array form when asked and the items are numbers.
pub(super) fn flat_result(flat: Vec<Json>, result_ty: Option<&Type>, encoding: Encoding) -> Json {
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
pub(super) fn concat_lists(parts: Vec<Json>) -> Json {
    // Engines' array forms whose bytes split at whole base64 blocks (the
    // tutorial's Mandelbrot halves): joined as text, not decoded and
    // encoded again.
    if let Some(joined) = concat_forms_text(&parts) {
        return joined;
    }
    let arrays: Option<Vec<ArrayForm>> = parts.iter().map(|p| p.as_object().and_then(ArrayForm::from_json).and_then(|r| r.ok())).collect();
    if let Some(arrays) = arrays.filter(|a| !a.is_empty()) {
        let dtype = arrays[0].dtype;
        if arrays.iter().all(|a| a.dtype == dtype && a.shape[1..] == arrays[0].shape[1..]) {
            let mut shape = arrays[0].shape.clone();
            shape[0] = arrays.iter().map(|a| a.shape[0]).sum();
            let mut data = Vec::with_capacity(arrays.iter().map(|a| a.data.len()).sum());
            arrays.iter().for_each(|a| data.extend_from_slice(&a.data));
            return ArrayForm { dtype, shape, data: data.into() }.to_json();
        }
    }
    Json::Array(
        parts
            .into_iter()
            .flat_map(|p| match p {
                Json::Array(items) => items,
                other => vec![other],
            })
            .collect(),
    )
}
