//! Targets: which engines a request is for, as IPython Parallel's views
//! select them — `"all"`, a Python slice string over the sorted ids
//! (`"::2"`, `"1:3"`, `"-1"`), one id, a list of ids, or `"balanced"`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Targets {
    /// One engine id (negative counts from the end).
    Id(i64),
    /// Several engine ids.
    List(Vec<i64>),
    /// `"all"`, `"balanced"`, a slice such as `"::2"`, `"1:3"`, `"-1"`, or `"1,3"`.
    Spec(String),
}

impl Default for Targets {
    fn default() -> Self {
        Targets::Spec("all".into())
    }
}

impl std::fmt::Display for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Targets::Id(i) => write!(f, "{i}"),
            Targets::List(ids) => write!(f, "{ids:?}"),
            Targets::Spec(s) => write!(f, "{s}"),
        }
    }
}

/// Targets resolved against the engines that exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Direct(Vec<usize>),
    Balanced,
}

impl Targets {
    /// Resolve against `live` engine ids (sorted): explicit ids must be
    /// among them; negative ids and slices count over their positions.
    pub fn resolve_among(&self, live: &[usize]) -> Result<Selection> {
        let check = |i: i64| -> Result<usize> {
            if i < 0 {
                let pos = index(i, live.len())?;
                return Ok(live[pos]);
            }
            let id = i as usize;
            if live.contains(&id) {
                Ok(id)
            } else {
                Err(Error::not_found_hint("engine", i, format!("; the live engines are {live:?}")))
            }
        };
        match self {
            Targets::Id(i) => Ok(Selection::Direct(vec![check(*i)?])),
            Targets::List(ids) => {
                if ids.is_empty() {
                    return Err(Error::BadRequest("targets: an empty list selects no engine".into()));
                }
                let mut out = Vec::with_capacity(ids.len());
                for &i in ids {
                    let id = check(i)?;
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                Ok(Selection::Direct(out))
            }
            Targets::Spec(_) => match self.resolve(live.len())? {
                Selection::Direct(positions) => Ok(Selection::Direct(positions.into_iter().map(|p| live[p]).collect())),
                Selection::Balanced => Ok(Selection::Balanced),
            },
        }
    }

    pub fn resolve(&self, engines: usize) -> Result<Selection> {
        match self {
            Targets::Id(i) => Ok(Selection::Direct(vec![index(*i, engines)?])),
            Targets::List(ids) => {
                if ids.is_empty() {
                    return Err(Error::BadRequest("targets: an empty list selects no engine".into()));
                }
                let mut out = Vec::with_capacity(ids.len());
                for &i in ids {
                    let id = index(i, engines)?;
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                Ok(Selection::Direct(out))
            }
            Targets::Spec(s) => parse_spec(s.trim(), engines),
        }
    }
}

fn index(i: i64, n: usize) -> Result<usize> {
    let n_i = n as i64;
    let idx = if i < 0 { i + n_i } else { i };
    if (0..n_i).contains(&idx) {
        Ok(idx as usize)
    } else {
        Err(Error::not_found_hint("engine", i, format!("; the cluster has engines 0..{}", n.saturating_sub(1))))
    }
}

fn parse_int(s: &str, what: &str) -> Result<i64> {
    s.trim().parse::<i64>().map_err(|_| {
        Error::BadRequest(format!(
            "targets: {what} {s:?} is not an integer (use \"all\", \"balanced\", an id, \"1,3\" or a slice like \"::2\")"
        ))
    })
}

fn parse_spec(s: &str, n: usize) -> Result<Selection> {
    match s {
        "all" | "" | ":" | "::" => return Ok(Selection::Direct((0..n).collect())),
        "balanced" | "lb" | "load-balanced" => return Ok(Selection::Balanced),
        _ => {}
    }
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    if inner.contains(',') {
        let ids = inner.split(',').filter(|p| !p.trim().is_empty()).map(|p| parse_int(p, "id")).collect::<Result<Vec<_>>>()?;
        return Targets::List(ids).resolve(n);
    }
    if !inner.contains(':') {
        return Ok(Selection::Direct(vec![index(parse_int(inner, "id")?, n)?]));
    }
    let parts: Vec<&str> = inner.split(':').collect();
    if parts.len() > 3 {
        return Err(Error::BadRequest(format!("targets: {s:?} is not a slice (at most start:stop:step)")));
    }
    let opt = |p: Option<&&str>, what: &str| -> Result<Option<i64>> {
        match p.map(|p| p.trim()) {
            None | Some("") => Ok(None),
            Some(v) => parse_int(v, what).map(Some),
        }
    };
    let start = opt(parts.first(), "slice start")?;
    let stop = opt(parts.get(1), "slice stop")?;
    let step = opt(parts.get(2), "slice step")?.unwrap_or(1);
    let ids = python_slice(n, start, stop, step)?;
    if ids.is_empty() {
        return Err(Error::BadRequest(format!("targets: the slice {s:?} selects no engine out of {n}")));
    }
    Ok(Selection::Direct(ids))
}

/// `range(n)[start:stop:step]`, exactly as Python computes it.
pub fn python_slice(n: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> Result<Vec<usize>> {
    if step == 0 {
        return Err(Error::BadRequest("targets: slice step cannot be zero".into()));
    }
    let n = n as i64;
    let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let norm = |v: i64| if v < 0 { v + n } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let a = start.map_or(0, |v| clamp(norm(v), 0, n));
        let b = stop.map_or(n, |v| clamp(norm(v), 0, n));
        let mut i = a;
        while i < b {
            out.push(i as usize);
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    } else {
        let a = start.map_or(n - 1, |v| clamp(norm(v), -1, n - 1));
        let b = stop.map_or(-1, |v| clamp(norm(v), -1, n - 1));
        let mut i = a;
        while i > b {
            out.push(i as usize);
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(t: Targets, n: usize) -> Vec<usize> {
        match t.resolve(n) {
            Ok(Selection::Direct(ids)) => ids,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slices_follow_python() {
        let s = |x: &str| direct(Targets::Spec(x.into()), 8);
        assert_eq!(s("all"), (0..8).collect::<Vec<_>>());
        assert_eq!(s("::2"), vec![0, 2, 4, 6]);
        assert_eq!(s("1:3"), vec![1, 2]);
        assert_eq!(s("-1"), vec![7]);
        assert_eq!(s("-3:"), vec![5, 6, 7]);
        assert_eq!(s("::-1"), vec![7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(s("5:1:-2"), vec![5, 3]);
        assert_eq!(s("1,3"), vec![1, 3]);
        assert_eq!(s("[1, 3]"), vec![1, 3]);
        assert_eq!(s("2:100"), vec![2, 3, 4, 5, 6, 7]);
        assert_eq!(s("1::9223372036854775807"), vec![1]);
        assert_eq!(s("-2::-9223372036854775808"), vec![6]);
        assert_eq!(direct(Targets::Id(2), 8), vec![2]);
        assert_eq!(direct(Targets::List(vec![1, 3]), 8), vec![1, 3]);
    }

    #[test]
    fn bad_targets_are_errors() {
        assert!(matches!(Targets::Spec("::0".into()).resolve(8), Err(Error::BadRequest(m)) if m.contains("zero")));
        assert!(matches!(Targets::Id(8).resolve(8), Err(Error::NotFound { .. })));
        assert!(matches!(Targets::Spec("-9".into()).resolve(8), Err(Error::NotFound { .. })));
        assert!(matches!(Targets::Spec("a:b".into()).resolve(8), Err(Error::BadRequest(_))));
        assert!(matches!(Targets::Spec("5:2".into()).resolve(8), Err(Error::BadRequest(m)) if m.contains("no engine")));
        assert!(matches!(Targets::List(vec![]).resolve(8), Err(Error::BadRequest(_))));
        assert_eq!(Targets::Spec("balanced".into()).resolve(8).ok(), Some(Selection::Balanced));
    }
}
