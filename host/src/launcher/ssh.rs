//! SSH: one `wasmpar engine -n K` process per host of `--hosts h1,h2:4`
//! (IPython Parallel's `SSHEngineSetLauncher`), K being the host's count
//! (default 1).
//!
//! Invariants:
//! - The token goes on ssh's stdin, never argv: the remote command is a small
//!   POSIX `sh -c` script that `read`s one line (a builtin, invisible to
//!   `ps`) into `WASMPAR_TOKEN`, exports it and starts the engine with stdin
//!   from /dev/null. With only a connection file, an empty line is sent and
//!   the variable is unset.
//! - ssh's stdin stays open while the launch lives. The remote script keeps
//!   reading it and stops the engine (SIGTERM) at end of file, so the engine
//!   goes when the local ssh is stopped, killed, or loses its connection —
//!   without `-tt`, whose pseudo-terminal would echo the token.
//! - `BatchMode=yes`: a host that wants a password is an error, not a prompt.
//! - Host names are checked: no leading `-` (an ssh option), no spaces.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use super::process;
use super::shell::sh_join;
use super::tool::find_tool;
use super::{EngineLaunch, LaunchError, LaunchHandle, LaunchRecord, Result, TOKEN_ENV};

/// One entry of `--hosts`: where, and how many engines there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// `host`, `user@host` or an IPv6 address (without brackets).
    pub host: String,
    pub engines: usize,
}

/// Parses `h1,h2:4,user@h3:2,[fe80::1]:2` (a host without `:N` has 1 engine).
/// Each entry must be non-empty; counts are positive integers.
pub fn parse_hosts(spec: &str) -> Result<Vec<HostSpec>> {
    let bad = |reason: String| LaunchError::HostList { spec: spec.to_string(), reason };
    let mut hosts = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad("an empty entry (two commas, or a trailing comma)".into()));
        }
        let (host, count) = if let Some(rest) = item.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad(format!("{item:?}: `[` without `]`")))?;
            match after {
                "" => (h, None),
                _ => (h, Some(after.strip_prefix(':').ok_or_else(|| bad(format!("{item:?}: expected `:N` after `]`")))?)),
            }
        } else if item.matches(':').count() > 1 {
            return Err(bad(format!("{item:?}: write an IPv6 address in brackets, [addr]:N")));
        } else {
            match item.split_once(':') {
                Some((h, n)) => (h, Some(n)),
                None => (item, None),
            }
        };
        let engines = match count {
            None => 1,
            Some(n) => match n.parse::<usize>() {
                Ok(k) if k > 0 => k,
                _ => return Err(bad(format!("{item:?}: the engine count {n:?} is not a positive integer"))),
            },
        };
        if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control() || "'\"\\;|&$`".contains(c))
        {
            return Err(bad(format!("{host:?} is not a host name")));
        }
        hosts.push(HostSpec { host: host.to_string(), engines });
    }
    Ok(hosts)
}

/// The remote shell script ($0 is a name; "$@" is the engine command).
const REMOTE_SCRIPT: &str = r#"IFS= read -r WASMPAR_TOKEN || exit 97
if [ -n "$WASMPAR_TOKEN" ]; then export WASMPAR_TOKEN; else unset WASMPAR_TOKEN; fi
exec 3<&0
"$@" </dev/null 3<&- &
engine=$!
{ while read -r _; do :; done; kill -TERM "$engine" 2>/dev/null; } <&3 >/dev/null 2>&1 &
watch=$!
exec 3<&-
wait "$engine"; rc=$?
kill "$watch" 2>/dev/null
exit "$rc""#;

#[derive(Debug, Clone)]
pub struct SshLauncher {
    pub ssh: PathBuf,
    pub hosts: Vec<HostSpec>,
    /// Extra ssh options (`--ssh-arg`), e.g. `-p 2222`, `-i key`, `-F config`.
    pub ssh_args: Vec<String>,
}

impl SshLauncher {
    pub fn new(hosts: Vec<HostSpec>) -> SshLauncher {
        SshLauncher { ssh: "ssh".into(), hosts, ssh_args: Vec::new() }
    }

    /// Engines the host list names, for `-n` when it was not given.
    pub fn total_engines(&self) -> usize {
        self.hosts.iter().map(|h| h.engines).sum()
    }

    /// The command run on the remote host: `exec sh -c SCRIPT wasmpar-engine PROGRAM engine …`,
    /// quoted for the remote login shell.
    pub fn remote_command(&self, host: &HostSpec, launch: &EngineLaunch) -> String {
        let mut words: Vec<OsString> = vec!["exec".into(), "sh".into(), "-c".into(), REMOTE_SCRIPT.into(), "wasmpar-engine".into()];
        words.push(launch.program.clone().into_os_string());
        words.extend(launch.engine_args_with(host.engines));
        sh_join(words)
    }

    /// `ssh -o BatchMode=yes [--ssh-arg]… HOST REMOTE-COMMAND`.
    pub fn command(&self, ssh: &std::path::Path, host: &HostSpec, launch: &EngineLaunch) -> Command {
        let mut cmd = Command::new(ssh);
        cmd.args(["-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]);
        cmd.args(&self.ssh_args);
        cmd.arg(&host.host);
        cmd.arg(self.remote_command(host, launch));
        cmd
    }

    pub fn start(&self, launch: &EngineLaunch) -> Result<LaunchHandle> {
        launch.validate()?;
        if self.hosts.is_empty() {
            return Err(LaunchError::Invalid("--engines ssh needs --hosts h1,h2:4".into()));
        }
        if self.total_engines() != launch.engines {
            let list: Vec<String> = self.hosts.iter().map(|h| format!("{}:{}", h.host, h.engines)).collect();
            return Err(LaunchError::Invalid(format!(
                "the host list {} names {} engines but {} were asked for; drop -n or make them agree",
                list.join(","),
                self.total_engines(),
                launch.engines
            )));
        }
        let ssh = find_tool(&self.ssh)?;
        std::fs::create_dir_all(&launch.work_dir).map_err(|source| LaunchError::File {
            what: "cannot create work directory",
            path: launch.work_dir.display().to_string(),
            source,
        })?;
        let token = launch.token.as_ref().map(|t| t.expose()).unwrap_or("");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut children = Vec::with_capacity(self.hosts.len());
        for (i, host) in self.hosts.iter().enumerate() {
            let mut cmd = self.command(&ssh, host, launch);
            cmd.env_remove(TOKEN_ENV);
            let safe: String = host.host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
            let log = launch.work_dir.join(format!("ssh-{}-{i}-{safe}.log", &id[..8]));
            match process::spawn(cmd, "ssh", &log, Some(token)) {
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
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn host(h: &str, n: usize) -> HostSpec {
        HostSpec { host: h.into(), engines: n }
    }

    #[test]
    fn host_lists_parse() {
        assert_eq!(parse_hosts("h1,h2:4").ok(), Some(vec![host("h1", 1), host("h2", 4)]));
        assert_eq!(parse_hosts(" alice@h3:2 , 10.0.0.5").ok(), Some(vec![host("alice@h3", 2), host("10.0.0.5", 1)]));
        assert_eq!(parse_hosts("[fe80::1]:3,[::1]").ok(), Some(vec![host("fe80::1", 3), host("::1", 1)]));
        for (bad, why) in [
            ("", "empty entry"),
            ("h1,,h2", "empty entry"),
            ("h1,", "empty entry"),
            ("h1:0", "not a positive integer"),
            ("h1:x", "not a positive integer"),
            ("h1:-2", "not a positive integer"),
            ("fe80::1", "brackets"),
            ("[fe80::1", "without `]`"),
            ("[::1]2", "expected `:N`"),
            ("-oProxyCommand=evil", "not a host name"),
            ("h 1", "not a host name"),
            (":3", "not a host name"),
            ("a;b", "not a host name"),
        ] {
            match parse_hosts(bad) {
                Err(e @ LaunchError::HostList { .. }) => {
                    assert!(e.to_string().contains(why), "{bad:?}: {e}")
                }
                other => panic!("{bad:?}: expected HostList error, got {other:?}"),
            }
        }
    }

    fn launch(engines: usize) -> EngineLaunch {
        let mut l = EngineLaunch::new("http://10.200.0.1:7000", engines, "/opt/bin/wasmpar", "/tmp/w");
        l.token = Some(Secret::new("tok-ssh"));
        l
    }

    #[test]
    fn ssh_command_line_has_no_token() {
        let s = SshLauncher { ssh_args: vec!["-p".into(), "2222".into()], ..SshLauncher::new(vec![host("h1", 1), host("h2", 4)]) };
        let cmd = s.command(Path::new("/usr/bin/ssh"), &s.hosts[1], &launch(5));
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args[..8], ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-p", "2222"]);
        assert_eq!(args[8], "h2");
        let remote = &args[9];
        assert!(remote.starts_with("exec sh -c 'IFS= read -r WASMPAR_TOKEN"), "{remote}");
        assert!(remote.ends_with("wasmpar-engine /opt/bin/wasmpar engine --connect http://10.200.0.1:7000 -n 4"), "{remote}");
        assert!(!args.iter().any(|a| a.contains("tok-ssh")));
        assert!(cmd.get_envs().all(|(k, _)| k != TOKEN_ENV));
    }

    #[test]
    fn counts_must_agree() {
        let s = SshLauncher::new(vec![host("h1", 1), host("h2", 4)]);
        match s.start(&launch(8)) {
            Err(LaunchError::Invalid(m)) => assert!(m.contains("names 5 engines but 8"), "{m}"),
            other => panic!("{other:?}"),
        }
        let none = SshLauncher::new(vec![]);
        assert!(matches!(none.start(&launch(1)), Err(LaunchError::Invalid(m)) if m.contains("--hosts")));
        let missing = SshLauncher { ssh: "/nonexistent/ssh".into(), ..SshLauncher::new(vec![host("h1", 1)]) };
        assert!(matches!(missing.start(&launch(1)), Err(LaunchError::ToolMissing { .. })));
    }

    /// The remote script run by a local `sh` standing in for ssh+sshd: the
    /// token arrives through stdin into the environment (not argv), and
    /// closing stdin — what a dropped ssh connection does — stops the engine.
    #[test]
    fn remote_script_reads_token_and_stops_on_eof() {
        let dir = std::env::temp_dir().join(format!("wasmpar-ssh-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let engine = dir.join("fake-engine");
        let out = dir.join("out");
        let body = format!(
            "#!/bin/sh\necho \"argv=$*\" > {o}.tmp; echo \"token=$WASMPAR_TOKEN\" >> {o}.tmp; cat /proc/$$/cmdline /proc/$PPID/cmdline | tr '\\0' ' ' >> {o}.tmp; mv {o}.tmp {o}\ntrap 'echo stopped >> {o}; exit 0' TERM\nwhile :; do sleep 0.05; done\n",
            o = out.display()
        );
        std::fs::write(&engine, body).unwrap_or_default();
        let _ = Command::new("chmod").arg("+x").arg(&engine).status();
        let mut l = launch(2);
        l.program = engine.clone();
        let s = SshLauncher::new(vec![host("h1", 2)]);
        // What sshd does with the remote command: `$SHELL -c COMMAND`.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(s.remote_command(&s.hosts[0], &l));
        let spawned = process::spawn(cmd, "sh", &dir.join("log"), Some("tok-ssh"));
        let mut spawned = match spawned {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(text.contains("argv=engine --connect http://10.200.0.1:7000 -n 2\n"), "{text}");
        assert!(text.contains("token=tok-ssh\n"), "{text}");
        assert_eq!(text.matches("tok-ssh").count(), 1, "the token is on no command line: {text}");
        // EOF on stdin, as when the ssh connection closes.
        spawned.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = None;
        while status.is_none() && Instant::now() < deadline {
            status = spawned.child.try_wait().ok().flatten();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(status.is_some(), "the remote script did not end after EOF");
        assert!(std::fs::read_to_string(&out).unwrap_or_default().ends_with("stopped\n"), "the engine got SIGTERM");
        let g = spawned.group();
        assert_eq!(process::groups_state(std::slice::from_mut(&mut spawned), &[g]), LaunchState::Finished);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
