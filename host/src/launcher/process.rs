//! Child processes of the local, MPI and SSH launchers.
//!
//! Invariants:
//! - Every child leads its own process group (`process_group(0)`), so stopping
//!   it reaches whatever it forked (mpiexec's ranks, a shell's engine).
//! - Only groups with a leader pid > 1 are ever signalled: a record read from
//!   a file can never make us signal our own group (`kill(0)`) or init's.
//! - A child's stdout and stderr go to a log file, never to our terminal; its
//!   stdin is /dev/null unless it is given one line (ssh's token), in which
//!   case the pipe stays open for the child's lifetime: its closing is the
//!   remote side's signal to stop.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::{LaunchError, LaunchState, Result, STOP_GRACE};

/// A spawned child and, for ssh, the open end of its stdin.
pub(crate) struct Spawned {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
}

impl Spawned {
    pub fn group(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }
}

/// Spawns `cmd` in a new process group with output appended to `log`; when
/// `stdin_line` is given, writes it and a newline to the child's stdin and
/// keeps the pipe open.
pub(crate) fn spawn(mut cmd: Command, tool: &str, log: &Path, stdin_line: Option<&str>) -> Result<Spawned> {
    let file_err = |source| LaunchError::File { what: "cannot open log", path: log.display().to_string(), source };
    let out = OpenOptions::new().create(true).append(true).open(log).map_err(file_err)?;
    let err = out.try_clone().map_err(file_err)?;
    cmd.process_group(0).stdout(out).stderr(err);
    cmd.stdin(if stdin_line.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|source| LaunchError::Spawn { tool: tool.to_string(), source })?;
    let mut stdin = child.stdin.take();
    if let (Some(line), Some(pipe)) = (stdin_line, stdin.as_mut()) {
        let written = pipe.write_all(line.as_bytes()).and_then(|()| pipe.write_all(b"\n")).and_then(|()| pipe.flush());
        if let Err(source) = written {
            let mut s = Spawned { child, stdin: None };
            let g = s.group();
            stop_groups(std::slice::from_mut(&mut s), &[g]);
            return Err(LaunchError::Spawn { tool: tool.to_string(), source });
        }
    }
    tracing::debug!(tool, pid = child.id(), log = %log.display(), "spawned");
    Ok(Spawned { child, stdin })
}

fn signal_group(group: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a negative pid signals that process group; guarded
    // to groups led by a real process (> 1), never our own (0) or init's.
    group > 1 && unsafe { libc::kill(-group, sig) } == 0
}

/// Whether any live (not zombie) process is in `group`. kill(-g, 0) also
/// succeeds for zombies nobody reaped (an orphan whose init does not reap),
/// so on Linux a yes is confirmed from /proc.
fn group_alive(group: i32) -> bool {
    if !signal_group(group, 0) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(group) && state != "Z" && state != "X"
    })
}

fn reap(children: &mut [Spawned]) {
    for s in children.iter_mut() {
        let _ = s.child.try_wait();
    }
}

/// Running while any process of any group is alive (after reaping our own
/// children, whose zombies would otherwise still count).
pub(crate) fn groups_state(children: &mut [Spawned], groups: &[i32]) -> LaunchState {
    reap(children);
    if groups.iter().any(|&g| group_alive(g)) {
        LaunchState::Running
    } else {
        LaunchState::Finished
    }
}

/// SIGTERM to every group, up to [`STOP_GRACE`] for them to go, then SIGKILL;
/// reaps our children.
pub(crate) fn stop_groups(children: &mut [Spawned], groups: &[i32]) {
    for s in children.iter_mut() {
        s.stdin = None; // closing ssh's stdin tells the remote watcher to stop the engine
    }
    for &g in groups {
        signal_group(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && groups_state(children, groups) == LaunchState::Running {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in groups {
        if group_alive(g) && signal_group(g, libc::SIGKILL) {
            tracing::warn!(group = g, "process group outlived SIGTERM; killed");
        }
    }
    for s in children.iter_mut() {
        let _ = s.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reaches_the_whole_group_and_ignores_bad_groups() {
        let dir = std::env::temp_dir().join(format!("wasmpar-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let log = dir.join("group.log");
        // A shell that forks a grandchild ignoring nothing; both must go.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 300 & echo grandchild $!; wait"]);
        let s = spawn(cmd, "sh", &log, None);
        let mut s = match s {
            Ok(s) => s,
            Err(e) => panic!("spawn sh: {e}"),
        };
        let g = s.group();
        let mut children = vec![];
        std::thread::sleep(Duration::from_millis(200));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let grandchild: i32 = text.trim().trim_start_matches("grandchild ").parse().unwrap_or(0);
        assert!(grandchild > 1, "log: {text:?}");
        assert_eq!(groups_state(std::slice::from_mut(&mut s), &[g]), LaunchState::Running);
        children.push(s);
        let t = Instant::now();
        stop_groups(&mut children, &[g, 0, -1, 1]);
        assert!(t.elapsed() < STOP_GRACE, "sh and sleep obey SIGTERM: {:?}", t.elapsed());
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        let state = stat.rfind(')').map(|i| stat[i + 1..].trim_start().chars().next()).unwrap_or(None);
        assert!(state.is_none() || state == Some('Z'), "the grandchild outlived stop: {stat}");
        assert_eq!(groups_state(&mut children, &[g]), LaunchState::Finished);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
