"""The tutorial's functions as a wasmpar task, in Python (componentize-py).

componentize-py generates `wit_world` from wit/world.wit at build time; the
class `WitWorld` below implements the world's exports, and
`wit_world.imports.namespace` reaches the engine's globals.
"""

import sys

import wit_world
from wit_world.imports import namespace
from wit_world.imports.namespace import Value_Int, Value_IntList

S64_MIN, S64_MAX = -(2**63), 2**63 - 1


def s64(value: int, what: str) -> int:
    """value, or a trap naming `what` when it does not fit an s64."""
    if not S64_MIN <= value <= S64_MAX:
        raise OverflowError(f"{what} overflows s64")
    return value


def global_int(name: str) -> int:
    """The engine's global `name` as an int, or a trap saying why not."""
    value = namespace.get(name)
    if value is None:
        raise KeyError(f"global `{name}` is not set on this engine")
    if not isinstance(value, Value_Int):
        raise TypeError(f"global `{name}`: expected int, found {type(value).__name__.removeprefix('Value_').lower()}")
    return value.value


class WitWorld(wit_world.WitWorld):
    def add3(self, x: int, y: int, z: int) -> int:
        return s64(x + y + z, "x + y + z")

    def hypot2(self, x: int, y: int) -> int:
        return s64(x * x + y * y, "x² + y²")

    def sum_chunk(self, xs: list[int]) -> int:
        return s64(sum(xs), "the chunk's sum")

    def greet(self, name: str) -> str:
        print(f"hello, {name} from Python {sys.version_info.major}.{sys.version_info.minor}")
        return f"hello, {name}"

    def affine(self, x: int) -> int:
        return s64(global_int("a") * x + global_int("b"), "a·x + b")

    def squares(self) -> None:
        xs = namespace.get("xs")
        if not isinstance(xs, Value_IntList):
            raise TypeError("global `xs` must be an int-list")
        namespace.set("y", Value_IntList([s64(x * x, "x²") for x in xs.value]))

    def bump(self, name: str) -> int:
        count = global_int(name) + 1 if namespace.get(name) is not None else 1
        namespace.set(name, Value_Int(s64(count, name)))
        return count

    def fail(self, msg: str) -> int:
        raise ValueError(msg)
