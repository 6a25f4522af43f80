//! Slurm: one batch job whose single step is `srun wasmpar engine …`, one
//! task per engine process (IPython Parallel's `SlurmEngineSetLauncher`).
//!
//! Invariants:
//! - One launch is one job: `sbatch --parsable` submits a script written to
//!   the work directory, the job id it prints is kept, `scancel` of that id
//!   stops every engine of the launch.
//! - The token reaches the engines through the environment: sbatch exports its
//!   environment to the job (Slurm's default `--export=ALL`), srun to its
//!   tasks. It is in neither the script nor any argv. (A `--slurm-arg
//!   --export=NONE` would drop it; use a connection file then.)
//! - `--slurm-arg`s go on sbatch's command line, after ours, so they override
//!   the script's `#SBATCH` lines (partition, time, account, nodes…).
//! - The script runs `srun` in the foreground with `exec`: a process that
//!   detaches would escape `scancel` under `proctrack/pgid`.

use std::io::Read;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::shell::{sh_join, sh_quote};
use super::tool::find_tool;
use super::{EngineLaunch, LaunchError, LaunchHandle, LaunchRecord, LaunchState, Result, STOP_GRACE, TOKEN_ENV};

/// How long a Slurm client command may take. With slurmctld down, squeue
/// and scancel retry for minutes; a stop must not hang on them. sbatch gets
/// longer: a busy controller answers submissions slowly.
const QUERY_LIMIT: Duration = Duration::from_secs(30);
const SUBMIT_LIMIT: Duration = Duration::from_secs(120);

/// Runs a Slurm client command, killed after `limit` (then a clear error).
fn run(cmd: &mut Command, tool: &str, limit: Duration) -> Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| LaunchError::Spawn { tool: tool.to_string(), source })?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::ToolFailed {
                    tool: tool.to_string(),
                    status: "timed out".into(),
                    stderr: format!("no answer within {limit:?} (is slurmctld up?)"),
                });
            }
            Err(source) => return Err(LaunchError::Spawn { tool: tool.to_string(), source }),
        }
    };
    Ok(Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

#[derive(Debug, Clone)]
pub struct SlurmLauncher {
    pub sbatch: PathBuf,
    pub scancel: PathBuf,
    pub squeue: PathBuf,
    /// `srun` as the batch node finds it.
    pub srun: String,
    /// Extra sbatch options (`--slurm-arg`), e.g. `--partition=debug`, `--time=2:00:00`.
    pub args: Vec<String>,
    pub job_name: String,
}

impl Default for SlurmLauncher {
    fn default() -> SlurmLauncher {
        SlurmLauncher {
            sbatch: "sbatch".into(),
            scancel: "scancel".into(),
            squeue: "squeue".into(),
            srun: "srun".into(),
            args: Vec::new(),
            job_name: "wasmpar-engines".into(),
        }
    }
}

impl SlurmLauncher {
    pub fn with_args(args: Vec<String>) -> SlurmLauncher {
        SlurmLauncher { args, ..SlurmLauncher::default() }
    }

    /// The batch script: resources as `#SBATCH` lines, then `exec srun` of the engines.
    pub fn batch_script(&self, launch: &EngineLaunch) -> String {
        let mut engine = vec![launch.program.clone().into_os_string()];
        engine.extend(launch.engine_args());
        format!(
            "#!/bin/sh\n\
             # wasmpar engines: {procs} processes x {k} engines, controller {url}\n\
             # (the token arrives in ${TOKEN_ENV} from sbatch's environment, never on argv)\n\
             #SBATCH --job-name={name}\n\
             #SBATCH --ntasks={procs}\n\
             #SBATCH --cpus-per-task={k}\n\
             exec {srun} --kill-on-bad-exit=0 {engine}\n",
            procs = launch.processes(),
            k = launch.per_process,
            url = launch.url,
            name = sh_quote(self.job_name.as_ref()),
            srun = sh_quote(self.srun.as_ref()),
            engine = sh_join(engine),
        )
    }

    /// `sbatch --parsable --output=DIR/wasmpar-engines-%j.out [--slurm-arg]… SCRIPT`.
    pub fn sbatch_command(&self, sbatch: &Path, launch: &EngineLaunch, script: &Path) -> Command {
        let mut cmd = Command::new(sbatch);
        cmd.arg("--parsable");
        cmd.arg(format!("--output={}", launch.work_dir.join(format!("{}-%j.out", self.job_name)).display()));
        cmd.args(&self.args);
        cmd.arg(script);
        cmd
    }

    pub fn start(&self, launch: &EngineLaunch) -> Result<LaunchHandle> {
        launch.validate()?;
        if self.job_name.is_empty() || self.job_name.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(LaunchError::Invalid(format!("Slurm job name {:?} must be one word", self.job_name)));
        }
        let sbatch = find_tool(&self.sbatch)?;
        let scancel = find_tool(&self.scancel)?;
        let squeue = find_tool(&self.squeue)?;
        let script = write_script(&launch.work_dir, &self.job_name, &self.batch_script(launch))?;
        let mut cmd = self.sbatch_command(&sbatch, launch, &script);
        if let Some(t) = &launch.token {
            cmd.env(TOKEN_ENV, t.expose());
        }
        let out = run(&mut cmd, "sbatch", SUBMIT_LIMIT)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(LaunchError::ToolFailed {
                tool: "sbatch".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let job_id = parse_job_id(&stdout).ok_or_else(|| LaunchError::ToolFailed {
            tool: "sbatch".into(),
            status: "no job id".into(),
            stderr: format!("--parsable printed {:?}", stdout.trim()),
        })?;
        tracing::info!(job_id, script = %script.display(), "Slurm job submitted");
        Ok(LaunchHandle::new(LaunchRecord::Slurm { job_id, scancel, squeue }, Vec::new()))
    }
}

fn write_script(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let file_err = |path: &Path, source| LaunchError::File { what: "cannot write batch script", path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let path = dir.join(format!("{name}-{}.sbatch", uuid::Uuid::new_v4().simple()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o700).open(&path).map_err(|e| file_err(&path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| file_err(&path, e))?;
    Ok(path)
}

/// `--parsable` prints `jobid` or `jobid;cluster`.
fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// Maps `squeue -o %T` to a launch state; a job squeue no longer knows is finished.
fn parse_state(text: &str) -> LaunchState {
    match text.split_whitespace().next() {
        None => LaunchState::Finished,
        Some("PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD") => LaunchState::Pending,
        Some("RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "SIGNALING" | "STAGE_OUT" | "RESIZING") => LaunchState::Running,
        Some(_) => LaunchState::Finished,
    }
}

pub(crate) fn job_state(squeue: &Path, job_id: &str) -> Result<LaunchState> {
    let out = run(Command::new(squeue).args(["-h", "-j", job_id, "-o", "%T"]), "squeue", QUERY_LIMIT)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("Invalid job id") {
            return Ok(LaunchState::Finished);
        }
        return Err(LaunchError::ToolFailed { tool: "squeue".into(), status: out.status.to_string(), stderr: stderr.trim().to_string() });
    }
    Ok(parse_state(&String::from_utf8_lossy(&out.stdout)))
}

/// `scancel JOB`, then waits until squeue shows it finished (its processes
/// are gone). A job that already ended is not an error.
pub(crate) fn cancel(scancel: &Path, squeue: &Path, job_id: &str) -> Result<()> {
    let out = run(Command::new(scancel).arg(job_id), "scancel", QUERY_LIMIT)?;
    if !out.status.success() && job_state(squeue, job_id)? != LaunchState::Finished {
        return Err(LaunchError::ToolFailed {
            tool: "scancel".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let deadline = Instant::now() + STOP_GRACE * 4;
    while job_state(squeue, job_id)? != LaunchState::Finished {
        if Instant::now() > deadline {
            tracing::warn!(job_id, "job still listed by squeue after scancel; Slurm will kill it after KillWait");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::Secret;

    fn launch() -> EngineLaunch {
        let mut l = EngineLaunch::new("http://10.200.0.1:7000", 6, "/shared/bin/wasmpar", "/shared/run");
        l.per_process = 2;
        l.token = Some(Secret::new("tok-123"));
        l.labels = vec![("site".into(), "hpc one".into())];
        l
    }

    #[test]
    fn batch_script_runs_srun_of_the_engines() {
        let s = SlurmLauncher::default().batch_script(&launch());
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(s.contains("#SBATCH --ntasks=3\n"), "{s}");
        assert!(s.contains("#SBATCH --cpus-per-task=2\n"), "{s}");
        assert!(s.contains("#SBATCH --job-name=wasmpar-engines\n"), "{s}");
        assert!(
            s.contains(
                "exec srun --kill-on-bad-exit=0 /shared/bin/wasmpar engine --connect http://10.200.0.1:7000 -n 2 --label 'site=hpc one'\n"
            ),
            "{s}"
        );
        assert!(!s.contains("tok-123"), "the token leaked into the script: {s}");
    }

    #[test]
    fn sbatch_command_line_puts_user_args_last() {
        let sl = SlurmLauncher::with_args(vec!["--partition=debug".into(), "--time=1:00:00".into()]);
        let cmd = sl.sbatch_command(Path::new("/usr/bin/sbatch"), &launch(), Path::new("/shared/run/x.sbatch"));
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(cmd.get_program(), "/usr/bin/sbatch");
        assert_eq!(
            args,
            ["--parsable", "--output=/shared/run/wasmpar-engines-%j.out", "--partition=debug", "--time=1:00:00", "/shared/run/x.sbatch"]
        );
    }

    #[test]
    fn job_ids_and_states_parse() {
        assert_eq!(parse_job_id("42\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("42;cluster\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("Submitted batch job 42"), None);
        assert_eq!(parse_job_id(""), None);
        assert_eq!(parse_state("PENDING\n"), LaunchState::Pending);
        assert_eq!(parse_state("RUNNING\n"), LaunchState::Running);
        assert_eq!(parse_state("COMPLETING\n"), LaunchState::Running);
        assert_eq!(parse_state("CANCELLED\n"), LaunchState::Finished);
        assert_eq!(parse_state(""), LaunchState::Finished);
    }

    #[test]
    fn a_hanging_tool_is_killed_at_its_limit() {
        let t = Instant::now();
        match run(Command::new("sleep").arg("30"), "squeue", Duration::from_millis(300)) {
            Err(e @ LaunchError::ToolFailed { .. }) => assert!(e.to_string().contains("is slurmctld up?"), "{e}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let out = match run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]), "sh", Duration::from_secs(10)) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        assert_eq!((out.status.code(), &out.stdout[..], &out.stderr[..]), (Some(3), &b"out\n"[..], &b"err\n"[..]));
    }

    #[test]
    fn missing_sbatch_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("wasmpar-slurm-unit-{}", std::process::id()));
        let mut l = launch();
        l.work_dir = dir.clone();
        let sl = SlurmLauncher { sbatch: "/nonexistent/sbatch".into(), ..SlurmLauncher::default() };
        match sl.start(&l) {
            Err(e @ LaunchError::ToolMissing { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("`/nonexistent/sbatch` not found on PATH") && msg.contains("slurm-client"), "{msg}");
            }
            other => panic!("expected ToolMissing, got {other:?}"),
        }
        assert!(!dir.exists(), "nothing is written before the tools are found");
    }
}
