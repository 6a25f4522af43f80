//! Engines in other processes (`wasmpar engine --connect`), over loopback:
//! every view over them, and the faults of issue 11 — a process killed
//! mid-task, a silent one, a controller that goes away and comes back, a
//! grace period that ends, a wrong token. Real processes of the real binary,
//! real sockets; engines in network namespaces and under Slurm are in the
//! cluster suite (`scripts/test.d/40-cluster.sh`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value as Json};

const BIN: &str = env!("CARGO_BIN_EXE_wasmpar");

/// A controller with no local engines, and engine processes joining it;
/// everything is stopped or killed when dropped (also after a failed assert).
struct RemoteCluster {
    dir: PathBuf,
    engines: Vec<Child>,
    http: reqwest::blocking::Client,
}

impl RemoteCluster {
    fn start() -> RemoteCluster {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("wasmpar-remote-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let c = RemoteCluster { dir, engines: Vec::new(), http: reqwest::blocking::Client::new() };
        c.start_controller();
        c
    }

    fn start_controller(&self) {
        let out = self.cli(&["start", "-n", "0", "--daemon", "--cache-dir", self.dir.join("cache").to_str().expect("utf-8")]);
        assert!(out.status.success(), "start: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn conn(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).arg("--connection-file").arg(self.conn()).env_remove("WASMPAR_TOKEN").output().expect("run wasmpar")
    }

    /// An engine process with `n` engines; the token comes from the file.
    fn engine(&mut self, n: usize, extra: &[&str]) -> u32 {
        let log = std::fs::File::create(self.dir.join(format!("engine-{}.log", self.engines.len()))).expect("log");
        let child = Command::new(BIN)
            .args(["engine", "-n", &n.to_string(), "--cache-dir", self.dir.join("engine-cache").to_str().expect("utf-8")])
            .args(extra)
            .arg("--connection-file")
            .arg(self.conn())
            .env_remove("WASMPAR_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("engine process");
        let pid = child.id();
        self.engines.push(child);
        pid
    }

    fn info(&self) -> wasmpar::api::ConnectionInfo {
        wasmpar::api::connection::read(&self.conn()).expect("connection file")
    }

    fn call(&self, method: &str, path: &str, body: Option<Json>) -> (u16, Json) {
        let info = self.info();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, format!("{}{path}", info.url)).bearer_auth(&info.token).timeout(Duration::from_secs(120));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        (status, if text.is_empty() { Json::Null } else { serde_json::from_str(&text).unwrap_or(Json::String(text)) })
    }

    fn task(&self, mut spec: Json) -> Json {
        spec["block"] = json!(true);
        let (status, t) = self.call("POST", "/v1/tasks", Some(spec));
        assert_eq!(status, 200, "{t}");
        t
    }

    fn ok(&self, spec: Json) -> Json {
        let t = self.task(spec);
        assert_eq!(t["status"], "done", "{t}");
        t["result"].clone()
    }

    fn engines(&self) -> Vec<Json> {
        self.call("GET", "/v1/engines", None).1["engines"].as_array().cloned().unwrap_or_default()
    }

    fn wait_live(&self, n: usize) {
        let out = self.cli(&["engines", "--wait", &n.to_string(), "--timeout", "60"]);
        assert!(
            out.status.success(),
            "engines --wait {n}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn upload_seed(&self) {
        let info = self.info();
        let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed");
        let r = self.http.post(format!("{}/v1/components?name=seed", info.url)).bearer_auth(&info.token).body(seed).send().expect("upload");
        assert_eq!(r.status().as_u16(), 201);
    }
}

impl Drop for RemoteCluster {
    fn drop(&mut self) {
        let _ = self.cli(&["stop"]);
        for c in &mut self.engines {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: sending a signal to a child process we started.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

#[test]
fn every_view_works_over_remote_engines() {
    let mut c = RemoteCluster::start();
    c.engine(2, &["--label", "rack=a"]);
    c.engine(1, &["--label", "rack=b"]);
    c.wait_live(3);
    let engines = c.engines();
    assert_eq!(engines.len(), 3);
    for e in &engines {
        assert_eq!(e["kind"], "remote", "{e}");
        assert!(e["pid"].as_u64().unwrap_or(0) > 0);
        assert!(!e["host"].as_str().unwrap_or("").is_empty());
        assert!(e["last_heartbeat_ms"].as_u64().is_some(), "{e}");
        assert!(e["labels"]["rack"].is_string(), "{e}");
    }
    c.upload_seed();
    let r = (0..10).collect::<Vec<i64>>();
    let want: Vec<i64> = (0..10).map(|i| 3 * i).collect();
    assert_eq!(c.ok(json!({"op": "map", "component": "seed", "function": "add3", "sequences": [r, r, r]})), json!(want));
    assert_eq!(
        c.ok(json!({"op": "map", "component": "seed", "function": "add3", "sequences": [r, r, r], "targets": "balanced", "chunksize": 1})),
        json!(want)
    );
    assert_eq!(c.ok(json!({"op": "apply", "component": "seed", "function": "hypot2", "args": [3, 4], "targets": "::2"})), json!([25, 25]));
    assert_eq!(
        c.ok(json!({"op": "apply", "component": "seed", "function": "hypot2", "kwargs": {"x": 3, "y": 4}, "targets": "balanced"})),
        json!(25)
    );
    assert_eq!(
        c.ok(json!({"op": "parallel", "component": "seed", "function": "sum-chunk", "sequences": [(0..15).collect::<Vec<i64>>()]})),
        json!([10, 35, 60])
    );
    // Namespace: push, $ref, pull, scatter/gather, arrays.
    let (status, _) = c.call("PUT", "/v1/namespace", Some(json!({"values": {"a": 3, "b": 2, "u": 18446744073709551615u64}})));
    assert_eq!(status, 200);
    assert_eq!(
        c.ok(json!({"op": "map", "component": "seed", "function": "affine", "sequences": [[0, 1, 2, 3, 4]]})),
        json!([2, 5, 8, 11, 14])
    );
    assert_eq!(
        c.ok(json!({"op": "apply", "component": "seed", "function": "identity", "args": [{"$ref": "a"}], "targets": 1})),
        json!([3])
    );
    let (_, pulled) = c.call("GET", "/v1/namespace?names=a,b,u&targets=all", None);
    assert_eq!(pulled["values"], json!(vec![json!({"a": 3, "b": 2, "u": 18446744073709551615u64}); 3]));
    // A Python-only global (listed by the runner's `__python__`) is named with its type.
    let marker = json!({"__python__": {"session": "ab", "cell": 1, "running": false, "objects": {"f": "function"}}});
    assert_eq!(c.call("PUT", "/v1/namespace", Some(json!({"values": marker, "targets": 2}))).0, 200);
    let (status, v) = c.call("GET", "/v1/namespace?names=f&targets=2", None);
    assert_eq!(status, 404, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("`f` on engine 2 is a Python-only object of type `function`"), "{v}");
    let (status, _) = c.call("POST", "/v1/scatter", Some(json!({"name": "xs", "values": (0..24).collect::<Vec<i64>>()})));
    assert_eq!(status, 200);
    let sq = c.task(json!({"op": "apply", "component": "seed", "function": "squares"}));
    assert_eq!(sq["status"], "done", "{sq}");
    let (_, g) = c.call("GET", "/v1/gather?name=y", None);
    assert_eq!(g["values"], json!((0..24).map(|i| i * i).collect::<Vec<i64>>()));
    let arr = json!({"dtype": "float64", "shape": [3], "data": "AAAAAAAA8D8AAAAAAAAAQAAAAAAAAAhA"});
    let (status, _) = c.call("PUT", "/v1/namespace", Some(json!({"values": {"v": arr}, "targets": 0})));
    assert_eq!(status, 200);
    let (_, v) = c.call("GET", "/v1/namespace?names=v&targets=0&encoding=array", None);
    assert_eq!(v["values"][0]["v"], arr);
    // stdout per engine, in order.
    let t = c.task(json!({"op": "apply", "component": "seed", "function": "greet", "args": ["remote"]}));
    assert_eq!(t["result"], json!(vec!["hello, remote"; 3]));
    let outs = t["outputs"].as_array().expect("outputs");
    assert_eq!(outs.len(), 3, "{t}");
    assert!(outs.iter().all(|o| o["stdout"] == "hello, remote\n"), "{t}");
    // Deadlines are enforced on the remote side; the engine works after.
    let t = c.task(json!({"op": "apply", "component": "seed", "function": "spin", "targets": 0, "timeout_s": 0.3}));
    assert_eq!(t["error"]["kind"], "TimeoutError", "{t}");
    // A trap is a RemoteError with the guest's message.
    let t = c.task(json!({"op": "apply", "component": "seed", "function": "fail", "args": ["kaboom"], "targets": 2}));
    assert_eq!(t["error"]["kind"], "RemoteError", "{t}");
    assert!(t["error"]["errors"][0]["message"].as_str().unwrap_or("").contains("kaboom"), "{t}");
    assert_eq!(t["error"]["errors"][0]["engine"], 2);
    // Cancel reaches the engine process.
    let (_, t) = c.call(
        "POST",
        "/v1/tasks",
        Some(json!({"op": "apply", "component": "seed", "function": "spin", "targets": 1, "timeout_s": 30, "block": false})),
    );
    let id = t["id"].as_str().expect("id").to_string();
    wait_for(Duration::from_secs(10), "the spin to start", || {
        (c.call("GET", &format!("/v1/tasks/{id}"), None).1["status"] == "running").then_some(())
    });
    let t0 = Instant::now();
    let (_, t) = c.call("DELETE", &format!("/v1/tasks/{id}"), None);
    assert_eq!(t["status"], "cancelled", "{t}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(c.ok(json!({"op": "apply", "component": "seed", "function": "identity", "args": [7]})), json!([7, 7, 7]));
}

/// Tiny balanced tasks travel grouped (many batches per message) and large
/// pushed arrays are staged for the engine processes to fetch: results stay
/// in order, a failing call in a group fails the task once, and a staged
/// array arrives exactly, as a list or an array.
#[test]
fn grouped_batches_and_staged_arrays_over_remote_engines() {
    let mut c = RemoteCluster::start();
    c.engine(1, &[]);
    c.engine(1, &[]);
    c.wait_live(2);
    c.upload_seed();
    let n = 20_000i64;
    let items: Vec<i64> = (0..n).collect();
    let t = c.task(
        json!({"op": "map", "component": "seed", "function": "identity", "sequences": [items], "targets": "balanced", "chunksize": 1}),
    );
    assert_eq!(t["status"], "done", "{}", t["error"]);
    assert_eq!(t["result"], json!(items));
    assert_eq!(t["progress"]["done"], n);
    assert_eq!(t["engines"], json!([0, 1]), "both engines took batches");
    // One call in the middle traps (sum-chunk overflows): one error, not one per batch of its group.
    let mut chunks: Vec<Vec<i64>> = (0..2000).map(|i| vec![i, 1]).collect();
    chunks[1234] = vec![i64::MAX, 1];
    let t = c.task(
        json!({"op": "map", "component": "seed", "function": "sum-chunk", "sequences": [chunks], "targets": "balanced", "chunksize": 1}),
    );
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["kind"], "RemoteError", "{}", t["error"]);
    assert_eq!(t["error"]["errors"].as_array().map(Vec::len), Some(1), "{}", t["error"]);
    // Array-form chunks travel as slices of their bytes: of exactly the
    // element type (typed on the engine) or another that converts (int32 → s64).
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let xs: Vec<i64> = (0..1000).map(|i| i * 3 - 700).collect();
    let i64s = json!({"dtype": "int64", "shape": [1000], "data": b64(xs.iter().flat_map(|x| x.to_le_bytes()).collect())});
    let i32s = json!({"dtype": "int32", "shape": [1000], "data": b64(xs.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect())});
    let doubled: Vec<i64> = xs.iter().map(|x| 2 * x).collect();
    assert_eq!(c.ok(json!({"op": "parallel", "component": "seed", "function": "add-chunks", "sequences": [i64s, i64s]})), json!(doubled));
    assert_eq!(c.ok(json!({"op": "parallel", "component": "seed", "function": "add-chunks", "sequences": [i32s, i64s]})), json!(doubled));
    // Staged pushes: 1 MB of float64 and 400 kB of int64, read by a call and pulled back exactly.
    let xs: Vec<f64> = (0..131_072).map(|i| i as f64 * 0.25 - 7.0).collect();
    let raw: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    let info = c.info();
    let r = c
        .http
        .put(format!("{}/v1/namespace/big?dtype=float64&shape=512,256", info.url))
        .bearer_auth(&info.token)
        .body(raw.clone())
        .send()
        .expect("raw push");
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .http
        .put(format!("{}/v1/namespace/flat?dtype=float64", info.url))
        .bearer_auth(&info.token)
        .body(raw.clone())
        .send()
        .expect("push");
    assert_eq!(r.status().as_u16(), 200);
    let ints: Vec<i64> = (0..50_000).map(|i| i * 1_000_003 - 17).collect();
    let (status, _) = c.call("PUT", "/v1/namespace", Some(json!({"values": {"ints": ints}})));
    assert_eq!(status, 200);
    let want: f64 = xs.iter().sum();
    let t = c.ok(json!({"op": "apply", "component": "seed", "function": "sum-array", "args": [{"$ref": "flat"}]}));
    assert_eq!(t, json!([want, want]));
    for engine in 0..2 {
        let back = c.http.get(format!("{}/v1/namespace/big?targets={engine}", info.url)).bearer_auth(&info.token).send().expect("raw pull");
        assert_eq!(back.headers()["x-wasmpar-shape"], "512,256");
        assert_eq!(back.bytes().expect("bytes").as_ref(), raw.as_slice(), "engine {engine}: the staged array came back changed");
    }
    let (_, pulled) = c.call("GET", "/v1/namespace?names=ints&targets=1", None);
    assert_eq!(pulled["values"][0]["ints"], json!(ints));
    // A streamed push whose body breaks half-way loses nothing: the engines
    // keep the value they had, and work on.
    let addr = info.url.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    let head = format!(
        "PUT /v1/namespace/flat?dtype=float64 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        info.token,
        raw.len()
    );
    std::io::Write::write_all(&mut sock, head.as_bytes()).expect("head");
    std::io::Write::write_all(&mut sock, &raw[..raw.len() / 2]).expect("half a body");
    std::thread::sleep(Duration::from_millis(300));
    drop(sock);
    std::thread::sleep(Duration::from_millis(300));
    let t = c.ok(json!({"op": "apply", "component": "seed", "function": "sum-array", "args": [{"$ref": "flat"}]}));
    assert_eq!(t, json!([want, want]), "the broken push changed the engines' value");
}

#[test]
fn a_killed_engine_process_fails_its_direct_task_and_its_batches_run_elsewhere() {
    let mut c = RemoteCluster::start();
    let victim = c.engine(1, &[]);
    c.wait_live(1);
    c.engine(1, &[]);
    c.wait_live(2);
    c.upload_seed();
    let victim_id = c.engines().iter().find(|e| e["pid"] == victim).expect("victim")["id"].as_u64().expect("id");
    // Direct: a long call on the victim fails with EngineLost within a second of the kill.
    let (_, t) = c.call(
        "POST",
        "/v1/tasks",
        Some(json!({"op": "apply", "component": "seed", "function": "spin", "targets": victim_id, "timeout_s": 60, "block": false})),
    );
    let id = t["id"].as_str().expect("id").to_string();
    wait_for(Duration::from_secs(10), "the call to start", || {
        (c.call("GET", &format!("/v1/tasks/{id}"), None).1["status"] == "running").then_some(())
    });
    signal(victim, libc::SIGKILL);
    let killed = Instant::now();
    let (_, t) = c.call("GET", &format!("/v1/tasks/{id}?wait=30"), None);
    let noticed = killed.elapsed();
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["kind"], "EngineLost", "{t}");
    assert!(t["error"]["message"].as_str().unwrap_or("").contains(&format!("engine {victim_id}")), "{t}");
    assert!(noticed < Duration::from_secs(1), "the loss was noticed after {noticed:?}");
    let e = c.engines();
    assert_eq!(e.iter().find(|e| e["id"] == victim_id).expect("listed")["state"], "lost");
    // Balanced: another process dies mid-map; its batches run again on the
    // engine that is left, nothing lost or answered twice.
    let victim = c.engine(1, &[]);
    c.wait_live(2);
    let items: Vec<u32> = vec![300_000; 8];
    let (_, t) = c.call(
        "POST",
        "/v1/tasks",
        Some(json!({"op": "map", "component": "seed", "function": "shout", "sequences": [items], "targets": "balanced", "chunksize": 1, "block": false})),
    );
    let id = t["id"].as_str().expect("id").to_string();
    wait_for(Duration::from_secs(20), "the map to start on the victim", || {
        c.engines().iter().any(|e| e["pid"] == victim && e["queued"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(100));
    signal(victim, libc::SIGKILL);
    let (_, t) = c.call("GET", &format!("/v1/tasks/{id}?wait=60"), None);
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["result"], json!(vec![300_000; 8]));
    assert_eq!(t["progress"]["done"], 8);
}

#[test]
fn a_silent_engine_is_lost_by_heartbeat_and_comes_back_with_its_namespace() {
    let mut c = RemoteCluster::start();
    let pid = c.engine(1, &[]);
    c.wait_live(1);
    c.upload_seed();
    let (status, _) = c.call("PUT", "/v1/namespace", Some(json!({"values": {"kept": "here"}})));
    assert_eq!(status, 200);
    signal(pid, libc::SIGSTOP);
    let stopped = Instant::now();
    wait_for(Duration::from_secs(10), "the engine to be lost", || (c.engines()[0]["state"] == "lost").then_some(()));
    let noticed = stopped.elapsed();
    assert!(noticed <= Duration::from_secs(5), "a silent engine was noticed after {noticed:?}");
    signal(pid, libc::SIGCONT);
    // It notices, reconnects and gets its id back, namespace intact.
    wait_for(Duration::from_secs(20), "the engine to come back", || (c.engines()[0]["state"] != "lost").then_some(()));
    assert_eq!(c.engines().len(), 1, "the same process gets its former id");
    let (_, v) = c.call("GET", "/v1/namespace?names=kept", None);
    assert_eq!(v["values"], json!([{"kept": "here"}]));
}

#[test]
fn engines_survive_a_controller_restart_and_exit_after_their_grace() {
    let mut c = RemoteCluster::start();
    c.engine(2, &["--grace", "30"]);
    c.wait_live(2);
    let token = c.info().token;
    let (status, _) = c.call("PUT", "/v1/namespace", Some(json!({"values": {"kept": [1, 2, 3]}})));
    assert_eq!(status, 200);
    let out = c.cli(&["stop"]);
    assert!(out.status.success());
    c.start_controller();
    assert_eq!(c.info().token, token, "a controller restarted on the same connection file keeps its token");
    c.wait_live(2);
    let (_, v) = c.call("GET", "/v1/namespace?names=kept", None);
    assert_eq!(v["values"], json!([{"kept": [1, 2, 3]}, {"kept": [1, 2, 3]}]), "an IPython engine would have lost this");
    // With no controller, a short grace ends the process (no orphans).
    let mut lonely = Command::new(BIN)
        .args(["engine", "-n", "1", "--connect", "http://127.0.0.1:9", "--grace", "1"])
        .env("WASMPAR_TOKEN", "not-used")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("engine");
    let status = wait_for(Duration::from_secs(20), "the engine to exit", || lonely.try_wait().ok().flatten());
    assert_eq!(status.code(), Some(3), "exit code 3: no controller within the grace");
}

#[test]
fn a_wrong_token_is_refused_and_not_logged() {
    let c = RemoteCluster::start();
    let url = c.info().url;
    let out = Command::new(BIN)
        .args(["engine", "-n", "1", "--connect", &url, "--grace", "5"])
        .env("WASMPAR_TOKEN", "wrong-token-value-1234")
        .output()
        .expect("engine");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused") && err.contains("token"), "{err}");
    assert!(c.engines().is_empty());
    let log = std::fs::read_to_string(c.dir.join("cluster.log")).unwrap_or_default();
    assert!(log.contains("wrong token"), "the refusal is logged: {log}");
    assert!(!log.contains("wrong-token-value-1234"), "the token's value is never logged");
}
