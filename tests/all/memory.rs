//! Memory a large task used comes back to the system once its answer went
//! out (issue 16, item 4; `host/src/trim.rs`), measured on the real server
//! process.

use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

#[test]
fn a_big_map_gives_its_memory_back() {
    let daemon = crate::server::Daemon::start("trim", 2, &["--db", "none"]);
    let info = &daemon.info;
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().expect("client");
    let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed");
    let r = http.post(format!("{}/v1/components?name=seed", info.url)).bearer_auth(&info.token).body(seed).send().expect("upload");
    assert_eq!(r.status().as_u16(), 201);
    let before = status_mib(info.pid, "VmRSS:");
    let n = 2_000_000usize;
    let items: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let spec =
        json!({"op": "map", "component": "seed", "function": "identity", "sequences": [items], "targets": "balanced", "block": true});
    let v: Json =
        http.post(format!("{}/v1/tasks", info.url)).bearer_auth(&info.token).json(&spec).send().and_then(|r| r.json()).expect("map");
    assert_eq!(v["status"], "done", "{}", v["error"]);
    assert_eq!(v["result"].as_array().map(Vec::len), Some(n));
    drop(v);
    let peak = status_mib(info.pid, "VmHWM:");
    assert!(peak - before > 200.0, "the map should have needed memory: {before:.0} → peak {peak:.0} MiB");
    // The trimmer looks every second; without it glibc keeps ~70% of the peak.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = status_mib(info.pid, "VmRSS:");
    while after - before > 0.35 * (peak - before) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = status_mib(info.pid, "VmRSS:");
    }
    eprintln!("server RSS: {before:.0} MiB before, peak {peak:.0} MiB, {after:.0} MiB after");
    assert!(after - before <= 0.35 * (peak - before), "memory stayed: {before:.0} MiB before, peak {peak:.0}, after {after:.0}");
}
