//! One integration-test binary (wasmtime's tests/all layout).

mod cli;
mod sandbox;
mod server;
