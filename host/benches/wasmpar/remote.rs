//! Remote engines beside in-process ones, in one run: a controller with two
//! local engine threads, and a controller with none plus two `wasmpar engine
//! -n 1` processes joining it over loopback. The same requests against both
//! (apply latency, balanced tiny tasks, a raw 80 MB push, the tutorial's
//! Mandelbrot); issue 11's figures are the targets.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use crate::cluster::Cluster;
use crate::report::{median_of, ms, Table, Target};

struct Figures {
    apply_p50_us: f64,
    tiny_rate: f64,
    push_mb_s: f64,
    pull_mb_s: f64,
    mandel_ms: f64,
}

fn measure(c: &Cluster) -> Figures {
    c.upload("seed", std::fs::read(wasmpar::examples::SEED_WASM).expect("seed"));
    c.upload("mandelbrot", std::fs::read(wasmpar::examples::MANDELBROT_WASM).expect("mandelbrot"));
    // apply through one engine.
    let mut lat = Vec::with_capacity(1000);
    for i in 0..1100 {
        let (d, _) = c.task(&json!({"op": "apply", "component": "seed", "function": "identity", "args": [i], "targets": 0}));
        if i >= 100 {
            lat.push(d);
        }
    }
    lat.sort();
    let apply_p50_us = lat[lat.len() / 2].as_secs_f64() * 1e6;
    // balanced tiny tasks, chunksize 1.
    let ids: Vec<i64> = (0..100_000).collect();
    let spec = json!({"op": "map", "component": "seed", "function": "identity", "sequences": [ids], "targets": "balanced", "chunksize": 1});
    let (t_tiny, v) = median_of(3, || c.task(&spec));
    assert_eq!(v["result"][99_999], 99_999);
    // raw push of 80 MB to both engines.
    let raw: Vec<u8> = (0..10_000_000u64).flat_map(|i| (i as f64 * 0.5).to_le_bytes()).collect();
    let raw = bytes::Bytes::from(raw);
    let (t_push, ()) = median_of(3, || {
        let t0 = Instant::now();
        let r =
            c.client.put(format!("{}/v1/namespace/big?dtype=float64", c.url)).bearer_auth(&c.token).body(raw.clone()).send().expect("push");
        assert!(r.status().is_success(), "push: {}", r.status());
        (t0.elapsed(), ())
    });
    let push_mb_s = 80.0 * 2.0 / t_push.as_secs_f64();
    // raw pull of the 80 MB back from one engine.
    let (t_pull, ()) = median_of(3, || {
        let t0 = Instant::now();
        let r = c.client.get(format!("{}/v1/namespace/big?targets=0", c.url)).bearer_auth(&c.token).send().expect("pull");
        assert!(r.status().is_success(), "pull: {}", r.status());
        let back = r.bytes().expect("bytes");
        let took = t0.elapsed();
        assert!(back == raw, "the pulled array differs");
        (took, ())
    });
    let pull_mb_s = 80.0 / t_pull.as_secs_f64();
    // the tutorial's Mandelbrot, @parallel of mandel-chunk.
    let xr: Vec<f64> = (0..300).map(|i| -2.0 + i as f64 * 0.01).collect();
    let yr: Vec<f64> = (0..200).map(|j| -1.0 + j as f64 * 0.01).collect();
    let xs: Vec<f64> = yr.iter().flat_map(|_| xr.iter().copied()).collect();
    let ys: Vec<f64> = yr.iter().flat_map(|&y| std::iter::repeat_n(y, xr.len())).collect();
    let mut expected = Vec::new();
    crate::kernel::mandel_chunk(&xs, &ys, 80, &mut expected);
    let spec = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "sequences": [xs, ys], "kwargs": {"max-iters": 80}});
    let (t_mandel, v) = median_of(9, || c.task(&spec));
    let got: Vec<u32> = v["result"].as_array().expect("list").iter().map(|x| x.as_u64().unwrap_or(0) as u32).collect();
    assert_eq!(got, expected, "the tutorial's counts");
    Figures { apply_p50_us, tiny_rate: 1e5 / t_tiny.as_secs_f64(), push_mb_s, pull_mb_s, mandel_ms: ms(t_mandel) }
}

pub fn rows(t: &mut Table, dir: &Path) {
    let local = measure(&Cluster::start(dir, "local", 2, 0));
    let remote = measure(&Cluster::start(dir, "remote", 0, 2));
    t.section("remote engines (2 `wasmpar engine -n 1` processes over loopback) beside 2 in-process engines, one run");
    t.add("apply p50, in-process engine", local.apply_p50_us, "µs", None, "1000 requests after 100");
    t.add("apply p50, remote engine", remote.apply_p50_us, "µs", Some(Target::AtMost(400.0)), "1000 requests after 100");
    t.add("balanced tiny tasks, chunksize 1, in-process", local.tiny_rate, "calls/s", None, "100 000 seed/identity, median of 3");
    t.add(
        "balanced tiny tasks, chunksize 1, remote",
        remote.tiny_rate,
        "calls/s",
        Some(Target::AtLeast(300_000.0)),
        "100 000 seed/identity, median of 3",
    );
    t.add("raw push of 80 MB to 2 engines, in-process", local.push_mb_s, "MB/s", None, "aggregate, median of 3");
    t.add("raw push of 80 MB to 2 engines, remote", remote.push_mb_s, "MB/s", Some(Target::AtLeast(1000.0)), "aggregate, median of 3");
    t.add("raw pull of 80 MB from one engine, in-process", local.pull_mb_s, "MB/s", None, "median of 3");
    t.add("raw pull of 80 MB from one engine, remote", remote.pull_mb_s, "MB/s", None, "median of 3");
    t.add("tutorial Mandelbrot (@parallel mandel-chunk), in-process", local.mandel_ms, "ms", None, "median of 9");
    t.add(
        "tutorial Mandelbrot, remote",
        remote.mandel_ms,
        "ms",
        Some(Target::AtMost(local.mandel_ms * 1.5)),
        "target: within 1.5x of in-process",
    );
    t.add("  remote / in-process Mandelbrot", remote.mandel_ms / local.mandel_ms, "x", Some(Target::AtMost(1.5)), "");
}
