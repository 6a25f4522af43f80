//! The base linker every engine starts from: WASI p2 (sandboxed by the
//! `WasiCtx` each store is given) and the `wasmpar:engine` host interfaces.
//! Engines clone it and add the interfaces of their installed libraries.

use wasmtime::component::{HasSelf, Linker};

use super::{bindings, EngineState};
use crate::{Error, Result};

/// Interfaces the host itself provides (imports resolved by `host`).
pub const HOST_INTERFACES: &[&str] = &["wasmpar:engine/namespace", "wasmpar:engine/display"];

pub fn base_linker(engine: &wasmtime::Engine) -> Result<Linker<EngineState>> {
    let mut linker = Linker::new(engine);
    // Libraries installed later may shadow nothing of WASI or the host, but
    // a re-install of a library replaces its own earlier definitions.
    linker.allow_shadowing(true);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| Error::Internal(format!("cannot link WASI: {e:#}")))?;
    bindings::Task::add_to_linker::<EngineState, HasSelf<EngineState>>(&mut linker, |s| s)
        .map_err(|e| Error::Internal(format!("cannot link wasmpar:engine: {e:#}")))?;
    Ok(linker)
}
