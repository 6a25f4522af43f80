"""%load_ext wasmpar, %px, %pxresult, %pxconfig in a real IPython shell."""

import re

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import wasmpar
from wasmpar import magics as wasmpar_magics
from conftest import ENGINES, python_model_chunks


@pytest.fixture()
def ip(rc, seed, monkeypatch):
    monkeypatch.setattr(wasmpar.Client, "_current", rc)
    shell = InteractiveShell.instance()
    wasmpar_magics._active.clear()
    shell.run_line_magic("load_ext", "wasmpar")
    shell.run_line_magic("reload_ext", "wasmpar")
    yield shell


def out_lines(text):
    return re.findall(r"^Out\[(\d+):(\d+)\]: (.*)$", text, re.M)


def test_px_prints_stdout_then_out(ip, rc, capsys):
    ip.run_line_magic("px", "seed/greet world")
    text = capsys.readouterr().out
    stdout_part, _, out_part = text.partition("Out[")
    assert stdout_part == "".join(f"[stdout:{e}] hello, world\n" for e in range(ENGINES))
    outs = out_lines("Out[" + out_part)
    assert [int(e) for e, _, _ in outs] == list(range(ENGINES))
    assert all(v == "'hello, world'" for _, _, v in outs)
    completed = {e["id"]: e["completed"] for e in rc.engines()}
    assert all(int(c) == completed[int(e)] for e, c, _ in outs), "Out[engine:count] counts the engine's calls"


def test_px_targets_noblock_and_pxresult(ip, capsys):
    ar = ip.run_line_magic("px", "--targets ::2 --noblock seed/greet world")
    assert isinstance(ar, wasmpar.AsyncResult)
    assert capsys.readouterr().out == ""
    ip.run_line_magic("pxresult", "")
    text = capsys.readouterr().out
    assert [e for e, _, _ in out_lines(text)] == [str(e) for e in range(0, ENGINES, 2)]
    assert "[stdout:1]" not in text and "[stdout:2] hello, world" in text


def test_pxconfig_and_arguments(ip, capsys):
    ip.run_line_magic("pxconfig", "--targets 1:3")
    ip.run_line_magic("px", "seed/hypot2 3 4")
    assert [(e, v) for e, _, v in out_lines(capsys.readouterr().out)] == [("1", "25"), ("2", "25")]
    ip.run_line_magic("px", "seed/hypot2 x=3 y=4")
    assert [v for _, _, v in out_lines(capsys.readouterr().out)] == ["25", "25"]
    ip.user_ns["who"] = "there"
    ip.run_line_magic("px", "--targets [1,3] seed/greet who")
    text = capsys.readouterr().out
    assert "[stdout:1] hello, there\n[stdout:3] hello, there\n" in text
    ip.run_line_magic("px", "--targets 2 seed/sum-chunk range(5)")
    assert out_lines(capsys.readouterr().out)[0][2] == "10"
    ip.run_line_magic("pxconfig", "--noblock")
    assert isinstance(ip.run_line_magic("px", "seed/identity 1"), wasmpar.AsyncResult)
    ip.run_line_magic("pxresult", "")


def test_px_scatter_squares_gather(ip, rc):
    # dv.scatter('xs', range(24)); %px y = [x**2 for x in xs]; np.array(dv.gather('y'))
    dv = rc[:]
    dv.scatter("xs", range(24), block=True)
    ip.run_line_magic("px", "seed/squares")
    assert np.array(dv.gather("y", block=True)).tolist() == [x**2 for x in range(24)]
    assert [len(c) for c in dv.pull("y", block=True)] == [len(r) for r in python_model_chunks(24, ENGINES)]


def test_px_images(ip, mandelbrot, capsys):
    ip.run_line_magic("px", "--targets [1,3] mandelbrot/render 60 40 30")
    text = capsys.readouterr().out
    assert "[output:1] 1 image" in text and "[output:3] 1 image" in text


def test_px_errors(ip, capsys):
    with pytest.raises(wasmpar.CompositeError) as e:
        ip.run_line_magic("px", "--targets [0,1] seed/fail boom")
    assert [x.engine_id for x in e.value.elist] == [0, 1]
    with pytest.raises(wasmpar.RemoteError, match="boom"):
        ip.run_line_magic("px", "--targets 1 seed/fail boom")
    with pytest.raises(wasmpar.CompositeError) as e:
        ip.run_line_magic("px", "--targets [0,1] a = np.random.random(4)")
    assert [(x.engine_id, x.ename) for x in e.value.elist] == [(0, "NameError"), (1, "NameError")]
    assert "name 'np' is not defined" in e.value.elist[0].evalue and "Traceback" in e.value.elist[0].traceback
    with pytest.raises(UsageError, match="unknown option --bogus"):
        ip.run_line_magic("px", "--bogus seed/greet x")
    with pytest.raises(UsageError, match="needs a function or code"):
        ip.run_line_magic("px", "--noblock")
    with pytest.raises(UsageError):
        ip.run_line_magic("pxconfig", "--targets")


def test_activate_with_suffix(ip, rc, capsys):
    rc[[0, 1]].activate("01")
    ip.run_line_magic("px01", "seed/identity 9")
    assert [(e, v) for e, _, v in out_lines(capsys.readouterr().out)] == [("0", "9"), ("1", "9")]
