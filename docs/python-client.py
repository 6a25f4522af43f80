"""Talking to wasmpar from Python with nothing but `requests` and numpy.

    wasmpar start -n 2 --daemon
    wasmpar upload target/guests/wasm32-wasip2/release/seed.wasm
    wasmpar upload target/guests/wasm32-wasip2/release/mandelbrot.wasm
    python3 docs/python-client.py
"""

import base64
import json
import os

import numpy as np
import requests

conn = json.load(open(os.environ.get("WASMPAR_CONNECTION_FILE", os.path.expanduser("~/.wasmpar/cluster.json"))))
s = requests.Session()
s.headers["Authorization"] = "Bearer " + conn["token"]
url = conn["url"]


def array(a):
    """numpy array -> wasmpar's array form (no decimal text on the wire)."""
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


def from_array(v):
    return np.frombuffer(base64.b64decode(v["data"]), dtype=v["dtype"]).reshape(v["shape"])


def task(**spec):
    r = s.post(url + "/v1/tasks", json={"block": True, **spec})
    r.raise_for_status()
    t = r.json()
    if t["status"] != "done":
        raise RuntimeError(t["error"]["message"])
    return t["result"]


# dv.map_sync(lambda x, y, z: x + y + z, range(10), range(10), range(10))
print(task(op="map", component="seed", function="add3", sequences=[list(range(10))] * 3))

# lv.map_sync(lambda x: sum(x), np.random.random((10, 100000)))
rows = np.random.random((10, 100000))
sums = task(op="map", component="seed", function="sum-array", sequences=[array(rows)], targets="balanced")
assert np.allclose(sums, rows.sum(axis=1))
print(sums[:3], "...")

# The tutorial's Mandelbrot, @parallel, results back as an array.
x, y = np.arange(-2, 1, 0.01), np.arange(-1, 1, 0.01)
X, Y = np.meshgrid(x, y)
im = task(op="parallel", component="mandelbrot", function="mandel-chunk",
          sequences=[array(X.ravel()), array(Y.ravel())], kwargs={"max-iters": 80}, result_encoding="array")
im = from_array(im).reshape(len(y), len(x))
print(im.shape, im.dtype, im.max())

# push a big array as raw bytes, pull it back from engine 0
big = np.arange(1_000_000, dtype=np.float64)
s.put(url + "/v1/namespace/big", params={"dtype": "float64", "shape": "1000000"}, data=big.tobytes()).raise_for_status()
r = s.get(url + "/v1/namespace/big", params={"targets": "0"})
back = np.frombuffer(r.content, dtype=r.headers["x-wasmpar-dtype"])
assert (back == big).all()
print("raw round trip ok:", back.size, "floats")
