"""wasmpar: IPython Parallel's client model over a wasmpar cluster of WebAssembly engines.

    import wasmpar
    rc = wasmpar.Client()                     # ~/.wasmpar/cluster.json, as the CLI finds it
    seed = rc.upload("seed.wasm")
    dv = rc[:]
    dv.map_sync(seed.add3, range(10), range(10), range(10))
    rc.load_balanced_view().map_sync("seed/sum-array", np.random.random((10, 100000)))

In IPython: ``%load_ext wasmpar``, then ``%px seed/greet world``.
"""

from .asyncresult import AsyncFutureResult, AsyncMapResult, AsyncResult
from .client import Client
from .component import Component, Function
from .errors import (
    APIError,
    ClusterNotFound,
    ClusterUnreachable,
    CompositeError,
    DependencyError,
    EngineError,
    RemoteError,
    TaskAborted,
    TimeoutError,
    WasmparError,
)
from .magics import load_ipython_extension
from .view import DirectView, LoadBalancedView, ParallelFunction, RemoteFunction, View

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AsyncFutureResult",
    "AsyncMapResult",
    "AsyncResult",
    "Client",
    "ClusterNotFound",
    "ClusterUnreachable",
    "Component",
    "CompositeError",
    "DependencyError",
    "DirectView",
    "EngineError",
    "Function",
    "LoadBalancedView",
    "ParallelFunction",
    "RemoteError",
    "RemoteFunction",
    "TaskAborted",
    "TimeoutError",
    "View",
    "WasmparError",
    "load_ipython_extension",
]
