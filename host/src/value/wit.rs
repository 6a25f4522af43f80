//! Rendering component types in WIT syntax, for signatures shown to users
//! and for type-mismatch messages.

use wasmtime::component::types::Type;

/// `list<tuple<s64, string>>`, `record { x: f64, y: f64 }`, ...
pub fn wit_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", wit_type(&l.ty())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", wit_type(&l.ty()), l.len()),
        Type::Map(m) => format!("map<{}, {}>", wit_type(&m.key()), wit_type(&m.value())),
        Type::Record(r) => {
            let fields: Vec<String> = r.fields().map(|f| format!("{}: {}", f.name, wit_type(&f.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let types: Vec<String> = t.types().map(|t| wit_type(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match c.ty {
                    Some(t) => format!("{}({})", c.name, wit_type(&t)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", wit_type(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (None, None) => "result".into(),
            (Some(o), None) => format!("result<{}>", wit_type(&o)),
            (None, Some(e)) => format!("result<_, {}>", wit_type(&e)),
            (Some(o), Some(e)) => format!("result<{}, {}>", wit_type(&o), wit_type(&e)),
        },
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
    }
}

/// `func(x: s64, y: s64) -> s64`
pub fn signature(params: &[(String, Type)], results: &[Type]) -> String {
    let params: Vec<String> = params.iter().map(|(n, t)| format!("{n}: {}", wit_type(t))).collect();
    match results.first() {
        Some(r) => format!("func({}) -> {}", params.join(", "), wit_type(r)),
        None => format!("func({})", params.join(", ")),
    }
}

/// The snake_case spelling of a WIT identifier (`sum-chunk` → `sum_chunk`).
pub fn snake_case(wit: &str) -> String {
    wit.replace('-', "_")
}

/// Does `given` (from JSON or Python: `sum_chunk`) name the WIT identifier
/// `wit` (kebab-case: `sum-chunk`)? The one place that rule lives.
pub fn wit_name_matches(wit: &str, given: &str) -> bool {
    wit.len() == given.len() && wit.bytes().zip(given.bytes()).all(|(w, g)| w == g || (w == b'-' && g == b'_'))
}

#[cfg(test)]
mod tests {
    use super::wit_name_matches;

    #[test]
    fn snake_case_names_kebab_case() {
        assert!(wit_name_matches("sum-chunk", "sum-chunk"));
        assert!(wit_name_matches("sum-chunk", "sum_chunk"));
        assert!(!wit_name_matches("sum_chunk", "sum-chunk"));
        assert!(!wit_name_matches("sum-chunk", "sum-chunks"));
        assert!(!wit_name_matches("add3", "add4"));
    }
}
