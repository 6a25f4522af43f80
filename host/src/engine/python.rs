//! What the host knows of an engine's Python interpreter (the runner
//! component, examples/python-runner): only what the runner wrote in the
//! namespace entry `__python__`.
//!
//! Invariants:
//! - The entry is the runner's, read here and never written: a missing,
//!   malformed or foreign one means "nothing known", never an error.
//! - The Python-only globals it lists are those of the last *finished* cell;
//!   what a stopped cell defined is not in it (it is said so).

use std::collections::BTreeMap;

use super::{Namespace, NsValue};
use crate::error::cut;

/// The namespace entry where the runner records its session and Python-only
/// globals (`MARKER` in examples/python-runner/app.py).
pub const PYTHON_MARKER: &str = "__python__";

/// The runner's record of its interpreter.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PythonState {
    /// The number of the last cell begun.
    pub cell: Option<u64>,
    /// A cell had begun and not finished when the entry was last written.
    pub running: bool,
    /// Python-only globals and their types (`{"f": "function"}`).
    pub objects: BTreeMap<String, String>,
}

impl PythonState {
    /// The record in `value`, if it is one.
    pub fn from_value(value: &NsValue) -> Option<PythonState> {
        let NsValue::Json(text) = value else { return None };
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let record = json.as_object()?;
        let objects = record
            .get("objects")
            .and_then(|o| o.as_object())
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_string())).collect())
            .unwrap_or_default();
        Some(PythonState {
            cell: record.get("cell").and_then(serde_json::Value::as_u64),
            running: record.get("running").and_then(serde_json::Value::as_bool).unwrap_or(false),
            objects,
        })
    }

    /// The record in an engine's namespace, if the runner ran there.
    pub fn of(namespace: &Namespace) -> Option<PythonState> {
        namespace.get(PYTHON_MARKER).and_then(PythonState::from_value)
    }

    /// The type of `name` if it is a Python-only global.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.objects.get(name).map(String::as_str)
    }
}

/// Why a Python-only global cannot be read from outside the interpreter.
pub fn python_only(name: &str, engine: usize, ty: &str) -> String {
    format!(
        "`{}` on engine {engine} is a Python-only object of type `{}`; it stays inside the Python runner \
         (assign a namespace value — None, bool, int, float, str, bytes, a list of numbers, a JSON-like dict — to pull it)",
        cut(name),
        cut(ty)
    )
}

/// What an engine's store rebuild cost its Python interpreter, for the error
/// of the call that trapped: `state` is the runner's record, if any.
pub fn interpreter_lost(engine: usize, state: Option<&PythonState>) -> String {
    const SHOWN: usize = 20;
    let lost = match state {
        Some(s) if !s.objects.is_empty() => {
            let mut names: Vec<String> = s.objects.iter().take(SHOWN).map(|(k, v)| format!("{} ({})", cut(k), cut(v))).collect();
            if s.objects.len() > SHOWN {
                names.push(format!("and {} more", s.objects.len() - SHOWN));
            }
            format!("Python-only globals are lost ({})", names.join(", "))
        }
        _ => "Python-only globals are lost (none recorded)".to_string(),
    };
    let stopped = match state {
        Some(PythonState { running: true, cell: Some(n), .. }) => {
            format!(", and whatever the stopped cell {n} defined or changed in place")
        }
        _ => String::new(),
    };
    format!("the Python interpreter on engine {engine} was restarted: {lost}{stopped}; namespace values are kept")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Option<PythonState> {
        PythonState::from_value(&NsValue::Json(text.into()))
    }

    #[test]
    fn reads_the_runners_record() {
        let s = record(r#"{"session": "ab", "cell": 3, "running": true, "objects": {"f": "function", "math": "module"}}"#);
        let s = s.as_ref();
        assert_eq!(s.and_then(|s| s.type_of("f")), Some("function"));
        assert_eq!(s.and_then(|s| s.type_of("a")), None);
        assert_eq!(s.map(|s| (s.cell, s.running)), Some((Some(3), true)));
        assert_eq!(record("[1]"), None);
        assert_eq!(record("not json"), None);
        assert_eq!(PythonState::from_value(&NsValue::Int(1)), None);
        assert_eq!(record("{}").map(|s| s.objects.len()), Some(0));
    }

    #[test]
    fn says_what_was_lost() {
        let s = record(r#"{"cell": 12, "running": true, "objects": {"helper": "function"}}"#);
        let msg = interpreter_lost(1, s.as_ref());
        assert_eq!(
            msg,
            "the Python interpreter on engine 1 was restarted: Python-only globals are lost (helper (function)), \
             and whatever the stopped cell 12 defined or changed in place; namespace values are kept"
        );
        assert!(interpreter_lost(0, None).contains("(none recorded); namespace values are kept"));
        assert!(python_only("f", 0, "function").starts_with("`f` on engine 0 is a Python-only object of type `function`"));
    }
}
