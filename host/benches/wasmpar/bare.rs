//! Bare-wasmtime baselines (in the spirit of wasmCloud's benches): the same
//! components called straight through wasmtime, with no scheduler, no JSON
//! and no engine thread, so each wasmpar figure has a floor beside it.

use std::time::{Duration, Instant};

use wasmtime::component::{Component, Instance, Linker, ResourceTable, Val};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// `bytes` instantiated in a store of its own; wasmpar's host imports
/// (namespace, display) trap if called, which these baselines never do.
pub fn instance(bytes: &[u8], epochs: bool) -> (Store<Bare>, Instance) {
    let mut config = wasmtime::Config::new();
    // As wasmpar's runtime configures it, minus what is being isolated.
    config.concurrency_support(false).epoch_interruption(epochs).cranelift_opt_level(wasmtime::OptLevel::Speed);
    let engine = wasmtime::Engine::new(&config).expect("engine");
    let component = Component::new(&engine, bytes).expect("component");
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    linker.define_unknown_imports_as_traps(&component).expect("stubs");
    let mut store = Store::new(&engine, Bare { wasi: WasiCtxBuilder::new().build(), table: ResourceTable::new() });
    store.set_epoch_deadline(u64::MAX);
    let instance = linker.instantiate(&mut store, &component).expect("instantiate");
    (store, instance)
}

/// One call of `mandel-chunk` over the whole grid: through `Func::call` with
/// `Val`s (as wasmpar calls it), or through `TypedFunc`, where the lists are
/// copied into and out of guest memory as whole slices.
pub fn mandel_chunk(xs: &[f64], ys: &[f64], iters: u32, epochs: bool, typed: bool) -> Duration {
    let (mut store, instance) = instance(wasmpar::examples::MANDELBROT_BYTES, epochs);
    let f = instance.get_func(&mut store, "mandel-chunk").expect("mandel-chunk");
    if typed {
        let typed = f.typed::<(&[f64], &[f64], u32), (Vec<u32>,)>(&store).expect("typed");
        let start = Instant::now();
        let (out,) = typed.call(&mut store, (xs, ys, iters)).expect("call");
        let took = start.elapsed();
        assert_eq!(out.len(), xs.len().min(ys.len()));
        return took;
    }
    let args = [
        Val::List(xs.iter().map(|&x| Val::Float64(x)).collect()),
        Val::List(ys.iter().map(|&y| Val::Float64(y)).collect()),
        Val::U32(iters),
    ];
    let mut out = [Val::Bool(false)];
    let start = Instant::now();
    f.call(&mut store, &args, &mut out).expect("call");
    start.elapsed()
}

/// ns per call of `seed/identity`: (through `Func::call` with `Val`s, through `TypedFunc`).
pub fn identity_per_call(calls: usize) -> (f64, f64) {
    let seed = std::fs::read(wasmpar::examples::SEED_WASM).expect("seed.wasm");
    let (mut store, instance) = instance(&seed, true);
    let f = instance.get_func(&mut store, "identity").expect("identity");
    let mut out = [Val::S64(0)];
    for i in 0..1000 {
        f.call(&mut store, &[Val::S64(i)], &mut out).expect("warm-up");
    }
    let start = Instant::now();
    for i in 0..calls as i64 {
        f.call(&mut store, &[Val::S64(i)], &mut out).expect("call");
    }
    let untyped = start.elapsed().as_secs_f64() * 1e9 / calls as f64;
    assert_eq!(out[0], Val::S64(calls as i64 - 1));

    let typed = f.typed::<(i64,), (i64,)>(&store).expect("typed");
    let mut last = 0;
    let start = Instant::now();
    for i in 0..calls as i64 {
        (last,) = typed.call(&mut store, (i,)).expect("call");
    }
    let typed_ns = start.elapsed().as_secs_f64() * 1e9 / calls as f64;
    assert_eq!(last, calls as i64 - 1);
    (untyped, typed_ns)
}
