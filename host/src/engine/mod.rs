//! Engines: one long-lived wasmtime `Store` each, on its own OS thread.
//!
//! Invariants:
//! - A store is only ever touched by its engine's thread; everything else
//!   talks to it through [`Job`]s on a channel, so calls on different
//!   engines run truly in parallel and sync WASI never runs on a tokio worker.
//! - The store's data ([`EngineState`]) owns the namespace: it outlives every
//!   component instance. Wasmtime 48 marks the whole store as trapped after
//!   any trap (no instance in it may be entered again), so after a trap the
//!   engine moves its namespace into a fresh store and re-instantiates on the
//!   next call from the cached `InstancePre` (a few µs). Installed libraries
//!   are re-instantiated too: their own state is reset, which the log says.
//!   When the store held the Python runner, the trapping call's error says that
//!   its interpreter's Python-only globals were lost (`python.rs`).
//! - A panic in the engine thread while running a job fails that job with an
//!   `engine` failure; the engine then starts afresh (new store, namespace
//!   kept) and counts a restart.

mod affinity;
mod host;
mod info;
mod job;
mod limiter;
mod linker;
pub mod namespace;
pub mod output;
mod pool;
pub mod python;
mod typed;
mod worker;

pub use info::{hostname, EngineInfo, EngineStatus, Placement};
pub use job::{Arg, BalancedWork, BatchOutcome, CallBatch, CallSource, CallSpec, EngineOutput, Job, StagedRef, TaskControl};
pub use linker::{wasi_provides, HOST_INTERFACES};
pub use namespace::{Namespace, NsValue};
pub use pool::{lost_message, EnginePool, RemoteLink};
pub use python::{PythonState, PYTHON_MARKER};
pub use worker::EngineState;

/// Host bindings of the `wasmpar:engine` WIT package (../wit).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasmpar:engine/task",
    });
}
