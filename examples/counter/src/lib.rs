//! A library component with state: the count lives in the instance, so it
//! persists between calls for as long as the engine keeps the instance.

use std::sync::atomic::{AtomicU64, Ordering};

wit_bindgen::generate!({
    world: "wasmpar-examples:counter/library",
    path: "wit",
});

use exports::wasmpar_examples::counter::counter::Guest;

static COUNT: AtomicU64 = AtomicU64::new(0);

struct Counter;

export!(Counter);

impl Guest for Counter {
    fn increment() -> u64 {
        COUNT.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }
}
