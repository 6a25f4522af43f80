//! Figures over the real server and real HTTP: `Server::start` in this
//! process on port 0, a blocking keep-alive reqwest client, the endpoints of
//! API.md. Client-side encoding (JSON, base64) is done before the clock
//! starts; decoding the answer is not timed either, but reading all of it is.
//! Client and server share this machine's cores, as a local client's would.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value as Json};
use wasmpar::api::{Server, ServerConfig};
use wasmpar::engine::NsValue;

use crate::bulk::Bulk;
use crate::report::{best_of, cores, median_of, ms, percentile_us, timed, Table, Target};
use crate::{array_form, kernel};

struct Http {
    url: String,
    token: String,
    client: reqwest::blocking::Client,
}

impl Http {
    fn post_json(&self, path: &str, body: &Json) -> Json {
        let r = self.client.post(format!("{}{path}", self.url)).bearer_auth(&self.token).json(body).send().expect("post");
        let status = r.status();
        let v: Json = r.json().expect("json answer");
        assert!(status.is_success(), "{path}: {v}");
        v
    }

    /// A blocking task, its wall time as the client sees it (request already encoded).
    fn task(&self, spec: &Json) -> (Duration, Json) {
        let mut spec = spec.clone();
        spec["block"] = json!(true);
        let body = serde_json::to_vec(&spec).expect("json");
        let start = Instant::now();
        let r = self
            .client
            .post(format!("{}/v1/tasks", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("post");
        let bytes = r.bytes().expect("answer");
        let wall = start.elapsed();
        let v: Json = serde_json::from_slice(&bytes).expect("json answer");
        assert_eq!(v["status"], "done", "{}", v["error"]);
        (wall, v)
    }

    fn upload(&self, name: &str, bytes: &[u8]) -> Duration {
        let start = Instant::now();
        let r = self
            .client
            .post(format!("{}/v1/components?name={name}", self.url))
            .bearer_auth(&self.token)
            .body(bytes.to_vec())
            .send()
            .expect("upload");
        let took = start.elapsed();
        assert_eq!(r.status().as_u16(), 201, "upload {name}: {}", r.text().unwrap_or_default());
        took
    }
}

pub fn rows(t: &mut Table, dir: &Path) {
    let n = cores();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let mut config = ServerConfig { engines: n, port: 0, connection_file: dir.join("http.json"), ..Default::default() };
    // A fresh, empty compile cache: the first upload really compiles.
    config.limits.cache_dir = Some(dir.join("cache"));
    let server = rt.block_on(Server::start(config)).expect("server");
    let http = Http { url: server.info.url.clone(), token: server.info.token.clone(), client: reqwest::blocking::Client::new() };

    // 8 (second half). Component upload: compile, then the same bytes again.
    t.section("component upload over HTTP (POST /v1/components)");
    let mandelbrot = std::fs::read(wasmpar::examples::MANDELBROT_WASM).expect("mandelbrot.wasm");
    let first = http.upload("mandelbrot", &mandelbrot);
    let (again, ()) = median_of(5, || (http.upload("mandelbrot", &mandelbrot), ()));
    t.add(
        "upload mandelbrot.wasm, first (validate + compile, empty cache)",
        ms(first),
        "ms",
        None,
        format!("{} KiB", mandelbrot.len() / 1024),
    );
    t.add("upload mandelbrot.wasm again (same bytes: found by digest)", ms(again), "ms", Some(Target::AtMost(5.0)), "median of 5");
    http.upload("seed", &std::fs::read(wasmpar::examples::SEED_WASM).expect("seed.wasm"));

    // 3. The tutorial's Mandelbrot: x = arange(-2, 1, 0.01), y = arange(-1, 1, 0.01), 80 iterations.
    t.section("the tutorial's Mandelbrot (300x200, 80 iters) over HTTP, JSON lists in and out");
    let xr: Vec<f64> = (0..300).map(|i| -2.0 + i as f64 * 0.01).collect();
    let yr: Vec<f64> = (0..200).map(|j| -1.0 + j as f64 * 0.01).collect();
    let xs: Vec<f64> = yr.iter().flat_map(|_| xr.iter().copied()).collect();
    let ys: Vec<f64> = yr.iter().flat_map(|&y| std::iter::repeat_n(y, xr.len())).collect();
    let mut expected = Vec::new();
    kernel::mandel_chunk(&xs, &ys, 80, &mut expected);
    let check = |v: &Json| {
        let got: Vec<u32> = v["result"].as_array().expect("list").iter().map(|c| c.as_u64().expect("count") as u32).collect();
        assert_eq!(got, expected, "the tutorial's counts");
    };
    let elementwise =
        json!({"op": "map", "component": "mandelbrot", "function": "mandel", "sequences": [xs, ys], "kwargs": {"max-iters": 80}});
    let chunked = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "sequences": [xs, ys], "kwargs": {"max-iters": 80}});
    let mut chunked_one = chunked.clone();
    chunked_one["targets"] = json!([0]);
    let (t_map, v) = median_of(5, || http.task(&elementwise));
    check(&v);
    let (t_par, v) = median_of(5, || http.task(&chunked));
    check(&v);
    let (t_one, v) = median_of(5, || http.task(&chunked_one));
    check(&v);
    // As issue 16 measures it: array forms in and out, the answer decoded.
    let arrays = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk",
                        "sequences": [array_form(&xs, &[xs.len()]), array_form(&ys, &[ys.len()])],
                        "kwargs": {"max-iters": 80}, "result_encoding": "array"});
    // Both array rows through the bare client (`bulk.rs`), request
    // encoding and answer decoding on the clock.
    let mut bulk = Bulk::connect(&http.url, &http.token);
    let mut answer: Vec<u8> = Vec::new();
    let (t_arrays, ()) = median_of(15, || {
        let t0 = Instant::now();
        let mut spec = arrays.clone();
        spec["block"] = json!(true);
        let body = serde_json::to_vec(&spec).expect("json");
        let (status, len) = bulk.request("POST", "/v1/tasks", &["content-type: application/json"], &body, &mut answer);
        let v: Json = serde_json::from_slice(&answer[..len]).expect("json answer");
        let data = base64::engine::general_purpose::STANDARD.decode(v["result"]["data"].as_str().unwrap_or("")).expect("base64");
        let got: Vec<u32> = data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let took = t0.elapsed();
        assert_eq!(status, 200, "{v}");
        assert_eq!(got, expected, "the tutorial's counts, as an array");
        (took, ())
    });
    // The same task as a framed body (API.md "Framed bodies"): the JSON
    // document names two raw buffers; the answer comes framed too.
    let framed = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "block": true,
                        "sequences": [{"dtype": "float64", "shape": [xs.len()], "buffer": 0},
                                      {"dtype": "float64", "shape": [ys.len()], "buffer": 1}],
                        "kwargs": {"max-iters": 80}, "result_encoding": "array"});
    let (t_framed, ()) = median_of(15, || {
        let t0 = Instant::now();
        let doc = serde_json::to_vec(&framed).expect("json");
        let mut body = Vec::with_capacity(doc.len() + (xs.len() + ys.len()) * 8 + 24);
        for frame in [&doc[..], wasmpar::value::array::f64s_as_bytes(&xs), wasmpar::value::array::f64s_as_bytes(&ys)] {
            body.extend_from_slice(&(frame.len() as u64).to_le_bytes());
            body.extend_from_slice(frame);
        }
        let headers = ["content-type: application/x-wasmpar-frames", "accept: application/x-wasmpar-frames"];
        let (status, len) = bulk.request("POST", "/v1/tasks", &headers, &body, &mut answer);
        let frames = unframe(&answer[..len]);
        let v: Json = serde_json::from_slice(frames[0]).expect("json answer");
        let k = v["result"]["buffer"].as_u64().map_or(usize::MAX, |k| k as usize + 1);
        let got: Vec<u32> = frames[k].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let took = t0.elapsed();
        assert_eq!(status, 200, "{v}");
        assert_eq!(got, expected, "the tutorial's counts, framed");
        (took, ())
    });
    t.add(format!("elementwise map of mandel (60 000 calls), {n} engines"), ms(t_map), "ms", None, "median of 5; IPython: 886 ms serial");
    t.add(
        format!("parallel mandel-chunk, array forms in and out, {n} engines"),
        ms(t_arrays),
        "ms",
        None,
        "median of 15; request to decoded answer",
    );
    t.add(
        format!("parallel mandel-chunk, framed body in and out, {n} engines"),
        ms(t_framed),
        "ms",
        Some(Target::AtMost(4.2)),
        "median of 15; request to decoded answer (issue 16: 50x IPython's 212 ms)",
    );
    t.add(format!("parallel mandel-chunk, {n} engines"), ms(t_par), "ms", None, "median of 5; IPython @parallel, 8 engines: 238 ms");
    t.add("parallel mandel-chunk, 1 engine", ms(t_one), "ms", None, "median of 5");

    // 4. Tiny tasks: 100 000 calls of identity, balanced.
    t.section("tiny tasks over HTTP: balanced map of 100 000 seed/identity calls");
    let ids: Vec<i64> = (0..100_000).collect();
    let c1 = json!({"op": "map", "component": "seed", "function": "identity", "sequences": [ids], "targets": "balanced", "chunksize": 1});
    let auto = json!({"op": "map", "component": "seed", "function": "identity", "sequences": [ids], "targets": "balanced"});
    let (t_c1, v) = median_of(3, || http.task(&c1));
    assert_eq!(v["result"].as_array().map(Vec::len), Some(100_000));
    assert_eq!(v["result"][99_999], 99_999);
    let (t_auto, _) = median_of(3, || http.task(&auto));
    t.add("chunksize 1", 1e5 / t_c1.as_secs_f64(), "calls/s", Some(Target::AtLeast(40_000.0)), "median of 3; request to answer");
    t.add(
        "automatic chunk size",
        1e5 / t_auto.as_secs_f64(),
        "calls/s",
        Some(Target::AtLeast(1_000_000.0)),
        "median of 3; request to answer",
    );

    // 5. apply round trips from a keep-alive client.
    t.section("apply round trip over HTTP (seed/identity, block: true, 2000 requests after 200 warm-up)");
    for (label, targets) in [("one engine", json!(0)), ("all engines", json!("all"))] {
        let mut lat = Vec::with_capacity(2000);
        for i in 0..2200 {
            let spec = json!({"op": "apply", "component": "seed", "function": "identity", "args": [i], "targets": targets, "block": true});
            let (d, v) = timed(|| http.post_json("/v1/tasks", &spec));
            if i >= 200 {
                lat.push(d);
            }
            std::hint::black_box(v);
        }
        lat.sort();
        t.add(format!("{label}, p50"), percentile_us(&lat, 0.5), "µs", Some(Target::AtMost(300.0)), "");
        t.add(format!("{label}, p99"), percentile_us(&lat, 0.99), "µs", None, "");
    }

    // 6. push and pull of 80 MB of f64 to and from every engine.
    t.section(&format!("push/pull of 80 MB f64 to/from {n} engines (aggregate = bytes x engines / time)"));
    let big: Vec<f64> = (0..10_000_000).map(|i| i as f64 * 0.5).collect();
    let mb = (big.len() * 8) as f64 / 1e6;
    let agg = |d: Duration| mb * n as f64 / d.as_secs_f64();
    // Bodies as `Bytes`, so each send shares the buffer instead of copying it on the clock.
    let body = bytes::Bytes::from(serde_json::to_vec(&json!({"values": {"big": array_form(&big, &[big.len()])}})).expect("json"));
    // Bulk rows go through a bare HTTP/1.1 client (`bulk.rs`): the body is
    // written from this buffer, answers are read into one reused buffer.
    let mut bulk = Bulk::connect(&http.url, &http.token);
    let mut buf: Vec<u8> = Vec::new();
    let (t_push, ()) = best_of(3, || {
        timed(|| {
            let (status, _) = bulk.request("PUT", "/v1/namespace", &["content-type: application/json"], &body, &mut buf);
            assert_eq!(status, 200, "push: {}", String::from_utf8_lossy(&buf));
        })
    });
    // The same conversions in process (no HTTP), the old way beside the
    // current one in this run: the server's share of the two rows above.
    let pushed: Json = serde_json::from_slice(&body).expect("json");
    drop(body);
    let form = &pushed["values"]["big"];
    let (t_dec_old, ()) = best_of(3, || {
        timed(|| {
            // As before: base64 into a Vec<u8>, then copied into the Vec<f64>.
            let bytes = base64::engine::general_purpose::STANDARD.decode(form["data"].as_str().expect("data")).expect("base64");
            std::hint::black_box(wasmpar::value::array::f64s_from_le(&bytes));
        })
    });
    let (t_dec_new, ()) = best_of(3, || timed(|| drop(std::hint::black_box(NsValue::from_json(form).expect("array form")))));
    let shared = NsValue::from_json(form).expect("array form");
    assert_eq!(shared, NsValue::FloatList(std::sync::Arc::new(big.clone())), "decoded exactly");
    let (t_enc_old, old_len) = best_of(2, || {
        timed(|| {
            // As before, once per engine: LE copy, base64, a Value, serde_json.
            (0..n)
                .map(|_| {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(wasmpar::value::array::f64s_to_le(&big));
                    serde_json::to_vec(&json!({"data": b64, "dtype": "float64", "shape": [big.len()]})).expect("json").len()
                })
                .sum::<usize>()
        })
    });
    let (t_enc_new, new_len) = best_of(2, || {
        timed(|| {
            let mut out = wasmpar::value::JsonChunks::new();
            (0..n).for_each(|_| shared.write_json(wasmpar::value::Encoding::Array, &mut out));
            out.finish().iter().map(bytes::Bytes::len).sum::<usize>()
        })
    });
    assert_eq!(old_len, new_len, "the same JSON text");
    // Answers are read into one reused buffer, as a client filling a
    // preallocated array would (a fresh 200 MB buffer per pull would time
    // the client's page faults, not the server).
    let (t_pull, len) = best_of(3, || {
        timed(|| {
            let (status, len) = bulk.request("GET", "/v1/namespace?names=big&encoding=array", &[], &[], &mut buf);
            assert_eq!(status, 200, "pull");
            len
        })
    });
    assert!(len as f64 > mb * 1e6 * n as f64 * 4.0 / 3.0, "every engine's array came back");
    let pulled: Json = serde_json::from_slice(&buf[..len]).expect("pull answer");
    assert_eq!(NsValue::from_json(&pulled["values"][n - 1]["big"]).expect("array form"), shared, "pulled exactly");
    drop(pulled);
    let raw = big.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (t_push_raw, ()) = best_of(3, || {
        timed(|| {
            let (status, _) = bulk.request("PUT", "/v1/namespace/bigraw?dtype=float64", &[], &raw, &mut buf);
            assert_eq!(status, 200, "push raw: {}", String::from_utf8_lossy(&buf));
        })
    });
    let (t_pull_raw, total) = best_of(3, || {
        timed(|| {
            (0..n)
                .map(|e| {
                    let (status, len) = bulk.request("GET", &format!("/v1/namespace/bigraw?targets={e}"), &[], &[], &mut buf);
                    assert_eq!(status, 200, "pull raw");
                    assert_eq!(&buf[..64], &raw[..64], "engine {e}'s bytes");
                    len
                })
                .sum::<usize>()
        })
    });
    assert_eq!(total, big.len() * 8 * n);
    // The machine's ceiling for the array-form pull: its answer's bytes
    // through one loopback TCP connection, thread to thread, no HTTP.
    let (t_ceiling, ()) = best_of(3, || loopback(len, &mut buf));
    // The same raw pull read by reqwest's blocking client, as these rows
    // were read before 2026-12-03: how much of a figure is the client's.
    let (t_pull_reqwest, total) = best_of(2, || {
        timed(|| {
            (0..n)
                .map(|e| {
                    let mut r = http
                        .client
                        .get(format!("{}/v1/namespace/bigraw?targets={e}", http.url))
                        .bearer_auth(&http.token)
                        .send()
                        .expect("pull raw");
                    assert!(r.status().is_success(), "pull raw: {}", r.status());
                    buf.clear();
                    r.read_to_end(&mut buf).expect("body")
                })
                .sum::<usize>()
        })
    });
    assert_eq!(total, big.len() * 8 * n);
    t.add(
        "push, JSON body with the base64 array form (PUT /v1/namespace)",
        agg(t_push),
        "MB/s",
        Some(Target::AtLeast(2000.0)),
        "best of 3; 107 MB body",
    );
    t.add(
        "pull, encoding=array (GET /v1/namespace)",
        agg(t_pull),
        "MB/s",
        Some(Target::AtLeast(2000.0)),
        format!("best of 3; {} MB answer", len / 1_000_000),
    );
    t.add(
        format!("    ceiling: the same {} MB through one loopback TCP socket, no HTTP", len / 1_000_000),
        agg(t_ceiling),
        "MB/s",
        None,
        "best of 3; bytes x engines / time as above: the most the pull row can show here",
    );
    t.add(
        "  push, raw little-endian bytes (PUT /v1/namespace/{name})",
        agg(t_push_raw),
        "MB/s",
        Some(Target::AtLeast(2000.0)),
        "best of 3; 80 MB body",
    );
    t.add(
        "  pull, raw bytes (GET /v1/namespace/{name}, one GET per engine)",
        agg(t_pull_raw),
        "MB/s",
        Some(Target::AtLeast(2000.0)),
        "best of 3",
    );
    t.add(
        "    the same raw pull read by reqwest's blocking client",
        agg(t_pull_reqwest),
        "MB/s",
        None,
        "best of 2; how these rows were read before 2026-12-03",
    );
    t.add(
        "  push, server's decode of the array form, as before (Vec<u8> then Vec<f64>)",
        agg(t_dec_old),
        "MB/s",
        None,
        "best of 3; in process, no HTTP",
    );
    t.add(
        "  push, server's decode now (NsValue::from_json: into the final buffer)",
        agg(t_dec_new),
        "MB/s",
        None,
        "best of 3; in process, no HTTP",
    );
    t.add(
        "  pull, server's encoding of the answer, as before (per engine, via Value)",
        agg(t_enc_old),
        "MB/s",
        None,
        "best of 2; in process, no HTTP",
    );
    t.add(
        "  pull, server's encoding now (write_json: base64 once, shared chunks)",
        agg(t_enc_new),
        "MB/s",
        None,
        "best of 2; in process, no HTTP",
    );

    server.stop();
    let _ = rt.block_on(server.wait());
}

/// The frames of a framed body (8-byte little-endian length, then the bytes).
fn unframe(mut b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let (len, rest) = b.split_at(8);
        let n = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let (frame, rest) = rest.split_at(n);
        out.push(frame);
        b = rest;
    }
    assert!(b.is_empty(), "a framed answer with {} trailing bytes", b.len());
    out
}

/// Moves `len` bytes from one thread to another over a loopback TCP
/// connection into `buf`; the time from the first byte asked to the last read.
fn loopback(len: usize, buf: &mut Vec<u8>) -> (Duration, ()) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let data = vec![7u8; len];
        let (mut s, _) = listener.accept().expect("accept");
        ready_tx.send(()).expect("ready");
        let mut go = [0u8; 1];
        s.read_exact(&mut go).expect("go");
        s.write_all(&data).expect("write");
    });
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    if buf.len() < len {
        buf.resize(len, 0);
    }
    ready.recv().expect("writer ready");
    let took = timed(|| {
        c.write_all(&[1]).expect("go");
        c.read_exact(&mut buf[..len]).expect("read");
    });
    writer.join().expect("writer");
    assert!(buf[..len].iter().all(|&b| b == 7), "every byte came");
    took
}
