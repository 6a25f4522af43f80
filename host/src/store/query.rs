//! Task queries (`GET /v1/tasks?status=&component=&since=&until=&limit=&cursor=`,
//! IPython Parallel's `db_query`): the parameters as they come over HTTP,
//! checked once into a [`TaskQuery`] that both stores answer alike.
//!
//! Invariants:
//! - Answers are newest first (by submission order); `next_cursor` is set
//!   exactly when more tasks match beyond this page, and a cursor stays
//!   valid while tasks are added or purged.
//! - `limit` is between 1 and [`MAX_LIMIT`]; bad input is a `BadRequest`
//!   naming the parameter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StoredStatus, StoredTask};
use crate::{Error, Result};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The query string as it arrives.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQueryParams {
    /// One status or several, comma-separated: `done,failed` (pending,
    /// running, done, failed, cancelled, lost).
    #[param(example = "done,failed")]
    pub status: Option<String>,
    pub component: Option<String>,
    /// Submitted at or after: RFC 3339, or seconds since the epoch.
    pub since: Option<String>,
    /// Submitted before: RFC 3339, or seconds since the epoch.
    pub until: Option<String>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Include each task's full view (result, outputs, images).
    pub full: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskQuery {
    /// Any of these; empty = every status.
    pub status: Vec<StoredStatus>,
    pub component: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: usize,
    /// Only tasks older (in submission order) than this position.
    pub before_seq: Option<u64>,
    pub include_view: bool,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            status: Vec::new(),
            component: None,
            since: None,
            until: None,
            limit: DEFAULT_LIMIT,
            before_seq: None,
            include_view: false,
        }
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<StoredTask>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_cursor: Option<String>,
}

impl TaskQueryParams {
    pub fn parse(&self) -> Result<TaskQuery> {
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") => Vec::new(),
            Some(list) => list.split(',').map(|s| StoredStatus::parse(s.trim())).collect::<Result<Vec<_>>>()?,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}, not {limit}")));
        }
        let since = self.since.as_deref().map(|s| parse_time("since", s)).transpose()?;
        let until = self.until.as_deref().map(|s| parse_time("until", s)).transpose()?;
        if let (Some(a), Some(b)) = (since, until) {
            if a > b {
                return Err(Error::BadRequest(format!("since ({a}) is after until ({b})")));
            }
        }
        let before_seq = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(TaskQuery {
            status,
            component: self.component.clone().filter(|c| !c.is_empty()),
            since,
            until,
            limit,
            before_seq,
            include_view: self.full.unwrap_or(false),
        })
    }
}

/// An instant given as RFC 3339 (`2026-11-25T12:00:00Z`) or as seconds
/// since the epoch (`1795000000`, `1795000000.5`).
pub fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = text.parse::<f64>() {
        if (0.0..1e11).contains(&secs) {
            let micros = (secs * 1e6).round() as i64;
            if let Some(t) = DateTime::from_timestamp_micros(micros) {
                return Ok(t);
            }
        }
    }
    Err(Error::BadRequest(format!("{name} must be a time in RFC 3339 (2026-11-25T12:00:00Z) or seconds since the epoch, not `{text}`")))
}

pub(crate) fn encode_cursor(seq: u64) -> String {
    format!("s{seq}")
}

fn decode_cursor(text: &str) -> Result<u64> {
    text.strip_prefix('s')
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| Error::BadRequest(format!("cursor `{text}` is not one this server gave: pass `next_cursor` back unchanged")))
}

impl TaskQuery {
    /// Whether a record matches every filter but the cursor.
    pub(crate) fn matches(&self, task: &StoredTask) -> bool {
        (self.status.is_empty() || self.status.contains(&task.status))
            && self.component.as_ref().is_none_or(|c| *c == task.component)
            && self.since.is_none_or(|t| task.submitted >= t)
            && self.until.is_none_or(|t| task.submitted < t)
    }
}
