//! Dependencies declared in WIT: which engines can link a component (their
//! installed libraries export what it imports), installing libraries, and
//! where each import of a component comes from.

use super::targets::Targets;
use super::Controller;
use crate::engine::{wasi_provides, Job, HOST_INTERFACES};
use crate::runtime::{interface_matches_pub as interface_matches, LoadedComponent};
use crate::value::{signature, wit_type};
pub use crate::wire::InstallReport;
use crate::wire::{ComponentInfo, FunctionInfo, ImportSource, Param};
use crate::{Error, Result};

impl Controller {
    // ---- dependencies ----------------------------------------------------

    /// Interfaces `component` imports that only a library can provide.
    pub(super) fn library_imports(component: &LoadedComponent) -> Vec<&str> {
        component
            .imports
            .iter()
            .map(String::as_str)
            .filter(|i| !wasi_provides(i) && !HOST_INTERFACES.iter().any(|h| i.starts_with(h)))
            .collect()
    }

    pub(super) fn engine_provides(&self, engine: usize, interface: &str) -> bool {
        self.pool.info(engine).is_some_and(|info| info.interfaces.lock().iter().any(|i| interface_matches(i, interface)))
    }

    /// The engines among `candidates` that can link `component`.
    pub(super) fn capable(&self, component: &LoadedComponent, candidates: &[usize]) -> Vec<usize> {
        let needs = Self::library_imports(component);
        candidates.iter().copied().filter(|&e| needs.iter().all(|i| self.engine_provides(e, i))).collect()
    }

    pub(super) fn dependency_error(&self, component: &LoadedComponent, engines: &[usize]) -> Error {
        let mut parts = Vec::new();
        for iface in Self::library_imports(component) {
            let lacking: Vec<String> = engines.iter().filter(|&&e| !self.engine_provides(e, iface)).map(|e| e.to_string()).collect();
            if lacking.is_empty() {
                continue;
            }
            let providers = self.runtime.components.exporters_of(iface);
            let hint = match providers.first() {
                Some(lib) => {
                    format!("install `{lib}`, which exports it: POST /v1/install {{\"component\": \"{lib}\"}} or `wasmpar install {lib}`")
                }
                None => "no uploaded component exports it: upload a library that does, then install it".to_string(),
            };
            parts.push(format!("`{}` imports `{iface}`, which engine(s) {} lack; {hint}", component.name, lacking.join(", ")));
        }
        Error::Dependency(parts.join("; "))
    }

    pub(super) fn require_all(&self, component: &LoadedComponent, ids: &[usize]) -> Result<()> {
        if self.capable(component, ids).len() == ids.len() {
            Ok(())
        } else {
            Err(self.dependency_error(component, ids))
        }
    }

    pub(super) fn require_some(&self, component: &LoadedComponent) -> Result<Vec<usize>> {
        let all = self.pool.ids();
        let ok = self.capable(component, &all);
        if ok.is_empty() {
            Err(self.dependency_error(component, &all))
        } else {
            Ok(ok)
        }
    }

    // ---- libraries -----------------------------------------------------------

    pub async fn install(&self, component: &str, targets: &Targets) -> Result<InstallReport> {
        let lib = self.runtime.components.get(component)?;
        if lib.interfaces.is_empty() {
            return Err(Error::BadRequest(format!(
                "`{component}` exports no interface, so there is nothing to install; tasks are called, libraries are installed"
            )));
        }
        let ids = self.direct(targets, "install")?;
        let missing: Vec<usize> = ids.iter().copied().filter(|&e| !self.capable(&lib, &[e]).contains(&e)).collect();
        if !missing.is_empty() {
            return Err(self.dependency_error(&lib, &missing));
        }
        let mut replaced = Vec::new();
        for &e in &ids {
            let Some(info) = self.pool.info(e) else {
                continue;
            };
            for prev in info.libraries.lock().iter().filter(|l| l.as_str() != component) {
                if let Ok(p) = self.runtime.components.get(prev) {
                    for i in p.interfaces.iter().filter(|i| lib.interfaces.contains(i)) {
                        replaced.push(format!("engine {e}: {prev} ({i})"));
                    }
                }
            }
        }
        let replies = self.each_engine(&ids, |_, reply| Job::Install { component: lib.clone(), reply }).await?;
        let errors: Vec<String> = replies.into_iter().filter_map(|r| r.err()).collect();
        if !errors.is_empty() {
            return Err(Error::Dependency(errors.join("; ")));
        }
        for r in &replaced {
            tracing::info!(library = component, "install replaces {r}");
        }
        Ok(InstallReport { component: component.to_string(), engines: ids, interfaces: lib.interfaces.clone(), replaced })
    }

    /// Drop a component everywhere (its instances go with it).
    pub fn remove_component(&self, name: &str) -> Result<()> {
        let removed = self.runtime.components.remove(name)?;
        for id in self.pool.ids() {
            let _ = self.pool.send(id, Job::Forget { digest: removed.digest.clone() });
        }
        Ok(())
    }

    /// Where each import of `component` comes from, on this cluster.
    pub fn import_sources(&self, component: &LoadedComponent) -> Vec<crate::runtime::ImportInfo> {
        use crate::runtime::{ImportInfo, ImportSource};
        component
            .imports
            .iter()
            .map(|name| {
                if HOST_INTERFACES.iter().any(|h| name.starts_with(h)) {
                    ImportInfo { name: name.clone(), source: ImportSource::Host, library: None }
                } else if wasi_provides(name) {
                    ImportInfo { name: name.clone(), source: ImportSource::Wasi, library: None }
                } else {
                    let lib = self.runtime.components.exporters_of(name).into_iter().next();
                    let source = if lib.is_some() { ImportSource::Library } else { ImportSource::Unresolved };
                    ImportInfo { name: name.clone(), source, library: lib }
                }
            })
            .collect()
    }
}

impl Controller {
    /// What the API shows of a component: its exports with WIT signatures,
    /// and where each of its imports comes from on this cluster.
    pub(super) fn describe(&self, c: &LoadedComponent) -> ComponentInfo {
        let import_sources = self.import_sources(c);
        let unsatisfied: Vec<String> =
            import_sources.iter().filter(|i| i.source == ImportSource::Unresolved).map(|i| i.name.clone()).collect();
        ComponentInfo {
            name: c.name.clone(),
            digest: c.digest.clone(),
            size: c.size,
            exports: c
                .functions
                .iter()
                .map(|f| FunctionInfo {
                    name: f.name.clone(),
                    params: f.params.iter().map(|(n, t)| Param { name: n.clone(), ty: wit_type(t) }).collect(),
                    result: f.results.first().map(wit_type),
                    signature: signature(&f.params, &f.results),
                })
                .collect(),
            interfaces: c.interfaces.clone(),
            imports: c.imports.clone(),
            warning: (!unsatisfied.is_empty()).then(|| {
                format!(
                    "`{}` cannot run until a library providing {} is uploaded and installed: neither the engines nor any uploaded library provide {}",
                    c.name,
                    unsatisfied.join(", "),
                    if unsatisfied.len() == 1 { "it" } else { "them" }
                )
            }),
            unsatisfied,
            import_sources,
        }
    }
}
