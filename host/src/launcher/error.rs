//! The launchers' one error type. Each variant says what went wrong in the
//! words of someone starting a cluster, and what to do about it.

use std::io;

pub type Result<T, E = LaunchError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A tool the launcher needs is not on PATH (or not executable).
    #[error("`{tool}` not found on PATH ({hint})")]
    ToolMissing { tool: String, hint: &'static str },
    /// The launch itself is wrong: bad URL, counts, labels, credentials.
    #[error("{0}")]
    Invalid(String),
    /// `--hosts` could not be parsed.
    #[error("bad host list {spec:?}: {reason}")]
    HostList { spec: String, reason: String },
    /// A tool could not be started at all.
    #[error("could not run `{tool}`: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: io::Error,
    },
    /// A tool ran and failed (sbatch rejected the job, scancel failed...).
    #[error("`{tool}` failed ({status}): {stderr}")]
    ToolFailed { tool: String, status: String, stderr: String },
    /// A file the launcher writes (batch script, log) could not be written.
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}
