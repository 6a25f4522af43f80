//! The `wasmpar:engine` host interfaces, implemented on the engine's state.

use super::bindings::wasmpar::engine::{display, namespace};
use super::worker::EngineState;
use super::NsValue;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

impl namespace::Host for EngineState {
    fn get(&mut self, name: String) -> Option<namespace::Value> {
        self.namespace.get(&name).map(NsValue::to_wit)
    }

    fn set(&mut self, name: String, value: namespace::Value) {
        match NsValue::from_wit(value) {
            Ok(v) => self.namespace.set(name, v),
            // A malformed array from a guest is stored as null rather than
            // trapping the caller; the log says why.
            Err(msg) => {
                tracing::warn!(engine = self.id, name, "namespace.set refused: {msg}");
                self.namespace.set(name, NsValue::Null);
            }
        }
    }

    fn remove(&mut self, name: String) -> bool {
        self.namespace.remove(&name)
    }

    fn names(&mut self) -> Vec<String> {
        self.namespace.names()
    }
}

impl display::Host for EngineState {
    fn png(&mut self, data: Vec<u8>) -> Result<(), String> {
        if !data.starts_with(PNG_SIGNATURE) {
            return Err("display.png: the bytes are not a PNG image".into());
        }
        if self.images.len() >= self.max_images {
            return Err(format!("display.png: at most {} images per call", self.max_images));
        }
        let total: usize = self.images.iter().map(Vec::len).sum::<usize>() + data.len();
        if total > self.images_cap {
            return Err(format!("display.png: images of one call may not exceed {} bytes", self.images_cap));
        }
        self.images.push(data);
        Ok(())
    }
}
