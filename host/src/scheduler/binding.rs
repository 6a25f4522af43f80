//! Binding a task's JSON arguments to a function's WIT parameters:
//! positional `args`, named `kwargs` (kebab-case or snake_case), `{"$ref":
//! name}` for an engine's global, and map/parallel `sequences` bound in
//! order to the parameters that `kwargs` leaves free.

use std::ops::Range;

use serde_json::{Map, Value as Json};
use wasmtime::component::types::Type;
use wasmtime::component::Val;

use crate::engine::Arg;
use crate::runtime::ExportedFunction;
use crate::value::{array_to_val, json_to_val, lookup, num_to_val, ArrayForm};
use crate::value::{signature, wit_name_matches, wit_type};
use crate::{Error, Result};

fn type_error(f: &ExportedFunction, msg: impl std::fmt::Display) -> Error {
    Error::TypeMismatch(format!("{msg} (in {}: {})", f.name, signature(&f.params, &f.results)))
}

fn as_ref(v: &Json) -> Option<&str> {
    let obj = v.as_object()?;
    if obj.len() == 1 {
        obj.get("$ref")?.as_str()
    } else {
        None
    }
}

fn one_arg(f: &ExportedFunction, name: &str, ty: &Type, v: &Json) -> Result<Arg> {
    if let Some(global) = as_ref(v) {
        return Ok(Arg::Ref(global.to_string()));
    }
    json_to_val(ty, v, name).map(Arg::Val).map_err(|e| type_error(f, e))
}

/// The arguments of one call from positional `args` and named `kwargs`.
pub fn bind_call(f: &ExportedFunction, args: &[Json], kwargs: &Map<String, Json>) -> Result<Vec<Arg>> {
    if args.len() > f.params.len() {
        return Err(type_error(f, format!("{} takes {} arguments but {} were given", f.name, f.params.len(), args.len())));
    }
    check_kwargs(f, kwargs)?;
    let mut out = Vec::with_capacity(f.params.len());
    for (i, (name, ty)) in f.params.iter().enumerate() {
        let named = lookup(kwargs, name);
        let arg = match (args.get(i), named) {
            (Some(_), Some(_)) => return Err(type_error(f, format!("argument `{name}` given both by position and by name"))),
            (Some(v), None) | (None, Some(v)) => one_arg(f, name, ty, v)?,
            (None, None) if matches!(ty, Type::Option(_)) => Arg::Val(Val::Option(None)),
            (None, None) => return Err(type_error(f, format!("missing argument `{name}` ({})", wit_type(ty)))),
        };
        out.push(arg);
    }
    Ok(out)
}

fn check_kwargs(f: &ExportedFunction, kwargs: &Map<String, Json>) -> Result<()> {
    for k in kwargs.keys() {
        if !f.params.iter().any(|(n, _)| wit_name_matches(n, k)) {
            let names: Vec<&str> = f.params.iter().map(|(n, _)| n.as_str()).collect();
            return Err(type_error(f, format!("unknown argument `{}`; parameters are {}", crate::error::cut(k), names.join(", "))));
        }
    }
    Ok(())
}

/// A map/parallel sequence: a JSON list or an array form (items along axis 0).
pub enum Sequence {
    Json(Vec<Json>),
    Array(std::sync::Arc<ArrayForm>),
}

/// Can every element of `dtype` become a `ty` without loss or range error,
/// with `depth` list levels between? Then rows may be converted lazily.
fn always_converts(ty: &Type, dtype: crate::value::Dtype, depth: usize) -> bool {
    use crate::value::Dtype as D;
    match (ty, depth) {
        (Type::List(l), d) if d > 0 => always_converts(&l.ty(), dtype, d - 1),
        (Type::Float64, 0) => !matches!(dtype, D::I64 | D::U64 | D::Bool),
        (Type::S64, 0) => !matches!(dtype, D::F64 | D::F32 | D::U64 | D::Bool),
        (Type::S32, 0) => matches!(dtype, D::I32 | D::I16 | D::I8 | D::U16 | D::U8),
        (Type::U32, 0) => matches!(dtype, D::U32 | D::U16 | D::U8),
        (Type::U8, 0) => matches!(dtype, D::U8),
        _ => false,
    }
}

impl Sequence {
    pub fn parse(v: Json, index: usize) -> Result<Sequence> {
        match v {
            Json::Array(items) => Ok(Sequence::Json(items)),
            Json::Object(obj) => match ArrayForm::from_json(&obj) {
                Some(Ok(a)) if !a.shape.is_empty() => Ok(Sequence::Array(std::sync::Arc::new(a))),
                Some(Ok(_)) => Err(Error::BadRequest(format!("sequences[{index}]: a 0-dimensional array is not a sequence"))),
                Some(Err(msg)) => Err(Error::BadRequest(format!("sequences[{index}]: {msg}"))),
                None => Err(Error::BadRequest(format!("sequences[{index}]: expected a list or an array form, got an object"))),
            },
            other => Err(Error::BadRequest(format!(
                "sequences[{index}]: expected a list or an array form, got {}",
                crate::value::describe_json(&other)
            ))),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Sequence::Json(items) => items.len(),
            Sequence::Array(a) => a.shape[0],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item `i` as a value of type `ty`.
    fn item(&self, i: usize, ty: &Type, path: &str) -> std::result::Result<Arg, crate::value::ConvertError> {
        match self {
            Sequence::Json(items) => match as_ref(&items[i]) {
                Some(g) => Ok(Arg::Ref(g.to_string())),
                None => json_to_val(ty, &items[i], path).map(Arg::Val),
            },
            Sequence::Array(a) if a.shape.len() == 1 => num_to_val(ty, a.get(i), path).map(Arg::Val),
            Sequence::Array(a) if always_converts(ty, a.dtype, a.shape.len() - 1) => Ok(Arg::Row(a.clone(), i)),
            Sequence::Array(a) => {
                let row: usize = a.shape[1..].iter().product();
                let mut offset = i * row;
                array_to_val(ty, a, &a.shape[1..], &mut offset, path).map(Arg::Val)
            }
        }
    }

    /// Items `range` as one list value of type `ty` (for `parallel`).
    fn chunk(&self, range: Range<usize>, ty: &Type, path: &str) -> std::result::Result<Arg, crate::value::ConvertError> {
        match self {
            Sequence::Json(items) => json_to_val(ty, &Json::Array(items[range].to_vec()), path).map(Arg::Val),
            // Converted by the engine that runs the call (in parallel).
            Sequence::Array(a) if always_converts(ty, a.dtype, a.shape.len()) => Ok(Arg::Rows(a.clone(), range)),
            Sequence::Array(a) => {
                let mut dims = a.shape.clone();
                dims[0] = range.len();
                let row: usize = a.shape[1..].iter().product();
                let mut offset = range.start * row;
                array_to_val(ty, a, &dims, &mut offset, path).map(Arg::Val)
            }
        }
    }
}

/// The free parameters of `f` once `kwargs` are bound, with their positions.
fn free_params<'a>(f: &'a ExportedFunction, kwargs: &Map<String, Json>) -> Vec<(usize, &'a str, &'a Type)> {
    f.params.iter().enumerate().filter(|(_, (n, _))| lookup(kwargs, n).is_none()).map(|(i, (n, t))| (i, n.as_str(), t)).collect()
}

/// Constant kwargs bound once, in parameter order (None where a sequence binds).
fn constants(f: &ExportedFunction, kwargs: &Map<String, Json>) -> Result<Vec<Option<Arg>>> {
    check_kwargs(f, kwargs)?;
    f.params.iter().map(|(n, t)| lookup(kwargs, n).map(|v| one_arg(f, n, t, v)).transpose()).collect()
}

fn check_arity(f: &ExportedFunction, free: &[(usize, &str, &Type)], seqs: &[Sequence]) -> Result<()> {
    if free.len() != seqs.len() {
        let names: Vec<&str> = free.iter().map(|(_, n, _)| *n).collect();
        return Err(type_error(
            f,
            format!(
                "{} sequences given for {} free parameters ({})",
                seqs.len(),
                free.len(),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ),
        ));
    }
    Ok(())
}

/// A map's calls, bound from its sequences when asked: the i-th call gets
/// the i-th item of every sequence, and the constants from `kwargs`.
pub struct MapCalls {
    f: ExportedFunction,
    consts: Vec<Option<Arg>>,
    /// The free parameters (position, name, type), in sequence order.
    free: Vec<(usize, String, Type)>,
    seqs: Vec<Sequence>,
    len: usize,
}

impl MapCalls {
    /// Constants bound and arity checked; items not yet looked at.
    pub fn new(f: &ExportedFunction, seqs: Vec<Sequence>, kwargs: &Map<String, Json>) -> Result<MapCalls> {
        let consts = constants(f, kwargs)?;
        let free = free_params(f, kwargs);
        check_arity(f, &free, &seqs)?;
        let free = free.into_iter().map(|(pos, name, ty)| (pos, name.to_string(), ty.clone())).collect();
        let len = common_len(&seqs);
        Ok(MapCalls { f: f.clone(), consts, free, seqs, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn arg(&self, i: usize, name: &str, ty: &Type, seq: &Sequence) -> Result<Arg> {
        seq.item(i, ty, "").map_err(|e| type_error(&self.f, e.within(&format!("{name}[{i}]"))))
    }

    /// Every item converts: the first that does not is the task's type
    /// error, before anything runs (items in order, then sequences).
    pub fn check(&self) -> Result<()> {
        for i in 0..self.len {
            for ((_, name, ty), seq) in self.free.iter().zip(&self.seqs) {
                self.arg(i, name, ty, seq)?;
            }
        }
        Ok(())
    }

    /// The arguments of call `i`.
    pub fn call(&self, i: usize) -> Result<Vec<Arg>> {
        let mut args: Vec<Option<Arg>> = self.consts.clone();
        for ((pos, name, ty), seq) in self.free.iter().zip(&self.seqs) {
            args[*pos] = Some(self.arg(i, name, ty, seq)?);
        }
        Ok(args.into_iter().flatten().collect())
    }

    /// The calls of items `range`.
    pub fn calls(&self, range: Range<usize>) -> Result<Vec<Vec<Arg>>> {
        range.map(|i| self.call(i)).collect()
    }
}

/// One call per item: the i-th call gets the i-th item of every sequence.
pub fn bind_map(f: &ExportedFunction, seqs: Vec<Sequence>, kwargs: &Map<String, Json>) -> Result<Vec<Vec<Arg>>> {
    let calls = MapCalls::new(f, seqs, kwargs)?;
    calls.calls(0..calls.len())
}

/// One call per chunk: each free (list) parameter gets its chunk of its sequence.
pub fn bind_parallel(
    f: &ExportedFunction,
    seqs: &[Sequence],
    kwargs: &Map<String, Json>,
    chunks: &[Range<usize>],
) -> Result<Vec<Vec<Arg>>> {
    let consts = constants(f, kwargs)?;
    let free = free_params(f, kwargs);
    check_arity(f, &free, seqs)?;
    for (_, name, ty) in &free {
        if !matches!(ty, Type::List(_)) {
            return Err(type_error(f, format!("parallel needs list parameters, but `{name}` is {}", wit_type(ty))));
        }
    }
    chunks
        .iter()
        .map(|range| {
            let mut args = consts.clone();
            for ((pos, name, ty), seq) in free.iter().zip(seqs) {
                args[*pos] = Some(seq.chunk(range.clone(), ty, name).map_err(|e| type_error(f, e))?);
            }
            Ok(args.into_iter().flatten().collect())
        })
        .collect()
}

/// The shortest sequence's length (what a map runs over).
pub fn common_len(seqs: &[Sequence]) -> usize {
    seqs.iter().map(Sequence::len).min().unwrap_or(0)
}
