"""wasmpar's Python client vs IPython Parallel's client, same machine, same engine count.

    python clients/python/bench/compare.py [--engines 2] [--markdown] [--mandel-n 15] [--ipp-mandel-n 5]

Needs the wasmpar package and numpy in the running interpreter, and
target/release/wasmpar with the guest components (cargo build --release).
IPython Parallel 9.2.0 goes into its own venv, target/bench/ipyparallel-venv
(made on first use). Each side starts its own cluster of --engines engines on
loopback and stops it. Measured, each side with its own idiom:

  apply round trip p50   rc[0].apply_sync(identity, 1), --apply-n times
  balanced tiny map      lv.map_sync(identity, range(--map-n)), chunksize 1
  push 80 MB             dv.push({"big": a}) to every engine, median of 3
  pull 80 MB             rc[0].pull("big"), median of 3
  tutorial Mandelbrot    the tutorial's mandel2.map(X.ravel(), Y.ravel()) on 300x200, 80 iters;
                         wasmpar also with @parallel over mandel-chunk (one call per engine,
                         as IPython Parallel's mandel2.map sends one task per engine), the
                         grid as raw buffers of a framed body and the image back the same way;
                         client request to decoded answer, median of --mandel-n runs after two
                         warm-ups (IPython Parallel: median of --ipp-mandel-n after one, as it is
                         slow); the wasmpar figures also give the server's own wall time
                         (timing.wall_ms) as a median

wasmpar's identity and Mandelbrot are component exports (seed/identity,
mandelbrot/mandel); IPython Parallel's are the tutorial's Python functions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import wasmpar

TOP = Path(__file__).resolve().parents[3]
IPP_VERSION = "9.2.0"
IPP_VENV = TOP / "target" / "bench" / "ipyparallel-venv"


def ipp_python() -> Path:
    py = IPP_VENV / "bin" / "python"
    stamp = IPP_VENV / ".installed"
    want = f"ipyparallel=={IPP_VERSION} numpy=={np.__version__}"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(IPP_VENV)], check=True)
    if not stamp.exists() or stamp.read_text() != want:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *want.split()], check=True)
        stamp.write_text(want)
    return py


def wasmpar_side(args) -> dict:
    binary = Path(os.environ.get("WASMPAR_BIN") or TOP / "target" / "release" / "wasmpar")
    guests = Path(os.environ.get("WASMPAR_GUESTS_DIR") or TOP / "target" / "guests" / "wasm32-wasip2" / "release")
    work = Path(tempfile.mkdtemp(prefix="wasmpar-bench-"))
    conn = work / "cluster.json"
    subprocess.run([str(binary), "--connection-file", str(conn), "start", "-n", str(args.engines), "--daemon",
                    "--cache-dir", str(work / "cache")], check=True)
    out = {}
    try:
        with wasmpar.Client(conn) as rc:
            rc.wait_for_engines(args.engines)
            out["engines"] = len(rc.ids)
            seed = rc.upload(guests / "seed.wasm")
            mandelbrot = rc.upload(guests / "mandelbrot.wasm")

            e0 = rc[0]
            e0.apply_sync(seed.identity, 1)
            times = []
            for _ in range(args.apply_n):
                t = time.perf_counter()
                e0.apply_sync(seed.identity, 1)
                times.append(time.perf_counter() - t)
            out["apply_p50_s"] = statistics.median(times)

            lv = rc.load_balanced_view()
            t = time.perf_counter()
            res = lv.map_sync(seed.identity, range(args.map_n))
            out["map_tiny_s"] = time.perf_counter() - t
            assert res == list(range(args.map_n))

            dv = rc[:]
            big = np.random.random(args.mb * 1024 * 1024 // 8)
            pushes, pulls = [], []
            for _ in range(3):
                t = time.perf_counter()
                dv.push({"big": big}, block=True)
                pushes.append(time.perf_counter() - t)
                t = time.perf_counter()
                back = rc[0].pull("big", block=True)
                pulls.append(time.perf_counter() - t)
                assert np.array_equal(back, big)
            out["push_s"] = statistics.median(pushes)
            out["pull_s"] = statistics.median(pulls)

            mandel2 = dv.parallel(mandelbrot.mandel, block=True)
            x = np.arange(-2, 1, 0.01)
            y = np.arange(-1, 1, 0.01)
            X, Y = np.meshgrid(x, y)

            def per_point():
                return np.reshape(mandel2.map(X.ravel(), Y.ravel(), max_iters=80), (len(y), len(x)))

            im2, out["mandel_s"], out["mandel_wall_ms"] = median_of(per_point, args.mandel_n, rc)
            out["mandel_sum"] = int(im2.sum())
            chunked = dv.parallel(mandelbrot.mandel_chunk, block=True)

            def per_engine():
                return chunked(X.ravel(), Y.ravel(), max_iters=80)

            im3, out["mandel_chunk_s"], out["mandel_chunk_wall_ms"] = median_of(per_engine, args.mandel_n, rc)
            assert int(im3.sum()) == out["mandel_sum"]
    finally:
        subprocess.run([str(binary), "--connection-file", str(conn), "stop"], check=False)
    return out


def median_of(call, n: int, rc, warmups: int = 2):
    """``(last result, median seconds, median server wall_ms)`` of ``n`` calls after ``warmups``."""
    for _ in range(warmups):
        call()
    times, walls = [], []
    for _ in range(n):
        t = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t)
        walls.append((rc._last_task.get("timing") or {}).get("wall_ms") or 0.0)
    return result, statistics.median(times), statistics.median(walls)


# (label, wasmpar's figure, IPython Parallel's figure, target ratio)
ROWS = [
    ("apply round trip p50", "apply_p50_s", "apply_p50_s", 10),
    ("balanced map, {map_n} tiny calls", "map_tiny_s", "map_tiny_s", 100),
    ("push {mb} MB numpy to all engines", "push_s", "push_s", 3),
    ("pull {mb} MB numpy from one engine", "pull_s", "pull_s", None),
    # IPython Parallel's mandel2.map sends one task per engine, which loops over its chunk in
    # Python; wasmpar can do the same (mandel-chunk: one component call per engine) ...
    ("tutorial Mandelbrot, one call per engine (mandel-chunk, framed), median of {mandel_n}",
     "mandel_chunk_s", "mandel_s", 50),
    # ... or call the component once per point (mandel2.map over mandelbrot/mandel).
    ("tutorial Mandelbrot, one call per point (mandel), median of {mandel_n}", "mandel_s", "mandel_s", 10),
]


def fmt(s: float) -> str:
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def table(w: dict, i: dict, args) -> str:
    lines = [
        "| what | wasmpar client | IPython Parallel | ratio (ipp / wasmpar) | target | met |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, wkey, ikey, target in ROWS:
        ratio = i[ikey] / w[wkey]
        met = "" if target is None else ("yes" if ratio >= target else "**no**")
        lines.append(f"| {label.format(**vars(args))} | {fmt(w[wkey])} | {fmt(i[ikey])} | {ratio:.1f}× | "
                     f"{'' if target is None else f'≥ {target}×'} | {met} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--apply-n", type=int, default=300)
    ap.add_argument("--map-n", type=int, default=10000)
    ap.add_argument("--mb", type=int, default=80)
    ap.add_argument("--mandel-n", type=int, default=15, help="wasmpar Mandelbrot runs (median), after 2 warm-ups")
    ap.add_argument("--ipp-mandel-n", type=int, default=5, help="IPython Parallel Mandelbrot runs (median), after 1")
    ap.add_argument("--markdown", action="store_true", help="(the table is always Markdown)")
    args = ap.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, {args.engines} engines each side", flush=True)
    w = wasmpar_side(args)
    print("wasmpar:", json.dumps(w), flush=True)
    py = ipp_python()
    r = subprocess.run([str(py), str(Path(__file__).with_name("ipp_side.py")), str(args.engines), str(args.apply_n),
                        str(args.map_n), str(args.mb), str(args.ipp_mandel_n)], capture_output=True, text=True,
                       timeout=1800)
    if r.returncode != 0:
        sys.exit(f"the IPython Parallel side failed:\n{r.stderr[-4000:]}")
    i = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"ipyparallel {i['version']}:", json.dumps(i), flush=True)
    if i["mandel_sum"] != w["mandel_sum"]:
        sys.exit(f"the two Mandelbrots differ: {w['mandel_sum']} vs {i['mandel_sum']}")
    print()
    print(table(w, i, args))
    print()
    print(f"wasmpar server wall time (timing.wall_ms, median): mandel-chunk {w['mandel_chunk_wall_ms']:.2f} ms, "
          f"mandel {w['mandel_wall_ms']:.2f} ms; IPython Parallel Mandelbrot: first (cold) run "
          f"{fmt(i.get('mandel_first_s', float('nan')))}, then " + ", ".join(fmt(t) for t in i.get("mandel_runs_s", [])))


if __name__ == "__main__":
    main()
