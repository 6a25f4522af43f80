//! Reading values typed on the command line: JSON (`3`, `"text"`, `[1,2]`),
//! `@file.json`, `range(10)` / `range(2, 20, 3)`, `arange(-2, 1, 0.01)`, and
//! bare words as strings (`greet world`).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value as Json;

pub fn parse_value(text: &str) -> Result<Json> {
    let t = text.trim();
    if let Some(path) = t.strip_prefix('@') {
        let body = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        return serde_json::from_str(&body).with_context(|| format!("{path} is not valid JSON"));
    }
    if let Some(inner) = t.strip_prefix("range(").and_then(|r| r.strip_suffix(')')) {
        return range(inner);
    }
    if let Some(inner) = t.strip_prefix("arange(").and_then(|r| r.strip_suffix(')')) {
        return arange(inner);
    }
    match serde_json::from_str(t) {
        Ok(v) => Ok(v),
        // A bare word is a string, as a shell user would expect.
        Err(_) if !t.starts_with(['[', '{', '"']) => Ok(Json::String(text.to_string())),
        Err(e) => Err(anyhow!("{text:?} is not valid JSON: {e}")),
    }
}

fn numbers(inner: &str) -> Result<Vec<f64>> {
    inner.split(',').map(|p| p.trim().parse::<f64>().map_err(|_| anyhow!("{p:?} is not a number"))).collect()
}

fn range(inner: &str) -> Result<Json> {
    let n: Vec<i64> =
        inner.split(',').map(|p| p.trim().parse::<i64>().map_err(|_| anyhow!("range: {p:?} is not an integer"))).collect::<Result<_>>()?;
    let (start, stop, step) = match n.as_slice() {
        [stop] => (0, *stop, 1),
        [start, stop] => (*start, *stop, 1),
        [start, stop, step] => (*start, *stop, *step),
        _ => bail!("range takes 1 to 3 integers"),
    };
    if step == 0 {
        bail!("range: step cannot be zero");
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(Json::from(i));
        i += step;
    }
    Ok(Json::Array(out))
}

/// numpy's arange: `start + i*step` while below `stop`.
pub fn arange_values(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    (0..n).map(|i| start + i as f64 * step).collect()
}

fn arange(inner: &str) -> Result<Json> {
    let n = numbers(inner)?;
    let (start, stop, step) = match n.as_slice() {
        [stop] => (0.0, *stop, 1.0),
        [start, stop] => (*start, *stop, 1.0),
        [start, stop, step] => (*start, *stop, *step),
        _ => bail!("arange takes 1 to 3 numbers"),
    };
    if step == 0.0 {
        bail!("arange: step cannot be zero");
    }
    let all_int = [start, stop, step].iter().all(|v| v.fract() == 0.0);
    Ok(Json::Array(
        arange_values(start, stop, step)
            .into_iter()
            .map(|v| if all_int { Json::from(v as i64) } else { serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number) })
            .collect(),
    ))
}

/// `name=value` pairs (`--kw max-iters=80`, `push a=3`).
pub fn parse_assignment(text: &str) -> Result<(String, Json)> {
    let (name, value) = text.split_once('=').ok_or_else(|| anyhow!("{text:?} is not name=value"))?;
    if name.trim().is_empty() {
        bail!("{text:?} has no name before '='");
    }
    Ok((name.trim().to_string(), parse_value(value)?))
}

/// `seed/add3` → ("seed", "add3").
pub fn parse_call(text: &str) -> Result<(String, String)> {
    match text.split_once('/') {
        Some((c, f)) if !c.is_empty() && !f.is_empty() => Ok((c.to_string(), f.to_string())),
        _ => bail!("{text:?} is not COMPONENT/FUNCTION (e.g. seed/add3)"),
    }
}

/// Targets as the API takes them: ids stay numbers, `1,3` becomes a list.
pub fn parse_targets(text: &str) -> Json {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Json::from(i);
    }
    let inner = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(t);
    if inner.contains(',') {
        let ids: Option<Vec<i64>> = inner.split(',').map(|p| p.trim().parse().ok()).collect();
        if let Some(ids) = ids {
            return Json::from(ids);
        }
    }
    Json::String(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_from_the_command_line() {
        assert_eq!(parse_value("3").ok(), Some(json!(3)));
        assert_eq!(parse_value("[1, 2]").ok(), Some(json!([1, 2])));
        assert_eq!(parse_value("world").ok(), Some(json!("world")));
        assert_eq!(parse_value("range(4)").ok(), Some(json!([0, 1, 2, 3])));
        assert_eq!(parse_value("range(1, 10, 4)").ok(), Some(json!([1, 5, 9])));
        assert_eq!(parse_value("arange(0, 1, 0.25)").ok(), Some(json!([0.0, 0.25, 0.5, 0.75])));
        assert!(parse_value("[1, 2").is_err());
        assert!(parse_value("range(1, 2, 0)").is_err());
        assert_eq!(parse_assignment("max-iters=80").ok(), Some(("max-iters".into(), json!(80))));
        assert_eq!(parse_targets("1,3"), json!([1, 3]));
        assert_eq!(parse_targets("2"), json!(2));
        assert_eq!(parse_targets("::2"), json!("::2"));
        assert!(parse_call("seed").is_err());
    }
}
