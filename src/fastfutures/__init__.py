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
from ._subinterpreter import in_subinterpreter as _in_subinterpreter

try:
    from ._future import Future, as_completed, wait
except ImportError:
    if not _in_subinterpreter():
        raise
    # The compiled modules cannot be loaded in an interpreter other than the
    # main one (see docs/platforms.md, "Subinterpreters"): there fastfutures
    # is the stdlib itself, so code that imports it keeps working.
    COMPILED = False
    from ._subinterpreter import use_stdlib as _use_stdlib
    _use_stdlib(__name__)
    from concurrent.futures import (Executor, Future, ProcessPoolExecutor,
                                    ThreadPoolExecutor, as_completed, wait)
else:
    COMPILED = True
    from ._base import Executor
    from .thread import ThreadPoolExecutor
    from .process import ProcessPoolExecutor

# The running version's stdlib list: 3.13 added InvalidStateError, 3.14
# InterpreterPoolExecutor (where the interpreter has _interpreters).
__all__ = tuple(_stdlib.__all__)


def __getattr__(name):
    # As the stdlib: InterpreterPoolExecutor (and concurrent.interpreters)
    # is imported only when asked for.
    global InterpreterPoolExecutor
    if name == "InterpreterPoolExecutor" and "InterpreterPoolExecutor" in __all__:
        if COMPILED:
            from .interpreter import InterpreterPoolExecutor
        else:
            from concurrent.futures import InterpreterPoolExecutor
        return InterpreterPoolExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
