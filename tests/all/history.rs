//! Issue 15 wired into a real server over real HTTP: tasks into an SQLite
//! task store, `GET /v1/tasks` queries, purges, a restart answering from
//! the store, `/metrics`, and the dashboard's event stream.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use wasmpar::store::StoreLocation;

use crate::server::TestServer;

fn temp_db(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("wasmpar-history-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("tasks.sqlite");
    (dir, db)
}

/// `GET /v1/tasks?…` until `ready` holds for the ids listed (the store
/// commits within its batch window), or 10 s.
fn query_until(s: &TestServer, query: &str, ready: impl Fn(&[String]) -> bool) -> Json {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = s.call("GET", &format!("/v1/tasks?{query}"), None);
        assert_eq!(status, 200, "{page}");
        let ids: Vec<String> =
            page["tasks"].as_array().expect("tasks").iter().map(|t| t["id"].as_str().unwrap_or("").to_string()).collect();
        if ready(&ids) || Instant::now() > deadline {
            return page;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[test]
fn tasks_are_stored_queried_purged_and_answered_after_a_restart() {
    let (dir, db) = temp_db("store");
    let location = StoreLocation::Sqlite(db.clone());
    let (blocking_view, map_id) = {
        let s = TestServer::start_with(2, |c| c.db = location.clone());
        assert!(db.exists(), "the store file is created at start");
        s.upload_seed();
        let blocking = s.apply("add3", json!([1, 2, 3]), json!("all"));
        assert_eq!(blocking["status"], "done", "{blocking}");
        let (status, accepted) = s.call(
            "POST",
            "/v1/tasks",
            Some(&json!({"op": "map", "component": "seed", "function": "add3", "block": false,
                         "sequences": [[1, 2, 3], [4, 5, 6], [7, 8, 9]], "targets": "balanced"})),
        );
        assert_eq!(status, 202, "{accepted}");
        let map_id = accepted["id"].as_str().expect("id").to_string();
        let (_, done) = s.call("GET", &format!("/v1/tasks/{map_id}?wait=30"), None);
        assert_eq!(done["status"], "done", "{done}");

        let a = blocking["id"].as_str().expect("id").to_string();
        let page = query_until(&s, "component=seed&status=done", |ids| ids.contains(&a) && ids.contains(&map_id));
        let listed: Vec<&str> = page["tasks"].as_array().expect("tasks").iter().filter_map(|t| t["id"].as_str()).collect();
        assert_eq!(listed, vec![map_id.as_str(), a.as_str()], "newest first: {page}");
        assert_eq!(page["tasks"][0]["targets"], json!("balanced"));
        assert_eq!(page["tasks"][1]["function"], "add3");
        assert!(page["tasks"][0]["view"].is_null(), "no views unless full=true");
        // Pages, and the finished map's stored view, which its finish put
        // once nobody was waiting for it.
        let (_, first) = s.call("GET", "/v1/tasks?limit=1&full=true", None);
        assert_eq!(first["tasks"][0]["id"], json!(map_id), "{first}");
        assert_eq!(first["tasks"][0]["view"]["result"], json!([12, 15, 18]), "{first}");
        let cursor = first["next_cursor"].as_str().expect("a next page").to_string();
        let (_, second) = s.call("GET", &format!("/v1/tasks?limit=1&cursor={cursor}"), None);
        assert_eq!(second["tasks"][0]["id"], json!(a), "{second}");
        assert!(second.get("next_cursor").is_none(), "the last page: {second}");
        // Bad input names itself.
        let (status, e) = s.call("GET", "/v1/tasks?status=finished", None);
        assert_eq!(status, 400, "{e}");
        assert!(e["error"]["message"].as_str().unwrap_or("").contains("unknown task status"), "{e}");
        let (status, e) = s.call("GET", "/v1/tasks?limit=0", None);
        assert_eq!(status, 400, "{e}");
        let (status, e) = s.call("DELETE", "/v1/tasks", None);
        assert_eq!(status, 400, "{e}");
        let (status, e) = s.call("DELETE", "/v1/tasks?before=yesterday", None);
        assert_eq!(status, 400, "{e}");
        // /metrics counts both tasks and their calls.
        let resp = s.http.get(format!("{}/metrics", s.url)).bearer_auth(&s.token).send().expect("metrics");
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.text().expect("body");
        assert_eq!(metric(&text, "wasmpar_tasks_submitted_total"), 2.0);
        assert_eq!(metric(&text, "wasmpar_tasks_finished_total{status=\"done\"}"), 2.0);
        assert_eq!(metric(&text, "wasmpar_calls_total"), 5.0, "2 applies and 3 map calls");
        assert!(metric(&text, "wasmpar_store_tasks") >= 2.0);
        (blocking, map_id)
    };
    // A new controller on the same store answers the tasks it never ran.
    let s = TestServer::start_with(1, |c| c.db = location.clone());
    let a = blocking_view["id"].as_str().expect("id");
    let (status, again) = s.call("GET", &format!("/v1/tasks/{a}"), None);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, blocking_view, "a finished task answers exactly as before the restart");
    let (status, _) = s.call("GET", &format!("/v1/tasks/{map_id}?wait=1"), None);
    assert_eq!(status, 200);
    let (status, missing) = s.call("GET", "/v1/tasks/0123456789abcdef", None);
    assert_eq!(status, 404, "{missing}");
    // Purge everything finished before a second from now.
    let before = chrono::Utc::now().timestamp() + 1;
    let (status, purged) = s.call("DELETE", &format!("/v1/tasks?before={before}"), None);
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged["removed"], json!(2), "{purged}");
    let (status, gone) = s.call("GET", &format!("/v1/tasks/{a}"), None);
    assert_eq!(status, 404, "{gone}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_event_stream_and_the_page() {
    let s = TestServer::start(1);
    s.upload_seed();
    // The page is public; the stream and /metrics need the token.
    let page = s.http.get(format!("{}/", s.url)).send().expect("page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().expect("body").contains("login-form"));
    for path in ["/v1/events", "/metrics", "/v1/tasks"] {
        let r = s.http.get(format!("{}{path}", s.url)).send().expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let resp = s.http.get(format!("{}/v1/events", s.url)).bearer_auth(&s.token).send().expect("events");
    assert_eq!(resp.status().as_u16(), 200);
    let mut lines = std::io::BufReader::new(resp).lines();
    let mut next_event = || -> Json {
        loop {
            let line = lines.next().expect("the stream goes on").expect("a line");
            if let Some(data) = line.strip_prefix("data:") {
                return serde_json::from_str(data.trim()).expect("JSON event");
            }
        }
    };
    assert_eq!(next_event()["type"], "hello");
    let task = s.apply("add3", json!([1, 1, 1]), json!("all"));
    let id = task["id"].clone();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let e = next_event();
        let kind = e["type"].as_str().unwrap_or("").to_string();
        if kind == "engines" {
            assert_eq!(e["engines"].as_array().map(Vec::len), Some(1), "{e}");
        }
        if e["task"]["id"] == id {
            seen.push(kind.clone());
            if kind == "task_finished" {
                assert_eq!(e["task"]["status"], "done", "{e}");
                break;
            }
        }
    }
    assert_eq!(seen, vec!["task_submitted", "task_finished"]);
}

#[test]
fn a_blocking_task_whose_client_left_is_recorded_when_it_finishes() {
    let s = TestServer::start(1);
    s.upload_seed();
    let impatient = reqwest::blocking::Client::builder().timeout(Duration::from_millis(300)).build().expect("client");
    let sent = impatient
        .post(format!("{}/v1/tasks", s.url))
        .bearer_auth(&s.token)
        .json(&json!({"op": "apply", "component": "seed", "function": "spin", "targets": 0, "timeout_s": 1.5, "block": true}))
        .send();
    assert!(sent.is_err(), "the client gives up before the task ends");
    // The task ends by its deadline; its finish reaches the store anyway.
    let page = query_until(&s, "component=seed&status=failed", |ids| !ids.is_empty());
    let task = &page["tasks"][0];
    assert_eq!(task["function"], "spin", "{page}");
    assert_eq!(task["error"]["kind"], "TimeoutError", "{page}");
    let (_, running) = s.call("GET", "/v1/tasks?status=pending,running", None);
    assert_eq!(running["tasks"], json!([]), "{running}");
}

/// `wasmpar start --daemon --db DB` with its own connection file; its output.
fn start_on(dir: &std::path::Path, name: &str, db: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wasmpar"))
        .args(["start", "-n", "1", "--daemon", "--db"])
        .arg(db)
        .arg("--connection-file")
        .arg(dir.join(format!("{name}.json")))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env_remove("WASMPAR_CONNECTION_FILE")
        .output()
        .expect("run wasmpar start")
}

#[test]
fn one_controller_per_store_file_and_a_killed_one_does_not_block_the_next() {
    let (dir, db) = temp_db("lock");
    // Kills whatever daemons it names when the test ends, passed or not.
    struct Daemons(Vec<u32>, PathBuf);
    impl Drop for Daemons {
        fn drop(&mut self) {
            for pid in &self.0 {
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let mut daemons = Daemons(Vec::new(), dir.clone());
    let out = start_on(&dir, "first", &db);
    assert!(out.status.success(), "the first controller starts: {}", String::from_utf8_lossy(&out.stderr));
    let first = wasmpar::api::connection::read(&dir.join("first.json")).expect("connection file");
    daemons.0.push(first.pid);
    let http = reqwest::blocking::Client::new();
    let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed");
    let r = http.post(format!("{}/v1/components?name=seed", first.url)).bearer_auth(&first.token).body(seed).send().expect("upload");
    assert_eq!(r.status().as_u16(), 201);
    let done: Json = http
        .post(format!("{}/v1/tasks", first.url))
        .bearer_auth(&first.token)
        .json(&json!({"op": "apply", "component": "seed", "function": "add3", "args": [1, 2, 3], "block": true}))
        .send()
        .and_then(|r| r.json())
        .expect("apply");
    assert_eq!(done["status"], "done", "{done}");
    let id = done["id"].as_str().expect("id").to_string();

    // A second controller on the same file fails at start, naming the file
    // and the first controller.
    let out = start_on(&dir, "second", &db);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a second controller on {} must not start: {said}", db.display());
    assert!(said.contains(&format!("the task store {} is in use by another controller", db.display())), "{said}");
    assert!(said.contains(&format!("pid {}", first.pid)), "names the first controller's pid: {said}");
    assert!(said.contains("first.json"), "names the first controller's connection file: {said}");
    // The first one still answers, and its task was not marked lost.
    let (_, task) = get_json(&http, &first.url, &first.token, &format!("/v1/tasks/{id}"));
    assert_eq!(task["status"], "done", "{task}");

    // Wait for the task's batch to commit, then SIGKILL the first: the
    // kernel drops its lock, and a new controller starts on the same file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_json(&http, &first.url, &first.token, "/v1/tasks?status=done").1["tasks"].as_array().is_none_or(Vec::is_empty) {
        assert!(Instant::now() < deadline, "the task was never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(unsafe { libc::kill(first.pid as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while unsafe { libc::kill(first.pid as i32, 0) } == 0 {
        assert!(Instant::now() < deadline, "the first controller outlived SIGKILL");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = start_on(&dir, "third", &db);
    assert!(out.status.success(), "a controller after a SIGKILLed one starts: {}", String::from_utf8_lossy(&out.stderr));
    let third = wasmpar::api::connection::read(&dir.join("third.json")).expect("connection file");
    daemons.0.push(third.pid);
    let (status, again) = get_json(&http, &third.url, &third.token, &format!("/v1/tasks/{id}"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, done, "the old task answers as before");
    let _ =
        std::process::Command::new(env!("CARGO_BIN_EXE_wasmpar")).arg("stop").arg("--connection-file").arg(dir.join("third.json")).output();
}

fn get_json(http: &reqwest::blocking::Client, url: &str, token: &str, path: &str) -> (u16, Json) {
    let r = http.get(format!("{url}{path}")).bearer_auth(token).send().expect("request");
    (r.status().as_u16(), r.json().unwrap_or(Json::Null))
}

#[test]
fn with_a_store_the_controller_lets_finished_tasks_go_and_the_store_answers_them() {
    let (dir, db) = temp_db("evict");
    let s = TestServer::start_with(1, |c| {
        c.db = StoreLocation::Sqlite(db.clone());
        c.limits.tasks_kept = 2;
    });
    s.upload_seed();
    let first = s.apply("add3", json!([1, 2, 3]), json!(0));
    assert_eq!(first["status"], "done", "{first}");
    for i in 0..3 {
        s.apply("add3", json!([i, 0, 0]), json!(0));
    }
    // Past `tasks_kept`, a finished task older than STORED_TASK_MIN_AGE
    // leaves the controller's table at the next submit (an hour without a store).
    std::thread::sleep(wasmpar::api::STORED_TASK_MIN_AGE + Duration::from_millis(300));
    s.apply("add3", json!([0, 0, 0]), json!(0));
    let id = first["id"].as_str().expect("id");
    let (status, answer) = s.call("GET", &format!("/v1/tasks/{id}"), None);
    assert_eq!(status, 200, "{answer}");
    // The table's record would say `delivered: true`, without the result.
    assert_eq!(answer, first, "answered from the store, result included");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
