//! The base linker every engine starts from: WASI p2 (sandboxed by the
//! `WasiCtx` each store is given), wasi:http with every request refused, and
//! the `wasmpar:engine` host interfaces. Engines clone it and add the
//! interfaces of their installed libraries.

use std::future::Future;

use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::{bindings, EngineState};
use crate::{Error, Result};

/// Interfaces the host itself provides (imports resolved by `host`).
pub const HOST_INTERFACES: &[&str] = &["wasmpar:engine/namespace", "wasmpar:engine/display"];

pub fn base_linker(engine: &wasmtime::Engine) -> Result<Linker<EngineState>> {
    let mut linker = Linker::new(engine);
    // Libraries installed later may shadow nothing of WASI or the host, but
    // a re-install of a library replaces its own earlier definitions.
    linker.allow_shadowing(true);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| Error::Internal(format!("cannot link WASI: {e:#}")))?;
    // JavaScript components (StarlingMonkey's fetch) and others import
    // wasi:http whether they use it or not; linked, they instantiate.
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
        .map_err(|e| Error::Internal(format!("cannot link wasi:http: {e:#}")))?;
    bindings::Task::add_to_linker::<EngineState, HasSelf<EngineState>>(&mut linker, |s| s)
        .map_err(|e| Error::Internal(format!("cannot link wasmpar:engine: {e:#}")))?;
    Ok(linker)
}

/// wasi:http inside the sandbox: a guest may build requests, but sending one
/// fails with the wasi:http error `HTTP-request-denied`, which the guest sees
/// as an ordinary HTTP error (a rejected `fetch`), never a trap.
pub struct NoNetwork;

impl NoNetwork {
    /// The hooks of an engine's `WasiHttpCtxView`: a zero-sized value, so
    /// leaking its box allocates nothing.
    pub fn hooks() -> &'static mut NoNetwork {
        Box::leak(Box::new(NoNetwork))
    }
}

type Sent = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;
type Answer = wasmtime_wasi_http::Result<(http::Response<WasiBody>, Sent)>;

impl WasiHttpHooks for NoNetwork {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Sent,
    ) -> Box<dyn Future<Output = Answer> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// The WASI 0.2 interfaces `base_linker` links: wasmtime-wasi's p2 set and
/// wasi:http. An import of any 0.2 release (`wasi:io/poll@0.2.12`) links to
/// them; anything else under `wasi:` needs a library.
const WASI_INTERFACES: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:sockets/tcp",
    "wasi:sockets/udp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/instance-network",
    "wasi:sockets/network",
    "wasi:sockets/ip-name-lookup",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
];

/// Whether every engine's base linker provides the WASI import `name`
/// (`wasi:http/types@0.2.10`: yes; `wasi:keyvalue/store@0.2.0-draft`,
/// `wasi:io/poll@0.3.0`: no).
pub fn wasi_provides(name: &str) -> bool {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    WASI_INTERFACES.contains(&interface) && version.starts_with("0.2.")
}

#[cfg(test)]
mod tests {
    use super::wasi_provides;

    #[test]
    fn wasi_imports_of_any_0_2_release_are_provided() {
        assert!(wasi_provides("wasi:io/poll@0.2.6"));
        assert!(wasi_provides("wasi:http/types@0.2.10"));
        assert!(wasi_provides("wasi:cli/stdout@0.2.12"));
        assert!(!wasi_provides("wasi:io/poll@0.3.0"));
        assert!(!wasi_provides("wasi:io/poll"));
        assert!(!wasi_provides("wasi:keyvalue/store@0.2.0-draft"));
        assert!(!wasi_provides("wasi:http/incoming-handler@0.2.6"));
    }
}
