//! Engines: one long-lived wasmtime `Store` each, on its own OS thread.
//!
//! Invariants:
//! - A store is only ever touched by its engine's thread; everything else
//!   talks to it through [`Job`]s on a channel, so calls on different
//!   engines run truly in parallel and sync WASI never runs on a tokio worker.
//! - The store's data ([`EngineState`]) owns the namespace: it outlives every
//!   component instance. A trap drops only the instance that trapped; the next
//!   call re-instantiates it from its `InstancePre`.
//! - When trapped instances pile up (their memory stays in the store) or the
//!   memory cap was hit, the engine rebuilds its store and carries the
//!   namespace over; installed libraries are re-instantiated (their state is
//!   reset, which the engine reports in its log).
//! - A panic in the engine thread while running a job fails that job with an
//!   `engine` failure; the engine then starts afresh (new store, namespace
//!   kept) and counts a restart.

mod host;
mod job;
mod limiter;
pub mod namespace;
pub mod output;
mod pool;
mod worker;

pub use job::{Arg, BalancedWork, BatchOutcome, CallBatch, EngineOutput, Job, TaskControl};
pub use namespace::{Namespace, NsValue};
pub use pool::{EngineInfo, EnginePool, EngineStatus};
pub use worker::EngineState;

/// Host bindings of the `wasmpar:engine` WIT package (../wit).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasmpar:engine/task",
    });
}
