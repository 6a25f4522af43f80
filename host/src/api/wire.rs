//! Request bodies and query strings of the HTTP API; the answers are
//! `crate::wire`'s (re-exported here for the handlers).

use serde::Deserialize;
use serde_json::{Map, Value as Json};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

use crate::scheduler::Targets;
use crate::value::Encoding;
pub use crate::wire::{ComponentInfo, ComponentList, EngineIds, EngineList, FunctionInfo, GatherAnswer, Health, Param, PullAnswer};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The name tasks will call it by: 1-128 letters, digits, `-`, `_` or
    /// `.`, and not `.` or `..`.
    #[param(
        pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]{0,127}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}|\.\.[A-Za-z0-9._-]{1,126})$",
        example = "seed"
    )]
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
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds to hold the answer until the task is finished (at most an
    /// hour is held; more counts as an hour).
    #[param(minimum = 0, example = 0.5)]
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
#[into_params(parameter_in = Query)]
pub struct PullQuery {
    /// Which engines (API.md, Targets): `all` (the default), an id, `1,3`, or a slice such as `::2`.
    #[param(example = "all")]
    pub targets: Option<String>,
    /// Comma-separated names.
    #[param(example = "x")]
    pub names: String,
    /// `array` writes list-of-number values in the array form.
    #[param(inline)]
    pub encoding: Option<Encoding>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScatterRequest {
    pub name: String,
    /// A list, or the array form (API.md, Arrays).
    #[schema(value_type = serde_json::Value)]
    pub values: Json,
    #[serde(default)]
    pub targets: Targets,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GatherQuery {
    #[param(example = "x")]
    pub name: String,
    /// Which engines (API.md, Targets): `all` (the default), an id, `1,3`, or a slice such as `::2`.
    #[param(example = "all")]
    pub targets: Option<String>,
    /// `array` answers a list of numbers in the array form.
    #[param(inline)]
    pub encoding: Option<Encoding>,
}

pub fn targets_query(t: &Option<String>) -> Targets {
    match t {
        Some(s) => Targets::Spec(s.clone()),
        None => Targets::default(),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawPushQuery {
    /// Which engines (API.md, Targets): `all` (the default), an id, `1,3`, or a slice such as `::2`.
    #[param(example = "all")]
    pub targets: Option<String>,
    /// numpy's dtype name of the body's items (or its short code).
    #[param(inline, value_type = DtypeName, example = "float64")]
    pub dtype: String,
    /// Comma-separated dimensions (default: one dimension, all items).
    #[param(pattern = r"^\s*\+?[0-9]+\s*(,\s*\+?[0-9]+\s*)*$", example = "2")]
    pub shape: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawPullQuery {
    /// Exactly one engine.
    #[param(example = "0")]
    pub targets: Option<String>,
}

#[derive(Deserialize)]
pub struct FaultQuery {
    #[serde(default)]
    pub exit: bool,
}

/// The dtype names `PUT /v1/namespace/{name}` accepts: numpy's, and their
/// short codes (`value::Dtype::parse`). Only the OpenAPI document uses this.
pub struct DtypeName;

const DTYPE_NAMES: [&str; 32] = [
    "float64", "f8", "<f8", "float32", "f4", "<f4", "int64", "i8", "<i8", "int32", "i4", "<i4", "int16", "i2", "<i2", "int8", "i1", "|i1",
    "uint64", "u8", "<u8", "uint32", "u4", "<u4", "uint16", "u2", "<u2", "uint8", "u1", "|u1", "bool", "|b1",
];

impl utoipa::PartialSchema for DtypeName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(DTYPE_NAMES)).into()
    }
}

impl utoipa::ToSchema for DtypeName {}

/// A body of raw bytes (a component, an array's little-endian items): in
/// the OpenAPI document a binary string.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary))).into()
    }
}

impl utoipa::ToSchema for Binary {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Dtype;

    #[test]
    fn the_documented_dtypes_are_the_accepted_ones() {
        for name in DTYPE_NAMES {
            assert!(Dtype::parse(name).is_some(), "{name} is documented but not accepted");
        }
        for name in ["float16", "complex128", "F8", "", "object"] {
            assert!(Dtype::parse(name).is_none(), "{name} is accepted but not documented");
        }
    }
}
