//! `wasmpar demo`, the main job: an embedded cluster (no server), the
//! built-in Mandelbrot component, the tutorial's grid and a larger one
//! computed on one engine and over all, a table of times and speed-ups, and
//! the image written as a PNG.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value as Json};

use super::args::arange_values;
use super::output::Printer;
use crate::engine::EnginePool;
use crate::runtime::{Limits, Runtime};
use crate::scheduler::{Controller, TaskSpec};
use crate::value::ArrayForm;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Engines (default: the number of cores).
    #[arg(short = 'n', long)]
    pub engines: Option<usize>,
    /// Width of the larger grid, in points.
    #[arg(long, default_value_t = 1500)]
    pub width: usize,
    /// Height of the larger grid, in points.
    #[arg(long, default_value_t = 1000)]
    pub height: usize,
    /// Iterations per point on the larger grid.
    #[arg(long, default_value_t = 1000)]
    pub max_iters: u32,
    /// Where to write the image.
    #[arg(long, default_value = "mandelbrot.png")]
    pub out: PathBuf,
}

struct Row {
    grid: String,
    method: &'static str,
    engines: usize,
    wall: Duration,
    serial: Duration,
}

pub fn run(a: &DemoArgs, p: &Printer) -> Result<ExitCode> {
    super::cluster::init_logging();
    let n = a.engines.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if a.width == 0 || a.height == 0 {
        bail!("--width and --height must be positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let t0 = Instant::now();
    let limits = Limits { call_timeout: Duration::from_secs(600), ..Limits::default() };
    let pool = EnginePool::start(Runtime::new(limits)?, n)?;
    let controller = Controller::new(pool);
    rt.block_on(controller.upload("mandelbrot".into(), bytes::Bytes::from_static(crate::examples::MANDELBROT_BYTES)))?;
    let ready = t0.elapsed();
    if !p.json {
        println!("wasmpar demo: {n} engines, Mandelbrot component compiled and ready in {:.0} ms", ready.as_secs_f64() * 1e3);
    }

    let mut rows = Vec::new();
    // The tutorial's grid: x = arange(-2, 1, 0.01), y = arange(-1, 1, 0.01), 80 iterations.
    let (tx, ty) = (arange_values(-2.0, 1.0, 0.01), arange_values(-1.0, 1.0, 0.01));
    let tutorial = Grid::new(&tx, &ty, 80);
    let name = format!("tutorial {}x{}, 80 iters", tx.len(), ty.len());
    let (serial, ref_counts) = rt.block_on(tutorial.by_rows(&controller, json!([0])))?;
    rows.push(Row { grid: name.clone(), method: "one engine, row chunks", engines: 1, wall: serial, serial });
    let (wall, counts) = rt.block_on(tutorial.by_rows(&controller, json!("balanced")))?;
    check_same(&ref_counts, &counts)?;
    rows.push(Row { grid: name.clone(), method: "balanced, row chunks", engines: n, wall, serial });
    let (wall, counts) = rt.block_on(tutorial.elementwise(&controller))?;
    check_same(&ref_counts, &counts)?;
    rows.push(Row { grid: name, method: "map, one call per point", engines: n, wall, serial });

    // A grid large enough that the serial run takes a while.
    let step_x = 3.0 / a.width as f64;
    let step_y = 2.0 / a.height as f64;
    let (bx, by) = (
        (0..a.width).map(|i| -2.0 + i as f64 * step_x).collect::<Vec<_>>(),
        (0..a.height).map(|j| -1.0 + j as f64 * step_y).collect::<Vec<_>>(),
    );
    let big = Grid::new(&bx, &by, a.max_iters);
    let name = format!("{}x{}, {} iters", a.width, a.height, a.max_iters);
    let (serial, ref_counts) = rt.block_on(big.by_rows(&controller, json!([0])))?;
    rows.push(Row { grid: name.clone(), method: "one engine, row chunks", engines: 1, wall: serial, serial });
    let (wall, counts) = rt.block_on(big.by_rows(&controller, json!("balanced")))?;
    check_same(&ref_counts, &counts)?;
    rows.push(Row { grid: name, method: "balanced, row chunks", engines: n, wall, serial });

    write_png(&a.out, a.width, a.height, a.max_iters, &counts)?;
    controller.shutdown_engines();

    if p.json {
        let table: Vec<Json> = rows
            .iter()
            .map(|r| {
                json!({"grid": r.grid, "method": r.method, "engines": r.engines, "wall_ms": r.wall.as_secs_f64() * 1e3,
                            "speedup": r.serial.as_secs_f64() / r.wall.as_secs_f64()})
            })
            .collect();
        p.print_json(&json!({"engines": n, "ready_ms": ready.as_secs_f64() * 1e3, "runs": table, "image": a.out}));
    } else {
        println!();
        println!("{:<28} {:<26} {:>7} {:>11} {:>9}", "grid", "method", "engines", "wall", "speed-up");
        for r in &rows {
            println!(
                "{:<28} {:<26} {:>7} {:>8.1} ms {:>8.2}x",
                r.grid,
                r.method,
                r.engines,
                r.wall.as_secs_f64() * 1e3,
                r.serial.as_secs_f64() / r.wall.as_secs_f64()
            );
        }
        println!("\nall parallel results equal the serial ones; image written to {}", a.out.display());
        println!("(IPython Parallel in the tutorial: 886 ms serial, 238 ms with @parallel on 8 engines, for the 300x200 grid)");
    }
    Ok(ExitCode::SUCCESS)
}

struct Grid {
    /// x and y of every point, one row per grid line (2-D array forms).
    xs_rows: Json,
    ys_rows: Json,
    xs_flat: Vec<f64>,
    ys_flat: Vec<f64>,
    max_iters: u32,
}

impl Grid {
    fn new(xs: &[f64], ys: &[f64], max_iters: u32) -> Grid {
        let xs_flat: Vec<f64> = ys.iter().flat_map(|_| xs.iter().copied()).collect();
        let ys_flat: Vec<f64> = ys.iter().flat_map(|&y| std::iter::repeat_n(y, xs.len())).collect();
        // Rows as 2-D array forms, as a numpy client would send them: the
        // engines turn each row into component values themselves, in parallel.
        let shape = [ys.len(), xs.len()];
        let xs_rows = ArrayForm::from_f64(shape.to_vec(), &xs_flat).to_json();
        let ys_rows = ArrayForm::from_f64(shape.to_vec(), &ys_flat).to_json();
        Grid { xs_rows, ys_rows, xs_flat, ys_flat, max_iters }
    }

    /// A map of `mandel-chunk` over rows: one call computes a whole row.
    async fn by_rows(&self, c: &Arc<Controller>, targets: Json) -> Result<(Duration, Vec<u32>)> {
        let spec = json!({"op": "map", "component": "mandelbrot", "function": "mandel-chunk",
                          "sequences": [self.xs_rows, self.ys_rows], "kwargs": {"max-iters": self.max_iters},
                          "targets": targets, "chunksize": 1});
        let (wall, result) = run_task(c, spec).await?;
        let counts = result
            .as_array()
            .context("no result")?
            .iter()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .map(|v| v.as_u64().unwrap_or(0) as u32)
            .collect();
        Ok((wall, counts))
    }

    /// The tutorial's elementwise map: one `mandel` call per point, all engines.
    async fn elementwise(&self, c: &Arc<Controller>) -> Result<(Duration, Vec<u32>)> {
        let spec = json!({"op": "map", "component": "mandelbrot", "function": "mandel",
                          "sequences": [self.xs_flat, self.ys_flat], "kwargs": {"max-iters": self.max_iters}, "targets": "all"});
        let (wall, result) = run_task(c, spec).await?;
        Ok((wall, result.as_array().context("no result")?.iter().map(|v| v.as_u64().unwrap_or(0) as u32).collect()))
    }
}

async fn run_task(c: &Arc<Controller>, spec: Json) -> Result<(Duration, Json)> {
    let spec: TaskSpec = serde_json::from_value(spec)?;
    let start = Instant::now();
    let task = c.submit(spec)?;
    task.wait(Duration::MAX).await;
    let wall = start.elapsed();
    let view = task.view();
    match (view.result, view.error) {
        (Some(r), None) => Ok((wall, r)),
        (_, Some(e)) => bail!("{}: {}", e.kind, e.message),
        _ => bail!("the task finished without a result"),
    }
}

fn check_same(a: &[u32], b: &[u32]) -> Result<()> {
    if a != b {
        bail!("parallel results differ from the serial ones ({} vs {} points)", a.len(), b.len());
    }
    Ok(())
}

/// Escape counts as a colour image: black inside the set, a blue-to-yellow ramp outside.
fn write_png(path: &PathBuf, width: usize, height: usize, max_iters: u32, counts: &[u32]) -> Result<()> {
    let mut rgb = Vec::with_capacity(width * height * 3);
    for &c in counts {
        if c >= max_iters {
            rgb.extend_from_slice(&[0, 0, 0]);
        } else {
            let t = (c as f64 + 1.0).ln() / (max_iters as f64 + 1.0).ln();
            let r = (255.0 * (9.0 * (1.0 - t) * t * t * t).min(1.0)) as u8;
            let g = (255.0 * (15.0 * (1.0 - t) * (1.0 - t) * t * t).min(1.0)) as u8;
            let b = (255.0 * (8.5 * (1.0 - t) * (1.0 - t) * (1.0 - t) * t).min(1.0)) as u8;
            rgb.extend_from_slice(&[r, g, b]);
        }
    }
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&rgb)?;
    Ok(())
}
