"""numpy in and out without decimal text.

Outgoing values are walked once: a numpy array becomes the API's array form
(``{"dtype", "shape", "data": base64}``), a numpy scalar a Python number, a
``range`` or tuple a list. Incoming array forms become numpy arrays over the
decoded bytes (``np.frombuffer``: no further copy; from base64 the arrays are read-only).
numpy is optional: without it, lists go out as JSON lists and array forms
that come back are decoded into lists.

Framed bodies (API.md, "Framed bodies"): a task whose whole arguments,
kwargs or sequences include a numpy array of at least :data:`FRAME_MIN`
bytes goes as ``application/x-wasmpar-frames`` — the JSON document, then
each such array's own memory as a raw buffer, named in the document as
``{"dtype", "shape", "buffer": k}`` (:func:`encode_top` with a
:class:`Buffers`). Smaller arrays, and arrays nested inside other values
(which the server takes only as base64), stay base64 in the document.
A framed answer's buffers become numpy arrays over the received bytes
(:func:`resolve_buffers`; ``np.frombuffer``, no copy: the arrays are
writable views of the one uninitialised numpy byte array the answer was
read into, which they keep alive).
"""

from __future__ import annotations

import base64
import struct
import sys

try:  # optional
    import numpy as np
except ImportError:  # pragma: no cover - exercised in the no-numpy test by a subprocess
    np = None

#: numpy dtype names the server accepts, with their struct codes (for the no-numpy decoder).
DTYPES = {
    "float64": "d",
    "float32": "f",
    "int64": "q",
    "int32": "i",
    "int16": "h",
    "int8": "b",
    "uint64": "Q",
    "uint32": "I",
    "uint16": "H",
    "uint8": "B",
    "bool": "?",
}

ARRAY_KEYS = frozenset(("dtype", "shape", "data"))

#: Arrays of at least this many bytes, as a whole argument, kwarg or sequence, travel as a raw
#: buffer of a framed body; smaller ones as base64 in the JSON. Up to 2 KiB the two cost the
#: same within noise (``bench/profile_mandel.py --threshold``, an echo-chunk round trip on the
#: 2-core test machine: 505-568 µs both ways); framed is ahead from 4 KiB (535 against 602 µs)
#: and far ahead at 64 KiB (628 against 1224 µs). Below it a task stays one plain JSON request.
FRAME_MIN = 4096


class Buffers(list):
    """The raw buffers of a framed body being built: byte-format memoryviews of contiguous arrays."""

    def add(self, a) -> dict:
        """``a`` (a wire-ready array) as buffer k of the body; returns its array form."""
        self.append(a.data.cast("B") if a.size else memoryview(b""))
        return {"dtype": a.dtype.name, "shape": list(a.shape), "buffer": len(self) - 1}


def have_numpy() -> bool:
    return np is not None


def is_array(value) -> bool:
    return np is not None and isinstance(value, np.ndarray)


def contains_array(values) -> bool:
    """Whether any value (one level into lists, tuples and dicts) is a numpy array."""
    if np is None:
        return False
    for v in values:
        if isinstance(v, np.ndarray):
            return True
        if isinstance(v, dict) and any(isinstance(x, np.ndarray) for x in v.values()):
            return True
    return False


def raw_array(a):
    """``(dtype name, shape, contiguous little-endian array)`` for the raw-bytes route."""
    a = _wire_ready(a)
    return a.dtype.name, list(a.shape), a


def _wire_ready(a):
    name = a.dtype.name
    if name not in DTYPES:
        raise TypeError(
            f"numpy dtype {name} cannot be sent; wasmpar takes {', '.join(DTYPES)} (cast with .astype())"
        )
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a)


def array_form(a) -> dict:
    """A numpy array as the API's array form."""
    a = _wire_ready(a)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": base64.b64encode(a.data).decode("ascii")}


def encode_top(value, buffers: Buffers | None):
    """:func:`encode` for a whole argument, kwarg or sequence: a big array becomes a buffer of ``buffers``."""
    if (
        buffers is not None
        and np is not None
        and isinstance(value, np.ndarray)
        and value.ndim > 0
        and value.nbytes >= FRAME_MIN
        and value.dtype != object
    ):
        return buffers.add(_wire_ready(value))
    return encode(value)


def encode(value):
    """A Python value ready for ``json.dumps``: arrays as array forms, ranges as lists."""
    if np is not None:
        if isinstance(value, np.ndarray):
            if value.ndim == 0:
                return value.item()
            if value.dtype == object:
                return [encode(v) for v in value.tolist()]
            return array_form(value)
        if isinstance(value, np.generic):
            return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range)):
        return [encode(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    if hasattr(value, "__array__") and np is not None:
        return array_form(np.asarray(value))
    raise TypeError(
        f"a {type(value).__name__} cannot be sent to the engines; use numbers, strings, lists, dicts or numpy arrays"
    )


def decode(value):
    """A JSON value from the server with every array form turned into a numpy array (or a list without numpy)."""
    if isinstance(value, dict):
        if value.keys() == ARRAY_KEYS and isinstance(value.get("data"), str):
            return from_array_form(value)
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def resolve_buffers(value, buffers):
    """A framed answer's document with each ``{"dtype", "shape", "buffer": k}`` turned into an array over buffer k."""
    if isinstance(value, dict):
        if "buffer" in value and "dtype" in value and len(value) <= 3:
            k = value["buffer"]
            if not isinstance(k, int) or not 0 <= k < len(buffers):
                raise ValueError(f"the server's framed answer names buffer {k!r} but has {len(buffers)}")
            dtype = value["dtype"]
            if dtype not in DTYPES:
                raise ValueError(f"the server sent an array of unknown dtype {dtype!r}")
            shape = value.get("shape")
            if shape is None:
                shape = [-1]
            return from_bytes(buffers[k], dtype, [int(d) for d in shape])
        return {k: resolve_buffers(v, buffers) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_buffers(v, buffers) for v in value]
    return value


def from_array_form(v: dict):
    dtype, shape = v["dtype"], [int(d) for d in v["shape"]]
    if dtype not in DTYPES:
        raise ValueError(f"the server sent an array of unknown dtype {dtype!r}")
    raw = base64.b64decode(v["data"])
    return from_bytes(raw, dtype, shape)


def from_bytes(raw: bytes, dtype: str, shape: list[int]):
    """Little-endian bytes as a numpy array of ``shape`` (no copy), or nested lists without numpy."""
    if np is not None:
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    code = DTYPES[dtype]
    flat = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(code), code), bytes(raw)))
    for d in reversed(shape[1:]):
        flat = [flat[i : i + d] for i in range(0, len(flat), d)]
    return flat
