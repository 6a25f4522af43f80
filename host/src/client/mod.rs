//! A blocking client of the HTTP API, used by the CLI (and handy in tests).
//! It finds the cluster the way every command does: an explicit URL and
//! token, else a connection file (flag, `WASMPAR_CONNECTION_FILE`, or
//! `~/.wasmpar/cluster.json`). Answers are read into `crate::wire`'s types,
//! the same ones the server writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use crate::api::connection::{self, ConnectionInfo};
use crate::wire::{
    ComponentInfo, ComponentList, EngineIds, EngineList, ErrorBody, GatherAnswer, Health, InstallReport, PullAnswer, TaskView,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no cluster found: cannot read the connection file {path}: {source}. Start one with `wasmpar start`, or pass --connection-file / --url and --token")]
    NoConnection { path: PathBuf, source: std::io::Error },
    #[error("cannot reach the cluster at {url}: {}", crate::api::tls::error_chain(source))]
    Unreachable { url: String, source: reqwest::Error },
    /// TLS refused the server (a certificate that is not the pinned one), or
    /// the pin could not be set up.
    #[error("refused the cluster at {url}: {message}")]
    Tls { url: String, message: String },
    /// The server answered with an error body.
    #[error("{kind}: {message}")]
    Api { status: u16, kind: String, message: String },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

pub struct Client {
    pub url: String,
    token: String,
    http: Http,
    /// Why TLS could not be set up (a malformed pin): every request fails with it.
    tls_error: Option<String>,
}

impl Client {
    /// A client that verifies `https` servers against the usual roots.
    pub fn new(url: &str, token: &str) -> Client {
        Client::pinned(url, token, None)
    }

    /// A client that trusts exactly the certificate with this fingerprint
    /// (`sha256:<hex>`, from the connection file), or verifies normally when
    /// there is none.
    pub fn pinned(url: &str, token: &str, tls_fingerprint: Option<&str>) -> Client {
        let builder = Http::builder().timeout(None::<Duration>).connect_timeout(Duration::from_secs(10));
        let (builder, tls_error) = match crate::api::tls::client_config(tls_fingerprint) {
            Ok(Some(config)) => (builder.use_preconfigured_tls(config), None),
            Ok(None) => (builder, None),
            Err(e) => (builder, Some(e.to_string())),
        };
        let (http, tls_error) = match builder.build() {
            Ok(http) => (http, tls_error),
            // Fails closed: a client without the pin would refuse a self-signed server anyway.
            Err(e) => (Http::new(), tls_error.or_else(|| Some(format!("cannot set up the HTTP client: {e}")))),
        };
        Client { url: url.trim_end_matches('/').to_string(), token: token.to_string(), http, tls_error }
    }

    pub fn from_connection_file(path: &Path) -> Result<Client> {
        let info = connection::read(path).map_err(|source| ClientError::NoConnection { path: path.to_path_buf(), source })?;
        Ok(Client::from_info(&info))
    }

    pub fn from_info(info: &ConnectionInfo) -> Client {
        Client::pinned(&info.url, &info.token, info.tls_fingerprint.as_deref())
    }

    fn req(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.url, path)).bearer_auth(&self.token)
    }

    fn send(&self, rb: RequestBuilder) -> Result<Response> {
        if let Some(message) = &self.tls_error {
            return Err(ClientError::Tls { url: self.url.clone(), message: message.clone() });
        }
        let resp = rb.send().map_err(|source| match crate::api::tls::pin_mismatch(&source) {
            Some(message) => ClientError::Tls { url: self.url.clone(), message },
            None => ClientError::Unreachable { url: self.url.clone(), source },
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        match resp.json::<ErrorBody>() {
            Ok(body) => Err(ClientError::Api { status, kind: body.error.kind, message: body.error.message }),
            Err(_) => Err(ClientError::Api { status, kind: "HttpError".into(), message: format!("HTTP {status}") }),
        }
    }

    fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let body = self.send(rb)?.bytes().map_err(|e| ClientError::Protocol(e.to_string()))?;
        // An empty answer (202, 204) reads as JSON null.
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        serde_json::from_slice(body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(self.req(reqwest::Method::GET, path))
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.json(self.req(reqwest::Method::POST, path).json(body))
    }

    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.json(self.req(reqwest::Method::PUT, path).json(body))
    }

    pub fn engines(&self) -> Result<EngineList> {
        self.get("/v1/engines")
    }

    pub fn components(&self) -> Result<ComponentList> {
        self.get("/v1/components")
    }

    pub fn install(&self, component: &str, targets: &Json) -> Result<InstallReport> {
        self.post("/v1/install", &serde_json::json!({"component": component, "targets": targets}))
    }

    pub fn push(&self, targets: &Json, values: &serde_json::Map<String, Json>) -> Result<EngineIds> {
        self.put("/v1/namespace", &serde_json::json!({"targets": targets, "values": values}))
    }

    pub fn pull(&self, targets: &str, names: &[String]) -> Result<PullAnswer> {
        self.get(&format!("/v1/namespace?targets={}&names={}", urlencode(targets), urlencode(&names.join(","))))
    }

    pub fn scatter(&self, name: &str, values: &Json, targets: &Json) -> Result<EngineIds> {
        self.post("/v1/scatter", &serde_json::json!({"name": name, "values": values, "targets": targets}))
    }

    pub fn gather(&self, name: &str, targets: &str) -> Result<GatherAnswer> {
        self.get(&format!("/v1/gather?name={}&targets={}", urlencode(name), urlencode(targets)))
    }

    pub fn cancel(&self, id: &str) -> Result<TaskView> {
        self.json(self.req(reqwest::Method::DELETE, &format!("/v1/tasks/{}", urlencode(id))))
    }

    /// GET raw bytes (the binary namespace route): dtype, shape and bytes.
    pub fn get_bytes(&self, path: &str) -> Result<(String, Vec<usize>, Vec<u8>)> {
        let resp = self.send(self.req(reqwest::Method::GET, path))?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let dtype = header("x-wasmpar-dtype").ok_or_else(|| ClientError::Protocol("no x-wasmpar-dtype header".into()))?;
        let shape = header("x-wasmpar-shape")
            .unwrap_or_default()
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.parse::<usize>().map_err(|_| ClientError::Protocol(format!("bad shape {d:?}"))))
            .collect::<Result<Vec<_>>>()?;
        let bytes = resp.bytes().map_err(|e| ClientError::Protocol(e.to_string()))?.to_vec();
        Ok((dtype, shape, bytes))
    }

    /// PUT raw bytes (the binary namespace route).
    pub fn put_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<EngineIds> {
        self.json(self.req(reqwest::Method::PUT, path).header("content-type", "application/octet-stream").body(bytes))
    }

    pub fn delete(&self, path: &str) -> Result<Option<Json>> {
        let resp = self.send(self.req(reqwest::Method::DELETE, path))?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        resp.json().map(Some).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub fn health(&self) -> Result<Health> {
        self.json(self.http.get(format!("{}/v1/health", self.url)))
    }

    /// Upload a component's bytes; `progress` is told how many bytes went out.
    pub fn upload(&self, name: &str, bytes: Vec<u8>, progress: impl Fn(u64) + Send + 'static) -> Result<ComponentInfo> {
        let total = bytes.len() as u64;
        let reader = ProgressReader { inner: std::io::Cursor::new(bytes), sent: 0, progress: Box::new(progress) };
        let body = reqwest::blocking::Body::sized(reader, total);
        let path = format!("/v1/components?name={}", urlencode(name));
        self.json(self.req(reqwest::Method::POST, &path).header("content-type", "application/wasm").body(body))
    }

    pub fn submit(&self, task: &Json) -> Result<TaskView> {
        self.post("/v1/tasks", task)
    }

    pub fn task(&self, id: &str, wait: Option<f64>) -> Result<TaskView> {
        let path = match wait {
            Some(w) => format!("/v1/tasks/{}?wait={w}", urlencode(id)),
            None => format!("/v1/tasks/{}", urlencode(id)),
        };
        self.get(&path)
    }
}

struct ProgressReader {
    inner: std::io::Cursor<Vec<u8>>,
    sent: u64,
    progress: Box<dyn Fn(u64) + Send>,
}

impl std::io::Read for ProgressReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        (self.progress)(self.sent);
        Ok(n)
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
