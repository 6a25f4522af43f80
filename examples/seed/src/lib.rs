//! The seed tutorial's functions as a wasmpar task component, plus functions
//! that exercise the engine: the namespace, captured output, traps, deadlines,
//! memory limits, stack overflow, and the host's conversion of every WIT type.

// `roundtrip` and the generated export glue take more than clippy's 7 arguments.
#![allow(clippy::too_many_arguments)]

use core::hint::black_box;
use std::io::Write;

use wasmpar_guest::namespace::{self, NamespaceError};

wit_bindgen::generate!({
    world: "wasmpar-examples:seed/seed",
    path: ["../../wit", "wit"],
    with: {
        "wasmpar:engine/namespace@0.1.0": wasmpar_guest::bindings::wasmpar::engine::namespace,
        "wasmpar:engine/display@0.1.0": wasmpar_guest::bindings::wasmpar::engine::display,
    },
});

struct Seed;

export!(Seed);

/// A global as an i64, or a trap naming the problem: "global `a` is not set
/// on this engine", or "global `a`: expected int (i64), found text of 1 bytes".
fn global_i64(name: &str) -> i64 {
    namespace::get::<i64>(name).unwrap_or_else(|e: NamespaceError| panic!("{e}"))
}

fn overflow(what: &str) -> ! {
    panic!("{what} overflows s64")
}

/// `depth`, counted one stack frame at a time; not a tail call: the result goes
/// through `black_box` and a stack buffer escapes, so LLVM can neither turn
/// the recursion into a loop nor drop the frames.
#[inline(never)]
fn recurse_frames(depth: u32) -> u64 {
    if depth == 0 {
        return 0;
    }
    let frame = black_box([u64::from(depth); 8]);
    let below = black_box(recurse_frames(black_box(depth - 1)));
    below + 1 + (frame[7] - u64::from(depth))
}

impl Guest for Seed {
    fn add3(x: i64, y: i64, z: i64) -> i64 {
        x.checked_add(y)
            .and_then(|s| s.checked_add(z))
            .unwrap_or_else(|| overflow("x + y + z"))
    }

    fn hypot2(x: i64, y: i64) -> i64 {
        x.checked_mul(x)
            .and_then(|xx| y.checked_mul(y).and_then(|yy| xx.checked_add(yy)))
            .unwrap_or_else(|| overflow("x² + y²"))
    }

    fn identity(x: i64) -> i64 {
        x
    }

    fn echo_chunk(xs: Vec<i64>) -> Vec<i64> {
        xs
    }

    fn sum_chunk(xs: Vec<i64>) -> i64 {
        xs.iter()
            .try_fold(0i64, |acc, &x| acc.checked_add(x))
            .unwrap_or_else(|| overflow("the sum"))
    }

    fn add_chunks(xs: Vec<i64>, ys: Vec<i64>) -> Vec<i64> {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| x.checked_add(y).unwrap_or_else(|| overflow("x + y")))
            .collect()
    }

    fn affine(x: i64) -> i64 {
        let a = global_i64("a");
        let b = global_i64("b");
        a.checked_mul(x)
            .and_then(|ax| ax.checked_add(b))
            .unwrap_or_else(|| overflow("a·x + b"))
    }

    fn rand(n: u32) -> Vec<f64> {
        (0..n)
            .map(|_| match getrandom::u64() {
                // The top 53 bits, scaled: uniform on [0, 1).
                Ok(r) => (r >> 11) as f64 * (1.0 / (1u64 << 53) as f64),
                Err(e) => panic!("WASI random failed: {e}"),
            })
            .collect()
    }

    fn sum_array(xs: Vec<f64>) -> f64 {
        xs.iter().sum()
    }

    fn squares() {
        let xs: Vec<i64> = match namespace::get("xs") {
            Ok(xs) => xs,
            Err(e) => panic!("{e}"),
        };
        let y: Vec<i64> = xs
            .iter()
            .map(|&x| x.checked_mul(x).unwrap_or_else(|| overflow("x²")))
            .collect();
        namespace::set("y", y);
    }

    fn greet(name: String) -> String {
        println!("hello, {name}");
        format!("hello, {name}")
    }

    fn fail(msg: String) -> u32 {
        panic!("{msg}")
    }

    fn spin() -> u64 {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
            if black_box(false) {
                return n;
            }
        }
    }

    fn hog(mib: u32) -> u32 {
        let bytes = (mib as usize)
            .checked_mul(1 << 20)
            .unwrap_or_else(|| panic!("hog: {mib} MiB does not fit a 32-bit address space"));
        let mut v: Vec<u8> = Vec::new();
        if let Err(e) = v.try_reserve_exact(bytes) {
            panic!("hog: cannot allocate {mib} MiB: {e}");
        }
        v.resize(bytes, 0);
        for i in (0..bytes).step_by(4096) {
            v[i] = 1;
        }
        black_box(&v);
        mib
    }

    fn recurse(depth: u32) -> u64 {
        recurse_frames(depth)
    }

    fn shout(n: u32) -> u32 {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let filler = "x".repeat(93);
        for i in 0..n {
            // 6 digits, a space and 93 x's: 100 characters, then a newline.
            if writeln!(out, "{:06} {filler}", i % 1_000_000).is_err() {
                break;
            }
        }
        let _ = out.flush();
        n
    }

    /// `Ok` text, exactly:
    /// `{x},{y},{label};{tags};{opt};{mode};{flags};{shape}` where
    /// - x, y are Rust `{}` floats (shortest round-trip form: `1`, `2.5`, `-0`, `NaN`, `inf`);
    /// - label is verbatim;
    /// - tags is Rust `{:?}` of the list: `["a", "b"]` (`[]` if empty);
    /// - opt is `Some(3)` or `None`;
    /// - mode is `fast` or `slow`;
    /// - flags are the set ones in declaration order joined by `|` (`read|exec`), or `none`;
    /// - shape is `circle(R)`, `rect(W,H)` (floats as for x) or `none`.
    ///
    /// E.g. `1,2.5,p;["a", "b"];Some(3);fast;read|exec;rect(2,3)`.
    /// An empty label is `Err("empty label")`.
    fn describe(
        p: Point,
        tags: Vec<String>,
        opt: Option<i32>,
        mode: Mode,
        flags: Perms,
        shape: Shape,
    ) -> Result<String, String> {
        if p.label.is_empty() {
            return Err("empty label".to_string());
        }
        let mode = match mode {
            Mode::Fast => "fast",
            Mode::Slow => "slow",
        };
        let set: Vec<&str> = [(Perms::READ, "read"), (Perms::WRITE, "write"), (Perms::EXEC, "exec")]
            .into_iter()
            .filter(|(f, _)| flags.contains(*f))
            .map(|(_, name)| name)
            .collect();
        let flags = if set.is_empty() { "none".to_string() } else { set.join("|") };
        let shape = match shape {
            Shape::Circle(r) => format!("circle({r})"),
            Shape::Rect((w, h)) => format!("rect({w},{h})"),
            Shape::None => "none".to_string(),
        };
        Ok(format!(
            "{},{},{};{:?};{:?};{mode};{flags};{shape}",
            p.x, p.y, p.label, tags, opt
        ))
    }

    fn roundtrip(
        a: u8,
        b: i8,
        c: u16,
        d: i16,
        e: u32,
        f: i32,
        g: u64,
        h: i64,
        i: f32,
        j: f64,
        k: char,
        l: bool,
    ) -> (u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, char, bool) {
        (a, b, c, d, e, f, g, h, i, j, k, l)
    }
}
