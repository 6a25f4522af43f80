//! `wasmpar start --engines slurm|mpi|ssh|local -n N`: the controller starts
//! with no engines of its own and hands the starting of N engine processes
//! to the cluster system (`crate::launcher`), as `ipcluster start
//! --engines=Slurm` does. The launch is stopped with the controller, and its
//! record is kept beside the connection file so `wasmpar stop` can stop it
//! even if the controller died.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::launcher::{EngineLaunch, LaunchHandle, LaunchRecord, Launcher, LauncherKind, LauncherOptions, Secret};

#[derive(Args, Debug, Clone, Default)]
pub struct LaunchArgs {
    /// Start the N engines through a cluster system: local, slurm, mpi or ssh
    /// (default: N engine threads in this process).
    #[arg(long = "engines", value_name = "KIND")]
    pub kind: Option<String>,
    /// Engines per `wasmpar engine` process the launcher starts.
    #[arg(long, default_value_t = 1)]
    pub per_process: usize,
    /// The controller's URL as engines reach it (default: the URL it listens on).
    #[arg(long, value_name = "URL")]
    pub engine_url: Option<String>,
    /// Passed to sbatch (repeat): `--slurm-arg=--partition=debug`.
    #[arg(long = "slurm-arg", allow_hyphen_values = true)]
    pub slurm_args: Vec<String>,
    /// Passed to mpiexec (repeat).
    #[arg(long = "mpi-arg", allow_hyphen_values = true)]
    pub mpi_args: Vec<String>,
    /// Passed to ssh (repeat).
    #[arg(long = "ssh-arg", allow_hyphen_values = true)]
    pub ssh_args: Vec<String>,
    /// SSH hosts: `h1,h2:4` (4 engines on h2).
    #[arg(long)]
    pub hosts: Option<String>,
}

impl LaunchArgs {
    /// The launcher asked for, checked before anything starts (a missing
    /// `sbatch` is an error here, not after the controller is up).
    pub fn launcher(&self) -> Result<Option<Launcher>> {
        let Some(kind) = &self.kind else {
            let stray = !self.slurm_args.is_empty() || !self.mpi_args.is_empty() || !self.ssh_args.is_empty() || self.hosts.is_some();
            anyhow::ensure!(!stray, "--slurm-arg, --mpi-arg, --ssh-arg and --hosts go with --engines slurm|mpi|ssh");
            return Ok(None);
        };
        let kind: LauncherKind = kind.parse()?;
        let options = LauncherOptions {
            slurm_args: self.slurm_args.clone(),
            mpi_args: self.mpi_args.clone(),
            ssh_args: self.ssh_args.clone(),
            hosts: self.hosts.clone(),
        };
        Ok(Some(Launcher::new(kind, &options)?))
    }
}

/// Where a launch's record is kept for `wasmpar stop`.
pub fn record_path(connection_file: &Path) -> PathBuf {
    connection_file.with_extension("launch.json")
}

/// Start `engines` engine processes for the controller at `url`.
pub fn launch(launcher: &Launcher, a: &LaunchArgs, url: &str, token: &str, connection_file: &Path, engines: usize) -> Result<LaunchHandle> {
    let program = std::env::current_exe().context("cannot find this program")?;
    let work_dir = connection_file.with_extension("engines");
    let mut l = EngineLaunch::new(a.engine_url.clone().unwrap_or_else(|| url.to_string()), engines, program, work_dir);
    l.token = Some(Secret::new(token));
    l.connection_file = Some(connection_file.to_path_buf());
    l.per_process = a.per_process;
    l.validate()?;
    let handle = launcher.start(&l)?;
    handle.record().save(&record_path(connection_file))?;
    Ok(handle)
}

/// Stop the engines a controller on `connection_file` launched, if any
/// (after the controller itself; a no-op when there is no record).
pub fn stop_launched(connection_file: &Path) -> Result<bool> {
    let path = record_path(connection_file);
    let Ok(record) = LaunchRecord::load(&path) else { return Ok(false) };
    LaunchHandle::from_record(record).stop()?;
    let _ = std::fs::remove_file(&path);
    Ok(true)
}
