//! `GET /metrics`: the controller's counters in Prometheus's text format
//! (version 0.0.4), behind the same token as the API.
//!
//! Invariants:
//! - Counters only grow and are updated with relaxed atomics: recording is
//!   a few nanoseconds and never takes a lock on the hot path.
//! - Gauges (engine states, queue depth, live tasks, store size) are not
//!   kept here: they are read from a [`ClusterSnapshot`] at scrape time, so
//!   they can never drift from the truth.
//! - Every family is written with its `# HELP` and `# TYPE`, histogram
//!   buckets are cumulative and end with `+Inf` equal to `_count`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::engine::EngineStatus;
use crate::store::StoreStats;

/// Upper bounds (seconds) of the call-latency buckets: from a tiny call
/// (~10 µs) to the default task timeout's order (minutes).
pub const LATENCY_BUCKETS: [f64; 16] = [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// How a task ended, for `wasmpar_tasks_finished_total{status=…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Done,
    Failed,
    Cancelled,
    Lost,
}

impl Finished {
    const ALL: [Finished; 4] = [Finished::Done, Finished::Failed, Finished::Cancelled, Finished::Lost];

    fn label(self) -> &'static str {
        match self {
            Finished::Done => "done",
            Finished::Failed => "failed",
            Finished::Cancelled => "cancelled",
            Finished::Lost => "lost",
        }
    }

    /// From a status string (`done`, `failed`, `cancelled`, `lost`).
    pub fn parse(status: &str) -> Option<Finished> {
        Finished::ALL.into_iter().find(|f| f.label() == status)
    }
}

/// The counters the scheduler and the API update.
#[derive(Default)]
pub struct Metrics {
    tasks_submitted: AtomicU64,
    tasks_finished: [AtomicU64; 4],
    calls: AtomicU64,
    call_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    bytes_pushed: AtomicU64,
    bytes_pulled: AtomicU64,
}

/// What is read at scrape time rather than counted.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub engines: Vec<EngineStatus>,
    pub tasks_pending: u64,
    pub tasks_running: u64,
    /// `None` with `--db none`.
    pub store: Option<StoreStats>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub fn task_submitted(&self) {
        self.tasks_submitted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn task_finished(&self, how: Finished) {
        self.tasks_finished[how as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One call of a component function finished (`ok` = it returned).
    pub fn call_finished(&self, latency: Duration, ok: bool) {
        self.calls_finished(1, latency, ok);
    }

    /// `n` calls that finished together, each taking `each` (the calls of
    /// one batch of a map, timed together).
    pub fn calls_finished(&self, n: u64, each: Duration, ok: bool) {
        self.calls.fetch_add(n, Ordering::Relaxed);
        if !ok {
            self.call_errors.fetch_add(n, Ordering::Relaxed);
        }
        let secs = each.as_secs_f64();
        // Only the first bucket that holds it; rendering makes them cumulative.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(n, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(n, Ordering::Relaxed);
        let ns = u64::try_from(each.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_ns.fetch_add(ns.saturating_mul(n), Ordering::Relaxed);
    }

    pub fn pushed(&self, bytes: u64) {
        self.bytes_pushed.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn pulled(&self, bytes: u64) {
        self.bytes_pulled.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A number that changes whenever work is submitted, finishes or moves
    /// bytes: what `trim` watches to see the server go quiet.
    pub fn activity(&self) -> u64 {
        let finished: u64 = self.tasks_finished.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        self.tasks_submitted
            .load(Ordering::Relaxed)
            .wrapping_add(finished)
            .wrapping_add(self.calls.load(Ordering::Relaxed))
            .wrapping_add(self.bytes_pushed.load(Ordering::Relaxed))
            .wrapping_add(self.bytes_pulled.load(Ordering::Relaxed))
    }

    /// The whole exposition.
    pub fn render(&self, snap: &ClusterSnapshot) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {}", number(*value));
            }
        };
        family(
            "wasmpar_tasks_submitted_total",
            "counter",
            "Tasks submitted since the controller started.",
            &[(String::new(), load(&self.tasks_submitted) as f64)],
        );
        let finished: Vec<_> =
            Finished::ALL.iter().map(|f| (labels(&[("status", f.label())]), load(&self.tasks_finished[*f as usize]) as f64)).collect();
        family("wasmpar_tasks_finished_total", "counter", "Tasks finished since the controller started, by how they ended.", &finished);
        family(
            "wasmpar_tasks",
            "gauge",
            "Tasks not finished yet, by status.",
            &[(labels(&[("status", "pending")]), snap.tasks_pending as f64), (labels(&[("status", "running")]), snap.tasks_running as f64)],
        );
        family("wasmpar_calls_total", "counter", "Component function calls finished.", &[(String::new(), load(&self.calls) as f64)]);
        family(
            "wasmpar_call_errors_total",
            "counter",
            "Component function calls that trapped, timed out or failed.",
            &[(String::new(), load(&self.call_errors) as f64)],
        );
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 3);
        let mut cumulative = 0u64;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += load(count);
            buckets.push((labels(&[("le", &number(*bound))]), cumulative as f64));
        }
        let count = load(&self.latency_count);
        buckets.push((labels(&[("le", "+Inf")]), count as f64));
        let _ = writeln!(out, "# HELP wasmpar_call_duration_seconds Time of one component function call on an engine.");
        let _ = writeln!(out, "# TYPE wasmpar_call_duration_seconds histogram");
        for (l, v) in &buckets {
            let _ = writeln!(out, "wasmpar_call_duration_seconds_bucket{l} {}", number(*v));
        }
        let _ = writeln!(out, "wasmpar_call_duration_seconds_sum {}", number(load(&self.latency_sum_ns) as f64 / 1e9));
        let _ = writeln!(out, "wasmpar_call_duration_seconds_count {count}");

        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {}", number(*value));
            }
        };
        let mut states: Vec<(String, usize)> = Vec::new();
        for e in &snap.engines {
            match states.iter_mut().find(|(s, _)| *s == e.state) {
                Some((_, n)) => *n += 1,
                None => states.push((e.state.clone(), 1)),
            }
        }
        for known in ["idle", "busy"] {
            if !states.iter().any(|(s, _)| s == known) {
                states.push((known.to_string(), 0));
            }
        }
        states.sort();
        let states: Vec<_> = states.iter().map(|(s, n)| (labels(&[("state", s)]), *n as f64)).collect();
        family("wasmpar_engines", "gauge", "Engines by state.", &states);
        let per_engine = |f: &dyn Fn(&EngineStatus) -> f64| -> Vec<(String, f64)> {
            snap.engines.iter().map(|e| (labels(&[("engine", &e.id.to_string())]), f(e))).collect()
        };
        family("wasmpar_engine_queue_depth", "gauge", "Jobs waiting in each engine's queue.", &per_engine(&|e| e.queued as f64));
        family(
            "wasmpar_queue_depth",
            "gauge",
            "Jobs waiting in all engines' queues.",
            &[(String::new(), snap.engines.iter().map(|e| e.queued as f64).sum())],
        );
        family("wasmpar_engine_completed_total", "counter", "Jobs each engine has completed.", &per_engine(&|e| e.completed as f64));
        family(
            "wasmpar_engine_restarts_total",
            "counter",
            "Times each engine was restarted after a crash.",
            &per_engine(&|e| e.restarts as f64),
        );
        family(
            "wasmpar_bytes_pushed_total",
            "counter",
            "Bytes of values pushed or scattered into engine namespaces.",
            &[(String::new(), load(&self.bytes_pushed) as f64)],
        );
        family(
            "wasmpar_bytes_pulled_total",
            "counter",
            "Bytes of values pulled or gathered from engine namespaces.",
            &[(String::new(), load(&self.bytes_pulled) as f64)],
        );
        if let Some(store) = snap.store {
            family("wasmpar_store_tasks", "gauge", "Task records in the task store.", &[(String::new(), store.tasks as f64)]);
            family("wasmpar_store_bytes", "gauge", "Bytes of task records in the task store.", &[(String::new(), store.bytes as f64)]);
            family(
                "wasmpar_store_backlog",
                "gauge",
                "Task records handed to the store and not committed yet.",
                &[(String::new(), store.backlog as f64)],
            );
        }
        out
    }
}

/// `{a="x",b="y"}` with values escaped as the format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// State of the `/metrics` route: the counters and how to read the gauges.
#[derive(Clone)]
pub struct MetricsSource {
    pub metrics: Arc<Metrics>,
    pub snapshot: Arc<dyn Fn() -> ClusterSnapshot + Send + Sync>,
}

/// `GET /metrics`: merge into the token-protected router. `snapshot` may
/// block briefly (it reads the store's counts); it runs off the async workers.
pub fn routes<S: Clone + Send + Sync + 'static>(source: MetricsSource) -> Router<S> {
    Router::new().route("/metrics", get(scrape)).with_state(source)
}

async fn scrape(State(source): State<MetricsSource>) -> Response {
    let text = tokio::task::spawn_blocking(move || source.metrics.render(&(source.snapshot)())).await;
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "rendering the metrics failed\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(id: usize, state: &str, queued: usize) -> EngineStatus {
        EngineStatus { id, state: state.into(), queued, completed: 7 * id as u64, restarts: 0, libraries: vec![], ..Default::default() }
    }

    fn value(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"));
        line[series.len() + 1..].parse().unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn counters_histogram_and_gauges_render() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.task_submitted();
        }
        m.task_finished(Finished::Done);
        m.task_finished(Finished::Done);
        m.task_finished(Finished::parse("failed").expect("a status"));
        m.call_finished(Duration::from_micros(20), true); // le 5e-5
        m.call_finished(Duration::from_millis(3), true); // le 5e-3
        m.call_finished(Duration::from_secs(100), false); // only +Inf
        m.pushed(800);
        m.pulled(24);
        let snap = ClusterSnapshot {
            engines: vec![engine(0, "idle", 0), engine(1, "busy", 3), engine(2, "busy", 2)],
            tasks_pending: 4,
            tasks_running: 1,
            store: Some(StoreStats { tasks: 10, bytes: 2048, backlog: 0 }),
        };
        let text = m.render(&snap);
        assert_eq!(value(&text, "wasmpar_tasks_submitted_total"), 3.0);
        assert_eq!(value(&text, "wasmpar_tasks_finished_total{status=\"done\"}"), 2.0);
        assert_eq!(value(&text, "wasmpar_tasks_finished_total{status=\"failed\"}"), 1.0);
        assert_eq!(value(&text, "wasmpar_tasks_finished_total{status=\"lost\"}"), 0.0);
        assert_eq!(value(&text, "wasmpar_tasks{status=\"pending\"}"), 4.0);
        assert_eq!(value(&text, "wasmpar_calls_total"), 3.0);
        assert_eq!(value(&text, "wasmpar_call_errors_total"), 1.0);
        assert_eq!(value(&text, "wasmpar_call_duration_seconds_bucket{le=\"0.00001\"}"), 0.0);
        assert_eq!(value(&text, "wasmpar_call_duration_seconds_bucket{le=\"0.00005\"}"), 1.0);
        assert_eq!(value(&text, "wasmpar_call_duration_seconds_bucket{le=\"0.005\"}"), 2.0);
        assert_eq!(value(&text, "wasmpar_call_duration_seconds_bucket{le=\"30\"}"), 2.0);
        assert_eq!(value(&text, "wasmpar_call_duration_seconds_bucket{le=\"+Inf\"}"), 3.0);
        assert_eq!(value(&text, "wasmpar_call_duration_seconds_count"), 3.0);
        assert!((value(&text, "wasmpar_call_duration_seconds_sum") - 100.00302).abs() < 1e-9);
        assert_eq!(value(&text, "wasmpar_engines{state=\"busy\"}"), 2.0);
        assert_eq!(value(&text, "wasmpar_engines{state=\"idle\"}"), 1.0);
        assert_eq!(value(&text, "wasmpar_engine_queue_depth{engine=\"1\"}"), 3.0);
        assert_eq!(value(&text, "wasmpar_queue_depth"), 5.0);
        assert_eq!(value(&text, "wasmpar_engine_completed_total{engine=\"2\"}"), 14.0);
        assert_eq!(value(&text, "wasmpar_bytes_pushed_total"), 800.0);
        assert_eq!(value(&text, "wasmpar_bytes_pulled_total"), 24.0);
        assert_eq!(value(&text, "wasmpar_store_bytes"), 2048.0);
        // Every sample line belongs to a family declared just before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap_or_default().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(declared.contains(name) || declared.contains(base), "undeclared series: {line}");
            }
        }
    }

    #[test]
    fn label_values_are_escaped_and_store_is_optional() {
        assert_eq!(labels(&[("state", "a\"b\\c\nd")]), "{state=\"a\\\"b\\\\c\\nd\"}");
        let text = Metrics::new().render(&ClusterSnapshot::default());
        assert!(!text.contains("wasmpar_store_tasks"), "no store, no store gauges");
        assert_eq!(value(&text, "wasmpar_engines{state=\"idle\"}"), 0.0);
    }
}
