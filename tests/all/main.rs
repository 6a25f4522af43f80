//! One integration-test binary (wasmtime's tests/all layout).

mod cli;
mod dependencies;
mod props;
mod sandbox;
mod server;
