//! `wasmpar history` (the task store's query, IPython Parallel's
//! `db_query`) and `wasmpar dashboard` (the dashboard's URL with the token).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use super::output::Printer;
use super::{client, connection_path, Cli};
use crate::client::urlencode;
use crate::store::{TaskPage, TaskQueryParams};

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Only tasks in this status, or several comma-separated
    /// (pending, running, done, failed, cancelled, lost).
    #[arg(long, short = 's')]
    pub status: Option<String>,
    /// Only tasks of this component.
    #[arg(long, short = 'c')]
    pub component: Option<String>,
    /// Submitted at or after: RFC 3339 (2026-11-25T12:00:00Z) or seconds since the epoch.
    #[arg(long)]
    pub since: Option<String>,
    /// Submitted before: RFC 3339 or seconds since the epoch.
    #[arg(long)]
    pub until: Option<String>,
    /// How many tasks, newest first (1 to 1000).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Continue after a previous page (its `next_cursor`).
    #[arg(long)]
    pub cursor: Option<String>,
}

/// The query string of `GET /v1/tasks` for these filters.
fn query_string(a: &HistoryArgs) -> String {
    let params = TaskQueryParams {
        status: a.status.clone(),
        component: a.component.clone(),
        since: a.since.clone(),
        until: a.until.clone(),
        limit: Some(a.limit),
        cursor: a.cursor.clone(),
        full: None,
    };
    let mut parts = Vec::new();
    for (name, value) in [
        ("status", params.status),
        ("component", params.component),
        ("since", params.since),
        ("until", params.until),
        ("limit", params.limit.map(|l| l.to_string())),
        ("cursor", params.cursor),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name}={}", urlencode(&v)));
        }
    }
    parts.join("&")
}

pub fn history(cli: &Cli, a: &HistoryArgs, p: &Printer) -> Result<ExitCode> {
    let page: TaskPage = client(cli)?.get(&format!("/v1/tasks?{}", query_string(a)))?;
    if p.json {
        p.print_json(&page);
        return Ok(ExitCode::SUCCESS);
    }
    if page.tasks.is_empty() {
        println!("{}", p.dim("no tasks match"));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32}  {:<9} {:<8} {:<28} {:>15}  {:<19} {:>10}  error",
        "task", "status", "op", "component/function", "progress", "submitted (UTC)", "wall ms"
    );
    for t in &page.tasks {
        let status = match t.status.as_str() {
            "done" => p.green("done     "),
            s @ ("failed" | "lost") => p.red(&format!("{s:<9}")),
            s => format!("{s:<9}"),
        };
        let wall =
            t.completed.map(|c| format!("{:.1}", (c - t.submitted).num_microseconds().unwrap_or(0) as f64 / 1e3)).unwrap_or_default();
        println!(
            "{:<32}  {} {:<8} {:<28} {:>15}  {:<19} {:>10}  {}",
            t.id,
            status,
            t.op,
            format!("{}/{}", t.component, t.function),
            format!("{}/{}", t.progress.done, t.progress.total),
            t.submitted.format("%Y-%m-%d %H:%M:%S"),
            wall,
            t.error.as_ref().map(|e| format!("{}: {}", e.kind, e.message)).unwrap_or_default()
        );
    }
    if let Some(next) = &page.next_cursor {
        println!("{}", p.dim(&format!("more: wasmpar history --cursor {next} (with the same filters)")));
    }
    Ok(ExitCode::SUCCESS)
}

/// Print the dashboard's URL, the token in its fragment (which browsers do
/// not send to the server).
pub fn dashboard(cli: &Cli, p: &Printer) -> Result<ExitCode> {
    let (url, token) = match (&cli.url, &cli.token) {
        (Some(url), Some(token)) => (url.clone(), token.clone()),
        _ => {
            let path = connection_path(cli);
            let info = crate::api::connection::read(&path)
                .with_context(|| format!("no cluster: cannot read the connection file {}", path.display()))?;
            (cli.url.clone().unwrap_or(info.url), cli.token.clone().unwrap_or(info.token))
        }
    };
    let link = crate::api::dashboard::dashboard_url(&url, &token);
    if p.json {
        p.print_json(&json!({"url": link}));
    } else {
        println!("{link}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_string_encodes_each_filter() {
        let a = HistoryArgs {
            status: Some("done,failed".into()),
            component: Some("my comp".into()),
            since: Some("2026-11-25T12:00:00+01:00".into()),
            until: None,
            limit: 5,
            cursor: None,
        };
        let q = query_string(&a);
        assert_eq!(q, "status=done%2Cfailed&component=my%20comp&since=2026-11-25T12%3A00%3A00%2B01%3A00&limit=5");
    }
}
