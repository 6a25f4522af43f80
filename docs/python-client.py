"""Replaced by the Python client package: `pip install ./clients/python`, `import wasmpar`.

The guide is docs/python-client.md, the tutorial as a notebook docs/tutorial.ipynb.
What this script did, with the package:

    wasmpar start -n 2 --daemon
    python3 docs/python-client.py
"""

import numpy as np

from wasmpar import Client

GUESTS = "target/guests/wasm32-wasip2/release"

with Client() as rc:
    seed = rc.upload(f"{GUESTS}/seed.wasm")
    mandelbrot = rc.upload(f"{GUESTS}/mandelbrot.wasm")
    dv, lv = rc[:], rc.load_balanced_view()
    print(dv.map_sync(seed.add3, range(10), range(10), range(10)))
    rows = np.random.random((10, 100000))
    print(lv.map_sync(seed.sum_array, rows)[:3], "...")
    X, Y = np.meshgrid(np.arange(-2, 1, 0.01), np.arange(-1, 1, 0.01))
    im = dv.parallel(mandelbrot.mandel_chunk, block=True)(X.ravel(), Y.ravel(), max_iters=80).reshape(X.shape)
    print(im.shape, im.dtype, im.max())
    big = np.arange(1_000_000, dtype=np.float64)
    dv.push({"big": big}, block=True)
    assert (rc[0].pull("big", block=True) == big).all()
    print("raw round trip ok:", big.size, "floats")
