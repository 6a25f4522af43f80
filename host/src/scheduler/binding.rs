//! Binding a task's JSON arguments to a function's WIT parameters:
//! positional `args`, named `kwargs` (kebab-case or snake_case), `{"$ref":
//! name}` for an engine's global, and map/parallel `sequences` bound in
//! order to the parameters that `kwargs` leaves free.

use std::ops::Range;

use bytes::Bytes;

use serde_json::{Map, Value as Json};
use wasmtime::component::types::Type;
use wasmtime::component::Val;

use crate::engine::Arg;
use crate::runtime::ExportedFunction;
use crate::value::frames::{buffer_form, buffer_form_parts, read_in_place};
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

fn one_arg(f: &ExportedFunction, name: &str, ty: &Type, v: &Json, buffers: &[Bytes]) -> Result<Arg> {
    if let Some(global) = as_ref(v) {
        return Ok(Arg::Ref(global.to_string()));
    }
    if let Some(form) = v.as_object().and_then(|o| buffer_form(o, buffers)) {
        let form = form.map_err(|msg| type_error(f, format!("argument `{name}`: {msg}")))?;
        return whole_array(f, name, ty, form);
    }
    json_to_val(ty, v, name).map(Arg::Val).map_err(|e| type_error(f, e))
}

/// The arguments of one call from positional `args` and named `kwargs`.
pub fn bind_call(f: &ExportedFunction, args: &[Json], kwargs: &Map<String, Json>, buffers: &[Bytes]) -> Result<Vec<Arg>> {
    if args.len() > f.params.len() {
        return Err(type_error(f, format!("{} takes {} arguments but {} were given", f.name, f.params.len(), args.len())));
    }
    check_kwargs(f, kwargs)?;
    let mut out = Vec::with_capacity(f.params.len());
    for (i, (name, ty)) in f.params.iter().enumerate() {
        let named = lookup(kwargs, name);
        let arg = match (args.get(i), named) {
            (Some(_), Some(_)) => return Err(type_error(f, format!("argument `{name}` given both by position and by name"))),
            (Some(v), None) | (None, Some(v)) => one_arg(f, name, ty, v, buffers)?,
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

/// A whole argument given as an array form of a framed body's buffer:
/// handed to the engine as bytes when every element converts, else
/// converted now (its type errors found before any job is sent).
fn whole_array(f: &ExportedFunction, name: &str, ty: &Type, form: ArrayForm) -> Result<Arg> {
    if form.shape.is_empty() {
        return num_to_val(ty, form.get(0), name).map(Arg::Val).map_err(|e| type_error(f, e));
    }
    if always_converts(ty, form.dtype, form.shape.len()) {
        let rows = 0..form.shape[0];
        return Ok(Arg::Rows(std::sync::Arc::new(form), rows));
    }
    let mut offset = 0;
    array_to_val(ty, &form, &form.shape.clone(), &mut offset, name).map(Arg::Val).map_err(|e| type_error(f, e))
}

/// A sequence as a task sends it: a list of plain numbers of one kind
/// (integers that fit an `i64`, or floats) is parsed straight into a column,
/// 8 bytes an item instead of a `serde_json::Value`'s 32; anything else (a
/// list with other items, an array form, a wrong value) is kept as JSON.
/// Each item is converted from the same JSON number it was sent as, so the
/// results and type errors are those of the JSON list.
#[derive(Debug, Clone, PartialEq)]
pub enum SentSequence {
    Json(Json),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

impl SentSequence {
    /// Roughly how many items converting it touches (`TaskSpec::weight`).
    pub fn weight(&self) -> usize {
        match self {
            SentSequence::Ints(v) => v.len(),
            SentSequence::Floats(v) => v.len(),
            SentSequence::Json(Json::Array(items)) => items.len(),
            SentSequence::Json(Json::Object(o)) => match (o.get("data").and_then(Json::as_str), o.get("buffer")) {
                (Some(d), _) => d.len() / 8,
                // A buffer's items: it holds no more than the body's bytes.
                (None, Some(_)) => {
                    o.get("shape").and_then(Json::as_array).map_or(1, |d| d.iter().filter_map(Json::as_u64).product::<u64>() as usize)
                }
                (None, None) => 1,
            },
            SentSequence::Json(_) => 1,
        }
    }
}

impl From<Json> for SentSequence {
    fn from(v: Json) -> SentSequence {
        SentSequence::Json(v)
    }
}

impl serde::Serialize for SentSequence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SentSequence::Json(v) => v.serialize(s),
            SentSequence::Ints(v) => s.collect_seq(v),
            SentSequence::Floats(v) => s.collect_seq(v),
        }
    }
}

/// A list being read: a column while its items are numbers of one kind.
enum Column {
    Empty,
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Json(Vec<Json>),
}

impl Column {
    fn push(&mut self, v: Json) {
        let number = match &v {
            Json::Number(n) if n.is_f64() => n.as_f64().map(Err),
            Json::Number(n) => n.as_i64().map(Ok),
            _ => None,
        };
        match (&mut *self, number) {
            (Column::Empty, Some(Ok(i))) => *self = Column::Ints(vec![i]),
            (Column::Empty, Some(Err(x))) => *self = Column::Floats(vec![x]),
            (Column::Ints(col), Some(Ok(i))) => col.push(i),
            (Column::Floats(col), Some(Err(x))) => col.push(x),
            (Column::Json(items), _) => items.push(v),
            // Another kind of item: the list so far becomes JSON again.
            (_, _) => {
                let mut items = self.take_json();
                items.push(v);
                *self = Column::Json(items);
            }
        }
    }

    fn take_json(&mut self) -> Vec<Json> {
        match std::mem::replace(self, Column::Empty) {
            Column::Empty => Vec::new(),
            Column::Ints(col) => col.into_iter().map(Json::from).collect(),
            Column::Floats(col) => col.into_iter().map(Json::from).collect(),
            Column::Json(items) => items,
        }
    }
}

struct SentVisitor;

impl<'de> serde::de::Visitor<'de> for SentVisitor {
    type Value = SentSequence;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<SentSequence, A::Error> {
        let mut col = Column::Empty;
        while let Some(v) = seq.next_element::<Json>()? {
            col.push(v);
        }
        Ok(match col {
            Column::Ints(mut v) => {
                v.shrink_to_fit();
                SentSequence::Ints(v)
            }
            Column::Floats(mut v) => {
                v.shrink_to_fit();
                SentSequence::Floats(v)
            }
            mut other => SentSequence::Json(Json::Array(other.take_json())),
        })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<SentSequence, A::Error> {
        use serde::Deserialize;
        Json::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(SentSequence::Json)
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::String(v)))
    }

    fn visit_unit<E>(self) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::Null))
    }

    fn visit_none<E>(self) -> std::result::Result<SentSequence, E> {
        Ok(SentSequence::Json(Json::Null))
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<SentSequence, D::Error> {
        d.deserialize_any(SentVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for SentSequence {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SentSequence, D::Error> {
        d.deserialize_any(SentVisitor)
    }
}

/// A map/parallel sequence: a JSON list, a column of numbers, or an array
/// form (items along axis 0).
pub enum Sequence {
    Json(Vec<Json>),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
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

/// Whether the sequences of a `parallel` of `f` bind without touching an
/// item: each an array form of a framed body's buffer that is read in
/// place (`frames::read_in_place`), for a list parameter its elements
/// always convert to — the engines then read their rows where they lie
/// (`Arg::Rows`), so binding is a few slices whatever the arrays' size.
/// (`args` and `kwargs` are the caller's to weigh.)
pub fn rows_bind_in_place(f: &ExportedFunction, kwargs: &Map<String, Json>, sequences: &[SentSequence], buffers: &[Bytes]) -> bool {
    let free = free_params(f, kwargs);
    free.len() == sequences.len()
        && free.iter().zip(sequences).all(|((_, _, ty), seq)| {
            let SentSequence::Json(Json::Object(obj)) = seq else { return false };
            match buffer_form_parts(obj, buffers) {
                Some(Ok((dtype, shape, bytes))) => {
                    !shape.is_empty() && read_in_place(dtype, bytes) && always_converts(ty, dtype, shape.len())
                }
                _ => false,
            }
        })
}

impl Sequence {
    pub fn parse(v: SentSequence, index: usize, buffers: &[Bytes]) -> Result<Sequence> {
        let v = match v {
            SentSequence::Ints(col) => return Ok(Sequence::Ints(col)),
            SentSequence::Floats(col) => return Ok(Sequence::Floats(col)),
            SentSequence::Json(v) => v,
        };
        match v {
            Json::Array(items) => Ok(Sequence::Json(items)),
            Json::Object(obj) => match buffer_form(&obj, buffers).or_else(|| ArrayForm::from_json(&obj)) {
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
            Sequence::Ints(col) => col.len(),
            Sequence::Floats(col) => col.len(),
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
            // The JSON number the item was sent as (a number is never a `$ref`).
            Sequence::Ints(col) => json_to_val(ty, &Json::from(col[i]), path).map(Arg::Val),
            Sequence::Floats(col) => json_to_val(ty, &Json::from(col[i]), path).map(Arg::Val),
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
            Sequence::Ints(col) => json_to_val(ty, &Json::Array(col[range].iter().map(|&i| Json::from(i)).collect()), path).map(Arg::Val),
            Sequence::Floats(col) => json_to_val(ty, &Json::Array(col[range].iter().map(|&x| Json::from(x)).collect()), path).map(Arg::Val),
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
fn constants(f: &ExportedFunction, kwargs: &Map<String, Json>, buffers: &[Bytes]) -> Result<Vec<Option<Arg>>> {
    check_kwargs(f, kwargs)?;
    f.params.iter().map(|(n, t)| lookup(kwargs, n).map(|v| one_arg(f, n, t, v, buffers)).transpose()).collect()
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
    pub fn new(f: &ExportedFunction, seqs: Vec<Sequence>, kwargs: &Map<String, Json>, buffers: &[Bytes]) -> Result<MapCalls> {
        let consts = constants(f, kwargs, buffers)?;
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
pub fn bind_map(f: &ExportedFunction, seqs: Vec<Sequence>, kwargs: &Map<String, Json>, buffers: &[Bytes]) -> Result<Vec<Vec<Arg>>> {
    let calls = MapCalls::new(f, seqs, kwargs, buffers)?;
    calls.calls(0..calls.len())
}

/// One call per chunk: each free (list) parameter gets its chunk of its sequence.
pub fn bind_parallel(
    f: &ExportedFunction,
    seqs: &[Sequence],
    kwargs: &Map<String, Json>,
    chunks: &[Range<usize>],
    buffers: &[Bytes],
) -> Result<Vec<Vec<Arg>>> {
    let consts = constants(f, kwargs, buffers)?;
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

/// A framed body's buffers must each be named by an array form of the
/// task (one sent for nothing is most likely a client's mistake).
pub fn all_buffers_named(spec: &super::TaskSpec, buffers: &[Bytes]) -> Result<()> {
    let mut named = vec![false; buffers.len()];
    let sequences = spec.sequences.iter().filter_map(|s| match s {
        SentSequence::Json(v) => Some(v),
        SentSequence::Ints(_) | SentSequence::Floats(_) => None,
    });
    crate::value::frames::named_buffers(spec.args.iter().chain(spec.kwargs.values()).chain(sequences), &mut named);
    match named.iter().position(|n| !n) {
        Some(k) => Err(Error::BadRequest(format!("framed body: buffer {k} is named by no array form of the task"))),
        None => Ok(()),
    }
}

/// The shortest sequence's length (what a map runs over).
pub fn common_len(seqs: &[Sequence]) -> usize {
    seqs.iter().map(Sequence::len).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aligned_buffers_for_lists_their_items_fit_bind_in_place() {
        let runtime = crate::runtime::Runtime::new(crate::runtime::Limits::default()).expect("runtime");
        let (component, _) = runtime.components.add("mandelbrot", crate::examples::MANDELBROT_BYTES).expect("component");
        // mandel-chunk(xs: list<f64>, ys: list<f64>, max-iters: u32) -> list<u32>
        let f = component.functions.iter().find(|f| f.name == "mandel-chunk").expect("mandel-chunk");
        let kwargs: Map<String, Json> = serde_json::from_value(serde_json::json!({"max-iters": 80})).expect("kwargs");
        let body = Bytes::from(vec![0u8; 8 * 100 + 8]);
        let aligned = |at: usize| {
            let b = body.slice(at..at + 8 * 50);
            assert_eq!((b.as_ptr() as usize) % 8, at % 8);
            b
        };
        let (a, b, odd) = (aligned(0), aligned(8 * 50), aligned(1));
        let form = |dtype: &str, k: usize| SentSequence::Json(serde_json::json!({"dtype": dtype, "shape": [50], "buffer": k}));
        let f64s = || vec![form("float64", 0), form("float64", 1)];
        assert!(rows_bind_in_place(f, &kwargs, &f64s(), &[a.clone(), b.clone()]));
        // One buffer not aligned for float64: it is copied when bound.
        assert!(!rows_bind_in_place(f, &kwargs, &f64s(), &[a.clone(), odd]));
        // int64 items do not all fit an f64: converted item by item.
        assert!(!rows_bind_in_place(f, &kwargs, &[form("float64", 0), form("int64", 1)], &[a.clone(), b.clone()]));
        // A buffer that is not there, base64 data, a list.
        assert!(!rows_bind_in_place(f, &kwargs, &[form("float64", 0), form("float64", 2)], &[a.clone(), b.clone()]));
        let b64 = SentSequence::Json(serde_json::json!({"dtype": "float64", "data": "AAAAAAAA8D8="}));
        assert!(!rows_bind_in_place(f, &kwargs, &[form("float64", 0), b64], &[a.clone(), b.clone()]));
        assert!(!rows_bind_in_place(f, &kwargs, &[form("float64", 0), SentSequence::Floats(vec![1.0])], &[a.clone(), b.clone()]));
        // max-iters not bound by kwargs: three free parameters for two sequences.
        assert!(!rows_bind_in_place(f, &Map::new(), &f64s(), &[a, b]));
    }

    #[test]
    fn lists_of_one_kind_of_number_become_columns_and_spell_the_same_json() {
        let cases = [
            ("[1, -2, 9223372036854775807, -9223372036854775808]", "ints"),
            ("[0.5, -1e300, 2.0]", "floats"),
            ("[1, 2.0]", "json"),
            ("[1.5, 2]", "json"),
            ("[18446744073709551615]", "json"),
            ("[1, {\"$ref\": \"a\"}]", "json"),
            ("[[1, 2], [3]]", "json"),
            ("[]", "json"),
            ("{\"data\": \"AAAAAAAA8D8=\", \"dtype\": \"f64\", \"shape\": [1]}", "json"),
            ("7", "json"),
            ("null", "json"),
            ("\"text\"", "json"),
        ];
        for (text, kind) in cases {
            let sent: SentSequence = serde_json::from_str(text).expect(text);
            let got = match &sent {
                SentSequence::Ints(_) => "ints",
                SentSequence::Floats(_) => "floats",
                SentSequence::Json(_) => "json",
            };
            assert_eq!(got, kind, "{text}");
            let json: Json = serde_json::from_str(text).expect(text);
            // Through a Value too (the body parser's retry path).
            assert_eq!(serde_json::from_value::<SentSequence>(json.clone()).expect(text), sent, "{text}");
            assert_eq!(serde_json::to_value(&sent).expect(text), json, "{text}");
            // Item by item, the very JSON numbers (kinds included) of the list.
            let items: Vec<Json> = match Sequence::parse(sent, 0, &[]) {
                Ok(Sequence::Ints(col)) => col.into_iter().map(Json::from).collect(),
                Ok(Sequence::Floats(col)) => col.into_iter().map(Json::from).collect(),
                Ok(Sequence::Json(items)) => items,
                Ok(Sequence::Array(_)) | Err(_) => continue,
            };
            let want = json.as_array().cloned().unwrap_or_default();
            for (a, b) in items.iter().zip(&want) {
                assert_eq!((a.is_i64(), a.is_u64(), a.is_f64()), (b.is_i64(), b.is_u64(), b.is_f64()), "{text}: {a} vs {b}");
            }
            assert_eq!(items, want, "{text}");
        }
    }
}
