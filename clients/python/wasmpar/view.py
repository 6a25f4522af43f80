"""Views: ``DirectView`` (``rc[:]``, ``rc[::2]``, ``rc[2]``, ``rc[[1, 3]]``) and
``LoadBalancedView`` (``rc.load_balanced_view()``), with IPython Parallel's
methods and flags.

Every call is one HTTP request: a blocking call posts the task with
``"block": true`` and gets the finished task back in the same answer; a
non-blocking one gets ``202`` and an :class:`AsyncResult` that long-polls.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

from . import arrays
from .asyncresult import RETRYABLE, AsyncFutureResult, AsyncMapResult, AsyncResult
from .component import as_function
from .errors import task_error

_RESULT_ENCODINGS = ("auto", "array", "json")


def _seq(s, buffers=None):
    """A map/parallel sequence ready for the wire (a big array as a buffer of ``buffers``, if given)."""
    if arrays.is_array(s):
        return arrays.encode_top(s, buffers) if s.ndim > 0 else [s.item()]
    if isinstance(s, (list, tuple, range)):
        return arrays.encode(s)
    if isinstance(s, (str, bytes, dict)):
        raise TypeError(f"a {type(s).__name__} is not a sequence to map over; pass a list, range or numpy array")
    try:
        return arrays.encode(list(s))
    except TypeError:
        raise TypeError(f"a {type(s).__name__} is not a sequence to map over; pass a list, range or numpy array") from None


def targets_param(targets) -> str:
    """Targets as the query-string form: ``"all"``, ``"::2"``, ``"2"``, ``"1,3"``."""
    if isinstance(targets, bool):
        raise TypeError("targets cannot be a bool")
    if isinstance(targets, int):
        return str(targets)
    if isinstance(targets, (list, tuple)):
        return ",".join(str(int(t)) for t in targets)
    return str(targets)


class View:
    """What both kinds of view share: calls, flags, decorators."""

    _flag_names = ("block", "result_encoding", "timeout")

    def __init__(self, client, targets):
        self.client = client
        self._targets = targets
        self.block = False
        self.result_encoding = "auto"
        self.timeout = None

    @property
    def targets(self):
        return self._targets

    # -- flags -----------------------------------------------------------------------------
    def set_flags(self, **flags):
        """Set view flags (``block``, ``result_encoding``, ``timeout``; on a balanced view also
        ``chunksize``, ``ordered``, ``retries``)."""
        for k, v in flags.items():
            if k not in self._flag_names:
                raise ValueError(f"{type(self).__name__} has no flag {k!r}; its flags are {', '.join(self._flag_names)}")
            self._check_flag(k, v)
        for k, v in flags.items():
            setattr(self, k, v)

    @contextlib.contextmanager
    def temp_flags(self, **flags):
        """Set flags for the ``with`` block only."""
        saved = {k: getattr(self, k) for k in flags if k in self._flag_names}
        self.set_flags(**flags)
        try:
            yield self
        finally:
            for k, v in saved.items():
                setattr(self, k, v)

    def _check_flag(self, k, v):
        if k == "block" and not isinstance(v, bool):
            raise TypeError("block must be True or False")
        if k == "result_encoding" and v not in _RESULT_ENCODINGS:
            raise ValueError(f"result_encoding must be one of {_RESULT_ENCODINGS}, not {v!r}")
        if k == "timeout" and v is not None and not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, not {v!r}")

    # -- calls -----------------------------------------------------------------------------
    def _encoding(self, values) -> str:
        if self.result_encoding != "auto":
            return self.result_encoding
        return "array" if arrays.contains_array(values) else "json"

    def _spec(self, op, f, **fields) -> dict:
        spec = {"op": op, "component": f.component, "function": f.name, "targets": self._wire_targets()}
        if self.timeout is not None:
            spec["timeout_s"] = self.timeout
        spec.update(fields)
        return spec

    def _extra(self, op) -> dict:
        return {}

    def _retries(self) -> int:
        return 0

    def _run(self, op, f, spec: dict, block, finish, raw_inputs, buffers=None):
        """Post the task: JSON, or framed when ``buffers`` holds arrays the spec names; a task that
        may give arrays back (``result_encoding`` array) asks for a framed answer."""
        if block is None:
            block = self.block
        spec["result_encoding"] = self._encoding(raw_inputs)
        for k, v in self._extra(op).items():
            spec.setdefault(k, v)  # a per-call chunksize/ordered wins over the view's flag
        conn = self.client._conn
        retries = self._retries()
        frames = spec["result_encoding"] == "array"
        if block:
            spec["block"] = True

            def post():
                return conn.task("POST", "/v1/tasks", spec=spec, buffers=buffers, frames=frames)

            task = post()
            while task["status"] == "failed" and retries > 0 and (task.get("error") or {}).get("kind") in RETRYABLE:
                retries -= 1
                task = post()
            self.client._last_task = task
            if task["status"] != "done":
                raise task_error(task)
            return finish(task)
        spec = dict(spec, block=False)

        def resubmit():
            return conn.task("POST", "/v1/tasks", spec=spec, buffers=buffers, frames=frames)

        cls = AsyncResult if op in ("apply", "execute") else AsyncMapResult
        direct = self._wire_targets() != "balanced"
        ar = cls(self.client, resubmit(), f.name, finish, resubmit, retries, direct=direct, frames=frames)
        self.client._last_result = ar
        return ar

    def _apply(self, f, args, kwargs, block):
        f = as_function(f)
        buffers = arrays.Buffers() if self.client._conn.frames else None
        spec = self._spec(
            "apply",
            f,
            args=[arrays.encode_top(a, buffers) for a in args],
            kwargs={str(k): arrays.encode_top(v, buffers) for k, v in kwargs.items()},
        )
        return self._run("apply", f, spec, block, self._finish_apply, list(args) + list(kwargs.values()), buffers)

    def apply(self, f, *args, **kwargs):
        """Call ``f(*args, **kwargs)``: the result if ``self.block``, else an :class:`AsyncResult`."""
        return self._apply(f, args, kwargs, None)

    def apply_sync(self, f, *args, **kwargs):
        return self._apply(f, args, kwargs, True)

    def apply_async(self, f, *args, **kwargs):
        return self._apply(f, args, kwargs, False)

    def _map(self, op, f, sequences, block, kwargs=None, **flags):
        f = as_function(f)
        if not sequences:
            raise TypeError(f"{op} needs at least one sequence")
        buffers = arrays.Buffers() if self.client._conn.frames else None
        spec = self._spec(op, f, sequences=[_seq(s, buffers) for s in sequences])
        if kwargs:
            spec["kwargs"] = {str(k): arrays.encode_top(v, buffers) for k, v in kwargs.items()}
        spec.update(self._map_flags(flags))
        inputs = list(sequences) + list((kwargs or {}).values())
        return self._run(op, f, spec, block, self._finish_map, inputs, buffers)

    def _map_flags(self, flags) -> dict:
        if flags:
            raise TypeError(f"unexpected argument(s) {', '.join(flags)} for map on a {type(self).__name__}")
        return {}

    def map(self, f, *sequences, block=None, kwargs=None, **flags):
        """``f`` over the sequences, elementwise. ``kwargs`` are constants passed to every call."""
        return self._map("map", f, sequences, block, kwargs, **flags)

    def map_sync(self, f, *sequences, kwargs=None, **flags):
        return self._map("map", f, sequences, True, kwargs, **flags)

    def map_async(self, f, *sequences, kwargs=None, **flags):
        return self._map("map", f, sequences, False, kwargs, **flags)

    def _finish_map(self, task):
        return arrays.decode(task.get("result"))

    # -- decorators ------------------------------------------------------------------------
    def remote(self, f=None, block=None):
        """``@view.remote``: a function that calls ``f`` with ``apply`` on this view.

        ``rf = dv.remote("seed/rand", block=True)``, or as a decorator over a Python stub
        that documents it: ``@dv.remote("seed/rand", block=True)\\ndef rand(n): ...``.
        """
        return RemoteFunction(self, _component_for(f, "remote"), block)

    def parallel(self, f=None, block=None):
        """``@view.parallel``: a function that calls ``f`` once per engine on its chunk of
        each sequence (``.map(...)`` calls it elementwise instead)."""
        return ParallelFunction(self, _component_for(f, "parallel"), block)

    def activate(self, suffix: str = ""):
        """Make this view the one the ``%px`` magics use."""
        from . import magics

        magics.activate(self, suffix)
        return self


def _component_for(f, what):
    if f is None or (callable(f) and not isinstance(f, str) and inspect.isfunction(f)):
        raise TypeError(
            f"@{what} binds a component function, since engines run no Python code: "
            f"write @view.{what}('component/function') over the stub (e.g. @dv.{what}('seed/sum-chunk'))"
        )
    return as_function(f)


class RemoteFunction:
    """A component function bound to a view: calling it is ``view.apply(f, ...)``."""

    def __init__(self, view, f, block=None):
        self.view = view
        self.func = f
        self.block = block
        self.__name__ = f.name
        self.__doc__ = f"{f} on {view!r}"

    def __call__(self, *args, **kwargs):
        # Used as a decorator over a Python stub: keep the stub's name and doc, nothing else.
        if len(args) == 1 and not kwargs and inspect.isfunction(args[0]):
            functools.update_wrapper(self, args[0])
            return self
        return self.view._apply(self.func, args, kwargs, self.block)

    def __repr__(self):
        return f"<{type(self).__name__} {self.func} on {self.view!r}>"


class ParallelFunction(RemoteFunction):
    """``@parallel``: each engine gets its chunk of each sequence in one call; ``.map`` is elementwise."""

    def __call__(self, *sequences, **kwargs):
        if len(sequences) == 1 and not kwargs and inspect.isfunction(sequences[0]):
            functools.update_wrapper(self, sequences[0])
            return self
        return self.view._map("parallel", self.func, sequences, self.block, kwargs)

    def map(self, *sequences, **kwargs):
        return self.view._map("map", self.func, sequences, self.block, kwargs)


class _Cell:
    """What an execute task is labelled with (``AsyncResult`` and errors name it)."""

    component = "python"
    name = "execute"


_EXECUTE = _Cell()


class DirectView(View):
    """Work on named engines: ``rc[:]``, ``rc[::2]``, ``rc[2]``, ``rc[[1, 3]]``."""

    def _wire_targets(self):
        return self._targets

    def __repr__(self):
        return f"<DirectView {self._targets!r}>"

    @property
    def _single(self) -> bool:
        return isinstance(self._targets, int)

    def _finish_apply(self, task):
        result = [arrays.decode(v) for v in task.get("result") or []]
        return result[0] if self._single and result else result

    def execute(self, code: str, targets=None, block=None):
        """Run ``code`` as one cell of Python on each engine (the server's Python runner).

        Globals persist across cells and are the engines' namespace. The result
        (or the :class:`AsyncResult`'s ``get()``) is each engine's ``Out``: the
        repr of the cell's final expression, or None; what the cell printed is
        in ``outputs``. A raised exception is a :class:`RemoteError` (one
        engine) or :class:`CompositeError` with the engine's traceback.
        """
        if not isinstance(code, str):
            raise TypeError(f"execute takes the code as a str, not {type(code).__name__}")
        spec = {"op": "execute", "code": code, "targets": self._targets_for(targets)}
        if self.timeout is not None:
            spec["timeout_s"] = self.timeout
        return self._run("execute", _EXECUTE, spec, block, self._finish_apply, [])

    # -- namespace -------------------------------------------------------------------------
    def _ns(self, label, fn, block):
        if block is None:
            block = self.block
        if block:
            return fn()
        return AsyncFutureResult(self.client, self.client._executor.submit(fn), label)

    def _targets_for(self, targets):
        return self._targets if targets is None else targets

    def push(self, ns: dict, targets=None, block=None):
        """Bind each name in ``ns`` on every target engine. One numpy array goes as raw bytes."""
        if not isinstance(ns, dict):
            raise TypeError(f"push takes a dict of names to values, not a {type(ns).__name__}")
        if not ns:
            raise ValueError("push needs at least one name")
        t = self._targets_for(targets)
        conn = self.client._conn
        name, value = next(iter(ns.items()))
        if len(ns) == 1 and arrays.is_array(value) and value.ndim >= 1:
            dtype, shape, a = arrays.raw_array(value)

            def fn():
                answer = conn.json(
                    "PUT",
                    f"/v1/namespace/{name}",
                    params={"dtype": dtype, "shape": ",".join(map(str, shape)), "targets": targets_param(t)},
                    content=a.data.cast("B") if a.size else b"",  # the array's own memory, sent as it is
                    headers={"Content-Type": "application/octet-stream"},
                )
                return [None] * len(answer["engines"])

        else:
            values = arrays.encode(ns)

            def fn():
                answer = conn.json("PUT", "/v1/namespace", json={"targets": t, "values": values})
                return [None] * len(answer["engines"])

        return self._ns("push", fn, block)

    def pull(self, names, targets=None, block=None):
        """The values of ``names`` (one name or several) on each target engine."""
        single_name = isinstance(names, str)
        keys = [names] if single_name else list(names)
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise TypeError("pull takes a name or a list of names")
        t = self._targets_for(targets)
        conn = self.client._conn
        encoding = self._namespace_encoding()

        def fn():
            if single_name and isinstance(t, int) and encoding == "array":
                raw = self._pull_raw(keys[0], t)
                if raw is not _NOT_RAW:
                    return raw
            answer = conn.json(
                "GET", "/v1/namespace", params={"targets": targets_param(t), "names": ",".join(keys), "encoding": encoding}
            )
            per_engine = [arrays.decode(v) for v in answer["values"]]
            out = [v[keys[0]] if single_name else [v[k] for k in keys] for v in per_engine]
            return out[0] if isinstance(t, int) else out

        return self._ns("pull", fn, block)

    def _pull_raw(self, name, engine):
        """One engine's numeric value as raw bytes, or _NOT_RAW if it is not numeric."""
        from .errors import APIError

        try:
            r = self.client._conn.request("GET", f"/v1/namespace/{name}", params={"targets": str(engine)})
        except APIError as e:
            if e.status == 400 and "not a numeric" in e.message:
                return _NOT_RAW
            raise
        shape = [int(d) for d in r.headers["x-wasmpar-shape"].split(",") if d]
        return arrays.from_bytes(r.content, r.headers["x-wasmpar-dtype"], shape)

    def _namespace_encoding(self):
        if self.result_encoding == "auto":
            return "array" if arrays.have_numpy() else "json"
        return self.result_encoding

    def __setitem__(self, key, value):
        self.push({key: value}, block=True)

    def __getitem__(self, key):
        if not isinstance(key, str):
            raise TypeError("dv[name] takes a name; use rc[...] to select engines")
        return self.pull(key, block=True)

    def update(self, ns: dict):
        """``dict.update`` spelling of push."""
        return self.push(ns)

    def get(self, key):
        return self.pull(key, block=True)

    def scatter(self, key, seq, targets=None, block=None):
        """Partition ``seq`` into contiguous chunks, one per target engine, and bind ``key`` to each."""
        if not isinstance(key, str) or not key:
            raise TypeError("scatter takes a name and a sequence")
        values = _seq(seq)
        t = self._targets_for(targets)
        conn = self.client._conn

        def fn():
            conn.json("POST", "/v1/scatter", json={"name": key, "values": values, "targets": t})

        return self._ns("scatter", fn, block)

    def gather(self, key, targets=None, block=None):
        """The target engines' lists under ``key``, concatenated in engine order."""
        if not isinstance(key, str) or not key:
            raise TypeError("gather takes a name")
        t = self._targets_for(targets)
        conn = self.client._conn
        encoding = self._namespace_encoding()

        def fn():
            answer = conn.json("GET", "/v1/gather", params={"name": key, "targets": targets_param(t), "encoding": encoding})
            return arrays.decode(answer["values"])

        return self._ns("gather", fn, block)


_NOT_RAW = object()


class LoadBalancedView(View):
    """Work goes to whichever engine is free (``targets: "balanced"``)."""

    _flag_names = View._flag_names + ("chunksize", "ordered", "retries")

    def __init__(self, client):
        super().__init__(client, "balanced")
        self.chunksize = 1
        self.ordered = True
        self.retries = 0

    def _check_flag(self, k, v):
        super()._check_flag(k, v)
        if k == "chunksize" and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise ValueError(f"chunksize must be a positive integer, not {v!r}")
        if k == "ordered" and not isinstance(v, bool):
            raise TypeError("ordered must be True or False")
        if k == "retries" and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise ValueError(f"retries must be a non-negative integer, not {v!r}")

    def _wire_targets(self):
        return "balanced"

    def _retries(self) -> int:
        return self.retries

    def _extra(self, op):
        return {"chunksize": self.chunksize, "ordered": self.ordered} if op == "map" else {}

    def _map_flags(self, flags):
        out = {}
        for k, v in flags.items():
            if k not in ("chunksize", "ordered"):
                raise TypeError(f"unexpected argument {k!r} for map on a LoadBalancedView")
            self._check_flag(k, v)
            out[k] = v
        return out

    def _finish_apply(self, task):
        return arrays.decode(task.get("result"))

    def __repr__(self):
        return "<LoadBalancedView balanced>"
