"""``Client``: the cluster, as IPython Parallel's ``Client`` presents it.

One client holds one keep-alive HTTP connection (more only when threads talk at once),
one worker thread for non-blocking namespace operations, and the ids of the
tasks it submitted that have not been seen finished (what ``abort()`` cancels).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from pathlib import Path

from .component import Component
from .connection import Connection, read_connection
from .errors import TimeoutError
from .view import DirectView, LoadBalancedView


class Client:
    """Connect to a wasmpar cluster.

    ``Client()`` reads ``$WASMPAR_CONNECTION_FILE`` or ``~/.wasmpar/cluster.json``;
    ``Client("path/cluster.json")`` (or ``url_file=``) reads that file; ``url=``
    and ``token=`` override it.
    """

    _current = None  # the client the %px magics use when no view was activated

    def __init__(self, url_file=None, *, url=None, token=None, timeout: float = 30.0):
        info = read_connection(url_file, url, token)
        self.url = info["url"].rstrip("/")
        self.connection_info = {k: v for k, v in info.items() if k != "token"}
        self._conn = Connection(self.url, info["token"], timeout)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="wasmpar")
        self._lock = threading.Lock()
        self._outstanding = {}
        self._last_result = None
        self._last_task = None
        self._closed = False
        Client._current = self

    # -- engines ---------------------------------------------------------------------------
    def engines(self) -> list[dict]:
        """Each engine's state: ``{"id", "state", "queued", "completed", "libraries"}``."""
        return self._conn.json("GET", "/v1/engines")["engines"]

    @property
    def ids(self) -> list[int]:
        """The engine ids, sorted."""
        return sorted(e["id"] for e in self.engines())

    def __len__(self):
        return len(self.ids)

    def wait_for_engines(self, n: int | None = None, timeout: float = 60.0, interval: float = 0.1):
        """Wait until at least ``n`` engines exist (default: those the connection file announced)."""
        if n is None:
            n = int(self.connection_info.get("engines") or 1)
        end = time.monotonic() + timeout
        while True:
            have = len(self.engines())
            if have >= n:
                return self
            if time.monotonic() >= end:
                raise TimeoutError(f"{have} engine(s) after {timeout} s, waited for {n}")
            time.sleep(interval)

    # -- views -----------------------------------------------------------------------------
    def __getitem__(self, key) -> DirectView:
        """``rc[:]``, ``rc[::2]``, ``rc[2]``, ``rc[-1]``, ``rc[[1, 3]]``: a DirectView on those engines."""
        return self.direct_view(key)

    def direct_view(self, targets="all") -> DirectView:
        if isinstance(targets, slice):
            if targets == slice(None):
                targets = "all"
            else:
                parts = [targets.start, targets.stop, targets.step]
                for p in parts:
                    if p is not None and (isinstance(p, bool) or not isinstance(p, int)):
                        raise TypeError(f"engine slices take integers, not {p!r}")
                text = [("" if p is None else str(p)) for p in parts]
                targets = ":".join(text if targets.step is not None else text[:2])
        elif isinstance(targets, bool):
            raise TypeError("rc[...] takes an engine id, a slice or a list of ids, not a bool")
        elif isinstance(targets, int):
            pass
        elif isinstance(targets, (list, tuple)):
            if not targets:
                raise ValueError("an empty list selects no engine")
            if not all(isinstance(t, int) and not isinstance(t, bool) for t in targets):
                raise TypeError(f"rc[[...]] takes a list of engine ids, got {list(targets)!r}")
            targets = list(targets)
        elif targets is None or targets == "all":
            targets = "all"
        elif isinstance(targets, str) and targets != "balanced":
            pass  # a slice string such as "::2"; the server checks it
        else:
            raise TypeError(f"rc[...] takes an engine id, a slice or a list of ids, not {targets!r}")
        return DirectView(self, targets)

    def load_balanced_view(self, targets=None) -> LoadBalancedView:
        """Tasks go to whichever engine is free (like ``multiprocessing.Pool``)."""
        if targets not in (None, "all"):
            raise ValueError("wasmpar's load-balanced view spans every engine; targets= must be None")
        return LoadBalancedView(self)

    # -- components ------------------------------------------------------------------------
    def upload(self, path_or_bytes, name: str | None = None) -> Component:
        """Upload a component (a path or its bytes); returns its handle (``seed.add3``)."""
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
            if name is None:
                raise ValueError("upload(bytes) needs name=")
        elif isinstance(path_or_bytes, (str, os.PathLike)):
            path = Path(path_or_bytes).expanduser()
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise FileNotFoundError(f"no component at {path}") from None
            if name is None:
                name = path.stem.replace("_", "-")  # as the CLI names it
        else:
            raise TypeError(f"upload takes a path or bytes, not a {type(path_or_bytes).__name__}")
        info = self._conn.json(
            "POST", "/v1/components", params={"name": name}, content=data, headers={"Content-Type": "application/wasm"}
        )
        return Component(info)

    def component(self, name: str) -> Component:
        """The handle of a component already uploaded."""
        return Component(self._conn.json("GET", f"/v1/components/{name}"))

    def components(self) -> dict:
        """Every uploaded component, by name."""
        return {c["name"]: Component(c) for c in self._conn.json("GET", "/v1/components")["components"]}

    def remove_component(self, name) -> None:
        name = name.name if isinstance(name, Component) else name
        self._conn.request("DELETE", f"/v1/components/{name}")

    def install(self, lib, targets="all"):
        """Install a library component on ``targets`` (IPython Parallel's ``sync_imports``)."""
        name = lib.name if isinstance(lib, Component) else lib
        if not isinstance(name, str) or not name:
            raise TypeError("install takes a component handle or name")
        return self._conn.json("POST", "/v1/install", json={"component": name, "targets": targets})

    # -- tasks -----------------------------------------------------------------------------
    def _track(self, ar):
        with self._lock:
            self._outstanding[ar.id] = ar

    def _untrack(self, ar):
        with self._lock:
            self._outstanding.pop(ar.id, None)

    @property
    def outstanding(self) -> set:
        """Ids of submitted tasks not yet seen finished."""
        with self._lock:
            return set(self._outstanding)

    def abort(self, jobs=None, targets=None, block=None):
        """Cancel tasks: the given AsyncResults or task ids, or every outstanding one."""
        if targets is not None:
            raise ValueError("wasmpar aborts tasks, not engines: pass jobs= (AsyncResults or task ids)")
        if jobs is None:
            with self._lock:
                jobs = list(self._outstanding.values())
        elif not isinstance(jobs, (list, tuple, set)):
            jobs = [jobs]
        for j in jobs:
            if hasattr(j, "cancel"):
                j.cancel()
            elif isinstance(j, str):
                self._conn.json("DELETE", f"/v1/tasks/{j}")
                with self._lock:
                    self._outstanding.pop(j, None)
            else:
                raise TypeError(f"abort takes AsyncResults or task ids, not {j!r}")

    cancel = abort

    def wait(self, jobs=None, timeout: float | None = -1) -> bool:
        """Wait for the given AsyncResults (default: every outstanding task); True if all finished."""
        if jobs is None:
            with self._lock:
                jobs = list(self._outstanding.values())
        elif not isinstance(jobs, (list, tuple, set)):
            jobs = [jobs]
        end = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        for j in jobs:
            left = -1 if end is None else max(0.0, end - time.monotonic())
            if not j.wait(left):
                return False
        return True

    def shutdown(self):
        """Stop the cluster (engines and server), as IPython Parallel's ``rc.shutdown(hub=True)``; closes the client."""
        self._conn.request("POST", "/v1/shutdown")
        self.close()

    def get_result(self, task_id: str):
        """An AsyncResult for a task id (from this client or another)."""
        from .asyncresult import AsyncMapResult, AsyncResult
        from . import arrays

        task = self._conn.task("GET", f"/v1/tasks/{task_id}", frames=True)
        cls = AsyncResult if task.get("op") == "apply" else AsyncMapResult
        return cls(self, task, task.get("function", "task"), lambda t: arrays.decode(t.get("result")), frames=True)

    # -- lifetime --------------------------------------------------------------------------
    def close(self):
        """Close the connection (idempotent). The cluster keeps running."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        self._conn.close()
        if Client._current is self:
            Client._current = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<wasmpar.Client {self.url}>"
