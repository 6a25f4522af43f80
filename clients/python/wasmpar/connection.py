"""Finding the cluster, and the keep-alive HTTP connection to it.

The connection file is found as the CLI finds it: the path given, else
``$WASMPAR_CONNECTION_FILE``, else ``~/.wasmpar/cluster.json``. ``url`` and
``token`` given directly override what the file says.

HTTP goes over the standard library's ``http.client``, kept alive: one
connection while the client is used from one thread, one more per thread
that talks at the same time (a long-poll in a worker thread does not hold
up the main one). httpx was the first choice; on the 2-core test machine
it spends about 250 µs of Python per request against http.client's 50 µs,
which alone would cost the apply round trip its 10x target over IPython
Parallel (docs/python-client.md, "Why http.client").
"""

from __future__ import annotations

import http.client
import json as _json
import os
import socket
import struct
import threading
import urllib.parse
from pathlib import Path

from . import arrays
from .errors import ClusterNotFound, ClusterUnreachable, WasmparError, api_error

DEFAULT_FILE = Path("~/.wasmpar/cluster.json")

#: The framed media type (API.md, "Framed bodies"): frames of an 8-byte little-endian length then bytes.
FRAMES = "application/x-wasmpar-frames"
# What a task request that may get arrays back accepts: frames first, JSON still fine
# (a stored task, and every error, answer JSON).
_ACCEPT_FRAMES = FRAMES + ", application/json"
_LEN = struct.Struct("<Q")


def frame_chunks(document: bytes, buffers) -> list:
    """A framed body as chunks to send as they are: the document behind its length, then each buffer behind its own.

    The document is padded with spaces (still the same JSON) to a multiple of 8 bytes, so that the first buffer, and
    every later one after buffers whose sizes are multiples of 8, starts 8-aligned in the server's copy of the body:
    the server then reads the arrays where they are instead of copying them."""
    document = bytes(document) + b" " * (-len(document) % 8)
    chunks = [_LEN.pack(len(document)) + document]
    for b in buffers:
        chunks.append(_LEN.pack(b.nbytes))
        chunks.append(b)
    return chunks


def parse_frames(body) -> list:
    """The frames of a framed body, as memoryviews over it (no copy)."""
    mv = memoryview(body)
    n = mv.nbytes
    frames, at = [], 0
    while at < n:
        if at + 8 > n:
            raise WasmparError(f"the server's framed answer is cut: frame {len(frames)} at byte {at} lacks its length")
        (length,) = _LEN.unpack_from(mv, at)
        start = at + 8
        if length > n - start:
            raise WasmparError(
                f"the server's framed answer is cut: frame {len(frames)} says {length} bytes but {n - start} follow"
            )
        frames.append(mv[start : start + length])
        at = start + length
    if not frames:
        raise WasmparError("the server's framed answer is empty")
    return frames


def decode_task(resp: "Response"):
    """A task answer as a dict: JSON as it is; framed with its buffers as numpy arrays in ``result``."""
    if not resp.headers.get("content-type", "").startswith(FRAMES):
        return resp.json() if resp.content else None
    frames = parse_frames(resp.content)
    task = _json.loads(bytes(frames[0]))
    if len(frames) > 1 and "result" in task:
        task["result"] = arrays.resolve_buffers(task["result"], frames[1:])
    return task


def connection_file(url_file=None) -> Path:
    """The connection file the client will read, in the CLI's order."""
    if url_file is not None:
        return Path(url_file).expanduser()
    env = os.environ.get("WASMPAR_CONNECTION_FILE")
    if env:
        return Path(env).expanduser()
    return DEFAULT_FILE.expanduser()


def read_connection(url_file=None, url=None, token=None) -> dict:
    """``{"url", "token", ...}`` from the connection file, with ``url``/``token`` overriding it."""
    if url is not None and token is not None:
        return {"url": url, "token": token}
    path = connection_file(url_file)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ClusterNotFound(
            f"no wasmpar cluster: {path} does not exist (start one with `wasmpar start --daemon`, "
            "or pass Client(url_file=...) / set $WASMPAR_CONNECTION_FILE)"
        ) from None
    except OSError as e:
        raise ClusterNotFound(f"cannot read the connection file {path}: {e}") from None
    try:
        info = _json.loads(text)
    except ValueError as e:
        raise WasmparError(f"the connection file {path} is not JSON: {e}") from None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str) or not isinstance(info.get("token"), str):
        raise WasmparError(f"the connection file {path} lacks \"url\" and \"token\"")
    if url is not None:
        info["url"] = url
    if token is not None:
        info["token"] = token
    info["file"] = str(path)
    return info


def _send_chunks(c, method, target, headers, chunks):
    """A request whose body is ``chunks``: the head as http.client sends it, then the chunks in
    one ``sendmsg`` (scatter-gather: no join into one bytes, no send per chunk; 0.13 ms against
    0.2 ms for http.client's send per chunk and 0.3 ms for a joined body, on the 1 MB Mandelbrot)."""
    c.putrequest(method, target)
    for k, v in headers.items():
        c.putheader(k, v)
    c.endheaders()
    views = [memoryview(b).cast("B") for b in chunks if memoryview(b).nbytes]
    sock = c.sock
    while views:
        n = sock.sendmsg(views[:_IOV_MAX])
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if n:
            views[0] = views[0][n:]


_IOV_MAX = 512  # under Linux's 1024 entries per sendmsg


def _read_body(r):
    """The answer's body: bytes, or for a framed answer (with numpy) one ``readinto`` into an
    uninitialised ``np.empty`` byte array of the announced length, so that the arrays over it
    are writable and nothing is zero-filled first (a ``bytearray`` would be: 10 ms per 80 MB)."""
    n = r.length
    np = arrays.np
    if n is None or np is None or not (r.getheader("content-type") or "").startswith(FRAMES):
        return r.read()
    buf = np.empty(n, dtype=np.uint8)
    got = r.readinto(memoryview(buf)) if n else 0
    if got != n:
        raise http.client.IncompleteRead(buf[:got].tobytes(), n - got)
    return buf


class Response:
    """What a request answered: ``status``, ``headers`` (lower-case names), ``content``."""

    __slots__ = ("status", "headers", "content")

    def __init__(self, status: int, headers: dict, content: bytes):
        self.status = status
        self.headers = headers
        self.content = content

    def json(self):
        return _json.loads(self.content)


# A reused connection the server has closed fails in one of these ways before
# any answer arrives; the request is then sent once more on a fresh connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest)


class Connection:
    """Keep-alive HTTP/1.1 connections to one server with the bearer token; errors become exceptions."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WasmparError(f"{url!r} is not an http:// or https:// URL")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        #: How many TCP connections were opened (one, used from one thread).
        self.opened = 0
        #: Callables ``(method, path, headers, body)`` shown each request before it is sent
        #: (``body`` is bytes, or a list of chunks for a framed body).
        self.hooks = []
        #: Callables ``(method, path, status, headers, body)`` shown each answer (headers lower-case).
        self.answer_hooks = []
        #: Whether task requests may go framed and ask for framed answers (API.md, "Framed
        #: bodies"); False keeps every request and answer JSON.
        self.frames = True

    # -- the pool --------------------------------------------------------------------------
    def _new(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        c = cls(self._host, self._port, timeout=self._timeout)
        try:
            c.connect()
        except OSError as e:
            raise ClusterUnreachable(f"cannot reach the wasmpar server at {self.url}: {e}") from None
        # Connecting is bounded; answers are not: a blocking task answers when it is done.
        c.sock.settimeout(None)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.opened += 1
        return c

    def _take(self):
        with self._lock:
            if self._closed:
                raise WasmparError("this client is closed")
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _give(self, c):
        with self._lock:
            if not self._closed:
                self._idle.append(c)
                return
        c.close()

    # -- requests --------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params=None, json=None, content=None, headers=None) -> Response:
        target = self._prefix + path
        if params:
            query = {k: v for k, v in params.items() if v is not None}
            if query:
                target += "?" + urllib.parse.urlencode(query)
        h = dict(self._headers)
        if json is not None:
            content = _json.dumps(json, separators=(",", ":")).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        if isinstance(content, list):  # chunks (a framed body), sent one after the other from where they are
            h["Content-Length"] = str(sum(memoryview(c).nbytes for c in content))
        for hook in self.hooks:
            hook(method, path, h, content)
        for attempt in (0, 1):
            c, reused = self._take()
            try:
                if isinstance(content, list) and not self._https:
                    _send_chunks(c, method, target, h, content)
                else:
                    c.request(method, target, body=content, headers=h)
                r = c.getresponse()
                body = _read_body(r)
            except _STALE as e:
                c.close()
                if reused and attempt == 0:
                    continue
                raise ClusterUnreachable(f"the wasmpar server at {self.url} closed the connection: {e}") from None
            except OSError as e:
                c.close()
                raise ClusterUnreachable(f"cannot reach the wasmpar server at {self.url}: {e}") from None
            except BaseException:
                c.close()  # interrupted mid-answer: the connection's state is unknown
                raise
            if r.will_close:
                c.close()
            else:
                self._give(c)
            break
        resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
        for hook in self.answer_hooks:
            hook(method, path, resp.status, resp.headers, body)
        if resp.status >= 400:
            try:
                err = resp.json()
            except ValueError:
                err = body.decode("utf-8", "replace")
            raise api_error(resp.status, err, method, path)
        return resp

    def task(self, method: str, path: str, *, spec=None, buffers=None, frames: bool = False, params=None):
        """A task request: ``spec`` as JSON, or framed when ``buffers`` (arrays.Buffers) holds any;
        ``frames`` asks for a framed answer. Returns the task as a dict (see :func:`decode_task`)."""
        headers = {"Accept": _ACCEPT_FRAMES} if frames and self.frames else None
        if buffers:
            document = _json.dumps(spec, separators=(",", ":")).encode()
            headers = dict(headers or {}, **{"Content-Type": FRAMES})
            r = self.request(method, path, params=params, content=frame_chunks(document, buffers), headers=headers)
        else:
            r = self.request(method, path, params=params, json=spec, headers=headers)
        return decode_task(r)

    def json(self, method: str, path: str, **kw):
        r = self.request(method, path, **kw)
        if not r.content:
            return None
        return r.json()

    def close(self):
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()
