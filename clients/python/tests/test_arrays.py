"""numpy in and out without decimal text (and lists without numpy)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ENGINES


def test_push_of_one_array_is_raw_bytes(rc, wire):
    dv = rc[:]
    a = np.random.random((200, 300))
    assert dv.push({"big": a}, block=True) == [None] * ENGINES
    method, path, ctype, length, _ = wire.requests[-1]
    assert (method, path, ctype, length) == ("PUT", "/v1/namespace/big", "application/octet-stream", a.nbytes)
    back = dv.pull("big", targets=3, block=True)
    assert isinstance(back, np.ndarray) and back.shape == (200, 300) and back.dtype == np.float64
    assert np.array_equal(back, a)
    assert wire.requests[-1][1] == "/v1/namespace/big", "one engine's array comes back raw too"
    # From every engine, as array forms inside JSON.
    every = dv.pull("big", block=True)
    assert len(every) == ENGINES and all(np.array_equal(x, a) for x in every)


@pytest.mark.parametrize("dtype", ["int32", "uint8", "int64", "float32", "int16"])
def test_raw_push_keeps_values_of_each_dtype(rc, dtype):
    a = (np.arange(60) % 100).astype(dtype).reshape(6, 10)
    rc[:].push({"typed": a}, block=True)
    back = rc[0].pull("typed", block=True)
    assert back.tolist() == a.tolist()


def test_awkward_arrays_are_fixed_or_refused(rc):
    dv = rc[:]
    big_endian = np.arange(10, dtype=">f8")
    dv.push({"be": big_endian}, block=True)
    assert rc[0].pull("be", block=True).tolist() == list(map(float, range(10)))
    strided = np.arange(40.0).reshape(4, 10)[:, ::2]
    dv.push({"st": strided}, block=True)
    assert np.array_equal(rc[0].pull("st", block=True), strided)
    with pytest.raises(TypeError, match="float16 cannot be sent"):
        dv.push({"h": np.zeros(3, dtype=np.float16)})


def test_arrays_inside_json_are_base64(rc, seed, wire):
    # Under arrays.FRAME_MIN (4 KiB) a sequence stays base64 inside the JSON body; bigger
    # ones go as raw buffers of a framed body (test_frames.py).
    rows = np.random.random((4, 100))
    out = rc.load_balanced_view().map_sync(seed.sum_array, rows)
    _, path, _, length, body = wire.requests[-1]
    seq = body["sequences"][0]
    assert path == "/v1/tasks" and seq["dtype"] == "float64" and seq["shape"] == [4, 100]
    assert length < rows.nbytes * 1.4 + 1000, "base64, not decimal text"
    assert "data" in seq and wire.requests[-1][2] == "application/json"
    assert body["result_encoding"] == "array"
    assert isinstance(out, np.ndarray) and np.allclose(out, rows.sum(axis=1))
    # Several values in one push travel as array forms in the JSON body.
    x, y = np.arange(5), np.linspace(0, 1, 7)
    rc[:].push({"x": x, "y": y, "n": 3}, block=True)
    body = wire.requests[-1][4]
    assert body["values"]["x"]["dtype"] == "int64" and body["values"]["n"] == 3
    got = rc[0].pull(["x", "y", "n"], block=True)
    assert got[0].tolist() == x.tolist() and np.array_equal(got[1], y) and got[2] == 3


def test_result_encoding_flag(rc, seed):
    lv = rc.load_balanced_view()
    lv.set_flags(result_encoding="array")
    out = lv.map_sync(seed.identity, [5, 6, 7])
    assert isinstance(out, np.ndarray) and out.tolist() == [5, 6, 7]
    lv.set_flags(result_encoding="json")
    out = lv.map_sync(seed.identity, np.array([5, 6, 7]))
    assert out == [5, 6, 7] and type(out) is list
    with pytest.raises(ValueError, match="result_encoding"):
        lv.set_flags(result_encoding="xml")


def test_results_are_views_over_the_received_bytes(rc, mandelbrot):
    xs = np.linspace(-2, 1, 5000)
    im = rc[:].parallel(mandelbrot.mandel_chunk, block=True)(xs, np.zeros_like(xs), max_iters=50)
    assert isinstance(im, np.ndarray) and im.dtype == np.uint32
    assert im.base is not None and not im.flags.owndata, "np.frombuffer over the decoded bytes"


def test_without_numpy_lists_work(connection_file, seed):
    """A fresh interpreter where `import numpy` fails."""
    code = r"""
import sys, json
sys.modules["numpy"] = None
import wasmpar, wasmpar.arrays as A
assert not A.have_numpy()
rc = wasmpar.Client(sys.argv[1])
dv = rc[:]
print(json.dumps(dv.map_sync("seed/add3", range(10), range(10), range(10))))
dv.push({"nn": [1.5, 2.5]}, block=True)
print(json.dumps(rc[0].pull("nn", block=True)))
lv = rc.load_balanced_view()
lv.set_flags(result_encoding="array")
print(json.dumps(lv.map_sync("seed/identity", [4, 5, 6])))
rc.close()
"""
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code, str(connection_file)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert lines == [[0, 3, 6, 9, 12, 15, 18, 21, 24, 27], [1.5, 2.5], [4, 5, 6]]
