//! The seed tutorial's Mandelbrot set as a wasmpar task component.

mod kernel;

wit_bindgen::generate!({
    world: "wasmpar-examples:mandelbrot/mandelbrot",
    path: ["../../wit", "wit"],
    with: {
        "wasmpar:engine/namespace@0.1.0": wasmpar_guest::bindings::wasmpar::engine::namespace,
        "wasmpar:engine/display@0.1.0": wasmpar_guest::bindings::wasmpar::engine::display,
    },
});

struct Mandelbrot;

export!(Mandelbrot);

impl Guest for Mandelbrot {
    fn mandel(x: f64, y: f64, max_iters: u32) -> u32 {
        kernel::mandel(x, y, max_iters)
    }

    fn mandel_chunk(xs: Vec<f64>, ys: Vec<f64>, max_iters: u32) -> Vec<u32> {
        let mut out = Vec::new();
        kernel::mandel_chunk(&xs, &ys, max_iters, &mut out);
        out
    }

    fn render(width: u32, height: u32, max_iters: u32) -> u32 {
        let rgb = match render_rgb(width, height, max_iters) {
            Ok(rgb) => rgb,
            Err(e) => panic!("render: {e}"),
        };
        let png = match wasmpar_guest::display::encode_rgb_png(width, height, &rgb) {
            Ok(png) => png,
            Err(e) => panic!("render: cannot encode the image: {e}"),
        };
        if let Err(e) = wasmpar_guest::display::png(&png) {
            panic!("render: the engine refused the image: {e}");
        }
        u32::try_from(png.len()).unwrap_or(u32::MAX)
    }
}

/// The tutorial's region, x in [-2, 1) and y in [-1, 1), sampled on a
/// width x height grid (top row y = -1, like the tutorial's `imshow`), each
/// escape count mapped to a colour. At 300x200 the sample points are exactly
/// `np.arange(-2, 1, 0.01)` by `np.arange(-1, 1, 0.01)`.
fn render_rgb(width: u32, height: u32, max_iters: u32) -> Result<Vec<u8>, String> {
    if width == 0 || height == 0 {
        return Err(format!("width and height must be positive, not {width}x{height}"));
    }
    let len = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| format!("a {width}x{height} image is too large"))?;
    let mut rgb = Vec::new();
    rgb.try_reserve_exact(len)
        .map_err(|e| format!("cannot allocate a {width}x{height} image: {e}"))?;
    let (dx, dy) = (3.0 / f64::from(width), 2.0 / f64::from(height));
    for row in 0..height {
        let y = -1.0 + f64::from(row) * dy;
        for col in 0..width {
            let x = -2.0 + f64::from(col) * dx;
            rgb.extend_from_slice(&colour(kernel::mandel(x, y, max_iters), max_iters));
        }
    }
    Ok(rgb)
}

/// A smooth palette: points in the set (count == max_iters) are black, fast
/// escapes dark blue, slow escapes through orange to white-ish yellow.
fn colour(count: u32, max_iters: u32) -> [u8; 3] {
    if count >= max_iters {
        return [0, 0, 0];
    }
    let t = (f64::from(count) / f64::from(max_iters.max(1))).sqrt();
    let s = 1.0 - t;
    let channel = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    [
        channel(9.0 * s * t * t * t + 0.1 * t),
        channel(15.0 * s * s * t * t + 0.05 * t),
        channel(8.5 * s * s * s * t + 0.3 * s * t + 0.15),
    ]
}
