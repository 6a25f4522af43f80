#!/usr/bin/env python3
"""Proves the Python runner against a real wasmpar server, over real HTTP.

    check.py --wasmpar BIN --runner python_runner.wasm --seed seed.wasm     the checks
    check.py --wasmpar BIN --runner python_runner.wasm --figures            the figures

Starts its own server on a free loopback port (own connection file and
compile cache under a temporary directory), uploads the runner as component
`python`, runs cells with the `execute` op (the server started with
`--python-runner`, so the first cell uploads the runner itself), and stops the
server. Exits non-zero on the first failed check.

A cell's Python exception is that engine's RemoteError/CompositeError entry
(`cause: "error"`, the traceback as `trace`); `Out` values are the result,
or, when another engine failed, in `error.results`.

Only the standard library: it runs with any python3.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


class Failed(Exception):
    pass


def check(cond, what, detail=None):
    if not cond:
        raise Failed(what + ("" if detail is None else f"\n    got: {detail!r}"))
    print(f"  ok  {what}")


class Server:
    """`wasmpar start --daemon` with a private connection file; `stop()` ends it."""

    def __init__(self, wasmpar, engines, tmp, extra=()):
        self.wasmpar = wasmpar
        self.conn = os.path.join(tmp, "cluster.json")
        self.cache = os.path.join(tmp, "cache")
        cmd = [wasmpar, "start", "-n", str(engines), "--daemon", "--connection-file", self.conn,
               "--cache-dir", self.cache, "--log-file", os.path.join(tmp, "server.log"), *extra]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(self.conn) as f:
            info = json.load(f)
        self.url, self.token, self.pid = info["url"], info["token"], info["pid"]

    def stop(self):
        subprocess.run([self.wasmpar, "stop", "--connection-file", self.conn],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if not os.path.exists(f"/proc/{self.pid}"):
                return
            time.sleep(0.05)
        os.kill(self.pid, 9)

    def cli(self, *args):
        return subprocess.run([self.wasmpar, "--connection-file", self.conn, *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "NO_COLOR": "1"})

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failed("no VmRSS")

    def request(self, method, path, body=None, raw=None, ctype="application/json"):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, (json.loads(text) if text else None)

    def upload(self, name, path):
        with open(path, "rb") as f:
            wasm = f.read()
        t0 = time.perf_counter()
        status, body = self.request("POST", f"/v1/components?name={name}", raw=wasm, ctype="application/wasm")
        return status, body, time.perf_counter() - t0

    def cell(self, code, targets="all", timeout_s=None, block=True):
        task = {"op": "execute", "code": code, "targets": targets, "block": block}
        if timeout_s is not None:
            task["timeout_s"] = timeout_s
        status, body = self.request("POST", "/v1/tasks", task)
        if status not in (200, 201, 202):
            raise Failed(f"POST /v1/tasks answered {status}: {body}")
        return body

    def push(self, values, targets="all"):
        status, body = self.request("PUT", "/v1/namespace", {"targets": targets, "values": values})
        if status != 200:
            raise Failed(f"push answered {status}: {body}")

    def pull(self, names, targets="all"):
        return self.request("GET", f"/v1/namespace?targets={targets}&names={','.join(names)}")


def outcome(task):
    """Per engine: ("ok", repr or None) | ("err", traceback) | ("failed", kind, message)."""
    out = {}
    engines = task.get("engines") or []
    results = task.get("result")
    if isinstance(results, list) and len(results) == len(engines):
        for e, r in zip(engines, results):
            if not (r is None or isinstance(r, str)):
                raise Failed(f"an Out value is a repr string or null, got {r!r}")
            out[e] = ("ok", r)
    err = task.get("error") or {}
    for e in err.get("errors") or []:
        kind = err.get("kind")
        if e.get("cause") == "error":
            # The runner's err: a RemoteError (CompositeError) whose message
            # is the traceback's last line and whose trace is all of it.
            trace = e.get("trace") or e.get("message")
            if kind not in ("RemoteError", "CompositeError") or not trace.rstrip().endswith(e.get("message")) \
                    or e.get("function") != "python/execute":
                raise Failed(f"a raised cell: RemoteError with message = the traceback's last line, got {err!r}")
            out[e["engine"]] = ("err", trace)
        else:
            text = "\n".join(x for x in (e.get("trace"), e.get("message")) if x)
            out[e["engine"]] = ("failed", kind, text)
    # The engines that finished when others failed (error.results).
    for r in err.get("results") or []:
        if r.get("engine") in out:
            raise Failed(f"engine {r.get('engine')} both failed and finished: {err!r}")
        out[r["engine"]] = ("ok", r.get("result"))
    if task.get("status") == "failed" and not out:
        for e in engines:
            out[e] = ("failed", err.get("kind"), err.get("message"))
    return out


def stdout_of(task, engine):
    for o in task.get("outputs") or []:
        if o.get("engine") == engine:
            return o.get("stdout", ""), o.get("stderr", "")
    return "", ""


def listener():
    """A loopback TCP listener and a counter of the connections it accepted."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                c, _ = s.accept()
                accepted.append(c)
            except OSError:
                pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return s.getsockname()[1], accepted, lambda: (stop.set(), t.join(), s.close())


def checks(srv, seed):
    e0, e1 = 0, 1

    print("component")
    t = srv.cell("1 + 1", targets="0")
    check(outcome(t) == {e0: ("ok", "2")}, "the first execute uploads the runner from --python-runner", t)
    status, comp = srv.request("GET", "/v1/components/python")
    names = [x["name"] for x in comp["exports"]]
    check(status == 200 and names == ["execute"], "the runner as listed: execute only (exports#init hidden)", comp)
    status, comp, _ = srv.upload("python", RUNNER)
    check(status == 201, "upload answers 201", (status, comp))
    names = [x["name"] for x in comp["exports"]]
    check("execute" in names, "execute is an export", names)
    ex = next(x for x in comp["exports"] if x["name"] == "execute")
    check(ex["params"] == [{"name": "code", "type": "string"}] and ex["result"] == "result<option<string>, string>",
          "execute: func(code: string) -> result<option<string>, string>", ex)
    HOST_NOTES.append(f"exports listed by the host: {names}")

    print("the tutorial's cells")
    t = srv.cell("import math; a = math.pi")
    check(outcome(t) == {e0: ("ok", None), e1: ("ok", None)}, "%px import math; a = math.pi", outcome(t))
    status, body = srv.pull(["a"])
    check(status == 200 and body["values"] == [{"a": 3.141592653589793}] * 2, "pull a -> pi on both engines", body)
    t = srv.cell("print(a)")
    check(all(stdout_of(t, e)[0] == "3.141592653589793\n" for e in (e0, e1)), "%px print(a): per-engine stdout",
          t.get("outputs"))
    t = srv.cell("a * 2")
    check(outcome(t) == {e0: ("ok", "6.283185307179586"), e1: ("ok", "6.283185307179586")},
          "final expression -> repr, as Out", outcome(t))
    t = srv.cell("a * 2;")
    check(outcome(t)[e0] == ("ok", None), "a trailing ; hides Out", outcome(t))
    t = srv.cell("'text'")
    check(outcome(t)[e0] == ("ok", "'text'"), "Out is the repr", outcome(t))
    t = srv.cell("math.sqrt(16)")
    check(outcome(t)[e0] == ("ok", "4.0"), "modules imported in an earlier cell stay imported", outcome(t))

    t = srv.cell("import random\na = [random.random() for _ in range(4)]\nsum(a)")
    o = outcome(t)
    check(all(o[e][0] == "ok" and 0 <= float(o[e][1]) < 4 for e in (e0, e1)) and o[e0] != o[e1],
          "%px a = [random.random() ...]; %px sum(a): each engine its own numbers", o)
    status, _ = srv.request("POST", "/v1/scatter", {"name": "a", "values": [1, 2, 1, 4, 3, 8, 3, 5, 1, 4]})
    t = srv.cell("print(a)")
    check(status == 200 and [stdout_of(t, e)[0] for e in (e0, e1)] == ["[1, 2, 1, 4, 3]\n", "[8, 3, 5, 1, 4]\n"],
          "dv.scatter('a', ...); %px print(a): each engine its chunk", t.get("outputs"))
    status, _ = srv.request("POST", "/v1/scatter", {"name": "xs", "values": list(range(24))})
    t = srv.cell("y = [x**2 for x in xs]")
    status, body = srv.request("GET", "/v1/gather?name=y")
    check(status == 200 and body["values"] == [x**2 for x in range(24)],
          "dv.scatter('xs', range(24)); %px y = [x**2 for x in xs]; dv.gather('y')", body)
    srv.cell("a = math.pi")

    print("globals between cells")
    t = srv.cell("x = 1\ndef f(): return x\nf()")
    check(outcome(t)[e0] == ("ok", "1"), "a function sees the cell's globals", outcome(t))
    t = srv.cell("x = 5\nf()")
    check(outcome(t)[e0] == ("ok", "5"), "a function of an earlier cell sees a later global", outcome(t))
    t = srv.cell("class K:\n    y = x + 1\nK.y")
    check(outcome(t)[e0] == ("ok", "6"), "a class body reads a namespace global", outcome(t))
    t = srv.cell("def bump():\n    global counter\n    counter = counter + 1 if 'counter' in globals() else 1\nbump(); bump()")
    status, body = srv.pull(["counter"])
    check(status == 200 and body["values"][0] == {"counter": 2}, "a `global` assignment in a function reaches pull", body)
    t = srv.cell("len([1, 2, 3]) + sum(range(4))")
    check(outcome(t)[e0] == ("ok", "9"), "builtins", outcome(t))

    print("namespace and globals are one")
    srv.push({"b": [1, 2, 3], "s": "hi", "m": [[1.5, 2.0], [3.0, 4.0]], "d": {"k": [1, {"z": None}]}, "n": None})
    t = srv.cell("(sum(b), s.upper(), m[1][0], d['k'][1], n)")
    check(outcome(t)[e0] == ("ok", "(6, 'HI', 3.0, {'z': None}, None)"), "pushed values read as globals", outcome(t))
    t = srv.cell("def peek():\n    return ('b' in globals(), globals().get('s'), globals().get('nope', 0))\npeek()")
    check(outcome(t)[e0] == ("ok", "(True, 'hi', 0)"), "globals() membership and get see namespace values", outcome(t))
    t = srv.cell("import math\nclass C:\n    v = sum(b) + len(s)\n    w = math.floor(m[0][0])\n(C.v, C.w)")
    check(outcome(t)[e0] == ("ok", "(8, 1)"), "class bodies read namespace values", outcome(t))
    srv.cell("c = [v * 2 for v in b]\nb.append(4)\nm[0][0] = -1.0\nblob = b'\\x00\\xff'\nflag = True\nbig = 2**70")
    status, body = srv.pull(["c", "b", "m", "blob", "flag"], targets="0")
    v = body["values"][0] if status == 200 else body
    check(status == 200 and v["c"] == [2, 4, 6] and v["b"] == [1, 2, 3, 4] and v["m"] == [[-1.0, 2.0], [3.0, 4.0]]
          and v["flag"] is True, "assigned and changed-in-place globals pulled", v)
    check(v["blob"].get("dtype") == "uint8", "bytes pulled as uint8 array form", v["blob"])
    srv.cell("import array\narr = array.array('d', [1.5, 2.5])\ntup = (1, 2)\ncfg = {'k': [1, 2.5], 'on': True}\n"
             "st = {1, 2}\ngrid = [[1, 2, 3], [4, 5, 6]]\nmixed = [1, 'a', None]")
    status, body = srv.pull(["arr", "tup", "cfg", "grid", "mixed"], targets="0")
    v = body["values"][0] if status == 200 else body
    check(status == 200 and v == {"arr": [1.5, 2.5], "tup": [1, 2], "cfg": {"k": [1, 2.5], "on": True},
                                  "grid": [[1, 2, 3], [4, 5, 6]], "mixed": [1, "a", None]},
          "array.array, tuple, dict, nested and mixed lists pulled", v)
    t = srv.cell("(type(grid).__name__, grid[1][2], type(tup).__name__, cfg['k'][1])", targets="0")
    check(outcome(t)[e0] == ("ok", "('list', 6, 'list', 2.5)"), "and read back next cell as JSON would give",
          outcome(t))
    status, body = srv.pull(["st"], targets="0")
    check(status == 404 and "`st` on engine 0 is a Python-only object of type `set`" in body["error"]["message"],
          "a set is Python-only: the pull's 404 names its type", (status, body))
    status, body = srv.pull(["big"], targets="0")
    check(status == 404 and "type `int (beyond 64 bits)`" in body["error"]["message"],
          "an int beyond 64 bits is Python-only (pull: 404 naming it)", (status, body))
    HOST_NOTES.append(f"pull of a Python-only global answers {status}: {json.dumps(body)}")
    status, body = srv.request("GET", "/v1/gather?name=st")
    check(status == 404 and "`st` on engine 0 is a Python-only object of type `set`" in body["error"]["message"],
          "gather of a Python-only global names its type", (status, body))
    status, body = srv.pull(["nothing_here"], targets="0")
    check(status == 404 and body["error"]["message"] == "name `nothing_here` not found on engine 0",
          "a name that is nowhere: the plain 404", (status, body))
    srv.push({"rank": 0}, targets="0")
    srv.push({"rank": 1}, targets="1")
    t = srv.cell("rank * 10 + 1")
    check(outcome(t) == {e0: ("ok", "1"), e1: ("ok", "11")}, "per-engine pushes are per-engine globals", outcome(t))
    status, _ = srv.request("POST", "/v1/scatter", {"name": "xs", "values": list(range(10))})
    check(status == 200, "scatter xs")
    srv.cell("ys = [x * x for x in xs]")
    status, body = srv.request("GET", "/v1/gather?name=ys")
    check(status == 200 and body["values"] == [i * i for i in range(10)], "scatter -> cell -> gather", body)
    srv.push({"len": 3})
    t = srv.cell("len")
    check(outcome(t)[e0] == ("ok", "3"), "a pushed name shadows a builtin", outcome(t))
    t = srv.cell("del len\nlen('ab')")
    check(outcome(t)[e0] == ("ok", "2"), "del of the pushed name brings the builtin back", outcome(t))
    status, body = srv.pull(["len"], targets="0")
    check(status == 404, "del removes the name from the namespace", (status, body))
    t = srv.cell("gone = 1")
    t = srv.cell("del gone")
    status, body = srv.pull(["gone"], targets="0")
    check(status == 404, "del in a later cell removes a namespace global", (status, body))
    t = srv.cell("class P: pass\np = P()\nh = 7\nh = P")
    status, body = srv.pull(["h"], targets="0")
    check(status == 404, "a global rebound to a Python object leaves the namespace", (status, body))
    status, body = srv.pull(["__python__"], targets="0")
    objs = body["values"][0]["__python__"]["objects"] if status == 200 else None
    check(objs is not None and objs.get("p") == "P" and objs.get("h") == "type" and objs.get("f") == "function"
          and objs.get("math") == "module", "__python__ names Python-only globals and their types", objs)
    status, body = srv.pull(["f"], targets="0")
    check(status == 404 and "`f` on engine 0 is a Python-only object of type `function`; it stays inside the "
          "Python runner" in body["error"]["message"], "pull of a function: 404 naming its type", (status, body))

    if seed:
        print("other components")
        status, _, _ = srv.upload("seed", seed)
        check(status == 201, "upload seed")
        srv.cell("a = 3\nb = 2")
        status, t = srv.request("POST", "/v1/tasks", {"op": "apply", "component": "seed", "function": "affine",
                                                      "args": [5], "block": True})
        check(t.get("result") == [17, 17], "seed/affine reads a and b assigned in a cell", t.get("result"))
        srv.cell("xs = [1, 2, 3]")
        srv.request("POST", "/v1/tasks", {"op": "apply", "component": "seed", "function": "squares", "block": True})
        t = srv.cell("y")
        check(outcome(t)[e0] == ("ok", "[1, 4, 9]"), "a cell reads what seed/squares set", outcome(t))
        srv.cell("def tool(): return 1", targets="1")
        status, t = srv.request("POST", "/v1/tasks", {"op": "apply", "component": "seed", "function": "fail",
                                                      "args": ["on purpose"], "targets": "1", "block": True})
        check(t.get("status") == "failed", "seed/fail traps on engine 1", t.get("status"))
        msg = t["error"]["errors"][0]["message"]
        check("the Python interpreter on engine 1 was restarted" in msg and "tool (function)" in msg
              and "namespace values are kept" in msg, "the trap's own error says the interpreter's state was lost", msg)
        status, t = srv.request("POST", "/v1/tasks", {"op": "apply", "component": "seed", "function": "identity",
                                                      "args": [{"$ref": "f"}], "targets": "0", "block": True})
        msg = ((t.get("error") or {}).get("errors") or [{}])[0].get("message", "")
        check("global `f` on engine 0 is a Python-only object of type `function`" in msg,
              "a $ref of a Python-only global names its type", t.get("error"))
        t = srv.cell("rank", targets="1")
        err = stdout_of(t, e1)[1]
        check(outcome(t)[e1] == ("ok", "1") and "Python-only state was lost" in err and "another task" in err
              and "tool (function)" in err, "another component's trap: the next cell reports the lost interpreter",
              (outcome(t), err))

    print("errors")
    t = srv.cell("def boom(v):\n    return 1 / v\nr = boom(rank)")
    o = outcome(t)
    check(t["status"] == "failed" and t["error"]["kind"] == "RemoteError" and o.get(e1) == ("ok", None)
          and t["error"].get("results") == [{"engine": 1, "result": None}],
          "engine 1 finished: its outcome is in error.results", t)
    check(o.get(e0, ("",))[0] == "err" and "ZeroDivisionError: division by zero" in o[e0][1]
          and 'File "<cell' in o[e0][1] and "return 1 / v" in o[e0][1] and "app.py" not in o[e0][1],
          "a cell raising on one engine: its Python traceback, runner frames cut", o.get(e0))
    HOST_NOTES.append(f"a cell raising on one engine: task status {t['status']!r}, error {json.dumps(t.get('error'))}, "
                      f"result {json.dumps(t.get('result'))[:160]}")
    t = srv.cell("print('rank', rank)\n1 / rank")
    o = outcome(t)
    check(o.get(e1) == ("ok", "1.0") and stdout_of(t, e1)[0] == "rank 1\n" and stdout_of(t, e0)[0] == "rank 0\n"
          and o.get(e0, ("",))[0] == "err", "the other engine's Out and stdout come with the error", (o, t.get("outputs")))
    t = srv.cell("raise ValueError(f'engine {rank}')")
    o = outcome(t)
    check(t["error"]["kind"] == "CompositeError" and "ValueError: engine 0" in o[e0][1]
          and "ValueError: engine 1" in o[e1][1], "raising on both engines: CompositeError, one traceback each", t)
    t = srv.cell("print('partial')\nraise KeyError('k')", targets="0")
    check(outcome(t)[e0][0] == "err" and "KeyError: 'k'" in outcome(t)[e0][1]
          and stdout_of(t, e0)[0] == "partial\n", "what a failing cell printed is kept", (outcome(t), stdout_of(t, e0)))
    t = srv.cell("def (:", targets="0")
    check(outcome(t)[e0][0] == "err" and "SyntaxError" in outcome(t)[e0][1], "a syntax error", outcome(t))
    t = srv.cell("import sys\nsys.exit(3)", targets="0")
    check(outcome(t)[e0][0] == "err" and "SystemExit: 3" in outcome(t)[e0][1], "sys.exit is an error, not a trap",
          outcome(t))
    t = srv.cell("def r(n): return r(n + 1)\nr(0)", targets="0")
    check(outcome(t)[e0][0] == "err" and "RecursionError" in outcome(t)[e0][1], "deep recursion: RecursionError",
          outcome(t))
    t = srv.cell("import xml.dom", targets="0")
    check(outcome(t)[e0][0] == "err" and "ModuleNotFoundError" in outcome(t)[e0][1],
          "a module outside the bundle: ModuleNotFoundError", outcome(t))

    print("sandbox")
    t = srv.cell("open('/etc/passwd').read()", targets="0")
    o = outcome(t)[e0]
    check(o[0] == "err" and ("FileNotFoundError" in o[1] or "PermissionError" in o[1] or "OSError" in o[1]),
          "open('/etc/passwd') fails: no filesystem", o)
    HOST_NOTES.append("open('/etc/passwd'): " + o[1].splitlines()[-1])
    port, accepted, close = listener()
    try:
        t = srv.cell(f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))",
                     targets="0")
        o = outcome(t)[e0]
        time.sleep(0.5)
        check(o[0] == "err" and not accepted, "a socket connect to a live loopback listener fails: no network",
              (o, len(accepted)))
        HOST_NOTES.append("socket connect: " + o[1].splitlines()[-1])
    finally:
        close()

    print("deadline and memory cap")
    srv.cell("keep = 42\ndef helper(): return 'alive'\nhelper()")
    t0 = time.perf_counter()
    t = srv.cell("print('before the loop')\nn = 0\nwhile True:\n    n += 1", targets="0", timeout_s=2)
    wall = time.perf_counter() - t0
    check(t["status"] == "failed" and (t.get("error") or {}).get("kind") == "TimeoutError",
          "an endless cell: TimeoutError", t.get("error"))
    check(wall < 10, "the deadline stops it", wall)
    check(stdout_of(t, e0)[0] == "before the loop\n", "what it printed before the deadline is kept", t.get("outputs"))
    msg = t["error"]["errors"][0]["message"]
    check("deadline" in msg and "the Python interpreter on engine 0 was restarted" in msg and "helper (function)" in msg
          and "namespace values are kept" in msg, "the TimeoutError itself says which Python-only globals were lost", msg)
    HOST_NOTES.append(f"endless cell: error {json.dumps(t.get('error'))}; stdout {stdout_of(t, e0)[0]!r}")
    t = srv.cell("(keep, n > 1000)", targets="0")
    o = outcome(t)[e0]
    _, err = stdout_of(t, e0)
    check(o == ("ok", "(42, True)"), "engine usable after; namespace values kept, incl. n as written during the loop",
          o)
    check("Python-only state was lost" in err and "helper (function)" in err and "stopped" in err,
          "the next cell says on stderr which Python-only state was lost", err)
    t = srv.cell("helper()", targets="0")
    check(outcome(t)[e0][0] == "err" and "NameError" in outcome(t)[e0][1], "the lost function is gone", outcome(t))
    check("Python-only state was lost" not in stdout_of(t, e0)[1], "the notice comes once", stdout_of(t, e0))
    t = srv.cell("small = 7\nlarge = list(range(10000))\nwhile True:\n    pass", targets="0", timeout_s=1)
    check(t["status"] == "failed", "a second endless cell", t["status"])
    status, body = srv.pull(["small"], targets="0")
    check(status == 200 and body["values"] == [{"small": 7}], "a small value assigned before the stop is kept", body)
    status, body = srv.pull(["large"], targets="0")
    check(status == 404, "a large one (written at the end of the cell) is not (documented)", (status, body))
    t = srv.cell("helper()", targets="1")
    check(outcome(t)[e1] == ("ok", "'alive'"), "the other engine kept its interpreter", outcome(t))
    srv.cell("def helper(): return 'alive'", targets="0")
    t = srv.cell("hog = bytearray(1 << 30)", targets="0")
    o = outcome(t)[e0]
    HOST_NOTES.append(f"allocation past the cap: status {t['status']!r}, outcome {o!r}")
    check((o[0] == "err" and "MemoryError" in o[1]) or (o[0] == "failed"), "allocation past the memory cap fails", o)
    t = srv.cell("(keep, helper())", targets="0")
    check(outcome(t)[e0] == ("ok", "(42, 'alive')"), "engine usable after, interpreter kept (MemoryError is no trap)",
          (outcome(t), stdout_of(t, e0)))
    t0 = time.perf_counter()
    t = srv.cell("import sys\nsys.setrecursionlimit(200_000)\ndef r(n): return r(n + 1)\nr(0)", targets="0")
    o = outcome(t)[e0]
    check(o[0] == "err" and "RecursionError" in o[1] and "earlier frames not shown" in o[1] and len(o[1]) < 20_000,
          "a 200 000-deep recursion: RecursionError, its traceback cut to the last frames",
          (o[0], o[1][:300], len(o[1])))
    HOST_NOTES.append(f"200 000-deep recursion to RecursionError: {time.perf_counter() - t0:.1f} s")
    t = srv.cell("(keep, helper())", targets="0")
    check(outcome(t)[e0] == ("ok", "(42, 'alive')"), "interpreter kept after it", outcome(t))
    # C recursion deeper than the host's wasm stack (1 MiB by default) allows:
    # a RecursionError where CPython's guard sees it first, else a trap that
    # the next cell must report.
    t = srv.cell("l = []\nfor i in range(100_000):\n    l = [l]\nrepr(l)", targets="0", timeout_s=30)
    o = outcome(t)[e0]
    HOST_NOTES.append(f"repr of a 100 000-deep list: {o[0]} {o[-1].splitlines()[0][:100]}")
    after = srv.cell("(keep, 'helper' in globals())", targets="0")
    if o[0] == "err":
        check("RecursionError" in o[1] and outcome(after)[e0] == ("ok", "(42, True)"),
              "repr of a 100 000-deep list: RecursionError, interpreter kept", (o, outcome(after)))
    else:
        check(outcome(after)[e0] == ("ok", "(42, False)") and "Python-only state was lost" in stdout_of(after, e0)[1]
              and "the Python interpreter on engine 0 was restarted" in o[-1],
              "repr of a 100 000-deep list: a trap; engine usable after, the loss reported", (o, outcome(after)))
        srv.cell("def helper(): return 'alive'", targets="0")
    t = srv.cell("hog = [0] * (1 << 28)", targets="0")
    o = outcome(t)[e0]
    check((o[0] == "err" and "MemoryError" in o[1]) or (o[0] == "failed"), "a list past the cap fails too", o)
    t = srv.cell("keep + 1", targets="0")
    check(outcome(t)[e0] == ("ok", "43"), "engine usable after", outcome(t))

    print("cancel")
    srv.cell("def tool2(): return 2", targets="1")
    t = srv.cell("while True:\n    pass", targets="1", block=False, timeout_s=30)
    time.sleep(1)
    t0 = time.perf_counter()
    status, t = srv.request("DELETE", f"/v1/tasks/{t['id']}")
    status, t = srv.request("GET", f"/v1/tasks/{t['id']}?wait=20")
    check(t["status"] == "cancelled" and time.perf_counter() - t0 < 5, "cancel stops a running cell", t["status"])
    msg = ((t.get("error") or {}).get("errors") or [{}])[0].get("message", "")
    check("the Python interpreter on engine 1 was restarted" in msg and "tool2 (function)" in msg,
          "the cancelled call's error says what was lost", t.get("error"))
    t = srv.cell("rank", targets="1")
    err = stdout_of(t, e1)[1]
    check(outcome(t)[e1] == ("ok", "1") and "cancel" in err and "tool2 (function)" in err,
          "the next cell reports the lost interpreter", (outcome(t), err))

    print("wasmpar px -c / -f")
    srv.cell("import math; a = math.pi")
    out = srv.cli("px", "-c", "print(a)\na * 2")
    check(out.returncode == 0 and "[stdout:0] 3.141592653589793" in out.stdout
          and "[stdout:1] 3.141592653589793" in out.stdout and "Out[0:" in out.stdout
          and "]: 6.283185307179586" in out.stdout, "px -c: [stdout:N] and Out[N:k] per engine", out)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write("x = [1, 2]\nlen(x) + rank\n")
    try:
        out = srv.cli("px", "-f", f.name, "-t", "1")
    finally:
        os.unlink(f.name)
    check(out.returncode == 0 and "]: 3" in out.stdout and "Out[0" not in out.stdout, "px -f cell.py -t 1", out)
    out = srv.cli("px", "-c", "1 / 0", "-t", "0")
    check(out.returncode != 0 and "ZeroDivisionError: division by zero" in out.stderr
          and "Traceback" in out.stderr, "px -c raising: the traceback, exit status 1", out)
    out = srv.cli("px", "-c", "print('rank', rank)\n1 / rank")
    check(out.returncode != 0 and "[stdout:1] rank 1" in out.stdout and "]: 1.0" in out.stdout
          and "Out[1" in out.stdout and "ZeroDivisionError" in out.stderr,
          "px -c raising on one engine: the other engine's stdout and Out, then the error", out)

    print("--noblock and %pxresult")
    t0 = time.time()
    t = srv.cell("import time; time.sleep(1); time.time()", block=False)
    check(t["status"] in ("pending", "running"), "%%px --noblock answers at once", t["status"])
    status, t = srv.request("GET", f"/v1/tasks/{t['id']}?wait=15")
    o = outcome(t)
    stamps = [float(o[e][1]) for e in (e0, e1)] if all(o.get(e, ("",))[0] == "ok" for e in (e0, e1)) else []
    check(len(stamps) == 2 and all(t0 + 0.9 < s < time.time() + 1 for s in stamps),
          "%pxresult: each engine's time.time() after a 1 s sleep", (o, t0))


def figures(srv):
    rows = []
    rss0 = srv.rss_kib()
    status, _, cold = srv.upload("python", RUNNER)
    assert status == 201
    rss1 = srv.rss_kib()
    status, _, cached = srv.upload("python", RUNNER)
    assert status == 201
    rows.append(("first upload (validate + compile), s", f"{cold:.2f}"))
    rows.append(("upload again (cached by digest), ms", f"{cached * 1000:.0f}"))
    rows.append(("server RSS growth by the first upload, MiB", f"{(rss1 - rss0) / 1024:.0f}"))
    engines = len(srv.request("GET", "/v1/engines")[1]["engines"])
    first = []
    for e in range(engines):
        t0 = time.perf_counter()
        t = srv.cell("a = 1", targets=str(e))
        first.append(time.perf_counter() - t0)
        assert outcome(t)[e] == ("ok", None), t
    rss2 = srv.rss_kib()
    rows.append(("first cell on an engine (instantiation + cell), ms, median",
                 f"{statistics.median(first) * 1000:.1f}"))
    rows.append((f"server RSS growth per engine with a live interpreter ({engines} engines), MiB",
                 f"{(rss2 - rss1) / 1024 / engines:.1f}"))
    for targets, label in (("0", "1 engine"), ("all", f"{engines} engines")):
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            t = srv.cell("a = 1", targets=targets)
            times.append(time.perf_counter() - t0)
            assert t["status"] == "done", t
        rows.append((f"round trip of %px a = 1 on {label}, ms, median (p90)",
                     f"{statistics.median(times) * 1000:.2f} ({sorted(times)[44] * 1000:.2f})"))
    code = "def f(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\nf(3_000_000)"
    t0 = time.perf_counter()
    t = srv.cell(code, targets="0")
    inside = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code.replace("f(3_000_000)", "f(3_000_000)")], check=True)
    native = time.perf_counter() - t0
    rows.append(("a 3M-step Python loop: in the runner / native python3 (incl. its start), ms",
                 f"{inside * 1000:.0f} / {native * 1000:.0f}"))
    srv.push({"big": [float(i) for i in range(1_000_000)]}, targets="0")
    t0 = time.perf_counter()
    t = srv.cell("sum(big)", targets="0")
    rows.append(("cell reading a pushed 1M-float list (namespace -> Python list), ms",
                 f"{(time.perf_counter() - t0) * 1000:.0f}"))
    t0 = time.perf_counter()
    t = srv.cell("big2 = [v * 2 for v in big]", targets="0")
    rows.append(("cell writing a 1M-float list back (Python list -> namespace), ms",
                 f"{(time.perf_counter() - t0) * 1000:.0f}"))
    t0 = time.perf_counter()
    t = srv.cell("for i in range(100_000):\n    k = i", targets="0")
    rows.append(("100k top-level assignments of a small int (coalesced write-through), ms",
                 f"{(time.perf_counter() - t0) * 1000:.0f}"))
    for k, v in rows:
        print(f"| {k} | {v} |")


def restart_figures(srv):
    """A server started again on the same compile cache: the runner's cached start."""
    rows = []
    status, _, warm = srv.upload("python", RUNNER)
    assert status == 201
    rows.append(("upload after a server restart (on-disk compile cache), ms", f"{warm * 1000:.0f}"))
    t0 = time.perf_counter()
    t = srv.cell("a = 1", targets="0")
    assert outcome(t)[0] == ("ok", None), t
    rows.append(("then the first cell on an engine, ms", f"{(time.perf_counter() - t0) * 1000:.1f}"))
    for k, v in rows:
        print(f"| {k} | {v} |")


HOST_NOTES = []
RUNNER = None


def main():
    global RUNNER
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wasmpar", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--seed")
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--figures", action="store_true")
    a = ap.parse_args()
    RUNNER = a.runner
    with tempfile.TemporaryDirectory(prefix="wasmpar-pycheck-") as tmp:
        srv = Server(a.wasmpar, a.engines if not a.figures else max(a.engines, 8), tmp,
                     extra=["--memory-mib", "512", "--python-runner", a.runner])
        try:
            if a.figures:
                print(f"load average before: {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
                figures(srv)
                srv.stop()
                srv = Server(a.wasmpar, max(a.engines, 8), tmp, extra=["--memory-mib", "512"])
                restart_figures(srv)
                print(f"load average after: {os.getloadavg()[0]:.1f}")
            else:
                checks(srv, a.seed)
                print("host notes:")
                for n in HOST_NOTES:
                    print("  " + n)
                print("all checks passed")
        except Failed as e:
            print(f"FAILED: {e}", file=sys.stderr)
            try:
                with open(os.path.join(tmp, "server.log")) as f:
                    sys.stderr.write(f.read()[-3000:])
            except OSError:
                pass
            return 1
        finally:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
