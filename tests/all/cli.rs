//! The `wasmpar` binary against a real server it starts itself
//! (`start --daemon`), every subcommand's happy path and a bad input each.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value as Json};

const BIN: &str = env!("CARGO_BIN_EXE_wasmpar");

/// A cluster run by the CLI, stopped (by the CLI) when dropped.
struct CliCluster {
    dir: PathBuf,
}

impl CliCluster {
    fn start(engines: usize) -> CliCluster {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("wasmpar-cli-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let c = CliCluster { dir };
        let out = c.run(&["start", "-n", &engines.to_string(), "--daemon", "--cache-dir", c.dir.join("cache").to_str().expect("utf-8")]);
        assert!(out.status.success(), "start failed: {}", stderr(&out));
        assert!(stdout(&out).contains(&format!("{engines} engines ready")), "{}", stdout(&out));
        c
    }

    fn conn(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--connection-file")
            .arg(self.conn())
            .env_remove("WASMPAR_CONNECTION_FILE")
            .env("NO_COLOR", "1")
            .output()
            .expect("run wasmpar")
    }

    /// Run with `--json` and parse what it printed.
    fn json(&self, args: &[&str]) -> (bool, Json) {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)));
        (out.status.success(), v)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail but printed: {}", stdout(&out));
        format!("{}{}", stdout(&out), stderr(&out))
    }
}

impl Drop for CliCluster {
    fn drop(&mut self) {
        if self.conn().exists() {
            let _ = self.run(&["stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn upload(c: &CliCluster, path: &str, name: &str) -> Json {
    let (ok, v) = c.json(&["upload", path, "--name", name]);
    assert!(ok, "upload {name}: {v}");
    v
}

#[test]
fn start_is_ready_on_return_and_stop_ends_it() {
    let c = CliCluster::start(2);
    let info: Json = serde_json::from_str(&std::fs::read_to_string(c.conn()).expect("connection file")).expect("json");
    assert_eq!(info["engines"], 2);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(c.conn()).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "connection file mode");
    }
    // Ready means every engine answers at once.
    let (ok, v) = c.json(&["engines"]);
    assert!(ok);
    let engines = v["engines"].as_array().expect("engines");
    assert_eq!(engines.len(), 2);
    assert!(engines.iter().all(|e| e["state"] == "idle" && e["queued"] == 0));
    let pid = info["pid"].as_i64().expect("pid") as i32;
    let out = c.ok(&["stop"]);
    assert!(out.contains("stopped"), "{out}");
    assert!(!c.conn().exists(), "stop removes the connection file");
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the server process is gone");
}

#[test]
fn upload_lists_exports_with_wit_signatures_and_imports() {
    let c = CliCluster::start(2);
    let out = c.ok(&["upload", wasmpar::examples::SEED_WASM, "--name", "seed"]);
    assert!(out.contains("export add3: func(x: s64, y: s64, z: s64) -> s64"), "{out}");
    assert!(out.contains("import wasmpar:engine/namespace@0.1.0 ← host"), "{out}");
    assert!(out.contains("← wasi"), "{out}");
    let (ok, v) = c.json(&["components"]);
    assert!(ok);
    assert_eq!(v["components"][0]["name"], "seed");
    // Bad uploads: not a file, garbage bytes.
    assert!(c.fails(&["upload", "/nonexistent/x.wasm"]).contains("cannot read"));
    let garbage = c.dir.join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").expect("write");
    let msg = c.fails(&["upload", garbage.to_str().expect("utf-8")]);
    assert!(msg.contains("InvalidComponent") && msg.contains("not a WebAssembly binary"), "{msg}");
}

#[test]
fn apply_map_parallel_reproduce_the_tutorial() {
    let c = CliCluster::start(4);
    upload(&c, wasmpar::examples::SEED_WASM, "seed");
    let expect = "[0,3,6,9,12,15,18,21,24,27]";
    for targets in ["all", "::2", "2", "1,3", "balanced"] {
        let out = c.ok(&["map", "seed/add3", "range(10)", "range(10)", "range(10)", "--targets", targets]);
        assert_eq!(out.trim(), expect, "targets {targets}");
    }
    let out = c.ok(&["apply", "seed/hypot2", "3", "4", "-t", "1:3"]);
    assert_eq!(out.trim(), "Out[1]: 25\nOut[2]: 25");
    let (ok, v) = c.json(&["apply", "seed/hypot2", "--kw", "x=3", "--kw", "y=4", "-t", "1:3"]);
    assert!(ok);
    assert_eq!(v["result"], json!([25, 25]));
    assert_eq!(c.ok(&["parallel", "seed/sum-chunk", "range(15)"]).trim(), "[6,22,38,39]");
    let (_, v) = c.json(&["map", "seed/identity", "range(100)", "-t", "balanced", "--chunksize", "7", "--unordered"]);
    let mut got: Vec<i64> = v["result"].as_array().expect("list").iter().map(|x| x.as_i64().expect("int")).collect();
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    // @file.json arguments
    let f = c.dir.join("xs.json");
    std::fs::write(&f, "[1, 2, 3]").expect("write");
    let out = c.ok(&["apply", "seed/sum-chunk", &format!("@{}", f.display()), "-t", "0"]);
    assert_eq!(out.trim(), "Out[0]: 6");
    // Array results
    let (_, v) = c.json(&["map", "seed/identity", "range(4)", "--array"]);
    assert_eq!(v["result"]["dtype"], "int64");
}

#[test]
fn bad_call_inputs_fail_clearly_with_nonzero_status() {
    let c = CliCluster::start(2);
    upload(&c, wasmpar::examples::SEED_WASM, "seed");
    assert!(c.fails(&["apply", "seed"]).contains("COMPONENT/FUNCTION"));
    assert!(c.fails(&["apply", "seed/nope"]).contains("function `seed/nope` not found"));
    assert!(c.fails(&["apply", "nope/add3"]).contains("component `nope` not found"));
    let msg = c.fails(&["apply", "seed/hypot2", "\"three\"", "4"]);
    assert!(msg.contains("TypeError") && msg.contains("`x`") && msg.contains("s64"), "{msg}");
    assert!(c.fails(&["map", "seed/identity", "range(3)", "-t", "::0"]).contains("step cannot be zero"));
    assert!(c.fails(&["map", "seed/identity", "range(3)", "-t", "9"]).contains("engine `9` not found"));
    assert!(c.fails(&["map", "seed/identity", "[1,2"]).contains("not valid JSON"));
    assert!(c.fails(&["map", "seed/identity"]).contains("at least one sequence"));
    // A remote error: non-zero exit and the engine's message.
    let msg = c.fails(&["apply", "seed/fail", "boom", "-t", "1"]);
    assert!(msg.contains("[1:seed/fail] boom"), "{msg}");
    let (ok, v) = c.json(&["apply", "seed/fail", "boom", "-t", "0,1"]);
    assert!(!ok);
    assert_eq!(v["error"]["kind"], "CompositeError");
    // No cluster at all
    let out = Command::new(BIN).args(["engines", "--connection-file", "/nonexistent/cluster.json"]).output().expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no cluster found"), "{}", stderr(&out));
    let out = Command::new(BIN).args(["engines", "--url", "http://127.0.0.1:9", "--token", "x"]).output().expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
}

#[test]
fn namespace_commands_push_pull_scatter_gather() {
    let c = CliCluster::start(4);
    upload(&c, wasmpar::examples::SEED_WASM, "seed");
    assert!(c.ok(&["push", "a=3", "b=2"]).contains("pushed a, b to engines 0, 1, 2, 3"));
    assert_eq!(c.ok(&["map", "seed/affine", "range(5)"]).trim(), "[2,5,8,11,14]");
    assert_eq!(c.ok(&["pull", "a", "b"]).trim(), "[0] [3, 2]\n[1] [3, 2]\n[2] [3, 2]\n[3] [3, 2]");
    let (_, v) = c.json(&["pull", "a", "-t", "::2"]);
    assert_eq!(v["engines"], json!([0, 2]));
    assert_eq!(v["values"], json!([{"a": 3}, {"a": 3}]));
    c.ok(&["scatter", "xs", "range(24)"]);
    c.ok(&["px", "seed/squares"]);
    let (_, v) = c.json(&["gather", "y"]);
    assert_eq!(v["values"], json!((0..24).map(|i| i * i).collect::<Vec<i64>>()));
    // A numpy .npy file goes through the raw-bytes route.
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend([0.5f64, -1.25, 3.0, 1e-300].iter().flat_map(|x| x.to_le_bytes()));
    let path = c.dir.join("m.npy");
    std::fs::write(&path, npy).expect("write npy");
    let out = c.ok(&["push", &format!("m=@{}", path.display()), "c=7", "-t", "1:3"]);
    assert!(out.contains("pushed m, c to engines 1, 2"), "{out}");
    let (_, v) = c.json(&["pull", "m", "c", "-t", "2"]);
    assert_eq!(v["values"][0], json!({"m": [[0.5, -1.25], [3.0, 1e-300]], "c": 7}));
    // And back out as a .npy, byte for byte what numpy would read.
    let out_path = c.dir.join("back.npy");
    let out = c.ok(&["pull", "m", "-t", "1", "--npy", out_path.to_str().expect("utf-8")]);
    assert!(out.contains("saved m (float64, shape [2, 2])"), "{out}");
    let back = std::fs::read(&out_path).expect("saved file");
    assert!(back.starts_with(b"\x93NUMPY\x01\x00"));
    assert_eq!(&back[back.len() - 32..], &std::fs::read(&path).expect("npy")[std::fs::read(&path).expect("npy").len() - 32..]);
    assert_eq!((back.len() - 32) % 64, 0, "header padded to 64 bytes as numpy does");
    assert!(c.fails(&["pull", "m", "-t", "all", "--npy", out_path.to_str().expect("utf-8")]).contains("reads one engine"));
    std::fs::write(&path, b"not npy").expect("write");
    assert!(c.fails(&["push", &format!("m=@{}", path.display())]).contains("is not a .npy file"));
    assert!(c.fails(&["pull", "nothere"]).contains("name `nothere` not found on engine 0"));
    assert!(c.fails(&["push", "novalue"]).contains("is not name=value"));
    assert!(c.fails(&["gather", "a"]).contains("only lists and arrays can be gathered"));
}

#[test]
fn px_prints_per_engine_outputs_and_results() {
    let c = CliCluster::start(2);
    upload(&c, wasmpar::examples::SEED_WASM, "seed");
    let out = c.ok(&["px", "seed/greet", "world"]);
    assert!(out.contains("[stdout:0] hello, world"), "{out}");
    assert!(out.contains("[stdout:1] hello, world"), "{out}");
    assert!(out.contains("Out[0:") && out.contains("]: \"hello, world\""), "{out}");
    let out = c.run(&["px", "seed/fail", "bad", "-t", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("[1:seed/fail] bad"), "{}", stderr(&out));
}

#[test]
fn noblock_result_and_cancel() {
    let c = CliCluster::start(2);
    upload(&c, wasmpar::examples::SEED_WASM, "seed");
    let id = c.ok(&["map", "seed/add3", "range(10)", "range(10)", "range(10)", "--noblock"]);
    let id = id.trim();
    assert_eq!(id.len(), 32, "a task id: {id}");
    let (ok, v) = c.json(&["result", id, "--wait", "10"]);
    assert!(ok);
    assert_eq!(v["status"], "done");
    assert_eq!(v["result"], json!([0, 3, 6, 9, 12, 15, 18, 21, 24, 27]));
    // Without an id: the last --noblock task (%pxresult).
    assert_eq!(c.ok(&["result", "--wait", "10"]).trim(), "[0,3,6,9,12,15,18,21,24,27]");
    let id = c.ok(&["apply", "seed/spin", "--noblock"]);
    let (_, v) = c.json(&["cancel", id.trim()]);
    // Under load the cancel's own answer was once not a task (seen once in a
    // full suite run, not reproduced alone); the task must end cancelled
    // either way, and the answer is shown if it does not.
    let status =
        if v["status"].is_string() { v["status"].clone() } else { c.json(&["result", id.trim(), "--wait", "10"]).1["status"].clone() };
    assert_eq!(status, "cancelled", "cancel answered: {v}");
    assert!(c.fails(&["result", "0123456789abcdef0123456789abcdef"]).contains("task `0123456789abcdef0123456789abcdef` not found"));
    // The engines still work after the cancel.
    assert_eq!(c.ok(&["map", "seed/identity", "range(3)"]).trim(), "[0,1,2]");
}

#[test]
fn install_makes_a_dependency_available() {
    let c = CliCluster::start(2);
    upload(&c, wasmpar::examples::STATS_WASM, "stats");
    let v = upload(&c, wasmpar::examples::STATS_TASK_WASM, "stats-task");
    let src = v["import_sources"].as_array().expect("imports");
    assert!(
        src.iter().any(|i| i["name"] == "wasmpar-examples:stats/norm@0.1.0" && i["source"] == "library" && i["library"] == "stats"),
        "{v}"
    );
    let msg = c.fails(&["map", "stats-task/g3", "[0.0]"]);
    assert!(msg.contains("DependencyError") && msg.contains("install `stats`"), "{msg}");
    assert!(c.ok(&["install", "stats", "-t", "0"]).contains("installed stats on engines 0"));
    let (ok, v) = c.json(&["map", "stats-task/g3", "[0.0]", "-t", "balanced"]);
    assert!(ok, "{v}");
    assert_eq!(v["result"][0].as_f64(), Some(0.3989422804014327));
    let (_, v) = c.json(&["engines"]);
    assert_eq!(v["engines"][0]["libraries"], json!(["stats"]));
    assert_eq!(v["engines"][1]["libraries"], json!([]));
    assert!(c.fails(&["install", "nope"]).contains("component `nope` not found"));
}
