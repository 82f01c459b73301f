# Type stubs for fastfutures.Executor (the stdlib's abstract base, with the
# compiled map() iterator).
import concurrent.futures
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, overload
from typing_extensions import ParamSpec

from ._future import Future

__all__ = ["Executor"]

_T = TypeVar("_T")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_P = ParamSpec("_P")

class Executor(concurrent.futures.Executor):
    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]: ...
    # map(): one- and two-iterable forms infer the argument types of `fn`
    # (as builtins.map does); the general form is typeshed's.
    if sys.version_info >= (3, 14):
        @overload
        def map(
            self,
            fn: Callable[[_T1], _T],
            iterable: Iterable[_T1],
            /,
            *,
            timeout: float | None = None,
            chunksize: int = 1,
            buffersize: int | None = None,
        ) -> Iterator[_T]: ...
        @overload
        def map(
            self,
            fn: Callable[[_T1, _T2], _T],
            iterable1: Iterable[_T1],
            iterable2: Iterable[_T2],
            /,
            *,
            timeout: float | None = None,
            chunksize: int = 1,
            buffersize: int | None = None,
        ) -> Iterator[_T]: ...
        @overload
        def map(
            self,
            fn: Callable[..., _T],
            *iterables: Iterable[Any],
            timeout: float | None = None,
            chunksize: int = 1,
            buffersize: int | None = None,
        ) -> Iterator[_T]: ...
    else:
        @overload
        def map(
            self,
            fn: Callable[[_T1], _T],
            iterable: Iterable[_T1],
            /,
            *,
            timeout: float | None = None,
            chunksize: int = 1,
        ) -> Iterator[_T]: ...
        @overload
        def map(
            self,
            fn: Callable[[_T1, _T2], _T],
            iterable1: Iterable[_T1],
            iterable2: Iterable[_T2],
            /,
            *,
            timeout: float | None = None,
            chunksize: int = 1,
        ) -> Iterator[_T]: ...
        @overload
        def map(
            self, fn: Callable[..., _T], *iterables: Iterable[Any], timeout: float | None = None, chunksize: int = 1
        ) -> Iterator[_T]: ...
