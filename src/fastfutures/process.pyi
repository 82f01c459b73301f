# Type stubs for fastfutures.process.
import concurrent.futures.process
import sys
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool as BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import overload
from typing_extensions import TypeVarTuple, Unpack

from ._base import Executor

__all__ = ["ProcessPoolExecutor", "BrokenProcessPool"]

_Ts = TypeVarTuple("_Ts")

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
        ) -> None: ...
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
        # Stop the workers now (SIGTERM / SIGKILL); the pool is broken afterwards.
        def terminate_workers(self) -> None: ...
        def kill_workers(self) -> None: ...
