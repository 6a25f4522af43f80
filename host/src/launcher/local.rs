//! Local: P `wasmpar engine` processes on this host (IPython Parallel's
//! `LocalEngineSetLauncher`), optionally each behind a prefix command such as
//! `nsenter --net=/run/netns/h1` (an engine "on another host" in tests) or
//! `numactl --cpunodebind=1`.
//!
//! Invariants: each process leads its own process group and has the token
//! only in its environment; its output goes to `engine-<launch>-<i>.log` in
//! the work directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process;
use super::tool::find_tool;
use super::{EngineLaunch, LaunchError, LaunchHandle, LaunchRecord, Result, TOKEN_ENV};

#[derive(Debug, Clone, Default)]
pub struct LocalLauncher {
    /// A command each engine process runs under; empty for none.
    pub prefix: Vec<String>,
}

impl LocalLauncher {
    /// The command of one engine process: `[prefix…] PROGRAM engine …`.
    pub fn command(&self, program: &Path, launch: &EngineLaunch) -> Command {
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(launch.engine_args());
        cmd
    }

    pub fn start(&self, launch: &EngineLaunch) -> Result<LaunchHandle> {
        launch.validate()?;
        // The program runs here, so check it as a tool; under a prefix it may
        // be in another mount namespace, so leave it to the prefix then.
        let program: PathBuf = if self.prefix.is_empty() { find_tool(&launch.program)? } else { launch.program.clone() };
        if let Some(first) = self.prefix.first() {
            find_tool(Path::new(first))?;
        }
        std::fs::create_dir_all(&launch.work_dir).map_err(|source| LaunchError::File {
            what: "cannot create work directory",
            path: launch.work_dir.display().to_string(),
            source,
        })?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut children = Vec::with_capacity(launch.processes());
        for i in 0..launch.processes() {
            let mut cmd = self.command(&program, launch);
            if let Some(t) = &launch.token {
                cmd.env(TOKEN_ENV, t.expose());
            }
            let log = launch.work_dir.join(format!("engine-{}-{i}.log", &id[..8]));
            match process::spawn(cmd, "wasmpar engine", &log, None) {
                Ok(s) => children.push(s),
                Err(e) => {
                    let groups: Vec<i32> = children.iter().map(process::Spawned::group).collect();
                    process::stop_groups(&mut children, &groups);
                    return Err(e);
                }
            }
        }
        let groups = children.iter().map(process::Spawned::group).collect();
        Ok(LaunchHandle::new(LaunchRecord::Processes { groups }, children))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::{LaunchState, Secret};

    #[test]
    fn prefix_goes_first() {
        let l = EngineLaunch::new("http://10.200.0.1:7000", 1, "/bin/wasmpar", "/tmp/w");
        let lo = LocalLauncher { prefix: vec!["nsenter".into(), "--net=/run/netns/h1".into()] };
        let cmd = lo.command(Path::new("/bin/wasmpar"), &l);
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(cmd.get_program(), "nsenter");
        assert_eq!(args[..4], ["--net=/run/netns/h1", "/bin/wasmpar", "engine", "--connect"]);
    }

    /// Real processes: a stand-in "engine" (sh) sees the token in its
    /// environment and not in its argv; stop ends every process.
    #[test]
    fn token_in_environment_and_stop_ends_all() {
        let dir = std::env::temp_dir().join(format!("wasmpar-local-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The program is sh, so `sh engine --connect …` runs the script
        // `engine` from the work directory (`env -C` as the prefix).
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let script = "echo \"argv=$*\"; echo \"token=$WASMPAR_TOKEN\"; exec sleep 300\n";
        std::fs::write(dir.join("engine"), script).unwrap_or_default();
        let mut l = EngineLaunch::new("http://127.0.0.1:9", 3, find_tool(Path::new("sh")).unwrap_or_default(), &dir);
        l.token = Some(Secret::new("tok-local"));
        let lo = LocalLauncher { prefix: vec!["env".into(), "-C".into(), dir.display().to_string()] };
        let mut handle = match lo.start(&l) {
            Ok(h) => h,
            Err(e) => panic!("start: {e}"),
        };
        let groups = match handle.record() {
            LaunchRecord::Processes { groups } => groups.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(groups.len(), 3);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let logs = || -> Vec<String> {
            std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default()
        };
        while logs().iter().filter(|t| t.contains("token=")).count() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let texts = logs();
        assert_eq!(texts.len(), 3, "{texts:?}");
        for t in &texts {
            assert!(t.contains("argv=--connect http://127.0.0.1:9 -n 1\n"), "{t}");
            assert!(t.contains("token=tok-local\n"), "{t}");
        }
        assert_eq!(handle.state().ok(), Some(LaunchState::Running));
        assert!(handle.stop().is_ok());
        assert_eq!(handle.state().ok(), Some(LaunchState::Finished));
        assert!(handle.stop().is_ok(), "stop twice is fine");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
