pub mod bindings {
    wit_bindgen::generate!({
        world: "wasmpar:engine/task",
        path: "../wit",
        additional_derives: [PartialEq],
        debug: true,
    });
}
