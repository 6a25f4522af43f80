//! Launchers against the real systems they drive. The tests marked
//! `#[ignore = "needs Slurm…"]` need the single-node Slurm that
//! `scripts/test.d/40-cluster.sh` starts (`scripts/cluster/slurm.sh up`) and
//! `SLURM_CONF` pointing at it; that suite runs them with `--ignored`.
//!
//! Two kinds of test. With a stand-in "engine" (a shell script that records
//! its argv, its environment's token and its task id, then stays in the
//! foreground like an engine): what each launcher is responsible for — the
//! command line, the token arriving through the environment or stdin and on
//! no command line, the job in `squeue`, everything gone after stop. With
//! real `wasmpar engine --connect` processes against a controller run by
//! `wasmpar start -n 0 --daemon`: engines joining over Slurm, SSH (in network
//! namespaces, over TLS) and local processes, maps over them, a job
//! scancel'ed mid-map, a host's link cut and mended.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use wasmpar::launcher::{
    parse_hosts, EngineLaunch, LaunchError, LaunchRecord, LaunchState, Launcher, LocalLauncher, MpiLauncher, Secret, SlurmLauncher,
    SshLauncher,
};

const TOKEN: &str = "tok-launch-test-5f1e";

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("wasmpar-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A stand-in engine: writes `out.<task>` with its argv, token, pid and
/// command line (read back from /proc), then sleeps in the foreground.
fn stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("fake-wasmpar");
    let script = format!(
        "#!/bin/sh\n\
         o={dir}/out.${{SLURM_PROCID:-$$}}\n\
         {{ echo \"argv=$*\"; echo \"token=$WASMPAR_TOKEN\"; echo \"pid=$$\"; echo \"job=$SLURM_JOB_ID\";\n\
           echo \"rank=$OMPI_COMM_WORLD_RANK\"; echo \"addr=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{{print $4}}')\";\n\
           printf 'cmdline='; tr '\\0' ' ' < /proc/$$/cmdline; echo;\n\
           printf 'parent='; tr '\\0' ' ' < /proc/$PPID/cmdline; echo; }} > $o.tmp\n\
         mv $o.tmp $o\n\
         exec sleep 300\n",
        dir = dir.display()
    );
    std::fs::write(&path, script).expect("write stand-in");
    let status = Command::new("chmod").arg("0755").arg(&path).status().expect("chmod");
    assert!(status.success());
    path
}

/// Waits for `n` `out.*` files and returns their texts.
fn outputs(dir: &Path, n: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let texts: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("out.") && !name.ends_with(".tmp")
            })
            .map(|e| std::fs::read_to_string(e.path()).expect("read out"))
            .collect();
        if texts.len() >= n || Instant::now() > deadline {
            return texts;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).unwrap_or("")
}

fn pid_alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].trim_start().chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

fn launch(dir: &Path, program: PathBuf, engines: usize, per_process: usize) -> EngineLaunch {
    let mut l = EngineLaunch::new("http://127.0.0.1:9", engines, program, dir);
    l.per_process = per_process;
    l.token = Some(Secret::new(TOKEN));
    l.labels = vec![("site".into(), "ci".into())];
    l
}

fn squeue(args: &[&str]) -> String {
    let out = Command::new("squeue").args(args).output().expect("squeue runs (SLURM_CONF set?)");
    assert!(out.status.success(), "squeue {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn require_slurm() {
    let conf = std::env::var("SLURM_CONF").unwrap_or_default();
    assert!(
        Path::new(&conf).is_file(),
        "SLURM_CONF={conf:?} is not a file: start Slurm with scripts/cluster/slurm.sh up (scripts/test.d/40-cluster.sh does)"
    );
}

/// Local processes: P processes of K engines, the token in each one's
/// environment and on no command line; stop ends them all.
#[test]
fn local_processes_get_the_engine_command_line() {
    let dir = temp_dir("launch-local");
    let program = stand_in(&dir);
    let l = launch(&dir, program, 6, 2);
    let mut handle = Launcher::Local(LocalLauncher::default()).start(&l).expect("local start");
    let outs = outputs(&dir, 3, Duration::from_secs(20));
    assert_eq!(outs.len(), 3, "three processes of two engines: {outs:?}");
    let mut pids = Vec::new();
    for o in &outs {
        assert_eq!(field(o, "argv"), "engine --connect http://127.0.0.1:9 -n 2 --label site=ci", "{o}");
        assert_eq!(field(o, "token"), TOKEN, "{o}");
        assert!(!field(o, "cmdline").contains(TOKEN), "token on the command line: {o}");
        pids.push(field(o, "pid").parse::<i32>().expect("pid"));
    }
    assert_eq!(handle.state().expect("state"), LaunchState::Running);
    assert!(pids.iter().all(|&p| pid_alive(p)));
    handle.stop().expect("stop");
    assert_eq!(handle.state().expect("state"), LaunchState::Finished);
    assert!(pids.iter().all(|&p| !pid_alive(p)), "an engine process outlived stop");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A wasmpar program path that is not there is a clear error, before anything runs.
#[test]
fn missing_program_is_a_clear_error() {
    let dir = temp_dir("launch-missing");
    let l = launch(&dir, dir.join("no-such-wasmpar"), 1, 1);
    match Launcher::Local(LocalLauncher::default()).start(&l) {
        Err(e @ LaunchError::ToolMissing { .. }) => {
            assert!(e.to_string().contains("no-such-wasmpar"), "{e}")
        }
        other => panic!("expected ToolMissing, got {other:?}"),
    }
    let sl = SlurmLauncher { sbatch: dir.join("sbatch"), ..SlurmLauncher::default() };
    match Launcher::Slurm(sl).start(&l) {
        Err(e @ LaunchError::ToolMissing { .. }) => {
            assert!(e.to_string().contains("sbatch") && e.to_string().contains("slurm-client"), "{e}")
        }
        other => panic!("expected ToolMissing, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One Slurm job of `srun` tasks: visible in squeue with the name given by a
/// `--slurm-arg`, each task running the engine command line with the token
/// from the environment; `stop` scancels it and every task process goes.
#[test]
#[ignore = "needs Slurm: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn slurm_job_runs_engines_and_scancel_stops_them() {
    require_slurm();
    let dir = temp_dir("launch-slurm");
    let program = stand_in(&dir);
    let l = launch(&dir, program, 4, 2);
    let job_name = format!("wasmpar-test-{}", std::process::id());
    let sl = SlurmLauncher::with_args(vec![format!("--job-name={job_name}"), "--time=10".into()]);
    let mut handle = Launcher::Slurm(sl).start(&l).expect("sbatch");
    let job = handle.job_id().expect("a job id").to_string();
    let outs = outputs(&dir, 2, Duration::from_secs(60));
    assert_eq!(outs.len(), 2, "two srun tasks of two engines; job log: {}", job_log(&dir, &job));
    assert_eq!(squeue(&["-h", "-j", &job, "-o", "%T %j"]), format!("RUNNING {job_name}"));
    assert_eq!(handle.state().expect("state"), LaunchState::Running);
    let mut pids = Vec::new();
    for o in &outs {
        assert_eq!(field(o, "argv"), "engine --connect http://127.0.0.1:9 -n 2 --label site=ci", "{o}");
        assert_eq!(field(o, "token"), TOKEN, "{o}");
        assert_eq!(field(o, "job"), job, "{o}");
        assert!(!field(o, "cmdline").contains(TOKEN), "{o}");
        pids.push(field(o, "pid").parse::<i32>().expect("pid"));
    }
    assert!(pids.iter().all(|&p| pid_alive(p)));
    // The batch script Slurm keeps has no token either.
    let script = Command::new("scontrol").args(["write", "batch_script", &job, "-"]).output().expect("scontrol");
    let script = String::from_utf8_lossy(&script.stdout);
    assert!(script.contains("srun --kill-on-bad-exit=0"), "{script}");
    assert!(!script.contains(TOKEN), "{script}");

    let t = Instant::now();
    handle.stop().expect("scancel");
    assert_eq!(handle.state().expect("state"), LaunchState::Finished);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pids.iter().all(|&p| !pid_alive(p)), "an engine outlived scancel");
    let state = squeue(&["-h", "-j", &job, "-t", "all", "-o", "%T"]);
    assert!(state.is_empty() || state == "CANCELLED", "squeue says {state:?}");
    eprintln!("scancel to every task gone: {:?}", t.elapsed());
    handle.stop().expect("a second stop is a no-op");
    let _ = std::fs::remove_dir_all(&dir);
}

/// sbatch's refusal comes back as an error carrying sbatch's own words.
#[test]
#[ignore = "needs Slurm: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn slurm_rejection_is_a_clear_error() {
    require_slurm();
    let dir = temp_dir("launch-slurm-bad");
    let l = launch(&dir, stand_in(&dir), 1, 1);
    let sl = SlurmLauncher::with_args(vec!["--partition=no-such-partition".into()]);
    match Launcher::Slurm(sl).start(&l) {
        Err(e @ LaunchError::ToolFailed { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("sbatch") && msg.to_lowercase().contains("partition"), "{msg}");
        }
        other => panic!("expected ToolFailed, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A job dropped without stop is cancelled too (the handle owns the job);
/// a detached one is not, and its record cancels it from "another process".
#[test]
#[ignore = "needs Slurm: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn slurm_handles_own_their_job_until_detached() {
    require_slurm();
    let dir = temp_dir("launch-slurm-drop");
    let l = launch(&dir, stand_in(&dir), 1, 1);
    let handle = Launcher::Slurm(SlurmLauncher::default()).start(&l).expect("sbatch");
    let job = handle.job_id().expect("job id").to_string();
    drop(handle);
    let state = squeue(&["-h", "-j", &job, "-t", "all", "-o", "%T"]);
    assert!(state.is_empty() || state == "CANCELLED", "after drop: {state:?}");

    let handle = Launcher::Slurm(SlurmLauncher::default()).start(&l).expect("sbatch");
    let record = handle.detach();
    let text = serde_json::to_string(&record).expect("record to json");
    let mut again = wasmpar::launcher::LaunchHandle::from_record(serde_json::from_str(&text).expect("record from json"));
    let job = again.job_id().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while again.state().expect("state") != LaunchState::Running && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(again.state().expect("state"), LaunchState::Running, "the detached job keeps running");
    again.stop().expect("scancel from the record");
    let state = squeue(&["-h", "-j", &job, "-t", "all", "-o", "%T"]);
    assert!(state.is_empty() || state == "CANCELLED", "after stop from record: {state:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ssh_config of `scripts/cluster/sshd.sh` (sshd in namespaces h1, h2).
fn require_ssh_hosts() -> PathBuf {
    let config = PathBuf::from(std::env::var("WASMPAR_SSH_CONFIG").unwrap_or_default());
    assert!(
        config.is_file(),
        "WASMPAR_SSH_CONFIG={config:?} is not a file: run scripts/cluster/netns.sh up 2 and scripts/cluster/sshd.sh up 2 (scripts/test.d/40-cluster.sh does)"
    );
    config
}

fn wait_gone(pids: &[i32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while pids.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    pids.iter().all(|&p| !pid_alive(p))
}

/// SSH to two "hosts" (sshd in network namespaces h1, h2): one process per
/// host with that host's count, running in that host's network (its own
/// address), the token from ssh's stdin in the environment and on no
/// command line — local ssh, remote shell or engine. Killing one ssh client
/// outright (as if the controller died) stops that host's engine; `stop`
/// stops the rest.
#[test]
#[ignore = "needs sshd in network namespaces: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn ssh_engines_run_on_each_host_and_die_with_their_connection() {
    let config = require_ssh_hosts();
    let dir = temp_dir("launch-ssh");
    let mut l = launch(&dir, stand_in(&dir), 3, 1);
    l.url = "http://10.200.0.1:9".into();
    let ssh = SshLauncher {
        ssh_args: vec!["-F".into(), config.display().to_string()],
        ..SshLauncher::new(parse_hosts("h1:2,h2").expect("hosts"))
    };
    assert_eq!(ssh.total_engines(), 3);
    let mut handle = Launcher::Ssh(ssh).start(&l).expect("ssh start");
    let outs = outputs(&dir, 2, Duration::from_secs(30));
    assert_eq!(outs.len(), 2, "one process per host: {outs:?}; logs: {}", logs(&dir, "ssh-"));
    let by_addr = |a: &str| outs.iter().find(|o| field(o, "addr") == a).unwrap_or_else(|| panic!("no engine at {a}: {outs:?}"));
    let h1 = by_addr("10.200.0.11/24");
    let h2 = by_addr("10.200.0.12/24");
    assert_eq!(field(h1, "argv"), "engine --connect http://10.200.0.1:9 -n 2 --label site=ci");
    assert_eq!(field(h2, "argv"), "engine --connect http://10.200.0.1:9 -n 1 --label site=ci");
    for o in [h1, h2] {
        assert_eq!(field(o, "token"), TOKEN, "{o}");
        assert!(!field(o, "cmdline").contains(TOKEN) && !field(o, "parent").contains(TOKEN), "token on a remote command line: {o}");
        assert!(field(o, "parent").starts_with("sh -c IFS= read -r WASMPAR_TOKEN"), "{o}");
    }
    let LaunchRecord::Processes { groups } = handle.record().clone() else { panic!("ssh launches are processes") };
    assert_eq!(groups.len(), 2);
    for g in &groups {
        let cmdline = std::fs::read(format!("/proc/{g}/cmdline")).expect("local ssh cmdline");
        assert!(!String::from_utf8_lossy(&cmdline).contains(TOKEN), "token on the local ssh command line");
    }
    let pid = |o: &str| field(o, "pid").parse::<i32>().expect("pid");
    assert!(pid_alive(pid(h1)) && pid_alive(pid(h2)));

    // h2's ssh killed outright: its engine goes, h1's stays.
    let h2_ssh = groups[1];
    let status = Command::new("kill").args(["-9", &h2_ssh.to_string()]).status().expect("kill");
    assert!(status.success());
    assert!(wait_gone(&[pid(h2)], Duration::from_secs(15)), "h2's engine outlived its ssh connection");
    assert!(pid_alive(pid(h1)), "h1's engine went with h2's connection");
    assert_eq!(handle.state().expect("state"), LaunchState::Running);

    handle.stop().expect("stop");
    assert!(wait_gone(&[pid(h1)], Duration::from_secs(15)), "h1's engine outlived stop");
    assert_eq!(handle.state().expect("state"), LaunchState::Finished);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A host that refuses the key is an ssh failure in the log, the launch
/// finishes on its own (BatchMode: no password prompt hangs).
#[test]
#[ignore = "needs sshd in network namespaces: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn ssh_without_a_key_fails_fast() {
    let config = require_ssh_hosts();
    let dir = temp_dir("launch-ssh-nokey");
    let l = launch(&dir, stand_in(&dir), 1, 1);
    let ssh = SshLauncher {
        ssh_args: vec![
            "-F".into(),
            config.display().to_string(),
            "-o".into(),
            "IdentityFile=/dev/null".into(),
            "-o".into(),
            "User=nobody".into(),
        ],
        ..SshLauncher::new(parse_hosts("h1").expect("hosts"))
    };
    let mut handle = Launcher::Ssh(ssh).start(&l).expect("ssh starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while handle.state().expect("state") == LaunchState::Running && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(handle.state().expect("state"), LaunchState::Finished, "ssh should give up, not prompt");
    assert!(logs(&dir, "ssh-").contains("Permission denied"), "{}", logs(&dir, "ssh-"));
    assert!(outputs(&dir, 1, Duration::from_millis(10)).is_empty(), "no engine ran");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Open MPI: `mpiexec -n 3` ranks each running the engine command line with
/// the token from mpiexec's environment; stop takes every rank down.
#[test]
#[ignore = "needs Open MPI: ./scripts/test (scripts/setup.d/20-cluster.sh installs it)"]
fn mpi_ranks_run_engines_and_stop_takes_them_down() {
    let dir = temp_dir("launch-mpi");
    let l = launch(&dir, stand_in(&dir), 3, 1);
    // As root (CI), Open MPI wants to be told; 3 ranks may exceed the cores.
    let mpi = MpiLauncher::with_args(vec!["--allow-run-as-root".into(), "--oversubscribe".into()]);
    let mut handle = Launcher::Mpi(mpi).start(&l).expect("mpiexec starts");
    let outs = outputs(&dir, 3, Duration::from_secs(30));
    assert_eq!(outs.len(), 3, "three ranks: {outs:?}; log: {}", logs(&dir, "mpiexec-"));
    let mut ranks: Vec<&str> = outs.iter().map(|o| field(o, "rank")).collect();
    ranks.sort_unstable();
    assert_eq!(ranks, ["0", "1", "2"]);
    let pids: Vec<i32> = outs.iter().map(|o| field(o, "pid").parse().expect("pid")).collect();
    for o in &outs {
        assert_eq!(field(o, "argv"), "engine --connect http://127.0.0.1:9 -n 1 --label site=ci", "{o}");
        assert_eq!(field(o, "token"), TOKEN, "{o}");
        assert!(!field(o, "cmdline").contains(TOKEN) && !field(o, "parent").contains(TOKEN), "{o}");
    }
    assert_eq!(handle.state().expect("state"), LaunchState::Running);
    handle.stop().expect("stop");
    assert!(wait_gone(&pids, Duration::from_secs(15)), "a rank outlived stop");
    assert_eq!(handle.state().expect("state"), LaunchState::Finished);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The texts of the launcher's logs in `dir` whose names start with `prefix`.
fn logs(dir: &Path, prefix: &str) -> String {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn job_log(dir: &Path, job: &str) -> String {
    std::fs::read_to_string(dir.join(format!("wasmpar-engines-{job}.out"))).unwrap_or_else(|e| format!("(no log: {e})"))
}

// ---------------------------------------------------------------------------
// Real engines: `wasmpar engine --connect` processes started by the launchers,
// registering with a controller that `wasmpar start -n 0 --daemon` runs.

const BIN: &str = env!("CARGO_BIN_EXE_wasmpar");

/// A controller with no engines of its own, run by the CLI, stopped on drop.
struct Controller {
    dir: PathBuf,
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Controller {
    fn start(listen: &str) -> Controller {
        let dir = temp_dir("controller");
        let conn = dir.join("cluster.json");
        let mut cmd = Command::new(BIN);
        cmd.args(["start", "-n", "0", "--daemon", "--listen", listen, "--call-timeout", "60"]);
        // Beyond loopback: HTTPS with a self-signed certificate whose
        // fingerprint the connection file carries (engines pin it).
        let tls = listen != "127.0.0.1";
        if tls {
            cmd.arg("--tls");
        }
        let out = cmd
            .arg("--connection-file")
            .arg(&conn)
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .env_remove("WASMPAR_TOKEN")
            .env_remove("WASMPAR_CONNECTION_FILE")
            .output()
            .expect("wasmpar start");
        assert!(out.status.success(), "start: {}", String::from_utf8_lossy(&out.stderr));
        let info = wasmpar::api::connection::read(&conn).expect("connection file");
        assert_eq!(info.url.starts_with("https://"), tls, "{}", info.url);
        // The test's own client skips the certificate check; the engines
        // are the ones that verify it (by the pinned fingerprint).
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .danger_accept_invalid_certs(tls)
            .build()
            .expect("http client");
        Controller { dir, url: info.url, token: info.token, http }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Json>) -> (u16, Json) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, format!("{}{}", self.url, path)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        (status, if text.is_empty() { Json::Null } else { serde_json::from_str(&text).unwrap_or(Json::String(text)) })
    }

    fn engines(&self) -> Vec<Json> {
        let (status, v) = self.call("GET", "/v1/engines", None);
        assert_eq!(status, 200, "{v}");
        v["engines"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `pred` holds for the engine list; returns it.
    fn wait_engines(&self, what: &str, within: Duration, pred: impl Fn(&[Json]) -> bool) -> Vec<Json> {
        let deadline = Instant::now() + within;
        loop {
            let e = self.engines();
            if pred(&e) {
                return e;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {}", Json::Array(e));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn upload_seed(&self) {
        let bytes = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed.wasm (built by build.rs)");
        let resp = self
            .http
            .post(format!("{}/v1/components?name=seed", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .expect("upload");
        assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().unwrap_or_default());
    }

    fn task(&self, mut spec: Json) -> Json {
        spec["block"] = json!(true);
        let (status, v) = self.call("POST", "/v1/tasks", Some(&spec));
        assert_eq!(status, 200, "task {spec}: {v}");
        v
    }

    fn launch(&self, engines: usize, per_process: usize, label: &str) -> EngineLaunch {
        let mut l = EngineLaunch::new(self.url.clone(), engines, BIN, self.dir.join(format!("launch-{label}")));
        l.per_process = per_process;
        l.token = Some(Secret::new(self.token.clone()));
        // Read by engines for the TLS fingerprint (the filesystem is shared
        // by every "host" here, as a cluster's shared filesystem would be).
        l.connection_file = Some(self.dir.join("cluster.json"));
        l.labels = vec![("part".into(), label.into())];
        l
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = Command::new(BIN).arg("stop").arg("--connection-file").arg(self.dir.join("cluster.json")).output();
    }
}

fn live(e: &Json) -> bool {
    e["state"] != "lost"
}

fn with_label<'a>(engines: &'a [Json], part: &str) -> Vec<&'a Json> {
    engines.iter().filter(|e| e["labels"]["part"] == part).collect()
}

fn ids(engines: &[&Json]) -> Vec<u64> {
    engines.iter().filter_map(|e| e["id"].as_u64()).collect()
}

/// Slurm-launched engines (two jobs of two engines each) register with the
/// controller and run a map; one job scancel'ed in the middle of a balanced
/// map loses its engines, the map ends (no hang), and work keeps running on
/// the other job's engines.
#[test]
#[ignore = "needs Slurm: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn slurm_engines_register_run_a_map_and_survive_a_scancel() {
    require_slurm();
    let c = Controller::start("127.0.0.1");
    let mut a = Launcher::Slurm(SlurmLauncher::default()).start(&c.launch(2, 2, "a")).expect("sbatch a");
    let b = Launcher::Slurm(SlurmLauncher::default()).start(&c.launch(2, 2, "b")).expect("sbatch b");
    let engines = c.wait_engines("4 Slurm engines", Duration::from_secs(90), |e| e.iter().filter(|e| live(e)).count() == 4);
    assert!(engines.iter().all(|e| e["kind"] == "remote"), "{engines:?}");
    assert_eq!(with_label(&engines, "a").len(), 2);
    assert_eq!(with_label(&engines, "b").len(), 2);

    c.upload_seed();
    let seq: Vec<i64> = (0..40).collect();
    let t = c.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [seq]}));
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["result"], json!(seq));
    assert_eq!(t["engines"].as_array().map(Vec::len), Some(4), "all four engines took a chunk: {t}");

    // A balanced map of slow calls; job a goes while it runs.
    let (status, t) = c.call(
        "POST",
        "/v1/tasks",
        Some(&json!({"op": "map", "component": "seed", "function": "shout",
        "sequences": [vec![300_000u32; 64]], "targets": "balanced", "chunksize": 1, "block": false})),
    );
    assert_eq!(status, 202, "{t}");
    let id = t["id"].as_str().expect("task id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = Instant::now();
    let at_cancel = loop {
        let (_, t) = c.call("GET", &format!("/v1/tasks/{id}"), None);
        if t["progress"]["done"].as_u64().unwrap_or(0) >= 2 {
            break t;
        }
        assert!(Instant::now() < deadline, "the map made no progress: {t}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let job_a = a.job_id().expect("job id").to_string();
    a.stop().expect("scancel a");
    let (_, after) = c.call("GET", &format!("/v1/tasks/{id}"), None);
    assert_eq!(after["status"], "running", "the map still ran when job a was gone: {}", after["progress"]);
    assert_eq!(at_cancel["status"], "running", "scancel came mid-map: {}", at_cancel["progress"]);
    eprintln!("scancel at {:?} with progress {} of the map", started.elapsed(), at_cancel["progress"]);
    assert!(squeue(&["-h", "-j", &job_a, "-o", "%T"]).is_empty() || squeue(&["-h", "-j", &job_a, "-t", "all", "-o", "%T"]) == "CANCELLED");
    let (_, t) = c.call("GET", &format!("/v1/tasks/{id}?wait=90"), None);
    // Balanced batches that were on job a's engines ran again elsewhere.
    eprintln!("map done {:?} after it started", started.elapsed());
    assert_eq!(t["status"], "done", "error: {} progress: {}", t["error"], t["progress"]);
    assert_eq!(t["result"], json!(vec![300_000u32; 64]));
    let engines = c.wait_engines("job a's engines lost", Duration::from_secs(60), |e| with_label(e, "a").iter().all(|e| !live(e)));
    assert!(with_label(&engines, "b").iter().all(|e| live(e)), "{engines:?}");
    // New work runs on what is left.
    let t = c.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [(0..10).collect::<Vec<i64>>()],
        "targets": "balanced"}));
    assert_eq!(t["status"], "done", "{t}");
    drop(b);
}

/// Engines on two "hosts" — network namespaces h1 and h2 with their own
/// addresses, started over SSH — connect to a controller listening on the
/// bridge address 10.200.0.1 and share a map. Cutting h1's link: its engines
/// are declared lost within the silence bound while a balanced map finishes
/// on h2's; mending it: the same engine process re-attaches with its former
/// ids and its namespace (a pushed global is still there).
#[test]
#[ignore = "needs network namespaces with sshd: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn namespace_hosts_join_over_ssh_and_survive_a_cut_link() {
    let config = require_ssh_hosts();
    let c = Controller::start("10.200.0.1");
    assert!(c.url.starts_with("https://10.200.0.1:"), "{}", c.url);
    let ssh = |host: &str| {
        Launcher::Ssh(SshLauncher {
            ssh_args: vec!["-F".into(), config.display().to_string()],
            ..SshLauncher::new(parse_hosts(&format!("{host}:2")).expect("hosts"))
        })
    };
    let _h1 = ssh("h1").start(&c.launch(2, 2, "h1")).expect("ssh h1");
    let _h2 = ssh("h2").start(&c.launch(2, 2, "h2")).expect("ssh h2");
    let engines = c.wait_engines("2 engines on each host", Duration::from_secs(60), |e| {
        with_label(e, "h1").iter().filter(|e| live(e)).count() == 2 && with_label(e, "h2").iter().filter(|e| live(e)).count() == 2
    });
    let h1 = ids(&with_label(&engines, "h1"));
    let h2 = ids(&with_label(&engines, "h2"));

    c.upload_seed();
    let seq: Vec<i64> = (0..20).collect();
    let t = c.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [seq]}));
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["result"], json!(seq));
    let (status, v) = c.call("PUT", "/v1/namespace", Some(&json!({"targets": "all", "values": {"kept": 7}})));
    assert_eq!(status, 200, "{v}");

    let cut = CutLink::cut(1);
    let t0 = Instant::now();
    let engines = c.wait_engines("h1's engines lost", Duration::from_secs(20), |e| with_label(e, "h1").iter().all(|e| !live(e)));
    eprintln!("h1 declared lost {:?} after the cut", t0.elapsed());
    assert!(with_label(&engines, "h2").iter().all(|e| live(e)), "{engines:?}");
    let t = c.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [seq], "targets": "balanced"}));
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["result"], json!(seq));
    let used: Vec<u64> = t["engines"].as_array().map(|a| a.iter().filter_map(Json::as_u64).collect()).unwrap_or_default();
    assert!(!used.is_empty() && used.iter().all(|id| h2.contains(id)), "only h2's engines {h2:?} ran it: {used:?}");

    cut.mend();
    let engines = c.wait_engines("h1's engines back", Duration::from_secs(30), |e| with_label(e, "h1").iter().all(|e| live(e)));
    assert_eq!(ids(&with_label(&engines, "h1")), h1, "the same process gets its former ids back");
    let (status, v) = c.call("GET", &format!("/v1/namespace?targets={}&names=kept", h1[0]), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["values"][0]["kept"], 7, "h1's namespace survived the cut: {v}");
}

/// Host hK's link, down until mended (or dropped: a failing test leaves no
/// host cut off).
struct CutLink {
    host: u32,
    mended: bool,
}

impl CutLink {
    fn netns(args: &[&str]) -> bool {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster/netns.sh");
        Command::new("bash").arg(script).args(args).status().map(|s| s.success()).unwrap_or(false)
    }

    fn cut(host: u32) -> CutLink {
        assert!(CutLink::netns(&["cut", &host.to_string()]), "netns.sh cut {host}");
        CutLink { host, mended: false }
    }

    fn mend(mut self) {
        self.mended = true;
        assert!(CutLink::netns(&["mend", &self.host.to_string()]), "netns.sh mend {}", self.host);
    }
}

impl Drop for CutLink {
    fn drop(&mut self) {
        if !self.mended {
            CutLink::netns(&["mend", &self.host.to_string()]);
        }
    }
}

/// Several engine processes on loopback, from the local launcher: three
/// processes of two engines each register (six engines, three pids), a map
/// spreads over all six, and `stop` takes them away — the controller marks
/// them lost at once (their sockets close), not after the silence bound.
#[test]
fn local_engine_processes_on_loopback_join_and_leave() {
    let c = Controller::start("127.0.0.1");
    let mut h = Launcher::Local(LocalLauncher::default()).start(&c.launch(6, 2, "lo")).expect("local launch");
    let engines = c.wait_engines("six engines", Duration::from_secs(60), |e| e.iter().filter(|e| live(e)).count() == 6);
    let mut pids: Vec<u64> = engines.iter().filter_map(|e| e["pid"].as_u64()).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "three processes: {engines:?}");
    assert!(engines.iter().all(|e| e["kind"] == "remote" && e["labels"]["part"] == "lo"), "{engines:?}");

    c.upload_seed();
    let seq: Vec<i64> = (0..60).collect();
    let t = c.task(json!({"op": "map", "component": "seed", "function": "identity", "sequences": [seq]}));
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["result"], json!(seq));
    assert_eq!(t["engines"].as_array().map(Vec::len), Some(6), "{t}");

    let t0 = Instant::now();
    h.stop().expect("stop");
    c.wait_engines("all six lost", Duration::from_secs(3), |e| e.iter().all(|e| !live(e)));
    eprintln!("engines lost {:?} after stop began", t0.elapsed());
}

/// The whole command: `wasmpar start --engines slurm -n 4 --per-process 2
/// --daemon` submits one job of two `wasmpar engine -n 2` tasks, `wasmpar
/// engines --wait 4` sees them join, a map runs on them, and `wasmpar stop`
/// stops the controller and scancels the job.
#[test]
#[ignore = "needs Slurm: ./scripts/test (scripts/test.d/40-cluster.sh)"]
fn wasmpar_start_engines_slurm_then_stop_cancels_the_job() {
    require_slurm();
    let dir = temp_dir("cli-slurm");
    let conn = dir.join("cluster.json");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--connection-file")
            .arg(&conn)
            .env_remove("WASMPAR_TOKEN")
            .env_remove("WASMPAR_CONNECTION_FILE")
            .output()
            .expect("run wasmpar");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    // `wasmpar stop` even when an assertion fails half-way.
    struct StopOnDrop(PathBuf);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            let _ = Command::new(BIN).arg("stop").arg("--connection-file").arg(&self.0).output();
        }
    }
    let _guard = StopOnDrop(conn.clone());
    let name = format!("wasmpar-cli-{}", std::process::id());
    let cache = dir.join("cache");
    let (ok, text) = run(&[
        "start",
        "--engines",
        "slurm",
        "-n",
        "4",
        "--per-process",
        "2",
        &format!("--slurm-arg=--job-name={name}"),
        "--daemon",
        "--cache-dir",
        cache.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "start: {text}");
    let (ok, text) = run(&["engines", "--wait", "4", "--timeout", "90"]);
    assert!(ok, "engines --wait 4: {text}");
    assert_eq!(squeue(&["-h", "-n", &name, "-o", "%T"]), "RUNNING", "one job, running");
    let (ok, text) = run(&["upload", wasmpar::examples::SEED_WASM]);
    assert!(ok, "upload: {text}");
    let (ok, text) = run(&["--json", "map", "seed/add3", "range(8)", "range(8)", "range(8)"]);
    assert!(ok, "map: {text}");
    let answer: Json = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("map --json printed no JSON ({e}): {text}"));
    assert_eq!(answer["result"], json!([0, 3, 6, 9, 12, 15, 18, 21]), "{answer}");
    let (ok, text) = run(&["stop"]);
    assert!(ok, "stop: {text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !squeue(&["-h", "-n", &name, "-o", "%T"]).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(squeue(&["-h", "-n", &name, "-o", "%T"]), "", "the job outlived wasmpar stop");
    let _ = std::fs::remove_dir_all(&dir);
}
