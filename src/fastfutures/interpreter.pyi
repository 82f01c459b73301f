# Type stubs for fastfutures.interpreter (Python 3.14+).
import concurrent.futures.interpreter
from collections.abc import Callable
from concurrent.futures.interpreter import BrokenInterpreterPool as BrokenInterpreterPool
from typing import overload
from typing_extensions import TypeVarTuple, Unpack

from .thread import ThreadPoolExecutor

__all__ = ["InterpreterPoolExecutor", "BrokenInterpreterPool"]

_Ts = TypeVarTuple("_Ts")

class InterpreterPoolExecutor(ThreadPoolExecutor, concurrent.futures.interpreter.InterpreterPoolExecutor):
    # initargs must match the initializer's parameters.
    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[[], object] | None = None,
        initargs: tuple[()] = (),
    ) -> None: ...
    @overload
    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        *,
        initializer: Callable[[Unpack[_Ts]], object],
        initargs: tuple[Unpack[_Ts]],
    ) -> None: ...
    @overload
    def __init__(
        self,
        max_workers: int | None,
        thread_name_prefix: str,
        initializer: Callable[[Unpack[_Ts]], object],
        initargs: tuple[Unpack[_Ts]],
    ) -> None: ...
