"""wasmpar's Python runner: `%%px` cells executed by CPython inside an engine.

One instance of this component lives on each engine; its interpreter keeps the
cell's Python globals between calls of `execute`. Those globals and the
engine's namespace (what push/pull/scatter/gather and every other component
reach) are one:

- A cell reads a namespace value as a global when it first looks the name up
  (`Globals.__missing__`); names that class bodies mention are fetched before
  the cell runs (class bodies do not reach `__missing__`).
- A global whose value is a namespace value (None, bool, int, float, str,
  bytes, lists of numbers or strings, rectangular nested lists of numbers,
  JSON-like dicts and lists) is written to the namespace when the cell first
  assigns it, then at most every 20 ms while the cell keeps assigning it
  (less often when writing is slow, so that it takes at most ~10% of the time)
  (small values; large ones only at the end of the cell), and at the end of
  the cell if it was changed in place. It is then dropped from the Python
  dict, so that the next cell reads it back from the namespace and sees what
  push or another component put there meanwhile.
- Other objects (functions, modules, classes, instances) stay in the Python
  dict only. Their names and types are recorded in the namespace entry
  `__python__` (so that the host can name the type when they are pulled, and
  so that a fresh interpreter knows what was lost).

Invariants:
- Module-level code here runs at build time (componentize-py pre-initializes
  the interpreter and snapshots it), where the engine's imports do not exist:
  nothing at module level may call `namespace`. State is set up by the first
  `execute` of each instance.
- A trap (deadline, memory cap, stack overflow) destroys the instance; the
  engine re-instantiates it from the snapshot. The namespace survives, so the
  first cell of a fresh interpreter finds `__python__` from an earlier session
  and says on stderr what was lost, never silently.
- `execute` never raises anything but `Err(str)`: every Python exception of a
  cell becomes its formatted traceback.
"""

# Everything imported here is in the snapshot; cells can import only these
# (and CPython's built-in modules). The list is the bundle of docs/python-cells.md.
import array
import ast
import base64
import bisect
import builtins
import cmath
import collections
import copy
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import heapq
import io
import itertools
import json
import linecache
import math
import operator
import os
import pprint
import random
import re
import socket
import statistics
import string
import struct
import sys
import textwrap
import time
import traceback
import types
import typing

import wit_world
from componentize_py_types import Err
from wit_world.imports import namespace as ns

# Runtime imports must not look for files: the component has no filesystem
# (its stdlib is whatever the snapshot holds). An empty path makes a missing
# module a plain ModuleNotFoundError.
sys.path[:] = []
sys.path_importer_cache.clear()

MARKER = "__python__"
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
# Assignments of values up to this size (items, or 16-byte units of text
# and bytes: 64 KiB) are written to the namespace at once
# (they survive a trap in the same cell); bigger ones at the end of the cell,
# so that a loop rebinding a big list does not copy it out on every turn.
WRITE_THROUGH_ITEMS = 4096
# Later assignments of a name in the same cell are coalesced: written at most
# every FLUSH_EVERY_S, the clock read every CLOCK_EVERY assignments (a write
# costs ~2.6 us, a clock read ~0.3 us; a top-level loop assigns per turn).
FLUSH_EVERY_S = 0.02
CLOCK_EVERY = 32
# A flush that took t delays the next one by at least FLUSH_COST_FACTOR * t,
# so that writing through never takes more than ~10% of a cell's time.
FLUSH_COST_FACTOR = 10
# Frames shown at most in a traceback (the innermost ones).
TRACEBACK_FRAMES = 200
# Nested lists deeper than this are not arrays (and are not walked further).
MAX_DIMS = 32
_BUILTINS = builtins.__dict__
_MISSING = object()


def _is_dunder(name):
    return name[:2] == "__" and name[-2:] == "__"


# ---------------------------------------------------------------- values ----

def _number_list(items):
    """A flat list of numbers or strings as a namespace value, else None."""
    if not items:
        return ns.Value_IntList([])
    kinds = set(map(type, items))
    as_list = items if type(items) is list else list(items)
    if kinds == {int}:
        if min(items) >= I64_MIN and max(items) <= I64_MAX:
            return ns.Value_IntList(as_list)
        return None
    if kinds == {float}:
        return ns.Value_FloatList(as_list)
    if kinds == {int, float}:
        try:
            return ns.Value_FloatList(list(map(float, items)))
        except OverflowError:
            return None
    if kinds == {str}:
        return ns.Value_TextList(as_list)
    return None


def _array(items):
    """Rectangular nested lists of numbers (2 or more levels) as an n-d array."""
    shape = [len(items)]
    level = items
    while True:
        kinds = set(map(type, level))
        if kinds <= {list, tuple}:
            lens = set(map(len, level))
            if len(lens) != 1:
                return None
            n = lens.pop()
            if n == 0:
                return None
            shape.append(n)
            if len(shape) > MAX_DIMS:
                return None
            level = [x for row in level for x in row]
            continue
        if len(shape) < 2:
            return None
        if kinds == {int}:
            if min(level) < I64_MIN or max(level) > I64_MAX:
                return None
            return ns.Value_IntArray(ns.S64Array(shape, level))
        if kinds <= {int, float}:
            try:
                return ns.Value_FloatArray(ns.F64Array(shape, list(map(float, level))))
            except OverflowError:
                return None
        return None


def _jsonable(v, depth=0):
    if depth > 64:
        return False
    t = type(v)
    if v is None or t is bool or t is str:
        return True
    if t is int:
        return I64_MIN <= v <= I64_MAX
    if t is float:
        return math.isfinite(v)
    if t is list or t is tuple:
        return all(_jsonable(x, depth + 1) for x in v)
    if t is dict:
        return all(type(k) is str and _jsonable(x, depth + 1) for k, x in v.items())
    return False


def to_value(obj):
    """The namespace value standing for `obj`, or None if it is Python-only."""
    t = type(obj)
    if obj is None:
        return ns.Value_Null()
    if t is bool:
        return ns.Value_Boolean(obj)
    if t is int:
        return ns.Value_Int(obj) if I64_MIN <= obj <= I64_MAX else None
    if t is float:
        return ns.Value_Float(obj)
    if t is str:
        return ns.Value_Text(obj)
    if t is bytes or t is bytearray:
        return ns.Value_Bytes(bytes(obj))
    if t is list or t is tuple:
        v = _number_list(obj)
        if v is None and obj and type(obj[0]) in (list, tuple):
            v = _array(obj)
        if v is None and _jsonable(obj):
            v = ns.Value_Json(json.dumps(obj, allow_nan=False))
        return v
    if t is dict:
        return ns.Value_Json(json.dumps(obj, allow_nan=False)) if _jsonable(obj) else None
    if t is array.array:
        if obj.typecode in "fd":
            return ns.Value_FloatList(obj.tolist())
        if obj.typecode in "bBhHiIlLqQ":
            return _number_list(obj.tolist())
        return None
    return None


def _nest(data, shape):
    if len(shape) == 0:
        return data[0] if data else None
    for n in reversed(shape[1:]):
        data = [data[i:i + n] for i in range(0, len(data), n)]
    return data


def from_value(v):
    """The Python object for a namespace value (as json.loads of its pull)."""
    if isinstance(v, ns.Value_Null):
        return None
    if isinstance(v, ns.Value_Json):
        return json.loads(v.value)
    if isinstance(v, (ns.Value_FloatArray, ns.Value_IntArray)):
        return _nest(v.value.data, list(v.value.shape))
    return v.value


def _type_name(obj):
    t = type(obj)
    if t is int:
        return "int (beyond 64 bits)"
    if t is float:
        return "float"
    mod = t.__module__
    return t.__qualname__ if mod in ("builtins", "__main__") else f"{mod}.{t.__qualname__}"


def _freeze(obj):
    """What in-place changes of a loaded/written value are compared against."""
    t = type(obj)
    try:
        if t is list:
            if obj and type(obj[0]) in (list, dict):
                return json.dumps(obj, default=repr)
            return tuple(obj)
        if t is dict or t is tuple:
            return json.dumps(obj, default=repr)
    except (RecursionError, ValueError, TypeError):
        return object()  # equal to nothing: written again at the end of the cell
    if t is bytearray:
        return bytes(obj)
    if t is array.array:
        return obj.tobytes()
    return None


def _size(obj):
    t = type(obj)
    if t is str or t is bytes or t is bytearray:
        return len(obj) // 16
    if t is list or t is tuple or t is dict or t is array.array:
        return len(obj)
    return 0


# --------------------------------------------------------------- globals ----

class Session:
    """One interpreter's cells: counter, bridge bookkeeping, the globals."""

    def __init__(self):
        self.id = os.urandom(8).hex()
        self.cell = 0
        # Per cell: namespace names (kept current by our own writes),
        # namespace-backed globals in the dict -> (object, frozen copy),
        # names whose write was deferred.
        self.ns_names = set()
        self.tracked = {}
        self.deferred = set()
        # Names assigned in this cell, and those assigned again since the
        # last flush (coalesced write-through).
        self.assigned = set()
        self.pending = set()
        self.ticks = 0
        self.flush_due = 0.0
        self.objects_json = "{}"
        self.globals = Globals({"__name__": "__main__", "__builtins__": builtins})
        self._copy_builtins()

    def _copy_builtins(self):
        # Builtins in the dict itself: a dict subclass makes CPython look
        # globals up through the mapping protocol, and a miss per builtin
        # (`__missing__`, then builtins) costs ~9x a hit.
        g = self.globals
        for k, v in _BUILTINS.items():
            if not _is_dunder(k) and k not in self.ns_names and not dict.__contains__(g, k):
                dict.__setitem__(g, k, v)

    def load(self, name):
        """The namespace value of `name` into the dict; _MISSING if unbound."""
        v = ns.get(name)
        if v is None:
            self.ns_names.discard(name)
            return _MISSING
        obj = from_value(v)
        dict.__setitem__(self.globals, name, obj)
        self.tracked[name] = (obj, _freeze(obj))
        return obj

    def write(self, name, obj, final=False):
        """Write an assigned global through to the namespace."""
        if not final and _size(obj) > WRITE_THROUGH_ITEMS:
            self.tracked[name] = (obj, _MISSING)
            self.deferred.add(name)
            return
        v = to_value(obj)
        if v is None:
            self.tracked.pop(name, None)
            self.deferred.discard(name)
            if name in self.ns_names:
                ns.remove(name)
                self.ns_names.discard(name)
            return
        ns.set(name, v)
        self.ns_names.add(name)
        self.deferred.discard(name)
        self.tracked[name] = (obj, _freeze(obj))

    def assign(self, name, obj):
        """A cell assigned a global (through the dict's __setitem__)."""
        if name not in self.assigned:
            self.assigned.add(name)
            self.write(name, obj)
            return
        self.pending.add(name)
        self.ticks += 1
        if self.ticks >= CLOCK_EVERY:
            self.ticks = 0
            now = time.monotonic()
            if now >= self.flush_due:
                g = self.globals
                for n in self.pending:
                    cur = dict.get(g, n, _MISSING)
                    if cur is not _MISSING:
                        self.write(n, cur)
                self.pending.clear()
                cost = time.monotonic() - now
                self.flush_due = now + max(FLUSH_EVERY_S, FLUSH_COST_FACTOR * cost)

    def begin(self, code_names):
        self.cell += 1
        self.assigned.clear()
        self.pending.clear()
        self.ticks = 0
        self.flush_due = time.monotonic() + FLUSH_EVERY_S
        self.ns_names = set(ns.names())
        self.ns_names.discard(MARKER)
        g = self.globals
        # Whatever was pushed since the last cell wins over a Python-only
        # object or a builtin of the same name.
        for name in self.ns_names:
            if dict.__contains__(g, name):
                dict.__delitem__(g, name)
        self._copy_builtins()
        for name in code_names:
            if name in self.ns_names and not dict.__contains__(g, name):
                self.load(name)
        self.mark(running=True)

    def end(self):
        """Write what changed, drop namespace values from the dict, record the rest."""
        g = self.globals
        handled = set()
        for name, (obj, frozen) in list(self.tracked.items()):
            cur = dict.get(g, name, _MISSING)
            if cur is _MISSING:  # deleted by `del` inside a function
                if name in self.ns_names:
                    ns.remove(name)
                    self.ns_names.discard(name)
                continue
            handled.add(name)
            if cur is not obj or name in self.deferred or frozen is _MISSING or _freeze(cur) != frozen:
                self.write(name, cur, final=True)
        self.tracked.clear()
        self.deferred.clear()
        self.pending.clear()
        objects = {}
        for name, obj in list(dict.items(g)):
            if _is_dunder(name) or _BUILTINS.get(name, _MISSING) is obj:
                continue
            if name in handled and name in self.ns_names:
                dict.__delitem__(g, name)
                continue
            # Not seen by __setitem__: a `global` statement in a function,
            # globals().update(), or a Python-only object.
            v = to_value(obj)
            if v is not None:
                ns.set(name, v)
                self.ns_names.add(name)
                dict.__delitem__(g, name)
            else:
                if name in self.ns_names:
                    ns.remove(name)
                    self.ns_names.discard(name)
                objects[name] = _type_name(obj)
        self.objects_json = json.dumps(objects)
        self.mark(running=False)

    def mark(self, running):
        # The objects' JSON is made once per cell (end) and reused (begin).
        ns.set(MARKER, ns.Value_Json(
            f'{{"session": "{self.id}", "cell": {self.cell}, "running": {"true" if running else "false"}, '
            f'"objects": {self.objects_json}}}'))


class Globals(dict):
    """The cells' globals: a dict that reads through to the namespace."""

    __slots__ = ()

    def __missing__(self, name):
        s = SESSION
        if type(name) is str and name in s.ns_names and not _is_dunder(name):
            obj = s.load(name)
            if obj is not _MISSING:
                return obj
        b = _BUILTINS.get(name, _MISSING)
        if b is not _MISSING:
            return b
        raise KeyError(name)

    def __contains__(self, name):
        return dict.__contains__(self, name) or (type(name) is str and name in SESSION.ns_names)

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def __setitem__(self, name, obj):
        dict.__setitem__(self, name, obj)
        if type(name) is str and not _is_dunder(name):
            SESSION.assign(name, obj)

    def __delitem__(self, name):
        s = SESSION
        present = dict.__contains__(self, name)
        if present:
            dict.__delitem__(self, name)
        s.tracked.pop(name, None)
        s.deferred.discard(name)
        s.pending.discard(name)
        if type(name) is str and name in s.ns_names and not _is_dunder(name):
            ns.remove(name)
            s.ns_names.discard(name)
        elif not present:
            raise KeyError(name)


SESSION = None


# ----------------------------------------------------------------- cells ----

CO_OPTIMIZED = 0x1


def _class_body_names(code):
    """The names that class bodies in the cell's code mention.

    A class body looks names up in its own dict, then in the globals with
    PyDict_GetItem, which never calls `__missing__`: those names are fetched
    before the cell runs. Everything else (the cell's top level, functions)
    goes through the mapping protocol and reaches `__missing__`.
    """
    names, todo = set(), [k for k in code.co_consts if isinstance(k, types.CodeType)]
    while todo:
        c = todo.pop()
        if not c.co_flags & CO_OPTIMIZED:
            names.update(c.co_names)
        todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def _split(source, filename):
    """(body, final expression or None), as IPython's last-expression `Out`."""
    tree = ast.parse(source, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec")
    return body, (compile(last, filename, "eval") if last is not None else None)


def _traceback(exc, filename_prefix):
    """The exception formatted as Python would, from the cell's first frame on
    (the last TRACEBACK_FRAMES of them: formatting a million frames of a deep
    recursion would take longer than the deadline)."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(filename_prefix):
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) or tb is None:
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    depth, t = 0, tb
    while t is not None:
        depth, t = depth + 1, t.tb_next
    lines = traceback.format_exception(type(exc), exc, tb, limit=-TRACEBACK_FRAMES)
    if depth > TRACEBACK_FRAMES:
        lines.insert(1, f"  [{depth - TRACEBACK_FRAMES} earlier frames not shown]\n")
    return "".join(lines).rstrip("\n")


def _release(exc):
    """Drop a traceback one frame at a time, innermost first.

    Left to itself, a traceback of a deep recursion is freed recursively
    (tb_dealloc -> frame -> f_back -> ...) and a 20 000-deep one overflows
    the 1 MiB wasm stack: a trap that would cost the interpreter.
    """
    nodes, tb = [], exc.__traceback__
    exc.__traceback__ = None
    while tb is not None:
        nodes.append(tb)
        tb = tb.tb_next
    for node in nodes:
        node.tb_next = None
    node = None  # noqa: F841 - no reference may outlive the loop below
    while nodes:
        nodes.pop()


def _restarted_notice(marker):
    """The stderr notice of a fresh interpreter that finds an earlier session."""
    try:
        old = json.loads(marker.value)
    except (AttributeError, ValueError):
        return None
    if not isinstance(old, dict):
        return None
    if old.get("running"):
        why = (f"cell {old.get('cell')} was stopped (deadline, cancel or a trap)"
               " before it finished")
    else:
        why = "a trap on this engine (in another task, or the runner was re-instantiated)"
    objects = old.get("objects") or {}
    lost = ", ".join(f"{k} ({v})" for k, v in sorted(objects.items())) or "none recorded"
    return (f"Python-only state was lost: the engine restarted after {why}. "
            f"Lost: {lost}. Namespace values (None, bool, int, float, str, bytes, "
            "lists, arrays, JSON-like dicts) were kept; values changed in place "
            "in the stopped cell were not.")


def _init():
    global SESSION
    marker = ns.get(MARKER)
    SESSION = Session()
    # Output reaches the engine line by line, so that what a cell printed
    # before it was stopped is not lost with the instance.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    if marker is not None:
        notice = _restarted_notice(marker)
        if notice:
            print(notice, file=sys.stderr)


def run_cell(code):
    """One cell: Ok(repr of the final expression or None) or Err(traceback)."""
    if SESSION is None:
        _init()
    s = SESSION
    filename = f"<cell {s.cell + 1}>"
    try:
        body, last = _split(code, filename)
    except SyntaxError as e:
        raise Err(_traceback(e, "<cell "))
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    names = _class_body_names(body) | (_class_body_names(last) if last is not None else set())
    s.begin(names)
    g = s.globals
    try:
        exec(body, g)
        out = eval(last, g) if last is not None else None
        return None if out is None else repr(out)
    except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
        text = _traceback(e, "<cell ")
        _release(e)
        del e
        raise Err(text) from None
    finally:
        try:
            s.end()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()


class WitWorld(wit_world.WitWorld):
    def execute(self, code: str):
        try:
            return run_cell(code)
        except Err:
            raise
        except BaseException as e:  # a bug here must not trap the engine
            raise Err("python runner: internal error: " + _traceback(e, ""))
