//! A typed fast path for array kernels. A function whose parameters (one to
//! three) are each a list of numbers or a single number, and whose one
//! result is a list of numbers, is called through wasmtime's `TypedFunc`:
//! list arguments are lowered straight from their array-form bytes and the
//! result lifted into a plain vector, with no `Val` per element — on a call
//! like the tutorial's `mandel-chunk` the `Val`s cost more than the kernel.
//! Any other function, or a call whose arguments are not all at hand as
//! bytes of exactly the element type, takes the `Val` path; both give the
//! same results (`tests/all/api_tutorial.rs` compares them).
//!
//! Invariants:
//! - Guest memory is touched only by wasmtime's own typed lowering and
//!   lifting of `[T]`, `Vec<T>` and primitives: the wrappers here choose `T`
//!   from the WIT type at run time and delegate.
//! - This implements wasmtime's doc-hidden `ComponentType`/`Lower`/`Lift`
//!   traits, as `#[derive(ComponentType)]` does; wasmtime is pinned at
//!   `=48.0.8` for that reason. A scalar parameter is always passed flat
//!   (at most 6 flat parameters here, the limit is 16), so its declared ABI
//!   is never used to place it in memory.

use std::mem::MaybeUninit;

use serde_json::Value as Json;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, LowerContext};
use wasmtime::component::types::Type;
use wasmtime::component::{ComponentType, Func, Lift, Lower, Val};
use wasmtime::{AsContextMut, ValRaw};

use super::Arg;
use crate::value::{numeric_dtype, val_to_json, ArrayForm, Dtype, Encoding};

/// Which typed shape a function has, decided once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    List(Dtype),
    Scalar,
}

/// The parameter kinds of `params` and the result's element dtype, when the
/// function fits the fast path.
pub fn shape(params: &[(String, Type)], results: &[Type]) -> Option<(Vec<Param>, Dtype)> {
    // The result first: most functions end here, before any allocation
    // (this runs once per batch, so per call for tiny tasks).
    let result = match results {
        [Type::List(l)] => elem_dtype(&l.ty())?,
        _ => return None,
    };
    if params.is_empty() || params.len() > 3 {
        return None;
    }
    let kinds = params
        .iter()
        .map(|(_, t)| match t {
            Type::List(l) => elem_dtype(&l.ty()).map(Param::List),
            t if is_scalar(t) => Some(Param::Scalar),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((kinds, result))
}

/// The dtype of a list element the typed path carries ([`NumList`]).
fn elem_dtype(t: &Type) -> Option<Dtype> {
    numeric_dtype(t).filter(|d| matches!(d, Dtype::F64 | Dtype::F32 | Dtype::I64 | Dtype::U64 | Dtype::I32 | Dtype::U32 | Dtype::U8))
}

fn is_scalar(t: &Type) -> bool {
    matches!(
        t,
        Type::Bool
            | Type::S8
            | Type::U8
            | Type::S16
            | Type::U16
            | Type::S32
            | Type::U32
            | Type::S64
            | Type::U64
            | Type::Float32
            | Type::Float64
            | Type::Char
    )
}

/// One argument as the typed call takes it.
pub enum TypedArg<'a> {
    List(NumList<'a>),
    Scalar(Scalar),
}

/// The arguments of one call in typed form, or `None` when one of them is
/// not at hand as bytes of exactly its element type (the `Val` path then).
pub fn typed_args<'a>(kinds: &[Param], args: &'a [Arg]) -> Option<Vec<TypedArg<'a>>> {
    kinds
        .iter()
        .zip(args)
        .map(|(kind, arg)| match (kind, arg) {
            (Param::List(dtype), Arg::Rows(a, rows)) if a.shape.len() == 1 => {
                NumList::of(a, *dtype, rows.start, rows.len()).map(TypedArg::List)
            }
            (Param::List(dtype), Arg::Row(a, row)) if a.shape.len() == 2 => {
                let n = a.shape[1];
                NumList::of(a, *dtype, row * n, n).map(TypedArg::List)
            }
            (Param::Scalar, Arg::Val(v)) => Some(TypedArg::Scalar(Scalar(v.clone()))),
            _ => None,
        })
        .collect()
}

/// Call `func` with typed arguments; the result list as JSON in `encoding`,
/// or `None` when wasmtime does not accept the typed signature (the caller
/// takes the `Val` path then). An error is the call's own (a trap).
pub fn call(
    func: Func,
    store: impl AsContextMut,
    args: Vec<TypedArg<'_>>,
    result: Dtype,
    encoding: Encoding,
) -> wasmtime::Result<Option<Json>> {
    use TypedArg::{List as L, Scalar as S};
    let mut it = args.into_iter();
    let (a, b, c) = (it.next(), it.next(), it.next());
    macro_rules! go {
        ($($p:expr),+ ; $($t:ty),+) => {
            match func.typed::<($($t,)+), (NumVec,)>(&store) {
                Ok(typed) => typed.call(store, ($($p,)+))?.0,
                Err(_) => return Ok(None),
            }
        };
    }
    let out = match (a, b, c) {
        (Some(L(a)), None, None) => go!(a; NumList),
        (Some(S(a)), None, None) => go!(a; Scalar),
        (Some(L(a)), Some(L(b)), None) => go!(a, b; NumList, NumList),
        (Some(L(a)), Some(S(b)), None) => go!(a, b; NumList, Scalar),
        (Some(S(a)), Some(L(b)), None) => go!(a, b; Scalar, NumList),
        (Some(S(a)), Some(S(b)), None) => go!(a, b; Scalar, Scalar),
        (Some(L(a)), Some(L(b)), Some(L(c))) => go!(a, b, c; NumList, NumList, NumList),
        (Some(L(a)), Some(L(b)), Some(S(c))) => go!(a, b, c; NumList, NumList, Scalar),
        (Some(L(a)), Some(S(b)), Some(L(c))) => go!(a, b, c; NumList, Scalar, NumList),
        (Some(L(a)), Some(S(b)), Some(S(c))) => go!(a, b, c; NumList, Scalar, Scalar),
        (Some(S(a)), Some(L(b)), Some(L(c))) => go!(a, b, c; Scalar, NumList, NumList),
        (Some(S(a)), Some(L(b)), Some(S(c))) => go!(a, b, c; Scalar, NumList, Scalar),
        (Some(S(a)), Some(S(b)), Some(L(c))) => go!(a, b, c; Scalar, Scalar, NumList),
        (Some(S(a)), Some(S(b)), Some(S(c))) => go!(a, b, c; Scalar, Scalar, Scalar),
        _ => return Ok(None),
    };
    Ok(Some(out.to_json(result, encoding)))
}

/// A list argument: borrowed, aligned elements of one numeric type.
#[derive(Clone, Copy)]
pub enum NumList<'a> {
    F64(&'a [f64]),
    F32(&'a [f32]),
    S64(&'a [i64]),
    U64(&'a [u64]),
    S32(&'a [i32]),
    U32(&'a [u32]),
    U8(&'a [u8]),
}

impl<'a> NumList<'a> {
    /// Items `first..first + n` of `a` when its dtype is `dtype` and its
    /// buffer is aligned for it (on a little-endian host).
    fn of(a: &'a ArrayForm, dtype: Dtype, first: usize, n: usize) -> Option<NumList<'a>> {
        if a.dtype != dtype || cfg!(target_endian = "big") {
            return None;
        }
        let size = dtype.size();
        let bytes = a.data.get(first.checked_mul(size)?..first.checked_add(n)?.checked_mul(size)?)?;
        fn cast<T: Copy>(bytes: &[u8]) -> Option<&[T]> {
            // SAFETY: T is a primitive number (every bit pattern valid, no
            // padding); `align_to` only yields correctly aligned elements and
            // the empty prefix/suffix check makes the view cover all bytes.
            let (pre, mid, post) = unsafe { bytes.align_to::<T>() };
            (pre.is_empty() && post.is_empty()).then_some(mid)
        }
        Some(match dtype {
            Dtype::F64 => NumList::F64(cast(bytes)?),
            Dtype::F32 => NumList::F32(cast(bytes)?),
            Dtype::I64 => NumList::S64(cast(bytes)?),
            Dtype::U64 => NumList::U64(cast(bytes)?),
            Dtype::I32 => NumList::S32(cast(bytes)?),
            Dtype::U32 => NumList::U32(cast(bytes)?),
            Dtype::U8 => NumList::U8(bytes),
            _ => return None,
        })
    }
}

/// The result list, lifted as the element type the WIT declares.
pub enum NumVec {
    F64(Vec<f64>),
    F32(Vec<f32>),
    S64(Vec<i64>),
    U64(Vec<u64>),
    S32(Vec<i32>),
    U32(Vec<u32>),
    U8(Vec<u8>),
}

impl NumVec {
    /// As the `Val` path writes a `list<…>` result: an array form, or JSON
    /// numbers converted exactly as `val_to_json` converts each element.
    fn to_json(&self, dtype: Dtype, encoding: Encoding) -> Json {
        // Written item by item into a buffer of the final size (a
        // `flat_map(..).collect()` of the bytes went byte by byte).
        fn le<T: Copy, const N: usize>(xs: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            let mut out = vec![0u8; xs.len() * N];
            for (dst, &x) in out.chunks_exact_mut(N).zip(xs) {
                dst.copy_from_slice(&f(x));
            }
            out
        }
        if encoding == Encoding::Array {
            let data = match self {
                NumVec::F64(v) => le(v, f64::to_le_bytes),
                NumVec::F32(v) => le(v, f32::to_le_bytes),
                NumVec::S64(v) => le(v, i64::to_le_bytes),
                NumVec::U64(v) => le(v, u64::to_le_bytes),
                NumVec::S32(v) => le(v, i32::to_le_bytes),
                NumVec::U32(v) => le(v, u32::to_le_bytes),
                NumVec::U8(v) => v.clone(),
            };
            let n = data.len() / dtype.size();
            return ArrayForm { dtype, shape: vec![n], data: data.into() }.to_json();
        }
        let each = |ty: Type, vals: &mut dyn Iterator<Item = Val>| Json::Array(vals.map(|v| val_to_json(&ty, &v, encoding)).collect());
        match self {
            NumVec::F64(v) => each(Type::Float64, &mut v.iter().map(|&x| Val::Float64(x))),
            NumVec::F32(v) => each(Type::Float32, &mut v.iter().map(|&x| Val::Float32(x))),
            NumVec::S64(v) => each(Type::S64, &mut v.iter().map(|&x| Val::S64(x))),
            NumVec::U64(v) => each(Type::U64, &mut v.iter().map(|&x| Val::U64(x))),
            NumVec::S32(v) => each(Type::S32, &mut v.iter().map(|&x| Val::S32(x))),
            NumVec::U32(v) => each(Type::U32, &mut v.iter().map(|&x| Val::U32(x))),
            NumVec::U8(v) => each(Type::U8, &mut v.iter().map(|&x| Val::U8(x))),
        }
    }
}

/// A numeric scalar, lowered as the WIT type it is given for.
pub struct Scalar(Val);

// ---- wasmtime's typed traits ------------------------------------------------

fn list_elem(ty: &InterfaceType, types: &wasmtime::component::__internal::ComponentTypes) -> Option<InterfaceType> {
    match ty {
        InterfaceType::List(i) => Some(types[*i].element),
        _ => None,
    }
}

fn numeric_elem(t: &InterfaceType) -> bool {
    use InterfaceType as I;
    matches!(t, I::Float64 | I::Float32 | I::S64 | I::U64 | I::S32 | I::U32 | I::U8)
}

fn typecheck_list(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
    match list_elem(ty, types.types) {
        Some(e) if numeric_elem(&e) => Ok(()),
        _ => wasmtime::bail!("expected a list of numbers"),
    }
}

// SAFETY: a list is a (pointer, length) pair in the canonical ABI, as for
// `[T]`/`Vec<T>`, whose implementations do all the lowering and lifting.
unsafe impl ComponentType for NumList<'_> {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        typecheck_list(ty, types)
    }
}

macro_rules! each_list {
    ($self:expr, $v:ident => $e:expr) => {
        match $self {
            NumList::F64($v) => $e,
            NumList::F32($v) => $e,
            NumList::S64($v) => $e,
            NumList::U64($v) => $e,
            NumList::S32($v) => $e,
            NumList::U32($v) => $e,
            NumList::U8($v) => $e,
        }
    };
}

/// The list's element type is the one the wrapper holds (else an error, never
/// a mis-typed store).
fn check_elem<U>(list: &NumList<'_>, cx: &LowerContext<'_, U>, ty: InterfaceType) -> wasmtime::Result<()> {
    use InterfaceType as I;
    let ok = matches!(
        (list, list_elem(&ty, cx.types)),
        (NumList::F64(_), Some(I::Float64))
            | (NumList::F32(_), Some(I::Float32))
            | (NumList::S64(_), Some(I::S64))
            | (NumList::U64(_), Some(I::U64))
            | (NumList::S32(_), Some(I::S32))
            | (NumList::U32(_), Some(I::U32))
            | (NumList::U8(_), Some(I::U8))
    );
    if ok {
        Ok(())
    } else {
        wasmtime::bail!("a typed list argument does not have the parameter's element type")
    }
}

// SAFETY: delegates to wasmtime's `Lower for [T]` with the matching `T`.
unsafe impl Lower for NumList<'_> {
    fn linear_lower_to_flat<U>(
        &self,
        cx: &mut LowerContext<'_, U>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<[ValRaw; 2]>,
    ) -> wasmtime::Result<()> {
        check_elem(self, cx, ty)?;
        each_list!(self, v => <[_] as Lower>::linear_lower_to_flat(*v, cx, ty, dst))
    }

    fn linear_lower_to_memory<U>(&self, cx: &mut LowerContext<'_, U>, ty: InterfaceType, offset: usize) -> wasmtime::Result<()> {
        check_elem(self, cx, ty)?;
        each_list!(self, v => <[_] as Lower>::linear_lower_to_memory(*v, cx, ty, offset))
    }
}

// SAFETY: as for `NumList`.
unsafe impl ComponentType for NumVec {
    type Lower = [ValRaw; 2];
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        typecheck_list(ty, types)
    }
}

macro_rules! lift_as {
    ($cx:expr, $ty:expr, $how:ident, $src:expr) => {{
        use InterfaceType as I;
        match list_elem(&$ty, $cx.types) {
            Some(I::Float64) => Vec::<f64>::$how($cx, $ty, $src).map(NumVec::F64),
            Some(I::Float32) => Vec::<f32>::$how($cx, $ty, $src).map(NumVec::F32),
            Some(I::S64) => Vec::<i64>::$how($cx, $ty, $src).map(NumVec::S64),
            Some(I::U64) => Vec::<u64>::$how($cx, $ty, $src).map(NumVec::U64),
            Some(I::S32) => Vec::<i32>::$how($cx, $ty, $src).map(NumVec::S32),
            Some(I::U32) => Vec::<u32>::$how($cx, $ty, $src).map(NumVec::U32),
            Some(I::U8) => Vec::<u8>::$how($cx, $ty, $src).map(NumVec::U8),
            _ => wasmtime::bail!("expected a list of numbers"),
        }
    }};
}

// SAFETY: delegates to wasmtime's `Lift for Vec<T>` with the declared `T`.
unsafe impl Lift for NumVec {
    fn linear_lift_from_flat(cx: &mut LiftContext<'_>, ty: InterfaceType, src: &[ValRaw; 2]) -> wasmtime::Result<Self> {
        lift_as!(cx, ty, linear_lift_from_flat, src)
    }

    fn linear_lift_from_memory(cx: &mut LiftContext<'_>, ty: InterfaceType, bytes: &[u8]) -> wasmtime::Result<Self> {
        lift_as!(cx, ty, linear_lift_from_memory, bytes)
    }
}

// SAFETY: every primitive flattens to one `ValRaw`; the declared ABI (the
// widest scalar) is never used for placement (see the module's invariants),
// and lowering delegates to the primitive's own implementation.
unsafe impl ComponentType for Scalar {
    type Lower = ValRaw;
    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::SCALAR8;

    fn typecheck(ty: &InterfaceType, _: &InstanceType<'_>) -> wasmtime::Result<()> {
        use InterfaceType as I;
        match ty {
            I::Bool | I::S8 | I::U8 | I::S16 | I::U16 | I::S32 | I::U32 | I::S64 | I::U64 | I::Float32 | I::Float64 | I::Char => Ok(()),
            _ => wasmtime::bail!("expected a number"),
        }
    }
}

macro_rules! each_scalar {
    ($self:expr, $ty:expr, $v:ident => $e:expr) => {{
        use InterfaceType as I;
        match (&$self.0, $ty) {
            (Val::Bool($v), I::Bool) => $e,
            (Val::S8($v), I::S8) => $e,
            (Val::U8($v), I::U8) => $e,
            (Val::S16($v), I::S16) => $e,
            (Val::U16($v), I::U16) => $e,
            (Val::S32($v), I::S32) => $e,
            (Val::U32($v), I::U32) => $e,
            (Val::S64($v), I::S64) => $e,
            (Val::U64($v), I::U64) => $e,
            (Val::Float32($v), I::Float32) => $e,
            (Val::Float64($v), I::Float64) => $e,
            (Val::Char($v), I::Char) => $e,
            _ => wasmtime::bail!("a typed scalar argument does not have the parameter's type"),
        }
    }};
}

// SAFETY: delegates to the primitive's `Lower`, whose `Lower` type is `ValRaw` too.
unsafe impl Lower for Scalar {
    fn linear_lower_to_flat<U>(
        &self,
        cx: &mut LowerContext<'_, U>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<ValRaw>,
    ) -> wasmtime::Result<()> {
        each_scalar!(self, ty, v => v.linear_lower_to_flat(cx, ty, dst))
    }

    fn linear_lower_to_memory<U>(&self, cx: &mut LowerContext<'_, U>, ty: InterfaceType, offset: usize) -> wasmtime::Result<()> {
        each_scalar!(self, ty, v => v.linear_lower_to_memory(cx, ty, offset))
    }
}
