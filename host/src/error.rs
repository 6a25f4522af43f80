//! The crate's one error type. Each variant is a kind of failure in the
//! caller's words; the API maps it to a status code and a JSON `kind`.

pub use crate::wire::{EngineFailure, FailureCause};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request: bad JSON shape, bad targets, bad slice, empty sequence...
    #[error("{0}")]
    BadRequest(String),
    /// Bytes that are not a valid WebAssembly component.
    #[error("{0}")]
    InvalidComponent(String),
    /// Unknown engine, component, function, task or namespace name.
    #[error("{what} {name} not found{hint}")]
    NotFound { what: &'static str, name: String, hint: String },
    /// An argument does not match the function's WIT type.
    #[error("{0}")]
    TypeMismatch(String),
    /// A task's imports are not met on the engines it targets.
    #[error("{0}")]
    Dependency(String),
    /// A body, upload or sequence over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// The queue is full; try again later.
    #[error("{0}")]
    Busy(String),
    /// An engine thread is gone (it panicked and is being replaced).
    #[error("{0}")]
    EngineGone(String),
    /// Something in wasmpar itself went wrong.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn not_found(what: &'static str, name: impl std::fmt::Display) -> Self {
        Error::NotFound { what, name: format!("`{name}`"), hint: String::new() }
    }

    pub fn not_found_hint(what: &'static str, name: impl std::fmt::Display, hint: impl Into<String>) -> Self {
        Error::NotFound { what, name: format!("`{name}`"), hint: hint.into() }
    }

    /// The `kind` of the JSON error body.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "BadRequest",
            Error::InvalidComponent(_) => "InvalidComponent",
            Error::NotFound { .. } => "NotFound",
            Error::TypeMismatch(_) => "TypeError",
            Error::Dependency(_) => "DependencyError",
            Error::TooLarge(_) => "TooLarge",
            Error::Busy(_) => "Busy",
            Error::EngineGone(_) => "EngineError",
            Error::Internal(_) => "InternalError",
        }
    }
}

/// At most 64 characters of something a request sent, for an error message
/// (a 10 MB name is not echoed back whole).
pub fn cut(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
    }
}
