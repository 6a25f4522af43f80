//! One integration-test binary (wasmtime's tests/all layout).

mod api_tutorial;
mod cli;
mod defects;
mod dependencies;
mod frames;
mod guests;
mod history;
mod launchers;
mod memory;
mod props;
mod push_stream;
mod remote;
mod results;
mod sandbox;
mod server;
mod tls;
