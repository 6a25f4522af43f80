//! The task store's cost, in one run: two `wasmpar start --daemon` servers
//! with 2 engine threads each, one with `--db none` (records in memory) and
//! one with an SQLite store (`--db <tmp>/tasks.sqlite`), driven alike and in
//! alternation so outside load hits both sides, in 4 sessions of freshly
//! started pairs. Issue 15's targets: store-on throughput ≥ 0.9× store-off,
//! apply p50 ≤ 1.1×.
//!
//! Apply round trips (seed/identity, one engine and all) run in blocks of 50
//! alternating between the servers, pooled into one p50 each. Balanced maps
//! of 100 000 seed/identity calls (chunksize 1 and automatic) run in turns
//! of three back to back per server, so the writer's work for one map —
//! serializing its 100 000 results and committing them — lands on the same
//! server's clock during the next; before each turn the other server's store
//! is settled (backlog 0), so its writer never runs on this one's clock.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::cluster::Cluster;
use crate::report::{percentile_us, Table, Target};

/// Apply latencies: blocks of this many requests, alternating between the
/// servers, so load drifting on a shared machine lands on both alike.
const BLOCK: usize = 50;
const BLOCKS: usize = 64;
/// Pairs of fresh servers the blocks and turns are spread over.
const SESSIONS: usize = 4;
/// Tiny tasks: turns of three back-to-back maps per server (the writer's
/// work for one map overlaps the next on the same server's clock).
const TURNS: usize = 12;
const MAPS_PER_TURN: usize = 3;

#[derive(Default)]
struct Figures {
    apply_one: Vec<Duration>,
    apply_all: Vec<Duration>,
    tiny_c1: Vec<f64>,
    tiny_auto: Vec<f64>,
}

/// A blocking task whose body was encoded before the clock started.
fn timed_task(c: &Cluster, body: &bytes::Bytes) -> (Duration, Json) {
    let t0 = Instant::now();
    let r = c
        .client
        .post(format!("{}/v1/tasks", c.url))
        .bearer_auth(&c.token)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .and_then(|r| r.bytes())
        .expect("task");
    let took = t0.elapsed();
    let v: Json = serde_json::from_slice(&r).expect("JSON answer");
    assert_eq!(v["status"], "done", "{}", v["error"]);
    (took, v)
}

fn encode(mut spec: Json) -> bytes::Bytes {
    spec["block"] = json!(true);
    bytes::Bytes::from(serde_json::to_vec(&spec).expect("json"))
}

/// Wait until a server's store has committed everything (`wasmpar_store_backlog` 0).
fn settle(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = c.client.get(format!("{}/metrics", c.url)).bearer_auth(&c.token).send().and_then(|r| r.text()).unwrap_or_default();
        let backlog = text.lines().find_map(|l| l.strip_prefix("wasmpar_store_backlog ")).and_then(|v| v.trim().parse::<f64>().ok());
        if backlog.is_none_or(|b| b == 0.0) || Instant::now() > deadline {
            // Memory stores report no backlog; a commit may still be running.
            std::thread::sleep(Duration::from_millis(60));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn apply_block(c: &Cluster, targets: &Json, into: &mut Vec<Duration>) {
    for i in 0..BLOCK {
        let body = encode(json!({"op": "apply", "component": "seed", "function": "identity", "args": [i], "targets": targets}));
        let (d, v) = timed_task(c, &body);
        into.push(d);
        std::hint::black_box(v);
    }
}

/// Calls per second over `MAPS_PER_TURN` maps back to back.
fn tiny_turn(c: &Cluster, body: &bytes::Bytes) -> f64 {
    let t0 = Instant::now();
    for _ in 0..MAPS_PER_TURN {
        let (_, v) = timed_task(c, body);
        assert_eq!(v["result"][99_999], 99_999);
    }
    (MAPS_PER_TURN as f64 * 1e5) / t0.elapsed().as_secs_f64()
}

fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn p50(xs: &mut [Duration]) -> f64 {
    xs.sort();
    percentile_us(xs, 0.5)
}

/// Both servers, started in an order that alternates with the session.
fn start_pair(dir: &Path, session: usize, db: &Path) -> (Cluster, Cluster) {
    let off = || Cluster::start_with(dir, &format!("store-off-{session}"), 2, 0, &["--db".as_ref(), "none".as_ref()]);
    let on = || Cluster::start_with(dir, &format!("store-on-{session}"), 2, 0, &["--db".as_ref(), db.as_os_str()]);
    let (off, on) = if session.is_multiple_of(2) {
        let off = off();
        (off, on())
    } else {
        let on = on();
        (off(), on)
    };
    let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed");
    off.upload("seed", seed.clone());
    on.upload("seed", seed);
    // Warm both up: instances, connections, the SQLite file's first pages.
    for c in [&off, &on] {
        apply_block(c, &json!(0), &mut Vec::new());
        apply_block(c, &json!("all"), &mut Vec::new());
    }
    (off, on)
}

pub fn rows(t: &mut Table, dir: &Path) {
    let db = dir.join("store-on.tasks.sqlite");
    let ids: Vec<i64> = (0..100_000).collect();
    let c1 = encode(
        json!({"op": "map", "component": "seed", "function": "identity", "sequences": [ids], "targets": "balanced", "chunksize": 1}),
    );
    let auto = encode(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [ids], "targets": "balanced"}));
    let (mut f_off, mut f_on) = (Figures::default(), Figures::default());
    for session in 0..SESSIONS {
        // Fresh processes each session: on a shared machine a process's
        // threads stay where the scheduler first put them, so one server can
        // be slower than the other for its whole life, whichever it is.
        let (off, on) = start_pair(dir, session, &db);
        let marks = [f_off.apply_one.len(), f_on.apply_one.len()];
        for b in 0..BLOCKS / SESSIONS {
            // Alternate who goes first, so neither always follows the other.
            let order = if b.is_multiple_of(2) { [(&off, &mut f_off), (&on, &mut f_on)] } else { [(&on, &mut f_on), (&off, &mut f_off)] };
            for (c, f) in order {
                apply_block(c, &json!(0), &mut f.apply_one);
                apply_block(c, &json!("all"), &mut f.apply_all);
            }
        }
        for turn in 0..TURNS / SESSIONS {
            for (body, pick) in [(&c1, 0), (&auto, 1)] {
                let order = if turn.is_multiple_of(2) {
                    [(&off, &mut f_off, &on), (&on, &mut f_on, &off)]
                } else {
                    [(&on, &mut f_on, &off), (&off, &mut f_off, &on)]
                };
                for (c, f, other) in order {
                    // The other server's writer must not run on this one's clock.
                    settle(other);
                    let rate = tiny_turn(c, body);
                    if pick == 0 {
                        f.tiny_c1.push(rate)
                    } else {
                        f.tiny_auto.push(rate)
                    }
                }
            }
        }
        settle(&on);
        let stored = on.get("/v1/tasks?limit=1");
        assert!(stored["tasks"].as_array().is_some_and(|t| !t.is_empty()), "the SQLite server stored its tasks: {stored}");
        let mut one_off = f_off.apply_one[marks[0]..].to_vec();
        let mut one_on = f_on.apply_one[marks[1]..].to_vec();
        eprintln!("  session {session}: apply p50 one engine {:.0} µs (--db none), {:.0} µs (SQLite)", p50(&mut one_off), p50(&mut one_on));
    }
    for (name, f) in [("--db none", &f_off), ("SQLite", &f_on)] {
        eprintln!(
            "  {name}: tiny tasks chunksize 1 {:?}, automatic {:?} calls/s",
            f.tiny_c1.iter().map(|r| *r as u64).collect::<Vec<_>>(),
            f.tiny_auto.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
    }
    let db_mib = std::fs::metadata(&db).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64);

    t.section(&format!(
        "the task store's cost: `--db none` vs an SQLite store, 2 engines each, {SESSIONS} sessions of fresh servers, alternating"
    ));
    let (one_off, one_on) = (p50(&mut f_off.apply_one), p50(&mut f_on.apply_one));
    let (all_off, all_on) = (p50(&mut f_off.apply_all), p50(&mut f_on.apply_all));
    let apply_note = format!("p50 of {} requests, blocks of {BLOCK} alternating", BLOCK * BLOCKS);
    t.add("apply p50, one engine, --db none", one_off, "µs", None, apply_note.clone());
    t.add("apply p50, one engine, SQLite store", one_on, "µs", None, apply_note.clone());
    t.add("  store on / off, apply p50 one engine", one_on / one_off, "x", Some(Target::AtMost(1.1)), "");
    t.add("apply p50, all engines, --db none", all_off, "µs", None, apply_note.clone());
    t.add("apply p50, all engines, SQLite store", all_on, "µs", None, apply_note);
    t.add("  store on / off, apply p50 all engines", all_on / all_off, "x", Some(Target::AtMost(1.1)), "");
    for (label, off_rate, on_rate) in [
        ("chunksize 1", median(&f_off.tiny_c1), median(&f_on.tiny_c1)),
        ("automatic chunks", median(&f_off.tiny_auto), median(&f_on.tiny_auto)),
    ] {
        t.add(
            format!("balanced tiny tasks, {label}, --db none"),
            off_rate,
            "calls/s",
            None,
            format!("median of {TURNS} turns of {MAPS_PER_TURN} maps of 100 000"),
        );
        t.add(
            format!("balanced tiny tasks, {label}, SQLite store"),
            on_rate,
            "calls/s",
            None,
            format!("median of {TURNS} turns of {MAPS_PER_TURN} maps of 100 000"),
        );
        t.add(format!("  store on / off, tiny tasks {label}"), on_rate / off_rate, "x", Some(Target::AtLeast(0.9)), "");
    }
    t.add("  SQLite file after the run", db_mib, "MiB", None, "one file, reopened by each session's server");
}
