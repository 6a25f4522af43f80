"""Showing what engines printed and displayed, IPython Parallel's way.

``[stdout:0] hello`` (a one-line output on the prompt's line, longer ones
below it), ``[stderr:N]`` to stderr, ``[output:N]`` before images, which are
shown inline under Jupyter (IPython's display) and counted elsewhere.
"""

from __future__ import annotations

import base64
import sys


def in_notebook() -> bool:
    """True under a Jupyter kernel (where images can be shown inline)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def decode_outputs(outputs) -> list[dict]:
    """The task's ``outputs`` with images decoded to PNG bytes."""
    out = []
    for o in outputs or []:
        out.append(
            {
                "engine": o.get("engine"),
                "stdout": o.get("stdout") or "",
                "stderr": o.get("stderr") or "",
                "images": [base64.b64decode(i) for i in o.get("images") or []],
            }
        )
    return out


def _block(tag: str, text: str, stream):
    lines = text.rstrip("\n").split("\n")
    if len(lines) == 1:
        print(f"{tag} {lines[0]}", file=stream)
    else:
        print(tag, file=stream)
        for line in lines:
            print(line, file=stream)


def show(outputs: list[dict], stdout=None, stderr=None):
    """Print ``[stdout:N]``/``[stderr:N]`` blocks in engine order and show images."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    notebook = in_notebook()
    for o in sorted(outputs, key=lambda o: (o["engine"] is None, o["engine"])):
        e = o["engine"]
        if o["stdout"]:
            _block(f"[stdout:{e}]", o["stdout"], stdout)
        if o["stderr"]:
            _block(f"[stderr:{e}]", o["stderr"], stderr)
        if o["images"]:
            if notebook:
                from IPython.display import Image, display

                print(f"[output:{e}]", file=stdout)
                for png in o["images"]:
                    display(Image(data=png, format="png"))
            else:
                n = len(o["images"])
                print(f"[output:{e}] {n} image{'s' if n > 1 else ''} (PNG bytes in .outputs[i]['images'])", file=stdout)
