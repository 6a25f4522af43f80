//! The dashboard: one page served by the controller itself at `/` (its
//! HTML, CSS and JS compiled into the binary; no CDN), and the live feed it
//! listens to, `GET /v1/events` (server-sent events).
//!
//! Invariants:
//! - The page and its assets hold no data and need no token; everything the
//!   page shows comes from token-protected routes (`/v1/engines`,
//!   `/v1/tasks…`, `/v1/components`, `/v1/events`), which it calls with
//!   `Authorization: Bearer` — the token typed into its login form, or given
//!   in the URL's fragment (`/#token=…`, never sent to the server) by
//!   `wasmpar dashboard`. It keeps the token in `sessionStorage` only.
//! - The page never turns data into markup (text nodes only), and is served
//!   with a Content-Security-Policy that allows no inline script, no other
//!   origin and no framing.
//! - [`EventHub::send`] never blocks and never fails: with nobody listening
//!   an event is dropped; a listener that falls behind by more than
//!   [`EVENTS_CAPACITY`] events gets a `lagged` event and refetches.
//! - The hub keeps the last five minutes of throughput (one sample per
//!   engine snapshot: the calls reported through [`EventHub::calls_finished`]
//!   since the previous one), so a page opened late still draws its chart.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::Stream;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::engine::EngineStatus;

/// Events a slow listener may fall behind by before it is told to refetch.
pub const EVENTS_CAPACITY: usize = 1024;
/// How much throughput history the hub keeps (the chart's width).
pub const THROUGHPUT_WINDOW: Duration = Duration::from_secs(300);

/// What `GET /v1/events` streams, one JSON object per SSE `data:` line,
/// tagged by `type`. docs/history.md describes each.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DashboardEvent {
    /// First on every connection: the throughput history and the latest
    /// engine snapshot.
    Hello {
        throughput: Vec<ThroughputSample>,
        engines: Vec<EngineStatus>,
    },
    /// Every second: every engine, as `GET /v1/engines` answers it.
    Engines {
        at: DateTime<Utc>,
        engines: Vec<EngineStatus>,
        throughput: ThroughputSample,
    },
    TaskSubmitted {
        task: TaskBrief,
    },
    /// A running task's progress; sent at most every 200 ms per task.
    TaskProgress {
        id: String,
        done: u64,
        total: u64,
    },
    TaskFinished {
        task: TaskBrief,
    },
    /// A component was uploaded, replaced or deleted: refetch `/v1/components`.
    ComponentsChanged {
        name: String,
    },
    /// This listener missed `skipped` events: refetch what it shows.
    Lagged {
        skipped: u64,
    },
}

/// A task in a line: what the task stream shows without fetching it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskBrief {
    pub id: String,
    pub op: String,
    pub component: String,
    pub function: String,
    /// `pending`, `running`, `done`, `failed`, `cancelled` or `lost`.
    pub status: String,
    pub done: u64,
    pub total: u64,
    pub engines: Vec<usize>,
    pub submitted: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<f64>,
    /// The error's message, for a failed task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Calls completed between the previous sample and `at` (about a second).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ThroughputSample {
    pub at: DateTime<Utc>,
    pub calls: u64,
}

/// Where events are sent and listened to. Cheap to share (`Arc`).
pub struct EventHub {
    tx: broadcast::Sender<DashboardEvent>,
    samples: Mutex<Samples>,
    calls: AtomicU64,
}

#[derive(Default)]
struct Samples {
    history: VecDeque<ThroughputSample>,
    last_total: Option<u64>,
    last_engines: Vec<EngineStatus>,
}

impl Default for EventHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(EVENTS_CAPACITY);
        EventHub { tx, samples: Mutex::new(Samples::default()), calls: AtomicU64::new(0) }
    }
}

impl EventHub {
    pub fn new() -> Arc<EventHub> {
        Arc::new(EventHub::default())
    }

    /// Send to every listener; nothing happens without one.
    pub fn send(&self, event: DashboardEvent) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DashboardEvent> {
        self.tx.subscribe()
    }

    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// `n` component calls finished (a task's progress moved by `n`): the
    /// throughput chart counts these.
    pub fn calls_finished(&self, n: u64) {
        self.calls.fetch_add(n, Ordering::Relaxed);
    }

    /// Take an engine snapshot: record a throughput sample (the calls
    /// finished since the last snapshot) and send both.
    pub fn record_engines(&self, engines: Vec<EngineStatus>) {
        let at = Utc::now();
        let total = self.calls.load(Ordering::Relaxed);
        let sample = {
            let mut s = self.samples.lock();
            let calls = s.last_total.map_or(total, |last| total.saturating_sub(last));
            s.last_total = Some(total);
            let sample = ThroughputSample { at, calls };
            s.history.push_back(sample);
            let window = chrono::Duration::from_std(THROUGHPUT_WINDOW).unwrap_or(chrono::Duration::minutes(5));
            while s.history.front().is_some_and(|f| at - f.at > window) {
                s.history.pop_front();
            }
            s.last_engines = engines.clone();
            sample
        };
        self.send(DashboardEvent::Engines { at, engines, throughput: sample });
    }

    fn hello(&self) -> DashboardEvent {
        let s = self.samples.lock();
        DashboardEvent::Hello { throughput: s.history.iter().copied().collect(), engines: s.last_engines.clone() }
    }

    /// Snapshot the engines every `period` with `snapshot` (for example
    /// `move || controller.engines()`) until the returned task is aborted.
    pub fn spawn_engine_snapshots<F>(self: &Arc<Self>, period: Duration, snapshot: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Vec<EngineStatus> + Send + Sync + 'static,
    {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                hub.record_engines(snapshot());
            }
        })
    }
}

/// The URL `wasmpar dashboard` prints: the token rides in the fragment,
/// which browsers do not send to the server.
pub fn dashboard_url(base_url: &str, token: &str) -> String {
    format!("{}/#token={token}", base_url.trim_end_matches('/'))
}

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`, `/dashboard/app.js`, `/dashboard/app.css`: public (no data in them).
pub fn page_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/dashboard/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/dashboard/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
}

/// `GET /v1/events`: merge into the token-protected router.
pub fn event_routes<S: Clone + Send + Sync + 'static>(hub: Arc<EventHub>) -> Router<S> {
    Router::new().route("/v1/events", get(events)).with_state(hub)
}

async fn events(State(hub): State<Arc<EventHub>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before the hello, so nothing falls between them.
    let rx = hub.subscribe();
    let hello = hub.hello();
    let stream = futures::stream::unfold((Some(hello), rx), |(first, mut rx)| async move {
        let event = match first {
            Some(hello) => hello,
            None => match rx.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(skipped)) => DashboardEvent::Lagged { skipped },
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        Some((Ok(to_sse(&event)), (None, rx)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn to_sse(event: &DashboardEvent) -> Event {
    match Event::default().json_data(event) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "a dashboard event did not serialize");
            Event::default().comment("unserializable event dropped")
        }
    }
}

#[cfg(test)]
mod tests;
