//! The HTTP/JSON API of API.md on axum, and the server around it: binding,
//! the token, the connection file, graceful shutdown.
//!
//! Invariants:
//! - Every route but `GET /v1/health` and `GET /v1/openapi.json` needs the
//!   bearer token; tokens are compared in constant time.
//! - The connection file is written (mode 0600) only once the listener is
//!   bound and every engine is ready, so its existence means "ready".

mod body;
pub mod connection;
#[cfg(test)]
mod contract_tests;
pub mod dashboard;
pub mod error;
mod frames;
pub mod history;
pub mod metrics;
mod push_body;
mod push_stream;
mod routes;
pub mod tls;
mod trim;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use utoipa::OpenApi;

pub use connection::ConnectionInfo;
use error::ApiError;

use crate::scheduler::{Controller, EngineLimits as Limits};
use crate::{Error, Result};

pub struct AppState {
    pub controller: Arc<Controller>,
    /// Every task's record (issue 15): SQLite, or memory with `--db none`.
    pub store: Arc<dyn crate::store::TaskStore>,
    pub events: Arc<dashboard::EventHub>,
    pub metrics: Arc<metrics::Metrics>,
    token: String,
    pub shutdown: Notify,
    fault_injection: bool,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "wasmpar", description = "IPython Parallel's model on WebAssembly components: see API.md"),
    paths(
        routes::health,
        routes::engines,
        routes::upload,
        routes::components,
        routes::component,
        routes::delete_component,
        routes::install,
        routes::submit,
        routes::task,
        routes::cancel,
        routes::push,
        routes::pull,
        routes::push_raw,
        routes::pull_raw,
        routes::scatter,
        routes::gather,
        routes::shutdown,
        history::list,
        history::purge,
        history::events_doc,
        history::metrics_doc
    ),
    components(schemas(crate::scheduler::TaskSpec, crate::scheduler::TaskView, crate::scheduler::Targets, error::ErrorBody)),
    modifiers(&CommonAnswers)
)]
pub struct ApiDoc;

/// What every operation shares, added to the document in one place: the
/// bearer token (all but `GET /v1/health`) with its 401, and the 414 of
/// [`limit_uri`].
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("the token from the connection file")).build(),
            ),
        );
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = path == "/v1/health";
            for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
                if !open {
                    op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
                    op.responses.responses.insert("401".into(), error("missing or wrong token").into());
                }
                op.responses.responses.insert("414".into(), error("the path and query are over the length limit").into());
                for answer in op.responses.responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(answer) = answer {
                        if let Some(stream) = answer.content.get_mut("text/event-stream") {
                            stream.schema = Some(sse_event_schema());
                        }
                    }
                }
            }
        }
        // A raw push of no items has no body; utoipa marks every body of a
        // type that is not an `Option` required (and an `Option` nullable).
        if let Some(body) =
            doc.paths.paths.get_mut("/v1/namespace/{name}").and_then(|p| p.put.as_mut()).and_then(|op| op.request_body.as_mut())
        {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// What one server-sent event of a `text/event-stream` answer is, the way
/// OpenAPI tools read such a schema (each event as an object): its `data`
/// line is one JSON object. (utoipa can only say "a string" of the stream.)
fn sse_event_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .description(Some("one event: its `data` is a JSON object (docs/history.md)"))
        .property("data", text().content_media_type("application/json"))
        .property("event", text())
        .property("id", text())
        .property("retry", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .required("data")
        .into()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn require_token(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.as_bytes().ct_eq(s.token.as_bytes()).into() {
        next.run(req).await
    } else {
        // Never the token's value: only that one was refused, and where.
        tracing::warn!(path = req.uri().path(), given = !given.is_empty(), "refused a request with a missing or wrong token");
        error_answer(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing or wrong token: send `Authorization: Bearer <token>` with the token from the connection file".into(),
        )
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/engines", get(routes::engines))
        .route("/v1/engines/{id}/panic", post(routes::inject_panic))
        .route("/v1/engines/connect", get(routes::connect_engine))
        .route("/v1/blobs/{digest}", get(routes::blob))
        .route("/v1/staged/{id}", get(routes::staged).put(routes::stage_upload))
        .route("/v1/components", post(routes::upload).get(routes::components))
        .route("/v1/components/{name}", get(routes::component).delete(routes::delete_component))
        .route("/v1/install", post(routes::install))
        .route("/v1/tasks", post(routes::submit).get(history::list).delete(history::purge))
        .route("/v1/tasks/{id}", get(routes::task).delete(routes::cancel))
        .route("/v1/namespace", put(routes::push).get(routes::pull))
        .route("/v1/namespace/{name}", put(routes::push_raw).get(routes::pull_raw))
        .route("/v1/scatter", post(routes::scatter))
        .route("/v1/gather", get(routes::gather))
        .route("/v1/shutdown", post(routes::shutdown))
        .merge(dashboard::event_routes(state.events.clone()))
        .merge(metrics::routes(metrics::MetricsSource { metrics: state.metrics.clone(), snapshot: cluster_snapshot(&state) }))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let app = Router::new()
        .route("/v1/health", get(routes::health))
        .route("/v1/openapi.json", get(openapi))
        .merge(dashboard::page_routes())
        .merge(protected)
        .fallback(|uri: axum::http::Uri| async move { ApiError(Error::not_found("route", crate::error::cut(uri.path()))) })
        // Bodies are read by `body::read_bytes`, which enforces the limits itself.
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    // Around the whole router, not each route (as `Router::layer` puts
    // them): axum adds a 405's `Allow` header on the way out of a route.
    Router::new().fallback_service(app).layer(middleware::from_fn(json_errors)).layer(middleware::from_fn(limit_uri))
}

/// What `/metrics` reads at scrape time (off the async workers).
fn cluster_snapshot(state: &Arc<AppState>) -> Arc<dyn Fn() -> metrics::ClusterSnapshot + Send + Sync> {
    let s = Arc::downgrade(state);
    Arc::new(move || {
        let Some(s) = s.upgrade() else { return metrics::ClusterSnapshot::default() };
        let (tasks_pending, tasks_running) = s.controller.live_tasks();
        let store = match s.store.stats() {
            Ok(stats) => Some(stats),
            Err(e) => {
                tracing::warn!(error = %e, "the task store's counts are unavailable to /metrics");
                None
            }
        };
        metrics::ClusterSnapshot { engines: s.controller.engines(), tasks_pending, tasks_running, store }
    })
}

/// The longest path and query served; longer ones get a JSON 414. (Past
/// 64 KiB hyper answers 414 itself, before any of this, without a body.)
pub const MAX_URI_BYTES: usize = 16 << 10;

async fn limit_uri(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return error_answer(
            StatusCode::URI_TOO_LONG,
            "UriTooLong",
            format!("the path and query are {len} bytes; the limit is {MAX_URI_BYTES} (send large data in the body)"),
        );
    }
    next.run(req).await
}

/// Errors axum answers by itself carry no body (405 with its `Allow`
/// header, a rejected request line): give them the JSON error every other
/// answer has, keeping their headers.
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allowed = resp.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    // An extractor's rejection says what was wrong in a line of text.
    let said = axum::body::to_bytes(body, 4096).await.ok().map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let path = crate::error::cut(&path);
    let kind = match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::PAYLOAD_TOO_LARGE => "TooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        _ => "HttpError",
    };
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        format!("{method} is not allowed on {path}; allowed: {allowed}")
    } else if !said.is_empty() {
        format!("{method} {path}: {}", crate::error::cut(&said))
    } else {
        format!("{method} {path}: {}", status.canonical_reason().unwrap_or("error"))
    };
    let mut answer = error_answer(status, kind, message);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    answer
}

fn error_answer(status: StatusCode, kind: &str, message: String) -> Response {
    let body = error::ErrorBody { error: error::ErrorDetail { kind: kind.into(), message } };
    (status, Json(body)).into_response()
}

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub engines: usize,
    pub listen: IpAddr,
    /// 0 picks a free port; the connection file says which.
    pub port: u16,
    pub connection_file: PathBuf,
    pub limits: Limits,
    pub fault_injection: bool,
    /// TLS for the API and the engines' WebSocket; `None` serves plain HTTP.
    pub tls: Option<tls::TlsSource>,
    /// Serve plain HTTP beyond loopback anyway (`--insecure`, logged).
    pub insecure: bool,
    /// The task store (`wasmpar start --db`); memory unless asked.
    pub db: crate::store::StoreLocation,
    pub retention: crate::store::Retention,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            engines: std::thread::available_parallelism().map_or(1, |n| n.get()),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            connection_file: connection::default_path(),
            limits: Limits::default(),
            fault_injection: false,
            tls: None,
            insecure: false,
            db: crate::store::StoreLocation::Memory,
            retention: crate::store::Retention::default(),
        }
    }
}

/// With an SQLite store, how long a finished task stays in the controller's
/// table at least once more than `tasks_kept` are held: many batch windows
/// (50 ms), so the store has it before the table lets it go.
pub const STORED_TASK_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// A running server: its address, token, and a way to stop it.
pub struct Server {
    pub info: ConnectionInfo,
    pub state: Arc<AppState>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    connection_file: PathBuf,
    snapshots: tokio::task::JoinHandle<()>,
    trimmer: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Start engines, bind, write the connection file; returns when ready.
    pub async fn start(config: ServerConfig) -> Result<Server> {
        crate::trim::start();
        // Before any engine starts: a bad certificate or a refused address fails at once.
        let tls = match &config.tls {
            Some(source) => Some(tls::server_config(source, &config.connection_file, config.listen)?),
            None => None,
        };
        if !config.listen.is_loopback() {
            if tls.is_none() && !config.insecure {
                return Err(Error::BadRequest(format!(
                    "refusing to listen on {} without TLS: the token and every value would cross the network in clear text. \
                     Pass --tls (a self-signed certificate, pinned by engines and the CLI through the connection file), \
                     --tls-cert FILE --tls-key FILE, or --insecure to serve plain HTTP anyway",
                    config.listen
                )));
            }
            if tls.is_none() {
                tracing::warn!(listen = %config.listen, "--insecure: serving plain HTTP beyond loopback; the token and every value cross the network in clear text");
            }
            tracing::warn!(listen = %config.listen, "listening beyond loopback: anyone who can reach this address and has the token can run code here");
        }
        // Before any engine starts: a store file another controller holds
        // fails at once, naming it.
        let options = crate::store::SqliteOptions {
            retention: config.retention.clone(),
            holder: format!("pid {}, connection file {}", std::process::id(), config.connection_file.display()),
            ..Default::default()
        };
        let db = config.db.clone();
        let store = tokio::task::spawn_blocking(move || db.open(options))
            .await
            .map_err(|e| Error::Internal(format!("opening the task store panicked: {e}")))??;
        let engines = config.engines;
        let mut limits = config.limits.clone();
        if matches!(config.db, crate::store::StoreLocation::Sqlite(_)) {
            // The store answers GET /v1/tasks/{id} for tasks the controller
            // let go of, so past `tasks_kept` a finished task need not stay
            // in memory for `tasks_min_age` (an hour: under load the table
            // grew by ~2 000 tasks a second, without bound). It stays long
            // enough for its batch to be committed.
            limits.tasks_min_age = limits.tasks_min_age.min(STORED_TASK_MIN_AGE);
        }
        let controller = tokio::task::spawn_blocking(move || Controller::start(limits, engines))
            .await
            .map_err(|e| Error::Internal(format!("engine start-up panicked: {e}")))??;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.listen, config.port))
            .await
            .map_err(|e| Error::BadRequest(format!("cannot listen on {}:{}: {e}", config.listen, config.port)))?;
        let token = connection::kept_token(&config.connection_file)
            .map_err(|e| Error::BadRequest(format!("cannot keep the token beside {}: {e}", config.connection_file.display())))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        let events = dashboard::EventHub::new();
        let snapshots = {
            let c = controller.clone();
            events.spawn_engine_snapshots(std::time::Duration::from_secs(1), move || c.engines())
        };
        let state = Arc::new(AppState {
            controller,
            store,
            events,
            metrics: metrics::Metrics::new(),
            // A controller restarted on the same connection file keeps its
            // token, so engine processes waiting to reconnect are let in.
            token,
            shutdown: Notify::new(),
            fault_injection: config.fault_injection,
        });
        let trimmer = trim::spawn(state.metrics.clone());
        let info = ConnectionInfo {
            url: format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
            token: state.token.clone(),
            pid: std::process::id(),
            engines,
            tls_fingerprint: tls.as_ref().map(|(_, fp)| fp.clone()),
        };
        let app = router(state.clone());
        let stopper = state.clone();
        let stopped = async move { stopper.shutdown.notified().await };
        let serve = match tls {
            Some((tls_config, _)) => {
                let listener = tls::TlsListener::new(listener, tls_config).map_err(|e| Error::Internal(e.to_string()))?;
                tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await })
            }
            None => {
                // Small messages (engine links, apply round trips) must not
                // wait for Nagle's algorithm and delayed ACKs (~40 ms each).
                use axum::serve::ListenerExt;
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stopped).await })
            }
        };
        connection::write(&config.connection_file, &info)
            .map_err(|e| Error::BadRequest(format!("cannot write the connection file {}: {e}", config.connection_file.display())))?;
        tracing::info!(url = info.url, engines, db = %state.store.describe(), file = %config.connection_file.display(), "wasmpar is ready");
        Ok(Server { info, state, serve, connection_file: config.connection_file, snapshots, trimmer })
    }

    /// Ask the server to stop (as `POST /v1/shutdown` does).
    pub fn stop(&self) {
        self.state.shutdown.notify_one();
    }

    /// Wait until the server has stopped, then remove the connection file.
    pub async fn wait(self) -> Result<()> {
        let outcome = self.serve.await;
        self.snapshots.abort();
        self.trimmer.abort();
        let _ = std::fs::remove_file(&self.connection_file);
        self.state.controller.shutdown_engines();
        // Commit what the store holds before the process ends.
        let store = self.state.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the task store's last records were not committed"),
            Err(e) => tracing::error!(error = %e, "flushing the task store panicked"),
        }
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("server error: {e}"))),
            Err(e) => Err(Error::Internal(format!("server task failed: {e}"))),
        }
    }
}
