"""InterpreterPoolExecutor (Python 3.14+): each worker thread runs its calls
in an interpreter of its own.

The stdlib's worker context (concurrent.futures.interpreter.WorkerContext)
creates the interpreters and runs the calls; fastfutures brings its Future,
work queue and worker loop (thread.py, _threadpool.pyx), exactly as for
ThreadPoolExecutor.  An instance of the stdlib's InterpreterPoolExecutor.
"""
from concurrent.futures import interpreter as _stdlib_interpreter
from concurrent.futures.interpreter import BrokenInterpreterPool

from .thread import ThreadPoolExecutor

__all__ = ["InterpreterPoolExecutor", "BrokenInterpreterPool"]


class InterpreterPoolExecutor(ThreadPoolExecutor, _stdlib_interpreter.InterpreterPoolExecutor):
    """A drop-in for concurrent.futures.InterpreterPoolExecutor."""

    BROKEN = BrokenInterpreterPool

    # prepare_context() is the stdlib InterpreterPoolExecutor's (next in the
    # MRO after fastfutures' ThreadPoolExecutor, which defines none).

    def __init__(self, max_workers=None, thread_name_prefix='',
                 initializer=None, initargs=()):
        """Initializes a new InterpreterPoolExecutor instance.

        Args:
            max_workers: The maximum number of interpreters that can be used
                to execute the given calls.
            thread_name_prefix: An optional name prefix to give our threads.
            initializer: A callable or script used to initialize
                each worker interpreter.
            initargs: A tuple of arguments to pass to the initializer.
        """
        thread_name_prefix = (thread_name_prefix or
                              (f"InterpreterPoolExecutor-{self._counter()}"))
        super().__init__(max_workers, thread_name_prefix, initializer, initargs)
