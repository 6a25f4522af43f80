"""Errors, shaped like ``ipyparallel.error``.

A task that fails on the engines raises :class:`RemoteError` (one engine) or
:class:`CompositeError` (several), each carrying the engine's message. Like
IPython Parallel's ``CompositeError``, the error of a task on a direct view
keeps the outcome of every engine: ``results`` maps the engines that finished
to their result (a cell's ``Out``), and ``outputs`` holds every engine's
printed output. A request the server refuses (bad input, unknown name, a
Python-only global pulled, missing dependency) raises :class:`APIError` with
the server's ``kind`` and message.
"""

from __future__ import annotations

import builtins

from . import arrays
from . import outputs as _outputs


class WasmparError(Exception):
    """Base class of everything this package raises on purpose."""


class ClusterNotFound(WasmparError, FileNotFoundError):
    """No connection file where the client looked."""


class ClusterUnreachable(WasmparError, builtins.ConnectionError):
    """The connection file names a server that does not answer."""


class APIError(WasmparError):
    """The server refused a request: ``status`` (HTTP), ``kind`` and ``message`` from its JSON error."""

    def __init__(self, status: int, kind: str, message: str, method: str = "", path: str = ""):
        self.status = status
        self.kind = kind
        self.message = message
        self.method = method
        self.path = path
        super().__init__(f"{kind} ({status}): {message}")


class DependencyError(APIError):
    """A task needs a library component that is not installed on its target engines (HTTP 409)."""


class RemoteError(WasmparError):
    """A function failed on an engine (a trap, a panic, an error result).

    ``ename``, ``evalue``, ``traceback`` and ``engine_info`` as in IPython Parallel.
    """

    def __init__(self, ename: str, evalue: str, traceback: str = "", engine_info: dict | None = None):
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback or ""
        self.engine_info = engine_info or {}
        # The task's other engines, set by task_error (see the module's doc).
        self.results = {}
        self.outputs = []
        super().__init__(ename, evalue)

    @property
    def engine_id(self):
        return self.engine_info.get("engine_id")

    def __str__(self) -> str:
        where = ""
        if self.engine_info:
            where = f"[{self.engine_info.get('engine_id', '?')}:{self.engine_info.get('function', '')}] "
        return f"{where}{self.ename}: {self.evalue}"

    def render_traceback(self) -> list[str]:
        """IPython calls this to show the error: the engine's own trace, not ours."""
        lines = [str(self)]
        if self.traceback:
            lines += ["    " + t for t in self.traceback.splitlines()]
        return lines


class CompositeError(RemoteError):
    """Several engines failed. ``elist`` holds one :class:`RemoteError` per failed engine."""

    def __init__(self, message: str, elist: list[RemoteError]):
        self.elist = list(elist)
        self.message = message
        super().__init__("CompositeError", message)

    def __str__(self) -> str:
        lines = [self.message] + [str(e) for e in self.elist]
        return "\n".join(lines)

    def render_traceback(self) -> list[str]:
        lines = [self.message]
        for e in self.elist:
            lines += e.render_traceback()
        return lines

    def raise_exception(self, excid: int = 0):
        """Raise the ``excid``-th engine's error on its own."""
        try:
            raise self.elist[excid]
        except IndexError:
            raise IndexError(f"an error with index {excid} does not exist (there are {len(self.elist)})") from None


class TimeoutError(WasmparError, builtins.TimeoutError):
    """``get(timeout)`` ran out of time, or a task passed its deadline on the engines."""


class TaskAborted(WasmparError):
    """The task was cancelled (``ar.cancel()``, ``rc.abort()``) before it finished."""


class EngineError(RemoteError):
    """An engine's thread crashed while running the call (the engine was restarted)."""


_TASK_ERRORS = {"Cancelled": TaskAborted, "TimeoutError": TimeoutError}


def task_error(task: dict) -> Exception:
    """The exception for a failed or cancelled task as the server answered it.

    It carries ``results`` (``{engine: result}`` of the engines that finished
    while others failed) and ``outputs`` (every engine's stdout, stderr and
    images, as ``AsyncResult.outputs``).
    """
    e = _task_error(task)
    err = task.get("error") or {}
    e.results = {r.get("engine"): arrays.decode(r.get("result")) for r in err.get("results") or []}
    e.outputs = _outputs.decode_outputs(task.get("outputs"))
    return e


def _task_error(task: dict) -> Exception:
    err = task.get("error") or {}
    kind = err.get("kind") or ("Cancelled" if task.get("status") == "cancelled" else "RemoteError")
    message = err.get("message") or kind
    if kind in _TASK_ERRORS:
        return _TASK_ERRORS[kind](message)
    remote = []
    for e in err.get("errors") or []:
        cls = EngineError if kind == "EngineError" else RemoteError
        ename = e.get("kind") or ("EngineError" if kind == "EngineError" else "RemoteError")
        evalue = e.get("message", "")
        # A Python cell's exception (cause "error"): "ZeroDivisionError: division by zero".
        head, sep, rest = evalue.partition(":")
        if e.get("cause") == "error" and head.replace(".", "").isidentifier():
            ename, evalue = head, rest.strip() if sep else ""
        remote.append(
            cls(
                ename,
                evalue,
                e.get("trace", ""),
                {"engine_id": e.get("engine"), "function": e.get("function", "")},
            )
        )
    if kind == "CompositeError" or len(remote) > 1:
        return CompositeError(f"one or more exceptions raised in: {_function_of(task)}", remote)
    if remote:
        return remote[0]
    if kind == "EngineError":
        return EngineError(kind, message)
    return RemoteError(kind, message)


def _function_of(task: dict) -> str:
    f = task.get("function") or ""
    c = task.get("component") or ""
    return f"{c}/{f}" if c and f else (f or task.get("op", "task"))


def api_error(status: int, body, method: str, path: str) -> APIError:
    """The exception for an HTTP error answer (always JSON from wasmpar)."""
    kind, message = "HTTPError", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        kind = body["error"].get("kind") or kind
        message = body["error"].get("message") or ""
    elif isinstance(body, str):
        message = body.strip()[:500]
    if not message:
        message = f"{method} {path} answered {status}"
    cls = DependencyError if (status == 409 and "ependenc" in (kind + message)) else APIError
    return cls(status, kind, message, method, path)
