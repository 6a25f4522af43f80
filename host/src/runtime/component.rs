//! Uploaded components: validated, compiled once per content digest, and
//! described (exported functions with WIT signatures, imports).
//!
//! Invariants:
//! - A name maps to one `LoadedComponent`; uploading under a taken name
//!   replaces it (engines pick the new digest up on the next call).
//! - Compilation happens once per digest in this process; the artifact is
//!   also written to the disk cache, keyed by digest and by the engine's
//!   compatibility hash. Only files this cache wrote are ever deserialized —
//!   never bytes a user sent.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex};

pub use crate::wire::{ImportInfo, ImportSource};
use crate::{Error, Result};

/// One exported function, ready to be called.
#[derive(Clone)]
pub struct ExportedFunction {
    /// `add3`, or `interface#function` for functions of an exported interface.
    pub name: String,
    pub index: ComponentExportIndex,
    pub params: Vec<(String, wasmtime::component::types::Type)>,
    pub results: Vec<wasmtime::component::types::Type>,
}

impl ExportedFunction {
    /// The type of what a call gives back: a top-level `result`'s `ok` type
    /// (its `err` makes the call a failure), else the function's result.
    pub fn value_type(&self) -> Option<wasmtime::component::types::Type> {
        match self.results.first() {
            Some(wasmtime::component::types::Type::Result(r)) => r.ok(),
            other => other.cloned(),
        }
    }
}

/// Exports a toolchain adds for itself, never called as tasks:
/// componentize-py's `exports` interface (its `init`, run once at build
/// time) and any function whose name has a `#`.
fn is_toolchain_export(interface: Option<&str>, function: &str) -> bool {
    function.contains('#') || interface.is_some_and(|i| i == "exports" || i.starts_with("componentize-py"))
}

pub struct LoadedComponent {
    pub name: String,
    pub digest: String,
    pub size: usize,
    pub component: Component,
    pub functions: Vec<ExportedFunction>,
    /// Interfaces it exports (what makes it a library).
    pub interfaces: Vec<String>,
    /// Names of the instances it imports (`wasi:cli/stdout@0.2.6`, ...).
    pub imports: Vec<String>,
    /// The bytes as uploaded: what remote engines fetch by digest.
    pub bytes: bytes::Bytes,
}

pub struct ComponentRegistry {
    engine: wasmtime::Engine,
    cache_dir: Option<PathBuf>,
    by_name: RwLock<BTreeMap<String, Arc<LoadedComponent>>>,
    compiled: Mutex<HashMap<String, Component>>,
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

impl ComponentRegistry {
    pub fn new(engine: wasmtime::Engine, cache_dir: Option<PathBuf>) -> Self {
        ComponentRegistry { engine, cache_dir, by_name: RwLock::default(), compiled: Mutex::default() }
    }

    /// Validate, compile (or take from the cache) and register `bytes` as `name`.
    /// Slow on first sight of a digest (compilation): call off the async runtime.
    /// Returns the new component and the one it replaced under that name.
    pub fn add(&self, name: &str, bytes: &[u8]) -> Result<(Arc<LoadedComponent>, Option<Arc<LoadedComponent>>)> {
        validate_name(name)?;
        check_header(bytes)?;
        let digest = hex::encode(Sha256::digest(bytes));
        let component = self.compile(&digest, bytes)?;
        let loaded = Arc::new(describe(&self.engine, name, &digest, bytes, component)?);
        let replaced = self.by_name.write().insert(name.to_string(), loaded.clone());
        if let Some(old) = replaced.as_ref().filter(|old| old.digest != digest) {
            self.release(&old.digest);
        }
        tracing::info!(name, digest = &digest[..12], functions = loaded.functions.len(), "component added");
        Ok((loaded, replaced))
    }

    pub fn get(&self, name: &str) -> Result<Arc<LoadedComponent>> {
        // One guard at a time: parking_lot's RwLock is fair, so a second
        // `read()` while the first is alive waits behind any queued writer,
        // which waits for the first — a deadlock (issue 10, defect 3).
        let found = self.by_name.read().get(name).cloned();
        found.ok_or_else(|| {
            let known: Vec<String> = self.by_name.read().keys().cloned().collect();
            Error::not_found_hint(
                "component",
                name,
                if known.is_empty() { "; none is uploaded".to_string() } else { format!("; uploaded: {}", known.join(", ")) },
            )
        })
    }

    /// Drop the compiled code of `digest` from the in-memory cache unless a
    /// name still refers to it (the disk cache keeps it for a re-upload).
    fn release(&self, digest: &str) {
        let in_use = self.by_name.read().values().any(|c| c.digest == digest);
        if !in_use {
            self.compiled.lock().remove(digest);
        }
    }

    /// The component with this content digest, under whichever name.
    pub fn by_digest(&self, digest: &str) -> Option<Arc<LoadedComponent>> {
        self.by_name.read().values().find(|c| c.digest == digest).cloned()
    }

    pub fn list(&self) -> Vec<Arc<LoadedComponent>> {
        self.by_name.read().values().cloned().collect()
    }

    pub fn remove(&self, name: &str) -> Result<Arc<LoadedComponent>> {
        let removed = self.by_name.write().remove(name).ok_or_else(|| Error::not_found("component", name))?;
        self.release(&removed.digest);
        Ok(removed)
    }

    /// The uploaded components that export `interface` (libraries).
    pub fn exporters_of(&self, interface: &str) -> Vec<String> {
        self.by_name
            .read()
            .values()
            .filter(|c| c.interfaces.iter().any(|i| interface_matches(i, interface)))
            .map(|c| c.name.clone())
            .collect()
    }

    fn compile(&self, digest: &str, bytes: &[u8]) -> Result<Component> {
        if let Some(c) = self.compiled.lock().get(digest) {
            return Ok(c.clone());
        }
        let cache_file = self.cache_file(digest);
        if let Some(path) = cache_file.as_ref().filter(|p| p.exists()) {
            // SAFETY: the file was written by `Component::serialize` below, into
            // a directory of mode 0700 that only this user can write.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => {
                    self.compiled.lock().insert(digest.to_string(), c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}")
                }
            }
        }
        let component =
            Component::new(&self.engine, bytes).map_err(|e| Error::InvalidComponent(format!("the component does not validate: {e:#}")))?;
        if let Some(path) = cache_file {
            if let Err(e) = write_cache(&path, &component) {
                tracing::warn!(path = %path.display(), "cannot write the compile cache: {e:#}");
            }
        }
        self.compiled.lock().insert(digest.to_string(), component.clone());
        Ok(component)
    }

    fn cache_file(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{digest}-{:016x}.cwasm", h.finish())))
    }
}

fn write_cache(path: &std::path::Path, component: &Component) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("no parent"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&bytes)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(64).collect();
        let more = if name.len() > shown.len() { format!("… ({} bytes)", name.len()) } else { String::new() };
        Err(Error::BadRequest(format!(
            "component name {shown:?}{more} is not valid: use 1-128 letters, digits, '-', '_' or '.', and not \".\" or \"..\""
        )))
    }
}

fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::InvalidComponent("the upload is empty: send the component's bytes as the body".into()));
    }
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(Error::InvalidComponent("not a WebAssembly binary (it does not start with \\0asm)".into()));
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(Error::InvalidComponent(
            "this is a core WebAssembly module, not a component: build for wasm32-wasip2, \
             or wrap it with `wasm-tools component new`"
                .into(),
        ));
    }
    Ok(())
}

/// Does an exported interface name satisfy an import of `wanted`, by WIT
/// semver rules (same package and interface; `1.2.0` serves `1.0.0`; `0.2.x`
/// serves `0.2.y`)?
pub fn interface_matches(exported: &str, wanted: &str) -> bool {
    if exported == wanted {
        return true;
    }
    let split = |s: &str| -> Option<(String, Vec<u64>)> {
        let (base, ver) = s.split_once('@')?;
        let nums: Option<Vec<u64>> = ver.split(['.', '-', '+']).take(3).map(|p| p.parse().ok()).collect();
        Some((base.to_string(), nums?))
    };
    match (split(exported), split(wanted)) {
        (Some((eb, ev)), Some((wb, wv))) if eb == wb && ev.len() == 3 && wv.len() == 3 => {
            if ev[0] != wv[0] {
                return false;
            }
            if ev[0] == 0 {
                // 0.x: the minor version is the compatibility boundary.
                ev[1] == wv[1] && ev[2] >= wv[2]
            } else {
                (ev[1], ev[2]) >= (wv[1], wv[2])
            }
        }
        _ => false,
    }
}

fn describe(engine: &wasmtime::Engine, name: &str, digest: &str, bytes: &[u8], component: Component) -> Result<LoadedComponent> {
    let ty = component.component_type();
    let mut functions = Vec::new();
    let mut interfaces = Vec::new();
    for (export, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(f) => {
                if is_toolchain_export(None, export) {
                    continue;
                }
                let Some(index) = component.get_export_index(None, export) else {
                    continue;
                };
                functions.push(ExportedFunction {
                    name: export.to_string(),
                    index,
                    params: f.params().map(|(n, t)| (n.to_string(), t)).collect(),
                    results: f.results().collect(),
                });
            }
            ComponentItem::ComponentInstance(inst) => {
                if is_toolchain_export(Some(export), "") {
                    continue;
                }
                interfaces.push(export.to_string());
                let Some(iface_index) = component.get_export_index(None, export) else {
                    continue;
                };
                for (fname, fitem) in inst.exports(engine) {
                    if let ComponentItem::ComponentFunc(f) = fitem.ty {
                        if is_toolchain_export(Some(export), fname) {
                            continue;
                        }
                        let Some(index) = component.get_export_index(Some(&iface_index), fname) else {
                            continue;
                        };
                        functions.push(ExportedFunction {
                            name: format!("{export}#{fname}"),
                            index,
                            params: f.params().map(|(n, t)| (n.to_string(), t)).collect(),
                            results: f.results().collect(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    let imports = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    Ok(LoadedComponent {
        name: name.to_string(),
        digest: digest.to_string(),
        size: bytes.len(),
        component,
        functions,
        interfaces,
        imports,
        bytes: bytes::Bytes::copy_from_slice(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_matching_follows_wit_rules() {
        assert!(interface_matches("a:b/c@0.2.6", "a:b/c@0.2.0"));
        assert!(!interface_matches("a:b/c@0.2.0", "a:b/c@0.2.6"));
        assert!(!interface_matches("a:b/c@0.3.0", "a:b/c@0.2.0"));
        assert!(interface_matches("a:b/c@1.4.0", "a:b/c@1.2.3"));
        assert!(!interface_matches("a:b/c@2.0.0", "a:b/c@1.2.3"));
        assert!(!interface_matches("a:b/d@0.1.0", "a:b/c@0.1.0"));
        assert!(interface_matches("a:b/c", "a:b/c"));
    }

    #[test]
    fn headers_are_checked_before_compiling() {
        assert!(matches!(check_header(b""), Err(Error::InvalidComponent(m)) if m.contains("empty")));
        assert!(matches!(check_header(b"garbage!!"), Err(Error::InvalidComponent(m)) if m.contains("not a WebAssembly")));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0"), Err(Error::InvalidComponent(m)) if m.contains("core WebAssembly module")));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
