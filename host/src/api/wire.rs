//! Request bodies and query strings of the HTTP API; the answers are
//! `crate::wire`'s (re-exported here for the handlers).

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::scheduler::Targets;
use crate::value::Encoding;
pub use crate::wire::{ComponentInfo, ComponentList, EngineIds, EngineList, FunctionInfo, GatherAnswer, Health, Param, PullAnswer};

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
