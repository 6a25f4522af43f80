//! Dependencies declared in WIT: library components installed on engines
//! (`sync_imports`), require-aware scheduling, and errors that teach.

use serde_json::{json, Value as Json};

use crate::server::TestServer;

/// The tutorial's `g3` over `np.arange(-3, 4)`, as printed there (digits and all).
#[allow(clippy::excessive_precision)]
const G3: [f64; 7] = [
    0.0044318484119380075,
    0.053990966513188063,
    0.24197072451914337,
    0.3989422804014327,
    0.24197072451914337,
    0.053990966513188063,
    0.0044318484119380075,
];

fn g3_map(s: &TestServer, targets: Json) -> Json {
    s.call(
        "POST",
        "/v1/tasks",
        Some(&json!({"op": "map", "component": "stats-task", "function": "g3",
        "sequences": [[-3, -2, -1, 0, 1, 2, 3]], "targets": targets, "block": true})),
    )
    .1
}

fn setup(engines: usize) -> TestServer {
    let s = TestServer::start(engines);
    s.upload("stats", wasmpar::examples::STATS_WASM);
    let task = s.upload("stats-task", wasmpar::examples::STATS_TASK_WASM);
    let norm = task["import_sources"]
        .as_array()
        .expect("import_sources")
        .iter()
        .find(|i| i["name"] == "wasmpar-examples:stats/norm@0.1.0")
        .cloned()
        .expect("the norm import is reported");
    assert_eq!(norm["source"], "library");
    assert_eq!(norm["library"], "stats");
    s
}

#[test]
fn functions_with_dependencies_fail_before_install_and_work_after() {
    let s = setup(4);
    // Before: a 409 naming the interface, the engines and the library.
    let (status, v) = s.call(
        "POST",
        "/v1/tasks",
        Some(&json!({"op": "map", "component": "stats-task", "function": "g3",
        "sequences": [[0.0]], "block": true})),
    );
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["kind"], "DependencyError");
    let m = v["error"]["message"].as_str().unwrap_or("");
    assert!(m.contains("wasmpar-examples:stats/norm@0.1.0") && m.contains("engine(s) 0, 1, 2, 3") && m.contains("install `stats`"), "{m}");
    // The balanced view fails at once too (no hang).
    let (status, v) = s.call(
        "POST",
        "/v1/tasks",
        Some(&json!({"op": "apply", "component": "stats-task", "function": "g3",
        "args": [0.0], "targets": "balanced", "block": true})),
    );
    assert_eq!(status, 409, "{v}");

    // Install on engines 0 and 2 only (sync_imports on rc[::2]).
    let (status, v) = s.call("POST", "/v1/install", Some(&json!({"component": "stats", "targets": "::2"})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["engines"], json!([0, 2]));
    assert_eq!(v["interfaces"], json!(["wasmpar-examples:stats/norm@0.1.0"]));

    // Works there, to 1e-12 of the tutorial's printed values.
    let t = g3_map(&s, json!("::2"));
    assert_eq!(t["status"], "done", "{t}");
    let got: Vec<f64> = t["result"].as_array().expect("list").iter().map(|x| x.as_f64().expect("f64")).collect();
    for (g, want) in got.iter().zip(G3) {
        assert!((g - want).abs() < 1e-12, "{g} vs {want}");
    }
    // Still refused where it is missing, naming only those engines.
    let t = g3_map(&s, json!("all"));
    let m = t["error"]["message"].as_str().unwrap_or("");
    assert!(m.contains("engine(s) 1, 3 lack"), "{t}");
    // The balanced view routes around engines without it.
    let t = s.task(json!({"op": "map", "component": "stats-task", "function": "g3",
        "sequences": [(0..40).map(|i| i as f64 / 10.0).collect::<Vec<_>>()], "targets": "balanced", "chunksize": 1}));
    assert_eq!(t["status"], "done", "{t}");
    let used: Vec<i64> = t["engines"].as_array().expect("engines").iter().map(|e| e.as_i64().expect("id")).collect();
    assert!(used.iter().all(|e| *e == 0 || *e == 2), "only engines with the library: {used:?}");
    // GET /v1/engines lists each engine's libraries.
    let (_, v) = s.call("GET", "/v1/engines", None);
    let libs: Vec<Json> = v["engines"].as_array().expect("engines").iter().map(|e| e["libraries"].clone()).collect();
    assert_eq!(libs, vec![json!(["stats"]), json!([]), json!(["stats"]), json!([])]);
}

#[test]
fn a_library_keeps_its_state_between_calls() {
    let s = TestServer::start(2);
    s.upload("counter", wasmpar::examples::COUNTER_WASM);
    s.upload("counter-task", wasmpar::examples::COUNTER_TASK_WASM);
    let (status, _) = s.call("POST", "/v1/install", Some(&json!({"component": "counter"})));
    assert_eq!(status, 200);
    let bump = |targets: Json| s.ok(json!({"op": "apply", "component": "counter-task", "function": "bump", "targets": targets}));
    assert_eq!(bump(json!("all")), json!([1, 1]));
    assert_eq!(bump(json!("all")), json!([2, 2]));
    assert_eq!(bump(json!(0)), json!([3]));
    assert_eq!(bump(json!("all")), json!([4, 3]));
    // A map is many calls against the same library instance.
    let r = s.ok(json!({"op": "map", "component": "counter-task", "function": "bump", "sequences": [], "targets": 1}));
    assert_eq!(r, json!([]));
}

#[test]
fn a_later_install_replaces_an_earlier_one_and_says_so() {
    let s = TestServer::start(1);
    s.upload("stats", wasmpar::examples::STATS_WASM);
    s.upload("stats-copy", wasmpar::examples::STATS_WASM);
    s.upload("stats-task", wasmpar::examples::STATS_TASK_WASM);
    assert_eq!(s.call("POST", "/v1/install", Some(&json!({"component": "stats"}))).0, 200);
    let (status, v) = s.call("POST", "/v1/install", Some(&json!({"component": "stats-copy"})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["replaced"], json!(["engine 0: stats (wasmpar-examples:stats/norm@0.1.0)"]));
    let (_, e) = s.call("GET", "/v1/engines", None);
    assert_eq!(e["engines"][0]["libraries"], json!(["stats-copy"]));
    let r = s.ok(json!({"op": "apply", "component": "stats-task", "function": "g3", "args": [0.0]}));
    assert_eq!(r, json!([0.3989422804014327]));
}

#[test]
fn install_refuses_what_is_not_a_library() {
    let s = TestServer::start(1);
    s.upload_seed();
    s.upload("stats-task", wasmpar::examples::STATS_TASK_WASM);
    let (status, v) = s.call("POST", "/v1/install", Some(&json!({"component": "seed"})));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("exports no interface"));
    let (status, _) = s.call("POST", "/v1/install", Some(&json!({"component": "nope"})));
    assert_eq!(status, 404);
    let (status, v) = s.call("POST", "/v1/install", Some(&json!({"component": "seed", "targets": "balanced"})));
    assert_eq!(status, 400, "{v}");
    // Uploading a task whose library is unknown reports the import as unresolved.
    let s2 = TestServer::start(1);
    let v = s2.upload("stats-task", wasmpar::examples::STATS_TASK_WASM);
    let norm = v["import_sources"].as_array().expect("imports").iter().find(|i| i["name"] == "wasmpar-examples:stats/norm@0.1.0").cloned();
    assert_eq!(norm.map(|n| n["source"].clone()), Some(json!("unresolved")));
    let (status, v) = s2.call(
        "POST",
        "/v1/tasks",
        Some(&json!({"op": "apply", "component": "stats-task", "function": "g3", "args": [0.0], "block": true})),
    );
    assert_eq!(status, 409);
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("no uploaded component exports it"), "{v}");
}
