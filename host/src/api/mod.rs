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
pub mod dashboard;
pub mod error;
pub mod metrics;
mod routes;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
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
        routes::shutdown
    ),
    components(schemas(crate::scheduler::TaskSpec, crate::scheduler::TaskView, crate::scheduler::Targets))
)]
pub struct ApiDoc;

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
        let body = error::ErrorBody {
            error: error::ErrorDetail {
                kind: "Unauthorized".into(),
                message: "missing or wrong token: send `Authorization: Bearer <token>` with the token from the connection file".into(),
            },
        };
        (axum::http::StatusCode::UNAUTHORIZED, Json(body)).into_response()
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/engines", get(routes::engines))
        .route("/v1/engines/{id}/panic", post(routes::inject_panic))
        .route("/v1/components", post(routes::upload).get(routes::components))
        .route("/v1/components/{name}", get(routes::component).delete(routes::delete_component))
        .route("/v1/install", post(routes::install))
        .route("/v1/tasks", post(routes::submit))
        .route("/v1/tasks/{id}", get(routes::task).delete(routes::cancel))
        .route("/v1/namespace", put(routes::push).get(routes::pull))
        .route("/v1/namespace/{name}", put(routes::push_raw).get(routes::pull_raw))
        .route("/v1/scatter", post(routes::scatter))
        .route("/v1/gather", get(routes::gather))
        .route("/v1/shutdown", post(routes::shutdown))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/v1/health", get(routes::health))
        .route("/v1/openapi.json", get(openapi))
        .merge(protected)
        .fallback(|| async { ApiError(Error::not_found("route", "this")) })
        // Bodies are read by `body::read_bytes`, which enforces the limits itself.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
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
        }
    }
}

/// A running server: its address, token, and a way to stop it.
pub struct Server {
    pub info: ConnectionInfo,
    pub state: Arc<AppState>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    connection_file: PathBuf,
}

impl Server {
    /// Start engines, bind, write the connection file; returns when ready.
    pub async fn start(config: ServerConfig) -> Result<Server> {
        if !config.listen.is_loopback() {
            tracing::warn!(listen = %config.listen, "listening beyond loopback: anyone who can reach this address and has the token can run code here");
        }
        let engines = config.engines;
        let limits = config.limits.clone();
        let controller = tokio::task::spawn_blocking(move || Controller::start(limits, engines))
            .await
            .map_err(|e| Error::Internal(format!("engine start-up panicked: {e}")))??;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.listen, config.port))
            .await
            .map_err(|e| Error::BadRequest(format!("cannot listen on {}:{}: {e}", config.listen, config.port)))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        let state = Arc::new(AppState {
            controller,
            token: connection::new_token(),
            shutdown: Notify::new(),
            fault_injection: config.fault_injection,
        });
        let info = ConnectionInfo { url: format!("http://{addr}"), token: state.token.clone(), pid: std::process::id(), engines };
        let app = router(state.clone());
        let stopper = state.clone();
        let serve = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { stopper.shutdown.notified().await }).await
        });
        connection::write(&config.connection_file, &info)
            .map_err(|e| Error::BadRequest(format!("cannot write the connection file {}: {e}", config.connection_file.display())))?;
        tracing::info!(url = info.url, engines, file = %config.connection_file.display(), "wasmpar is ready");
        Ok(Server { info, state, serve, connection_file: config.connection_file })
    }

    /// Ask the server to stop (as `POST /v1/shutdown` does).
    pub fn stop(&self) {
        self.state.shutdown.notify_one();
    }

    /// Wait until the server has stopped, then remove the connection file.
    pub async fn wait(self) -> Result<()> {
        let outcome = self.serve.await;
        let _ = std::fs::remove_file(&self.connection_file);
        self.state.controller.shutdown_engines();
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("server error: {e}"))),
            Err(e) => Err(Error::Internal(format!("server task failed: {e}"))),
        }
    }
}
