//! A function returning a WIT `result`: `ok` is the value, `err` a failure
//! (RemoteError / CompositeError with `cause: "error"`), for any component;
//! and the execute op's request checks (the runner itself: check.py).

use serde_json::{json, Value as Json};

use crate::server::TestServer;

fn describe(label: &str, targets: serde_json::Value) -> serde_json::Value {
    json!({"op": "apply", "component": "seed", "function": "describe", "targets": targets,
           "args": [{"x": 1.0, "y": 2.0, "label": label}, ["t"], null, "fast", ["read"], "none"]})
}

#[test]
fn ok_is_the_value_and_err_a_remote_error() {
    let s = TestServer::start(2);
    s.upload_seed();
    let r = s.ok(describe("p", json!("all")));
    let one = "1,2,p;[\"t\"];None;fast;read;none";
    assert_eq!(r, json!([one, one]), "ok gives its payload, not {{\"ok\": …}}");
    let v = s.task(describe("", json!(1)));
    assert_eq!((&v["status"], &v["error"]["kind"]), (&json!("failed"), &json!("RemoteError")), "{v}");
    let e = &v["error"]["errors"][0];
    assert_eq!((&e["engine"], &e["message"], &e["cause"]), (&json!(1), &json!("empty label"), &json!("error")), "{v}");
    let v = s.task(describe("", json!("all")));
    assert_eq!(v["error"]["kind"], "CompositeError", "{v}");
    assert_eq!(v["error"]["errors"].as_array().map(Vec::len), Some(2), "{v}");
    // A balanced map stops at the err too.
    let v = s.task(json!({"op": "map", "component": "seed", "function": "describe", "targets": "balanced",
        "sequences": [[{"x": 1.0, "y": 2.0, "label": ""}]], "kwargs": {"tags": [], "opt": null, "mode": "slow", "flags": [], "shape": "none"}}));
    assert_eq!((&v["status"], &v["error"]["errors"][0]["cause"]), (&json!("failed"), &json!("error")), "{v}");
    s.assert_healthy(2);
}

#[test]
fn execute_requests_are_checked() {
    let s = TestServer::start_with(1, |c| c.limits.python_runner = Some("/nonexistent/python_runner.wasm".into()));
    let post = |spec| s.call("POST", "/v1/tasks", Some(&spec));
    let (status, v) = post(json!({"op": "execute", "code": "1", "block": true}));
    assert_eq!(status, 409, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("/nonexistent/python_runner.wasm") && msg.contains("15-python-runner.sh"), "{v}");
    let (status, v) = post(json!({"op": "execute", "block": true}));
    assert_eq!((status, &v["error"]["message"]), (400, &json!("execute takes the cell's Python source as \"code\"")), "{v}");
    let (status, v) = post(json!({"op": "execute", "code": "1", "component": "seed", "function": "add3"}));
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(json!({"op": "apply", "component": "seed", "function": "add3", "code": "1"}));
    assert_eq!(status, 400, "{v}");
}

/// Engine 1 gets an empty label (its `describe` returns `err`), the others a
/// good one: the failed task keeps the others' results in `error.results`.
#[test]
fn a_failed_direct_task_keeps_the_other_engines_results() {
    let s = TestServer::start(3);
    s.upload_seed();
    let point = |label: &str| json!({"pt": {"x": 1.0, "y": 2.0, "label": label}});
    s.push(point("p"), json!("all"));
    s.push(point(""), json!(1));
    let mut spec = describe("p", json!("all"));
    spec["args"][0] = json!({"$ref": "pt"});
    let one = "1,2,p;[\"t\"];None;fast;read;none";
    let v = s.task(spec.clone());
    assert_eq!((&v["status"], &v["error"]["kind"]), (&json!("failed"), &json!("RemoteError")), "{v}");
    assert_eq!(v["error"]["errors"][0]["engine"], 1, "{v}");
    assert_eq!(v["error"]["results"], json!([{"engine": 0, "result": one}, {"engine": 2, "result": one}]), "{v}");
    assert_eq!(v["result"], json!(null), "{v}");
    // A direct map: each finished engine's chunk of results.
    let v = s.task(json!({"op": "map", "component": "seed", "function": "describe", "targets": "all",
        "sequences": [[{"x": 1.0, "y": 2.0, "label": "a"}, {"x": 1.0, "y": 2.0, "label": ""}, {"x": 1.0, "y": 2.0, "label": "c"}]],
        "kwargs": {"tags": [], "opt": null, "mode": "slow", "flags": [], "shape": "none"}}));
    assert_eq!(v["error"]["errors"][0]["engine"], 1, "{v}");
    let engines: Vec<&Json> = v["error"]["results"].as_array().map(|r| r.iter().map(|e| &e["engine"]).collect()).unwrap_or_default();
    assert_eq!(engines, [&json!(0), &json!(2)], "{v}");
    assert!(v["error"]["results"][0]["result"].as_array().is_some_and(|r| r.len() == 1), "{v}");
    // A task that succeeds has no such field; every engine failing leaves it empty.
    s.push(point("p"), json!(1));
    let v = s.task(spec.clone());
    assert_eq!(v["status"], "done", "{v}");
    assert!(v["error"].is_null(), "{v}");
    s.push(point(""), json!("all"));
    let v = s.task(spec);
    assert_eq!(v["error"]["kind"], "CompositeError", "{v}");
    assert!(v["error"].get("results").is_none(), "{v}");
}

/// The Python runner lists its Python-only globals in `__python__`; a pull,
/// gather or `$ref` of one names its type instead of a bare 404. (The entry
/// is pushed by hand here: the host reads it whoever wrote it; check.py
/// does the same with the runner itself.)
#[test]
fn pulling_a_python_only_global_names_its_type() {
    let s = TestServer::start(2);
    s.upload_seed();
    s.push(json!({"__python__": {"session": "ab", "cell": 2, "running": false, "objects": {"f": "function", "p": "P"}}}), json!(0));
    let want = "`f` on engine 0 is a Python-only object of type `function`; it stays inside the Python runner";
    let (status, v) = s.pull("f", "all");
    assert_eq!((status, &v["error"]["kind"]), (404, &json!("NotFound")), "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains(want) && m.contains("assign a namespace value")), "{v}");
    let (status, v) = s.call("GET", "/v1/gather?name=p&targets=all", None);
    assert_eq!(status, 404, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("`p` on engine 0 is a Python-only object of type `P`")), "{v}");
    let (status, v) = s.call("GET", "/v1/namespace/f?targets=0", None);
    assert_eq!(status, 404, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains(want)), "{v}");
    // Not listed (or on an engine without the entry): the plain 404.
    let (status, v) = s.pull("g", "0");
    assert_eq!((status, &v["error"]["message"]), (404, &json!("name `g` not found on engine 0")), "{v}");
    let (status, v) = s.pull("f", "1");
    assert_eq!((status, &v["error"]["message"]), (404, &json!("name `f` not found on engine 1")), "{v}");
    // As a `$ref` argument.
    let v = s.apply("identity", json!([{"$ref": "f"}]), json!(0));
    let msg = v["error"]["errors"][0]["message"].as_str().unwrap_or("");
    assert!(msg.contains("argument `x`: global `f` on engine 0 is a Python-only object of type `function`"), "{v}");
}
