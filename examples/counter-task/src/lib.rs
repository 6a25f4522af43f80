//! A task whose import is satisfied by the `counter` library: the counter's
//! state persists between calls because the library instance lives as long
//! as the engine.

wit_bindgen::generate!({
    world: "wasmpar-examples:counter-task/counter-task",
    path: ["../../wit", "../counter/wit", "wit"],
    with: {
        "wasmpar:engine/namespace@0.1.0": wasmpar_guest::bindings::wasmpar::engine::namespace,
        "wasmpar:engine/display@0.1.0": wasmpar_guest::bindings::wasmpar::engine::display,
    },
    generate_all,
});

use wasmpar_examples::counter::counter;

struct CounterTask;

export!(CounterTask);

impl Guest for CounterTask {
    fn bump() -> u64 {
        counter::increment()
    }
}
