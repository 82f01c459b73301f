# Type stubs for fastfutures.distributed (needs dask.distributed).
from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from typing import Any, TypeVar
from typing_extensions import ParamSpec

import distributed

from ._base import Executor
from ._future import Future
from .stats import ExecutorStats

__all__ = ["DaskExecutor", "BrokenDaskCluster"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

class BrokenDaskCluster(BrokenExecutor): ...

class DaskExecutor(Executor):
    # cluster: a Client, a scheduler address, a dask Cluster object, or None
    # (a LocalCluster of its own, with max_workers and LocalCluster options).
    def __init__(
        self,
        cluster: distributed.Client | str | Any | None = None,
        /,
        max_workers: int | None = None,
        **cluster_options: Any,
    ) -> None: ...
    @property
    def client(self) -> distributed.Client: ...
    def stats(self) -> ExecutorStats: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
