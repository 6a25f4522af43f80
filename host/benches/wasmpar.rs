//! `cargo bench -p wasmpar --bench wasmpar`: wasmpar's figures and ratios,
//! each measured in one run on this machine (so noise hits both sides of a
//! ratio alike). Prints machine facts, then one row per figure with its
//! target. A bare-wasmtime baseline sits beside wasmpar's per-call figure.

#[path = "../../examples/mandelbrot/src/kernel.rs"]
mod kernel;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value as Json};
use wasmpar::api::{Server, ServerConfig};
use wasmpar::engine::EnginePool;
use wasmpar::runtime::{Limits, Runtime};
use wasmpar::scheduler::{Controller, TaskSpec};

struct Row {
    name: String,
    value: f64,
    unit: &'static str,
    target: Option<(&'static str, f64)>,
    note: String,
}

fn row(name: impl Into<String>, value: f64, unit: &'static str, target: Option<(&'static str, f64)>, note: impl Into<String>) -> Row {
    Row { name: name.into(), value, unit, target, note: note.into() }
}

fn met(r: &Row) -> &'static str {
    match r.target {
        None => "",
        Some((">=", t)) if r.value >= t => "yes",
        Some(("<=", t)) if r.value <= t => "yes",
        Some(_) => "NO",
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn grid(width: usize, height: usize) -> (Vec<f64>, Vec<f64>) {
    let (sx, sy) = (3.0 / width as f64, 2.0 / height as f64);
    let xs = (0..height).flat_map(|_| (0..width).map(move |i| -2.0 + i as f64 * sx)).collect();
    let ys = (0..height).flat_map(|j| std::iter::repeat_n(-1.0 + j as f64 * sy, width)).collect();
    (xs, ys)
}

fn array_form(xs: &[f64], shape: &[usize]) -> Json {
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    json!({"dtype": "float64", "shape": shape, "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

async fn run(c: &Arc<Controller>, spec: Json) -> (Duration, Json) {
    let spec: TaskSpec = serde_json::from_value(spec).expect("task spec");
    let start = Instant::now();
    let task = c.submit(spec).expect("submit");
    task.wait(Duration::MAX).await;
    let wall = start.elapsed();
    let v = task.view();
    if let Some(e) = v.error {
        panic!("{}: {}", e.kind, e.message);
    }
    (wall, v.result.unwrap_or(Json::Null))
}

/// Rows over an in-process cluster (no HTTP): compute figures.
fn compute_rows(rows: &mut Vec<Row>) {
    let n = cores();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let limits = Limits { call_timeout: Duration::from_secs(600), cache_dir: None, ..Limits::default() };
    let pool = EnginePool::start(Runtime::new(limits).expect("runtime"), n).expect("engines");
    let c = Controller::new(pool);
    c.runtime.components.add("mandelbrot", wasmpar::examples::MANDELBROT_BYTES).expect("mandelbrot");

    // 1. wasm in one engine vs native, one core, one call over the whole grid.
    let (w, h, iters) = (400, 300, 2000);
    let (xs, ys) = grid(w, h);
    let start = Instant::now();
    let mut native = Vec::new();
    kernel::mandel_chunk(&xs, &ys, iters, &mut native);
    let t_native = start.elapsed();
    std::hint::black_box(&native);
    let spec = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "targets": [0],
                      "sequences": [array_form(&xs, &[xs.len()]), array_form(&ys, &[ys.len()])], "kwargs": {"max-iters": iters}});
    let (t_wasm, result) = rt.block_on(run(&c, spec));
    let wasm: Vec<u32> = result.as_array().expect("list").iter().map(|v| v.as_u64().unwrap_or(0) as u32).collect();
    assert_eq!(wasm, native, "wasm and native agree");
    rows.push(row(format!("mandelbrot {w}x{h}x{iters}: native, 1 core"), t_native.as_secs_f64() * 1e3, "ms", None, ""));
    rows.push(row(format!("mandelbrot {w}x{h}x{iters}: wasm, 1 engine (incl. argument/result conversion)"), t_wasm.as_secs_f64() * 1e3, "ms", None, ""));
    rows.push(row("wasm / native speed (native time / wasm time)", t_native.as_secs_f64() / t_wasm.as_secs_f64(), "ratio", Some((">=", 0.8)), ""));
    for epochs in [false, true] {
        let t = bare_chunk(&xs, &ys, iters, epochs);
        rows.push(row(
            format!("  bare wasmtime mandel-chunk, same grid, epoch interruption {}", if epochs { "on" } else { "off" }),
            t.as_secs_f64() * 1e3,
            "ms",
            None,
            format!("native/bare = {:.2}", t_native.as_secs_f64() / t.as_secs_f64()),
        ));
    }

    // 2. N engines vs one, a grid that takes over a second serially (rows, balanced).
    let (w, h, iters) = (1500, 1000, 1000);
    let (xs, ys) = grid(w, h);
    let rows_x = array_form(&xs, &[h, w]);
    let rows_y = array_form(&ys, &[h, w]);
    let spec = |targets: Json| json!({"op": "map", "component": "mandelbrot", "function": "mandel-chunk", "targets": targets, "chunksize": 4,
                                      "sequences": [rows_x.clone(), rows_y.clone()], "kwargs": {"max-iters": iters}});
    let (t1, r1) = rt.block_on(run(&c, spec(json!([0]))));
    let (tn, rn) = rt.block_on(run(&c, spec(json!("balanced"))));
    assert_eq!(r1, rn, "serial and parallel agree");
    rows.push(row(format!("mandelbrot {w}x{h}x{iters}: 1 engine"), t1.as_secs_f64() * 1e3, "ms", None, "balanced map over rows, mandel-chunk"));
    rows.push(row(format!("mandelbrot {w}x{h}x{iters}: {n} engines"), tn.as_secs_f64() * 1e3, "ms", None, ""));
    let target = if n == 2 { 1.85 } else { 0.9 * n as f64 };
    rows.push(row(format!("speed-up, {n} engines vs 1 ({n} cores)"), t1.as_secs_f64() / tn.as_secs_f64(), "x", Some((">=", target)), ""));
    c.pool.shutdown();
}

struct Http {
    url: String,
    token: String,
    client: reqwest::blocking::Client,
}

impl Http {
    fn post(&self, path: &str, body: &Json) -> Json {
        let r = self.client.post(format!("{}{}", self.url, path)).bearer_auth(&self.token).json(body).send().expect("post");
        let status = r.status();
        let v: Json = r.json().expect("json");
        assert!(status.is_success(), "{path}: {v}");
        v
    }

    fn task(&self, mut spec: Json) -> (Duration, Json) {
        spec["block"] = json!(true);
        let start = Instant::now();
        let v = self.post("/v1/tasks", &spec);
        let wall = start.elapsed();
        assert_eq!(v["status"], "done", "{}", v["error"]);
        (wall, v)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

/// Rows over the real server and real HTTP.
fn http_rows(rows: &mut Vec<Row>, dir: &Path) {
    let n = cores();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut config = ServerConfig { engines: n, port: 0, connection_file: dir.join("http.json"), ..Default::default() };
    config.limits.cache_dir = Some(dir.join("cache"));
    let server = rt.block_on(Server::start(config)).expect("server");
    let http = Http { url: server.info.url.clone(), token: server.info.token.clone(), client: reqwest::blocking::Client::new() };
    let bytes = std::fs::read(wasmpar::examples::MANDELBROT_WASM).expect("mandelbrot.wasm");
    let upload = |name: &str| {
        let start = Instant::now();
        let r = http.client.post(format!("{}/v1/components?name={name}", http.url)).bearer_auth(&http.token).body(bytes.clone()).send().expect("upload");
        assert_eq!(r.status().as_u16(), 201);
        start.elapsed()
    };
    let first = upload("mandelbrot");
    let again = upload("mandelbrot-again");
    rows.push(row("upload mandelbrot.wasm, first (validate + compile)", first.as_secs_f64() * 1e3, "ms", None, format!("{} KiB", bytes.len() / 1024)));
    rows.push(row("upload mandelbrot.wasm, again (cached by digest)", again.as_secs_f64() * 1e3, "ms", Some(("<=", 5.0)), ""));
    let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed.wasm");
    let r = http.client.post(format!("{}/v1/components?name=seed", http.url)).bearer_auth(&http.token).body(seed).send().expect("upload");
    assert_eq!(r.status().as_u16(), 201);

    // 3. The tutorial's Mandelbrot through the API.
    let xr: Vec<f64> = (0..300).map(|i| -2.0 + i as f64 * 0.01).collect();
    let yr: Vec<f64> = (0..200).map(|j| -1.0 + j as f64 * 0.01).collect();
    let xs: Vec<f64> = yr.iter().flat_map(|_| xr.iter().copied()).collect();
    let ys: Vec<f64> = yr.iter().flat_map(|&y| std::iter::repeat_n(y, xr.len())).collect();
    let (t_map, _) = http.task(json!({"op": "map", "component": "mandelbrot", "function": "mandel", "sequences": [xs, ys], "kwargs": {"max-iters": 80}}));
    let (t_par, _) = http.task(json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "sequences": [xs, ys], "kwargs": {"max-iters": 80}}));
    let (t_one, _) = http.task(json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "sequences": [xs, ys], "kwargs": {"max-iters": 80}, "targets": [0]}));
    rows.push(row("tutorial mandelbrot 300x200x80, elementwise map (60 000 calls), HTTP", t_map.as_secs_f64() * 1e3, "ms", None, "IPython: 886 ms serial"));
    rows.push(row("tutorial mandelbrot, parallel mandel-chunk, all engines, HTTP", t_par.as_secs_f64() * 1e3, "ms", None, "IPython @parallel, 8 engines: 238 ms"));
    rows.push(row("tutorial mandelbrot, mandel-chunk on one engine, HTTP", t_one.as_secs_f64() * 1e3, "ms", None, ""));

    // 4. Tiny tasks.
    let ids: Vec<i64> = (0..100_000).collect();
    let (t_c1, v) = http.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [ids], "targets": "balanced", "chunksize": 1}));
    assert_eq!(v["result"].as_array().map(Vec::len), Some(100_000));
    let (t_auto, _) = http.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [ids], "targets": "balanced"}));
    rows.push(row("balanced map of 100 000 identity calls, chunksize 1", 1e5 / t_c1.as_secs_f64(), "calls/s", Some((">=", 40_000.0)), "end to end over HTTP"));
    rows.push(row("balanced map of 100 000 identity calls, automatic chunks", 1e5 / t_auto.as_secs_f64(), "calls/s", Some((">=", 1_000_000.0)), "end to end over HTTP"));

    // 5. apply round trips (keep-alive client).
    for (label, targets) in [("one engine", json!(0)), ("all engines", json!("all"))] {
        let mut lat = Vec::with_capacity(2000);
        for i in 0..2200 {
            let start = Instant::now();
            let v = http.post("/v1/tasks", &json!({"op": "apply", "component": "seed", "function": "identity", "args": [i], "targets": targets, "block": true}));
            if i >= 200 {
                lat.push(start.elapsed());
            }
            std::hint::black_box(v);
        }
        lat.sort();
        rows.push(row(format!("apply round trip over HTTP, {label}, p50"), percentile(&lat, 0.5), "µs", Some(("<=", 300.0)), ""));
        rows.push(row(format!("apply round trip over HTTP, {label}, p99"), percentile(&lat, 0.99), "µs", None, ""));
    }

    // 6. push and pull of 80 MB of f64 to and from all engines.
    let big: Vec<f64> = (0..10_000_000).map(|i| i as f64 * 0.5).collect();
    let mb = (big.len() * 8) as f64 / 1e6;
    let body = serde_json::to_vec(&json!({"values": {"big": array_form(&big, &[big.len()])}})).expect("json");
    let start = Instant::now();
    let r = http.client.put(format!("{}/v1/namespace", http.url)).bearer_auth(&http.token).header("content-type", "application/json").body(body).send().expect("push");
    assert!(r.status().is_success());
    let t_push = start.elapsed();
    let start = Instant::now();
    let r = http.client.get(format!("{}/v1/namespace?names=big&encoding=array", http.url)).bearer_auth(&http.token).send().expect("pull");
    let pulled = r.bytes().expect("body");
    let t_pull = start.elapsed();
    assert!(pulled.len() as f64 > mb * 1e6 * n as f64);
    let raw: Vec<u8> = big.iter().flat_map(|x| x.to_le_bytes()).collect();
    let start = Instant::now();
    let r = http.client.put(format!("{}/v1/namespace/bigraw?dtype=float64", http.url)).bearer_auth(&http.token).body(raw).send().expect("push raw");
    assert!(r.status().is_success());
    let t_push_raw = start.elapsed();
    let start = Instant::now();
    let mut total = 0;
    for e in 0..n {
        let r = http.client.get(format!("{}/v1/namespace/bigraw?targets={e}", http.url)).bearer_auth(&http.token).send().expect("pull raw");
        total += r.bytes().expect("body").len();
    }
    let t_pull_raw = start.elapsed();
    assert_eq!(total, big.len() * 8 * n);
    let agg = |t: Duration| mb * n as f64 / t.as_secs_f64();
    rows.push(row(format!("push 80 MB f64 to {n} engines, JSON + base64 array form (aggregate)"), agg(t_push), "MB/s", Some((">=", 2000.0)), ""));
    rows.push(row(format!("pull 80 MB f64 from {n} engines, encoding=array (aggregate)"), agg(t_pull), "MB/s", None, ""));
    rows.push(row(format!("push 80 MB f64 to {n} engines, raw bytes route (aggregate)"), agg(t_push_raw), "MB/s", Some((">=", 2000.0)), "PUT /v1/namespace/{name}"));
    rows.push(row(format!("pull 80 MB f64 from {n} engines, raw bytes route (aggregate)"), agg(t_pull_raw), "MB/s", None, "one GET per engine"));
    server.stop();
    let _ = rt.block_on(server.wait());
}

struct Bare {
    wasi: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl wasmtime_wasi::WasiView for Bare {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The Mandelbrot component in a bare wasmtime store (no wasmpar).
fn bare_instance(epochs: bool) -> (wasmtime::Store<Bare>, wasmtime::component::Instance) {
    use wasmtime::component::{Component, Linker, ResourceTable};
    let mut config = wasmtime::Config::new();
    config.concurrency_support(false).epoch_interruption(epochs);
    let engine = wasmtime::Engine::new(&config).expect("engine");
    let component = Component::new(&engine, wasmpar::examples::MANDELBROT_BYTES).expect("component");
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    linker.define_unknown_imports_as_traps(&component).expect("stubs");
    let mut store = wasmtime::Store::new(&engine, Bare { wasi: wasmtime_wasi::WasiCtxBuilder::new().build(), table: ResourceTable::new() });
    store.set_epoch_deadline(u64::MAX);
    let instance = linker.instantiate(&mut store, &component).expect("instantiate");
    (store, instance)
}

fn bare_chunk(xs: &[f64], ys: &[f64], iters: u32, epochs: bool) -> Duration {
    use wasmtime::component::Val;
    let (mut store, instance) = bare_instance(epochs);
    let f = instance.get_func(&mut store, "mandel-chunk").expect("mandel-chunk");
    let args = [
        Val::List(xs.iter().map(|&x| Val::Float64(x)).collect()),
        Val::List(ys.iter().map(|&y| Val::Float64(y)).collect()),
        Val::U32(iters),
    ];
    let mut out = [Val::Bool(false)];
    let start = Instant::now();
    f.call(&mut store, &args, &mut out).expect("call");
    start.elapsed()
}

/// Per-call cost: bare wasmtime (no scheduler, no JSON) vs a wasmpar map.
fn per_call_rows(rows: &mut Vec<Row>) {
    use wasmtime::component::Val;
    let (mut store, instance) = bare_instance(false);
    let f = instance.get_func(&mut store, "mandel").expect("mandel");
    let calls = 200_000;
    let mut out = [Val::U32(0)];
    let start = Instant::now();
    for i in 0..calls {
        f.call(&mut store, &[Val::Float64(i as f64 * 1e-6), Val::Float64(0.0), Val::U32(1)], &mut out).expect("call");
    }
    let bare = start.elapsed().as_secs_f64() * 1e9 / calls as f64;
    rows.push(row("bare wasmtime Func::call of mandel (1 iteration)", bare, "ns/call", None, "baseline: no scheduler, no JSON"));

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let pool = EnginePool::start(Runtime::new(Limits { cache_dir: None, ..Limits::default() }).expect("runtime"), 1).expect("engines");
    let c = Controller::new(pool);
    c.runtime.components.add("mandelbrot", wasmpar::examples::MANDELBROT_BYTES).expect("mandelbrot");
    let xs: Vec<f64> = (0..calls).map(|i| i as f64 * 1e-6).collect();
    let spec = json!({"op": "map", "component": "mandelbrot", "function": "mandel", "targets": [0],
                      "sequences": [array_form(&xs, &[calls]), array_form(&vec![0.0; calls], &[calls])], "kwargs": {"max-iters": 1}});
    let (t, _) = rt.block_on(run(&c, spec));
    rows.push(row("wasmpar map of mandel on one engine (in-process)", t.as_secs_f64() * 1e9 / calls as f64, "ns/call", None, "incl. argument binding and JSON results"));
    c.pool.shutdown();
}

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Start `wasmpar start -n N --daemon`; (time until it returned ready, pid, connection file).
fn start_server(n: usize, dir: &Path) -> (Duration, u32, PathBuf) {
    let conn = dir.join(format!("cluster-{n}.json"));
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmpar"))
        .args(["start", "-n", &n.to_string(), "--daemon", "--json", "--cache-dir"])
        .arg(dir.join("cache"))
        .arg("--connection-file")
        .arg(&conn)
        .output()
        .expect("wasmpar start");
    let took = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Json = serde_json::from_slice(&out.stdout).expect("json");
    (took, v["pid"].as_u64().expect("pid") as u32, conn)
}

fn stop_server(conn: &Path) {
    let _ = Command::new(env!("CARGO_BIN_EXE_wasmpar")).arg("stop").arg("--connection-file").arg(conn).output();
}

fn process_rows(rows: &mut Vec<Row>, dir: &Path) {
    let (_, pid1, c1) = start_server(1, dir);
    std::thread::sleep(Duration::from_millis(300));
    let rss1 = rss_kib(pid1);
    stop_server(&c1);
    let (took8, pid8, c8) = start_server(8, dir);
    std::thread::sleep(Duration::from_millis(300));
    let rss8 = rss_kib(pid8);
    stop_server(&c8);
    rows.push(row("server RSS, 1 idle engine", rss1 / 1024.0, "MiB", None, ""));
    rows.push(row("server RSS, 8 idle engines", rss8 / 1024.0, "MiB", None, ""));
    rows.push(row("RSS per idle engine ((8 - 1) / 7)", (rss8 - rss1) / 7.0 / 1024.0, "MiB", Some(("<=", 2.0)), ""));
    rows.push(row("`wasmpar start -n 8 --daemon` until every engine is ready", took8.as_secs_f64() * 1e3, "ms", Some(("<=", 200.0)), "spawn to ready, incl. exec"));
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let dir = std::env::temp_dir().join(format!("wasmpar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("wasmpar benchmark — {} cores, {}, wasmtime 48.0.8", cores(), cpu_model());
    println!("(each ratio is measured in this one run; rerun with `cargo bench -p wasmpar --bench wasmpar`)\n");
    let mut rows = Vec::new();
    compute_rows(&mut rows);
    per_call_rows(&mut rows);
    http_rows(&mut rows, &dir);
    process_rows(&mut rows, &dir);
    println!("{:<78} {:>14} {:<8} {:>12} {:>4}  note", "figure", "value", "unit", "target", "met");
    for r in &rows {
        let target = r.target.map(|(op, t)| format!("{op} {t}")).unwrap_or_default();
        println!("{:<78} {:>14.2} {:<8} {:>12} {:>4}  {}", r.name, r.value, r.unit, target, met(r), r.note);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
