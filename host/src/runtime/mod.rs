//! The wasmtime set-up shared by every engine: one `wasmtime::Engine` (its
//! configuration decides what a compiled artifact may be loaded into), the
//! limits and the compile cache. It knows wasmtime and components, nothing of
//! engines, values or HTTP (the linker and host interfaces are `engine`'s).
//!
//! Invariants:
//! - Exactly one `wasmtime::Engine` per process; every `Store` comes from it,
//!   so a compiled `Component` is usable on every engine thread.
//! - An epoch ticker thread increments the epoch every [`EPOCH_TICK`]; each
//!   store checks its deadline and cancel flag on every tick (see `engine`).

mod component;
mod limits;

pub use component::{
    interface_matches as interface_matches_pub, ComponentRegistry, ExportedFunction, ImportInfo, ImportSource, LoadedComponent,
};
pub use limits::Limits;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};

/// How often the epoch advances: the granularity of deadlines and cancels.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The process-wide wasmtime engine with its configuration.
pub struct Runtime {
    pub engine: wasmtime::Engine,
    pub limits: Limits,
    pub components: ComponentRegistry,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(limits: Limits) -> Result<Arc<Self>> {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(limits.fuel.is_some())
            .max_wasm_stack(limits.max_wasm_stack)
            // wasmtime refuses a wasm stack larger than the async stack (2 MiB
            // by default) even with async unused: keep it above.
            .async_stack_size(limits.max_wasm_stack.max(2 << 20) + (1 << 20))
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable)
            .memory_init_cow(true)
            // Async components are not used; a sync call is ~2.4x cheaper without it.
            .concurrency_support(false)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = wasmtime::Engine::new(&config).map_err(|e| Error::Internal(format!("cannot configure wasmtime: {e:#}")))?;
        let components = ComponentRegistry::new(engine.clone(), limits.cache_dir.clone());
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("wasmpar-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start the epoch ticker: {e}")))?;
        }
        Ok(Arc::new(Runtime { engine, limits, components, ticker_stop }))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
