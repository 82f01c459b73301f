# Type stubs for fastfutures.process.
import concurrent.futures
import concurrent.futures.process
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool as BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any, Literal, TypeVar, overload
from typing_extensions import ParamSpec, TypeVarTuple, Unpack

from ._base import Executor
from ._future import Future
from .stats import ExecutorStats

__all__ = ["ProcessPoolExecutor", "BrokenProcessPool", "TaskTimeout", "WorkerDied"]

_Ts = TypeVarTuple("_Ts")
_T = TypeVar("_T")
_P = ParamSpec("_P")

# How long a worker killed for a time limit or cancel_running gets between
# SIGTERM and SIGKILL (seconds).
KILL_GRACE_SECONDS: float

class TaskTimeout(concurrent.futures.TimeoutError):
    """A call ran past its time limit; its worker was killed and replaced."""
    limit: float | None
    def __init__(self, message: str, limit: float | None = None) -> None: ...

class WorkerDied(BrokenProcessPool):
    """The worker running this call died (on_worker_death="replace")."""
    pid: int | None
    exitcode: int | None
    def __init__(self, message: str, pid: int | None = None, exitcode: int | None = None) -> None: ...
    @property
    def signal(self) -> int | None: ...

class _PoolView:
    # ProcessPoolExecutor.with_options(): the same pool, another time limit or bound.
    def __init__(self, executor: ProcessPoolExecutor, limit: float, bound: Any = None) -> None: ...
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    if sys.version_info >= (3, 14):
        def map(
            self,
            fn: Callable[..., _T],
            *iterables: Iterable[Any],
            timeout: float | None = None,
            chunksize: int = 1,
            buffersize: int | None = None,
        ) -> Iterator[_T]: ...
    else:
        def map(
            self, fn: Callable[..., _T], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1,
        ) -> Iterator[_T]: ...
    def with_options(
        self,
        *,
        timeout: float | None = ...,
        max_queue_size: int | None = ...,
        on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
        queue_full_timeout: float | None = None,
    ) -> _PoolView: ...

if sys.platform == "win32":
    # No shared-memory transport on Windows: the stdlib's pool itself.
    from concurrent.futures.process import ProcessPoolExecutor as ProcessPoolExecutor
else:
    # A subclass of the stdlib's ProcessPoolExecutor too.  Unlike the stdlib,
    # max_tasks_per_child and terminate_workers()/kill_workers() exist on every
    # supported version.
    class ProcessPoolExecutor(Executor, concurrent.futures.process.ProcessPoolExecutor):
        # initargs must match the initializer's parameters.
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            mp_context: BaseContext | None = None,
            initializer: Callable[[], object] | None = None,
            initargs: tuple[()] = (),
            *,
            max_tasks_per_child: int | None = None,
            zero_copy_results: bool = False,
            task_timeout: float | None = None,
            cancel_running: bool = False,
            on_worker_death: Literal["break", "replace"] = "break",
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            mp_context: BaseContext | None = None,
            *,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
            max_tasks_per_child: int | None = None,
            zero_copy_results: bool = False,
            task_timeout: float | None = None,
            cancel_running: bool = False,
            on_worker_death: Literal["break", "replace"] = "break",
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None,
            mp_context: BaseContext | None,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
            *,
            max_tasks_per_child: int | None = None,
            zero_copy_results: bool = False,
            task_timeout: float | None = None,
            cancel_running: bool = False,
            on_worker_death: Literal["break", "replace"] = "break",
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
        ) -> None: ...
        # Calls of the view get a time limit of `timeout` seconds (None: none),
        # instead of task_timeout.
        def with_options(
        self,
        *,
        timeout: float | None = ...,
        max_queue_size: int | None = ...,
        on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
        queue_full_timeout: float | None = None,
    ) -> _PoolView: ...
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
        def stats(self) -> ExecutorStats: ...
        # Stop the workers now (SIGTERM / SIGKILL); the pool is broken afterwards.
        def terminate_workers(self) -> None: ...
        def kill_workers(self) -> None: ...
