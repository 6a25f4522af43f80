//! The array form of API.md: `{"dtype": "float64", "shape": [2, 3], "data": "<base64>"}`,
//! little-endian, row-major, numpy's dtype names. Big numeric data travels as
//! bytes instead of decimal text.

use base64::Engine as _;
use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
}

impl Dtype {
    pub fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "float64" | "f8" | "<f8" => Dtype::F64,
            "float32" | "f4" | "<f4" => Dtype::F32,
            "int64" | "i8" | "<i8" => Dtype::I64,
            "int32" | "i4" | "<i4" => Dtype::I32,
            "int16" | "i2" | "<i2" => Dtype::I16,
            "int8" | "i1" | "|i1" => Dtype::I8,
            "uint64" | "u8" | "<u8" => Dtype::U64,
            "uint32" | "u4" | "<u4" => Dtype::U32,
            "uint16" | "u2" | "<u2" => Dtype::U16,
            "uint8" | "u1" | "|u1" => Dtype::U8,
            "bool" | "|b1" => Dtype::Bool,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "float64",
            Dtype::F32 => "float32",
            Dtype::I64 => "int64",
            Dtype::I32 => "int32",
            Dtype::I16 => "int16",
            Dtype::I8 => "int8",
            Dtype::U64 => "uint64",
            Dtype::U32 => "uint32",
            Dtype::U16 => "uint16",
            Dtype::U8 => "uint8",
            Dtype::Bool => "bool",
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F64 | Dtype::F32)
    }
}

/// One element of an array, widened without loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArrayForm {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl ArrayForm {
    /// `Some` when `obj` is meant as an array form (it has `dtype` and `data`),
    /// with an error message if it is a broken one.
    pub fn from_json(obj: &Map<String, Json>) -> Option<Result<ArrayForm, String>> {
        if !(obj.contains_key("dtype") && obj.contains_key("data")) {
            return None;
        }
        Some(Self::parse(obj))
    }

    fn parse(obj: &Map<String, Json>) -> Result<ArrayForm, String> {
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data")) {
            return Err(format!("array form: unknown field `{}` (expected dtype, shape, data)", crate::error::cut(k)));
        }
        let dtype_name = obj.get("dtype").and_then(Json::as_str).ok_or("array form: `dtype` must be a string")?;
        let dtype = Dtype::parse(dtype_name).ok_or_else(|| {
            format!("array form: unknown dtype {dtype_name:?} (use float64, float32, int64, int32, int16, int8, uint64, uint32, uint16, uint8 or bool)")
        })?;
        let data_b64 = obj.get("data").and_then(Json::as_str).ok_or("array form: `data` must be a base64 string")?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(data_b64)
            .map_err(|e| format!("array form: `data` is not valid base64: {e}"))?;
        if data.len() % dtype.size() != 0 {
            return Err(format!("array form: {} bytes is not a whole number of {} items", data.len(), dtype.name()));
        }
        let count = data.len() / dtype.size();
        let shape = match obj.get("shape") {
            None => vec![count],
            Some(Json::Array(dims)) => dims
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize).ok_or("array form: `shape` must be a list of non-negative integers"))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err("array form: `shape` must be a list of non-negative integers".into()),
        };
        let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("array form: shape overflows")?;
        if expected != count {
            return Err(format!("array form: shape {shape:?} needs {expected} items but data holds {count}"));
        }
        Ok(ArrayForm { dtype, shape, data })
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn get(&self, i: usize) -> Num {
        let s = self.dtype.size();
        let b = &self.data[i * s..(i + 1) * s];
        let arr8 = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            a
        };
        let arr4 = |b: &[u8]| {
            let mut a = [0u8; 4];
            a.copy_from_slice(b);
            a
        };
        match self.dtype {
            Dtype::F64 => Num::F(f64::from_le_bytes(arr8(b))),
            Dtype::F32 => Num::F(f32::from_le_bytes(arr4(b)) as f64),
            Dtype::I64 => Num::I(i64::from_le_bytes(arr8(b))),
            Dtype::I32 => Num::I(i32::from_le_bytes(arr4(b)) as i64),
            Dtype::I16 => Num::I(i16::from_le_bytes([b[0], b[1]]) as i64),
            Dtype::I8 => Num::I(b[0] as i8 as i64),
            Dtype::U64 => Num::U(u64::from_le_bytes(arr8(b))),
            Dtype::U32 => Num::U(u32::from_le_bytes(arr4(b)) as u64),
            Dtype::U16 => Num::U(u16::from_le_bytes([b[0], b[1]]) as u64),
            Dtype::U8 => Num::U(b[0] as u64),
            Dtype::Bool => Num::B(b[0] != 0),
        }
    }

    pub fn to_f64(&self) -> Vec<f64> {
        if self.dtype == Dtype::F64 {
            return f64s_from_le(&self.data);
        }
        (0..self.len())
            .map(|i| match self.get(i) {
                Num::I(v) => v as f64,
                Num::U(v) => v as f64,
                Num::F(v) => v,
                Num::B(v) => v as u8 as f64,
            })
            .collect()
    }

    /// Integer elements as i64; `None` if the dtype is a float or a u64 overflows.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        if self.dtype == Dtype::I64 {
            return Some(self.data.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect());
        }
        (0..self.len())
            .map(|i| match self.get(i) {
                Num::I(v) => Some(v),
                Num::U(v) => i64::try_from(v).ok(),
                Num::B(v) => Some(v as i64),
                Num::F(_) => None,
            })
            .collect()
    }

    pub fn from_f64(shape: Vec<usize>, data: &[f64]) -> ArrayForm {
        ArrayForm { dtype: Dtype::F64, shape, data: f64s_to_le(data) }
    }

    pub fn from_i64(shape: Vec<usize>, data: &[i64]) -> ArrayForm {
        let mut bytes = Vec::with_capacity(data.len() * 8);
        for v in data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        ArrayForm { dtype: Dtype::I64, shape, data: bytes }
    }

    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("dtype".into(), Json::String(self.dtype.name().into()));
        m.insert("shape".into(), Json::Array(self.shape.iter().map(|&d| Json::from(d)).collect()));
        m.insert("data".into(), Json::String(base64::engine::general_purpose::STANDARD.encode(&self.data)));
        Json::Object(m)
    }

    /// The array as nested JSON lists (by shape).
    pub fn to_nested_json(&self) -> Json {
        fn build(a: &ArrayForm, dims: &[usize], offset: &mut usize) -> Json {
            match dims.split_first() {
                None => {
                    let v = num_to_json(a.get(*offset));
                    *offset += 1;
                    v
                }
                Some((&n, rest)) => Json::Array((0..n).map(|_| build(a, rest, offset)).collect()),
            }
        }
        let mut offset = 0;
        if self.shape.is_empty() {
            return if self.is_empty() { Json::Null } else { num_to_json(self.get(0)) };
        }
        build(self, &self.shape, &mut offset)
    }
}

/// Little-endian bytes to f64s in one pass (a plain copy on little-endian
/// machines: LLVM turns the loop into a memcpy).
pub fn f64s_from_le(bytes: &[u8]) -> Vec<f64> {
    bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
}

pub fn f64s_to_le(xs: &[f64]) -> Vec<u8> {
    let mut out = vec![0u8; xs.len() * 8];
    for (dst, x) in out.chunks_exact_mut(8).zip(xs) {
        dst.copy_from_slice(&x.to_le_bytes());
    }
    out
}

pub fn num_to_json(n: Num) -> Json {
    match n {
        Num::I(v) => Json::from(v),
        Num::U(v) => Json::from(v),
        Num::F(v) => super::float_to_json(v),
        Num::B(v) => Json::Bool(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bit_exactly() {
        let xs = [0.1, -0.0, f64::MAX, f64::MIN_POSITIVE, 1e-300];
        let a = ArrayForm::from_f64(vec![5], &xs);
        let Json::Object(m) = a.to_json() else { panic!("not an object") };
        let back = ArrayForm::from_json(&m).expect("array form").expect("valid");
        let ys = back.to_f64();
        assert_eq!(xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), ys.iter().map(|y| y.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn shape_must_match_data() {
        let a = ArrayForm::from_i64(vec![2, 3], &[1, 2, 3, 4, 5, 6]);
        let Json::Object(mut m) = a.to_json() else { panic!("not an object") };
        m.insert("shape".into(), serde_json::json!([4, 2]));
        let err = ArrayForm::from_json(&m).expect("array form").expect_err("bad shape");
        assert!(err.contains("needs 8 items"), "{err}");
    }

    #[test]
    fn nested_json_follows_the_shape() {
        let a = ArrayForm::from_i64(vec![2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(a.to_nested_json(), serde_json::json!([[1, 2, 3], [4, 5, 6]]));
    }
}
