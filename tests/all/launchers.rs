//! Launchers against the real systems they drive. The tests marked
//! `#[ignore = "needs Slurm…"]` need the single-node Slurm that
//! `scripts/test.d/40-cluster.sh` starts (`scripts/cluster/slurm.sh up`) and
//! `SLURM_CONF` pointing at it; that suite runs them with `--ignored`.
//!
//! Until `wasmpar engine --connect` exists, the "engine" these launches run
//! is a stand-in shell script that records its argv, its environment's
//! token and its Slurm task id, then stays in the foreground (`exec sleep`)
//! like an engine does: what is checked is everything a launcher is
//! responsible for — the command line the engine gets, the token arriving
//! through the environment and on no command line, the job showing in
//! `squeue`, `scancel` ending every process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
