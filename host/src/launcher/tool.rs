//! Finding the cluster tools (`sbatch`, `mpiexec`, `ssh`...) before running
//! them, so a missing one is [`LaunchError::ToolMissing`] naming the tool and
//! the package that has it, not a bare "No such file or directory".
//!
//! Invariant: a name with a `/` is taken as a path and only checked; a bare
//! name is looked up in `$PATH` in order, and only an executable regular file
//! counts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{LaunchError, Result};

/// Where to get a tool, for the error message.
fn hint(tool: &str) -> &'static str {
    match tool {
        "sbatch" | "scancel" | "squeue" | "srun" => "run on a Slurm login node, or install Slurm's client commands (Debian: slurm-client)",
        "mpiexec" | "mpirun" => "install an MPI (Debian: openmpi-bin or mpich) or load its module",
        "ssh" => "install an OpenSSH client (Debian: openssh-client)",
        _ => "install it or give its full path",
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The full path of `tool`, from `$PATH` unless it already has a `/`.
pub fn find_tool(tool: &Path) -> Result<PathBuf> {
    let name = tool.to_string_lossy().into_owned();
    let missing = || LaunchError::ToolMissing { hint: hint(tool.file_name().and_then(|n| n.to_str()).unwrap_or("")), tool: name.clone() };
    if name.contains('/') {
        return if is_executable(tool) { Ok(tool.to_path_buf()) } else { Err(missing()) };
    }
    if name.is_empty() {
        return Err(missing());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|p| is_executable(p)).ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_names_a_missing_tool() {
        let sh = find_tool(Path::new("sh"));
        assert!(sh.as_ref().is_ok_and(|p| p.is_absolute()), "{sh:?}");
        match find_tool(Path::new("sbatch-that-is-not-there")) {
            Err(e @ LaunchError::ToolMissing { .. }) => {
                assert!(e.to_string().contains("`sbatch-that-is-not-there` not found on PATH"), "{e}")
            }
            other => panic!("expected ToolMissing, got {other:?}"),
        }
        match find_tool(Path::new("/nonexistent/dir/sbatch")) {
            Err(e @ LaunchError::ToolMissing { .. }) => {
                assert!(e.to_string().contains("slurm-client"), "{e}")
            }
            other => panic!("expected ToolMissing, got {other:?}"),
        }
        // A directory or a non-executable file is not a tool.
        assert!(find_tool(Path::new("/tmp")).is_err());
        let plain = std::env::temp_dir().join(format!("wasmpar-tool-unit-{}", std::process::id()));
        std::fs::write(&plain, "#!/bin/sh\n").unwrap_or_default();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap_or_default();
        assert!(matches!(find_tool(&plain), Err(LaunchError::ToolMissing { .. })));
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap_or_default();
        assert_eq!(find_tool(&plain).ok().as_deref(), Some(plain.as_path()));
        let _ = std::fs::remove_file(&plain);
    }
}
