//! Every tunable of the sandbox in one place, with its default and why.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline of one call (epoch interruption). 60 s: long enough
    /// for real work in one call, short enough that a runaway loop is noticed.
    pub call_timeout: Duration,
    /// Optional fuel per call (instructions, roughly); off by default because
    /// it costs ~10-20% speed and the deadline already bounds CPU time.
    pub fuel: Option<u64>,
    /// Linear memory an engine's store may hold in all, in bytes. 1 GiB: room
    /// for an 80 MB array copied twice, while 8 engines stay inside 8 GiB.
    pub memory_per_engine: usize,
    /// Wasm stack per call. 1 MiB (wasmtime's default is 512 KiB): deep but
    /// finite recursion works; the engine thread's native stack is larger.
    pub max_wasm_stack: usize,
    /// Captured stdout and stderr per call and stream; past it output is
    /// dropped and the truncation is marked.
    pub output_cap: usize,
    /// Images a call may show through `display`, and their total bytes.
    pub max_images: usize,
    pub images_cap: usize,
    /// Largest component upload. 64 MiB: an 18 MB componentize-py output fits.
    pub upload_max: usize,
    /// Largest request body (JSON). 512 MiB: an 80 MB f64 array as base64 is 107 MB.
    pub body_max: usize,
    /// Longest map/parallel sequence accepted in one task.
    pub max_sequence_len: usize,
    /// Jobs waiting per engine before new tasks get 429.
    pub queue_max: usize,
    /// Tables and instances one store may create (a component with many
    /// nested instances is fine; a fork bomb of instances is not).
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_table_elements: usize,
    /// Finished tasks kept for `GET /v1/tasks/{id}`: at most this many, and
    /// each at least `tasks_min_age` before it may be evicted.
    pub tasks_kept: usize,
    pub tasks_min_age: Duration,
    /// Bytes of results that finished tasks may hold in all. Past it the
    /// oldest kept results are dropped (the task keeps its status and says
    /// its result was evicted), whatever their age: 512 MiB, so a 10-million
    /// item result does not pin gigabytes after it was answered.
    pub tasks_kept_bytes: usize,
    /// Where compiled components are cached (keyed by digest and engine config).
    pub cache_dir: Option<PathBuf>,
    /// The Python runner component the execute op uploads on first use
    /// (None: `$WASMPAR_PYTHON_RUNNER` or the build tree's).
    pub python_runner: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(60),
            fuel: None,
            memory_per_engine: 1 << 30,
            max_wasm_stack: 1 << 20,
            output_cap: 1 << 20,
            max_images: 64,
            images_cap: 64 << 20,
            upload_max: 64 << 20,
            body_max: 512 << 20,
            max_sequence_len: 50_000_000,
            queue_max: 100_000,
            max_instances: 10_000,
            max_tables: 10_000,
            max_table_elements: 1_000_000,
            tasks_kept: 10_000,
            tasks_min_age: Duration::from_secs(3600),
            tasks_kept_bytes: 512 << 20,
            cache_dir: default_cache_dir(),
            python_runner: None,
        }
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".wasmpar").join("cache"))
}
