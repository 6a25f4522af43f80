//! A task with a library dependency: `g3` calls `norm.pdf`, which the engine
//! satisfies from the `stats` library component installed on it.

wit_bindgen::generate!({
    world: "wasmpar-examples:stats-task/stats-task",
    path: ["../../wit", "../stats/wit", "wit"],
    with: {
        "wasmpar:engine/namespace@0.1.0": wasmpar_guest::bindings::wasmpar::engine::namespace,
        "wasmpar:engine/display@0.1.0": wasmpar_guest::bindings::wasmpar::engine::display,
    },
    generate_all,
});

use wasmpar_examples::stats::norm;

struct StatsTask;

export!(StatsTask);

impl Guest for StatsTask {
    fn g3(x: f64) -> f64 {
        norm::pdf(x, 0.0, 1.0)
    }
}
