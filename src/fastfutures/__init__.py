"""fastfutures: concurrent.futures with a compiled hot path.

``import fastfutures as futures`` is meant to be a one-line swap for
``import concurrent.futures as futures``: the same names, the same exception
classes (the stdlib's own), the same semantics.
"""
import sys
from concurrent.futures._base import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    BrokenExecutor,
    CancelledError,
    InvalidStateError,
    TimeoutError,
)

from ._version import __version__
from ._future import Future, as_completed, wait
from ._base import Executor
from .thread import ThreadPoolExecutor
from .process import ProcessPoolExecutor

if sys.version_info >= (3, 13):   # the stdlib's __all__ gained InvalidStateError
    __all__ = (
        "FIRST_COMPLETED",
        "FIRST_EXCEPTION",
        "ALL_COMPLETED",
        "CancelledError",
        "TimeoutError",
        "InvalidStateError",
        "BrokenExecutor",
        "Future",
        "Executor",
        "wait",
        "as_completed",
        "ProcessPoolExecutor",
        "ThreadPoolExecutor",
    )
else:
    __all__ = (
        "FIRST_COMPLETED",
        "FIRST_EXCEPTION",
        "ALL_COMPLETED",
        "CancelledError",
        "TimeoutError",
        "BrokenExecutor",
        "Future",
        "Executor",
        "wait",
        "as_completed",
        "ProcessPoolExecutor",
        "ThreadPoolExecutor",
    )
