//! The store against real SQLite files in temporary directories (and the
//! memory store against the same checks): round trip, restart, SIGKILL,
//! retention, concurrent writers, paging.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;

/// Now, to the microsecond: what SQLite keeps.
fn now_us() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("a time")
}

fn task(id: &str, status: StoredStatus, submitted: DateTime<Utc>) -> StoredTask {
    let submitted = DateTime::from_timestamp_micros(submitted.timestamp_micros()).expect("a time");
    let completed = status.is_finished().then_some(submitted + chrono::Duration::milliseconds(5));
    StoredTask {
        id: id.into(),
        op: "map".into(),
        component: "seed".into(),
        digest: "sha256:ab12".into(),
        function: "add3".into(),
        targets: json!("::2"),
        engines: vec![0, 2],
        status,
        submitted,
        started: Some(submitted),
        completed,
        progress: StoredProgress { done: 3, total: 3 },
        error: None,
        view: json!({
            "id": id, "op": "map", "component": "seed", "function": "add3",
            "status": status.as_str(), "progress": {"done": 3, "total": 3},
            "result": [0, 3, 6], "engines": [0, 2],
            "outputs": [{"engine": 0, "stdout": format!("hello from {id}\n"), "stderr": "", "images": ["iVBORw0KGgo="]}],
            "error": null,
            "timing": {"submitted": submitted.to_rfc3339(), "started": submitted.to_rfc3339(), "wall_ms": 1.5}
        }),
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions { retention: no_retention(), ..SqliteOptions::default() })
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn no_retention() -> Retention {
    Retention { max_tasks: None, max_age: None, max_bytes: None, interval: Duration::from_secs(3600) }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Checks both stores must pass alike.
fn round_trip(store: &dyn TaskStore) {
    let now = now_us();
    let mut a = task("a", StoredStatus::Running, now);
    store.put(a.clone());
    a.status = StoredStatus::Done;
    a.completed = Some(now + chrono::Duration::seconds(1));
    a.view["status"] = json!("done");
    store.put(a.clone());
    let mut b = task("b", StoredStatus::Failed, now);
    b.error = Some(StoredError { kind: "RemoteError".into(), message: "engine 1: add3: boom".into() });
    store.put(b.clone());
    store.flush().expect("flush");
    assert_eq!(store.get("a").expect("get a"), Some(a), "the last put of an id wins, verbatim");
    assert_eq!(store.get("b").expect("get b"), Some(b));
    assert_eq!(store.get("nope").expect("get nope"), None);
    let stats = store.stats().expect("stats");
    assert_eq!(stats.tasks, 2);
    assert!(stats.bytes > 200, "records weigh their views: {stats:?}");
    assert_eq!(stats.backlog, 0);
}

fn paging_and_filters(store: &dyn TaskStore) {
    let t0 = Utc::now() - chrono::Duration::hours(1);
    for i in 0..25 {
        let status = if i % 5 == 0 { StoredStatus::Failed } else { StoredStatus::Done };
        let mut t = task(&format!("t{i:02}"), status, t0 + chrono::Duration::seconds(i));
        if i % 2 == 1 {
            t.component = "mandelbrot".into();
        }
        store.put(t);
    }
    store.flush().expect("flush");
    let mut seen = Vec::new();
    let mut q = TaskQuery { limit: 10, ..TaskQuery::default() };
    let mut pages = 0;
    loop {
        let page = store.query(&q).expect("query");
        pages += 1;
        assert!(page.tasks.iter().all(|t| t.view.is_null()), "views only on request");
        seen.extend(page.tasks.iter().map(|t| t.id.clone()));
        match page.next_cursor {
            Some(c) => q = TaskQueryParams { cursor: Some(c), limit: Some(10), ..Default::default() }.parse().expect("cursor"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).rev().map(|i| format!("t{i:02}")).collect();
    assert_eq!(seen, expected, "newest first, each once");

    let failed = store.query(&TaskQueryParams { status: Some("failed".into()), ..Default::default() }.parse().expect("q")).expect("query");
    assert_eq!(failed.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t20", "t15", "t10", "t05", "t00"]);
    let q = TaskQueryParams {
        component: Some("mandelbrot".into()),
        status: Some("done,failed".into()),
        since: Some((t0 + chrono::Duration::seconds(10)).to_rfc3339()),
        until: Some((t0 + chrono::Duration::seconds(16)).to_rfc3339()),
        full: Some(true),
        ..Default::default()
    }
    .parse()
    .expect("q");
    let page = store.query(&q).expect("query");
    assert_eq!(page.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t15", "t13", "t11"]);
    assert_eq!(page.tasks[0].view["outputs"][0]["stdout"], json!("hello from t15\n"), "full=true brings views");
    assert_eq!(page.next_cursor, None);
}

fn retention(store: &dyn TaskStore) {
    let now = Utc::now();
    let old = now - chrono::Duration::days(40);
    for i in 0..4 {
        store.put(task(&format!("old{i}"), StoredStatus::Done, old + chrono::Duration::seconds(i)));
    }
    store.put(task("old-running", StoredStatus::Running, old));
    for i in 0..10 {
        store.put(task(&format!("new{i}"), StoredStatus::Done, now + chrono::Duration::milliseconds(i)));
    }
    store.flush().expect("flush");
    // Age: the 40-day-old finished ones go, the unfinished one stays.
    let by_age = Retention { max_age: Some(Duration::from_secs(30 * 86400)), ..no_retention() };
    assert_eq!(store.retain(&by_age).expect("retain"), 4);
    assert!(store.get("old-running").expect("get").is_some(), "unfinished tasks are never removed");
    assert_eq!(store.stats().expect("stats").tasks, 11);
    // Count: 11 → 6, oldest finished first.
    assert_eq!(store.retain(&Retention { max_tasks: Some(6), ..no_retention() }).expect("retain"), 5);
    let left: Vec<String> = store.query(&TaskQuery::default()).expect("q").tasks.into_iter().map(|t| t.id).collect();
    assert_eq!(left, ["new9", "new8", "new7", "new6", "new5", "old-running"]);
    // Bytes: keep about three records' worth.
    let one = store.stats().expect("stats").bytes / 6;
    let removed = store.retain(&Retention { max_bytes: Some(one * 3 + one / 2), ..no_retention() }).expect("retain");
    assert_eq!(removed, 3);
    let stats = store.stats().expect("stats");
    assert!(stats.bytes <= one * 3 + one / 2, "{stats:?}");
    assert!(store.get("new9").expect("get").is_some(), "the newest stays");
    // Purge before a time.
    assert_eq!(store.purge(now + chrono::Duration::days(1)).expect("purge"), 2);
    assert_eq!(store.stats().expect("stats").tasks, 1);
}

#[test]
fn memory_store_round_trip_paging_retention() {
    round_trip(&MemoryStore::new());
    paging_and_filters(&MemoryStore::new());
    retention(&MemoryStore::new());
}

#[test]
fn sqlite_store_round_trip_paging_retention() {
    let dir = tempdir();
    round_trip(&open(&dir.path().join("a.sqlite")));
    paging_and_filters(&open(&dir.path().join("b.sqlite")));
    retention(&open(&dir.path().join("c.sqlite")));
}

#[test]
fn sqlite_file_is_private_and_in_wal_mode() {
    let dir = tempdir();
    let path = dir.path().join("sub").join("tasks.sqlite");
    let store = open(&path);
    store.put(task("a", StoredStatus::Done, Utc::now()));
    store.flush().expect("flush");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("pragma");
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_restart_keeps_finished_and_marks_unfinished_lost() {
    let dir = tempdir();
    let path = dir.path().join("tasks.sqlite");
    let now = now_us();
    let done = task("done1", StoredStatus::Done, now);
    {
        let store = open(&path);
        store.put(done.clone());
        store.put(task("running1", StoredStatus::Running, now));
        store.put(task("pending1", StoredStatus::Pending, now));
        // Dropping commits what was sent.
    }
    let store = open(&path);
    assert_eq!(store.get("done1").expect("get"), Some(done), "a finished task answers exactly as before");
    for id in ["running1", "pending1"] {
        let lost = store.get(id).expect("get").unwrap_or_else(|| panic!("{id} kept"));
        assert_eq!(lost.status, StoredStatus::Lost);
        let error = lost.error.expect("an error");
        assert_eq!(error.kind, LOST_KIND);
        assert!(error.message.contains("controller stopped"), "{}", error.message);
        assert_eq!(lost.view["status"], json!("lost"));
        assert_eq!(lost.view["error"]["kind"], json!(LOST_KIND));
        assert!(lost.view["timing"]["completed"].is_string());
        assert!(lost.completed.is_some());
    }
    let q = TaskQueryParams { status: Some("lost".into()), ..Default::default() }.parse().expect("q");
    assert_eq!(store.query(&q).expect("query").tasks.len(), 2);
}

#[test]
fn sqlite_refuses_what_is_not_a_store() {
    let dir = tempdir();
    let path = dir.path().join("junk.sqlite");
    std::fs::write(&path, b"this is not an SQLite database, just text that is long enough to have a header").expect("write");
    let err = SqliteStore::open(&path, SqliteOptions::default()).err().expect("an error");
    assert!(err.to_string().contains("not a usable SQLite task store"), "{err}");
}

#[test]
fn sqlite_one_store_per_file() {
    let dir = tempdir();
    let path = dir.path().join("tasks.sqlite");
    let first = SqliteStore::open(&path, SqliteOptions { holder: "the first controller".into(), ..SqliteOptions::default() })
        .expect("the first open");
    let now = now_us();
    first.put(task("running1", StoredStatus::Running, now));
    first.flush().expect("flush");
    // flock is per open file: a second open in this process is a rival too.
    let err = SqliteStore::open(&path, SqliteOptions::default()).err().expect("a second store on the same file is refused");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "names the file: {text}");
    assert!(text.contains("the first controller, since "), "names the other controller: {text}");
    assert!(text.contains("in use by another controller"), "{text}");
    assert_eq!(first.get("running1").expect("get").map(|t| t.status), Some(StoredStatus::Running), "the refused rival marked nothing lost");
    assert!(lock_path(&path).ends_with("tasks.sqlite.lock"));
    drop(first);
    // Released with the store: the next one opens and marks the task lost.
    let second = open(&path);
    assert_eq!(second.get("running1").expect("get").map(|t| t.status), Some(StoredStatus::Lost));
}

#[test]
fn sqlite_concurrent_writers_lose_nothing() {
    let dir = tempdir();
    let store: Arc<dyn TaskStore> = Arc::new(open(&dir.path().join("tasks.sqlite")));
    let now = Utc::now();
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let id = format!("w{w}-{i}");
                    store.put(task(&id, StoredStatus::Running, now));
                    store.put(task(&id, StoredStatus::Done, now));
                }
            })
        })
        .collect();
    // Readers run while the writers write.
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                store.query(&TaskQuery::default()).expect("query while writing");
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    for t in threads {
        t.join().expect("writer thread");
    }
    reader.join().expect("reader thread");
    store.flush().expect("flush");
    assert_eq!(store.stats().expect("stats").tasks, 4000);
    let running = TaskQueryParams { status: Some("running".into()), ..Default::default() }.parse().expect("q");
    assert!(store.query(&running).expect("query").tasks.is_empty(), "every task's last put (done) won");
    assert_eq!(store.get("w7-499").expect("get").map(|t| t.status), Some(StoredStatus::Done));
}

struct Live {
    id: String,
    status: parking_lot::Mutex<StoredStatus>,
}

impl TaskSource for Live {
    fn task_id(&self) -> String {
        self.id.clone()
    }
    fn stored(&self) -> StoredTask {
        task(&self.id, *self.status.lock(), DateTime::<Utc>::UNIX_EPOCH)
    }
}

#[test]
fn lazy_puts_store_the_state_at_commit() {
    let dir = tempdir();
    for store in [Box::new(open(&dir.path().join("t.sqlite"))) as Box<dyn TaskStore>, Box::new(MemoryStore::new())] {
        let live = Arc::new(Live { id: "lazy".into(), status: parking_lot::Mutex::new(StoredStatus::Running) });
        store.put_lazy(live.clone());
        *live.status.lock() = StoredStatus::Done;
        store.put_lazy(live.clone());
        store.flush().expect("flush");
        assert_eq!(store.get("lazy").expect("get").map(|t| t.status), Some(StoredStatus::Done));
    }
}

#[test]
fn bad_query_parameters_are_clear_errors() {
    let bad = |p: TaskQueryParams, words: &str| {
        let e = p.parse().expect_err("an error");
        assert!(matches!(e, crate::Error::BadRequest(_)), "{e:?}");
        assert!(e.to_string().contains(words), "`{e}` should mention `{words}`");
    };
    bad(TaskQueryParams { status: Some("finished".into()), ..Default::default() }, "unknown task status `finished`");
    bad(TaskQueryParams { limit: Some(0), ..Default::default() }, "limit must be between 1 and 1000");
    bad(TaskQueryParams { limit: Some(5000), ..Default::default() }, "limit");
    bad(TaskQueryParams { since: Some("yesterday".into()), ..Default::default() }, "since must be a time");
    bad(TaskQueryParams { cursor: Some("12".into()), ..Default::default() }, "cursor `12`");
    bad(
        TaskQueryParams { since: Some("2026-01-02T00:00:00Z".into()), until: Some("2026-01-01T00:00:00Z".into()), ..Default::default() },
        "is after until",
    );
    let q = TaskQueryParams { since: Some("1700000000.5".into()), ..Default::default() }.parse().expect("epoch seconds");
    assert_eq!(q.since.map(|t| t.timestamp_micros()), Some(1_700_000_000_500_000));
    assert!(StoreLocation::from_flag(Some("")).is_err());
    assert_eq!(StoreLocation::from_flag(Some("none")).expect("none"), StoreLocation::Memory);
}

const CHILD_ENV: &str = "WASMPAR_STORE_SIGKILL_DB";

/// The child of `sqlite_sigkill_loses_at_most_the_batch_window`: writes
/// tasks in a loop until it is killed. Ignored on its own.
#[test]
#[ignore = "run by sqlite_sigkill_loses_at_most_the_batch_window in a child process"]
fn sigkill_child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = open(Path::new(&path));
    println!("writing");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut i: u64 = 0;
    loop {
        // Each task is put running, then done one step later (an update).
        store.put(task(&format!("k{i:08}"), StoredStatus::Running, Utc::now()));
        if i > 0 {
            store.put(task(&format!("k{:08}", i - 1), StoredStatus::Done, Utc::now()));
        }
        i += 1;
        std::thread::sleep(Duration::from_micros(300));
    }
}

#[test]
fn sqlite_sigkill_loses_at_most_the_batch_window() {
    use std::io::BufRead;
    let dir = tempdir();
    let path = dir.path().join("killed.sqlite");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "store::tests::sigkill_child_writer", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let started = lines.any(|l| l.is_ok_and(|l| l.contains("writing")));
    assert!(started, "the child never started writing");
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Utc::now();
    // SIGKILL: no destructor, no final commit.
    let pid = child.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill the child");
    let status = child.wait().expect("reap the child");
    assert!(!status.success(), "the child was killed, not finished: {status:?}");

    let store = open(&path);
    assert_eq!(store.integrity_check().expect("integrity check"), "ok");
    let conn = rusqlite::Connection::open(&path).expect("open");
    let ids: Vec<String> = {
        let mut stmt = conn.prepare("SELECT id FROM tasks ORDER BY id").expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<rusqlite::Result<_>>().expect("rows")
    };
    assert!(ids.len() > 100, "the child committed batches before it was killed: {} tasks", ids.len());
    // Batches commit whole and in order: the ids are a prefix, no holes.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(*id, format!("k{i:08}"), "a hole in the committed tasks");
    }
    let newest = store.get(&ids[ids.len() - 1]).expect("get").expect("the newest");
    // What was put more than a batch window before the kill is there; the
    // extra slack is for a loaded 2-core machine scheduling the writer late.
    let window = SqliteOptions::default().batch_window;
    let slack = chrono::Duration::from_std(window + Duration::from_millis(1000)).expect("duration");
    assert!(
        newest.submitted >= killed_at - slack,
        "the newest saved task was put at {}, the kill came at {killed_at}: more than a batch window was lost",
        newest.submitted
    );
    // Everything before the newest was updated to done; the newest may have
    // been running, and is then lost.
    for id in &ids[..ids.len() - 1] {
        let t = store.get(id).expect("get").expect("present");
        assert_eq!(t.status, StoredStatus::Done, "{id}");
    }
    assert!(matches!(newest.status, StoredStatus::Done | StoredStatus::Lost), "{:?}", newest.status);
}

/// The nice values of this process's threads named `name` (`/proc`).
fn nice_of_threads(name: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        // Field 19 of stat is the nice value; the command (field 2) may hold spaces.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        if let Some(nice) = after.split_whitespace().nth(16).and_then(|v| v.parse().ok()) {
            out.push(nice);
        }
    }
    out
}

#[test]
fn the_writer_runs_at_the_lowest_priority() {
    let dir = tempdir();
    let store = SqliteStore::open(&dir.path().join("tasks.sqlite"), SqliteOptions::default()).expect("open");
    store.put(task("nice", StoredStatus::Done, now_us()));
    // Once it has committed, the writer has long set its own priority.
    store.flush().expect("flush");
    let nices = nice_of_threads("wasmpar-store");
    assert!(nices.contains(&super::sqlite::WRITER_NICE), "writer threads' nice values: {nices:?}");
}
