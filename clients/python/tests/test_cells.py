"""Python code on the engines: dv.execute, %px CODE, %%px, %pxresult, %autopx.

The server finds the Python runner itself (--python-runner, or the build
tree's target/guests/other/python_runner.wasm next to its binary).
"""

import re
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

import wasmpar
from wasmpar import magics as wasmpar_magics


@pytest.fixture(autouse=True)
def ranks(rc):
    """`rank` on every engine: its id."""
    for e in rc.ids:
        rc[e].push({"rank": e}, block=True)


@pytest.fixture()
def ip(rc, monkeypatch):
    monkeypatch.setattr(wasmpar.Client, "_current", rc)
    shell = InteractiveShell.instance()
    wasmpar_magics._active.clear()
    shell.run_line_magic("load_ext", "wasmpar")
    shell.run_line_magic("reload_ext", "wasmpar")
    yield shell


def outs(text):
    return {int(e): v for e, v in re.findall(r"^Out\[(\d+):\d+\]: (.*)$", text, re.M)}


def test_execute_globals_outputs_and_out(rc):
    dv = rc[[0, 1]]
    assert dv.execute("import math; a = math.pi", block=True) == [None, None]
    assert dv.pull("a", block=True) == [3.141592653589793, 3.141592653589793]
    ar = dv.execute("print(a)\na * 2", block=False)
    assert isinstance(ar, wasmpar.AsyncResult)
    assert ar.get(timeout=60) == ["6.283185307179586"] * 2
    assert [o["stdout"] for o in ar.outputs] == ["3.141592653589793\n"] * 2


def test_execute_raising_on_one_engine(rc):
    with pytest.raises(wasmpar.RemoteError) as e:
        rc[[0, 1]].execute("def f(v):\n    return 1 / v\nprint('rank', rank)\nf(rank)", block=True)
    err = e.value
    assert not isinstance(err, wasmpar.CompositeError)
    assert (err.engine_id, err.ename, err.evalue) == (0, "ZeroDivisionError", "division by zero")
    # IPython's CompositeError keeps every engine's outcome: engine 1's Out and both stdouts.
    assert err.results == {1: "1.0"}
    assert [(o["engine"], o["stdout"]) for o in err.outputs] == [(0, "rank 0\n"), (1, "rank 1\n")]
    assert "return 1 / v" in err.traceback and "Traceback (most recent call last)" in err.traceback
    with pytest.raises(wasmpar.RemoteError) as e:
        rc[1].execute("raise KeyError('k')", block=True)
    assert not isinstance(e.value, wasmpar.CompositeError) and (e.value.ename, e.value.evalue) == ("KeyError", "'k'")
    assert rc[1].execute("rank", block=True) == "1", "the engine is usable after"


def test_px_line_and_cell_magics(ip, capsys):
    ip.run_line_magic("px", "--targets [0,1] b = 21")
    ip.run_line_magic("px", "--targets [0,1] print('b is', b); b * 2")
    text = capsys.readouterr().out
    assert "[stdout:0] b is 21" in text and "[stdout:1] b is 21" in text
    assert outs(text) == {0: "42", 1: "42"}
    ip.run_cell_magic("px", "--targets ::2", "c = rank\nc")
    text = capsys.readouterr().out
    assert outs(text) and all(int(v) == e and e % 2 == 0 for e, v in outs(text).items())
    ar = ip.run_cell_magic("px", "--targets 1 --noblock", "import time\ntime.sleep(1)\n'slept'")
    assert isinstance(ar, wasmpar.AsyncResult)
    t0 = time.monotonic()
    ip.run_line_magic("pxresult", "")
    assert outs(capsys.readouterr().out) == {1: "'slept'"}
    assert time.monotonic() - t0 < 30


def test_autopx(ip, capsys):
    ip.run_line_magic("pxconfig", "--targets [0,1]")
    ip.run_cell("%autopx")
    ip.run_cell("d = rank + 100\nd")
    ip.run_cell("%autopx")
    text = capsys.readouterr().out
    assert "%autopx enabled" in text and "%autopx disabled" in text
    assert outs(text) == {0: "100", 1: "101"}
    ip.run_cell("local_only = 5")
    assert ip.user_ns["local_only"] == 5, "after %autopx cells run locally again"


def test_pulling_a_python_only_global_names_its_type(rc):
    rc[0].execute("def helper(): return 1\nclass P: pass\np = P()", block=True)
    with pytest.raises(wasmpar.APIError) as e:
        rc[0].pull("helper", block=True)
    assert e.value.status == 404
    assert "`helper` on engine 0 is a Python-only object of type `function`" in e.value.message
    with pytest.raises(wasmpar.APIError, match="Python-only object of type `P`"):
        rc[0]["p"]


def test_a_timeout_says_which_python_state_was_lost(rc):
    view = rc[1]
    view.execute("def keepme(): return 1\nkept = 7", block=True)
    view.timeout = 1
    with pytest.raises(wasmpar.TimeoutError) as e:
        view.execute("while True:\n    pass", block=True)
    msg = str(e.value)
    assert "the Python interpreter on engine 1 was restarted" in msg and "keepme (function)" in msg, msg
    assert "namespace values are kept" in msg
    view.timeout = None
    assert view.execute("kept", block=True) == "7", "the engine is usable after, namespace values kept"


def test_px_shows_the_other_engines_out_on_error(ip, capsys):
    with pytest.raises(wasmpar.RemoteError):
        ip.run_cell_magic("px", "--targets [0,1]", "print('rank', rank)\n10 / rank")
    text = capsys.readouterr().out
    assert outs(text) == {1: "10.0"}, text
    assert "[stdout:0] rank 0" in text and "[stdout:1] rank 1" in text
