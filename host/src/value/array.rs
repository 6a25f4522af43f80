//! The array form of API.md: `{"dtype": "float64", "shape": [2, 3], "data": "<base64>"}`,
//! little-endian, row-major, numpy's dtype names. Big numeric data travels as
//! bytes instead of decimal text.

use base64::Engine as _;
use bytes::Bytes;
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
    /// The items' little-endian bytes: owned, or a slice of the framed
    /// request body they came in (no copy; see `frames::buffer_form`).
    pub data: Bytes,
}

/// A float64 array: its shape and its items, row-major.
pub type ShapedF64 = (Vec<usize>, Vec<f64>);

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
        let (dtype, data_b64) = header(obj)?;
        let data = decode_base64(data_b64, |n| vec![0u8; n], |v| v.as_mut_slice())?;
        let shape = checked_shape(obj, dtype, data.len())?;
        Ok(ArrayForm { dtype, shape, data: data.into() })
    }

    /// What [`ArrayForm::f64_from_json`] gives for the form made of `fields`
    /// (its `dtype` and `shape`) and the base64 `data` held apart (borrowed
    /// from a request body, never copied into a `Value`); `None` unless it
    /// is a well-formed float64 form, for the caller's general path.
    pub fn f64_from_parts(fields: &Map<String, Json>, data: &str) -> Option<Result<ShapedF64, String>> {
        let known = fields.keys().all(|k| matches!(k.as_str(), "dtype" | "shape"));
        if !known || fields.get("dtype").and_then(Json::as_str) != Some(Dtype::F64.name()) {
            return None;
        }
        exact_len(data.as_bytes()).filter(|n| n % 8 == 0)?;
        Some((|| {
            let data = decode_base64(data, |n| vec![0f64; n / 8], |v| f64s_as_bytes_mut(v))?;
            #[cfg(not(target_endian = "little"))]
            let data: Vec<f64> = data.into_iter().map(|x| f64::from_bits(u64::from_le(x.to_bits()))).collect();
            let shape = checked_shape(fields, Dtype::F64, data.len() * 8)?;
            Ok((shape, data))
        })())
    }

    /// A float64 array form decoded straight into its final buffer (no
    /// intermediate bytes): `None` when `obj` is no array form or another
    /// dtype, else exactly what [`ArrayForm::from_json`] then
    /// [`ArrayForm::to_f64`] would give, errors included.
    pub fn f64_from_json(obj: &Map<String, Json>) -> Option<Result<ShapedF64, String>> {
        let form = (obj.contains_key("dtype") && obj.contains_key("data")).then(|| header(obj))?;
        match form {
            Ok((Dtype::F64, b64)) if exact_len(b64.as_bytes()).is_some_and(|n| n % 8 == 0) => Some((|| {
                let data = decode_base64(b64, |n| vec![0f64; n / 8], |v| f64s_as_bytes_mut(v))?;
                #[cfg(not(target_endian = "little"))]
                let data: Vec<f64> = data.into_iter().map(|x| f64::from_bits(u64::from_le(x.to_bits()))).collect();
                let shape = checked_shape(obj, Dtype::F64, data.len() * 8)?;
                Ok((shape, data))
            })()),
            Ok((Dtype::F64, _)) | Err(_) => Some(Self::parse(obj).map(|a| (a.shape.clone(), a.to_f64()))),
            Ok(_) => None,
        }
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
        ArrayForm { dtype: Dtype::F64, shape, data: f64s_to_le(data).into() }
    }

    pub fn from_i64(shape: Vec<usize>, data: &[i64]) -> ArrayForm {
        let mut bytes = Vec::with_capacity(data.len() * 8);
        for v in data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        ArrayForm { dtype: Dtype::I64, shape, data: bytes.into() }
    }

    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("dtype".into(), Json::String(self.dtype.name().into()));
        m.insert("shape".into(), Json::Array(self.shape.iter().map(|&d| Json::from(d)).collect()));
        // Base64 is ASCII: the lossy branch is never taken.
        let b64 = String::from_utf8(encode_base64(&self.data)).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        m.insert("data".into(), Json::String(b64));
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

/// The checked `dtype` and the (still encoded) `data` of an array form.
fn header(obj: &Map<String, Json>) -> Result<(Dtype, &str), String> {
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data")) {
        return Err(format!("array form: unknown field `{}` (expected dtype, shape, data)", crate::error::cut(k)));
    }
    let dtype = dtype_of(obj)?;
    let data_b64 = obj.get("data").and_then(Json::as_str).ok_or("array form: `data` must be a base64 string")?;
    Ok((dtype, data_b64))
}

/// The checked `dtype` of an array form.
pub(super) fn dtype_of(obj: &Map<String, Json>) -> Result<Dtype, String> {
    let dtype_name = obj.get("dtype").and_then(Json::as_str).ok_or("array form: `dtype` must be a string")?;
    Dtype::parse(dtype_name).ok_or_else(|| {
        format!("array form: unknown dtype {dtype_name:?} (use float64, float32, int64, int32, int16, int8, uint64, uint32, uint16, uint8 or bool)")
    })
}

/// The shape of `bytes` bytes of `dtype` items: the form's `shape`, checked
/// against the data, or one dimension of all of them.
pub(crate) fn checked_shape(obj: &Map<String, Json>, dtype: Dtype, bytes: usize) -> Result<Vec<usize>, String> {
    if !bytes.is_multiple_of(dtype.size()) {
        return Err(format!("array form: {} bytes is not a whole number of {} items", bytes, dtype.name()));
    }
    let count = bytes / dtype.size();
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
    Ok(shape)
}

/// Array forms of one dtype and trailing shape joined along their first
/// axis, as text: standard base64 of `a ‖ b` is `base64(a) ‖ base64(b)`
/// when `a`'s length is a multiple of 3 (it then has no padding), so when
/// every part but the last is, the joined `data` is the parts' strings end
/// to end — checked, never decoded and encoded again. `None` when any part
/// is not such a form (not an array form, another dtype or trailing shape,
/// data that does not match its shape or is not valid base64, a padded part
/// before the last): the caller then joins them the long way (or not at all).
pub fn concat_forms_text(parts: &[Json]) -> Option<Json> {
    let first = parts.first()?.as_object()?;
    let dtype_name = first.get("dtype").and_then(Json::as_str)?;
    let mut rows = 0usize;
    let mut tail: Option<Vec<usize>> = None;
    let mut text_len = 0usize;
    for (i, part) in parts.iter().enumerate() {
        let obj = part.as_object()?;
        let (dtype, data) = header(obj).ok()?;
        if dtype.name() != dtype_name {
            return None;
        }
        let bytes = exact_len(data.as_bytes())?;
        let shape = checked_shape(obj, dtype, bytes).ok()?;
        let (&n, rest) = shape.split_first()?;
        match &tail {
            Some(t) if t.as_slice() != rest => return None,
            Some(_) => {}
            None => tail = Some(rest.to_vec()),
        }
        if !bytes.is_multiple_of(3) && i + 1 < parts.len() {
            return None;
        }
        base64_simd::STANDARD.check(data.as_bytes()).ok()?;
        rows = rows.checked_add(n)?;
        text_len += data.len();
    }
    let mut data = String::with_capacity(text_len);
    for part in parts {
        data.push_str(part.get("data").and_then(Json::as_str)?);
    }
    let mut shape = vec![Json::from(rows)];
    shape.extend(tail.unwrap_or_default().into_iter().map(Json::from));
    let mut m = Map::new();
    m.insert("dtype".into(), Json::String(dtype_name.into()));
    m.insert("shape".into(), Json::Array(shape));
    m.insert("data".into(), Json::String(data));
    Some(Json::Object(m))
}

/// Below this many bytes base64 is coded on the calling thread.
const PARALLEL_FROM: usize = 1 << 20;

fn threads_for(bytes: usize) -> usize {
    if bytes < PARALLEL_FROM {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(bytes / (PARALLEL_FROM / 2)).max(1)
}

/// The decoded length of canonical, padded base64, or `None` when the
/// length or padding cannot be right.
fn exact_len(b64: &[u8]) -> Option<usize> {
    if !b64.len().is_multiple_of(4) {
        return None;
    }
    let pad = b64.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    Some(b64.len() / 4 * 3 - pad)
}

/// Decodes standard base64 into a buffer made by `alloc(decoded length)`,
/// whose bytes `bytes_of` exposes: big inputs on all cores, each thread
/// writing its own part of the final buffer. Any error is the one the
/// plain one-pass decode reports (it is rerun to word it).
fn decode_base64<T>(b64: &str, alloc: impl FnOnce(usize) -> T, bytes_of: impl FnOnce(&mut T) -> &mut [u8]) -> Result<T, String> {
    use base64::engine::general_purpose::STANDARD;
    let plain_error = || match STANDARD.decode(b64) {
        Err(e) => format!("array form: `data` is not valid base64: {e}"),
        Ok(_) => "array form: `data` is not valid base64".into(),
    };
    let input = b64.as_bytes();
    let Some(len) = exact_len(input) else { return Err(plain_error()) };
    let mut buf = alloc(len);
    let out = bytes_of(&mut buf);
    debug_assert_eq!(out.len(), len);
    crate::pages::advise_huge(out);
    if input.is_empty() {
        return Ok(buf);
    }
    // Every block but the last has no padding: split those between threads
    // at block boundaries, and decode the last (padded) block alone.
    let (body, last) = input.split_at(input.len() - 4);
    let (out_body, out_last) = out.split_at_mut(body.len() / 4 * 3);
    let mut tail = [0u8; 3];
    let ok_last = STANDARD.decode_slice(last, &mut tail).ok().filter(|&n| n == out_last.len());
    let Some(n) = ok_last else { return Err(plain_error()) };
    out_last.copy_from_slice(&tail[..n]);
    let threads = threads_for(body.len());
    let blocks_per = (body.len() / 4).div_ceil(threads).max(1);
    let ok = std::thread::scope(|s| {
        let mut parts = body.chunks(blocks_per * 4).zip(out_body.chunks_mut(blocks_per * 3));
        let first = parts.next();
        let handles: Vec<_> = parts.map(|(src, dst)| s.spawn(move || decode_blocks(src, dst))).collect();
        let here = first.is_none_or(|(src, dst)| decode_blocks(src, dst));
        handles.into_iter().fold(here, |ok, h| h.join().unwrap_or(false) && ok)
    });
    if ok {
        Ok(buf)
    } else {
        Err(plain_error())
    }
}

/// Decodes whole unpadded base64 blocks into exactly `dst` with the SIMD
/// decoder (~3x the scalar one here); `false` on any invalid byte.
fn decode_blocks(src: &[u8], dst: &mut [u8]) -> bool {
    base64_simd::STANDARD.decode(src, base64_simd::Out::from_slice(dst)).is_ok_and(|d| d.len() == src.len() / 4 * 3)
}

/// Standard, padded base64 of `bytes` (as [`base64::Engine::encode`] gives),
/// big inputs on all cores, with the SIMD encoder (the same text; unit
/// test below).
pub fn encode_base64(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len().div_ceil(3) * 4];
    crate::pages::advise_huge(&mut out);
    let threads = threads_for(bytes.len());
    let per = (bytes.len() / 3).div_ceil(threads).max(1) * 3;
    std::thread::scope(|s| {
        let mut parts = bytes.chunks(per).zip(out.chunks_mut(per / 3 * 4));
        let first = parts.next();
        for (src, dst) in parts {
            s.spawn(move || encode_blocks(src, dst));
        }
        if let Some((src, dst)) = first {
            encode_blocks(src, dst);
        }
    });
    out
}

/// Base64 of `src` into exactly `dst` (`src.len().div_ceil(3) * 4` bytes).
fn encode_blocks(src: &[u8], dst: &mut [u8]) {
    let _ = base64_simd::STANDARD.encode(src, base64_simd::Out::from_slice(dst));
}

/// The memory of `xs` as bytes: on little-endian hosts exactly their LE bytes.
pub fn f64s_as_bytes(xs: &[f64]) -> &[u8] {
    // SAFETY: f64 has no padding and u8 no alignment; the length is the same memory.
    unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<u8>(), std::mem::size_of_val(xs)) }
}

pub(crate) fn f64s_as_bytes_mut(xs: &mut [f64]) -> &mut [u8] {
    // SAFETY: as above, and every bit pattern is a valid f64.
    unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(xs)) }
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

    /// The long way: every part decoded, the bytes joined, encoded again.
    fn joined_by_decoding(parts: &[Json]) -> Json {
        let forms: Vec<ArrayForm> =
            parts.iter().map(|p| ArrayForm::from_json(p.as_object().expect("object")).expect("form").expect("valid")).collect();
        let mut shape = forms[0].shape.clone();
        shape[0] = forms.iter().map(|f| f.shape[0]).sum();
        let data: Vec<u8> = forms.iter().flat_map(|f| f.data.iter().copied()).collect();
        ArrayForm { dtype: forms[0].dtype, shape, data: data.into() }.to_json()
    }

    fn u32_form(shape: Vec<usize>, first: u32) -> Json {
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n as u32).flat_map(|i| (first + i * 7).to_le_bytes()).collect();
        ArrayForm { dtype: Dtype::U32, shape, data: bytes.into() }.to_json()
    }

    #[test]
    fn forms_join_as_text_exactly_as_decoded_and_encoded_again() {
        // The tutorial's halves: 30 000 uint32 each (120 000 bytes, whole
        // base64 blocks); a padded last part; rows of a 2-D form.
        let cases = [
            vec![u32_form(vec![30_000], 0), u32_form(vec![30_000], 5)],
            vec![u32_form(vec![3], 1), u32_form(vec![6], 2), u32_form(vec![1], 3)],
            vec![u32_form(vec![3, 2], 1), u32_form(vec![0, 2], 9), u32_form(vec![4, 2], 2)],
            vec![u32_form(vec![7], 4)],
        ];
        for parts in cases {
            let text = concat_forms_text(&parts).expect("joined as text");
            assert_eq!(text, joined_by_decoding(&parts));
        }
    }

    #[test]
    fn forms_that_cannot_join_as_text_are_left_to_the_long_way() {
        let whole = u32_form(vec![3], 1);
        // 4 bytes: padded, and not last.
        assert_eq!(concat_forms_text(&[u32_form(vec![1], 0), whole.clone()]), None);
        let mut other_dtype = whole.clone();
        other_dtype["dtype"] = Json::from("int32");
        assert_eq!(concat_forms_text(&[whole.clone(), other_dtype]), None);
        assert_eq!(concat_forms_text(&[u32_form(vec![3, 2], 0), u32_form(vec![2, 3], 0)]), None, "another row shape");
        let mut not_base64 = whole.clone();
        let broken = not_base64["data"].as_str().expect("data").replacen(|c: char| c.is_ascii_alphanumeric(), "!", 1);
        not_base64["data"] = Json::from(broken);
        assert_eq!(concat_forms_text(&[whole.clone(), not_base64]), None);
        let mut wrong_shape = whole.clone();
        wrong_shape["shape"] = serde_json::json!([4]);
        assert_eq!(concat_forms_text(&[whole.clone(), wrong_shape]), None);
        assert_eq!(concat_forms_text(&[whole.clone(), serde_json::json!([1, 2])]), None);
        assert_eq!(concat_forms_text(&[]), None);
    }

    #[test]
    fn parallel_base64_is_the_plain_one() {
        use base64::engine::general_purpose::STANDARD;
        for len in [0, 1, 2, 3, 8, 1000, PARALLEL_FROM + 1, PARALLEL_FROM * 3 + 2] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
            let b64 = encode_base64(&bytes);
            assert_eq!(b64, STANDARD.encode(&bytes).into_bytes(), "encode {len}");
            let text = String::from_utf8(b64).expect("ascii");
            assert_eq!(decode_base64(&text, |n| vec![0u8; n], |v| v.as_mut_slice()).ok(), Some(bytes), "decode {len}");
        }
        // Broken inputs answer the plain decoder's error, wherever the fault is.
        let good = String::from_utf8(encode_base64(&vec![5u8; PARALLEL_FROM * 2])).expect("ascii");
        let mut bad = good.clone().into_bytes();
        bad[good.len() * 3 / 4] = b'!';
        let bad = String::from_utf8(bad).expect("ascii");
        for text in [bad.as_str(), "QQ=", "QQ=A", "QR==", "A===", "QQ==QUFB", &good[..good.len() - 1]] {
            let plain = STANDARD.decode(text).expect_err("invalid");
            let ours = decode_base64(text, |n| vec![0u8; n], |v| v.as_mut_slice()).expect_err("invalid");
            assert_eq!(ours, format!("array form: `data` is not valid base64: {plain}"));
        }
    }

    #[test]
    fn float64_forms_decode_straight_to_floats() {
        let xs: Vec<f64> = (0..300_000).map(|i| (i as f64).sqrt() * if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
        let a = ArrayForm::from_f64(vec![600, 500], &xs);
        let Json::Object(m) = a.to_json() else { panic!("not an object") };
        let (shape, ys) = ArrayForm::f64_from_json(&m).expect("float64 form").expect("valid");
        assert_eq!(shape, vec![600, 500]);
        assert!(xs.iter().zip(&ys).all(|(x, y)| x.to_bits() == y.to_bits()) && xs.len() == ys.len());
        // Errors are the general parser's.
        let mut odd = m.clone();
        odd.insert("data".into(), Json::String("AAAA".into()));
        assert_eq!(ArrayForm::f64_from_json(&odd).expect("form").err(), ArrayForm::from_json(&odd).expect("form").err());
        let ints = ArrayForm::from_i64(vec![2], &[1, 2]);
        let Json::Object(m) = ints.to_json() else { panic!("not an object") };
        assert!(ArrayForm::f64_from_json(&m).is_none(), "other dtypes take the general path");
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
