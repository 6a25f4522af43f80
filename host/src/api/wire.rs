//! Request and answer bodies of the HTTP API that are not scheduler types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::engine::EngineStatus;
use crate::runtime::{wit_type, ImportInfo, LoadedComponent};
use crate::scheduler::Targets;
use crate::value::Encoding;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub engines: usize,
    pub version: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EngineList {
    pub engines: Vec<EngineStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FunctionInfo {
    pub name: String,
    pub params: Vec<Param>,
    /// The result's WIT type, if the function returns one.
    pub result: Option<String>,
    /// The whole signature in WIT: `func(x: s64) -> s64`.
    pub signature: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ComponentInfo {
    pub name: String,
    pub digest: String,
    pub size: usize,
    pub exports: Vec<FunctionInfo>,
    /// Interfaces it exports (a library, when not empty).
    pub interfaces: Vec<String>,
    pub imports: Vec<String>,
    /// Where each import is satisfied from on this cluster.
    pub import_sources: Vec<ImportInfo>,
}

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
                    signature: f.signature(),
                })
                .collect(),
            interfaces: c.interfaces.clone(),
            imports: c.imports.clone(),
            import_sources,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ComponentList {
    pub components: Vec<ComponentInfo>,
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct EngineIds {
    pub engines: Vec<usize>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PullQuery {
    pub targets: Option<String>,
    /// Comma-separated names.
    pub names: String,
    pub encoding: Option<Encoding>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PullAnswer {
    pub engines: Vec<usize>,
    #[schema(value_type = Vec<Object>)]
    pub values: Vec<Map<String, Json>>,
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct GatherAnswer {
    #[schema(value_type = Object)]
    pub values: Json,
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
