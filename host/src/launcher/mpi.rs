//! MPI: `mpiexec -n P wasmpar engine …`, one engine process per rank
//! (IPython Parallel's `MPIEngineSetLauncher`); MPI's own launcher places the
//! ranks on the hosts of its hostfile or allocation.
//!
//! Invariants:
//! - The token is in mpiexec's environment only. Hydra (MPICH, Intel MPI)
//!   passes the whole environment to every rank; Open MPI passes it to local
//!   ranks and needs `-x WASMPAR_TOKEN` (the name, not the value) for remote
//!   ones, which is added when the flavour is Open MPI.
//! - mpiexec leads its own process group; stopping the launch signals that
//!   group, and mpiexec tears down its remote ranks itself.
//! - `--mpi-arg`s go after ours and before the program (`--hostfile F`,
//!   `--oversubscribe`, `--allow-run-as-root`…).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process;
use super::tool::find_tool;
use super::{EngineLaunch, LaunchError, LaunchHandle, LaunchRecord, Result, TOKEN_ENV};

/// Which MPI's mpiexec: it decides how the environment reaches remote ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpiFlavor {
    OpenMpi,
    /// MPICH's or Intel MPI's Hydra process manager.
    Hydra,
    Unknown,
}

impl MpiFlavor {
    /// From `mpiexec --version`'s output.
    pub fn from_version(text: &str) -> MpiFlavor {
        if text.contains("Open MPI") || text.contains("OpenRTE") || text.contains("Open RTE") {
            MpiFlavor::OpenMpi
        } else if text.contains("HYDRA") || text.contains("Hydra") || text.contains("MPICH") || text.contains("Intel(R) MPI") {
            MpiFlavor::Hydra
        } else {
            MpiFlavor::Unknown
        }
    }
}

#[derive(Debug, Clone)]
pub struct MpiLauncher {
    pub mpiexec: PathBuf,
    /// Extra mpiexec options (`--mpi-arg`).
    pub args: Vec<String>,
    /// Detected from `mpiexec --version` when `None`.
    pub flavor: Option<MpiFlavor>,
}

impl Default for MpiLauncher {
    fn default() -> MpiLauncher {
        MpiLauncher { mpiexec: "mpiexec".into(), args: Vec::new(), flavor: None }
    }
}

impl MpiLauncher {
    pub fn with_args(args: Vec<String>) -> MpiLauncher {
        MpiLauncher { args, ..MpiLauncher::default() }
    }

    /// `mpiexec -n P [-x WASMPAR_TOKEN] [--mpi-arg]… PROGRAM engine …`.
    pub fn command(&self, mpiexec: &Path, flavor: MpiFlavor, launch: &EngineLaunch) -> Command {
        let mut cmd = Command::new(mpiexec);
        cmd.arg("-n").arg(launch.processes().to_string());
        if flavor == MpiFlavor::OpenMpi && launch.token.is_some() {
            cmd.args(["-x", TOKEN_ENV]);
        }
        cmd.args(&self.args);
        cmd.arg(&launch.program);
        cmd.args(launch.engine_args());
        cmd
    }

    fn detect(&self, mpiexec: &Path) -> MpiFlavor {
        if let Some(f) = self.flavor {
            return f;
        }
        let text = Command::new(mpiexec)
            .arg("--version")
            .output()
            .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
            .unwrap_or_default();
        let flavor = MpiFlavor::from_version(&text);
        tracing::debug!(?flavor, "mpiexec flavour");
        flavor
    }

    pub fn start(&self, launch: &EngineLaunch) -> Result<LaunchHandle> {
        launch.validate()?;
        let mpiexec = find_tool(&self.mpiexec)?;
        let flavor = self.detect(&mpiexec);
        std::fs::create_dir_all(&launch.work_dir).map_err(|source| LaunchError::File {
            what: "cannot create work directory",
            path: launch.work_dir.display().to_string(),
            source,
        })?;
        let mut cmd = self.command(&mpiexec, flavor, launch);
        if let Some(t) = &launch.token {
            cmd.env(TOKEN_ENV, t.expose());
        }
        let log = launch.work_dir.join(format!("mpiexec-{}.log", uuid::Uuid::new_v4().simple()));
        let spawned = process::spawn(cmd, "mpiexec", &log, None)?;
        let groups = vec![spawned.group()];
        Ok(LaunchHandle::new(LaunchRecord::Processes { groups }, vec![spawned]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::Secret;

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn mpiexec_command_lines() {
        let mut l = EngineLaunch::new("http://head:7000", 8, "/shared/wasmpar", "/tmp/w");
        l.per_process = 2;
        l.token = Some(Secret::new("tok"));
        let m = MpiLauncher::with_args(vec!["--hostfile".into(), "hosts".into()]);
        let open = m.command(Path::new("mpiexec"), MpiFlavor::OpenMpi, &l);
        assert_eq!(
            args(&open),
            [
                "-n",
                "4",
                "-x",
                "WASMPAR_TOKEN",
                "--hostfile",
                "hosts",
                "/shared/wasmpar",
                "engine",
                "--connect",
                "http://head:7000",
                "-n",
                "2"
            ]
        );
        let hydra = m.command(Path::new("mpiexec"), MpiFlavor::Hydra, &l);
        assert_eq!(args(&hydra)[..4], ["-n", "4", "--hostfile", "hosts"]);
        assert!(!args(&open).iter().chain(args(&hydra).iter()).any(|a| a.contains("tok") && a != "WASMPAR_TOKEN"));
    }

    #[test]
    fn flavours_from_version_text() {
        assert_eq!(
            MpiFlavor::from_version("mpiexec (OpenRTE) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/"),
            MpiFlavor::OpenMpi
        );
        assert_eq!(MpiFlavor::from_version("mpiexec (Open MPI) 5.0.3"), MpiFlavor::OpenMpi);
        assert_eq!(MpiFlavor::from_version("HYDRA build details:\n    Version:  4.0.2"), MpiFlavor::Hydra);
        assert_eq!(MpiFlavor::from_version("something else"), MpiFlavor::Unknown);
    }

    #[test]
    fn missing_mpiexec_is_a_clear_error() {
        let mut l = EngineLaunch::new("http://head:7000", 2, "/shared/wasmpar", "/tmp/w");
        l.token = Some(Secret::new("tok"));
        let m = MpiLauncher { mpiexec: "/nonexistent/bin/mpiexec".into(), ..MpiLauncher::default() };
        match m.start(&l) {
            Err(e @ LaunchError::ToolMissing { .. }) => {
                assert!(e.to_string().contains("openmpi-bin"), "{e}")
            }
            other => panic!("expected ToolMissing, got {other:?}"),
        }
    }
}
