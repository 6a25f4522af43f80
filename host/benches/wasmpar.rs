//! `cargo bench -p wasmpar --bench wasmpar`: wasmpar's figures and ratios,
//! each measured in one run on this machine (so outside load hits both
//! sides of a ratio alike). Prints machine facts, then one row per figure:
//! name, value, unit, target, met. See docs/benchmarks.md.
//!
//! Sections (modules under `wasmpar/`): `compute` (an embedded cluster, no
//! HTTP: wasm vs native, N engines vs one, per-call cost), `http` (the real
//! server in this process over real HTTP: uploads, the tutorial's Mandelbrot,
//! tiny tasks, apply latency, push/pull), `process` (the `wasmpar` binary:
//! start-up, memory per engine), each beside a bare-wasmtime baseline
//! (`bare`) where one makes sense; `remote` (engine processes beside
//! engine threads) and `store` (the task store off and on), each two real
//! servers (`cluster`) driven alike. `-- compute`, `-- http`, `-- process`,
//! `-- remote` or `-- store` after the command runs only those sections.

#[path = "../../examples/mandelbrot/src/kernel.rs"]
mod kernel;

#[path = "wasmpar/bare.rs"]
mod bare;
#[path = "wasmpar/bulk.rs"]
mod bulk;
#[path = "wasmpar/cluster.rs"]
mod cluster;
#[path = "wasmpar/compute.rs"]
mod compute;
#[path = "wasmpar/http.rs"]
mod http;
#[path = "wasmpar/process.rs"]
mod process;
#[path = "wasmpar/remote.rs"]
mod remote;
#[path = "wasmpar/report.rs"]
mod report;
#[path = "wasmpar/store.rs"]
mod store;

use std::time::Instant;

use base64::Engine as _;
use serde_json::{json, Value as Json};

/// Every point of a width x height grid over x in [-2, 1), y in [-1, 1),
/// row by row: (xs, ys), each width * height long.
fn grid(width: usize, height: usize) -> (Vec<f64>, Vec<f64>) {
    let (sx, sy) = (3.0 / width as f64, 2.0 / height as f64);
    let xs = (0..height).flat_map(|_| (0..width).map(move |i| -2.0 + i as f64 * sx)).collect();
    let ys = (0..height).flat_map(|j| std::iter::repeat_n(-1.0 + j as f64 * sy, width)).collect();
    (xs, ys)
}

/// API.md's array form, encoded as a client would (independently of the server's code).
fn array_form(xs: &[f64], shape: &[usize]) -> Json {
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    json!({"dtype": "float64", "shape": shape, "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

fn main() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("wasmpar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let load_before = report::load_average();

    // `cargo bench -p wasmpar --bench wasmpar -- http` runs only the sections
    // named; cargo's own `--bench` flag is not a section.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    let mut table = report::Table::default();
    if wanted("compute") {
        eprintln!("wasmpar bench: compute (embedded cluster)…");
        compute::rows(&mut table);
    }
    if wanted("http") || wanted("process") {
        // The process section reuses the compile cache the HTTP section fills.
        eprintln!("wasmpar bench: HTTP (in-process server)…");
        http::rows(&mut table, &dir);
    }
    if wanted("process") {
        eprintln!("wasmpar bench: the wasmpar binary…");
        process::rows(&mut table, &dir, &dir.join("cache"));
    }
    if wanted("remote") {
        eprintln!("wasmpar bench: remote engines beside in-process ones…");
        remote::rows(&mut table, &dir);
    }
    if wanted("store") {
        eprintln!("wasmpar bench: the task store, off and on…");
        store::rows(&mut table, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("wasmpar benchmark");
    println!("  machine: {} cores ({}), Linux {}", report::cores(), report::cpu_model(), report::kernel());
    println!("  wasmtime {}, load average {} at start, {} at end", report::wasmtime_version(), load_before, report::load_average());
    println!("  run took {:.0} s; rerun: cargo bench -p wasmpar --bench wasmpar", started.elapsed().as_secs_f64());
    println!();
    table.print();
}
