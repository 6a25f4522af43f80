//! The `wasmpar` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    wasmpar::cli::main()
}
