//! The Mandelbrot kernel, dependency-free so the host's benchmark can
//! `#[path]`-include this file and compare native code with the component.

/// The seed tutorial's escape count of c = x + iy: iterate z = z² + c from
/// z = 0 and return the first i in 0..max_iters at which |z|² >= 4, or
/// `max_iters` if z never escapes.
#[inline]
pub fn mandel(x: f64, y: f64, max_iters: u32) -> u32 {
    let (mut zr, mut zi) = (0.0f64, 0.0f64);
    for i in 0..max_iters {
        // z = z*z + c, computed as Python's complex multiply does.
        let r = zr * zr - zi * zi + x;
        zi = 2.0 * zr * zi + y;
        zr = r;
        if zr * zr + zi * zi >= 4.0 {
            return i;
        }
    }
    max_iters
}

/// `mandel` of each pair (xs[i], ys[i]), appended to `out`; as many as the
/// shorter of `xs` and `ys`.
pub fn mandel_chunk(xs: &[f64], ys: &[f64], max_iters: u32, out: &mut Vec<u32>) {
    out.reserve(xs.len().min(ys.len()));
    out.extend(xs.iter().zip(ys).map(|(&x, &y)| mandel(x, y, max_iters)));
}
