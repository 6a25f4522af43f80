//! Write wasmpar tasks in Rust.
//!
//! A wasmpar *task* is a WebAssembly component whose WIT world includes
//! `wasmpar:engine/task@0.1.0` and exports the functions that clients `apply`
//! and `map`. This crate gives such a task:
//!
//! - [`bindings`]: the generated imports of the `wasmpar:engine` package
//!   (`namespace` and `display`), to share with your own bindings through
//!   `wit_bindgen::generate!`'s `with` option;
//! - [`namespace`]: typed access to the engine's globals, what clients
//!   `push`, `pull`, `scatter` and `gather` ([`namespace::get`],
//!   [`namespace::try_get`], [`namespace::set`], [`namespace::remove`],
//!   [`namespace::names`]), with `ndarray` arrays for n-d data;
//! - [`display`]: images shown to the client ([`display::png`]) and a small
//!   PNG encoder ([`display::encode_gray_png`], [`display::encode_rgb_png`]).
//!
//! Output: a task is built for `wasm32-wasip2`, so `println!` and `eprintln!`
//! write to WASI stdout and stderr, which the engine captures per call and
//! returns with the result (`[stdout:0]` in `wasmpar px`). A panic is a trap:
//! the call fails with the panic message (printed on stderr) and a wasm
//! backtrace, and the engine re-creates the instance while keeping its
//! namespace.
//!
//! # A complete task
//!
//! A crate `double` whose component exports `scale: func(xs: list<f64>) -> list<f64>`,
//! multiplying by the engine's global `factor` (1 if unset), and
//! `hello: func(name: string) -> string`. Its layout, beside a checkout of
//! wasmpar (for the WIT of `wasmpar:engine` in `wasmpar/wit`):
//!
//! ```text
//! double/
//!   Cargo.toml
//!   wit/world.wit
//!   src/lib.rs
//! ```
//!
//! `wit/world.wit`:
//!
//! ```text
//! package my-tasks:double@0.1.0;
//!
//! world double {
//!     include wasmpar:engine/task@0.1.0;
//!
//!     export scale: func(xs: list<f64>) -> list<f64>;
//!     export hello: func(name: string) -> string;
//! }
//! ```
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "double"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! wit-bindgen = "0.63"
//! wasmpar-guest = { path = "../wasmpar/guest-sdk" }
//!
//! [profile.release]
//! opt-level = 3
//! lto = true
//! ```
//!
//! `src/lib.rs`:
//!
//! ```ignore
//! wit_bindgen::generate!({
//!     world: "my-tasks:double/double",
//!     // The engine's package first, then this crate's: a later path may use
//!     // packages from the earlier ones.
//!     path: ["../wasmpar/wit", "wit"],
//!     // Reuse this crate's bindings of the engine's interfaces, so that
//!     // `wasmpar_guest::namespace` and `display` work with your world.
//!     with: {
//!         "wasmpar:engine/namespace@0.1.0": wasmpar_guest::bindings::wasmpar::engine::namespace,
//!         "wasmpar:engine/display@0.1.0": wasmpar_guest::bindings::wasmpar::engine::display,
//!     },
//!     // Needed only if the world imports other packages' interfaces
//!     // (libraries, e.g. `import wasmpar-examples:stats/norm@0.1.0;`):
//!     // generate_all,
//! });
//!
//! use wasmpar_guest::namespace;
//!
//! struct Double;
//!
//! export!(Double);
//!
//! impl Guest for Double {
//!     fn scale(xs: Vec<f64>) -> Vec<f64> {
//!         // A wrong type is a trap with a clear message; unset is 1.
//!         let factor = match namespace::try_get::<f64>("factor") {
//!             Ok(f) => f.unwrap_or(1.0),
//!             Err(e) => panic!("{e}"),
//!         };
//!         let ys: Vec<f64> = xs.iter().map(|x| x * factor).collect();
//!         namespace::set("last", ys.clone()); // the client can `pull` it
//!         ys
//!     }
//!
//!     fn hello(name: String) -> String {
//!         println!("hello from the engine, {name}"); // captured stdout
//!         format!("hello, {name}")
//!     }
//! }
//! ```
//!
//! Build it; on `wasm32-wasip2` rustc emits a component directly:
//!
//! ```text
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! # -> target/wasm32-wasip2/release/double.wasm, ready to upload
//! ```
//!
//! More tasks (a Mandelbrot renderer, a library and a task that imports it,
//! compound WIT types) are in the repository's `examples/`.
//!
//! This crate also compiles natively (the imports are then unreachable stubs),
//! so the pure conversion code can be unit-tested with `cargo test`.
//!

#![warn(missing_docs)]

pub mod display;
pub mod namespace;

/// The WIT bindings of the `wasmpar:engine/task` world (imports only).
///
/// `bindings::wasmpar::engine::namespace` and `bindings::wasmpar::engine::display`
/// are the raw imports; pass them to your own `wit_bindgen::generate!` through
/// `with` so your task shares these types instead of generating its own.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "wasmpar:engine/task",
        path: "../wit",
        additional_derives: [PartialEq],
    });
}

/// The `wit-bindgen` crate these bindings were generated with.
pub use wit_bindgen;
