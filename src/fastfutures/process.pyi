# Type stubs for fastfutures.process.
import sys
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool as BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import overload
from typing_extensions import TypeVarTuple, Unpack

from ._base import Executor

_Ts = TypeVarTuple("_Ts")

class ProcessPoolExecutor(Executor):
    # initargs must match the initializer's parameters.  max_tasks_per_child
    # exists from 3.11, as in the stdlib.
    if sys.version_info >= (3, 11):
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            mp_context: BaseContext | None = None,
            initializer: Callable[[], object] | None = None,
            initargs: tuple[()] = (),
            *,
            max_tasks_per_child: int | None = None,
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
        ) -> None: ...
    else:
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            mp_context: BaseContext | None = None,
            initializer: Callable[[], object] | None = None,
            initargs: tuple[()] = (),
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None = None,
            mp_context: BaseContext | None = None,
            *,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
        ) -> None: ...
        @overload
        def __init__(
            self,
            max_workers: int | None,
            mp_context: BaseContext | None,
            initializer: Callable[[Unpack[_Ts]], object],
            initargs: tuple[Unpack[_Ts]],
        ) -> None: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...
    if sys.version_info >= (3, 14):
        # Stop the workers now (SIGTERM / SIGKILL); the pool is broken afterwards.
        def terminate_workers(self) -> None: ...
        def kill_workers(self) -> None: ...
