//! wasmpar: IPython Parallel's model — engines, views, map/apply, push/pull,
//! scatter/gather — rebuilt on WebAssembly components.
//!
//! A request reads one way: [`api`] (axum routes) → [`scheduler`] (targets,
//! partitioning, load balancing, task lifecycle) → [`engine`] (one wasmtime
//! `Store` per OS thread, holding its namespace and live instances) →
//! [`runtime`] (wasmtime configuration, component cache, linker).
//! [`value`] converts JSON to component values and back by WIT type;
//! [`client`] and [`cli`] are the `wasmpar` command on top of the API.

pub mod api;
pub mod cli;
pub mod client;
pub mod engine;
pub mod error;
pub mod launcher;
pub mod pages;
pub mod remote;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod trim;
pub mod value;
pub mod wire;

pub use error::{Error, Result};

/// Paths of the example components built by `build.rs` (from `examples/`),
/// and the Mandelbrot component's bytes, embedded for `wasmpar demo`.
pub mod examples {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}
