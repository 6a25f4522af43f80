//! An engine's globals: what push/pull/scatter/gather and the guest's
//! `wasmpar:engine/namespace` import read and write.
//!
//! Invariants:
//! - The namespace lives in the engine's `Store` data, outside every
//!   component instance: it survives traps and re-instantiation.
//! - Values are flat (the WIT `value` variant); big arrays are held as
//!   `Arc`s of native numbers, so a push to N engines shares one buffer and
//!   never goes through JSON text inside the host.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::bindings::wasmpar::engine::namespace::{F64Array, S64Array, Value as WitValue};
use crate::value::{float_to_json, ArrayForm, Dtype, Encoding, JsonChunks};

#[derive(Debug, Clone, PartialEq)]
pub enum NsValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Arc<Vec<u8>>),
    IntList(Arc<Vec<i64>>),
    FloatList(Arc<Vec<f64>>),
    TextList(Arc<Vec<String>>),
    FloatArray {
        shape: Vec<usize>,
        data: Arc<Vec<f64>>,
    },
    IntArray {
        shape: Vec<usize>,
        data: Arc<Vec<i64>>,
    },
    /// Anything deeper, as JSON text.
    Json(String),
}

/// Shares a namespace's byte buffer with an HTTP body without copying it.
struct ArcBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Shares a namespace's numbers with an HTTP body as their little-endian
/// bytes, without copying them (only built on little-endian hosts).
#[cfg(target_endian = "little")]
struct ArcLe<T>(Arc<Vec<T>>);

#[cfg(target_endian = "little")]
impl<T: Copy> AsRef<[u8]> for ArcLe<T> {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `T` is f64 or i64 (plain numbers without padding); on a
        // little-endian host their memory is exactly their LE bytes, and the
        // Arc keeps it alive as long as the body holds this owner.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), std::mem::size_of_val(self.0.as_slice())) }
    }
}

#[derive(Default)]
pub struct Namespace {
    values: BTreeMap<String, NsValue>,
}

impl Namespace {
    pub fn get(&self, name: &str) -> Option<&NsValue> {
        self.values.get(name)
    }

    pub fn set(&mut self, name: String, value: NsValue) {
        self.values.insert(name, value);
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.values.remove(name).is_some()
    }

    pub fn names(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Rectangular nested lists of numbers: (shape, all integers?).
fn nested_shape(v: &Json) -> Option<(Vec<usize>, bool)> {
    match v {
        // A u64 beyond i64 fits neither list kind exactly: the caller keeps
        // the whole value as JSON text instead.
        Json::Number(n) if n.is_u64() && !n.is_i64() => None,
        Json::Number(n) => Some((vec![], n.is_i64())),
        Json::Array(items) => {
            let first = items.first()?;
            let (inner, mut ints) = nested_shape(first)?;
            for item in &items[1..] {
                let (s, i) = nested_shape(item)?;
                if s != inner {
                    return None;
                }
                ints &= i;
            }
            let mut shape = vec![items.len()];
            shape.extend(inner);
            Some((shape, ints))
        }
        _ => None,
    }
}

/// Every integer in `v` is exactly an f64 (beyond ±2^53 most are not).
fn exact_as_floats(v: &Json) -> bool {
    match v {
        Json::Array(items) => items.iter().all(exact_as_floats),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => (i as f64) as i128 == i as i128,
            (None, Some(u)) => (u as f64) as u128 == u as u128,
            (None, None) => true,
        },
        _ => true,
    }
}

fn flatten_numbers(v: &Json, out_f: &mut Vec<f64>, out_i: &mut Vec<i64>, ints: bool) {
    match v {
        Json::Array(items) => items.iter().for_each(|i| flatten_numbers(i, out_f, out_i, ints)),
        Json::Number(n) if ints => out_i.push(n.as_i64().unwrap_or_default()),
        Json::Number(n) => out_f.push(n.as_f64().unwrap_or_default()),
        _ => {}
    }
}

impl NsValue {
    /// The value a JSON push stands for (see the WIT `value` variant).
    pub fn from_json(v: &Json) -> Result<NsValue, String> {
        Ok(match v {
            Json::Null => NsValue::Null,
            Json::Bool(b) => NsValue::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => NsValue::Int(i),
                // Beyond i64 (u64 up to 2^64-1): kept exactly as JSON text,
                // never rounded through f64.
                None if n.is_u64() => NsValue::Json(n.to_string()),
                None => NsValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => NsValue::Text(s.clone()),
            Json::Array(items) if items.is_empty() => NsValue::IntList(Arc::new(Vec::new())),
            Json::Array(items) if items.iter().all(Json::is_string) => {
                NsValue::TextList(Arc::new(items.iter().filter_map(|s| s.as_str().map(String::from)).collect()))
            }
            Json::Array(_) => match nested_shape(v) {
                // Integers mixed with floats become floats: only when each is
                // exact as an f64, else the whole value stays JSON text.
                Some((_, false)) if !exact_as_floats(v) => NsValue::Json(v.to_string()),
                Some((shape, ints)) => {
                    let (mut f, mut i) = (Vec::new(), Vec::new());
                    flatten_numbers(v, &mut f, &mut i, ints);
                    match (shape.len(), ints) {
                        (1, true) => NsValue::IntList(Arc::new(i)),
                        (1, false) => NsValue::FloatList(Arc::new(f)),
                        (_, true) => NsValue::IntArray { shape, data: Arc::new(i) },
                        (_, false) => NsValue::FloatArray { shape, data: Arc::new(f) },
                    }
                }
                None => NsValue::Json(v.to_string()),
            },
            Json::Object(obj) => match ArrayForm::f64_from_json(obj) {
                // float64, the bulk case: decoded straight into the shared buffer.
                Some(Ok((shape, data))) => match shape.len() {
                    0 => NsValue::Float(data.first().copied().unwrap_or(f64::NAN)),
                    1 => NsValue::FloatList(Arc::new(data)),
                    _ => NsValue::FloatArray { shape, data: Arc::new(data) },
                },
                Some(Err(msg)) => return Err(msg),
                None => return NsValue::from_json_object(v, obj),
            },
        })
    }

    /// The value of an object whose `data` field was held apart as text
    /// (`fields` are the others): exactly what [`NsValue::from_json`] gives
    /// for the whole object, without copying a float64 form's base64.
    pub fn from_form_parts(mut fields: serde_json::Map<String, Json>, data: std::borrow::Cow<'_, str>) -> Result<NsValue, String> {
        match ArrayForm::f64_from_parts(&fields, &data) {
            Some(Ok((shape, data))) => Ok(match shape.len() {
                0 => NsValue::Float(data.first().copied().unwrap_or(f64::NAN)),
                1 => NsValue::FloatList(Arc::new(data)),
                _ => NsValue::FloatArray { shape, data: Arc::new(data) },
            }),
            Some(Err(msg)) => Err(msg),
            None => {
                fields.insert("data".into(), Json::String(data.into_owned()));
                NsValue::from_json(&Json::Object(fields))
            }
        }
    }

    /// What [`NsValue::from_form_parts`] gives when `data` is the base64 of
    /// `bytes`, decoded already as the body arrived (`api/push_stream.rs`):
    /// the same checks in the same order, a float64 form's buffer kept
    /// without a copy; anything but a plain form (other fields, no or an
    /// unknown dtype) takes the general path with the text re-encoded.
    pub fn from_form_decoded(fields: serde_json::Map<String, Json>, bytes: crate::value::b64stream::Decoded) -> Result<NsValue, String> {
        let plain = fields.keys().all(|k| matches!(k.as_str(), "dtype" | "shape"));
        let dtype = fields.get("dtype").and_then(Json::as_str).and_then(Dtype::parse);
        match dtype.filter(|_| plain) {
            Some(Dtype::F64) if bytes.len().is_multiple_of(8) => {
                let shape = crate::value::array::checked_shape(&fields, Dtype::F64, bytes.len())?;
                let data = bytes.into_f64s().unwrap_or_default();
                Ok(match shape.len() {
                    0 => NsValue::Float(data.first().copied().unwrap_or(f64::NAN)),
                    1 => NsValue::FloatList(Arc::new(data)),
                    _ => NsValue::FloatArray { shape, data: Arc::new(data) },
                })
            }
            Some(dtype) => {
                let shape = crate::value::array::checked_shape(&fields, dtype, bytes.len())?;
                Ok(NsValue::from_array(ArrayForm { dtype, shape, data: bytes.as_bytes().to_vec().into() }))
            }
            None => {
                let text = String::from_utf8(bytes.to_base64()).map_err(|e| e.to_string())?;
                NsValue::from_form_parts(fields, std::borrow::Cow::Owned(text))
            }
        }
    }

    fn from_json_object(v: &Json, obj: &serde_json::Map<String, Json>) -> Result<NsValue, String> {
        Ok(match ArrayForm::from_json(obj) {
            Some(Ok(a)) => NsValue::from_array(a),
            Some(Err(msg)) => return Err(msg),
            None => NsValue::Json(v.to_string()),
        })
    }

    pub fn from_array(a: ArrayForm) -> NsValue {
        if a.shape.is_empty() {
            // A 0-dimensional array is a scalar.
            return match a.get(0) {
                crate::value::Num::F(f) => NsValue::Float(f),
                crate::value::Num::I(i) => NsValue::Int(i),
                crate::value::Num::U(u) => i64::try_from(u).map_or(NsValue::Float(u as f64), NsValue::Int),
                crate::value::Num::B(b) => NsValue::Bool(b),
            };
        }
        let one_d = a.shape.len() == 1;
        if a.dtype == Dtype::U8 && one_d {
            return NsValue::Bytes(Arc::new(Vec::from(a.data)));
        }
        if a.dtype.is_float() {
            let data = Arc::new(a.to_f64());
            return if one_d { NsValue::FloatList(data) } else { NsValue::FloatArray { shape: a.shape, data } };
        }
        match a.to_i64() {
            Some(ints) => {
                let data = Arc::new(ints);
                if one_d {
                    NsValue::IntList(data)
                } else {
                    NsValue::IntArray { shape: a.shape, data }
                }
            }
            // uint64 beyond i64: keep the values exactly, as floats would not.
            None => NsValue::Json(a.to_nested_json().to_string()),
        }
    }

    pub fn to_json(&self, encoding: Encoding) -> Json {
        let arr = encoding == Encoding::Array;
        match self {
            NsValue::Null => Json::Null,
            NsValue::Bool(b) => Json::Bool(*b),
            NsValue::Int(i) => Json::from(*i),
            NsValue::Float(f) => float_to_json(*f),
            NsValue::Text(s) => Json::String(s.clone()),
            NsValue::Bytes(b) => ArrayForm { dtype: Dtype::U8, shape: vec![b.len()], data: bytes::Bytes::copy_from_slice(b) }.to_json(),
            NsValue::IntList(v) if arr => ArrayForm::from_i64(vec![v.len()], v).to_json(),
            NsValue::FloatList(v) if arr => ArrayForm::from_f64(vec![v.len()], v).to_json(),
            NsValue::IntList(v) => Json::Array(v.iter().map(|&i| Json::from(i)).collect()),
            NsValue::FloatList(v) => Json::Array(v.iter().map(|&f| float_to_json(f)).collect()),
            NsValue::TextList(v) => Json::Array(v.iter().map(|s| Json::String(s.clone())).collect()),
            NsValue::FloatArray { shape, data } => {
                let a = ArrayForm::from_f64(shape.clone(), data);
                if arr {
                    a.to_json()
                } else {
                    a.to_nested_json()
                }
            }
            NsValue::IntArray { shape, data } => {
                let a = ArrayForm::from_i64(shape.clone(), data);
                if arr {
                    a.to_json()
                } else {
                    a.to_nested_json()
                }
            }
            NsValue::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.clone())),
        }
    }

    /// Writes what [`NsValue::to_json`] gives, as JSON text, into `out`:
    /// array forms straight from the value's numbers, their base64 encoded
    /// once per buffer however many engines share it.
    pub fn write_json(&self, encoding: Encoding, out: &mut JsonChunks) {
        // Bytes always answer as an array form; numbers when asked. The
        // raw bytes share the value's buffer on little-endian hosts.
        let as_form = encoding == Encoding::Array || matches!(self, NsValue::Bytes(_));
        match self.to_raw() {
            Some((dtype, shape, bytes)) if as_form => out.array_form(dtype, &shape, bytes),
            _ => out.json(&self.to_json(encoding)),
        }
    }

    /// Items along the first axis (for scatter and gather), or `None` for scalars.
    pub fn rows(&self) -> Option<usize> {
        Some(match self {
            NsValue::Bytes(v) => v.len(),
            NsValue::IntList(v) => v.len(),
            NsValue::FloatList(v) => v.len(),
            NsValue::TextList(v) => v.len(),
            NsValue::FloatArray { shape, .. } | NsValue::IntArray { shape, .. } => shape.first().copied().unwrap_or(0),
            _ => return None,
        })
    }

    /// Rows `start..end` along the first axis, as a value of the same kind.
    pub fn slice(&self, start: usize, end: usize) -> Option<NsValue> {
        if start > end || end > self.rows()? {
            return None;
        }
        if let NsValue::FloatArray { shape, .. } | NsValue::IntArray { shape, .. } = self {
            if shape.is_empty() {
                return None;
            }
        }
        let row = |shape: &[usize]| shape.iter().skip(1).product::<usize>();
        Some(match self {
            NsValue::Bytes(v) => NsValue::Bytes(Arc::new(v[start..end].to_vec())),
            NsValue::IntList(v) => NsValue::IntList(Arc::new(v[start..end].to_vec())),
            NsValue::FloatList(v) => NsValue::FloatList(Arc::new(v[start..end].to_vec())),
            NsValue::TextList(v) => NsValue::TextList(Arc::new(v[start..end].to_vec())),
            NsValue::FloatArray { shape, data } => {
                let r = row(shape);
                let mut s = shape.clone();
                s[0] = end - start;
                NsValue::FloatArray { shape: s, data: Arc::new(data[start * r..end * r].to_vec()) }
            }
            NsValue::IntArray { shape, data } => {
                let r = row(shape);
                let mut s = shape.clone();
                s[0] = end - start;
                NsValue::IntArray { shape: s, data: Arc::new(data[start * r..end * r].to_vec()) }
            }
            _ => return None,
        })
    }

    /// The raw little-endian bytes of a numeric list or array, with its
    /// dtype and shape; `None` for other values.
    pub fn to_raw(&self) -> Option<(Dtype, Vec<usize>, bytes::Bytes)> {
        #[cfg(target_endian = "little")]
        fn le<T: Copy + Send + Sync + 'static, const N: usize>(xs: &Arc<Vec<T>>, _: impl Fn(T) -> [u8; N]) -> bytes::Bytes {
            bytes::Bytes::from_owner(ArcLe(xs.clone()))
        }
        #[cfg(not(target_endian = "little"))]
        fn le<T: Copy, const N: usize>(xs: &Arc<Vec<T>>, f: impl Fn(T) -> [u8; N]) -> bytes::Bytes {
            let mut out = vec![0u8; xs.len() * N];
            for (dst, &x) in out.chunks_exact_mut(N).zip(xs.iter()) {
                dst.copy_from_slice(&f(x));
            }
            out.into()
        }
        Some(match self {
            NsValue::Bytes(b) => (Dtype::U8, vec![b.len()], bytes::Bytes::from_owner(ArcBytes(b.clone()))),
            NsValue::FloatList(v) => (Dtype::F64, vec![v.len()], le(v, f64::to_le_bytes)),
            NsValue::IntList(v) => (Dtype::I64, vec![v.len()], le(v, i64::to_le_bytes)),
            NsValue::FloatArray { shape, data } => (Dtype::F64, shape.clone(), le(data, f64::to_le_bytes)),
            NsValue::IntArray { shape, data } => (Dtype::I64, shape.clone(), le(data, i64::to_le_bytes)),
            _ => return None,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            NsValue::Null => "null",
            NsValue::Bool(_) => "boolean",
            NsValue::Int(_) => "int",
            NsValue::Float(_) => "float",
            NsValue::Text(_) => "text",
            NsValue::Bytes(_) => "bytes",
            NsValue::IntList(_) => "int-list",
            NsValue::FloatList(_) => "float-list",
            NsValue::TextList(_) => "text-list",
            NsValue::FloatArray { .. } => "float-array",
            NsValue::IntArray { .. } => "int-array",
            NsValue::Json(_) => "json",
        }
    }

    pub fn to_wit(&self) -> WitValue {
        let shape64 = |s: &[usize]| s.iter().map(|&d| d as u64).collect();
        match self {
            NsValue::Null => WitValue::Null,
            NsValue::Bool(b) => WitValue::Boolean(*b),
            NsValue::Int(i) => WitValue::Int(*i),
            NsValue::Float(f) => WitValue::Float(*f),
            NsValue::Text(s) => WitValue::Text(s.clone()),
            NsValue::Bytes(b) => WitValue::Bytes(b.to_vec()),
            NsValue::IntList(v) => WitValue::IntList(v.to_vec()),
            NsValue::FloatList(v) => WitValue::FloatList(v.to_vec()),
            NsValue::TextList(v) => WitValue::TextList(v.to_vec()),
            NsValue::FloatArray { shape, data } => WitValue::FloatArray(F64Array { shape: shape64(shape), data: data.to_vec() }),
            NsValue::IntArray { shape, data } => WitValue::IntArray(S64Array { shape: shape64(shape), data: data.to_vec() }),
            NsValue::Json(s) => WitValue::Json(s.clone()),
        }
    }

    /// A value from the guest; a malformed array (shape and data disagree) is refused.
    pub fn from_wit(v: WitValue) -> Result<NsValue, String> {
        let shape_of = |shape: Vec<u64>, len: usize| -> Result<Vec<usize>, String> {
            let s: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
            let n = s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if n == Some(len) {
                Ok(s)
            } else {
                Err(format!("array shape {s:?} does not match its {len} items"))
            }
        };
        Ok(match v {
            WitValue::Null => NsValue::Null,
            WitValue::Boolean(b) => NsValue::Bool(b),
            WitValue::Int(i) => NsValue::Int(i),
            WitValue::Float(f) => NsValue::Float(f),
            WitValue::Text(s) => NsValue::Text(s),
            WitValue::Bytes(b) => NsValue::Bytes(Arc::new(b)),
            WitValue::IntList(v) => NsValue::IntList(Arc::new(v)),
            WitValue::FloatList(v) => NsValue::FloatList(Arc::new(v)),
            WitValue::TextList(v) => NsValue::TextList(Arc::new(v)),
            WitValue::FloatArray(a) => NsValue::FloatArray { shape: shape_of(a.shape, a.data.len())?, data: Arc::new(a.data) },
            WitValue::IntArray(a) => NsValue::IntArray { shape: shape_of(a.shape, a.data.len())?, data: Arc::new(a.data) },
            WitValue::Json(s) => NsValue::Json(s),
        })
    }

    /// Concatenate values along the first axis (gather), in order.
    pub fn concat(parts: &[NsValue]) -> Result<NsValue, String> {
        let Some(first) = parts.first() else {
            return Ok(NsValue::IntList(Arc::new(Vec::new())));
        };
        macro_rules! cat_list {
            ($variant:ident) => {{
                let mut out = Vec::new();
                for p in parts {
                    match p {
                        NsValue::$variant(v) => out.extend_from_slice(v),
                        other => return Err(format!("cannot gather a {} with a {}", first.kind(), other.kind())),
                    }
                }
                NsValue::$variant(Arc::new(out))
            }};
        }
        // Mixed int/float lists (e.g. an empty chunk typed as ints) widen to floats.
        let all_numeric_lists = parts.iter().all(|p| matches!(p, NsValue::IntList(_) | NsValue::FloatList(_)));
        if all_numeric_lists && parts.iter().any(|p| matches!(p, NsValue::FloatList(_))) {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    NsValue::IntList(v) => out.extend(v.iter().map(|&i| i as f64)),
                    NsValue::FloatList(v) => out.extend_from_slice(v),
                    _ => {}
                }
            }
            return Ok(NsValue::FloatList(Arc::new(out)));
        }
        Ok(match first {
            NsValue::Bytes(_) => cat_list!(Bytes),
            NsValue::IntList(_) => cat_list!(IntList),
            NsValue::FloatList(_) => cat_list!(FloatList),
            NsValue::TextList(_) => cat_list!(TextList),
            NsValue::FloatArray { shape, .. } | NsValue::IntArray { shape, .. } if !shape.is_empty() => {
                let tail = shape[1..].to_vec();
                let mut rows = 0;
                let (mut f, mut i) = (Vec::new(), Vec::new());
                for p in parts {
                    match p {
                        NsValue::FloatArray { shape: s, data }
                            if s.get(1..) == Some(&tail[..]) && matches!(first, NsValue::FloatArray { .. }) =>
                        {
                            rows += s[0];
                            f.extend_from_slice(data);
                        }
                        NsValue::IntArray { shape: s, data }
                            if s.get(1..) == Some(&tail[..]) && matches!(first, NsValue::IntArray { .. }) =>
                        {
                            rows += s[0];
                            i.extend_from_slice(data);
                        }
                        other => return Err(format!("cannot gather a {} with a {}", first.kind(), other.kind())),
                    }
                }
                let mut shape = vec![rows];
                shape.extend(tail);
                if matches!(first, NsValue::FloatArray { .. }) {
                    NsValue::FloatArray { shape, data: Arc::new(f) }
                } else {
                    NsValue::IntArray { shape, data: Arc::new(i) }
                }
            }
            other => return Err(format!("cannot gather a {}: only lists and arrays can be gathered", other.kind())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_maps_to_flat_values() {
        assert_eq!(NsValue::from_json(&json!(3)).ok(), Some(NsValue::Int(3)));
        assert_eq!(NsValue::from_json(&json!([1, 2])).ok(), Some(NsValue::IntList(Arc::new(vec![1, 2]))));
        assert_eq!(NsValue::from_json(&json!([1, 2.5])).ok(), Some(NsValue::FloatList(Arc::new(vec![1.0, 2.5]))));
        assert_eq!(
            NsValue::from_json(&json!([[1, 2], [3, 4]])).ok(),
            Some(NsValue::IntArray { shape: vec![2, 2], data: Arc::new(vec![1, 2, 3, 4]) })
        );
        assert!(matches!(NsValue::from_json(&json!({"k": [1, {"x": 2}]})), Ok(NsValue::Json(_))));
        // An integer a float list could not hold exactly keeps the list as JSON.
        let mixed = json!([0.5, -9_007_199_254_740_993_i64]);
        assert_eq!(NsValue::from_json(&mixed).map(|v| v.to_json(Encoding::Json)).ok(), Some(mixed));
        assert_eq!(
            NsValue::from_json(&json!([0.5, 1_i64 << 53])).ok(),
            Some(NsValue::FloatList(Arc::new(vec![0.5, 9_007_199_254_740_992.0])))
        );
        assert_eq!(NsValue::from_json(&json!({"k": 1})).map(|v| v.to_json(Encoding::Json)).ok(), Some(json!({"k": 1})));
    }

    #[test]
    fn zero_dimensional_arrays_are_scalars_and_never_panic() {
        let a = ArrayForm::from_f64(vec![], &[2.5]);
        assert_eq!(NsValue::from_array(a), NsValue::Float(2.5));
        let odd = NsValue::FloatArray { shape: vec![], data: Arc::new(vec![1.0]) };
        assert_eq!(odd.slice(0, 0), None);
        assert!(NsValue::concat(&[odd.clone(), odd]).is_err());
    }

    #[test]
    fn written_json_is_the_text_of_to_json() {
        let big: Vec<f64> = (0..40_000).map(|i| i as f64 / 3.0).collect();
        let values = [
            NsValue::Null,
            NsValue::Int(-3),
            NsValue::Float(f64::NAN),
            NsValue::Text("a \"quoted\" ✓".into()),
            NsValue::Bytes(Arc::new((0..100_000).map(|i| i as u8).collect())),
            NsValue::FloatList(Arc::new(big.clone())),
            NsValue::FloatList(Arc::new(vec![0.5, -0.0])),
            NsValue::IntList(Arc::new(vec![i64::MIN, 7])),
            NsValue::TextList(Arc::new(vec!["x".into()])),
            NsValue::FloatArray { shape: vec![200, 200], data: Arc::new(big) },
            NsValue::IntArray { shape: vec![1, 2], data: Arc::new(vec![1, 2]) },
            NsValue::Json(r#"{"k":[1,{"x":2}]}"#.into()),
        ];
        for encoding in [Encoding::Json, Encoding::Array] {
            for v in &values {
                let mut out = JsonChunks::new();
                v.write_json(encoding, &mut out);
                let text: Vec<u8> = out.finish().iter().flat_map(|c| c.iter().copied()).collect();
                let expected = serde_json::to_vec(&v.to_json(encoding)).expect("json");
                assert!(text == expected, "{} as {encoding:?}", v.kind());
            }
        }
    }

    #[test]
    fn scatter_slices_and_gather_concatenates() {
        let v = NsValue::from_json(&json!([0, 1, 2, 3, 4])).expect("valid");
        let parts = vec![v.slice(0, 2).expect("list"), v.slice(2, 5).expect("list")];
        assert_eq!(NsValue::concat(&parts).ok(), Some(v));
        let a = NsValue::FloatArray { shape: vec![3, 2], data: Arc::new(vec![0., 1., 2., 3., 4., 5.]) };
        let parts = vec![a.slice(0, 1).expect("array"), a.slice(1, 3).expect("array")];
        assert_eq!(NsValue::concat(&parts).ok(), Some(a));
    }
}
