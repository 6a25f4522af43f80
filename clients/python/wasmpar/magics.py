"""IPython magics: ``%load_ext wasmpar``, then ``%px``, ``%pxresult``, ``%pxconfig``.

``%px`` runs a component function on the active view's engines and prints
IPython Parallel's layout: ``[stdout:N]`` blocks, then ``Out[N:count]: value``
per engine (the count is the engine's number of completed calls)::

    %px seed/greet world
    %px --targets ::2 --noblock seed/greet world
    %pxresult
    %pxconfig --targets 1:3 --noblock

Arguments after the function: Python literals (``3``, ``[1, 2]``, ``'a b'``),
names from the notebook's namespace, expressions with a call or an index
(``range(10)``, ``xs[2]``), ``name=value`` keyword arguments, and bare words
as strings.

Anything else is Python code, run on the engines by the server's Python
runner (``DirectView.execute``), with ``Out[N:count]`` the repr of the cell's
final expression::

    %px import math; a = math.pi
    %%px --targets ::2 --noblock
    print(a)
    %autopx      # from now on every cell runs on the engines; %autopx again to stop
"""

from __future__ import annotations

import ast
import re
import shlex

from . import outputs as _outputs
from .component import as_function
from .errors import task_error

_FUNC = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_KWARG = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$", re.S)

try:
    from IPython.core.error import UsageError
    from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

    HAVE_IPYTHON = True
except ImportError:  # the package works without IPython; only the magics need it
    HAVE_IPYTHON = False


def parse_targets(text: str):
    """``--targets`` as IPython Parallel takes it: ``all``, ``::2``, ``1:3``, ``2``, ``[1,3]``, ``1,3``."""
    t = text.strip()
    if t in ("all", ":", "::", ""):
        return slice(None)
    if ":" in t and not t.startswith("["):
        parts = t.split(":")
        if len(parts) > 3:
            raise ValueError(f"--targets {text!r} is not a slice")
        try:
            return slice(*[int(p) if p.strip() else None for p in parts])
        except ValueError:
            raise ValueError(f"--targets {text!r}: slice parts must be integers") from None
    try:
        v = ast.literal_eval(t if not ("," in t and not t.startswith(("[", "("))) else f"[{t}]")
    except (ValueError, SyntaxError):
        raise ValueError(f"--targets {text!r}: use all, an id, a list [1,3] or a slice ::2") from None
    if isinstance(v, bool) or not isinstance(v, (int, list, tuple)):
        raise ValueError(f"--targets {text!r}: use all, an id, a list [1,3] or a slice ::2")
    return list(v) if isinstance(v, (list, tuple)) else v


def parse_value(token: str, user_ns: dict):
    """One argument typed after ``%px component/function``."""
    try:
        return ast.literal_eval(token)
    except (ValueError, SyntaxError):
        pass
    if token.isidentifier() and token in user_ns:
        return user_ns[token]
    if re.search(r"[(\[.]", token) and re.match(r"^[A-Za-z_]", token):
        return eval(token, user_ns)  # noqa: S307 - the user's own expression in the user's own kernel
    return token


def _split_options(tokens: list[str]):
    """Leading ``--targets X``/``-t X``, ``--block``, ``--noblock``; the rest is the call."""
    opts = {}
    i = 0
    while i < len(tokens) and tokens[i].startswith("-") and not _looks_numeric(tokens[i]):
        tok = tokens[i]
        if tok in ("--targets", "--target", "-t"):
            if i + 1 >= len(tokens):
                raise ValueError(f"{tok} needs a value (all, 2, [1,3], ::2)")
            opts["targets"] = parse_targets(tokens[i + 1])
            i += 2
            continue
        if tok.startswith("--targets=") or tok.startswith("--target="):
            opts["targets"] = parse_targets(tok.split("=", 1)[1])
        elif tok == "--block":
            opts["block"] = True
        elif tok == "--noblock":
            opts["block"] = False
        else:
            raise ValueError(f"unknown option {tok}; %px takes --targets T, --block, --noblock")
        i += 1
    return opts, tokens[i:]


def _options_only(line: str, magic: str, where: str) -> dict:
    """A magic line of options only (``%pxconfig``, ``%%px``); anything else is a UsageError."""
    try:
        opts, rest = _split_options(shlex.split(line))
    except ValueError as e:
        raise UsageError(str(e)) from None
    if rest:
        raise UsageError(f"{magic} takes only options{where}, not {' '.join(rest)!r}")
    return opts


def _strip_options(line: str) -> str:
    """The code after %px's leading options, as typed (quotes and spacing kept)."""
    rest = line.lstrip()
    while rest.startswith("-") and not _looks_numeric(rest.split(None, 1)[0]):
        head, _, rest = rest.partition(" ")
        if head in ("--targets", "--target", "-t"):
            _, _, rest = rest.lstrip().partition(" ")
        rest = rest.lstrip()
    return rest


def _looks_numeric(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def show_px_result(ar, counts: dict | None = None):
    """What %px prints for a finished call: the outputs, then ``Out[e:count]: value`` per engine."""
    _outputs.show(ar.outputs)
    value = ar.get()
    engines = ar._task.get("engines") or []
    values = value if isinstance(value, list) and len(engines) > 1 else [value]
    if len(values) != len(engines):  # a balanced call, or a single target
        values = [value]
    _show_outs(ar._task, zip(engines, values), counts)


def show_px_failure(ar, counts: dict | None = None):
    """What %px prints for a failed call before raising its error: the outputs,
    then the ``Out`` of the engines that finished (IPython shows them too)."""
    _outputs.show(ar.outputs)
    err = task_error(ar._task)
    if err.results:
        _show_outs(ar._task, sorted(err.results.items()), counts)
    return err


def _show_outs(task: dict, pairs, counts: dict | None):
    for e, v in pairs:
        if v is None:
            continue
        count = f":{counts[e]}" if counts and e in counts else ""
        # A Python cell's Out is already its repr.
        shown = v if task.get("op") == "execute" and isinstance(v, str) else repr(v)
        print(f"Out[{e}{count}]: {shown}")


if HAVE_IPYTHON:

    @magics_class
    class ParallelMagics(Magics):
        """%px, %pxresult and %pxconfig bound to one view."""

        def __init__(self, shell, view=None, suffix=""):
            super().__init__(shell)
            self._view = view
            self.suffix = suffix
            self.targets = None  # None: the view's own targets
            self.block = True
            self.last_result = None
            self.autopx = False

        @property
        def view(self):
            if self._view is None:
                from .client import Client

                rc = Client._current or Client()
                self._view = rc[:]
            return self._view

        def _target_view(self, targets):
            if targets is None:
                return self.view
            return self.view.client[targets]

        @line_magic
        def pxconfig(self, line):
            """%pxconfig [--targets T] [--block|--noblock]: defaults for %px."""
            opts = _options_only(line, "%pxconfig", "")
            if "targets" in opts:
                self.targets = opts["targets"]
            if "block" in opts:
                self.block = opts["block"]

        @line_magic
        def px(self, line):
            """%px [--targets T] [--block|--noblock] component/function [args...] | python code"""
            try:
                tokens = shlex.split(line)
            except ValueError:
                if line.lstrip().startswith("-"):
                    raise UsageError(f"%px: cannot read the options of {line!r}") from None
                return self._run_code(line, {})  # code shlex cannot split ("it's")
            try:
                opts, rest = _split_options(tokens)
            except ValueError as e:
                raise UsageError(str(e)) from None
            if not rest:
                raise UsageError("%px needs a function or code: %px component/function args..., %px a = 1")
            if not _FUNC.match(rest[0]):
                return self._run_code(_strip_options(line), opts)
            f = as_function(rest[0])
            args, kwargs = [], {}
            ns = self.shell.user_ns if self.shell is not None else {}
            for tok in rest[1:]:
                m = _KWARG.match(tok)
                if m:
                    kwargs[m.group(1)] = parse_value(m.group(2), ns)
                else:
                    args.append(parse_value(tok, ns))
            view = self._target_view(opts.get("targets", self.targets))
            block = opts.get("block", self.block)
            ar = view._apply(f, args, kwargs, False)
            self.last_result = ar
            if not block:
                return ar
            ar.wait()
            self._show(ar)

        def _run_code(self, code, opts):
            view = self._target_view(opts.get("targets", self.targets))
            block = opts.get("block", self.block)
            ar = view.execute(code, block=False)
            self.last_result = ar
            if not block:
                return ar
            ar.wait()
            self._show(ar)

        @cell_magic("px")
        def px_cell(self, line, cell):
            """%%px [--targets T] [--block|--noblock]: the cell's Python code on the engines."""
            opts = _options_only(line, "%%px", " on its line")
            return self._run_code(cell, opts)

        @line_magic
        def autopx(self, line):
            """%autopx: run every following cell on the engines (as %%px) until %autopx again."""
            transformers = self.shell.input_transformers_cleanup
            if self.autopx:
                if self._autopx_transform in transformers:
                    transformers.remove(self._autopx_transform)
                self.autopx = False
                print("%autopx disabled")
            else:
                transformers.append(self._autopx_transform)
                self.autopx = True
                print("%autopx enabled")

        def _autopx_transform(self, lines):
            first = lines[0].strip() if lines else ""
            if not lines or first.startswith(("%autopx", "%%")):
                return lines
            name = "px" + self.suffix
            return [f"get_ipython().run_cell_magic({name!r}, '', {''.join(lines)!r})\n"]

        def _show(self, ar):
            counts = {e["id"]: e["completed"] for e in self.view.client.engines()}
            if ar.status != "done":
                show_px_failure(ar, counts)
                ar.get()  # raises the engines' errors (RemoteError / CompositeError)
            show_px_result(ar, counts)

        @line_magic
        def pxresult(self, line):
            """%pxresult: wait for the last %px call and print its outputs and results."""
            ar = self.last_result
            if ar is None:
                from .client import Client

                rc = self.view.client if self._view is not None else Client._current
                ar = getattr(rc, "_last_result", None)
            if ar is None:
                raise UsageError("no %px result yet: run %px --noblock first")
            ar.wait()
            self._show(ar)

    def _rename(magics: ParallelMagics, suffix: str):
        if suffix:
            lm = magics.magics["line"]
            for name in ("px", "pxresult", "pxconfig", "autopx"):
                lm[name + suffix] = lm.pop(name)
            cm = magics.magics["cell"]
            cm["px" + suffix] = cm.pop("px")


_active = {}


def activate(view, suffix: str = ""):
    """Register %px{suffix}, %pxresult{suffix}, %pxconfig{suffix} on ``view``."""
    if not HAVE_IPYTHON:
        raise ImportError("the magics need IPython (pip install ipython)")
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:
        raise RuntimeError("activate() registers IPython magics and needs a running IPython")
    m = ParallelMagics(ip, view, suffix)
    _rename(m, suffix)
    ip.register_magics(m)
    _active[suffix] = m
    return m


def load_ipython_extension(ip):
    """``%load_ext wasmpar``: %px and friends on the current client's ``rc[:]`` (made on first use)."""
    if "" not in _active:
        m = ParallelMagics(ip)
        ip.register_magics(m)
        _active[""] = m
