//! JSON ↔ component values, driven by the function's WIT types.
//!
//! Conventions on the wire (API.md): integers are range-checked; floats may
//! be `"NaN"`, `"Infinity"`, `"-Infinity"`; `char` is a one-character string;
//! records are objects (kebab-case or snake_case keys, unknown keys refused);
//! tuples and lists are arrays, and a list of numbers may be the array form;
//! `option` is null or the value; `result` is `{"ok": v}` or `{"err": e}`;
//! a variant is `{"case": payload}` (or `"case"` without payload); enums are
//! strings; flags are lists of names.

pub mod array;
pub mod b64stream;
pub mod chunks;
pub mod frames;
mod wit;

use serde_json::{Map, Value as Json};
use wasmtime::component::types::Type;
use wasmtime::component::Val;

pub use array::{ArrayForm, Dtype, Num};
pub use chunks::JsonChunks;
pub use frames::{Frames, FRAMES_MEDIA_TYPE};
pub use wit::{signature, snake_case, wit_name_matches, wit_type};

/// How list-of-number results are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Json,
    Array,
}

/// A value that does not fit the WIT type it is meant for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("argument `{path}`: expected {expected}, got {found}")]
pub struct ConvertError {
    pub path: String,
    pub expected: String,
    pub found: String,
}

fn mismatch(path: &str, ty: &Type, found: &Json) -> ConvertError {
    ConvertError { path: path.to_string(), expected: wit_type(ty), found: describe_json(found) }
}

fn fail(path: &str, expected: impl Into<String>, found: impl Into<String>) -> ConvertError {
    ConvertError { path: path.to_string(), expected: expected.into(), found: found.into() }
}

/// A short description of a JSON value for error messages.
pub fn describe_json(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.chars().count() > 40 => {
            format!("the string {:?}…", s.chars().take(40).collect::<String>())
        }
        Json::String(s) => format!("the string {s:?}"),
        Json::Array(a) => format!("a list of {} items", a.len()),
        Json::Object(o) => format!("an object with keys {}", o.keys().cloned().collect::<Vec<_>>().join(", ")),
    }
}

pub fn float_to_json(v: f64) -> Json {
    match serde_json::Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None if v.is_nan() => Json::String("NaN".into()),
        None if v > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn json_float(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// An integer from JSON: exact integers, or floats with no fractional part.
fn json_int(v: &Json) -> Option<i128> {
    let Json::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i as i128);
    }
    if let Some(u) = n.as_u64() {
        return Some(u as i128);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 1.8e19).then_some(f as i128)
}

fn int_val(ty: &Type, i: i128) -> Option<Val> {
    Some(match ty {
        Type::S8 => Val::S8(i8::try_from(i).ok()?),
        Type::U8 => Val::U8(u8::try_from(i).ok()?),
        Type::S16 => Val::S16(i16::try_from(i).ok()?),
        Type::U16 => Val::U16(u16::try_from(i).ok()?),
        Type::S32 => Val::S32(i32::try_from(i).ok()?),
        Type::U32 => Val::U32(u32::try_from(i).ok()?),
        Type::S64 => Val::S64(i64::try_from(i).ok()?),
        Type::U64 => Val::U64(u64::try_from(i).ok()?),
        _ => return None,
    })
}

fn is_int(ty: &Type) -> bool {
    matches!(ty, Type::S8 | Type::U8 | Type::S16 | Type::U16 | Type::S32 | Type::U32 | Type::S64 | Type::U64)
}

fn range_text(ty: &Type) -> String {
    let (lo, hi): (i128, i128) = match ty {
        Type::S8 => (i8::MIN as i128, i8::MAX as i128),
        Type::U8 => (0, u8::MAX as i128),
        Type::S16 => (i16::MIN as i128, i16::MAX as i128),
        Type::U16 => (0, u16::MAX as i128),
        Type::S32 => (i32::MIN as i128, i32::MAX as i128),
        Type::U32 => (0, u32::MAX as i128),
        Type::S64 => (i64::MIN as i128, i64::MAX as i128),
        _ => (0, u64::MAX as i128),
    };
    format!("{} (an integer in {lo}..={hi})", wit_type(ty))
}

/// Convert one array element to a scalar of type `ty`.
pub fn num_to_val(ty: &Type, n: Num, path: &str) -> Result<Val, ConvertError> {
    let found = || match n {
        Num::I(v) => v.to_string(),
        Num::U(v) => v.to_string(),
        Num::F(v) => v.to_string(),
        Num::B(v) => v.to_string(),
    };
    match (ty, n) {
        (Type::Float64, Num::F(v)) => Ok(Val::Float64(v)),
        (Type::Float32, Num::F(v)) => Ok(Val::Float32(v as f32)),
        (Type::Float64, Num::I(v)) => Ok(Val::Float64(v as f64)),
        (Type::Float64, Num::U(v)) => Ok(Val::Float64(v as f64)),
        (Type::Float32, Num::I(v)) => Ok(Val::Float32(v as f32)),
        (Type::Float32, Num::U(v)) => Ok(Val::Float32(v as f32)),
        (Type::Bool, Num::B(v)) => Ok(Val::Bool(v)),
        (t, Num::I(v)) if is_int(t) => int_val(t, v as i128).ok_or_else(|| fail(path, range_text(t), found())),
        (t, Num::U(v)) if is_int(t) => int_val(t, v as i128).ok_or_else(|| fail(path, range_text(t), found())),
        (t, Num::B(v)) if is_int(t) => int_val(t, v as i128).ok_or_else(|| fail(path, range_text(t), found())),
        (t, _) => Err(fail(path, wit_type(t), format!("the array element {}", found()))),
    }
}

/// Fill a (possibly nested) list type from an array form, by its shape.
pub fn array_to_val(ty: &Type, a: &ArrayForm, dims: &[usize], offset: &mut usize, path: &str) -> Result<Val, ConvertError> {
    match (ty, dims.split_first()) {
        (Type::List(l), Some((&n, rest))) => {
            let elem = l.ty();
            if rest.is_empty() {
                if let Some(items) = same_type_items(&elem, a, *offset, n) {
                    *offset += n;
                    return Ok(Val::List(items));
                }
            }
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                items.push(array_to_val(&elem, a, rest, offset, path).map_err(|mut e| {
                    if e.path == path {
                        e.path = format!("{path}[{i}]");
                    }
                    e
                })?);
            }
            Ok(Val::List(items))
        }
        (t, None) => {
            let v = num_to_val(t, a.get(*offset), path)?;
            *offset += 1;
            Ok(v)
        }
        (t, Some(_)) => Err(fail(path, wit_type(t), format!("an array of {} dimensions (shape {:?})", a.shape.len(), a.shape))),
    }
}

/// Items `first..first + n` of `a` as values of `elem` when the array's
/// dtype is exactly that type (no range checks needed): one tight loop over
/// the bytes instead of a conversion per element. `None` otherwise.
fn same_type_items(elem: &Type, a: &ArrayForm, first: usize, n: usize) -> Option<Vec<Val>> {
    use crate::value::Dtype as D;
    let size = a.dtype.size();
    let bytes = a.data.get(first * size..(first + n) * size)?;
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> Val) -> Vec<Val> {
        bytes.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
    }
    Some(match (elem, a.dtype) {
        (Type::Float64, D::F64) => each::<8>(bytes, |b| Val::Float64(f64::from_le_bytes(b))),
        (Type::Float32, D::F32) => each::<4>(bytes, |b| Val::Float32(f32::from_le_bytes(b))),
        (Type::S64, D::I64) => each::<8>(bytes, |b| Val::S64(i64::from_le_bytes(b))),
        (Type::U64, D::U64) => each::<8>(bytes, |b| Val::U64(u64::from_le_bytes(b))),
        (Type::S32, D::I32) => each::<4>(bytes, |b| Val::S32(i32::from_le_bytes(b))),
        (Type::U32, D::U32) => each::<4>(bytes, |b| Val::U32(u32::from_le_bytes(b))),
        (Type::U8, D::U8) => bytes.iter().map(|&b| Val::U8(b)).collect(),
        _ => return None,
    })
}

/// Look a record field / kwarg up by its WIT (kebab-case) name or its snake_case spelling.
pub fn lookup<'a>(obj: &'a Map<String, Json>, wit_name: &str) -> Option<&'a Json> {
    obj.get(wit_name).or_else(|| wit_name.contains('-').then(|| obj.get(&snake_case(wit_name))).flatten())
}

impl ConvertError {
    /// Put `outer` in front of the path (errors are built innermost first,
    /// so the success path allocates no path strings at all).
    pub fn within(mut self, outer: &str) -> Self {
        self.path = format!("{outer}{}", self.path);
        self
    }
}

/// Convert `v` to a value of WIT type `ty`; `path` names it in errors.
pub fn json_to_val(ty: &Type, v: &Json, path: &str) -> Result<Val, ConvertError> {
    convert(ty, v).map_err(|e| e.within(path))
}

fn convert(ty: &Type, v: &Json) -> Result<Val, ConvertError> {
    let path = "";
    let bad = || mismatch(path, ty, v);
    match ty {
        Type::Bool => v.as_bool().map(Val::Bool).ok_or_else(bad),
        t if is_int(t) => {
            let i = json_int(v).ok_or_else(bad)?;
            int_val(t, i).ok_or_else(|| fail(path, range_text(t), describe_json(v)))
        }
        Type::Float32 => json_float(v).map(|f| Val::Float32(f as f32)).ok_or_else(bad),
        Type::Float64 => json_float(v).map(Val::Float64).ok_or_else(bad),
        Type::Char => {
            let s = v.as_str().ok_or_else(bad)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Val::Char(c)),
                _ => Err(fail(path, "char (a string of exactly one character)", describe_json(v))),
            }
        }
        Type::String => v.as_str().map(|s| Val::String(s.to_string())).ok_or_else(bad),
        Type::List(l) => match v {
            Json::Array(items) => {
                let elem = l.ty();
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| convert(&elem, item).map_err(|e| e.within(&format!("[{i}]"))))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Val::List)
            }
            Json::Object(obj) => match ArrayForm::from_json(obj) {
                Some(Ok(a)) => {
                    let mut offset = 0;
                    array_to_val(ty, &a, &a.shape.clone(), &mut offset, path)
                }
                Some(Err(msg)) => Err(fail(path, wit_type(ty), msg)),
                None if obj.contains_key("buffer") => Err(fail(
                    path,
                    wit_type(ty),
                    "an array form naming a buffer inside another value (a buffer may stand for a whole argument, kwarg or sequence)",
                )),
                None => Err(bad()),
            },
            _ => Err(bad()),
        },
        Type::FixedLengthList(l) => {
            let items = v.as_array().ok_or_else(bad)?;
            if items.len() != l.len() as usize {
                return Err(fail(path, wit_type(ty), describe_json(v)));
            }
            let elem = l.ty();
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(&elem, item).map_err(|e| e.within(&format!("[{i}]"))))
                .collect::<Result<Vec<_>, _>>()
                .map(Val::FixedLengthList)
        }
        Type::Map(m) => {
            let (kt, vt) = (m.key(), m.value());
            match v {
                Json::Object(obj) => obj
                    .iter()
                    .map(|(k, item)| {
                        Ok((convert(&kt, &Json::String(k.clone()))?, convert(&vt, item).map_err(|e| e.within(&format!(".{k}")))?))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Val::Map),
                Json::Array(pairs) => pairs
                    .iter()
                    .enumerate()
                    .map(|(i, pair)| match pair.as_array().map(Vec::as_slice) {
                        Some([k, item]) => Ok((
                            convert(&kt, k).map_err(|e| e.within(&format!("[{i}][0]")))?,
                            convert(&vt, item).map_err(|e| e.within(&format!("[{i}][1]")))?,
                        )),
                        _ => Err(fail(&format!("{path}[{i}]"), "a [key, value] pair", describe_json(pair))),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Val::Map),
                _ => Err(bad()),
            }
        }
        Type::Record(r) => {
            let obj = v.as_object().ok_or_else(bad)?;
            let fields: Vec<_> = r.fields().collect();
            if let Some(unknown) = obj.keys().find(|k| !fields.iter().any(|f| wit_name_matches(f.name, k))) {
                let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                return Err(fail(
                    &format!("{path}.{unknown}"),
                    format!("one of the record's fields ({})", names.join(", ")),
                    "an unknown field",
                ));
            }
            let mut out = Vec::with_capacity(fields.len());
            for f in &fields {
                let val = match lookup(obj, f.name) {
                    Some(item) => convert(&f.ty, item).map_err(|e| e.within(&format!(".{}", f.name)))?,
                    None if matches!(f.ty, Type::Option(_)) => Val::Option(None),
                    None => return Err(fail(&format!(".{}", f.name), wit_type(&f.ty), "nothing (the field is missing)")),
                };
                out.push((f.name.to_string(), val));
            }
            Ok(Val::Record(out))
        }
        Type::Tuple(t) => {
            let items = v.as_array().ok_or_else(bad)?;
            let types: Vec<Type> = t.types().collect();
            if items.len() != types.len() {
                return Err(fail(path, wit_type(ty), describe_json(v)));
            }
            types
                .iter()
                .zip(items)
                .enumerate()
                .map(|(i, (t, item))| convert(t, item).map_err(|e| e.within(&format!("[{i}]"))))
                .collect::<Result<Vec<_>, _>>()
                .map(Val::Tuple)
        }
        Type::Variant(var) => {
            let (case_name, payload) = match v {
                Json::String(s) => (s.as_str(), None),
                Json::Object(o) if o.len() == 1 => {
                    let (k, p) = o.iter().next().ok_or_else(bad)?;
                    (k.as_str(), Some(p))
                }
                _ => return Err(bad()),
            };
            let case = var.cases().find(|c| wit_name_matches(c.name, case_name)).ok_or_else(bad)?;
            let val = match (&case.ty, payload) {
                (Some(t), Some(p)) => Some(Box::new(convert(t, p).map_err(|e| e.within(&format!(".{}", case.name)))?)),
                (Some(_), None) => return Err(fail(path, wit_type(ty), format!("case `{}` without its payload", case.name))),
                (None, Some(Json::Null) | None) => None,
                (None, Some(p)) => return Err(fail(path, format!("no payload for case `{}`", case.name), describe_json(p))),
            };
            Ok(Val::Variant(case.name.to_string(), val))
        }
        Type::Enum(e) => {
            let s = v.as_str().ok_or_else(bad)?;
            e.names().find(|n| wit_name_matches(n, s)).map(|n| Val::Enum(n.to_string())).ok_or_else(bad)
        }
        Type::Option(o) => match v {
            Json::Null => Ok(Val::Option(None)),
            other => Ok(Val::Option(Some(Box::new(convert(&o.ty(), other)?)))),
        },
        Type::Result(r) => {
            let obj = v.as_object().filter(|o| o.len() == 1).ok_or_else(bad)?;
            let payload = |t: Option<Type>, p: &Json, which: &str| -> Result<Option<Box<Val>>, ConvertError> {
                match t {
                    Some(t) => Ok(Some(Box::new(convert(&t, p).map_err(|e| e.within(&format!(".{which}")))?))),
                    None if p.is_null() => Ok(None),
                    None => Err(fail(&format!("{path}.{which}"), "null (no payload)", describe_json(p))),
                }
            };
            if let Some(p) = obj.get("ok") {
                Ok(Val::Result(Ok(payload(r.ok(), p, "ok")?)))
            } else if let Some(p) = obj.get("err") {
                Ok(Val::Result(Err(payload(r.err(), p, "err")?)))
            } else {
                Err(bad())
            }
        }
        Type::Flags(f) => {
            let items = v.as_array().ok_or_else(bad)?;
            let names: Vec<&str> = f.names().collect();
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .and_then(|s| names.iter().find(|n| wit_name_matches(n, s)))
                        .map(|n| n.to_string())
                        .ok_or_else(|| fail(path, wit_type(ty), describe_json(item)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Val::Flags)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            Err(fail(path, wit_type(ty), "a JSON value (resources, futures and streams cannot be passed over the API)"))
        }
        _ => Err(bad()),
    }
}

/// The dtype whose items are exactly values of `ty`, if any.
pub fn numeric_dtype(ty: &Type) -> Option<Dtype> {
    Some(match ty {
        Type::Float64 => Dtype::F64,
        Type::Float32 => Dtype::F32,
        Type::S64 => Dtype::I64,
        Type::S32 => Dtype::I32,
        Type::S16 => Dtype::I16,
        Type::S8 => Dtype::I8,
        Type::U64 => Dtype::U64,
        Type::U32 => Dtype::U32,
        Type::U16 => Dtype::U16,
        Type::U8 => Dtype::U8,
        _ => return None,
    })
}

fn push_le(out: &mut Vec<u8>, v: &Val) -> bool {
    match v {
        Val::Float64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::Float32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::S64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::S32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::S16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::S8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Val::U8(x) => out.push(*x),
        _ => return false,
    }
    true
}

/// A list of numbers (or rectangular nested lists of them) as an array form.
fn list_to_array(ty: &Type, v: &Val) -> Option<ArrayForm> {
    let mut shape = Vec::new();
    let mut t = ty.clone();
    while let Type::List(l) = t {
        t = l.ty();
        shape.push(0usize);
    }
    let dtype = numeric_dtype(&t)?;
    let mut data = Vec::new();
    fn walk(v: &Val, depth: usize, shape: &mut [usize], seen: &mut [bool], out: &mut Vec<u8>) -> bool {
        if depth == shape.len() {
            return push_le(out, v);
        }
        let Val::List(items) = v else { return false };
        if seen[depth] && shape[depth] != items.len() {
            return false;
        }
        shape[depth] = items.len();
        seen[depth] = true;
        items.iter().all(|i| walk(i, depth + 1, shape, seen, out))
    }
    let mut seen = vec![false; shape.len()];
    walk(v, 0, &mut shape, &mut seen, &mut data).then_some(ArrayForm { dtype, shape, data: data.into() })
}

/// Convert a component value of type `ty` to JSON.
pub fn val_to_json(ty: &Type, v: &Val, encoding: Encoding) -> Json {
    if encoding == Encoding::Array && matches!(ty, Type::List(_)) {
        if let Some(a) = list_to_array(ty, v) {
            return a.to_json();
        }
    }
    match (ty, v) {
        (Type::List(l), Val::List(items)) => {
            let elem = l.ty();
            Json::Array(items.iter().map(|i| val_to_json(&elem, i, encoding)).collect())
        }
        (Type::FixedLengthList(l), Val::FixedLengthList(items)) => {
            let elem = l.ty();
            Json::Array(items.iter().map(|i| val_to_json(&elem, i, encoding)).collect())
        }
        (Type::Record(r), Val::Record(fields)) => {
            let types: Vec<_> = r.fields().collect();
            Json::Object(
                fields
                    .iter()
                    .map(|(name, val)| {
                        let fty = types.iter().find(|f| f.name == name.as_str()).map(|f| f.ty.clone());
                        (
                            name.clone(),
                            match fty {
                                Some(t) => val_to_json(&t, val, encoding),
                                None => untyped_val_to_json(val),
                            },
                        )
                    })
                    .collect(),
            )
        }
        (Type::Tuple(t), Val::Tuple(items)) => Json::Array(t.types().zip(items).map(|(t, i)| val_to_json(&t, i, encoding)).collect()),
        (Type::Option(o), Val::Option(inner)) => match inner {
            None => Json::Null,
            Some(i) => val_to_json(&o.ty(), i, encoding),
        },
        (Type::Result(r), Val::Result(res)) => {
            let (key, t, payload) = match res {
                Ok(p) => ("ok", r.ok(), p),
                Err(p) => ("err", r.err(), p),
            };
            let inner = match (t, payload) {
                (Some(t), Some(p)) => val_to_json(&t, p, encoding),
                _ => Json::Null,
            };
            let mut m = Map::new();
            m.insert(key.into(), inner);
            Json::Object(m)
        }
        (Type::Variant(var), Val::Variant(case, payload)) => match payload {
            None => Json::String(case.clone()),
            Some(p) => {
                let cty = var.cases().find(|c| c.name == case.as_str()).and_then(|c| c.ty);
                let mut m = Map::new();
                m.insert(
                    case.clone(),
                    match cty {
                        Some(t) => val_to_json(&t, p, encoding),
                        None => untyped_val_to_json(p),
                    },
                );
                Json::Object(m)
            }
        },
        (Type::Map(m), Val::Map(pairs)) => {
            let (kt, vt) = (m.key(), m.value());
            if pairs.iter().all(|(k, _)| matches!(k, Val::String(_))) {
                Json::Object(
                    pairs
                        .iter()
                        .map(|(k, v)| match k {
                            Val::String(s) => (s.clone(), val_to_json(&vt, v, encoding)),
                            _ => (String::new(), Json::Null),
                        })
                        .collect(),
                )
            } else {
                Json::Array(
                    pairs.iter().map(|(k, v)| Json::Array(vec![val_to_json(&kt, k, encoding), val_to_json(&vt, v, encoding)])).collect(),
                )
            }
        }
        _ => untyped_val_to_json(v),
    }
}

/// Scalars and anything whose type is not needed to write it.
pub fn untyped_val_to_json(v: &Val) -> Json {
    match v {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(x) => Json::from(*x),
        Val::U8(x) => Json::from(*x),
        Val::S16(x) => Json::from(*x),
        Val::U16(x) => Json::from(*x),
        Val::S32(x) => Json::from(*x),
        Val::U32(x) => Json::from(*x),
        Val::S64(x) => Json::from(*x),
        Val::U64(x) => Json::from(*x),
        Val::Float32(x) => float_to_json(*x as f64),
        Val::Float64(x) => float_to_json(*x),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => Json::Array(items.iter().map(untyped_val_to_json).collect()),
        Val::Record(fields) => Json::Object(fields.iter().map(|(k, v)| (k.clone(), untyped_val_to_json(v))).collect()),
        Val::Variant(case, None) | Val::Enum(case) => Json::String(case.clone()),
        Val::Variant(case, Some(p)) => {
            let mut m = Map::new();
            m.insert(case.clone(), untyped_val_to_json(p));
            Json::Object(m)
        }
        Val::Option(None) => Json::Null,
        Val::Option(Some(p)) => untyped_val_to_json(p),
        Val::Result(r) => {
            let (k, p) = match r {
                Ok(p) => ("ok", p),
                Err(p) => ("err", p),
            };
            let mut m = Map::new();
            m.insert(k.into(), p.as_ref().map(|p| untyped_val_to_json(p)).unwrap_or(Json::Null));
            Json::Object(m)
        }
        Val::Flags(names) => Json::Array(names.iter().map(|n| Json::String(n.clone())).collect()),
        Val::Map(pairs) => {
            Json::Array(pairs.iter().map(|(k, v)| Json::Array(vec![untyped_val_to_json(k), untyped_val_to_json(v)])).collect())
        }
        Val::Resource(_) => Json::String("<resource>".into()),
        Val::Future(_) => Json::String("<future>".into()),
        Val::Stream(_) => Json::String("<stream>".into()),
        Val::ErrorContext(_) => Json::String("<error-context>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tight loop gives exactly what the conversion per element gives,
    /// and stays out of the way where the dtype is not the element type.
    #[test]
    fn same_type_items_agree_with_the_general_conversion() {
        let floats: Vec<f64> = vec![-1.5, 0.0, f64::MAX, f64::MIN_POSITIVE, 3.25];
        let ints: Vec<i64> = vec![i64::MIN, -1, 0, 7, i64::MAX];
        let cases = [
            (Type::Float64, ArrayForm::from_f64(vec![5], &floats)),
            (Type::S64, ArrayForm::from_i64(vec![5], &ints)),
            (
                Type::U32,
                ArrayForm { dtype: Dtype::U32, shape: vec![3], data: [0u32, 7, u32::MAX].iter().flat_map(|x| x.to_le_bytes()).collect() },
            ),
            (
                Type::S32,
                ArrayForm { dtype: Dtype::I32, shape: vec![3], data: [i32::MIN, -7, 9].iter().flat_map(|x| x.to_le_bytes()).collect() },
            ),
            (Type::U8, ArrayForm { dtype: Dtype::U8, shape: vec![3], data: vec![0, 128, 255].into() }),
        ];
        for (ty, a) in cases {
            let n = a.len();
            for first in 0..n {
                let fast = same_type_items(&ty, &a, first, n - first).expect("same type");
                let slow: Vec<Val> = (first..n).map(|i| num_to_val(&ty, a.get(i), "x").expect("converts")).collect();
                assert_eq!(fast, slow, "{ty:?} from {first}");
            }
            assert!(same_type_items(&ty, &a, 1, n).is_none(), "past the end is not read");
        }
        // int32 data for an s64 element: the general path, not the loop.
        let a = ArrayForm { dtype: Dtype::I32, shape: vec![2], data: [1i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect() };
        assert!(same_type_items(&Type::S64, &a, 0, 2).is_none());
    }
}
