//! Launchers: start `wasmpar engine --connect URL` processes through a system
//! that already runs programs on many hosts — plain local processes, Slurm,
//! MPI or SSH — in the style of IPython Parallel's launchers. A launcher
//! builds a command line, runs it, and can stop what it started; it never
//! schedules work and never talks to the controller.
//!
//! Invariants:
//! - The API token never appears on a command line: not ours, not the cluster
//!   tool's, not a remote shell's (argv is visible to every user of a host).
//!   It travels in the environment (`WASMPAR_TOKEN`), on ssh's stdin, or in a
//!   connection file the engine reads.
//! - Every command is built by a pure function returning a
//!   `std::process::Command` (or the batch script's text), so unit tests can
//!   read exactly what would run; `start` only adds the environment and runs it.
//! - A missing tool (`sbatch`, `mpiexec`, `ssh`) is found by a PATH lookup
//!   before anything is started: [`LaunchError::ToolMissing`].
//! - A [`LaunchHandle`] owns what it started: dropping it stops it (unless
//!   [`LaunchHandle::detach`]ed), `stop` is idempotent, and stopping something
//!   that already ended is not an error. Process launchers put each child in
//!   its own process group and stop the whole group (TERM, then KILL after
//!   [`STOP_GRACE`]).
//! - What is needed to stop a launch from another process is a
//!   [`LaunchRecord`] (serde), e.g. kept beside the connection file.

mod error;
mod local;
mod mpi;
mod process;
mod shell;
mod slurm;
mod ssh;
mod tool;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{LaunchError, Result};
pub use local::LocalLauncher;
pub use mpi::{MpiFlavor, MpiLauncher};
pub use slurm::SlurmLauncher;
pub use ssh::{parse_hosts, HostSpec, SshLauncher};
pub use tool::find_tool;

/// The environment variable engines read their token from.
pub const TOKEN_ENV: &str = "WASMPAR_TOKEN";

/// How long a stopped process group gets between SIGTERM and SIGKILL.
/// Engines only need to close a socket; 5 s covers a loaded machine.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A secret that never prints itself (`Debug` and `Display` show `***`), so a
/// launch can be logged with `tracing` whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What to start: `processes() × per_process` engines connecting to `url`.
#[derive(Debug, Clone)]
pub struct EngineLaunch {
    /// The controller's URL as the engines will reach it (not necessarily
    /// 127.0.0.1: a batch node dials the login node's address).
    pub url: String,
    /// Passed to engines in `WASMPAR_TOKEN` (or on ssh's stdin), never on argv.
    pub token: Option<Secret>,
    /// A connection file readable on the engine hosts (a shared filesystem),
    /// passed as `--connection-file`; holds the token, mode 0600.
    pub connection_file: Option<PathBuf>,
    /// Engines in total.
    pub engines: usize,
    /// Engines hosted by one `wasmpar engine` process (`-n K`).
    pub per_process: usize,
    /// `--label k=v` for every engine (e.g. `partition=gpu`).
    pub labels: Vec<(String, String)>,
    /// Appended to every `wasmpar engine` command line.
    pub extra_args: Vec<String>,
    /// The wasmpar binary as the engine hosts see it (an absolute path on a
    /// shared filesystem, or `wasmpar` found on the remote PATH).
    pub program: PathBuf,
    /// Where batch scripts and logs go (created if missing).
    pub work_dir: PathBuf,
}

impl EngineLaunch {
    /// A launch of `engines` single-engine processes; set the other fields as needed.
    pub fn new(url: impl Into<String>, engines: usize, program: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> EngineLaunch {
        EngineLaunch {
            url: url.into(),
            token: None,
            connection_file: None,
            engines,
            per_process: 1,
            labels: Vec::new(),
            extra_args: Vec::new(),
            program: program.into(),
            work_dir: work_dir.into(),
        }
    }

    /// Number of `wasmpar engine` processes (`engines / per_process`).
    pub fn processes(&self) -> usize {
        self.engines / self.per_process.max(1)
    }

    /// Checks what every launcher relies on; each error says how to fix it.
    pub fn validate(&self) -> Result<()> {
        let scheme_ok = ["http://", "https://", "ws://", "wss://"].iter().any(|s| self.url.starts_with(s));
        if !scheme_ok || self.url.len() < 8 || self.url.chars().any(char::is_whitespace) {
            return Err(LaunchError::Invalid(format!(
                "controller URL {:?} must be http://, https://, ws:// or wss:// with a host, without spaces",
                self.url
            )));
        }
        if self.engines == 0 {
            return Err(LaunchError::Invalid("at least one engine is needed (-n N with N >= 1)".into()));
        }
        if self.per_process == 0 {
            return Err(LaunchError::Invalid("engines per process must be at least 1".into()));
        }
        if !self.engines.is_multiple_of(self.per_process) {
            return Err(LaunchError::Invalid(format!(
                "{} engines do not split into processes of {} engines each; use a multiple of {}",
                self.engines, self.per_process, self.per_process
            )));
        }
        if self.token.is_none() && self.connection_file.is_none() {
            return Err(LaunchError::Invalid("engines need credentials: a token (passed as WASMPAR_TOKEN) or a connection file".into()));
        }
        if let Some(t) = &self.token {
            if t.expose().is_empty() || t.expose().contains(['\n', '\r', '\0']) {
                return Err(LaunchError::Invalid("the token is empty or contains a newline or NUL".into()));
            }
        }
        for (k, v) in &self.labels {
            let key_ok = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            if !key_ok || v.contains(['\n', '\0']) {
                return Err(LaunchError::Invalid(format!(
                    "label {k:?}={v:?}: keys are letters, digits and . _ - /; values have no newline"
                )));
            }
        }
        if self.program.as_os_str().is_empty() {
            return Err(LaunchError::Invalid("the wasmpar program path is empty".into()));
        }
        let paths = [Some(&self.program), self.connection_file.as_ref(), Some(&self.work_dir)];
        if let Some(p) = paths.into_iter().flatten().find(|p| p.to_str().is_none()) {
            return Err(LaunchError::Invalid(format!("path {} is not UTF-8; scripts cannot carry it", p.display())));
        }
        Ok(())
    }

    /// `engine --connect URL -n K [--connection-file F] [--label k=v]… [extra]…`:
    /// the arguments after the program, the same for every launcher.
    pub fn engine_args(&self) -> Vec<OsString> {
        self.engine_args_with(self.per_process)
    }

    /// As [`engine_args`](Self::engine_args) with `-n count` (SSH gives each host its own count).
    pub fn engine_args_with(&self, count: usize) -> Vec<OsString> {
        let mut a: Vec<OsString> =
            vec!["engine".into(), "--connect".into(), self.url.clone().into(), "-n".into(), count.to_string().into()];
        if let Some(f) = &self.connection_file {
            a.push("--connection-file".into());
            a.push(f.clone().into_os_string());
        }
        for (k, v) in &self.labels {
            a.push("--label".into());
            a.push(format!("{k}={v}").into());
        }
        a.extend(self.extra_args.iter().map(OsString::from));
        a
    }
}

/// Whether what a launch started is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaunchState {
    /// Submitted but not running yet (a Slurm job waiting for nodes).
    Pending,
    Running,
    /// Ended, cancelled or stopped.
    Finished,
}

/// What is needed to check or stop a launch, also from another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "launcher", rename_all = "lowercase")]
pub enum LaunchRecord {
    /// Local, MPI and SSH launches: process groups led by these pids.
    Processes { groups: Vec<i32> },
    /// A Slurm batch job.
    Slurm { job_id: String, scancel: PathBuf, squeue: PathBuf },
}

/// `wasmpar start --engines local|slurm|mpi|ssh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LauncherKind {
    Local,
    Slurm,
    Mpi,
    Ssh,
}

impl std::str::FromStr for LauncherKind {
    type Err = LaunchError;
    fn from_str(s: &str) -> Result<LauncherKind> {
        match s {
            "local" => Ok(LauncherKind::Local),
            "slurm" => Ok(LauncherKind::Slurm),
            "mpi" => Ok(LauncherKind::Mpi),
            "ssh" => Ok(LauncherKind::Ssh),
            _ => Err(LaunchError::Invalid(format!("unknown engine launcher {s:?}: use local, slurm, mpi or ssh"))),
        }
    }
}

/// The launcher-specific command-line options (`--slurm-arg`, `--mpi-arg`,
/// `--ssh-arg`, `--hosts`), checked against the launcher they belong to.
#[derive(Debug, Clone, Default)]
pub struct LauncherOptions {
    pub slurm_args: Vec<String>,
    pub mpi_args: Vec<String>,
    pub ssh_args: Vec<String>,
    /// `h1,h2:4` for SSH.
    pub hosts: Option<String>,
}

/// The launchers, chosen by `wasmpar start --engines local|slurm|mpi|ssh`.
#[derive(Debug, Clone)]
pub enum Launcher {
    Local(LocalLauncher),
    Slurm(SlurmLauncher),
    Mpi(MpiLauncher),
    Ssh(SshLauncher),
}

impl Launcher {
    /// The launcher of `kind` with its options; an option meant for another
    /// launcher is an error rather than silently ignored.
    pub fn new(kind: LauncherKind, options: &LauncherOptions) -> Result<Launcher> {
        let misplaced = |flag: &str, owner: &str| Err(LaunchError::Invalid(format!("{flag} is only for --engines {owner}")));
        if kind != LauncherKind::Slurm && !options.slurm_args.is_empty() {
            return misplaced("--slurm-arg", "slurm");
        }
        if kind != LauncherKind::Mpi && !options.mpi_args.is_empty() {
            return misplaced("--mpi-arg", "mpi");
        }
        if kind != LauncherKind::Ssh && !options.ssh_args.is_empty() {
            return misplaced("--ssh-arg", "ssh");
        }
        if kind != LauncherKind::Ssh && options.hosts.is_some() {
            return misplaced("--hosts", "ssh");
        }
        Ok(match kind {
            LauncherKind::Local => Launcher::Local(LocalLauncher::default()),
            LauncherKind::Slurm => Launcher::Slurm(SlurmLauncher::with_args(options.slurm_args.clone())),
            LauncherKind::Mpi => Launcher::Mpi(MpiLauncher::with_args(options.mpi_args.clone())),
            LauncherKind::Ssh => {
                let spec = options.hosts.as_deref().ok_or_else(|| LaunchError::Invalid("--engines ssh needs --hosts h1,h2:4".into()))?;
                Launcher::Ssh(SshLauncher { ssh_args: options.ssh_args.clone(), ..SshLauncher::new(parse_hosts(spec)?) })
            }
        })
    }

    /// Engines the launcher itself implies (the SSH host list), for `-n` when
    /// it was not given.
    pub fn implied_engines(&self) -> Option<usize> {
        match self {
            Launcher::Ssh(s) => Some(s.total_engines()),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Launcher::Local(_) => "local",
            Launcher::Slurm(_) => "slurm",
            Launcher::Mpi(_) => "mpi",
            Launcher::Ssh(_) => "ssh",
        }
    }

    /// Starts the engines; returns once the cluster tool accepted them (the
    /// job is submitted, the processes are spawned), not once they registered.
    pub fn start(&self, launch: &EngineLaunch) -> Result<LaunchHandle> {
        let handle = match self {
            Launcher::Local(l) => l.start(launch)?,
            Launcher::Slurm(l) => l.start(launch)?,
            Launcher::Mpi(l) => l.start(launch)?,
            Launcher::Ssh(l) => l.start(launch)?,
        };
        tracing::info!(launcher = self.name(), record = ?handle.record(), engines = launch.engines, url = %launch.url, "engines launched");
        Ok(handle)
    }
}

/// What a launch started; stops it when dropped unless detached.
pub struct LaunchHandle {
    record: LaunchRecord,
    /// Spawned children, reaped on stop (empty for Slurm or a handle rebuilt
    /// from a record).
    children: Vec<process::Spawned>,
    stopped: bool,
    detached: bool,
}

impl fmt::Debug for LaunchHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchHandle").field("record", &self.record).field("stopped", &self.stopped).finish()
    }
}

impl LaunchRecord {
    /// Writes the record as JSON (mode 0600), e.g. beside the connection file,
    /// so `wasmpar stop` can stop engines even if the controller died.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| LaunchError::File { what: "cannot write launch record", path: path.display().to_string(), source };
        let text = serde_json::to_vec_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(err)?;
        f.write_all(&text).map_err(err)
    }

    pub fn load(path: &std::path::Path) -> Result<LaunchRecord> {
        let err = |source| LaunchError::File { what: "cannot read launch record", path: path.display().to_string(), source };
        let text = std::fs::read(path).map_err(err)?;
        serde_json::from_slice(&text).map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

impl LaunchHandle {
    fn new(record: LaunchRecord, children: Vec<process::Spawned>) -> LaunchHandle {
        LaunchHandle { record, children, stopped: false, detached: false }
    }

    /// A handle for a launch started by another process (e.g. `wasmpar stop`).
    pub fn from_record(record: LaunchRecord) -> LaunchHandle {
        LaunchHandle::new(record, Vec::new())
    }

    pub fn record(&self) -> &LaunchRecord {
        &self.record
    }

    /// The Slurm job id, for a Slurm launch.
    pub fn job_id(&self) -> Option<&str> {
        match &self.record {
            LaunchRecord::Slurm { job_id, .. } => Some(job_id),
            LaunchRecord::Processes { .. } => None,
        }
    }

    /// Keep what was started running after this handle is dropped; the record
    /// is what stops it later.
    pub fn detach(mut self) -> LaunchRecord {
        self.detached = true;
        self.record.clone()
    }

    /// Running while any process (group) or the job is still there.
    pub fn state(&mut self) -> Result<LaunchState> {
        match &self.record {
            LaunchRecord::Slurm { job_id, squeue, .. } => slurm::job_state(squeue, job_id),
            LaunchRecord::Processes { groups } => Ok(process::groups_state(&mut self.children, groups)),
        }
    }

    /// Stops everything the launch started and waits for it to go (Slurm:
    /// `scancel`, then until `squeue` no longer lists the job or [`STOP_GRACE`]
    /// × 4 passed). Calling it again does nothing.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        match &self.record {
            LaunchRecord::Slurm { job_id, scancel, squeue } => slurm::cancel(scancel, squeue, job_id)?,
            LaunchRecord::Processes { groups } => process::stop_groups(&mut self.children, groups),
        }
        self.stopped = true;
        tracing::info!(record = ?self.record, "engines stopped");
        Ok(())
    }
}

impl Drop for LaunchHandle {
    fn drop(&mut self) {
        if self.detached || self.stopped {
            return;
        }
        if let Err(e) = self.stop() {
            tracing::warn!(record = ?self.record, error = %e, "stopping engines on drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> EngineLaunch {
        let mut l = EngineLaunch::new("http://10.0.0.1:8080", 4, "/opt/wasmpar", "/tmp/w");
        l.token = Some(Secret::new("s3cret"));
        l
    }

    #[test]
    fn engine_args_carry_everything_but_the_token() {
        let mut l = launch();
        l.per_process = 2;
        l.connection_file = Some("/shared/cluster.json".into());
        l.labels = vec![("rack".into(), "a1".into())];
        l.extra_args = vec!["--memory-mib".into(), "512".into()];
        let args: Vec<String> = l.engine_args().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "engine",
                "--connect",
                "http://10.0.0.1:8080",
                "-n",
                "2",
                "--connection-file",
                "/shared/cluster.json",
                "--label",
                "rack=a1",
                "--memory-mib",
                "512"
            ]
        );
        assert!(!args.iter().any(|a| a.contains("s3cret")));
        assert_eq!(l.processes(), 2);
    }

    #[test]
    fn secrets_do_not_print() {
        let l = launch();
        let shown = format!("{l:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn bad_launches_are_clear_errors() {
        type Tweak = Box<dyn Fn(&mut EngineLaunch)>;
        let cases: Vec<(Tweak, &str)> = vec![
            (Box::new(|l| l.url = "10.0.0.1:8080".into()), "must be http"),
            (Box::new(|l| l.url = "http://a b".into()), "without spaces"),
            (Box::new(|l| l.engines = 0), "at least one engine"),
            (Box::new(|l| l.per_process = 0), "at least 1"),
            (Box::new(|l| l.per_process = 3), "multiple of 3"),
            (Box::new(|l| l.token = None), "need credentials"),
            (Box::new(|l| l.token = Some(Secret::new("a\nb"))), "newline"),
            (Box::new(|l| l.labels = vec![("".into(), "x".into())]), "label"),
            (Box::new(|l| l.labels = vec![("a=b".into(), "x".into())]), "label"),
            (Box::new(|l| l.program = PathBuf::new()), "program path is empty"),
        ];
        for (tweak, want) in cases {
            let mut l = launch();
            tweak(&mut l);
            match l.validate() {
                Err(LaunchError::Invalid(msg)) => {
                    assert!(msg.contains(want), "{msg:?} lacks {want:?}")
                }
                other => panic!("expected Invalid containing {want:?}, got {other:?}"),
            }
        }
        assert!(launch().validate().is_ok());
        let mut only_file = launch();
        only_file.token = None;
        only_file.connection_file = Some("/shared/c.json".into());
        assert!(only_file.validate().is_ok());
    }

    #[test]
    fn launchers_from_kind_and_options() {
        let kind = |s: &str| s.parse::<LauncherKind>();
        assert_eq!(kind("slurm").ok(), Some(LauncherKind::Slurm));
        assert!(matches!(kind("pbs"), Err(LaunchError::Invalid(m)) if m.contains("local, slurm, mpi or ssh")));
        let opts = LauncherOptions { slurm_args: vec!["--partition=x".into()], ..LauncherOptions::default() };
        assert!(matches!(Launcher::new(LauncherKind::Slurm, &opts), Ok(Launcher::Slurm(s)) if s.args == ["--partition=x"]));
        assert!(
            matches!(Launcher::new(LauncherKind::Mpi, &opts), Err(LaunchError::Invalid(m)) if m == "--slurm-arg is only for --engines slurm")
        );
        let hosts = LauncherOptions { hosts: Some("h1,h2:4".into()), ..LauncherOptions::default() };
        let ssh = Launcher::new(LauncherKind::Ssh, &hosts);
        assert_eq!(ssh.as_ref().ok().and_then(Launcher::implied_engines), Some(5));
        assert!(matches!(Launcher::new(LauncherKind::Local, &hosts), Err(LaunchError::Invalid(m)) if m.contains("--hosts is only")));
        assert!(
            matches!(Launcher::new(LauncherKind::Ssh, &LauncherOptions::default()), Err(LaunchError::Invalid(m)) if m.contains("needs --hosts"))
        );
        let bad = LauncherOptions { hosts: Some("h1,,h2".into()), ..LauncherOptions::default() };
        assert!(matches!(Launcher::new(LauncherKind::Ssh, &bad), Err(LaunchError::HostList { .. })));
    }

    #[test]
    fn records_save_and_load() {
        let path = std::env::temp_dir().join(format!("wasmpar-record-{}.json", std::process::id()));
        let r = LaunchRecord::Processes { groups: vec![1234, 5678] };
        assert!(r.save(&path).is_ok());
        let mode = std::fs::metadata(&path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert_eq!(LaunchRecord::load(&path).ok(), Some(r));
        std::fs::write(&path, "{not json").unwrap_or_default();
        assert!(matches!(LaunchRecord::load(&path), Err(LaunchError::File { .. })));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = LaunchRecord::Slurm { job_id: "42".into(), scancel: "/usr/bin/scancel".into(), squeue: "/usr/bin/squeue".into() };
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert!(text.contains("\"launcher\":\"slurm\""), "{text}");
        let back: LaunchRecord = serde_json::from_str(&text).unwrap_or(LaunchRecord::Processes { groups: vec![] });
        assert_eq!(back, r);
    }
}
