//! The engine process (`wasmpar engine --connect URL`): K engines of its own
//! (threads with their stores, as in a controller) that register with a
//! controller over one WebSocket and run the jobs it sends.
//!
//! Invariants:
//! - The engines and their namespaces belong to this process and outlive
//!   any connection: after a disconnect the process reconnects with
//!   backoff and registers again under the same process id, so the
//!   controller gives it its former engine ids and the globals are still
//!   there. After `grace` without a controller it exits (no orphans).
//! - Jobs are dispatched to the local engines in the order they arrived
//!   (one dispatcher), so a push before a call is seen by the call; pings
//!   are answered by the reader at once, even while a component compiles.
//! - Components arrive by digest: the bytes are fetched once over HTTP and
//!   compiled into this process's registry (and its disk cache).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::protocol::{BatchAnswer, ComponentRef, FromEngine, ToEngine, PROTOCOL};
use super::staging::{self, STAGE_MIN};
use crate::engine::{hostname, Arg, BalancedWork, CallSpec, EnginePool, Job, NsValue, TaskControl};
use crate::runtime::{ExportedFunction, Limits, LoadedComponent, Runtime};
use crate::value::{json_to_val, numeric_dtype, wit_name_matches, ArrayForm};
use crate::{Error, Result};
use wasmtime::component::types::Type;

/// How an engine process finds and joins its controller.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `http://host:port` of the controller.
    pub url: String,
    pub token: String,
    /// Re-read on every reconnect (a restarted controller may have a new port).
    pub connection_file: Option<PathBuf>,
    /// The controller's certificate (`sha256:<hex>`, from the connection
    /// file): exactly that one is trusted. `None`: normal verification.
    pub tls_fingerprint: Option<String>,
    pub engines: usize,
    pub labels: BTreeMap<String, String>,
    /// How long to keep trying to reach a controller before exiting.
    pub grace: Duration,
    pub limits: Limits,
}

/// Why the process stopped.
#[derive(Debug)]
pub enum AgentEnd {
    /// No controller for `grace`.
    ControllerGone,
}

/// Run until the controller has been unreachable for `grace`, or it refuses us.
pub async fn run(config: AgentConfig) -> Result<AgentEnd> {
    crate::trim::start();
    let n = config.engines;
    let limits = config.limits.clone();
    let pool = tokio::task::spawn_blocking(move || -> Result<Arc<EnginePool>> { EnginePool::start(Runtime::new(limits)?, n) })
        .await
        .map_err(|e| Error::Internal(format!("engine start-up panicked: {e}")))??;
    let process = uuid::Uuid::new_v4().simple().to_string();
    let mut config = config;
    let mut unreachable_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Some(file) = &config.connection_file {
            if let Ok(info) = crate::api::connection::read(file) {
                config.url = info.url;
                config.token = info.token;
                config.tls_fingerprint = info.tls_fingerprint;
            }
        }
        // Rebuilt per connection: a restarted controller may have a new certificate.
        let tls = crate::api::tls::client_config(config.tls_fingerprint.as_deref())?.map(Arc::new);
        let http = match &tls {
            Some(c) => reqwest::Client::builder().use_preconfigured_tls(rustls::ClientConfig::clone(c)).build(),
            None => reqwest::Client::builder().build(),
        }
        .map_err(|e| Error::Internal(format!("cannot set up the HTTP client: {e}")))?;
        match session(&config, &process, &pool, &http, tls).await {
            Ok(()) => {
                unreachable_since = None;
                backoff = Duration::from_millis(100);
                tracing::warn!("the controller went away; reconnecting");
            }
            Err(SessionError::Refused(message)) => return Err(Error::BadRequest(format!("the controller refused this engine: {message}"))),
            Err(SessionError::Unreachable(message)) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= config.grace {
                    tracing::error!(grace_s = config.grace.as_secs_f64(), "no controller within the grace period; exiting");
                    pool.shutdown();
                    return Ok(AgentEnd::ControllerGone);
                }
                tracing::info!("controller not reachable ({message}); retrying in {backoff:?}");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

enum SessionError {
    Refused(String),
    Unreachable(String),
}

/// The controller's WebSocket address for `url`.
fn ws_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    let base = base.strip_prefix("https://").map(|r| format!("wss://{r}")).unwrap_or_else(|| base.replacen("http://", "ws://", 1));
    format!("{base}/v1/engines/connect")
}

/// One connection: register, then serve until it closes.
async fn session(
    config: &AgentConfig,
    process: &str,
    pool: &Arc<EnginePool>,
    http: &reqwest::Client,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> std::result::Result<(), SessionError> {
    let mut request = ws_url(&config.url).into_client_request().map_err(|e| SessionError::Refused(format!("bad controller URL: {e}")))?;
    let auth =
        format!("Bearer {}", config.token).parse().map_err(|_| SessionError::Refused("the token is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", auth);
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (ws, _) = match tokio_tungstenite::connect_async_tls_with_config(request, Some(link_config()), true, connector).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) if resp.status().as_u16() == 401 => {
            return Err(SessionError::Refused("wrong token (HTTP 401)".into()));
        }
        // Not the pinned certificate: another server, or an old connection file. Never retried.
        Err(e) => {
            return Err(match crate::api::tls::pin_mismatch(&e) {
                Some(message) => SessionError::Refused(message),
                None => SessionError::Unreachable(crate::api::tls::error_chain(&e)),
            })
        }
    };
    let (mut sink, mut stream) = ws.split();
    let hello = FromEngine::Hello {
        protocol: PROTOCOL,
        process: process.to_string(),
        host: hostname(),
        pid: std::process::id(),
        engines: config.engines,
        labels: config.labels.clone(),
    };
    send(&mut sink, &hello).await.map_err(SessionError::Unreachable)?;
    let heartbeat = match next_message(&mut stream).await {
        Some(ToEngine::Welcome { ids, heartbeat_ms }) => {
            tracing::info!(engines = ?ids, url = config.url, "registered with the controller");
            Duration::from_millis(heartbeat_ms.max(50))
        }
        Some(ToEngine::Refused { message }) => return Err(SessionError::Refused(message)),
        _ => return Err(SessionError::Unreachable("the controller did not welcome this engine".into())),
    };

    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<FromEngine>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if send(&mut sink, &msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let state = Arc::new(Dispatch {
        pool: pool.clone(),
        out: out_tx.clone(),
        controls: parking_lot::Mutex::new(HashMap::new()),
        http: http.clone(),
        url: config.url.clone(),
        token: config.token.clone(),
    });
    let (jobs_tx, mut jobs_rx) = mpsc::unbounded_channel::<ToEngine>();
    let dispatcher = {
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(msg) = jobs_rx.recv().await {
                state.dispatch(msg).await;
            }
        })
    };
    let reporter = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if !state.report() {
                    break;
                }
            }
        })
    };
    // The controller pings every `heartbeat`; silence for several of them
    // means it (or the network) is gone.
    let silence = heartbeat * 4 + Duration::from_secs(1);
    loop {
        let msg = match tokio::time::timeout(silence, next_message(&mut stream)).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) => {
                tracing::warn!("no word from the controller for {silence:?}");
                break;
            }
        };
        match msg {
            ToEngine::Ping { seq } => {
                let _ = out_tx.send(FromEngine::Pong { seq });
            }
            ToEngine::Cancel { task } => state.cancel(task),
            ToEngine::Welcome { .. } | ToEngine::Refused { .. } => {}
            job => {
                if jobs_tx.send(job).is_err() {
                    break;
                }
            }
        }
    }
    drop(jobs_tx);
    dispatcher.abort();
    reporter.abort();
    writer.abort();
    Ok(())
}

async fn send<S>(sink: &mut S, msg: &FromEngine) -> std::result::Result<(), String>
where
    S: futures::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    sink.send(Message::text(text)).await.map_err(|e| e.to_string())
}

async fn next_message<S>(stream: &mut S) -> Option<ToEngine>
where
    S: futures::Stream<Item = std::result::Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Message::Text(text)) => match serde_json::from_str(text.as_str()) {
                Ok(msg) => return Some(msg),
                Err(e) => tracing::warn!("ignoring a message that does not parse: {e}"),
            },
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

/// A task's control on this process, with what was reported of it.
struct LocalTask {
    control: Arc<TaskControl>,
    inflight: usize,
    started_sent: bool,
    done_sent: usize,
}

struct Dispatch {
    pool: Arc<EnginePool>,
    out: mpsc::UnboundedSender<FromEngine>,
    controls: parking_lot::Mutex<HashMap<u64, LocalTask>>,
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Dispatch {
    fn cancel(&self, task: u64) {
        if let Some(t) = self.controls.lock().get(&task) {
            t.control.cancel();
        }
    }

    /// Report started tasks and progress; false once the link is gone.
    fn report(&self) -> bool {
        let mut controls = self.controls.lock();
        for (&task, t) in controls.iter_mut() {
            if !t.started_sent && t.control.started_at().is_some() {
                t.started_sent = true;
                if self.out.send(FromEngine::Started { task }).is_err() {
                    return false;
                }
            }
            let done = t.control.done.load(Ordering::Relaxed);
            if done > t.done_sent {
                let delta = done - t.done_sent;
                t.done_sent = done;
                if self.out.send(FromEngine::Progress { task, done: delta }).is_err() {
                    return false;
                }
            }
        }
        controls.retain(|_, t| t.inflight > 0);
        !self.out.is_closed()
    }

    fn control(&self, task: u64) -> Arc<TaskControl> {
        let mut controls = self.controls.lock();
        let t = controls.entry(task).or_insert_with(|| LocalTask {
            control: Arc::new(TaskControl::default()),
            inflight: 0,
            started_sent: false,
            done_sent: 0,
        });
        t.inflight += 1;
        t.control.clone()
    }

    fn finished(&self, task: u64) {
        if let Some(t) = self.controls.lock().get_mut(&task) {
            t.inflight = t.inflight.saturating_sub(1);
        }
    }

    /// The component with `c`'s digest, fetched and compiled if new here.
    async fn component(&self, c: &ComponentRef) -> std::result::Result<Arc<LoadedComponent>, String> {
        let runtime = self.pool.runtime().clone();
        if let Some(found) = runtime.components.by_digest(&c.digest) {
            return Ok(found);
        }
        let url = format!("{}/v1/blobs/{}", self.url.trim_end_matches('/'), c.digest);
        let resp =
            self.http.get(&url).bearer_auth(&self.token).send().await.map_err(|e| format!("cannot fetch component {}: {e}", c.name))?;
        if !resp.status().is_success() {
            return Err(format!("cannot fetch component {} ({}): HTTP {}", c.name, c.digest, resp.status()));
        }
        let bytes = resp.bytes().await.map_err(|e| format!("cannot fetch component {}: {e}", c.name))?;
        let name = c.name.clone();
        let (loaded, _) = tokio::task::spawn_blocking(move || runtime.components.add(&name, &bytes))
            .await
            .map_err(|e| format!("compilation panicked: {e}"))?
            .map_err(|e| e.to_string())?;
        if loaded.digest != c.digest {
            return Err(format!("component {}: fetched bytes have digest {}, not {}", c.name, loaded.digest, c.digest));
        }
        Ok(loaded)
    }

    async fn dispatch(self: &Arc<Self>, msg: ToEngine) {
        match msg {
            ToEngine::Call { req, engine, task, component, function, encoding, timeout_ms, batches } => {
                let loaded = match self.component(&component).await {
                    Ok(c) => c,
                    Err(message) => {
                        let _ = self.out.send(FromEngine::Failed { req, message });
                        return;
                    }
                };
                let Some(index) = loaded.functions.iter().position(|f| wit_name_matches(&f.name, &function)) else {
                    let _ = self.out.send(FromEngine::Failed { req, message: format!("{}: no function {function}", component.name) });
                    return;
                };
                let batches = match convert_batches(&loaded.functions[index], batches) {
                    Ok(b) => b,
                    Err(message) => {
                        let _ = self.out.send(FromEngine::Failed { req, message });
                        return;
                    }
                };
                let n = batches.len();
                let control = self.control(task);
                let spec =
                    CallSpec { component: loaded.clone(), function: index, encoding, timeout: Duration::from_millis(timeout_ms), control };
                // The group runs as balanced work only this engine holds: the
                // engine answers each batch as it finishes, and drops the work
                // (closing `rx`) when none is left or it crashed.
                let (sink, mut rx) = mpsc::unbounded_channel();
                let work = Arc::new(BalancedWork::new(spec, batches, sink, 0));
                if let Err(e) = self.pool.send(engine, Job::Balanced(work)) {
                    self.finished(task);
                    let _ = self.out.send(FromEngine::Failed { req, message: e.to_string() });
                    return;
                }
                let me = self.clone();
                tokio::spawn(async move {
                    let mut slots: Vec<Option<BatchAnswer>> = (0..n).map(|_| None).collect();
                    let mut got = 0;
                    while got < n {
                        let Some(o) = rx.recv().await else { break };
                        if let Some(slot) = slots.get_mut(o.batch) {
                            got += usize::from(slot.is_none());
                            *slot = Some(BatchAnswer { results: o.results, output: o.output });
                        }
                    }
                    // Answers up to the first batch that never ran (a crash).
                    let outcomes: Vec<BatchAnswer> = slots.into_iter().map_while(|s| s).collect();
                    // The last progress of the task goes before its answer.
                    me.report();
                    me.finished(task);
                    let _ = me.out.send(FromEngine::Outcome { req, outcomes });
                });
            }
            ToEngine::Push { req, engine, values } => {
                let values = match self.push_values(values).await {
                    Ok(v) => v,
                    Err(message) => {
                        let _ = self.out.send(FromEngine::Failed { req, message });
                        return;
                    }
                };
                let (reply, rx) = oneshot::channel();
                self.forward(req, engine, Job::Push { values, reply }, rx, move |_| FromEngine::Pushed { req });
            }
            ToEngine::Pull { req, engine, names } => {
                let (reply, rx) = oneshot::channel();
                if let Err(e) = self.pool.send(engine, Job::Pull { names, reply }) {
                    let _ = self.out.send(FromEngine::Failed { req, message: e.to_string() });
                    return;
                }
                let me = self.clone();
                tokio::spawn(async move {
                    let msg = match rx.await {
                        Ok(Ok(values)) => match me.pulled(&values).await {
                            Ok(values) => FromEngine::Pulled { req, values: Ok(values) },
                            Err(message) => FromEngine::Failed { req, message },
                        },
                        Ok(Err(missing)) => FromEngine::Pulled { req, values: Err(missing) },
                        Err(_) => FromEngine::Failed { req, message: format!("engine {engine} of this process crashed; it was restarted") },
                    };
                    let _ = me.out.send(msg);
                });
            }
            ToEngine::Install { req, engine, component } => {
                let loaded = match self.component(&component).await {
                    Ok(c) => c,
                    Err(message) => {
                        let _ = self.out.send(FromEngine::Failed { req, message });
                        return;
                    }
                };
                let (reply, rx) = oneshot::channel();
                self.forward(req, engine, Job::Install { component: loaded, reply }, rx, move |result| FromEngine::Installed {
                    req,
                    result,
                });
            }
            ToEngine::Forget { engine, digest } => {
                let _ = self.pool.send(engine, Job::Forget { digest });
            }
            ToEngine::Cancel { task } => self.cancel(task),
            ToEngine::Ping { seq } => {
                let _ = self.out.send(FromEngine::Pong { seq });
            }
            ToEngine::Welcome { .. } | ToEngine::Refused { .. } => {}
        }
    }

    /// A push's values: inline ones parsed, staged ones fetched.
    async fn push_values(&self, values: Vec<(String, Json)>) -> std::result::Result<Vec<(String, NsValue)>, String> {
        let mut out = Vec::with_capacity(values.len());
        for (name, v) in values {
            let value = match staging::parse_header(&v) {
                Some((id, kind, shape)) => self.fetch_staged(id, kind, shape).await.map_err(|e| format!("push of `{name}`: {e}"))?,
                None => NsValue::from_json(&v)?,
            };
            out.push((name, value));
        }
        Ok(out)
    }

    /// Pulled values as the `Pulled` answer carries them: large numeric
    /// data uploaded to the controller first (raw bytes, `PUT
    /// /v1/staged/{id}`), the rest inline.
    async fn pulled(&self, values: &[NsValue]) -> std::result::Result<Vec<Json>, String> {
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            out.push(match v.to_raw() {
                Some((dtype, shape, bytes)) if bytes.len() >= STAGE_MIN => {
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    let url = format!("{}/v1/staged/{id}", self.url.trim_end_matches('/'));
                    let resp = self.http.put(&url).bearer_auth(&self.token).body(bytes).send().await;
                    match resp {
                        Ok(r) if r.status().is_success() => staging::header(&id, v.kind(), dtype, &shape),
                        Ok(r) => return Err(format!("cannot hand a pulled value to the controller: HTTP {}", r.status())),
                        Err(e) => return Err(format!("cannot hand a pulled value to the controller: {e}")),
                    }
                }
                _ => v.to_json(crate::value::Encoding::Array),
            });
        }
        Ok(out)
    }

    /// A staged value's bytes, streamed straight into the buffer that
    /// becomes the value (one copy from the socket's chunks).
    async fn fetch_staged(&self, id: &str, kind: &str, shape: Vec<usize>) -> std::result::Result<NsValue, String> {
        let items = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("its shape is too large")?;
        let mut buf = staging::StagedBuf::new(kind, items)?;
        let url = format!("{}/v1/staged/{id}", self.url.trim_end_matches('/'));
        let mut resp = self.http.get(&url).bearer_auth(&self.token).send().await.map_err(|e| format!("cannot fetch it: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("cannot fetch it: HTTP {}", resp.status()));
        }
        let dst = buf.as_bytes_mut();
        let want = dst.len();
        let mut at = 0;
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("cannot fetch it: {e}"))? {
            let end = at + chunk.len();
            if end > want {
                return Err(format!("the controller sent more than the {want} bytes of its shape"));
            }
            dst[at..end].copy_from_slice(&chunk);
            at = end;
        }
        if at != want {
            return Err(format!("the controller sent {at} of its {want} bytes"));
        }
        Ok(buf.into_value(kind, shape))
    }

    /// Send `job` to a local engine and its answer back as `answer(..)`.
    fn forward<T: Send + 'static>(
        &self,
        req: u64,
        engine: usize,
        job: Job,
        rx: oneshot::Receiver<T>,
        answer: impl FnOnce(T) -> FromEngine + Send + 'static,
    ) {
        if let Err(e) = self.pool.send(engine, job) {
            let _ = self.out.send(FromEngine::Failed { req, message: e.to_string() });
            return;
        }
        let out = self.out.clone();
        tokio::spawn(async move {
            let msg = match rx.await {
                Ok(v) => answer(v),
                Err(_) => FromEngine::Failed { req, message: format!("engine {engine} of this process crashed; it was restarted") },
            };
            let _ = out.send(msg);
        });
    }
}

/// Every call of a group's batches from JSON to values (`$ref`s stay names).
fn convert_batches(f: &ExportedFunction, batches: Vec<Vec<Vec<Json>>>) -> std::result::Result<Vec<Vec<Vec<Arg>>>, String> {
    let mut out = Vec::with_capacity(batches.len());
    for calls in batches {
        let mut args = Vec::with_capacity(calls.len());
        for call in calls {
            let mut converted = Vec::with_capacity(call.len());
            for (v, (pname, ty)) in call.iter().zip(&f.params) {
                let by_ref = v.as_object().filter(|o| o.len() == 1).and_then(|o| o.get("$ref")).and_then(Json::as_str);
                converted.push(match by_ref {
                    Some(name) => Arg::Ref(name.to_string()),
                    None => match exact_list(ty, v) {
                        Some(arg) => arg,
                        None => Arg::Val(json_to_val(ty, v, pname).map_err(|e| e.to_string())?),
                    },
                });
            }
            args.push(converted);
        }
        out.push(args);
    }
    Ok(out)
}

/// A 1-D array form whose dtype is exactly a list parameter's element type,
/// kept as its bytes (`Arg::Rows`): the engine converts it without loss, or
/// hands it to the guest without `Val`s (engine/typed.rs), as in one process.
fn exact_list(ty: &Type, v: &Json) -> Option<Arg> {
    let Type::List(l) = ty else { return None };
    let form = ArrayForm::from_json(v.as_object()?)?.ok()?;
    (form.shape.len() == 1 && numeric_dtype(&l.ty()) == Some(form.dtype)).then(|| {
        let n = form.shape[0];
        Arg::Rows(Arc::new(form), 0..n)
    })
}

/// Messages as large as the controller's largest body (an 80 MB push is a
/// 107 MB message as base64); tungstenite's default of 64 MiB would drop
/// the link on a large push.
fn link_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().max_message_size(Some(1 << 30)).max_frame_size(Some(1 << 30))
}
