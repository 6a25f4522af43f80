//! Faults survived and bad input refused (issue "Sandbox, limits and bad
//! input"): in every case the server answers, other work finishes with
//! correct results, and the namespace of unaffected engines is intact.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::server::TestServer;

/// Poll `f` until it returns `Some`, or fail after `within`: waits on a real
/// condition, never a guessed sleep.
fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn status_of(s: &TestServer, id: &str) -> Json {
    s.call("GET", &format!("/v1/tasks/{id}"), None).1["status"].clone()
}

fn completed_total(s: &TestServer) -> u64 {
    let (_, e) = s.call("GET", "/v1/engines", None);
    e["engines"].as_array().map_or(0, |all| all.iter().map(|e| e["completed"].as_u64().unwrap_or(0)).sum())
}

fn error_kind(task: &Json) -> &str {
    task["error"]["kind"].as_str().unwrap_or("")
}

/// Push a marker on every engine, to check afterwards that it survived.
fn mark(s: &TestServer) {
    s.push(json!({"marker": "intact", "big": [1.5, 2.5, 3.5]}), json!("all"));
}

fn assert_marked(s: &TestServer, engines: usize) {
    let (status, v) = s.pull("marker,big", "all");
    assert_eq!(status, 200, "{v}");
    let want: Vec<Json> = (0..engines).map(|_| json!({"marker": "intact", "big": [1.5, 2.5, 3.5]})).collect();
    assert_eq!(v["values"], Json::Array(want));
}

#[test]
fn a_trap_keeps_the_namespace_and_the_engine() {
    let s = TestServer::start(2);
    s.upload_seed();
    mark(&s);
    let t = s.apply("fail", json!(["kaboom"]), json!(1));
    assert_eq!(t["status"], "failed");
    assert_eq!(error_kind(&t), "RemoteError");
    let e = &t["error"]["errors"][0];
    assert_eq!(e["engine"], 1);
    assert_eq!(e["function"], "seed/fail");
    assert!(e["message"].as_str().unwrap_or("").contains("kaboom"), "{e}");
    assert!(e["trace"].as_str().unwrap_or("").contains("seed.wasm!"), "a wasm backtrace: {e}");
    assert_marked(&s, 2);
    s.assert_healthy(2);
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let s = TestServer::start(2);
    s.upload_seed();
    mark(&s);
    let start = Instant::now();
    let t = s.task(json!({"op": "apply", "component": "seed", "function": "spin", "targets": 0, "timeout_s": 0.3}));
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(error_kind(&t), "TimeoutError", "{t}");
    assert!(t["error"]["errors"][0]["message"].as_str().unwrap_or("").contains("deadline of 0.300 s exceeded"));
    assert_marked(&s, 2);
    s.assert_healthy(2);
}

/// A kernel on the typed path (array forms in, a list out: engine/typed.rs)
/// is held to its deadline like any call, and the engine works after.
#[test]
fn a_typed_kernel_hits_the_deadline() {
    use base64::Engine as _;
    let s = TestServer::start(2);
    s.upload_seed();
    s.upload("mandelbrot", wasmpar::examples::MANDELBROT_WASM);
    mark(&s);
    let form = |v: &[f64]| {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        json!({"dtype": "float64", "shape": [v.len()], "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
    };
    // Points inside the set never escape: u32::MAX iterations each.
    let zeros = form(&[0.0; 64]);
    let start = Instant::now();
    let t = s.task(json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk",
                          "sequences": [zeros, zeros], "kwargs": {"max-iters": u32::MAX}, "timeout_s": 0.3}));
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(error_kind(&t), "TimeoutError", "{t}");
    assert_marked(&s, 2);
    let ok = s.task(json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk",
                           "sequences": [form(&[1.0, 2.0]), form(&[1.0, 2.0])], "kwargs": {"max-iters": 80}, "result_encoding": "array"}));
    assert_eq!(ok["status"], "done", "{ok}");
    assert_eq!(ok["result"]["dtype"], "uint32");
    s.assert_healthy(2);
}

#[test]
fn fuel_bounds_cpu_when_enabled() {
    let s = TestServer::start_with(1, |c| c.limits.fuel = Some(50_000_000));
    s.upload_seed();
    let t = s.apply("spin", json!([]), json!("all"));
    assert_eq!(error_kind(&t), "TimeoutError", "{t}");
    assert!(t["error"]["message"].as_str().unwrap_or("").contains("fuel exhausted"), "{t}");
    s.assert_healthy(1);
}

#[test]
fn a_memory_bomb_is_capped_on_every_engine_at_once() {
    let s = TestServer::start_with(2, |c| c.limits.memory_per_engine = 64 << 20);
    s.upload_seed();
    mark(&s);
    // Within the cap: fine.
    assert_eq!(s.ok(json!({"op": "apply", "component": "seed", "function": "hog", "args": [16]})), json!([16, 16]));
    // Past it, on both engines at once.
    let t = s.apply("hog", json!([500]), json!("all"));
    assert_eq!(error_kind(&t), "CompositeError", "{t}");
    for e in t["error"]["errors"].as_array().expect("errors") {
        let m = e["message"].as_str().unwrap_or("");
        assert!(m.contains("memory cap of 64 MiB"), "{m}");
    }
    assert_marked(&s, 2);
    s.assert_healthy(2);
    // And the whole cap is usable again afterwards.
    assert_eq!(s.ok(json!({"op": "apply", "component": "seed", "function": "hog", "args": [32]})), json!([32, 32]));
}

#[test]
fn deep_recursion_overflows_a_stack_not_the_host() {
    // Default limits: Rust's own shadow stack in linear memory (1 MiB) runs
    // out first, an out-of-bounds trap.
    let s = TestServer::start(2);
    s.upload_seed();
    mark(&s);
    assert_eq!(s.ok(json!({"op": "apply", "component": "seed", "function": "recurse", "args": [1000], "targets": 0})), json!([1000]));
    let t = s.apply("recurse", json!([100_000_000u64]), json!(0));
    assert_eq!(error_kind(&t), "RemoteError", "{t}");
    let m = t["error"]["errors"][0]["message"].as_str().unwrap_or("");
    assert!(m.contains("stack overflow") || m.contains("out of bounds memory access"), "{m}");
    assert_marked(&s, 2);
    s.assert_healthy(2);
    // A small wasm stack: wasmtime's own stack limit stops it.
    let s = TestServer::start_with(1, |c| c.limits.max_wasm_stack = 64 << 10);
    s.upload_seed();
    assert_eq!(s.ok(json!({"op": "apply", "component": "seed", "function": "recurse", "args": [200]})), json!([200]));
    let t = s.apply("recurse", json!([1_000_000]), json!("all"));
    let m = t["error"]["errors"][0]["message"].as_str().unwrap_or("");
    assert!(m.contains("wasm stack overflow (the stack is limited to 64 KiB)"), "{t}");
    s.assert_healthy(1);
}

#[test]
fn huge_output_is_truncated_and_marked() {
    let s = TestServer::start_with(1, |c| c.limits.output_cap = 16 << 10);
    s.upload_seed();
    let t = s.apply("shout", json!([100_000]), json!("all"));
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["result"], json!([100_000]));
    let out = t["outputs"][0]["stdout"].as_str().expect("stdout");
    assert!(out.len() < 20 << 10, "capped: {} bytes", out.len());
    assert!(out.contains("[wasmpar: output truncated,") && out.contains("more bytes dropped]"), "{}", &out[out.len() - 200..]);
    s.assert_healthy(1);
}

#[test]
fn cancel_interrupts_running_calls_and_drops_queued_work() {
    let s = TestServer::start(2);
    s.upload_seed();
    mark(&s);
    let cancel = |id: &str| {
        let start = Instant::now();
        let (status, t) = s.call("DELETE", &format!("/v1/tasks/{id}"), None);
        assert_eq!(status, 200);
        assert!(start.elapsed() < Duration::from_secs(5), "cancel answers promptly");
        t
    };
    // Running calls on every engine are interrupted.
    let (status, t) = s.call("POST", "/v1/tasks", Some(&json!({"op": "apply", "component": "seed", "function": "spin", "block": false})));
    assert_eq!(status, 202, "{t}");
    let id = t["id"].as_str().expect("id").to_string();
    wait_for(Duration::from_secs(10), "the spin to start", || (status_of(&s, &id) == "running").then_some(()));
    let t = cancel(&id);
    assert_eq!(t["status"], "cancelled", "{t}");
    assert_eq!(t["error"]["kind"], "Cancelled");
    // A balanced map: two long calls running, eight batches queued behind
    // them; the running ones are interrupted and the queued ones never run.
    let long = vec![2_000_000_000u32; 10];
    let (_, t) = s.call(
        "POST",
        "/v1/tasks",
        Some(&json!({"op": "map", "component": "seed", "function": "shout",
        "sequences": [long], "targets": "balanced", "chunksize": 1, "block": false})),
    );
    let id = t["id"].as_str().expect("id").to_string();
    // Running: both engines busy with their first batch.
    wait_for(Duration::from_secs(10), "both engines to be busy", || {
        let (_, e) = s.call("GET", "/v1/engines", None);
        e["engines"].as_array().is_some_and(|all| all.iter().all(|e| e["state"] == "busy")).then_some(())
    });
    let (_, running) = s.call("GET", &format!("/v1/tasks/{id}"), None);
    assert_eq!(running["status"], "running", "{running}");
    let t = cancel(&id);
    assert_eq!(t["status"], "cancelled", "{t}");
    assert_eq!(t["progress"], json!({"done": 0, "total": 10}), "no queued batch ran");
    // The engines drop the rest of the work at once (their counters settle
    // just after the task's answer).
    let settled = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, e) = s.call("GET", "/v1/engines", None);
        if e["engines"].as_array().expect("engines").iter().all(|e| e["queued"] == 0) {
            break;
        }
        assert!(Instant::now() < settled, "work still queued after the cancel: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_marked(&s, 2);
    s.assert_healthy(2);
}

#[test]
fn a_panicking_engine_thread_fails_only_its_task() {
    let s = TestServer::start_with(2, |c| c.fault_injection = true);
    s.upload_seed();
    mark(&s);
    let (status, _) = s.call("POST", "/v1/engines/1/panic", None);
    assert_eq!(status, 202);
    let t = s.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [[1, 2, 3, 4]]}));
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(error_kind(&t), "EngineError", "{t}");
    assert_eq!(t["error"]["errors"][0]["engine"], 1);
    let (_, engines) = s.call("GET", "/v1/engines", None);
    assert_eq!(engines["engines"][1]["restarts"], 1, "{engines}");
    assert_eq!(engines["engines"][0]["restarts"], 0);
    // The engine is back, with its namespace.
    assert_marked(&s, 2);
    s.assert_healthy(2);
    // Balanced work survives a panic too: the task fails, nothing hangs.
    for e in 0..2 {
        assert_eq!(s.call("POST", &format!("/v1/engines/{e}/panic"), None).0, 202);
    }
    let t = s.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [(0..50).collect::<Vec<i64>>()],
                          "targets": "balanced", "chunksize": 1}));
    assert_eq!(t["status"], "failed", "{t}");
    // An engine that took no batch is still armed: one more call disarms it.
    let _ = s.apply("identity", json!([0]), json!("all"));
    s.assert_healthy(2);
    // Without --enable-fault-injection the route does not exist.
    let plain = TestServer::start(1);
    assert_eq!(plain.call("POST", "/v1/engines/0/panic", None).0, 404);
}

#[test]
fn a_client_that_disconnects_mid_request_loses_nothing() {
    let s = TestServer::start(2);
    s.upload_seed();
    mark(&s);
    let addr = s.url.trim_start_matches("http://").to_string();
    let before = completed_total(&s);
    // A blocking task whose client goes away before the answer.
    let body = json!({"op": "apply", "component": "seed", "function": "spin", "timeout_s": 1.0, "block": true}).to_string();
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        sock,
        "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        s.token,
        body.len(),
        body
    )
    .expect("send");
    // The task is accepted and running on both engines; then the client goes.
    wait_for(Duration::from_secs(20), "the blocking task to run", || {
        let (_, e) = s.call("GET", "/v1/engines", None);
        e["engines"].as_array().is_some_and(|all| all.iter().all(|e| e["state"] == "busy")).then_some(())
    });
    drop(sock);
    // A request whose body never fully arrives.
    let mut sock = std::net::TcpStream::connect(&addr).expect("connect");
    write!(sock, "PUT /v1/namespace HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"values\": {{\"marker\": ", s.token).expect("send");
    drop(sock);
    // The abandoned task still ran to its end on both engines (their
    // completed counts move by one each) and was recorded as timed out...
    wait_for(Duration::from_secs(20), "the abandoned task to finish on both engines", || (completed_total(&s) >= before + 2).then_some(()));
    // ...and the half-sent push changed nothing: the marker is intact and
    // no `marker` of another value appeared.
    assert_marked(&s, 2);
    s.assert_healthy(2);
    // The server still takes new connections and answers them in full.
    let t = s.task(json!({"op": "apply", "component": "seed", "function": "add3", "args": [1, 2, 3]}));
    assert_eq!(t["result"], json!([6, 6]));
}

#[test]
fn bad_input_gets_a_clear_4xx() {
    let s = TestServer::start_with(2, |c| {
        c.limits.body_max = 1 << 20;
        c.limits.upload_max = 4 << 20;
        c.limits.max_sequence_len = 1000;
    });
    s.upload_seed();
    let tok = s.token.clone();
    let post_raw = |body: &[u8]| s.raw("POST", "/v1/tasks", Some(body.to_vec()), Some(&tok), "application/json");
    let check = |(status, v): (u16, Json), want: u16, kind: &str, needle: &str| {
        assert_eq!(status, want, "{v}");
        assert_eq!(v["error"]["kind"], kind, "{v}");
        assert!(v["error"]["message"].as_str().unwrap_or("").contains(needle), "{needle:?} not in {v}");
    };
    check(post_raw(b"{\"op\": \"apply\""), 400, "BadRequest", "invalid JSON");
    check(post_raw(b""), 400, "BadRequest", "empty");
    check(
        post_raw(b"{\"op\": \"apply\", \"component\": \"seed\", \"function\": \"greet\", \"args\": [\"\xff\xfe\"]}"),
        400,
        "BadRequest",
        "invalid JSON",
    );
    let deep = format!(
        "{{\"op\": \"apply\", \"component\": \"seed\", \"function\": \"identity\", \"args\": [{}1{}]}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    check(post_raw(deep.as_bytes()), 400, "BadRequest", "recursion limit");
    check(
        post_raw(br#"{"op": "apply", "component": "seed", "function": "identity", "args": [1], "tragets": "all"}"#),
        400,
        "BadRequest",
        "unknown field `tragets`",
    );
    let task = |spec: Json| s.call("POST", "/v1/tasks", Some(&spec));
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": ["x"]})),
        422,
        "TypeError",
        "argument `x`: expected s64, got the string \"x\"",
    );
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": [1, 2]})),
        422,
        "TypeError",
        "takes 1 arguments but 2 were given",
    );
    check(task(json!({"op": "apply", "component": "seed", "function": "identity", "args": []})), 422, "TypeError", "missing argument `x`");
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": [9223372036854775808u64]})),
        422,
        "TypeError",
        "s64 (an integer in",
    );
    check(
        task(json!({"op": "apply", "component": "seed", "function": "roundtrip",
        "args": [256, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, "a", true]})),
        422,
        "TypeError",
        "argument `a`: expected u8 (an integer in 0..=255), got 256",
    );
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": [1], "kwargs": {"y": 2}})),
        422,
        "TypeError",
        "unknown argument `y`",
    );
    check(
        task(json!({"op": "map", "component": "seed", "function": "add3", "sequences": [[1], [2]]})),
        422,
        "TypeError",
        "2 sequences given for 3 free parameters",
    );
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": [1], "targets": "::0"})),
        400,
        "BadRequest",
        "step cannot be zero",
    );
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": [1], "targets": "a:b"})),
        400,
        "BadRequest",
        "not an integer",
    );
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": [1], "targets": 7})),
        404,
        "NotFound",
        "engine `7` not found",
    );
    check(
        task(json!({"op": "apply", "component": "seed", "function": "identity", "args": [1], "timeout_s": -1})),
        400,
        "BadRequest",
        "timeout_s",
    );
    check(task(json!({"op": "apply", "component": "nope", "function": "identity"})), 404, "NotFound", "component `nope` not found");
    check(task(json!({"op": "apply", "component": "seed", "function": "nope"})), 404, "NotFound", "it exports: add3");
    check(
        task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [(0..2000).collect::<Vec<i64>>()]})),
        413,
        "TooLarge",
        "exceed the limit of 1000",
    );
    check(s.call("GET", "/v1/tasks/nope", None), 404, "NotFound", "task `nope` not found");
    check(s.call("DELETE", "/v1/tasks/nope", None), 404, "NotFound", "task `nope` not found");
    check(s.call("GET", "/v1/components/nope", None), 404, "NotFound", "component `nope` not found");
    check(s.call("DELETE", "/v1/components/nope", None), 404, "NotFound", "component `nope` not found");
    check(s.call("GET", "/v1/tasks/x?wait=abc", None), 400, "BadRequest", "bad query string");
    // Bodies over the limit: 413 as JSON.
    let big = vec![b' '; 2 << 20];
    check(post_raw(&big), 413, "TooLarge", "exceeds the limit");
    let upload = |bytes: Vec<u8>| s.raw("POST", "/v1/components?name=x", Some(bytes), Some(&tok), "application/wasm");
    check(upload(vec![0u8; 5 << 20]), 413, "TooLarge", "exceeds the limit");
    check(upload(Vec::new()), 400, "InvalidComponent", "empty");
    check(upload(b"garbage garbage".to_vec()), 400, "InvalidComponent", "not a WebAssembly binary");
    check(upload(b"\0asm\x01\0\0\0".to_vec()), 400, "InvalidComponent", "core WebAssembly module, not a component");
    check(upload(b"\0asm\x0d\0\x01\0\x01\x02\x03".to_vec()), 400, "InvalidComponent", "does not validate");
    check(s.raw("POST", "/v1/components", Some(b"\0asm".to_vec()), Some(&tok), "application/wasm"), 400, "BadRequest", "name");
    check(
        s.raw("POST", "/v1/components?name=bad/name", Some(b"\0asm".to_vec()), Some(&tok), "application/wasm"),
        400,
        "BadRequest",
        "is not valid",
    );
    // No token, wrong token; health needs none.
    check(s.raw("GET", "/v1/engines", None, None, "application/json"), 401, "Unauthorized", "token");
    check(s.raw("GET", "/v1/engines", None, Some("wrong"), "application/json"), 401, "Unauthorized", "token");
    check(s.raw("POST", "/v1/tasks", Some(b"{}".to_vec()), Some(""), "application/json"), 401, "Unauthorized", "token");
    assert_eq!(s.raw("GET", "/v1/health", None, None, "application/json").0, 200);
    // Nothing was lost along the way.
    s.assert_healthy(2);
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let s = TestServer::start_with(1, |c| c.limits.queue_max = 1);
    s.upload_seed();
    let (status, t) =
        s.call("POST", "/v1/tasks", Some(&json!({"op": "apply", "component": "seed", "function": "spin", "timeout_s": 2, "block": false})));
    assert_eq!(status, 202, "{t}");
    let resp = s
        .http
        .post(format!("{}/v1/tasks", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"op": "apply", "component": "seed", "function": "identity", "args": [1]}))
        .send()
        .expect("request");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let v: Json = resp.json().expect("json");
    assert_eq!(v["error"]["kind"], "Busy");
    // Once the spin times out, work is accepted again.
    let (_, t) = s.call("GET", &format!("/v1/tasks/{}?wait=10", t["id"].as_str().expect("id")), None);
    assert_eq!(t["error"]["kind"], "TimeoutError");
    s.assert_healthy(1);
}

#[test]
fn sixty_four_clients_lose_and_duplicate_nothing() {
    let s = TestServer::start(4);
    s.upload_seed();
    let deadline = Instant::now() + Duration::from_secs(4);
    let done = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|client| {
                let s = &s;
                scope.spawn(move || {
                    let mut n = 0u64;
                    let mut i = 0i64;
                    while Instant::now() < deadline {
                        i += 1;
                        let name = format!("c{client}");
                        match (client + i as usize) % 4 {
                            0 => {
                                let r = s.ok(json!({"op": "apply", "component": "seed", "function": "hypot2", "args": [client, i]}));
                                assert_eq!(r, json!(vec![client as i64 * client as i64 + i * i; 4]));
                            }
                            1 => {
                                let xs: Vec<i64> = (i..i + 50).collect();
                                let r = s.ok(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [xs], "targets": "balanced", "chunksize": 3}));
                                assert_eq!(r, json!(xs));
                            }
                            2 => {
                                s.push(json!({name.clone(): i}), json!(client % 4));
                                let (status, v) = s.pull(&name, &(client % 4).to_string());
                                assert_eq!(status, 200);
                                assert_eq!(v["values"][0][&name], json!(i), "client {client} reads its own write");
                            }
                            _ => {
                                let xs: Vec<i64> = (0..20).map(|k| k + i).collect();
                                let r = s.ok(json!({"op": "map", "component": "seed", "function": "add3", "sequences": [xs, xs, xs]}));
                                assert_eq!(r, json!(xs.iter().map(|x| 3 * x).collect::<Vec<_>>()));
                            }
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).sum::<u64>()
    });
    assert!(done >= 64, "every client completed requests ({done})");
    s.assert_healthy(4);
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// RSS of a `wasmpar start -n 4 --daemon` server (with `args` added) before
/// a 64-client load, after it, and after it again; every answer checked.
fn rss_under_load(name: &str, args: &[&str]) -> (f64, f64, f64) {
    let daemon = crate::server::Daemon::start(&format!("load-{name}"), 4, args);
    let info = &daemon.info;
    let http = reqwest::blocking::Client::new();
    let post = |path: &str, body: &Json| -> Json {
        let r = http.post(format!("{}{}", info.url, path)).bearer_auth(&info.token).json(body).send().expect("request");
        r.json().expect("json")
    };
    let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed");
    let r = http.post(format!("{}/v1/components?name=seed", info.url)).bearer_auth(&info.token).body(seed).send().expect("upload");
    assert_eq!(r.status().as_u16(), 201);
    // Warm up every path once, then take the baseline.
    let warm = post(
        "/v1/tasks",
        &json!({"op": "map", "component": "seed", "function": "identity", "sequences": [(0..1000).collect::<Vec<i64>>()], "block": true}),
    );
    assert_eq!(warm["status"], "done");
    let idle = || {
        let e = http
            .get(format!("{}/v1/engines", info.url))
            .bearer_auth(&info.token)
            .send()
            .and_then(|r| r.json::<Json>())
            .unwrap_or(Json::Null);
        e["engines"].as_array().is_some_and(|all| all.iter().all(|e| e["queued"] == 0 && e["state"] == "idle"))
    };
    wait_for(Duration::from_secs(10), "the engines to be idle", || idle().then_some(()));
    let before = rss_mib(info.pid);
    let load = || {
        let deadline = Instant::now() + Duration::from_secs(4);
        std::thread::scope(|scope| {
            for client in 0..64i64 {
                let post = &post;
                scope.spawn(move || {
                    let mut i = 0i64;
                    while Instant::now() < deadline {
                        i += 1;
                        let xs: Vec<i64> = (0..2000).map(|k| k + i + client).collect();
                        let t = post("/v1/tasks", &json!({"op": "map", "component": "seed", "function": "identity", "sequences": [xs], "targets": "balanced", "block": true}));
                        assert_eq!(t["result"], json!(xs));
                        let t = post("/v1/tasks", &json!({"op": "apply", "component": "seed", "function": "hypot2", "args": [client, i], "block": true}));
                        assert_eq!(t["result"], json!(vec![client * client + i * i; 4]));
                    }
                });
            }
        });
        wait_for(Duration::from_secs(10), "the engines to be idle", || idle().then_some(()));
        // The server gives freed memory back once it has been quiet for 1 s
        // (api/trim.rs); a store's last batch commits within 50 ms.
        std::thread::sleep(Duration::from_millis(2500));
        rss_mib(info.pid)
    };
    let after = load();
    let again = load();
    let m = http.get(format!("{}/metrics", info.url)).bearer_auth(&info.token).send().and_then(|r| r.text()).unwrap_or_default();
    let tasks = m.lines().find_map(|l| l.strip_prefix("wasmpar_tasks_submitted_total ")).unwrap_or("?");
    eprintln!(
        "server RSS ({name}, {tasks} tasks): {before:.1} MiB before the load, {after:.1} MiB after it, {again:.1} MiB after it again"
    );
    (before, after, again)
}

/// The real server process under load from 64 clients, history on (an
/// SQLite store): every answer right, and its resident memory bounded
/// (docs/history.md, "Memory"). What may stay after the load: the
/// controller's table of at most 10 000 finished tasks (`--tasks-kept`; with
/// a store they leave it 2 s after finishing, ~1 KiB each once their result
/// was delivered: ≤ 10 MiB), SQLite's page caches (2 × 2 MiB), and what the
/// allocator keeps after its trim and the 64 idle connections (~15 MiB
/// measured with a 100-task table). Seen on 2 shared cores, ~14 000 tasks:
/// +19 MiB, then +4 MiB; before the bounds: +44 MiB, then +31 MiB.
#[test]
fn memory_is_bounded_under_load_with_the_store() {
    let db = std::env::temp_dir().join(format!("wasmpar-load-{}-db", std::process::id()));
    let _ = std::fs::remove_dir_all(&db);
    std::fs::create_dir_all(&db).expect("dir");
    let (before, after, again) = rss_under_load("sqlite", &["--db", db.join("tasks.sqlite").to_str().expect("utf-8")]);
    let _ = std::fs::remove_dir_all(&db);
    assert!(after < before + 40.0, "RSS grew from {before:.1} MiB to {after:.1} MiB");
    assert!(again < after + 16.0, "RSS kept growing with the load: {after:.1} MiB, then {again:.1} MiB");
}

/// The same with the history in memory (`--db none`) under 8 MiB of views,
/// kept as text (as `serde_json::Value` trees they took ~10× that: +84 MiB),
/// and the table's finished tasks let go of 2 s after they finish (without a
/// store they stay an hour by default, so the table's size would follow the
/// machine's speed). Seen: +28 MiB, then +4 MiB.
#[test]
fn memory_is_bounded_under_load_in_memory() {
    let (before, after, again) = rss_under_load("memory", &["--db", "none", "--retain-mib", "8", "--tasks-min-age-s", "2"]);
    assert!(after < before + 48.0, "RSS grew from {before:.1} MiB to {after:.1} MiB");
    assert!(again < after + 16.0, "RSS kept growing with the load: {after:.1} MiB, then {again:.1} MiB");
}
