"""A real wasmpar cluster for the tests.

``scripts/test.d/20-python-client.sh`` starts one (8 engines, the tutorial's
count) and passes it in ``$WASMPAR_CONNECTION_FILE``. Run by hand without it,
the session starts its own from ``$WASMPAR_BIN`` (default
``target/release/wasmpar``) and stops it at the end. Components come from
``$WASMPAR_GUESTS_DIR`` (default ``target/guests/wasm32-wasip2/release``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[3]
ENGINES = 8


def wasmpar_bin() -> Path:
    return Path(os.environ.get("WASMPAR_BIN") or TOP / "target" / "release" / "wasmpar")


def guests_dir() -> Path:
    return Path(os.environ.get("WASMPAR_GUESTS_DIR") or TOP / "target" / "guests" / "wasm32-wasip2" / "release")


def start_cluster(conn_file: Path, engines: int, *extra: str) -> dict:
    """``wasmpar start --daemon`` on a free loopback port; returns the connection info."""
    binary = wasmpar_bin()
    if not binary.exists():
        pytest.fail(f"no server binary at {binary}: build it with `cargo build --release` or set $WASMPAR_BIN")
    subprocess.run(
        [str(binary), "--connection-file", str(conn_file), "start", "-n", str(engines), "--daemon",
         "--call-timeout", "20", "--cache-dir", str(conn_file.parent / "cache"), *extra],
        check=True,
        timeout=120,
    )
    return json.loads(conn_file.read_text())


def stop_cluster(conn_file: Path):
    subprocess.run([str(wasmpar_bin()), "--connection-file", str(conn_file), "stop"], timeout=60, check=False)


@pytest.fixture(scope="session")
def connection_file(tmp_path_factory):
    given = os.environ.get("WASMPAR_CONNECTION_FILE")
    if given:
        yield Path(given)
        return
    f = tmp_path_factory.mktemp("cluster") / "cluster.json"
    start_cluster(f, ENGINES)
    try:
        yield f
    finally:
        stop_cluster(f)


@pytest.fixture(scope="session")
def rc(connection_file):
    import wasmpar

    with wasmpar.Client(connection_file) as client:
        client.wait_for_engines(ENGINES, timeout=30)
        yield client


@pytest.fixture(scope="session")
def seed(rc):
    return rc.upload(guests_dir() / "seed.wasm")


@pytest.fixture(scope="session")
def mandelbrot(rc):
    return rc.upload(guests_dir() / "mandelbrot.wasm")


@pytest.fixture()
def dv(rc, seed):
    return rc[:]


@pytest.fixture()
def lv(rc, seed):
    return rc.load_balanced_view()


class Wire:
    """Records what the client sends and what the server answers.

    ``requests``: ``(method, path, content-type, body length, JSON document)``, the document
    parsed from a JSON body or from frame 0 of a framed one; ``buffers[i]`` the buffer lengths
    of request i (empty unless framed); ``accepts[i]`` its Accept header. ``answers``:
    ``(method, path, status, content-type, body length)``.
    """

    def __init__(self, rc):
        self.requests, self.buffers, self.accepts, self.answers = [], [], [], []
        self._conn = rc._conn
        self._conn.hooks.append(self)
        self._conn.answer_hooks.append(self._answer)

    def __call__(self, method, path, headers, body):
        ctype = headers.get("Content-Type")
        parsed, bufs = None, []
        if isinstance(body, list):  # a framed body's chunks
            joined = b"".join(bytes(memoryview(c).cast("B")) for c in body)
            from wasmpar.connection import parse_frames

            frames = parse_frames(joined)
            parsed = json.loads(bytes(frames[0]))
            bufs = [f.nbytes for f in frames[1:]]
            length = len(joined)
        else:
            length = 0 if body is None else memoryview(body).nbytes
            if ctype == "application/json":
                parsed = json.loads(body)
        self.requests.append((method, path, ctype, length, parsed))
        self.buffers.append(bufs)
        self.accepts.append(headers.get("Accept"))

    def _answer(self, method, path, status, headers, body):
        self.answers.append((method, path, status, headers.get("content-type"), len(body)))

    def close(self):
        self._conn.hooks.remove(self)
        self._conn.answer_hooks.remove(self._answer)


@pytest.fixture()
def wire(rc):
    w = Wire(rc)
    yield w
    w.close()


def python_model_chunks(n_items: int, n_engines: int) -> list[range]:
    """The server's contiguous partition (15 items on 8 engines: 2,2,2,2,2,2,2,1), as a model in Python."""
    base, extra = divmod(n_items, n_engines)
    out, start = [], 0
    for i in range(n_engines):
        size = base + (1 if i < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


sys.path.insert(0, str(Path(__file__).parent))
