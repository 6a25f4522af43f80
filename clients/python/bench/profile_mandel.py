"""Where the client's time goes in one tutorial Mandelbrot request (@parallel over mandel-chunk).

    python clients/python/bench/profile_mandel.py [--engines 2] [-n 30] [--threshold]

Starts its own cluster (WASMPAR_BIN, WASMPAR_GUESTS_DIR as bench/compare.py) and
times, per request, the steps the client takes in ``Connection.task``, done by
hand here so that each can be timed: encode (arrays to buffers or base64, the
JSON document, the frames), send (the request on the socket), server (until the
answer's head arrives; ``timing.wall_ms`` of the answer is the server's own
wall time of the task), read (the body), decode (frames or JSON to numpy), and
the whole call through ``dv.parallel(...)(...)``. Medians over -n requests
after warm-up, framed and JSON (``Connection.frames = False``) paths.
``--threshold`` also times echo-chunk round trips of arrays around
``arrays.FRAME_MIN`` both ways.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import wasmpar
from wasmpar import arrays
from wasmpar import connection as C

TOP = Path(__file__).resolve().parents[3]


def steps(rc, X, Y, framed: bool) -> dict:
    conn = rc._conn
    t0 = time.perf_counter()
    bufs = arrays.Buffers() if framed else None
    seqs = [arrays.encode_top(X.ravel(), bufs), arrays.encode_top(Y.ravel(), bufs)]
    spec = {"op": "parallel", "component": "mandelbrot", "function": "mandel-chunk", "targets": "all",
            "sequences": seqs, "kwargs": {"max_iters": 80}, "result_encoding": "array", "block": True}
    doc = json.dumps(spec, separators=(",", ":")).encode()
    h = dict(conn._headers)
    h["Accept"] = C._ACCEPT_FRAMES if framed else "application/json"
    if framed:
        body = C.frame_chunks(doc, bufs)
        h["Content-Type"] = C.FRAMES
        h["Content-Length"] = str(sum(memoryview(c).nbytes for c in body))
    else:
        body = doc
        h["Content-Type"] = "application/json"
    c, _ = conn._take()
    t1 = time.perf_counter()
    if framed:
        C._send_chunks(c, "POST", "/v1/tasks", h, body)
    else:
        c.request("POST", "/v1/tasks", body=body, headers=h)
    t2 = time.perf_counter()
    r = c.getresponse()
    t3 = time.perf_counter()
    content = C._read_body(r)
    t4 = time.perf_counter()
    conn._give(c)
    task = C.decode_task(C.Response(r.status, {k.lower(): v for k, v in r.getheaders()}, content))
    im = arrays.decode(task["result"])
    t5 = time.perf_counter()
    assert isinstance(im, np.ndarray) and im.size == X.size
    return {"encode": t1 - t0, "send": t2 - t1, "server (to the answer's head)": t3 - t2, "read": t4 - t3,
            "decode": t5 - t4, "sum of steps": t5 - t0, "server wall_ms": task["timing"]["wall_ms"] / 1e3,
            "request bytes": sum(memoryview(b).nbytes for b in body) if framed else len(body),
            "answer bytes": len(content)}


def median_rows(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--threshold", action="store_true")
    args = ap.parse_args()
    binary = Path(os.environ.get("WASMPAR_BIN") or TOP / "target" / "release" / "wasmpar")
    guests = Path(os.environ.get("WASMPAR_GUESTS_DIR") or TOP / "target" / "guests" / "wasm32-wasip2" / "release")
    work = Path(tempfile.mkdtemp(prefix="wasmpar-prof-"))
    conn = work / "cluster.json"
    subprocess.run([str(binary), "--connection-file", str(conn), "start", "-n", str(args.engines), "--daemon",
                    "--cache-dir", str(work / "cache")], check=True)
    try:
        with wasmpar.Client(conn) as rc:
            rc.wait_for_engines(args.engines)
            mandelbrot = rc.upload(guests / "mandelbrot.wasm")
            seed = rc.upload(guests / "seed.wasm")
            x = np.arange(-2, 1, 0.01)
            y = np.arange(-1, 1, 0.01)
            X, Y = np.meshgrid(x, y)
            chunked = rc[:].parallel(mandelbrot.mandel_chunk, block=True)
            for framed in (True, False):
                rc._conn.frames = framed
                for _ in range(5):
                    steps(rc, X, Y, framed)
                    chunked(X.ravel(), Y.ravel(), max_iters=80)
                rows, whole = [], []
                for _ in range(args.n):
                    rows.append(steps(rc, X, Y, framed))
                    t = time.perf_counter()
                    chunked(X.ravel(), Y.ravel(), max_iters=80)
                    whole.append(time.perf_counter() - t)
                med = median_rows(rows)
                med["whole call, dv.parallel(...)(...)"] = statistics.median(whole)
                print(f"\n{'framed' if framed else 'JSON (base64)'} path, medians of {args.n}:")
                for k, v in med.items():
                    print(f"  {k:40s} {v:10.0f}" if "bytes" in k else f"  {k:40s} {v * 1e3:10.3f} ms")
            rc._conn.frames = True
            if args.threshold:
                e0 = rc[0]
                print("\necho-chunk round trip on one engine, int64 arrays, medians of 200 (µs):")
                print("  bytes     framed    base64")
                for nbytes in (512, 1024, 2048, 4096, 8192, 16384, 65536):
                    a = np.arange(nbytes // 8, dtype=np.int64)
                    out = {}
                    for mode, fmin in (("framed", 0), ("base64", 1 << 62)):
                        arrays.FRAME_MIN = fmin
                        for _ in range(20):
                            e0.apply_sync(seed.echo_chunk, a)
                        ts = []
                        for _ in range(200):
                            t = time.perf_counter()
                            e0.apply_sync(seed.echo_chunk, a)
                            ts.append(time.perf_counter() - t)
                        out[mode] = statistics.median(ts) * 1e6
                    arrays.FRAME_MIN = 4096
                    print(f"  {nbytes:6d} {out['framed']:9.0f} {out['base64']:9.0f}")
    finally:
        subprocess.run([str(binary), "--connection-file", str(conn), "stop"], check=False)


if __name__ == "__main__":
    main()
