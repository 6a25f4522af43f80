"""numpy in and out without decimal text.

Outgoing values are walked once: a numpy array becomes the API's array form
(``{"dtype", "shape", "data": base64}``), a numpy scalar a Python number, a
``range`` or tuple a list. Incoming array forms become numpy arrays over the
decoded bytes (``np.frombuffer``: no further copy; the arrays are read-only).
numpy is optional: without it, lists go out as JSON lists and array forms
that come back are decoded into lists.
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
    flat = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(code), code), raw))
    for d in reversed(shape[1:]):
        flat = [flat[i : i + d] for i in range(0, len(flat), d)]
    return flat
