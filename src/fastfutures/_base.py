"""Executor: the stdlib's abstract base, with the compiled map() iterator.

Both pools (and user executors that subclass this) share results_in_order()
and map_results(), so map()'s ordering, deadline and cancel-on-close rules
live in one place.
"""
import collections
import concurrent.futures
import itertools
import sys
import time
import weakref

from ._future import results_in_order

__all__ = ["Executor"]

HAS_BUFFERSIZE = sys.version_info >= (3, 14)


def check_buffersize(buffersize):
    if buffersize is not None and not isinstance(buffersize, int):
        raise TypeError("buffersize must be an integer or None")
    if buffersize is not None and buffersize < 1:
        raise ValueError("buffersize must be None or > 0")


def buffered_map(executor, fn, iterables, timeout, buffersize):
    """map(..., buffersize=N) (Python 3.14): at most N calls in flight.

    Each result handed out lets one more call be submitted; the iterator
    holds the executor only weakly, as the stdlib's does.
    """
    if timeout is not None:
        end_time = timeout + time.monotonic()
    arguments = zip(*iterables)
    fs = collections.deque(
        executor.submit(fn, *args) for args in itertools.islice(arguments, buffersize))
    executor_ref = weakref.ref(executor)
    del executor

    def result_iterator():
        try:
            fs.reverse()
            while fs:
                if (ex := executor_ref()) is not None and (args := next(arguments, None)):
                    fs.appendleft(ex.submit(fn, *args))
                ex = None
                future = fs.pop()
                try:
                    if timeout is None:
                        result = future.result()
                    else:
                        result = future.result(end_time - time.monotonic())
                finally:
                    future.cancel()
                    del future
                yield result
                del result
        finally:
            for future in fs:
                future.cancel()
    return result_iterator()


def map_results(results):
    """map()'s iterator as a real generator, as the stdlib's map() returns.

    Code checks for one (inspect.isgenerator, types.GeneratorType); the
    compiled *results* iterator does the work, and closing the generator
    (or dropping it part-way) closes it, cancelling the calls not consumed.
    """
    yield from results


class Executor(concurrent.futures.Executor):
    """This is an abstract base class for concrete asynchronous executors."""

    def map(self, fn, *iterables, timeout=None, chunksize=1, **buffering):
        """Returns an iterator equivalent to map(fn, iter).

        Args:
            fn: A callable that will take as many arguments as there are
                passed iterables.
            timeout: The maximum number of seconds to wait. If None, then there
                is no limit on the wait time.
            chunksize: The size of the chunks the iterable will be broken into
                before being passed to a child process. This argument is only
                used by ProcessPoolExecutor; it is ignored by
                ThreadPoolExecutor.
            buffersize (Python 3.14+): the number of submitted tasks whose
                results have not yet been yielded; None submits every task
                at once.

        Returns:
            An iterator equivalent to: map(func, *iterables) but the calls may
            be evaluated out-of-order.

        Raises:
            TimeoutError: If the entire result iterator could not be generated
                before the given timeout.
            Exception: If fn(*args) raises for any values.
        """
        buffersize = take_buffersize(buffering)
        if buffersize is not None:
            return buffered_map(self, fn, iterables, timeout, buffersize)
        return map_with_submit(self, fn, iterables, timeout)


def map_with_submit(executor, fn, iterables, timeout):
    """map() through executor.submit(): one future per call."""
    futures = []
    results = results_in_order(futures, timeout)   # the deadline starts now
    futures.extend(executor.submit(fn, *args) for args in zip(*iterables))
    return map_results(results)


def take_buffersize(buffering):
    """The buffersize keyword, accepted only where the stdlib accepts it."""
    if not buffering:
        return None
    if not HAS_BUFFERSIZE or set(buffering) != {"buffersize"}:
        name = next(iter(buffering))
        raise TypeError(f"map() got an unexpected keyword argument '{name}'")
    buffersize = buffering["buffersize"]
    check_buffersize(buffersize)
    return buffersize
