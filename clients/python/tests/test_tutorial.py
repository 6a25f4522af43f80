"""Every cell of the seed tutorial (shared/seed/ipyparallel-tutorial.rst), translated
to this client, checked against the outputs printed there.

The tutorial's lambdas are component exports here: ``lambda x, y, z: x + y + z``
is ``seed/add3``, ``lambda x, y: x**2 + y**2`` is ``seed/hypot2``, ``sum`` is
``seed/sum-array`` or ``seed/sum-chunk``, and so on. The cluster has 8
engines, as the tutorial's. (The %px cells are in test_magics.py.)
"""

import io

import numpy as np
import pytest

import wasmpar
from conftest import ENGINES, python_model_chunks

# Printed by the tutorial for every add-three-ranges cell.
ADD3 = [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
R = (range(10), range(10), range(10))


def test_the_printed_sum_is_what_python_computes():
    assert ADD3 == list(map(lambda x, y, z: x + y + z, *R))


def test_client_ids(rc):
    # The tutorial printed [] (its cluster had not started); ours has 8 engines.
    assert rc.ids == list(range(ENGINES))


def test_direct_view_map_on_all_engines(rc, seed):
    dv = rc[:]
    assert dv.map_sync("seed/add3", *R) == ADD3
    assert dv.map_sync(seed.add3, *R) == ADD3


def test_alternate_engines(rc, seed):
    ar = rc[::2].map_async(seed.add3, *R)
    assert ar.get(30) == ADD3
    assert sorted(set(ar._task["engines"])) == [0, 2, 4, 6]


def test_a_specific_engine(rc, seed):
    assert rc[2].map_sync(seed.add3, *R) == ADD3
    ar = rc[2].map_async(seed.add3, *R)
    ar.wait(30)
    assert ar.engine_id == 2


def test_load_balanced_sums_of_numpy_rows(rc, seed):
    lv = rc.load_balanced_view()
    rows = np.random.random((10, 100000))
    sums = lv.map_sync(seed.sum_array, rows)
    assert len(sums) == 10
    np.testing.assert_allclose(sums, rows.sum(axis=1), rtol=1e-12)
    # The tutorial's printed sums are all near 50000, as uniform sums of 100000 are.
    assert all(49000 < s < 51000 for s in sums)


def test_apply_with_args_and_kwargs(rc, seed):
    assert rc[1:3].apply_sync("seed/hypot2", 3, 4) == [25, 25]
    assert rc[1:3].apply_sync(seed.hypot2, x=3, y=4) == [25, 25]
    assert 3**2 + 4**2 == 25


def test_synchronous_result(dv):
    res = dv.map_sync("seed/add3", *R)
    assert res == ADD3


def test_asynchronous_result(dv):
    res = dv.map_async("seed/add3", *R)
    assert isinstance(res, wasmpar.AsyncMapResult)
    res.wait(30)
    assert repr(res) == "<AsyncMapResult: add3:finished>"
    assert res.done() is True
    assert res.get() == ADD3


def test_map_is_asynchronous_by_default(dv):
    res = dv.map("seed/add3", *R)
    assert isinstance(res, wasmpar.AsyncMapResult)
    assert res.get(30) == ADD3


def test_blocking_for_one_job(dv):
    res = dv.map("seed/add3", *R, block=True)
    assert res == ADD3


def test_blocking_for_the_view(rc, seed):
    dv = rc[:]
    dv.block = True
    res = dv.map("seed/add3", *R)
    assert res == ADD3
    assert rc[:].block is False, "block belongs to the view, not the client"


def test_remote_decorator(dv):
    @dv.remote("seed/rand", block=True)
    def f1(n):
        """n random numbers on every engine."""

    out = f1(4)
    assert f1.__doc__ == "n random numbers on every engine."
    assert len(out) == ENGINES
    assert all(len(r) == 4 and all(0 <= x < 1 for x in r) for r in out)
    # Eight engines drew eight different samples.
    assert len({tuple(r) for r in out}) == ENGINES
    # As arrays, as the tutorial shows them.
    with dv.temp_flags(result_encoding="array"):
        arrays = f1(4)
    assert all(isinstance(a, np.ndarray) and a.shape == (4,) and a.dtype == np.float64 for a in arrays)


def test_parallel_decorator_chunks(dv):
    @dv.parallel("seed/echo-chunk", block=True)
    def f2(x):
        return x

    # The tutorial shows the chunks [range(0, 2), …, range(14, 15)]; a list-returning
    # component's chunks come back concatenated, in order.
    assert f2(range(15)) == list(range(15))

    @dv.parallel("seed/sum-chunk", block=True)
    def f3(x):
        return sum(x)

    printed = [1, 5, 9, 13, 17, 21, 25, 14]
    assert printed == [sum(c) for c in python_model_chunks(15, ENGINES)]
    assert f3(range(15)) == printed


def test_parallel_decorator_on_numpy(dv):
    @dv.parallel("seed/add-chunks", block=True)
    def f4(x, y):
        return x + y

    out = f4(np.arange(10), np.arange(10))
    assert isinstance(out, np.ndarray)
    assert out.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def mandel1(x, y, max_iters=80):
    c = complex(x, y)
    z = 0.0j
    for i in range(max_iters):
        z = z * z + c
        if z.real * z.real + z.imag * z.imag >= 4:
            return i
    return max_iters


def serial_numpy_mandel(X, Y, max_iters=80):
    """mandel1 over the whole grid at once, in numpy (same arithmetic, same order)."""
    cr, ci = X.ravel(), Y.ravel()
    zr, zi = np.zeros_like(cr), np.zeros_like(ci)
    out = np.full(cr.shape, max_iters, dtype=np.int64)
    alive = np.ones(cr.shape, dtype=bool)
    for i in range(max_iters):
        zr, zi = np.where(alive, zr * zr - zi * zi + cr, zr), np.where(alive, 2 * zr * zi + ci, zi)
        escaped = alive & (zr * zr + zi * zi >= 4)
        out[escaped] = i
        alive &= ~escaped
    return out.reshape(X.shape)


def test_mandelbrot_against_serial_numpy_and_a_picture(rc, mandelbrot, tmp_path):
    dv = rc[:]
    x = np.arange(-2, 1, 0.01)
    y = np.arange(-1, 1, 0.01)
    X, Y = np.meshgrid(x, y)

    im_serial = serial_numpy_mandel(X, Y)
    # The tutorial's own pure-Python mandel1 on a sample of points agrees with it.
    for k in range(0, X.size, 997):
        assert mandel1(X.ravel()[k], Y.ravel()[k]) == im_serial.ravel()[k]

    # The tutorial's cell: mandel2.map over the raveled grid (one call per point).
    @dv.parallel("mandelbrot/mandel", block=True)
    def mandel2(x, y, max_iters=80):
        ...

    im2 = np.reshape(mandel2.map(X.ravel(), Y.ravel(), max_iters=80), (len(y), len(x)))
    assert np.array_equal(im2, im_serial)

    # The fast form: @parallel over chunks, the result back as an array.
    chunked = dv.parallel("mandelbrot/mandel-chunk", block=True)
    im3 = chunked(X.ravel(), Y.ravel(), max_iters=80)
    assert isinstance(im3, np.ndarray) and im3.dtype == np.uint32
    assert np.array_equal(im3.reshape(len(y), len(x)), im_serial)
    assert im_serial.max() == 80 and im_serial.min() == 0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].grid(False)
    axes[0].imshow(im_serial, cmap="jet")
    axes[1].grid(False)
    axes[1].imshow(im2, cmap="jet")
    path = tmp_path / "mandelbrot.png"
    fig.savefig(path, dpi=50)
    plt.close(fig)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (600, 200)
        # Not a blank canvas: the jet colour map gives many colours.
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_functions_with_dependencies(rc, tmp_path):
    """g1 fails without its imports; install the library (sync_imports) and it works."""
    from conftest import guests_dir

    rc.upload(guests_dir() / "stats.wasm")
    task = rc.upload(guests_dir() / "stats_task.wasm")
    assert task.name == "stats-task"
    dv = rc[:]
    with pytest.raises(wasmpar.DependencyError) as e:
        dv.map_sync(task.g3, np.arange(-3, 4))
    assert "install `stats`" in e.value.message
    rc.install("stats")  # with dv.sync_imports(): import scipy.stats
    printed = [
        0.0044318484119380075,
        0.053990966513188063,
        0.24197072451914337,
        0.3989422804014327,
        0.24197072451914337,
        0.053990966513188063,
        0.0044318484119380075,
    ]
    got = dv.map(task.g3, np.arange(-3, 4), block=True)
    np.testing.assert_allclose(got, printed, rtol=1e-12)


def test_compiled_code_cell_numba_sum(dv):
    # @numba.jit def f_numba(x): return np.sum(x) — a compiled function is a component here.
    rows = np.random.random((6, 4))
    out = dv.map("seed/sum-array", rows, block=True)
    np.testing.assert_allclose(out, rows.sum(axis=1), rtol=1e-12)


def test_push_map_and_pull(rc, seed):
    dv = rc[:]
    assert dv.push(dict(a=3, b=2), block=True) == [None] * ENGINES
    assert dv.map_sync(seed.affine, range(5)) == [2, 5, 8, 11, 14]
    assert dv.pull(("a", "b"), block=True) == [[3, 2]] * ENGINES


def test_dictionary_interface(rc, seed):
    dv = rc[:]
    dv.push(dict(a=3, b=2), block=True)
    dv["c"] = 5
    assert dv["a"] == [3] * ENGINES
    assert dv["c"] == [5] * ENGINES


def test_scatter_and_gather(rc, seed):
    dv = rc[:]
    a = np.random.randint(0, 10, 10)
    dv.scatter("a", a, block=True)
    # %px print(a): each engine's chunk, 2,2,1,1,1,1,1,1 items as the tutorial shows.
    chunks = dv.pull("a", block=True)
    assert [len(c) for c in chunks] == [len(r) for r in python_model_chunks(10, ENGINES)]
    assert [list(c) for c in chunks] == [list(a[r.start : r.stop]) for r in python_model_chunks(10, ENGINES)]
    back = dv.gather("a", block=True)
    assert isinstance(back, np.ndarray) and back.tolist() == a.tolist()

    dv.scatter("xs", range(24), block=True)
    dv.apply_sync("seed/squares")  # %px y = [x**2 for x in xs]
    assert np.array(dv.gather("y", block=True)).tolist() == [x**2 for x in range(24)]


def test_outputs_and_images(rc, mandelbrot, seed, capsys):
    # %px print(...) and the plotting cells: [stdout:N] blocks and [output:N] images.
    ar = rc[[1, 3]].apply_async(seed.greet, "world")
    assert ar.get(30) == ["hello, world", "hello, world"]
    ar.display_outputs()
    assert capsys.readouterr().out == "[stdout:1] hello, world\n[stdout:3] hello, world\n"
    ar = rc[[1, 3]].apply_async(mandelbrot.render, 60, 40, 30)
    lengths = ar.get(30)
    pngs = [img for o in ar.outputs for img in o["images"]]
    assert [len(p) for p in pngs] == lengths
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    from PIL import Image

    assert Image.open(io.BytesIO(pngs[0])).size == (60, 40)
    ar.display_outputs()
    out = capsys.readouterr().out
    assert "[output:1] 1 image" in out and "[output:3] 1 image" in out
