"""``AsyncResult``: a task submitted without blocking, as IPython Parallel has it.

A task-backed result long-polls ``GET /v1/tasks/{id}?wait=`` (no busy loop);
once the server says the task finished, the answer is kept here and the
server is not asked again. Namespace operations (push, pull, scatter,
gather) have no task on the server; without blocking they run on the
client's worker thread and their result is a :class:`AsyncFutureResult`.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time

from . import outputs as _outputs
from .errors import TaskAborted, TimeoutError, task_error

FINISHED = ("done", "failed", "cancelled")
# Longest single long-poll; a longer wait is several of them.
_POLL_MAX = 30.0
# Failures worth a retry (retries=): not a cancel, not a deadline.
RETRYABLE = ("RemoteError", "CompositeError", "EngineError")


def _deadline(timeout):
    if timeout is None or timeout < 0:
        return None
    return time.monotonic() + timeout


class AsyncResult:
    """The pending result of one task. ``get()`` returns what the blocking call would have."""

    _kind = "AsyncResult"

    def __init__(self, client, task: dict, label: str, finish, resubmit=None, retries: int = 0, direct: bool = True,
                 frames: bool = False):
        self._client = client
        # Whether polls ask for a framed answer (the task may give arrays back).
        self._frames = frames
        self._direct = direct
        self._task = task
        self._label = label
        self._finish = finish
        self._resubmit = resubmit
        self._retries = retries
        self._submitted = time.monotonic()
        self._finished_at = None
        self._value = None
        self._have_value = False
        client._track(self)
        self._check_finished()

    # -- state -----------------------------------------------------------------------------
    @property
    def msg_ids(self) -> list[str]:
        return [self._task["id"]]

    @property
    def id(self) -> str:
        return self._task["id"]

    @property
    def status(self) -> str:
        return self._task.get("status", "pending")

    def _check_finished(self) -> bool:
        if self.status not in FINISHED:
            return False
        if self.status == "failed" and self._retries > 0 and self._resubmit is not None:
            kind = (self._task.get("error") or {}).get("kind", "")
            if kind in RETRYABLE:
                self._retries -= 1
                self._client._untrack(self)
                self._task = self._resubmit()
                self._client._track(self)
                return self._check_finished()
        if self._finished_at is None:
            self._finished_at = time.monotonic()
            self._client._untrack(self)
        return True

    def _poll(self, wait: float) -> bool:
        if self._check_finished():
            return True
        wait = max(0.0, min(wait, _POLL_MAX))
        params = {"wait": f"{wait:.3f}"} if wait > 0 else None
        self._task = self._client._conn.task("GET", f"/v1/tasks/{self.id}", params=params, frames=self._frames)
        return self._check_finished()

    def ready(self) -> bool:
        """Whether the task has finished (done, failed or cancelled)."""
        return self._poll(0)

    done = ready

    def wait(self, timeout: float | None = -1) -> bool:
        """Wait until the task finishes or ``timeout`` seconds pass (-1 or None: no limit). Returns ``ready()``."""
        end = _deadline(timeout)
        while True:
            left = _POLL_MAX if end is None else end - time.monotonic()
            if self._poll(max(left, 0)):
                return True
            if end is not None and time.monotonic() >= end:
                return False

    def get(self, timeout: float | None = -1):
        """The result; raises :class:`TimeoutError` if not ready in time, or the task's own error."""
        if not self.wait(timeout):
            raise TimeoutError(f"Result not ready: task {self.id} is {self.status} after {timeout} s")
        if self.status != "done":
            raise task_error(self._task)
        if not self._have_value:
            self._value = self._finish(self._task)
            self._have_value = True
        return self._value

    def result(self, timeout: float | None = None):
        """``concurrent.futures`` spelling of :meth:`get`."""
        return self.get(timeout)

    def exception(self, timeout: float | None = None):
        """The error the task raised, or None if it succeeded."""
        try:
            self.get(timeout)
        except TimeoutError:
            raise
        except Exception as e:  # noqa: BLE001 - the point is to return it
            return e
        return None

    def successful(self) -> bool:
        """Whether the task finished without error; raises if it has not finished."""
        if not self.ready():
            raise RuntimeError(f"task {self.id} has not finished ({self.status})")
        return self.status == "done"

    @property
    def progress(self) -> int:
        """How many of its calls (engines for apply, items for map) are done."""
        self.ready()
        return self._done_count()

    def _done_count(self) -> int:
        return int((self._task.get("progress") or {}).get("done", 0))

    def __len__(self) -> int:
        return int((self._task.get("progress") or {}).get("total", 0))

    @property
    def elapsed(self) -> float:
        """Seconds since submission, up to now or to when the task was seen finished."""
        end = self._finished_at if self._finished_at is not None else time.monotonic()
        return end - self._submitted

    @property
    def wall_time(self) -> float | None:
        """The server's wall time for the task, seconds (None until it finished)."""
        ms = (self._task.get("timing") or {}).get("wall_ms")
        return None if ms is None else ms / 1000.0

    @property
    def engine_id(self):
        """The engine ids the task ran on (one id for a single-engine task)."""
        ids = self._task.get("engines") or []
        return ids[0] if len(ids) == 1 else ids

    def cancel(self) -> bool:
        """Cancel what has not finished; True if the task ended cancelled."""
        if self.status in FINISHED:
            return self.status == "cancelled"
        self._task = self._client._conn.json("DELETE", f"/v1/tasks/{self.id}")
        self._retries = 0
        self._check_finished()
        return self.status == "cancelled"

    abort = cancel

    def cancelled(self) -> bool:
        return self.status == "cancelled"

    def get_dict(self, timeout: float | None = -1) -> dict:
        """``{engine_id: result}`` of an apply on a direct view."""
        value = self.get(timeout)
        engines = self._task.get("engines") or []
        if self._task.get("op") != "apply" or not self._direct:
            raise TypeError("get_dict() is for apply on a direct view (one result per engine)")
        values = value if isinstance(value, list) and len(engines) > 1 else [value]
        return dict(zip(engines, values))

    # -- outputs ---------------------------------------------------------------------------
    @property
    def outputs(self) -> list[dict]:
        """Per engine: ``{"engine", "stdout", "stderr", "images": [PNG bytes]}``."""
        return _outputs.decode_outputs(self._task.get("outputs"))

    @property
    def stdout(self) -> list[str]:
        return [o["stdout"] for o in self.outputs]

    @property
    def stderr(self) -> list[str]:
        return [o["stderr"] for o in self.outputs]

    def display_outputs(self, groupby: str = "engine"):
        """Print ``[stdout:N]`` blocks (and show images inline under Jupyter)."""
        self.wait()
        _outputs.show(self.outputs)

    def wait_interactive(self, interval: float = 0.1, timeout: float | None = -1, widget: bool | None = None):
        """Wait with a progress bar: tqdm in a terminal, an ipywidgets bar in Jupyter (``widget=False`` forces text)."""
        bar = _progress_bar(len(self) or 1, self._label, widget)
        end = _deadline(timeout)
        try:
            while True:
                finished = self._poll(interval)
                bar.update(self._done_count() - bar.n)
                if finished:
                    break
                if end is not None and time.monotonic() >= end:
                    break
        finally:
            bar.close()
        return self.ready()

    # -- iteration and display ---------------------------------------------------------------
    def __iter__(self):
        value = self.get()
        if isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
            return iter(value)
        return iter([value])

    def __getitem__(self, key):
        return self.get()[key]

    def __repr__(self):
        state = "finished" if self._finished_at is not None else self.status
        return f"<{self._kind}: {self._label}:{state}>"


class AsyncMapResult(AsyncResult):
    """The pending result of a ``map`` or ``@parallel`` call (iterable, sized by its items)."""

    _kind = "AsyncMapResult"


class AsyncFutureResult(AsyncResult):
    """A non-blocking namespace operation, running on the client's worker thread."""

    def __init__(self, client, future: concurrent.futures.Future, label: str):
        self._client = client
        self._future = future
        self._label = label
        self._submitted = time.monotonic()
        self._finished_at = None
        self._retries = 0
        self._direct = False

    @property
    def msg_ids(self):
        return []

    @property
    def id(self):
        return None

    @property
    def status(self):
        if not self._future.done():
            return "running"
        if self._future.cancelled():
            return "cancelled"
        return "failed" if self._future.exception() is not None else "done"

    def _poll(self, wait: float) -> bool:
        try:
            self._future.exception(timeout=max(wait, 0) if wait > 0 else 0)
        except concurrent.futures.TimeoutError:
            return False
        except concurrent.futures.CancelledError:
            pass
        if self._finished_at is None:
            self._finished_at = time.monotonic()
        return True

    def get(self, timeout: float | None = -1):
        if not self.wait(timeout):
            raise TimeoutError(f"Result not ready after {timeout} s")
        if self._future.cancelled():
            raise TaskAborted(f"{self._label} was cancelled")
        return self._future.result()

    def _done_count(self):
        return 1 if self._future.done() else 0

    @property
    def progress(self):
        return self._done_count()

    def __len__(self):
        return 1

    @property
    def wall_time(self):
        return None if self._finished_at is None else self._finished_at - self._submitted

    @property
    def engine_id(self):
        return None

    def cancel(self) -> bool:
        return self._future.cancel()

    abort = cancel

    @property
    def outputs(self):
        return []


def _progress_bar(total: int, label: str, widget):
    try:
        if widget is False or (widget is None and not _outputs.in_notebook()):
            from tqdm import tqdm
        else:
            from tqdm.notebook import tqdm
        return tqdm(total=total, desc=label, unit="call", leave=False)
    except ImportError:
        return _TextBar(total, label)


class _TextBar:
    """What wait_interactive draws when tqdm is not installed: one rewritten line on stderr."""

    def __init__(self, total, label):
        self.n, self.total, self.label = 0, total, label

    def update(self, k):
        self.n += k
        print(f"\r{self.label}: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def close(self):
        print(file=sys.stderr)
