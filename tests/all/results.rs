//! A function returning a WIT `result`: `ok` is the value, `err` a failure
//! (RemoteError / CompositeError with `cause: "error"`), for any component;
//! and the execute op's request checks (the runner itself: check.py).

use serde_json::json;

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
