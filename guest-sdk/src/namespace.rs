//! Typed access to the engine's globals (the `wasmpar:engine/namespace` import).
//!
//! What a client `push`es or `scatter`s lands here; what a task `set`s here is
//! what the client `pull`s or `gather`s. Values live in the engine, not in the
//! component instance, so they outlive the call, the instance and even a trap.
//!
//! ```ignore
//! use wasmpar_guest::namespace;
//!
//! let a: i64 = namespace::get("a")?;                 // Err(Missing) if unset
//! let xs: Vec<f64> = namespace::get("xs")?;          // float-list, int-list or 1-d float-array
//! let m: ndarray::ArrayD<f64> = namespace::get("m")?; // float-array with its shape
//! let k: Option<u32> = namespace::try_get("k")?;     // None if unset
//! namespace::set("y", xs.iter().map(|x| x * 2.0).collect::<Vec<f64>>());
//! ```
//!
//! Conversions ([`FromValue`]) accept what a client is likely to have sent:
//! integers are range-checked, `f64` also takes an int, `Vec<f64>` and
//! `ArrayD<f64>` also take int lists and arrays, an empty list of any kind is
//! an empty `Vec`, and a 1-d array is a `Vec`. Nothing is silently truncated.

use core::fmt;

use ndarray::{ArrayD, IxDyn};

use crate::bindings::wasmpar::engine::namespace as raw;
pub use crate::bindings::wasmpar::engine::namespace::{F64Array, S64Array, Value};

/// Why a global could not be read as the requested type.
#[derive(Debug, Clone, PartialEq)]
pub enum NamespaceError {
    /// No global of that name is bound on this engine.
    Missing(String),
    /// The global is bound, but to a value that does not convert.
    WrongType {
        /// The global's name.
        name: String,
        /// What the Rust type accepts, e.g. `"int in 0..=4294967295 (u32)"`.
        expected: &'static str,
        /// What was found, e.g. `"int -1"` or `"text-list of 3"`.
        found: String,
    },
}

impl NamespaceError {
    /// The name of the global concerned.
    pub fn name(&self) -> &str {
        match self {
            NamespaceError::Missing(name) => name,
            NamespaceError::WrongType { name, .. } => name,
        }
    }
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceError::Missing(name) => {
                write!(f, "global `{name}` is not set on this engine")
            }
            NamespaceError::WrongType { name, expected, found } => write!(f, "global `{name}`: expected {expected}, found {found}"),
        }
    }
}

impl std::error::Error for NamespaceError {}

/// A value that does not convert to the requested Rust type (no name attached;
/// [`get`] turns it into [`NamespaceError::WrongType`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TypeMismatch {
    /// What the Rust type accepts.
    pub expected: &'static str,
    /// A short description of the value found (see [`describe`]).
    pub found: String,
}

impl TypeMismatch {
    /// A mismatch between `expected` and the value `found`.
    pub fn new(expected: &'static str, found: &Value) -> Self {
        TypeMismatch { expected, found: describe(found) }
    }
}

impl fmt::Display for TypeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {}", self.expected, self.found)
    }
}

impl std::error::Error for TypeMismatch {}

/// A Rust type that can be read from a namespace [`Value`].
pub trait FromValue: Sized {
    /// Convert, or say what was expected and what was found.
    fn from_value(value: Value) -> Result<Self, TypeMismatch>;
}

/// A Rust type that can be stored as a namespace [`Value`].
pub trait IntoValue {
    /// Convert into the WIT value stored in the engine.
    fn into_value(self) -> Value;
}

/// A short, human description of a value for error messages: the variant
/// case and, for scalars, the value (`"int -1"`), for lists their length
/// (`"float-list of 3"`), for arrays their shape (`"float-array of shape [2, 3]"`).
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Boolean(b) => format!("boolean {b}"),
        Value::Int(i) => format!("int {i}"),
        Value::Float(x) => format!("float {x}"),
        Value::Text(s) => format!("text of {} bytes", s.len()),
        Value::Bytes(b) => format!("bytes of {} bytes", b.len()),
        Value::IntList(v) => format!("int-list of {}", v.len()),
        Value::FloatList(v) => format!("float-list of {}", v.len()),
        Value::TextList(v) => format!("text-list of {}", v.len()),
        Value::FloatArray(a) => format!("float-array of shape {:?}", a.shape),
        Value::IntArray(a) => format!("int-array of shape {:?}", a.shape),
        Value::Json(s) => format!("json of {} bytes", s.len()),
    }
}

// ---------------------------------------------------------------------------
// The import, typed.

/// The raw value bound to `name`, if any.
pub fn get_value(name: &str) -> Option<Value> {
    raw::get(name)
}

/// The global `name` converted to `T`.
///
/// Errors: [`NamespaceError::Missing`] if unbound, [`NamespaceError::WrongType`]
/// if bound to something that does not convert.
pub fn get<T: FromValue>(name: &str) -> Result<T, NamespaceError> {
    match try_get(name)? {
        Some(v) => Ok(v),
        None => Err(NamespaceError::Missing(name.to_string())),
    }
}

/// Like [`get`], but an unbound name is `Ok(None)`.
pub fn try_get<T: FromValue>(name: &str) -> Result<Option<T>, NamespaceError> {
    match raw::get(name) {
        None => Ok(None),
        Some(value) => T::from_value(value).map(Some).map_err(|m| NamespaceError::WrongType {
            name: name.to_string(),
            expected: m.expected,
            found: m.found,
        }),
    }
}

/// Bind `name` to `value`, replacing what was there.
pub fn set(name: &str, value: impl IntoValue) {
    raw::set(name, &value.into_value());
}

/// Unbind `name`; true if it was bound.
pub fn remove(name: &str) -> bool {
    raw::remove(name)
}

/// Every bound name, sorted.
pub fn names() -> Vec<String> {
    raw::names()
}

// ---------------------------------------------------------------------------
// Newtypes for the cases a plain Rust type would make ambiguous.

/// Raw bytes (the `bytes` case). A plain `Vec<u8>` is deliberately not
/// convertible, so a list of small numbers is never mistaken for bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

/// JSON text (the `json` case), for anything deeper than the flat variant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json(pub String);

// ---------------------------------------------------------------------------
// Scalars.

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        Ok(value)
    }
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl IntoValue for &Value {
    fn into_value(self) -> Value {
        self.clone()
    }
}

impl FromValue for i64 {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Int(i) => Ok(i),
            other => Err(TypeMismatch::new("int (i64)", &other)),
        }
    }
}

impl IntoValue for i64 {
    fn into_value(self) -> Value {
        Value::Int(self)
    }
}

macro_rules! small_int {
    ($($t:ty => $expected:literal),* $(,)?) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self, TypeMismatch> {
                match value {
                    Value::Int(i) => <$t>::try_from(i)
                        .map_err(|_| TypeMismatch::new($expected, &value)),
                    other => Err(TypeMismatch::new($expected, &other)),
                }
            }
        }

        impl IntoValue for $t {
            fn into_value(self) -> Value {
                Value::Int(i64::from(self))
            }
        }
    )*};
}

small_int! {
    i8 => "int in -128..=127 (i8)",
    u8 => "int in 0..=255 (u8)",
    i16 => "int in -32768..=32767 (i16)",
    u16 => "int in 0..=65535 (u16)",
    i32 => "int in -2147483648..=2147483647 (i32)",
    u32 => "int in 0..=4294967295 (u32)",
}

const U64_EXPECTED: &str = "int in 0..=18446744073709551615 (u64)";

/// Reads an `int` that is not negative, or `json` text holding an integer
/// above `i64::MAX` (which is how [`IntoValue`] stores those).
impl FromValue for u64 {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match &value {
            Value::Int(i) => u64::try_from(*i).map_err(|_| TypeMismatch::new(U64_EXPECTED, &value)),
            Value::Json(s) => s.trim().parse::<u64>().map_err(|_| TypeMismatch::new(U64_EXPECTED, &value)),
            _ => Err(TypeMismatch::new(U64_EXPECTED, &value)),
        }
    }
}

/// Stores an `int`; a value above `i64::MAX` does not fit one and is stored,
/// exactly, as `json` number text instead.
impl IntoValue for u64 {
    fn into_value(self) -> Value {
        match i64::try_from(self) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Json(self.to_string()),
        }
    }
}

/// Reads a `float`, or an `int` (converted to the nearest `f64`).
impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Float(x) => Ok(x),
            Value::Int(i) => Ok(i as f64),
            other => Err(TypeMismatch::new("float or int (f64)", &other)),
        }
    }
}

impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::Float(self)
    }
}

/// Reads a `float` or an `int`, rounded to the nearest `f32`.
impl FromValue for f32 {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Float(x) => Ok(x as f32),
            Value::Int(i) => Ok(i as f32),
            other => Err(TypeMismatch::new("float or int (f32)", &other)),
        }
    }
}

impl IntoValue for f32 {
    fn into_value(self) -> Value {
        Value::Float(f64::from(self))
    }
}

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Boolean(b) => Ok(b),
            other => Err(TypeMismatch::new("boolean (bool)", &other)),
        }
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Boolean(self)
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(TypeMismatch::new("text (String)", &other)),
        }
    }
}

impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_string())
    }
}

impl IntoValue for &String {
    fn into_value(self) -> Value {
        Value::Text(self.clone())
    }
}

impl FromValue for Bytes {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Bytes(b) => Ok(Bytes(b)),
            other => Err(TypeMismatch::new("bytes (Bytes)", &other)),
        }
    }
}

impl IntoValue for Bytes {
    fn into_value(self) -> Value {
        Value::Bytes(self.0)
    }
}

impl FromValue for Json {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Json(s) => Ok(Json(s)),
            other => Err(TypeMismatch::new("json (Json)", &other)),
        }
    }
}

impl IntoValue for Json {
    fn into_value(self) -> Value {
        Value::Json(self.0)
    }
}

/// `null` reads as `None`; anything else must convert to `T`.
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// `None` is stored as `null`.
impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        match self {
            None => Value::Null,
            Some(v) => v.into_value(),
        }
    }
}

// ---------------------------------------------------------------------------
// Lists.

/// True for a list of any element type that is empty: JSON `[]` carries no
/// element type, so it converts to an empty `Vec` of anything.
fn is_empty_list(value: &Value) -> bool {
    match value {
        Value::IntList(v) => v.is_empty(),
        Value::FloatList(v) => v.is_empty(),
        Value::TextList(v) => v.is_empty(),
        _ => false,
    }
}

/// The data of an n-d array if it is 1-d (and consistent).
fn one_d<T>(shape: &[u64], data: Vec<T>) -> Option<Vec<T>> {
    match shape {
        [n] if usize::try_from(*n).ok() == Some(data.len()) => Some(data),
        _ => None,
    }
}

const VEC_I64_EXPECTED: &str = "int-list or 1-d int-array (Vec<i64>)";

impl FromValue for Vec<i64> {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        if is_empty_list(&value) {
            return Ok(Vec::new());
        }
        match value {
            Value::IntList(v) => Ok(v),
            Value::IntArray(a) => {
                let found = format!("int-array of shape {:?}", a.shape);
                one_d(&a.shape, a.data).ok_or(TypeMismatch { expected: VEC_I64_EXPECTED, found })
            }
            other => Err(TypeMismatch::new(VEC_I64_EXPECTED, &other)),
        }
    }
}

impl IntoValue for Vec<i64> {
    fn into_value(self) -> Value {
        Value::IntList(self)
    }
}

impl IntoValue for &[i64] {
    fn into_value(self) -> Value {
        Value::IntList(self.to_vec())
    }
}

const VEC_F64_EXPECTED: &str = "float-list, int-list or 1-d float/int-array (Vec<f64>)";

/// Reads a `float-list`, an `int-list` (converted), or a 1-d `float-array` or
/// `int-array`.
impl FromValue for Vec<f64> {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        if is_empty_list(&value) {
            return Ok(Vec::new());
        }
        let found = describe(&value);
        let mismatch = move || TypeMismatch { expected: VEC_F64_EXPECTED, found };
        match value {
            Value::FloatList(v) => Ok(v),
            Value::IntList(v) => Ok(v.into_iter().map(|i| i as f64).collect()),
            Value::FloatArray(a) => one_d(&a.shape, a.data).ok_or_else(mismatch),
            Value::IntArray(a) => one_d(&a.shape, a.data).map(|v| v.into_iter().map(|i| i as f64).collect()).ok_or_else(mismatch),
            _ => Err(mismatch()),
        }
    }
}

impl IntoValue for Vec<f64> {
    fn into_value(self) -> Value {
        Value::FloatList(self)
    }
}

impl IntoValue for &[f64] {
    fn into_value(self) -> Value {
        Value::FloatList(self.to_vec())
    }
}

impl FromValue for Vec<String> {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        if is_empty_list(&value) {
            return Ok(Vec::new());
        }
        match value {
            Value::TextList(v) => Ok(v),
            other => Err(TypeMismatch::new("text-list (Vec<String>)", &other)),
        }
    }
}

impl IntoValue for Vec<String> {
    fn into_value(self) -> Value {
        Value::TextList(self)
    }
}

impl IntoValue for &[String] {
    fn into_value(self) -> Value {
        Value::TextList(self.to_vec())
    }
}

impl IntoValue for Vec<&str> {
    fn into_value(self) -> Value {
        Value::TextList(self.into_iter().map(str::to_string).collect())
    }
}

// ---------------------------------------------------------------------------
// n-d arrays.

/// Build a row-major array, checking that `data` holds the product of `shape` items.
fn array_from<T>(shape: &[u64], data: Vec<T>) -> Option<ArrayD<T>> {
    let shape: Vec<usize> = shape.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<_>>()?;
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    if count != data.len() {
        return None;
    }
    ArrayD::from_shape_vec(IxDyn(&shape), data).ok()
}

/// The shape and row-major data of an array, without copying when the array
/// is already contiguous and row-major.
fn array_parts<T: Clone>(array: ArrayD<T>) -> (Vec<u64>, Vec<T>) {
    let shape = array.shape().iter().map(|&d| d as u64).collect();
    let len = array.len();
    if array.is_standard_layout() {
        // Row-major and contiguous: the elements are `data[offset..offset + len]`.
        let (mut data, offset) = array.into_raw_vec_and_offset();
        let start = offset.unwrap_or(0).min(data.len());
        data.truncate(start.saturating_add(len));
        data.drain(..start);
        return (shape, data);
    }
    (shape, array.iter().cloned().collect())
}

const ARRAY_F64_EXPECTED: &str = "float-array, int-array, or float-list/int-list as 1-d (ArrayD<f64>)";

/// Reads a `float-array` (or `int-array`, converted) with its shape, or a
/// `float-list`/`int-list` as a 1-d array.
impl FromValue for ArrayD<f64> {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        let found = describe(&value);
        let mismatch = move || TypeMismatch { expected: ARRAY_F64_EXPECTED, found };
        match value {
            Value::FloatArray(a) => array_from(&a.shape, a.data).ok_or_else(mismatch),
            Value::IntArray(a) => {
                let data = a.data.into_iter().map(|i| i as f64).collect();
                array_from(&a.shape, data).ok_or_else(mismatch)
            }
            Value::FloatList(v) => Ok(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(|_| mismatch())?),
            Value::IntList(v) => {
                let v: Vec<f64> = v.into_iter().map(|i| i as f64).collect();
                Ok(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(|_| mismatch())?)
            }
            _ => Err(mismatch()),
        }
    }
}

impl IntoValue for ArrayD<f64> {
    fn into_value(self) -> Value {
        let (shape, data) = array_parts(self);
        Value::FloatArray(F64Array { shape, data })
    }
}

impl IntoValue for &ArrayD<f64> {
    fn into_value(self) -> Value {
        self.clone().into_value()
    }
}

const ARRAY_I64_EXPECTED: &str = "int-array, or int-list as 1-d (ArrayD<i64>)";

/// Reads an `int-array` with its shape, or an `int-list` as a 1-d array.
impl FromValue for ArrayD<i64> {
    fn from_value(value: Value) -> Result<Self, TypeMismatch> {
        let found = describe(&value);
        let mismatch = move || TypeMismatch { expected: ARRAY_I64_EXPECTED, found };
        match value {
            Value::IntArray(a) => array_from(&a.shape, a.data).ok_or_else(mismatch),
            Value::IntList(v) => Ok(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(|_| mismatch())?),
            _ => Err(mismatch()),
        }
    }
}

impl IntoValue for ArrayD<i64> {
    fn into_value(self) -> Value {
        let (shape, data) = array_parts(self);
        Value::IntArray(S64Array { shape, data })
    }
}

impl IntoValue for &ArrayD<i64> {
    fn into_value(self) -> Value {
        self.clone().into_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2};

    #[test]
    fn ints_are_range_checked() {
        assert_eq!(u32::from_value(Value::Int(7)), Ok(7));
        let err = u32::from_value(Value::Int(-1)).unwrap_err();
        assert_eq!(err.found, "int -1");
        assert!(err.expected.contains("u32"));
        assert!(i32::from_value(Value::Int(1 << 40)).is_err());
        assert_eq!(u8::from_value(Value::Int(255)), Ok(255));
        assert!(i64::from_value(Value::Float(1.0)).is_err());
    }

    #[test]
    fn u64_round_trips_above_i64_max() {
        for n in [0u64, 5, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(u64::from_value(n.into_value()), Ok(n));
        }
        assert_eq!(u64::MAX.into_value(), Value::Json("18446744073709551615".into()));
        assert!(u64::from_value(Value::Int(-3)).is_err());
    }

    #[test]
    fn f64_accepts_int() {
        assert_eq!(f64::from_value(Value::Int(3)), Ok(3.0));
        assert_eq!(f64::from_value(Value::Float(0.5)), Ok(0.5));
        assert!(f64::from_value(Value::Text("1".into())).is_err());
    }

    #[test]
    fn vec_f64_from_int_list_and_1d_array() {
        assert_eq!(Vec::<f64>::from_value(Value::IntList(vec![1, -2, 3])), Ok(vec![1.0, -2.0, 3.0]));
        let a = Value::FloatArray(F64Array { shape: vec![2], data: vec![0.5, 1.5] });
        assert_eq!(Vec::<f64>::from_value(a), Ok(vec![0.5, 1.5]));
        let two_d = Value::FloatArray(F64Array { shape: vec![1, 2], data: vec![0.5, 1.5] });
        let err = Vec::<f64>::from_value(two_d).unwrap_err();
        assert_eq!(err.found, "float-array of shape [1, 2]");
    }

    #[test]
    fn empty_list_of_any_kind_is_empty_vec() {
        assert_eq!(Vec::<i64>::from_value(Value::FloatList(vec![])), Ok(vec![]));
        assert_eq!(Vec::<String>::from_value(Value::IntList(vec![])), Ok(vec![]));
        assert!(Vec::<i64>::from_value(Value::FloatList(vec![1.0])).is_err());
    }

    #[test]
    fn bytes_are_not_a_list() {
        assert_eq!(Bytes::from_value(Value::Bytes(vec![1, 2])), Ok(Bytes(vec![1, 2])));
        assert!(Bytes::from_value(Value::IntList(vec![1, 2])).is_err());
        assert!(Vec::<i64>::from_value(Value::Bytes(vec![1, 2])).is_err());
    }

    #[test]
    fn option_maps_null() {
        assert_eq!(Option::<i64>::from_value(Value::Null), Ok(None));
        assert_eq!(Option::<i64>::from_value(Value::Int(2)), Ok(Some(2)));
        assert_eq!(None::<i64>.into_value(), Value::Null);
    }

    #[test]
    fn array_shape_round_trip() {
        let a = Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f64).into_dyn();
        let v = a.clone().into_value();
        match &v {
            Value::FloatArray(fa) => {
                assert_eq!(fa.shape, vec![2, 3]);
                assert_eq!(fa.data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(ArrayD::<f64>::from_value(v), Ok(a));
    }

    #[test]
    fn non_contiguous_arrays_are_row_major() {
        let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as i64);
        // A transposed view and a strided slice, both made owned without relayout.
        let t = a.t().to_owned().into_dyn();
        let sliced = a.slice(s![.., 1..3]).to_owned().into_dyn();
        let fortran = a.clone().reversed_axes().into_dyn();
        for arr in [t, sliced, fortran] {
            let expected: Vec<i64> = arr.iter().copied().collect();
            match arr.clone().into_value() {
                Value::IntArray(ia) => {
                    assert_eq!(ia.data, expected);
                    assert_eq!(ia.shape, arr.shape().iter().map(|&d| d as u64).collect::<Vec<_>>());
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(ArrayD::<i64>::from_value(arr.clone().into_value()), Ok(arr));
        }
    }

    #[test]
    fn arrays_reject_inconsistent_shape() {
        let bad = Value::FloatArray(F64Array { shape: vec![2, 2], data: vec![1.0, 2.0, 3.0] });
        assert!(ArrayD::<f64>::from_value(bad).is_err());
        let overflow = Value::IntArray(S64Array { shape: vec![u64::MAX, 2], data: vec![] });
        assert!(ArrayD::<i64>::from_value(overflow).is_err());
    }

    #[test]
    fn array_f64_accepts_lists_as_1d() {
        let a = ArrayD::<f64>::from_value(Value::FloatList(vec![1.0, 2.0])).unwrap();
        assert_eq!(a.shape(), &[2]);
        let b = ArrayD::<f64>::from_value(Value::IntList(vec![4])).unwrap();
        assert_eq!(b.as_slice(), Some(&[4.0][..]));
        let c = ArrayD::<i64>::from_value(Value::IntList(vec![4, 5])).unwrap();
        assert_eq!(c.shape(), &[2]);
    }

    #[test]
    fn error_messages_name_the_global() {
        let e = NamespaceError::Missing("a".into());
        assert_eq!(e.to_string(), "global `a` is not set on this engine");
        let e = NamespaceError::WrongType { name: "xs".into(), expected: "int (i64)", found: "text of 3 bytes".into() };
        assert_eq!(e.to_string(), "global `xs`: expected int (i64), found text of 3 bytes");
        assert_eq!(e.name(), "xs");
    }
}
