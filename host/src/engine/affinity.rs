//! Engine threads pinned one to a CPU when a pool has exactly as many
//! engines as the CPUs its process may run on (and at least two).
//!
//! Why: once a `parallel` has woken its engines, every CPU of such a machine
//! is busy. Linux placed two wake-ups made back to back from one CPU on the
//! same other CPU (the first engine had not started running when the second
//! looked for an idle one), and the CPU that then went idle did not pull the
//! waiting engine over until a later tick: on 2 cores, 20–25% of the
//! tutorial's Mandelbrot calls ran their two halves one after the other
//! (`perf sched`, docs/benchmarks.md). Pinned, each engine wakes on its own
//! CPU. The controller wakes the engine pinned to the CPU it runs on last
//! ([`wake_order`]): that one preempts the waker, which by then has nothing
//! left to wake.
//!
//! Invariants:
//! - A pool pins its own engine threads, only when their number is the
//!   number of CPUs in this process's affinity mask, and never with
//!   `WASMPAR_PIN_ENGINES=0`. Fewer engines are left to the scheduler (it
//!   may use the idle CPUs), and so are more (they share CPUs anyway). A
//!   `wasmpar engine -n K` process pins its K the same way; two of them on
//!   one host, each with K = the host's CPUs, share each CPU one engine
//!   apiece, as unpinned threads would on average.
//! - [`EnginePool::send_each`](super::EnginePool::send_each) is where the
//!   wake order is applied; answers keep the jobs' order.
//! - A pin that fails is logged and otherwise ignored: the engine runs
//!   unpinned, as it would on another OS.

/// The CPUs this process may run on, in order (`sched_getaffinity`).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Whether pinning is wanted at all (`WASMPAR_PIN_ENGINES=0` or `off` says no).
fn enabled() -> bool {
    !matches!(std::env::var("WASMPAR_PIN_ENGINES").as_deref(), Ok("0") | Ok("off") | Ok("false"))
}

/// The CPU each of `n` engines is pinned to: `cpus[i]` for engine `i` when
/// `n` is the number of `cpus` and at least two, else none.
pub fn homes_for(n: usize, cpus: &[usize]) -> Vec<Option<usize>> {
    if n >= 2 && n == cpus.len() {
        cpus.iter().map(|&c| Some(c)).collect()
    } else {
        vec![None; n]
    }
}

/// [`homes_for`] this process's CPUs, unless pinning is turned off.
pub fn homes(n: usize) -> Vec<Option<usize>> {
    if enabled() {
        homes_for(n, &allowed_cpus())
    } else {
        vec![None; n]
    }
}

/// Pin the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as in `allowed_cpus`; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: no arguments; -1 on failure.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// `jobs` (by engine id) in the order to wake their engines: the one pinned
/// to `here`, the waker's CPU, last; the others in their order.
pub fn wake_order<T>(mut jobs: Vec<(usize, T)>, home: impl Fn(usize) -> Option<usize>, here: Option<usize>) -> Vec<(usize, T)> {
    if let Some(here) = here {
        // A stable sort on a bool: the others keep their order.
        jobs.sort_by_key(|(id, _)| home(*id) == Some(here));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_pinned_only_when_there_is_one_per_cpu() {
        assert_eq!(homes_for(2, &[0, 1]), vec![Some(0), Some(1)]);
        assert_eq!(homes_for(3, &[2, 5, 7]), vec![Some(2), Some(5), Some(7)], "the process's own CPUs, in order");
        assert_eq!(homes_for(1, &[0]), vec![None], "one engine has nothing to race with");
        assert_eq!(homes_for(2, &[0, 1, 2, 3]), vec![None, None], "fewer engines than CPUs: the scheduler may use the idle ones");
        assert_eq!(homes_for(8, &[0, 1]), vec![None; 8], "more engines than CPUs share them anyway");
    }

    #[test]
    fn the_engine_on_the_wakers_cpu_is_woken_last() {
        let homes = [Some(0), Some(1), Some(2)];
        let home = |id: usize| homes[id];
        let ids = |jobs: Vec<(usize, &str)>| jobs.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        let jobs = || vec![(0, "a"), (1, "b"), (2, "c")];
        assert_eq!(ids(wake_order(jobs(), home, Some(0))), vec![1, 2, 0]);
        assert_eq!(ids(wake_order(jobs(), home, Some(1))), vec![0, 2, 1]);
        assert_eq!(ids(wake_order(jobs(), home, Some(7))), vec![0, 1, 2], "no engine there");
        assert_eq!(ids(wake_order(jobs(), home, None)), vec![0, 1, 2]);
        assert_eq!(ids(wake_order(jobs(), |_| None, Some(0))), vec![0, 1, 2], "unpinned engines");
    }

    /// The CPU lists (`Cpus_allowed_list`) of this process's threads named `name`.
    fn masks_of_threads(name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
            if std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim() != name {
                continue;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            if let Some(list) = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")) {
                out.push(list.trim().to_string());
            }
        }
        out
    }

    #[test]
    fn a_pool_of_one_engine_per_cpu_pins_each_to_its_own() {
        let cpus = allowed_cpus();
        let runtime = crate::runtime::Runtime::new(crate::runtime::Limits::default()).expect("runtime");
        let pool = crate::engine::EnginePool::start(runtime.clone(), cpus.len()).expect("pool");
        for (id, &cpu) in cpus.iter().enumerate() {
            let want = (cpus.len() >= 2).then_some(cpu);
            assert_eq!(pool.home(id), want, "engine {id}");
            if want.is_some() {
                // The kernel keeps 15 bytes of a thread's name ("wasmpar-engine-"),
                // and other tests' pools have engines too: one of them is this one.
                let masks = masks_of_threads("wasmpar-engine-");
                assert!(masks.contains(&cpu.to_string()), "engine {id}'s thread is pinned to cpu {cpu}: masks {masks:?}");
            }
        }
        pool.shutdown();
        // One engine more than CPUs: none pinned.
        let pool = crate::engine::EnginePool::start(runtime, cpus.len() + 1).expect("pool");
        assert!((0..=cpus.len()).all(|id| pool.home(id).is_none()));
        pool.shutdown();
    }

    #[test]
    fn a_thread_pinned_to_a_cpu_runs_there() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty(), "this process may run somewhere");
        let last = *cpus.last().expect("a cpu");
        let seen = std::thread::spawn(move || {
            pin_current_thread(last).expect("pin");
            (allowed_cpus(), current_cpu())
        })
        .join()
        .expect("thread");
        assert_eq!(seen, (vec![last], Some(last)));
    }
}
