# Type stubs for fastfutures.thread.
import concurrent.futures.thread
import sys
from collections.abc import Callable
from concurrent.futures.thread import BrokenThreadPool as BrokenThreadPool
from typing import Any, Literal, overload
from typing_extensions import TypeVarTuple, Unpack

from ._base import Executor
from .stats import ExecutorStats

__all__ = ["ThreadPoolExecutor", "BrokenThreadPool"]

_Ts = TypeVarTuple("_Ts")

# A subclass of the stdlib's ThreadPoolExecutor too (asyncio's
# set_default_executor requires that); fastfutures' submit()/map() come first.
class ThreadPoolExecutor(Executor, concurrent.futures.thread.ThreadPoolExecutor):
    if sys.version_info >= (3, 14):
        # **ctxkwargs go to cls.prepare_context().
        # initargs must match the initializer's parameters.
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            thread_name_prefix: str = "",
            initializer: Callable[[], object] | None = None,
            initargs: tuple[()] = (),
            *,
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
            idle_timeout: float | None = None,
            **ctxkwargs: Any,
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            thread_name_prefix: str = "",
            *,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
            idle_timeout: float | None = None,
            **ctxkwargs: Any,
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None,
            thread_name_prefix: str,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
            *,
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
            idle_timeout: float | None = None,
            **ctxkwargs: Any,
        ) -> None: ...
    else:
        # initargs must match the initializer's parameters.
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            thread_name_prefix: str = "",
            initializer: Callable[[], object] | None = None,
            initargs: tuple[()] = (),
            *,
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
            idle_timeout: float | None = None,
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            thread_name_prefix: str = "",
            *,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
            idle_timeout: float | None = None,
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None,
            thread_name_prefix: str,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
            *,
            max_queue_size: int | None = None,
            on_queue_full: Literal["block", "raise", "caller_runs"] | None = None,
            queue_full_timeout: float | None = None,
            idle_timeout: float | None = None,
        ) -> None: ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
    def stats(self) -> ExecutorStats: ...
