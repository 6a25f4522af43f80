//! The engine thread: its store, live instances, installed libraries and the
//! call loop. See the invariants in `engine/mod.rs`.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value as Json;
use wasmtime::component::types::Type;
use wasmtime::component::{Instance, InstancePre, Linker, ResourceTable, Val};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::info::EngineInfo;
use super::job::{Arg, BatchOutcome, CallSpec, EngineOutput, Job, TaskControl};
use super::limiter::EngineLimiter;
use super::linker::{base_linker, NoNetwork};
use super::output::CapturedStream;
use super::python::{interpreter_lost, python_only, PythonState};
use super::{Namespace, NsValue};
use crate::error::{EngineFailure, FailureCause};
use crate::runtime::{ExportedFunction, LoadedComponent, Runtime};
use crate::value::{json_to_val, val_to_json, Encoding};

/// A store's data: everything an engine keeps between calls.
pub struct EngineState {
    pub id: usize,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub namespace: Namespace,
    stdout: CapturedStream,
    stderr: CapturedStream,
    pub images: Vec<Vec<u8>>,
    pub max_images: usize,
    pub images_cap: usize,
    limiter: EngineLimiter,
    control: Option<Arc<TaskControl>>,
    deadline: Instant,
    interrupted: Option<FailureCause>,
}

impl WasiView for EngineState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for EngineState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: NoNetwork::hooks() }
    }
}

impl EngineState {
    /// `streams`: the captures to keep writing to (a rebuilt store), else new ones.
    fn new(id: usize, runtime: &Runtime, namespace: Namespace, streams: Option<(CapturedStream, CapturedStream)>) -> Self {
        let l = &runtime.limits;
        let (stdout, stderr) = streams.unwrap_or_else(|| (CapturedStream::new(l.output_cap), CapturedStream::new(l.output_cap)));
        // The sandbox: no preopened directories, no environment, no arguments,
        // no sockets or name lookups; clocks and random only.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        EngineState {
            id,
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            namespace,
            stdout,
            stderr,
            images: Vec::new(),
            max_images: l.max_images,
            images_cap: l.images_cap,
            limiter: EngineLimiter {
                memory_cap: l.memory_per_engine,
                memory_used: 0,
                max_instances: l.max_instances,
                max_tables: l.max_tables,
                max_table_elements: l.max_table_elements,
                memory_refused: false,
            },
            control: None,
            deadline: Instant::now(),
            interrupted: None,
        }
    }

    fn take_output(&mut self) -> EngineOutput {
        EngineOutput {
            engine: self.id,
            stdout: self.stdout.take(),
            stderr: self.stderr.take(),
            images: self.images.drain(..).map(|png| base64::engine::general_purpose::STANDARD.encode(png)).collect(),
        }
    }
}

fn new_store(runtime: &Runtime, state: EngineState) -> Store<EngineState> {
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|mut ctx| {
        let s = ctx.data_mut();
        if s.control.as_ref().is_some_and(|c| c.is_cancelled()) {
            s.interrupted = Some(FailureCause::Cancelled);
            return Ok(UpdateDeadline::Interrupt);
        }
        if Instant::now() >= s.deadline {
            s.interrupted = Some(FailureCause::Timeout);
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store
}

pub(super) struct Worker {
    id: usize,
    runtime: Arc<Runtime>,
    store: Store<EngineState>,
    /// WASI and the host interfaces: what `linker` is reset to.
    base_linker: Linker<EngineState>,
    /// `base_linker` plus the installed libraries' exports.
    linker: Linker<EngineState>,
    instances: HashMap<String, Instance>,
    pres: HashMap<String, InstancePre<EngineState>>,
    libraries: Vec<Arc<LoadedComponent>>,
    info: Arc<EngineInfo>,
    /// Fault injection: panic (as a host bug would) at the next call.
    panic_armed: bool,
    /// Whether the current job's counters were already updated.
    job_accounted: bool,
    /// The store holds an instance of the Python runner (a component that
    /// exports `execute`): a trap then costs its interpreter's state.
    runner_live: bool,
}

/// The Python runner, or a component like it: one that exports `execute`
/// (examples/python-runner) and so keeps Python-only state in its instance.
fn is_python_runner(component: &LoadedComponent) -> bool {
    component.functions.iter().any(|f| f.name == "execute")
}

impl Worker {
    pub(super) fn new(id: usize, runtime: Arc<Runtime>, info: Arc<EngineInfo>, namespace: Namespace) -> crate::Result<Self> {
        let base_linker = base_linker(&runtime.engine)?;
        let store = new_store(&runtime, EngineState::new(id, &runtime, namespace, None));
        Ok(Worker {
            id,
            runtime,
            store,
            linker: base_linker.clone(),
            base_linker,
            instances: HashMap::new(),
            pres: HashMap::new(),
            libraries: Vec::new(),
            info,
            panic_armed: false,
            job_accounted: true,
            runner_live: false,
        })
    }

    /// The engine thread's loop: one job at a time until the channel closes.
    pub(super) fn run(mut self, jobs: crossbeam_channel::Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            if matches!(job, Job::Exit) {
                tracing::warn!(engine = self.id, "engine thread ends (fault injection)");
                return;
            }
            // Housekeeping jobs were never counted as queued work.
            self.job_accounted = !job.is_counted();
            if !self.job_accounted {
                self.info.busy.store(true, Ordering::Relaxed);
            }
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.handle(job)));
            self.account_job();
            if outcome.is_err() {
                // A panic outside a call (a host bug): the job's reply channel
                // was dropped while unwinding, which tells its task that this
                // engine failed. Start afresh.
                self.recover_from_panic();
            }
        }
        tracing::debug!(engine = self.id, "engine stopped");
    }

    /// Count the current job as done — before its answer is sent, so whoever
    /// gets the answer sees the engine's counters already updated.
    fn account_job(&mut self) {
        if !std::mem::replace(&mut self.job_accounted, true) {
            self.info.queued.fetch_sub(1, Ordering::Relaxed);
            self.info.completed.fetch_add(1, Ordering::Relaxed);
            self.info.busy.store(false, Ordering::Relaxed);
        }
    }

    fn recover_from_panic(&mut self) {
        tracing::error!(engine = self.id, "engine thread panicked; restarting the engine (namespace kept)");
        self.info.restarts.fetch_add(1, Ordering::Relaxed);
        self.rebuild_store();
    }

    /// `run_batch`, with a panic turned into an `engine` failure after the
    /// engine has recovered.
    fn run_batch_guarded(&mut self, spec: &CallSpec, calls: Vec<Vec<Arg>>) -> Result<Vec<Json>, EngineFailure> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.run_batch(spec, calls))) {
            Ok(r) => r,
            Err(_) => {
                let lost = self.interpreter_note();
                self.recover_from_panic();
                let msg = format!("engine {} crashed while running this task; it was restarted (its namespace is kept){lost}", self.id);
                let name = spec.component.functions.get(spec.function).map_or("?", |f| f.name.as_str());
                Err(self.failure(&spec.component.name, name, FailureCause::Engine, msg, String::new()))
            }
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Call { batch, reply } => {
                let results = self.run_batch_guarded(&batch.spec, batch.calls);
                let output = self.store.data_mut().take_output();
                self.account_job();
                let _ = reply.send(BatchOutcome { engine: self.id, batch: 0, results, output });
            }
            Job::Balanced(work) => {
                while let Some((index, calls)) = work.take(self.id) {
                    let results = self.run_batch_guarded(&work.spec, calls);
                    let output = self.store.data_mut().take_output();
                    if work.sink.send(BatchOutcome { engine: self.id, batch: index, results, output }).is_err() {
                        break;
                    }
                }
            }
            Job::Push { values, reply } => {
                let ns = &mut self.store.data_mut().namespace;
                for (name, value) in values {
                    ns.set(name, value);
                }
                self.account_job();
                let _ = reply.send(());
            }
            Job::PushStaged { name, .. } => {
                // Only a remote link takes these; dropping the reply fails the push.
                tracing::error!(engine = self.id, name, "a staged push reached an in-process engine");
            }
            Job::Pull { names, reply } => {
                let ns = &self.store.data().namespace;
                let values = names.iter().map(|n| ns.get(n).cloned().ok_or_else(|| n.clone())).collect::<Result<Vec<_>, _>>();
                self.account_job();
                let _ = reply.send(values);
            }
            Job::Install { component, reply } => {
                let installed = self.install(component);
                self.account_job();
                let _ = reply.send(installed);
            }
            Job::Forget { digest } => {
                self.pres.remove(&digest);
                // An instance's memory is freed only with its store: a stale
                // instance left in the store would hold it until a trap. Move
                // the namespace into a fresh store instead (as after a trap).
                if self.instances.remove(&digest).is_some() {
                    tracing::info!(
                        engine = self.id,
                        digest = &digest[..digest.len().min(12)],
                        "old component version dropped: fresh store"
                    );
                    self.rebuild_store();
                }
            }
            Job::Panic => self.panic_armed = true,
            Job::Exit => {}
        }
    }

    fn run_batch(&mut self, spec: &CallSpec, calls: Vec<Vec<Arg>>) -> Result<Vec<Json>, EngineFailure> {
        let Some(f) = spec.component.functions.get(spec.function) else {
            return Err(self.failure(&spec.component.name, "?", FailureCause::Argument, "no such function".into(), String::new()));
        };
        spec.control.mark_started();
        self.store.data_mut().control = Some(spec.control.clone());
        let outcome = self.run_calls(spec, f, calls);
        // A finished task's cancel flag must not interrupt what runs next.
        self.store.data_mut().control = None;
        outcome
    }

    fn run_calls(&mut self, spec: &CallSpec, f: &ExportedFunction, calls: Vec<Vec<Arg>>) -> Result<Vec<Json>, EngineFailure> {
        let CallSpec { component, encoding, timeout, control, .. } = spec;
        let (encoding, timeout) = (*encoding, *timeout);
        let result_ty = f.results.first().cloned();
        let mut out = Vec::with_capacity(calls.len());
        let mut results = vec![Val::Bool(false); f.results.len()];
        // Looked up once per batch: a batch stops at its first failure, and
        // only a failure replaces the store (and so the instance).
        let func = self.func_for(component, f)?;
        // Array kernels skip `Val`s where their arguments allow (engine/typed.rs).
        let typed_shape = super::typed::shape(&f.params, &f.results);
        for args in calls {
            if control.is_cancelled() {
                return Err(self.failure(&component.name, &f.name, FailureCause::Cancelled, "cancelled".into(), String::new()));
            }
            if let Some((kinds, dtype)) = &typed_shape {
                if let Some(typed_args) = super::typed::typed_args(kinds, &args) {
                    self.arm_limits(timeout);
                    match super::typed::call(func, &mut self.store, typed_args, *dtype, encoding) {
                        Ok(Some(json)) => {
                            out.push(json);
                            control.done.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => return Err(self.after_trap(component, f, e, timeout)),
                    }
                }
            }
            let vals = self.resolve_args(component, f, args)?;
            self.call_one(component, f, func, &vals, &mut results, timeout)?;
            out.push(match (&result_ty, results.first()) {
                // A top-level `result`: `ok` is the value, `err` a failure (API.md, "Results").
                (Some(Type::Result(r)), Some(Val::Result(v))) => match v {
                    Ok(Some(p)) => r.ok().map_or(Json::Null, |t| val_to_json(&t, p, encoding)),
                    Ok(None) => Json::Null,
                    Err(p) => return Err(self.returned_err(component, f, r.err().as_ref(), p.as_deref())),
                },
                (Some(t), Some(v)) => val_to_json(t, v, encoding),
                _ => Json::Null,
            });
            control.done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }

    fn resolve_args(&mut self, component: &LoadedComponent, f: &ExportedFunction, args: Vec<Arg>) -> Result<Vec<Val>, EngineFailure> {
        let mut vals = Vec::with_capacity(args.len());
        for (arg, (pname, ty)) in args.into_iter().zip(&f.params) {
            match arg {
                Arg::Val(v) => vals.push(v),
                Arg::Row(..) | Arg::Rows(..) => match arg.array_val(ty, pname) {
                    Some(Ok(v)) => vals.push(v),
                    Some(Err(e)) => {
                        return Err(self.failure(&component.name, &f.name, FailureCause::Argument, e.to_string(), String::new()))
                    }
                    None => {}
                },
                Arg::Ref(name) => {
                    let ns = &self.store.data().namespace;
                    let converted = match ns.get(&name) {
                        None => Err(match PythonState::of(ns).as_ref().and_then(|s| s.type_of(&name)) {
                            Some(ty) => format!("argument `{pname}`: global {}", python_only(&name, self.id, ty)),
                            None => format!("argument `{pname}`: global `{}` is not set on engine {}", crate::error::cut(&name), self.id),
                        }),
                        Some(value) => ns_to_val(value, ty, pname).map_err(|e| format!("{e} (from global `{name}`)")),
                    };
                    match converted {
                        Ok(v) => vals.push(v),
                        Err(msg) => return Err(self.failure(&component.name, &f.name, FailureCause::Argument, msg, String::new())),
                    }
                }
            }
        }
        Ok(vals)
    }

    fn func_for(&mut self, component: &LoadedComponent, f: &ExportedFunction) -> Result<wasmtime::component::Func, EngineFailure> {
        if std::mem::take(&mut self.panic_armed) {
            panic!("fault injection: engine {} panics in a call of {}", self.id, f.name);
        }
        let instance = self.instance_for(component, &f.name)?;
        instance.get_func(&mut self.store, f.index).ok_or_else(|| {
            self.failure(&component.name, &f.name, FailureCause::Argument, "the export is not a function".into(), String::new())
        })
    }

    fn call_one(
        &mut self,
        component: &LoadedComponent,
        f: &ExportedFunction,
        func: wasmtime::component::Func,
        args: &[Val],
        results: &mut [Val],
        timeout: Duration,
    ) -> Result<(), EngineFailure> {
        self.arm_limits(timeout);
        match func.call(&mut self.store, args, results) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.after_trap(component, f, e, timeout)),
        }
    }

    /// A fresh deadline (and fuel budget) for what runs next in the store.
    fn arm_limits(&mut self, timeout: Duration) {
        let s = self.store.data_mut();
        s.deadline = Instant::now() + timeout;
        s.interrupted = None;
        self.store.set_epoch_deadline(1);
        if let Some(fuel) = self.runtime.limits.fuel {
            let _ = self.store.set_fuel(fuel);
        }
    }

    fn instance_for(&mut self, component: &LoadedComponent, function: &str) -> Result<Instance, EngineFailure> {
        if let Some(i) = self.instances.get(&component.digest) {
            return Ok(*i);
        }
        if !self.pres.contains_key(&component.digest) {
            let pre = self.linker.instantiate_pre(&component.component).map_err(|e| {
                self.failure(
                    &component.name,
                    function,
                    FailureCause::Dependency,
                    format!("cannot link `{}` on engine {}: {e:#}", component.name, self.id),
                    String::new(),
                )
            })?;
            self.pres.insert(component.digest.clone(), pre);
        }
        self.arm_limits(self.runtime.limits.call_timeout);
        let Some(pre) = self.pres.get(&component.digest) else {
            return Err(self.failure(&component.name, function, FailureCause::Engine, "instance template vanished".into(), String::new()));
        };
        match pre.instantiate(&mut self.store) {
            Ok(i) => {
                self.instances.insert(component.digest.clone(), i);
                self.runner_live |= is_python_runner(component);
                Ok(i)
            }
            Err(e) => {
                let refused = std::mem::take(&mut self.store.data_mut().limiter.memory_refused);
                let msg = if refused {
                    format!(
                        "cannot instantiate `{}`: the engine's memory cap of {} MiB is reached",
                        component.name,
                        self.runtime.limits.memory_per_engine >> 20
                    )
                } else {
                    format!("cannot instantiate `{}`: {e:#}", component.name)
                };
                // A trap during instantiation (a start function, the memory
                // cap) marks the store trapped like any other.
                let lost = self.interpreter_note();
                self.rebuild_store();
                Err(self.failure(&component.name, function, FailureCause::Trap, format!("{msg}{lost}"), String::new()))
            }
        }
    }

    /// Turn a failed call into an `EngineFailure` and start a fresh store:
    /// wasmtime marks the whole store as trapped, so no instance in it may be
    /// entered again.
    fn after_trap(&mut self, component: &LoadedComponent, f: &ExportedFunction, e: wasmtime::Error, timeout: Duration) -> EngineFailure {
        let state = self.store.data_mut();
        let interrupted = state.interrupted.take();
        let memory_refused = std::mem::take(&mut state.limiter.memory_refused);
        let stderr = state.stderr.peek();
        let trace = e.downcast_ref::<wasmtime::WasmBacktrace>().map(|bt| bt.to_string()).unwrap_or_default();
        let trap = e.downcast_ref::<Trap>().copied();
        let (cause, message) = match (interrupted, trap) {
            (Some(FailureCause::Cancelled), _) => (FailureCause::Cancelled, "cancelled while running".to_string()),
            (Some(FailureCause::Timeout), _) => {
                (FailureCause::Timeout, format!("deadline of {:.3} s exceeded: the call was interrupted", timeout.as_secs_f64()))
            }
            (_, _) if memory_refused => (
                FailureCause::Trap,
                format!(
                    "memory cap of {} MiB per engine exceeded: an allocation was refused and the task trapped",
                    self.runtime.limits.memory_per_engine >> 20
                ),
            ),
            (_, Some(Trap::StackOverflow)) => (
                FailureCause::Trap,
                format!("wasm stack overflow (the stack is limited to {} KiB)", self.runtime.limits.max_wasm_stack >> 10),
            ),
            (_, Some(Trap::OutOfFuel)) => (FailureCause::Timeout, "fuel exhausted: the call ran out of its instruction budget".to_string()),
            _ => {
                let base = match trap {
                    Some(t) => t.to_string(),
                    None => format!("{e:#}").lines().next().unwrap_or("trap").to_string(),
                };
                match guest_message(&stderr) {
                    Some(p) => (FailureCause::Trap, format!("{p} ({base})")),
                    None => (FailureCause::Trap, base),
                }
            }
        };
        let lost = self.interpreter_note();
        self.rebuild_store();
        self.failure(&component.name, &f.name, cause, format!("{message}{lost}"), trace)
    }

    /// What rebuilding the store now costs the Python runner, as the tail of
    /// the failing call's error ("; the Python interpreter on engine 0 was
    /// restarted: …"), or nothing when no runner instance is in the store.
    fn interpreter_note(&self) -> String {
        if !self.runner_live {
            return String::new();
        }
        let state = PythonState::of(&self.store.data().namespace);
        format!("; {}", interpreter_lost(self.id, state.as_ref()))
    }

    /// A call that returned a WIT `err`: `message` is the payload's last
    /// line (a Python traceback's exception), `trace` the whole text.
    fn returned_err(&self, component: &LoadedComponent, f: &ExportedFunction, ty: Option<&Type>, payload: Option<&Val>) -> EngineFailure {
        let text = match (ty, payload) {
            (_, Some(Val::String(s))) => s.clone(),
            (Some(t), Some(v)) => val_to_json(t, v, Encoding::Json).to_string(),
            _ => String::new(),
        };
        let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
        let message = match last {
            Some(l) => l.chars().take(2000).collect(),
            None => "the call returned an error".to_string(),
        };
        let trace = if text.trim() == message { String::new() } else { text };
        self.failure(&component.name, &f.name, FailureCause::Error, message, trace)
    }

    fn failure(&self, component: &str, function: &str, cause: FailureCause, message: String, trace: String) -> EngineFailure {
        EngineFailure { engine: self.id, function: format!("{component}/{function}"), message, trace, cause }
    }

    /// A fresh store with the same namespace. Instance templates survive
    /// (they belong to the engine, not the store) unless libraries must be
    /// re-linked: their definitions point into the old store.
    fn rebuild_store(&mut self) {
        let old = self.store.data_mut();
        let namespace = std::mem::take(&mut old.namespace);
        // What the call printed before it trapped is still the call's output:
        // the new store writes to the same captures.
        let streams = (old.stdout.clone(), old.stderr.clone());
        let images = std::mem::take(&mut old.images);
        let mut state = EngineState::new(self.id, &self.runtime, namespace, Some(streams));
        state.images = images;
        self.store = new_store(&self.runtime, state);
        self.instances.clear();
        self.runner_live = false;
        let libraries = std::mem::take(&mut self.libraries);
        if libraries.is_empty() {
            return;
        }
        self.pres.clear();
        self.linker = self.base_linker.clone();
        tracing::warn!(engine = self.id, count = libraries.len(), "store rebuilt: libraries re-instantiated, their state is reset");
        for lib in libraries {
            if let Err(e) = self.install(lib.clone()) {
                tracing::error!(engine = self.id, library = lib.name, "cannot re-install library: {e}");
            }
        }
    }

    /// Instantiate a library and define each function of each interface it
    /// exports in this engine's linker, so later tasks link against it.
    fn install(&mut self, component: Arc<LoadedComponent>) -> Result<Vec<String>, String> {
        if component.interfaces.is_empty() {
            return Err(format!("`{}` exports no interface, so it is not a library", component.name));
        }
        let pre = self
            .linker
            .instantiate_pre(&component.component)
            .map_err(|e| format!("cannot link library `{}` on engine {}: {e:#}", component.name, self.id))?;
        self.arm_limits(self.runtime.limits.call_timeout);
        let instance = match pre.instantiate(&mut self.store) {
            Ok(i) => i,
            Err(e) => {
                // The store may be marked trapped now; the libraries installed
                // so far are re-instantiated in a fresh one.
                let lost = self.interpreter_note();
                self.rebuild_store();
                return Err(format!("cannot instantiate library `{}` on engine {}: {e:#}{lost}", component.name, self.id));
            }
        };
        for iface in &component.interfaces {
            let mut linker_iface = self.linker.instance(iface).map_err(|e| format!("{e:#}"))?;
            for f in component.functions.iter().filter(|f| f.name.starts_with(&format!("{iface}#"))) {
                let fname = f.name[iface.len() + 1..].to_string();
                let func = instance
                    .get_func(&mut self.store, f.index)
                    .ok_or_else(|| format!("library `{}` lost its export {fname}", component.name))?;
                linker_iface
                    .func_new(&fname, move |mut store, _ty, params, results| func.call(&mut store, params, results))
                    .map_err(|e| format!("{e:#}"))?;
            }
        }
        // Templates made before this install link the old definitions.
        self.pres.clear();
        self.libraries.retain(|l| !l.interfaces.iter().any(|i| component.interfaces.contains(i)));
        self.libraries.push(component.clone());
        let mut names: Vec<String> = self.libraries.iter().map(|l| l.name.clone()).collect();
        names.dedup();
        *self.info.libraries.lock() = names.clone();
        *self.info.interfaces.lock() = self.libraries.iter().flat_map(|l| l.interfaces.clone()).collect();
        Ok(component.interfaces.clone())
    }
}

/// Why the guest trapped, in its own words, from what it printed to stderr:
/// the exception line of a Python traceback (componentize-py then aborts
/// through a Rust panic of its own, which says less), the message above a
/// JavaScript error's "Stack:", a Rust panic's message, else the last line
/// printed (C's `fprintf(stderr, …)` before `abort()`).
fn guest_message(stderr: &str) -> Option<String> {
    if let Some(start) = stderr.rfind("Traceback (most recent call last):") {
        let exception = stderr[start..].lines().skip(1).find(|l| !l.starts_with(' ') && !l.trim().is_empty());
        if let Some(line) = exception {
            return Some(line.trim().to_string());
        }
    }
    // StarlingMonkey (componentize-js): the error's message, "Stack:", its frames.
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(stack) = lines.iter().rposition(|l| *l == "Stack:") {
        let first = lines[..stack].iter().rposition(|l| l.trim().is_empty()).map_or(0, |i| i + 1);
        if first < stack {
            return Some(lines[first..stack].join("\n"));
        }
    }
    panic_message(stderr).or_else(|| {
        let last = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
        Some(last.chars().take(2000).collect())
    })
}

/// The message of a Rust guest's panic, from what it printed to stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, body) = rest.split_once('\n')?;
    let body: Vec<&str> = body.lines().take_while(|l| !l.starts_with("note:")).collect();
    Some(format!("{} (panicked at {})", body.join("\n").trim(), location.trim_end_matches(':')))
}

/// A namespace value as an argument of WIT type `ty`.
fn ns_to_val(value: &NsValue, ty: &Type, param: &str) -> Result<Val, String> {
    if let Type::List(l) = ty {
        match (value, l.ty()) {
            (NsValue::FloatList(v), Type::Float64) => return Ok(Val::List(v.iter().map(|&x| Val::Float64(x)).collect())),
            (NsValue::FloatArray { data, .. }, Type::Float64) => return Ok(Val::List(data.iter().map(|&x| Val::Float64(x)).collect())),
            (NsValue::IntList(v), Type::S64) => return Ok(Val::List(v.iter().map(|&x| Val::S64(x)).collect())),
            (NsValue::IntList(v), Type::Float64) => return Ok(Val::List(v.iter().map(|&x| Val::Float64(x as f64)).collect())),
            _ => {}
        }
    }
    json_to_val(ty, &value.to_json(Encoding::Json), param).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{guest_message, panic_message};

    #[test]
    fn finds_the_guest_panic_message() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("boom (panicked at src/lib.rs:10:5)"));
        assert_eq!(panic_message("nothing here"), None);
    }

    #[test]
    fn finds_the_guest_message_in_other_languages() {
        let python = "Traceback (most recent call last):\n  File \"app.py\", line 9, in fail\n    raise ValueError(msg)\nValueError: boom\n\nthread '<unnamed>' panicked at runtime/src/lib.rs:1280:25:\nPython function threw an unexpected exception\n";
        assert_eq!(guest_message(python).as_deref(), Some("ValueError: boom"));
        let rust = "thread '<unnamed>' panicked at src/lib.rs:10:5:\nboom\n";
        assert_eq!(guest_message(rust).as_deref(), Some("boom (panicked at src/lib.rs:10:5)"));
        let js = "earlier output\n\nboom\nStack:\n  fail@app.js:70:9\n  export_fail@initializer.js:874:15\n\nRedirecting call to abort() to mozalloc_abort\n";
        assert_eq!(guest_message(js).as_deref(), Some("boom"));
        assert_eq!(guest_message("some output\nerror: boom\n\n").as_deref(), Some("error: boom"));
        assert_eq!(guest_message("  \n"), None);
    }
}
