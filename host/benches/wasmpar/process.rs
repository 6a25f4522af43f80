//! Figures of the real `wasmpar` binary as a separate process: start-up
//! until every engine is ready, resident memory per engine, and a component
//! upload into a new process whose compile cache is already warm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::report::{median_of, ms, Table, Target};

const WASMPAR: &str = env!("CARGO_BIN_EXE_wasmpar");

struct Daemon {
    pid: u32,
    conn: PathBuf,
    url: String,
    token: String,
    /// From spawning `wasmpar start --daemon` until it returned (ready).
    spawn_to_ready: Duration,
    /// What the CLI itself reports (`--json`'s `ready_ms`).
    ready_ms: f64,
}

impl Daemon {
    /// `wasmpar start -n N --daemon --json`: it returns once the connection
    /// file exists and `/v1/health` answers, i.e. when every engine is ready.
    fn start(n: usize, dir: &Path, cache: &Path) -> Daemon {
        let conn = dir.join(format!("cluster-{n}.json"));
        let start = Instant::now();
        let out = Command::new(WASMPAR)
            .args(["start", "-n", &n.to_string(), "--daemon", "--json", "--cache-dir"])
            .arg(cache)
            .arg("--connection-file")
            .arg(&conn)
            .output()
            .expect("run wasmpar start");
        let spawn_to_ready = start.elapsed();
        assert!(out.status.success(), "wasmpar start: {}", String::from_utf8_lossy(&out.stderr));
        let v: Json = serde_json::from_slice(&out.stdout).expect("--json output");
        let info: Json = serde_json::from_slice(&std::fs::read(&conn).expect("connection file")).expect("connection json");
        Daemon {
            pid: v["pid"].as_u64().expect("pid") as u32,
            url: info["url"].as_str().expect("url").to_string(),
            token: info["token"].as_str().expect("token").to_string(),
            conn,
            spawn_to_ready,
            ready_ms: v["ready_ms"].as_f64().unwrap_or(f64::NAN),
        }
    }

    fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    /// A memory line of `/proc/<pid>/status` (VmRSS, VmHWM: the peak), in MiB.
    fn status_mib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    fn upload(&self, client: &reqwest::blocking::Client, name: &str, bytes: &[u8]) -> Duration {
        let start = Instant::now();
        let r = client
            .post(format!("{}/v1/components?name={name}", self.url))
            .bearer_auth(&self.token)
            .body(bytes.to_vec())
            .send()
            .expect("upload");
        let took = start.elapsed();
        assert_eq!(r.status().as_u16(), 201);
        took
    }

    /// One call of `seed/identity` on every engine, so each holds a live instance.
    fn touch_all(&self, client: &reqwest::blocking::Client) {
        let spec = json!({"op": "apply", "component": "seed", "function": "identity", "args": [1], "targets": "all", "block": true});
        let r = client.post(format!("{}/v1/tasks", self.url)).bearer_auth(&self.token).json(&spec).send().expect("apply");
        assert!(r.status().is_success());
    }

    fn stop(self) {
        let _ = Command::new(WASMPAR).arg("stop").arg("--connection-file").arg(&self.conn).output();
        let alive = || Path::new(&format!("/proc/{}", self.pid)).exists();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if alive() {
            // The server this bench started did not stop: end it, by its own pid.
            // SAFETY: kill(2) on a pid we spawned.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        }
    }
}

/// Memory after start-up has settled.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// `cache` is the compile cache the HTTP section filled (same bytes, same
/// engine configuration), so uploads here are read back from disk.
pub fn rows(t: &mut Table, dir: &Path, cache: &Path) {
    let client = reqwest::blocking::Client::new();
    let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed.wasm");
    let mandelbrot = std::fs::read(wasmpar::examples::MANDELBROT_WASM).expect("mandelbrot.wasm");

    // 8. Start-up: median of three starts of -n 8.
    t.section("start-up of the real binary (`wasmpar start -n 8 --daemon --json`)");
    let mut ready_ms = Vec::new();
    let (took8, ()) = median_of(3, || {
        let d = Daemon::start(8, dir, cache);
        let took = d.spawn_to_ready;
        ready_ms.push(d.ready_ms);
        d.stop();
        (took, ())
    });
    ready_ms.sort_by(f64::total_cmp);
    t.add(
        "spawn until every engine is ready and /v1/health answers",
        ms(took8),
        "ms",
        Some(Target::AtMost(200.0)),
        "median of 3; incl. exec of both processes",
    );
    t.add("  as the CLI reports it (--json ready_ms)", ready_ms[1], "ms", None, "median of 3");

    // 7. Memory: an idle -n 1 and -n 8 server; then with a live instance per engine.
    t.section("resident memory (VmRSS) of the server process");
    let one = Daemon::start(1, dir, cache);
    settle();
    let idle1 = one.rss_mib();
    one.upload(&client, "seed", &seed);
    one.touch_all(&client);
    settle();
    let live1 = one.rss_mib();
    one.stop();

    let eight = Daemon::start(8, dir, cache);
    settle();
    let idle8 = eight.rss_mib();
    let from_disk = eight.upload(&client, "mandelbrot", &mandelbrot);
    eight.upload(&client, "seed", &seed);
    eight.touch_all(&client);
    settle();
    let live8 = eight.rss_mib();
    eight.stop();

    t.add("-n 1, idle", idle1, "MiB", None, "");
    t.add("-n 8, idle", idle8, "MiB", None, "");
    t.add("per idle engine ((n8 - n1) / 7)", (idle8 - idle1) / 7.0, "MiB", Some(Target::AtMost(2.0)), "");
    t.add(
        "  per engine with a live seed instance (after one apply on all)",
        (live8 - live1) / 7.0,
        "MiB",
        None,
        format!("-n 1 {live1:.1} MiB, -n 8 {live8:.1} MiB"),
    );

    // Issue 16, item 4: a map of 10 million small items (a ~20 MB body).
    t.section("a balanced map of 10 million small items (seed/identity, one ~20 MB request)");
    let d = Daemon::start(2, dir, cache);
    d.upload(&client, "seed", &seed);
    d.touch_all(&client);
    settle();
    let before = d.rss_mib();
    let n = 10_000_000usize;
    let mut body = String::with_capacity(2 * n + 200);
    body.push_str(r#"{"op": "map", "component": "seed", "function": "identity", "targets": "balanced", "block": true, "sequences": [["#);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push(char::from(b'0' + (i % 10) as u8));
    }
    body.push_str("]]}");
    let body_mb = body.len() as f64 / 1e6;
    let t0 = Instant::now();
    let r = client
        .post(format!("{}/v1/tasks", d.url))
        .bearer_auth(&d.token)
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(600))
        .body(body)
        .send()
        .expect("map");
    let answer = r.bytes().expect("answer");
    let took = t0.elapsed();
    let v: Json = serde_json::from_slice(&answer).expect("json");
    assert_eq!(v["status"], "done", "{}", v["error"]);
    assert_eq!(v["result"].as_array().map(Vec::len), Some(n));
    assert_eq!(v["result"][n - 1], json!((n - 1) % 10));
    drop(v);
    settle();
    let peak = d.status_mib("VmHWM:");
    let after = d.rss_mib();
    d.stop();
    let per_item = |mib: f64| mib * 1024.0 * 1024.0 / n as f64;
    t.add("  request to answer", ms(took), "ms", None, format!("{body_mb:.1} MB body"));
    t.add(
        "peak server memory per item (VmHWM - RSS before)",
        per_item(peak - before),
        "B/item",
        Some(Target::AtMost(50.0)),
        format!("RSS before {before:.0} MiB, peak {peak:.0} MiB"),
    );
    t.add(
        "held after the answer was delivered, per item (RSS after - before)",
        per_item(after - before),
        "B/item",
        None,
        format!("RSS after {after:.0} MiB"),
    );

    t.section("component upload into a new process (compiled artifact on disk)");
    t.add(
        "upload mandelbrot.wasm to a fresh `wasmpar start -n 8`",
        ms(from_disk),
        "ms",
        Some(Target::AtMost(5.0)),
        "deserialized from the disk cache",
    );
}
