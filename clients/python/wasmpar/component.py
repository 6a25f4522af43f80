"""Uploaded components and the functions they export.

Engines run component exports, never Python code: a function is named as
``"component/function"`` or taken from a handle, ``seed = rc.upload("seed.wasm");
seed.add3`` (snake_case reaches kebab-case exports: ``seed.sum_chunk``).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class Function:
    """A component's export, as views take it in place of a Python function."""

    __slots__ = ("component", "name", "params", "result")

    def __init__(self, component: str, name: str, params=None, result=None):
        self.component = component
        self.name = name
        self.params = params
        self.result = result

    @property
    def __name__(self):  # AsyncResult reprs and %px use it, as ipyparallel uses f.__name__
        return self.name

    def __str__(self):
        return f"{self.component}/{self.name}"

    def __repr__(self):
        if self.params is None:
            return f"<wasmpar.Function {self}>"
        args = ", ".join(f"{p['name']}: {p['type']}" for p in self.params)
        ret = f" -> {self.result}" if self.result else ""
        return f"<wasmpar.Function {self}({args}){ret}>"

    def __eq__(self, other):
        return isinstance(other, Function) and (self.component, self.name) == (other.component, other.name)

    def __hash__(self):
        return hash((self.component, self.name))


def as_function(f) -> Function:
    """``"component/function"`` or a :class:`Function`; anything else is refused with the reason."""
    if isinstance(f, Function):
        return f
    if isinstance(f, str):
        parts = f.split("/")
        if len(parts) != 2 or not all(parts) or not all(_NAME.match(p) for p in parts):
            raise ValueError(f"{f!r} does not name a function: write it as 'component/function', e.g. 'seed/add3'")
        return Function(parts[0], parts[1])
    if callable(f):
        name = getattr(f, "__name__", type(f).__name__)
        raise TypeError(
            f"wasmpar engines run WebAssembly component functions, not Python callables ({name}): "
            "name one as 'component/function' (e.g. 'seed/add3') or take it from an uploaded "
            "component (seed = rc.upload('seed.wasm'); seed.add3)"
        )
    raise TypeError(f"a {type(f).__name__} is not a function: write 'component/function' or use a component handle")


class Component:
    """An uploaded component: its name, digest, exports and imports; exports as attributes."""

    def __init__(self, info: dict):
        self._info = info
        self.name = info["name"]
        self.digest = info.get("digest")
        self.imports = list(info.get("imports") or [])
        self._exports = {e["name"]: e for e in info.get("exports") or []}

    @property
    def exports(self) -> list[str]:
        return list(self._exports)

    def function(self, name: str) -> Function:
        """The export ``name`` (kebab-case, or snake_case for it)."""
        for candidate in (name, name.replace("_", "-")):
            e = self._exports.get(candidate)
            if e is not None:
                return Function(self.name, candidate, e.get("params"), e.get("result"))
        raise AttributeError(f"component {self.name!r} exports no function {name!r}; it exports {', '.join(self._exports)}")

    __getitem__ = function

    def __getattr__(self, name: str) -> Function:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.function(name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | {e.replace("-", "_") for e in self._exports})

    def __repr__(self):
        return f"<wasmpar.Component {self.name}: {', '.join(self._exports)}>"
