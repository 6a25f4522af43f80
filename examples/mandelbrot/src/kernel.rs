//! The Mandelbrot kernel, dependency-free so the host's benchmark can
//! `#[path]`-include this file and compare native code with the component.

/// The seed tutorial's escape count of c = x + iy: iterate z = z² + c from
/// z = 0 and return the first i in 0..max_iters at which |z|² >= 4, or
/// `max_iters` if z never escapes.
#[inline]
pub fn mandel(x: f64, y: f64, max_iters: u32) -> u32 {
    let (mut zr, mut zi) = (0.0f64, 0.0f64);
    // One step: z = z*z + c, computed as Python's complex multiply does;
    // escaped once |z|² >= 4.
    macro_rules! step {
        ($i:expr) => {{
            let r = zr * zr - zi * zi + x;
            zi = 2.0 * zr * zi + y;
            zr = r;
            if zr * zr + zi * zi >= 4.0 {
                return $i;
            }
        }};
    }
    // Sixteen steps per loop trip: the same arithmetic in the same order,
    // but a sixteenth of the loop-header work — in wasm, that is where
    // wasmtime's epoch-interruption check sits (it cost ~45% here at one
    // check a step).
    let mut i = 0;
    while max_iters - i >= 16 {
        step!(i);
        step!(i + 1);
        step!(i + 2);
        step!(i + 3);
        step!(i + 4);
        step!(i + 5);
        step!(i + 6);
        step!(i + 7);
        step!(i + 8);
        step!(i + 9);
        step!(i + 10);
        step!(i + 11);
        step!(i + 12);
        step!(i + 13);
        step!(i + 14);
        step!(i + 15);
        i += 16;
    }
    while i < max_iters {
        step!(i);
        i += 1;
    }
    max_iters
}

/// `mandel` of each pair (xs[i], ys[i]), appended to `out`; as many as the
/// shorter of `xs` and `ys`.
pub fn mandel_chunk(xs: &[f64], ys: &[f64], max_iters: u32, out: &mut Vec<u32>) {
    out.reserve(xs.len().min(ys.len()));
    out.extend(xs.iter().zip(ys).map(|(&x, &y)| mandel(x, y, max_iters)));
}
