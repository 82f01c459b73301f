"""Executor: the stdlib's abstract base, with the compiled map() iterator.

Both pools (and user executors that subclass this) share results_in_order(),
so map()'s ordering, deadline and cancel-on-close rules live in one place.
"""
import concurrent.futures

from ._future import results_in_order

__all__ = ["Executor"]


class Executor(concurrent.futures.Executor):
    """This is an abstract base class for concrete asynchronous executors."""

    def map(self, fn, *iterables, timeout=None, chunksize=1):
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

        Returns:
            An iterator equivalent to: map(func, *iterables) but the calls may
            be evaluated out-of-order.

        Raises:
            TimeoutError: If the entire result iterator could not be generated
                before the given timeout.
            Exception: If fn(*args) raises for any values.
        """
        futures = []
        results = results_in_order(futures, timeout)   # the deadline starts now
        futures.extend(self.submit(fn, *args) for args in zip(*iterables))
        return results
