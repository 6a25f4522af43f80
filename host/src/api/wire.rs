//! Request bodies and query strings of the HTTP API; the answers are
//! `crate::wire`'s (re-exported here for the handlers).

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::runtime::{ImportInfo, LoadedComponent};
use crate::scheduler::Targets;
use crate::value::Encoding;
use crate::value::{signature, wit_type};
pub use crate::wire::{ComponentInfo, ComponentList, EngineIds, EngineList, FunctionInfo, GatherAnswer, Health, Param, PullAnswer};

impl ComponentInfo {
    pub fn new(c: &LoadedComponent, import_sources: Vec<ImportInfo>) -> Self {
        ComponentInfo {
            name: c.name.clone(),
            digest: c.digest.clone(),
            size: c.size,
            exports: c
                .functions
                .iter()
                .map(|f| FunctionInfo {
                    name: f.name.clone(),
                    params: f.params.iter().map(|(n, t)| Param { name: n.clone(), ty: wit_type(t) }).collect(),
                    result: f.results.first().map(wit_type),
                    signature: signature(&f.params, &f.results),
                })
                .collect(),
            interfaces: c.interfaces.clone(),
            imports: c.imports.clone(),
            import_sources,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// The name tasks will call it by.
    pub name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    pub component: String,
    #[serde(default)]
    pub targets: Targets,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct WaitQuery {
    /// Seconds to hold the answer until the task is finished.
    pub wait: Option<f64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    #[serde(default)]
    pub targets: Targets,
    #[schema(value_type = Object)]
    pub values: Map<String, Json>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PullQuery {
    pub targets: Option<String>,
    /// Comma-separated names.
    pub names: String,
    pub encoding: Option<Encoding>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScatterRequest {
    pub name: String,
    #[schema(value_type = Object)]
    pub values: Json,
    #[serde(default)]
    pub targets: Targets,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct GatherQuery {
    pub name: String,
    pub targets: Option<String>,
    pub encoding: Option<Encoding>,
}

pub fn targets_query(t: &Option<String>) -> Targets {
    match t {
        Some(s) => Targets::Spec(s.clone()),
        None => Targets::default(),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RawPushQuery {
    pub targets: Option<String>,
    /// numpy's dtype name of the body's items.
    pub dtype: String,
    /// Comma-separated dimensions (default: one dimension, all items).
    pub shape: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RawPullQuery {
    /// Exactly one engine.
    pub targets: Option<String>,
}

#[derive(Deserialize)]
pub struct FaultQuery {
    #[serde(default)]
    pub exit: bool,
}
