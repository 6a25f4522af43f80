"""IPython Parallel's side of bench/compare.py: run by the ipyparallel venv's python.

Starts a local cluster of N engines (ipp.Cluster), measures the same four
things as wasmpar's side with the tutorial's Python functions, prints one JSON
object, stops the cluster. The Mandelbrot is the median of MANDEL_N runs
(argument 5, default 5) after one warm-up.

    ipp_side.py N APPLY_N MAP_N MB [MANDEL_N]
"""

import json
import statistics
import sys
import time

import ipyparallel as ipp
import numpy as np


def main():
    n_engines, apply_n, map_n, mb = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    mandel_n = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    cluster = ipp.Cluster(n=n_engines, log_level=40)
    rc = cluster.start_and_connect_sync()
    try:
        rc.wait_for_engines(n_engines, timeout=120)
        out = {"version": ipp.__version__, "engines": len(rc.ids)}
        ident = lambda x: x  # noqa: E731

        e0 = rc[0]
        e0.apply_sync(ident, 1)
        times = []
        for _ in range(apply_n):
            t = time.perf_counter()
            e0.apply_sync(ident, 1)
            times.append(time.perf_counter() - t)
        out["apply_p50_s"] = statistics.median(times)

        lv = rc.load_balanced_view()
        t = time.perf_counter()
        res = lv.map_sync(ident, range(map_n))
        out["map_tiny_s"] = time.perf_counter() - t
        assert list(res) == list(range(map_n))

        dv = rc[:]
        big = np.random.random(mb * 1024 * 1024 // 8)
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

        @dv.parallel(block=True)
        def mandel2(x, y, max_iters=80):
            c = complex(x, y)
            z = 0.0j
            for i in range(max_iters):
                z = z * z + c
                if z.real * z.real + z.imag * z.imag >= 4:
                    return i
            return max_iters

        x = np.arange(-2, 1, 0.01)
        y = np.arange(-1, 1, 0.01)
        X, Y = np.meshgrid(x, y)
        t = time.perf_counter()
        mandel2.map(X.ravel(), Y.ravel())  # warm-up, kept as the cold figure
        out["mandel_first_s"] = time.perf_counter() - t
        runs = []
        for _ in range(mandel_n):
            t = time.perf_counter()
            im2 = np.reshape(mandel2.map(X.ravel(), Y.ravel()), (len(y), len(x)))
            runs.append(time.perf_counter() - t)
        out["mandel_s"] = statistics.median(runs)
        out["mandel_runs_s"] = runs
        out["mandel_sum"] = int(im2.sum())
        print(json.dumps(out))
    finally:
        rc.close()
        cluster.stop_cluster_sync()


if __name__ == "__main__":
    main()
