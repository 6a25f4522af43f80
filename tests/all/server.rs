//! An in-process wasmpar server on a free loopback port, spoken to over real
//! HTTP (reqwest), for the sandbox, dependency and property tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value as Json};
use wasmpar::api::{Server, ServerConfig};

pub struct TestServer {
    pub url: String,
    pub token: String,
    pub dir: PathBuf,
    pub http: reqwest::blocking::Client,
    server: Option<Server>,
    rt: tokio::runtime::Runtime,
}

impl TestServer {
    pub fn start(engines: usize) -> TestServer {
        Self::start_with(engines, |_| {})
    }

    pub fn start_with(engines: usize, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("wasmpar-srv-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut config = ServerConfig { engines, port: 0, connection_file: dir.join("cluster.json"), ..Default::default() };
        config.limits.cache_dir = Some(dir.join("cache"));
        tweak(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let server = rt.block_on(Server::start(config)).expect("server starts");
        let info = wasmpar::api::connection::read(&dir.join("cluster.json")).expect("connection file");
        TestServer {
            url: info.url,
            token: info.token,
            dir,
            http: reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(120)).build().expect("http client"),
            server: Some(server),
            rt,
        }
    }

    /// A request with the token; the answer's status and JSON body (null if empty).
    pub fn call(&self, method: &str, path: &str, body: Option<&Json>) -> (u16, Json) {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.raw(method, path, bytes, Some(&self.token.clone()), "application/json")
    }

    pub fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>, token: Option<&str>, content_type: &str) -> (u16, Json) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, format!("{}{}", self.url, path)).header("content-type", content_type);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let resp = rb.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        let v = if text.is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        (status, v)
    }

    pub fn upload(&self, name: &str, path: &str) -> Json {
        let bytes = std::fs::read(path).expect("component");
        let (status, v) =
            self.raw("POST", &format!("/v1/components?name={name}"), Some(bytes), Some(&self.token.clone()), "application/wasm");
        assert_eq!(status, 201, "upload {name}: {v}");
        v
    }

    pub fn upload_seed(&self) {
        self.upload("seed", wasmpar::examples::SEED_WASM);
    }

    /// A blocking task; the finished task as answered.
    pub fn task(&self, mut spec: Json) -> Json {
        spec["block"] = json!(true);
        let (status, v) = self.call("POST", "/v1/tasks", Some(&spec));
        assert_eq!(status, 200, "task {spec}: {v}");
        v
    }

    /// A blocking task that must succeed; its result.
    pub fn ok(&self, spec: Json) -> Json {
        let v = self.task(spec);
        assert_eq!(v["status"], "done", "{v}");
        v["result"].clone()
    }

    pub fn apply(&self, function: &str, args: Json, targets: Json) -> Json {
        self.task(json!({"op": "apply", "component": "seed", "function": function, "args": args, "targets": targets}))
    }

    pub fn push(&self, values: Json, targets: Json) {
        let (status, v) = self.call("PUT", "/v1/namespace", Some(&json!({"values": values, "targets": targets})));
        assert_eq!(status, 200, "{v}");
    }

    pub fn pull(&self, names: &str, targets: &str) -> (u16, Json) {
        self.call("GET", &format!("/v1/namespace?names={names}&targets={targets}"), None)
    }

    /// The cluster answers and every engine computes correctly.
    pub fn assert_healthy(&self, engines: usize) {
        let r = self.ok(json!({"op": "map", "component": "seed", "function": "add3",
                               "sequences": [(0..10).collect::<Vec<i64>>(), (0..10).collect::<Vec<i64>>(), (0..10).collect::<Vec<i64>>()]}));
        assert_eq!(r, json!([0, 3, 6, 9, 12, 15, 18, 21, 24, 27]));
        let r = self.ok(json!({"op": "apply", "component": "seed", "function": "identity", "args": [7]}));
        assert_eq!(r, json!(vec![7; engines]));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
            let _ = self.rt.block_on(s.wait());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real `wasmpar start --daemon` process in a folder of its own, with
/// `args` added; stopped and its folder removed on drop (also when an
/// assertion fails).
pub struct Daemon {
    dir: PathBuf,
    conn: PathBuf,
    pub info: wasmpar::api::ConnectionInfo,
}

impl Daemon {
    pub fn start(name: &str, engines: usize, args: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("wasmpar-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let conn = dir.join("c.json");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmpar"))
            .args(["start", "-n", &engines.to_string(), "--daemon", "--json"])
            .args(args)
            .arg("--connection-file")
            .arg(&conn)
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .output()
            .expect("start");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let info = wasmpar::api::connection::read(&conn).expect("connection file");
        Daemon { dir, conn, info }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_wasmpar")).arg("stop").arg("--connection-file").arg(&self.conn).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
