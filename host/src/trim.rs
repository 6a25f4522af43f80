//! Giving freed memory back to the system. glibc's allocator keeps what a
//! large task freed (its request, arguments, results: gigabytes for a map
//! of ten million items) in its arenas, so the process's resident memory
//! stays at its peak long after the task's answer went out. A background
//! thread looks every [`EVERY`] at how much free memory the arenas hold and
//! trims them when it is over [`HELD`]; the API also trims after each burst
//! of requests (`api/trim.rs`), where many small arenas add up to less.
//!
//! Invariants:
//! - Trimming never frees memory in use: `malloc_trim` only returns free
//!   pages; it costs a walk of the arenas, at most once per [`EVERY`].
//! - Only on Linux with glibc (elsewhere `start` does nothing).

use std::sync::Once;
use std::time::Duration;

/// How often the arenas are looked at.
pub const EVERY: Duration = Duration::from_secs(1);
/// Free memory the arenas may hold before they are trimmed.
pub const HELD: usize = 64 << 20;

static STARTED: Once = Once::new();

/// Start the trimming thread (once per process).
pub fn start() {
    STARTED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let spawned = std::thread::Builder::new().name("wasmpar-trim".into()).spawn(|| loop {
                std::thread::sleep(EVERY);
                // SAFETY: plain glibc calls with no arguments to uphold;
                // both are thread-safe (they take the arenas' locks).
                let held = unsafe { libc::mallinfo2() }.fordblks;
                if held > HELD {
                    release();
                    tracing::debug!(held_mib = held >> 20, "gave freed memory back to the system");
                }
            });
            if let Err(e) = spawned {
                tracing::warn!("cannot start the memory trimmer: {e}");
            }
        }
    });
}

/// Give the allocator's free pages back to the system now (glibc only).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
