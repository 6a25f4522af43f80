//! Property tests (a bounded fuzzing pass that runs in CI): JSON ↔ WIT value
//! conversion round trips for every WIT type the seed component uses, no
//! panic on arbitrary JSON, and the targets/slice parser against a brute-force
//! model of Python's slicing.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use wasmpar::engine::NsValue;
use wasmpar::runtime::{Limits, LoadedComponent, Runtime};
use wasmpar::scheduler::targets::{python_slice, Selection, Targets};
use wasmpar::value::{json_to_val, val_to_json, Encoding};
use wasmtime::component::types::Type;

fn seed() -> &'static (std::sync::Arc<Runtime>, std::sync::Arc<LoadedComponent>) {
    static SEED: OnceLock<(std::sync::Arc<Runtime>, std::sync::Arc<LoadedComponent>)> = OnceLock::new();
    SEED.get_or_init(|| {
        let limits = Limits { cache_dir: None, ..Limits::default() };
        let rt = Runtime::new(limits).expect("runtime");
        let bytes = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed");
        let (c, _) = rt.components.add("seed", &bytes).expect("seed compiles");
        (rt, c)
    })
}

/// Every parameter and result type of the seed component.
fn all_types() -> Vec<Type> {
    let (_, c) = seed();
    let mut out = Vec::new();
    for f in &c.functions {
        out.extend(f.params.iter().map(|(_, t)| t.clone()));
        out.extend(f.results.iter().cloned());
    }
    out
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>().prop_filter("finite", |f| f.is_finite()), Just(0.0), Just(-0.0), Just(f64::MAX), Just(f64::MIN_POSITIVE)]
}

fn int_in(lo: i128, hi: i128) -> BoxedStrategy<Json> {
    prop_oneof![Just(lo), Just(hi), lo..=hi].prop_map(|i| if i < 0 { json!(i as i64) } else { json!(i as u64) }).boxed()
}

/// JSON values of WIT type `ty`, in the wire conventions of API.md.
fn value_of(ty: &Type, depth: u32) -> BoxedStrategy<Json> {
    match ty {
        Type::Bool => any::<bool>().prop_map(Json::Bool).boxed(),
        Type::S8 => int_in(i8::MIN as i128, i8::MAX as i128),
        Type::U8 => int_in(0, u8::MAX as i128),
        Type::S16 => int_in(i16::MIN as i128, i16::MAX as i128),
        Type::U16 => int_in(0, u16::MAX as i128),
        Type::S32 => int_in(i32::MIN as i128, i32::MAX as i128),
        Type::U32 => int_in(0, u32::MAX as i128),
        Type::S64 => int_in(i64::MIN as i128, i64::MAX as i128),
        Type::U64 => int_in(0, u64::MAX as i128),
        Type::Float32 => any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f as f64)).boxed(),
        Type::Float64 => finite().prop_map(|f| json!(f)).boxed(),
        Type::Char => any::<char>().prop_map(|c| Json::String(c.to_string())).boxed(),
        Type::String => ".{0,12}".prop_map(Json::String).boxed(),
        Type::List(l) if depth > 0 => proptest::collection::vec(value_of(&l.ty(), depth - 1), 0..6).prop_map(Json::Array).boxed(),
        Type::List(_) => Just(json!([])).boxed(),
        Type::Tuple(t) => {
            let parts: Vec<BoxedStrategy<Json>> = t.types().map(|t| value_of(&t, depth.saturating_sub(1))).collect();
            parts.prop_map(Json::Array).boxed()
        }
        Type::Record(r) => {
            let fields: Vec<(String, BoxedStrategy<Json>)> =
                r.fields().map(|f| (f.name.to_string(), value_of(&f.ty, depth.saturating_sub(1)))).collect();
            let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
            let strategies: Vec<BoxedStrategy<Json>> = fields.into_iter().map(|(_, s)| s).collect();
            strategies.prop_map(move |vals| Json::Object(names.iter().cloned().zip(vals).collect())).boxed()
        }
        Type::Option(o) => prop_oneof![Just(Json::Null), value_of(&o.ty(), depth)].boxed(),
        Type::Enum(e) => {
            let names: Vec<String> = e.names().map(String::from).collect();
            proptest::sample::select(names).prop_map(Json::String).boxed()
        }
        Type::Flags(f) => {
            let names: Vec<String> = f.names().map(String::from).collect();
            proptest::sample::subsequence(names.clone(), 0..=names.len())
                .prop_map(|v| Json::Array(v.into_iter().map(Json::String).collect()))
                .boxed()
        }
        Type::Variant(v) => {
            let cases: Vec<BoxedStrategy<Json>> = v
                .cases()
                .map(|c| {
                    let name = c.name.to_string();
                    match c.ty {
                        None => Just(Json::String(name)).boxed(),
                        Some(t) => value_of(&t, depth.saturating_sub(1)).prop_map(move |p| json!({ name.clone(): p })).boxed(),
                    }
                })
                .collect();
            proptest::strategy::Union::new(cases).boxed()
        }
        Type::Result(r) => {
            let ok = match r.ok() {
                Some(t) => value_of(&t, depth.saturating_sub(1)).prop_map(|p| json!({"ok": p})).boxed(),
                None => Just(json!({"ok": null})).boxed(),
            };
            let err = match r.err() {
                Some(t) => value_of(&t, depth.saturating_sub(1)).prop_map(|p| json!({"err": p})).boxed(),
                None => Just(json!({"err": null})).boxed(),
            };
            prop_oneof![ok, err].boxed()
        }
        other => panic!("seed uses no {other:?}"),
    }
}

fn typed_value() -> impl Strategy<Value = (usize, Json)> {
    let types = all_types();
    let per_type: Vec<BoxedStrategy<(usize, Json)>> =
        types.iter().enumerate().map(|(i, t)| value_of(t, 3).prop_map(move |v| (i, v)).boxed()).collect();
    proptest::strategy::Union::new(per_type)
}

fn arbitrary_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        finite().prop_map(|f| json!(f)),
        ".{0,8}".prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            proptest::collection::btree_map("[a-z$]{1,6}", inner, 0..4).prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every well-typed JSON value converts, converts back to an equal value,
    /// and the array encoding of lists of numbers round-trips too.
    #[test]
    fn json_wit_round_trip((ty_index, v) in typed_value()) {
        let ty = &all_types()[ty_index];
        let val = json_to_val(ty, &v, "x").map_err(|e| TestCaseError::fail(format!("{e} for {v}")))?;
        let back = val_to_json(ty, &val, Encoding::Json);
        let again = json_to_val(ty, &back, "x").map_err(|e| TestCaseError::fail(format!("{e} for {back}")))?;
        prop_assert_eq!(&val, &again);
        let arr = val_to_json(ty, &val, Encoding::Array);
        let from_arr = json_to_val(ty, &arr, "x").map_err(|e| TestCaseError::fail(format!("{e} for {arr}")))?;
        prop_assert_eq!(&val, &from_arr);
    }

    /// Arbitrary JSON against any type: a value or a clear error, never a panic.
    #[test]
    fn conversion_never_panics(ty_index in 0..64usize, v in arbitrary_json()) {
        let types = all_types();
        let ty = &types[ty_index % types.len()];
        if let Err(e) = json_to_val(ty, &v, "arg") {
            prop_assert!(e.to_string().starts_with("argument `arg"), "{}", e);
        }
    }

    /// Namespace values: what is pushed is what is pulled.
    #[test]
    fn namespace_values_round_trip(v in arbitrary_json()) {
        let ns = NsValue::from_json(&v).map_err(TestCaseError::fail)?;
        let back = ns.to_json(Encoding::Json);
        // Integers compare exactly (u64 and s64 included); a float that is
        // integral may come back as `1.0` for `1` in a float list, nothing else.
        prop_assert_eq!(normalize(&back), normalize(&v));
        let via_array = NsValue::from_json(&ns.to_json(Encoding::Array)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(normalize(&via_array.to_json(Encoding::Json)), normalize(&v));
    }

    /// u64 and s64 at their extremes survive push and pull exactly.
    #[test]
    fn namespace_keeps_64_bit_integers(u in any::<u64>(), i in any::<i64>()) {
        for v in [json!(u), json!(i), json!([u, 1u64]), json!({"u": u})] {
            let back = NsValue::from_json(&v).map_err(TestCaseError::fail)?.to_json(Encoding::Json);
            prop_assert_eq!(&back, &v);
        }
    }

    /// Slices agree with a brute-force model of Python's `range(n)[a:b:c]`.
    #[test]
    fn slices_match_python(n in 0usize..20, start in proptest::option::of(-25i64..25), stop in proptest::option::of(-25i64..25), step in prop_oneof![-5i64..0, 1i64..6]) {
        let got = python_slice(n, start, stop, step).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, model_slice(n as i64, start, stop, step));
    }

    /// Any targets string: a selection or a clear error, never a panic, and
    /// every selected id exists.
    #[test]
    fn targets_parse_safely(s in "[-0-9:,\\[\\] a-z]{0,10}", n in 1usize..10) {
        if let Ok(Selection::Direct(ids)) = Targets::Spec(s).resolve(n) {
            prop_assert!(ids.iter().all(|&i| i < n));
        }
    }
}

/// Numbers in one exact spelling: integers as they are; a float that holds an
/// integer exactly (up to 2^53) as that integer; other floats as floats. A
/// u64 rounded through f64 (1.8446744073709552e19) stays a float and fails.
fn normalize(v: &Json) -> Json {
    match v {
        Json::Number(n) if n.is_i64() || n.is_u64() => Json::Number(n.clone()),
        Json::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => json!(f as i64),
            f => json!(f),
        },
        Json::Array(a) => Json::Array(a.iter().map(normalize).collect()),
        Json::Object(o) => Json::Object(o.iter().map(|(k, v)| (k.clone(), normalize(v))).collect()),
        other => other.clone(),
    }
}

/// Python's slice of `range(n)`, by its definition: normalise the bounds as
/// `slice.indices` does, then walk.
fn model_slice(n: i64, start: Option<i64>, stop: Option<i64>, step: i64) -> Vec<usize> {
    let fix = |v: i64, lo: i64, hi: i64| {
        let v = if v < 0 { v + n } else { v };
        v.clamp(lo, hi)
    };
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let a = start.map_or(if step > 0 { 0 } else { n - 1 }, |v| fix(v, lo, hi));
    let b = stop.map_or(if step > 0 { n } else { -1 }, |v| fix(v, lo, hi));
    let mut out = Vec::new();
    let mut i = a;
    while (step > 0 && i < b) || (step < 0 && i > b) {
        out.push(i as usize);
        i += step;
    }
    out
}

#[test]
fn the_seed_types_cover_every_wit_kind() {
    let names: std::collections::BTreeSet<&str> = all_types()
        .iter()
        .map(|t| match t {
            Type::Record(_) => "record",
            Type::Variant(_) => "variant",
            Type::Enum(_) => "enum",
            Type::Flags(_) => "flags",
            Type::Option(_) => "option",
            Type::Result(_) => "result",
            Type::Tuple(_) => "tuple",
            Type::List(_) => "list",
            Type::Char => "char",
            Type::Float32 => "f32",
            Type::U8 => "u8",
            Type::S8 => "s8",
            Type::U64 => "u64",
            _ => "other",
        })
        .collect();
    for kind in ["record", "variant", "enum", "flags", "option", "result", "tuple", "list", "char", "f32", "u8", "s8", "u64"] {
        assert!(names.contains(kind), "no {kind} among the seed's types");
    }
}
