# Type stubs for fastfutures.asyncio.
import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar
from typing_extensions import ParamSpec, TypeVarTuple, Unpack

__all__ = ["install", "uninstall", "installed", "to_thread", "run_in_executor"]

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")
_E = TypeVar("_E", bound=concurrent.futures.Executor)

def installed() -> bool: ...
def uninstall() -> None: ...
def install(loop: asyncio.AbstractEventLoop | None = None, executor: _E | None = None) -> _E: ...
def run_in_executor(
    executor: concurrent.futures.Executor | None,
    func: Callable[[Unpack[_Ts]], _T],
    *args: Unpack[_Ts],
) -> asyncio.Future[_T]: ...
async def to_thread(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T: ...
