//! The table: rows with their targets, the machine facts printed above it,
//! and the small timing helpers every section shares.

use std::time::{Duration, Instant};

/// A target a figure is held to.
#[derive(Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
    pub note: String,
}

impl Row {
    pub fn met(&self) -> Option<bool> {
        match self.target? {
            Target::AtLeast(t) => Some(self.value >= t),
            Target::AtMost(t) => Some(self.value <= t),
        }
    }
}

/// The rows measured so far, printed once at the end (so a section's
/// progress lines on stderr never interleave with the table).
#[derive(Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

impl Table {
    pub fn add(&mut self, name: impl Into<String>, value: f64, unit: &'static str, target: Option<Target>, note: impl Into<String>) {
        self.rows.push(Row { name: name.into(), value, unit, target, note: note.into() });
    }

    /// A heading row (no figure), to group what follows.
    pub fn section(&mut self, title: &str) {
        self.rows.push(Row { name: format!("-- {title}"), value: f64::NAN, unit: "", target: None, note: String::new() });
    }

    pub fn print(&self) {
        println!("{:<72} {:>13} {:<8} {:>12} {:>4}  note", "figure", "value", "unit", "target", "met");
        for r in &self.rows {
            if r.value.is_nan() && r.unit.is_empty() {
                println!("{}", r.name);
                continue;
            }
            let target = match r.target {
                Some(Target::AtLeast(t)) => format!(">= {}", human(t)),
                Some(Target::AtMost(t)) => format!("<= {}", human(t)),
                None => String::new(),
            };
            let met = match r.met() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!("{:<72} {:>13} {:<8} {:>12} {:>4}  {}", r.name, human(r.value), r.unit, target, met, r.note);
        }
        let judged: Vec<&Row> = self.rows.iter().filter(|r| r.target.is_some()).collect();
        let met = judged.iter().filter(|r| r.met() == Some(true)).count();
        println!("\n{met} of {} targets met", judged.len());
    }
}

/// Figures with a sensible number of digits: 0.88, 14.5, 1 052 984.
pub fn human(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a >= 10_000.0 {
        let s = format!("{a:.0}");
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Time `f` once.
pub fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// The median of `k` timings of `f` (the last result is kept): on a shared
/// machine one outlier should not decide a figure.
pub fn median_of<T>(k: usize, mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    let mut times = Vec::with_capacity(k);
    let mut last = None;
    for _ in 0..k {
        let (t, out) = f();
        times.push(t);
        last = Some(out);
    }
    times.sort();
    (times[times.len() / 2], last.expect("k >= 1"))
}

/// The best of `k` timings: for compute and bulk-transfer figures, where the
/// fastest run is the one least disturbed by other processes on the machine.
pub fn best_of<T>(k: usize, mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..k {
        let (t, out) = f();
        if best.as_ref().is_none_or(|(b, _)| t < *b) {
            best = Some((t, out));
        }
    }
    best.expect("k >= 1")
}

pub fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

// ---- machine facts -----------------------------------------------------------

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1-minute load average: on a shared machine, what else competed for the cores.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(String::from)).unwrap_or_else(|| "?".into())
}

/// The wasmtime version actually linked, from the workspace's Cargo.lock.
pub fn wasmtime_version() -> String {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    std::fs::read_to_string(lock)
        .ok()
        .and_then(|s| {
            let at = s.find("\nname = \"wasmtime\"\n")?;
            let v = s[at..].lines().find(|l| l.starts_with("version = "))?;
            Some(v.trim_start_matches("version = ").trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "?".into())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}

/// CPU time (user + system) this process has used so far, all threads.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(u.ru_utime) + tv(u.ru_stime)
}
