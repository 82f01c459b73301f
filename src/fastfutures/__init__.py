"""fastfutures: concurrent.futures with a compiled hot path.

``import fastfutures as futures`` is meant to be a one-line swap for
``import concurrent.futures as futures``: the same names, the same exception
classes (the stdlib's own), the same semantics.
"""
from concurrent import futures as _stdlib
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

# The running version's stdlib list (3.13 added InvalidStateError), less
# what only 3.14 has and fastfutures does not offer.
__all__ = tuple(name for name in _stdlib.__all__
                if name != "InterpreterPoolExecutor")
