"""Finding the cluster, and the one keep-alive HTTP connection to it.

The connection file is found as the CLI finds it: the path given, else
``$WASMPAR_CONNECTION_FILE``, else ``~/.wasmpar/cluster.json``. ``url`` and
``token`` given directly override what the file says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from .errors import ClusterNotFound, ClusterUnreachable, WasmparError, api_error

DEFAULT_FILE = Path("~/.wasmpar/cluster.json")


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
        info = json.loads(text)
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


class Connection:
    """One ``httpx.Client`` (keep-alive, thread-safe) with the bearer token; errors become exceptions."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        # Reads have no limit: a blocking task answers when it is done, however long that is.
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, read=None),
            limits=httpx.Limits(max_keepalive_connections=8, max_connections=16),
        )

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise ClusterUnreachable(f"cannot reach the wasmpar server at {self.url}: {e}") from None
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = r.text
            raise api_error(r.status_code, body, method, path)
        return r

    def json(self, method: str, path: str, **kw):
        r = self.request(method, path, **kw)
        if not r.content:
            return None
        return r.json()

    def close(self):
        self.http.close()
