//! A `wasmpar start --daemon` server (the real binary, its own process) and
//! optional `wasmpar engine` processes joining it, for the sections that
//! compare two such servers in one run (`remote`, `store`). Stopped with
//! `wasmpar stop` when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

const WASMPAR: &str = env!("CARGO_BIN_EXE_wasmpar");

pub struct Cluster {
    conn: PathBuf,
    pub url: String,
    pub token: String,
    engines: Vec<Child>,
    pub client: reqwest::blocking::Client,
}

impl Cluster {
    /// `local` engine threads, or (0 and) `remote` engine processes.
    pub fn start(dir: &Path, name: &str, local: usize, remote: usize) -> Cluster {
        Cluster::start_with(dir, name, local, remote, &[])
    }

    /// As `start`, with more `wasmpar start` arguments (`--db none`).
    pub fn start_with(dir: &Path, name: &str, local: usize, remote: usize, extra: &[&std::ffi::OsStr]) -> Cluster {
        let conn = dir.join(format!("{name}.json"));
        let out = Command::new(WASMPAR)
            .args(["start", "-n", &local.to_string(), "--daemon", "--cache-dir"])
            .arg(dir.join(format!("{name}-cache")))
            .arg("--connection-file")
            .arg(&conn)
            .args(extra)
            .output()
            .expect("wasmpar start");
        assert!(out.status.success(), "start: {}", String::from_utf8_lossy(&out.stderr));
        let info = wasmpar::api::connection::read(&conn).expect("connection file");
        let mut engines = Vec::new();
        for i in 0..remote {
            engines.push(
                Command::new(WASMPAR)
                    .args(["engine", "-n", "1", "--cache-dir"])
                    .arg(dir.join(format!("{name}-engine{i}-cache")))
                    .arg("--connection-file")
                    .arg(&conn)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("wasmpar engine"),
            );
        }
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().expect("http client");
        let c = Cluster { conn, url: info.url, token: info.token, engines, client };
        let want = local + remote;
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.get("/v1/engines")["engines"].as_array().map_or(0, Vec::len) < want {
            assert!(Instant::now() < deadline, "engines did not join");
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    pub fn get(&self, path: &str) -> Json {
        self.client.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().and_then(|r| r.json()).unwrap_or(Json::Null)
    }

    pub fn task(&self, spec: &Json) -> (Duration, Json) {
        let mut spec = spec.clone();
        spec["block"] = json!(true);
        let t0 = Instant::now();
        let v: Json = self
            .client
            .post(format!("{}/v1/tasks", self.url))
            .bearer_auth(&self.token)
            .json(&spec)
            .send()
            .and_then(|r| r.json())
            .expect("task");
        let took = t0.elapsed();
        assert_eq!(v["status"], "done", "{v}");
        (took, v)
    }

    pub fn upload(&self, name: &str, bytes: Vec<u8>) {
        let r = self
            .client
            .post(format!("{}/v1/components?name={name}", self.url))
            .bearer_auth(&self.token)
            .body(bytes)
            .send()
            .expect("upload");
        assert_eq!(r.status().as_u16(), 201);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(WASMPAR).arg("stop").arg("--connection-file").arg(&self.conn).output();
        for e in &mut self.engines {
            let _ = e.kill();
            let _ = e.wait();
        }
    }
}
