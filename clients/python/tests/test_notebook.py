"""docs/tutorial.ipynb executed top to bottom by nbclient against a fresh real cluster."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ENGINES, TOP, guests_dir, start_cluster, stop_cluster

NOTEBOOK = TOP / "docs" / "tutorial.ipynb"


def text_of(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif "data" in o:
            parts.append(o["data"].get("text/plain", ""))
    return "".join(parts)


def cell_after(nb, source: str):
    hits = [c for c in nb.cells if c.cell_type == "code" and c.source.strip() == source]
    assert hits, f"no cell {source!r}"
    return hits[0]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    conn = tmp_path_factory.mktemp("nbcluster") / "cluster.json"
    start_cluster(conn, ENGINES)
    saved = {k: os.environ.get(k) for k in ("WASMPAR_CONNECTION_FILE", "WASMPAR_GUESTS_DIR")}
    os.environ["WASMPAR_CONNECTION_FILE"] = str(conn)  # the kernel inherits it
    os.environ["WASMPAR_GUESTS_DIR"] = str(guests_dir())
    try:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
        yield nb
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_cluster(conn)


def test_every_cell_ran_without_error(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert len(code) > 50
    for c in code:
        assert c.execution_count is not None, c.source
        errors = [o for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{c.source!r}: {errors}"


def test_printed_outputs_match_the_tutorial(executed):
    add3 = "[0, 3, 6, 9, 12, 15, 18, 21, 24, 27]"
    assert text_of(cell_after(executed, "dv.map_sync(seed.add3, range(10), range(10), range(10))")) == add3
    assert text_of(cell_after(executed, "rc[::2].map_sync(seed.add3, range(10), range(10), range(10))")) == add3
    assert text_of(cell_after(executed, 'rc[1:3].apply_sync("seed/hypot2", 3, 4)')) == "[25, 25]"
    assert text_of(cell_after(executed, "f3(range(15))")) == "[1, 5, 9, 13, 17, 21, 25, 14]"
    assert text_of(cell_after(executed, "f4(np.arange(10), np.arange(10))")) == "array([ 0,  2,  4,  6,  8, 10, 12, 14, 16, 18])"
    assert text_of(cell_after(executed, "dv.map_sync(seed.affine, range(5))")) == "[2, 5, 8, 11, 14]"
    assert text_of(cell_after(executed, "dv.pull(('a', 'b'))")) == str([[3, 2]] * ENGINES)
    assert text_of(cell_after(executed, "dv['c']")) == str([5] * ENGINES)
    assert "<AsyncMapResult: add3:finished>" in text_of(cell_after(executed, "res = dv.map_async(seed.add3, range(10), range(10), range(10))\nres.wait()\nres"))
    greet = text_of(cell_after(executed, "%px seed/greet world"))
    assert greet.startswith("[stdout:0] hello, world\n") and "Out[7:" in greet
    dep = text_of([c for c in executed.cells if "DependencyError" in c.source][0])
    assert "install `stats`" in dep


def test_images_are_shown_inline(executed):
    for src in ("%px --targets [1,3] mandelbrot/render 300 200 80", "%pxresult"):
        c = cell_after(executed, src)
        pngs = [o for o in c.outputs if "data" in o and "image/png" in o["data"]]
        assert len(pngs) == 2, src
        assert "[output:1]" in text_of(c) and "[output:3]" in text_of(c)
    plot = [c for c in executed.cells if "plt.subplots" in c.source][0]
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)


def test_wait_interactive_is_a_widget_in_jupyter(executed):
    c = [c for c in executed.cells if c.cell_type == "code" and "wait_interactive()" in c.source][0]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in c.outputs)
    assert text_of(c).strip().endswith("(20000, 20000, True)")
