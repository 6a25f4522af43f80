//! Compute figures on an embedded cluster (controller and engines in this
//! process, no HTTP), driven through the library as `wasmpar demo` does:
//! wasm vs native on one core, N engines vs one, and the per-call cost of the
//! engine loop beside bare wasmtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use wasmpar::engine::EnginePool;
use wasmpar::runtime::{Limits, Runtime};
use wasmpar::scheduler::{Controller, TaskSpec};

use crate::report::{best_of, cores, cpu_time, median_of, ms, timed, Table, Target};
use crate::{array_form, bare, grid, kernel};

struct Cluster {
    rt: tokio::runtime::Runtime,
    c: Arc<Controller>,
}

impl Cluster {
    fn start(engines: usize) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
        // No disk cache: these figures must not depend on what an earlier run left behind.
        let limits = Limits { call_timeout: Duration::from_secs(600), cache_dir: None, ..Limits::default() };
        let pool = EnginePool::start(Runtime::new(limits).expect("runtime"), engines).expect("engines");
        let c = Controller::new(pool);
        let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed.wasm");
        rt.block_on(async {
            c.upload("mandelbrot".into(), bytes::Bytes::from_static(wasmpar::examples::MANDELBROT_BYTES)).await.expect("mandelbrot");
            c.upload("seed".into(), bytes::Bytes::from(seed)).await.expect("seed");
        });
        Cluster { rt, c }
    }

    /// Submit a task and wait for it; the time from submit to finished.
    fn run(&self, spec: &Json) -> (Duration, Json) {
        let spec: TaskSpec = serde_json::from_value(spec.clone()).expect("task spec");
        self.rt.block_on(async {
            let start = Instant::now();
            let task = self.c.submit(spec).expect("submit");
            task.wait(Duration::MAX).await;
            let wall = start.elapsed();
            let v = task.view();
            if let Some(e) = v.error {
                panic!("{}: {}", e.kind, e.message);
            }
            (wall, v.result.unwrap_or(Json::Null))
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.c.shutdown_engines();
    }
}

/// Escape counts out of a (possibly nested) JSON list.
fn counts(v: &Json) -> Vec<u32> {
    fn walk(v: &Json, out: &mut Vec<u32>) {
        match v {
            Json::Array(items) => items.iter().for_each(|i| walk(i, out)),
            other => out.push(other.as_u64().expect("a count") as u32),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// The native kernel over rows of `width` points, `threads` threads taking
/// `rows_per_batch` rows at a time from a shared counter (as the balanced view does).
fn native_rows(xs: &[f64], ys: &[f64], width: usize, iters: u32, threads: usize, rows_per_batch: usize) -> Vec<u32> {
    let height = xs.len() / width;
    let next = AtomicUsize::new(0);
    let mut parts: Vec<(usize, Vec<u32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let first = next.fetch_add(rows_per_batch, Ordering::Relaxed);
                        if first >= height {
                            break mine;
                        }
                        let last = (first + rows_per_batch).min(height);
                        let mut out = Vec::new();
                        kernel::mandel_chunk(&xs[first * width..last * width], &ys[first * width..last * width], iters, &mut out);
                        mine.push((first, out));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("native thread")).collect()
    });
    parts.sort_by_key(|(first, _)| *first);
    parts.into_iter().flat_map(|(_, out)| out).collect()
}

pub fn rows(t: &mut Table) {
    let n = cores();
    let cluster = Cluster::start(n);

    // 1. One core: the same kernel natively and as the component.
    t.section("compute: wasm in one engine vs native on one core");
    let (w, h, iters) = (400, 300, 2000);
    let (xs, ys) = grid(w, h);
    let (t_native, native) = best_of(3, || {
        timed(|| {
            let mut out = Vec::new();
            kernel::mandel_chunk(&xs, &ys, iters, &mut out);
            std::hint::black_box(out)
        })
    });
    let spec = json!({"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "targets": [0],
                      "sequences": [array_form(&xs, &[xs.len()]), array_form(&ys, &[ys.len()])], "kwargs": {"max-iters": iters}});
    let (t_wasm, result) = best_of(3, || cluster.run(&spec));
    assert_eq!(counts(&result), native, "wasm and native agree");
    let name = format!("mandelbrot {w}x{h}, {iters} iters");
    t.add(format!("{name}: native, 1 core"), ms(t_native), "ms", None, "best of 3");
    t.add(
        format!("{name}: wasm, 1 engine (parallel task)"),
        ms(t_wasm),
        "ms",
        None,
        "best of 3; mandel-chunk, array-form args, JSON result",
    );
    t.add(
        "wasm / native speed (native time / wasm time)",
        t_native.as_secs_f64() / t_wasm.as_secs_f64(),
        "ratio",
        Some(Target::AtLeast(0.8)),
        "",
    );
    for (epochs, typed) in [(false, false), (true, false), (true, true)] {
        let (tb, _) = best_of(2, || (bare::mandel_chunk(&xs, &ys, iters, epochs, typed), ()));
        t.add(
            format!(
                "  bare wasmtime, same call, {}, epochs {}",
                if typed { "TypedFunc (slices)" } else { "Func::call (Vals)" },
                if epochs { "on (as wasmpar)" } else { "off" }
            ),
            ms(tb),
            "ms",
            None,
            format!("native/bare = {:.2}", t_native.as_secs_f64() / tb.as_secs_f64()),
        );
    }

    // 2. N engines vs one on a grid that takes over a second serially; the
    // native N-thread speed-up of the same work, measured alongside, is the
    // ceiling the machine allows right now (other load shows up in both).
    t.section(&format!("compute: {n} engines vs one"));
    let (w, h, iters) = (1500, 1000, 1000);
    let (xs, ys) = grid(w, h);
    let (rows_x, rows_y) = (array_form(&xs, &[h, w]), array_form(&ys, &[h, w]));
    let spec = |targets: Json| {
        json!({"op": "map", "component": "mandelbrot", "function": "mandel-chunk", "targets": targets, "chunksize": 4,
               "sequences": [rows_x, rows_y], "kwargs": {"max-iters": iters}})
    };
    let (one, all) = (spec(json!([0])), spec(json!("balanced")));
    let (mut t1, mut tn) = (Duration::MAX, Duration::MAX);
    // CPU time of this process during each run: more CPU for the same work
    // in the parallel run is overhead; less than cores x wall is idling.
    let (mut cpu1, mut cpun) = (Duration::ZERO, Duration::ZERO);
    let mut reference = None;
    // Interleaved, best of two each, so a burst of outside load hits both sides.
    for _ in 0..2 {
        let cpu0 = cpu_time();
        let (t, r1) = cluster.run(&one);
        if t < t1 {
            (t1, cpu1) = (t, cpu_time() - cpu0);
        }
        let cpu0 = cpu_time();
        let (t, rn) = cluster.run(&all);
        if t < tn {
            (tn, cpun) = (t, cpu_time() - cpu0);
        }
        assert_eq!(r1, rn, "serial and parallel agree");
        reference.get_or_insert(r1);
    }
    let (nt1, native1) = best_of(2, || timed(|| native_rows(&xs, &ys, w, iters, 1, 4)));
    let (ntn, nativen) = best_of(2, || timed(|| native_rows(&xs, &ys, w, iters, n, 4)));
    assert_eq!(native1, nativen);
    assert_eq!(counts(&reference.expect("ran")), native1, "wasm and native agree");
    let name = format!("mandelbrot {w}x{h}, {iters} iters");
    let serial_note = if t1 >= Duration::from_secs(1) { "≥ 1 s serially: yes" } else { "under 1 s serially on this machine" };
    t.add(
        format!("{name}: 1 engine (map over rows)"),
        ms(t1),
        "ms",
        None,
        format!("best of 2; {serial_note}; CPU {:.2} s", cpu1.as_secs_f64()),
    );
    t.add(
        format!("{name}: {n} engines (balanced, chunksize 4)"),
        ms(tn),
        "ms",
        None,
        format!(
            "best of 2; CPU {:.2} s = {:.0}% of {n} cores",
            cpun.as_secs_f64(),
            cpun.as_secs_f64() / tn.as_secs_f64() / n as f64 * 100.0
        ),
    );
    let target = if n == 1 { 1.0 } else { 0.925 * n as f64 };
    t.add(format!("speed-up, {n} engines vs 1 ({n} cores)"), t1.as_secs_f64() / tn.as_secs_f64(), "x", Some(Target::AtLeast(target)), "");
    let native_speedup = nt1.as_secs_f64() / ntn.as_secs_f64();
    t.add(
        format!("  native speed-up, {n} threads vs 1, same rows (the machine's ceiling now)"),
        native_speedup,
        "x",
        None,
        format!("native 1 thread {:.0} ms", ms(nt1)),
    );
    t.add(
        "  wasmpar speed-up / native speed-up",
        t1.as_secs_f64() / tn.as_secs_f64() / native_speedup,
        "ratio",
        None,
        "1.0 = scales as well as native threads",
    );

    // Per-call cost of the engine loop, beside bare wasmtime.
    t.section("per call: bare wasmtime vs wasmpar's engine loop (seed/identity, in-process, no HTTP)");
    let calls = 200_000;
    let (untyped, typed) = bare::identity_per_call(calls);
    t.add("bare wasmtime TypedFunc::call of identity", typed, "ns/call", None, "floor: static types, no Val");
    t.add("bare wasmtime Func::call of identity (Val arguments)", untyped, "ns/call", None, "what wasmpar's engine calls");
    let ids: Vec<i64> = (0..calls as i64).collect();
    let map = |targets: Json, chunksize: Option<usize>| {
        let mut s = json!({"op": "map", "component": "seed", "function": "identity", "targets": targets, "sequences": [ids]});
        if let Some(c) = chunksize {
            s["chunksize"] = json!(c);
        }
        s
    };
    let per_call = |d: Duration| d.as_secs_f64() * 1e9 / calls as f64;
    let (d, r) = median_of(3, || cluster.run(&map(json!([0]), None)));
    assert_eq!(r.as_array().map(Vec::len), Some(calls));
    t.add(
        "wasmpar map of identity, one engine, one batch",
        per_call(d),
        "ns/call",
        None,
        "median of 3; incl. JSON→Val binding, Val→JSON results",
    );
    let (d, _) = median_of(3, || cluster.run(&map(json!("balanced"), Some(1))));
    t.add(
        format!("wasmpar balanced map of identity, {n} engines, chunksize 1"),
        per_call(d),
        "ns/call",
        None,
        "median of 3; wall time / calls",
    );
    let (d, _) = median_of(3, || cluster.run(&map(json!("balanced"), None)));
    t.add(
        format!("wasmpar balanced map of identity, {n} engines, automatic chunks"),
        per_call(d),
        "ns/call",
        None,
        "median of 3; wall time / calls",
    );
}
