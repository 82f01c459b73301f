"""Typed use of the public API.

tests/test_typing.py runs mypy --strict on this file (it must be clean) and
also runs it, so the types it relies on are the ones the runtime has.
``assert_type`` pins the inferred types: a stub that got vaguer (``Any``)
fails the check as surely as one that got wrong.
"""
from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import fastfutures
from fastfutures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    InvalidStateError,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    TimeoutError,
    as_completed,
    wait,
)
from fastfutures.process import BrokenProcessPool
from fastfutures.thread import BrokenThreadPool

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value, _type):
        return value


def square(x: int) -> int:
    return x * x


def greet(name: str, *, punctuation: str = "!") -> str:
    return "hello " + name + punctuation


def scale(x: int, factor: float) -> float:
    return x * factor


def remember(tag: str, level: int) -> None:
    """A thread/process initializer taking two arguments."""


def thread_pool() -> None:
    with ThreadPoolExecutor(
        max_workers=2, thread_name_prefix="typed", initializer=remember, initargs=("t", 1)
    ) as ex:
        # submit(): ParamSpec carries the callable's parameters and result.
        fut = ex.submit(square, 3)
        assert_type(fut, Future[int])
        hello = ex.submit(greet, "world", punctuation="?")
        assert_type(hello, Future[str])
        assert fut.result(timeout=10) == 9
        assert hello.result() == "hello world?"

        # map(): the iterables' element types reach the callable.
        assert_type(ex.map(square, range(4)), Iterator[int])
        assert_type(ex.map(scale, [1, 2], [0.5, 2.0]), Iterator[float])
        lengths = ex.map(lambda s: len(s), ["a", "bb"], timeout=10)
        assert_type(lengths, Iterator[int])
        assert list(lengths) == [1, 2]

        # wait() / as_completed()
        futures = [ex.submit(square, n) for n in range(3)]
        done, not_done = wait(futures, timeout=10, return_when=ALL_COMPLETED)
        assert_type(done, set[concurrent.futures.Future[int]])
        assert not not_done
        assert sorted(f.result() for f in done) == [0, 1, 4]
        assert wait(futures, return_when=FIRST_COMPLETED).done
        for finished in as_completed(futures, timeout=10):
            assert_type(finished, Future[int])

        seen: list[int] = []
        fut.add_done_callback(lambda f: seen.append(f.result()))
        assert seen == [9]

        # fastfutures objects are stdlib objects.
        as_stdlib: concurrent.futures.Future[int] = fut
        assert as_stdlib.done()
    stdlib_pool: concurrent.futures.ThreadPoolExecutor = ex
    some_executor: Executor = ex
    concurrent_executor: concurrent.futures.Executor = some_executor
    assert stdlib_pool is concurrent_executor


def futures_by_hand() -> None:
    manual: Future[str] = Future()
    assert manual.set_running_or_notify_cancel()
    manual.set_result("x")
    assert_type(manual.result(), str)
    assert manual.exception() is None

    stdlib_future: concurrent.futures.Future[int] = concurrent.futures.Future()
    stdlib_future.set_result(1)
    # stdlib futures and fastfutures futures mix in wait() and as_completed().
    mixed = wait([stdlib_future, Future[int]()], timeout=0)
    assert_type(mixed.done, set[concurrent.futures.Future[int]])
    assert mixed.done == {stdlib_future}
    for finished in as_completed([stdlib_future]):
        assert_type(finished, concurrent.futures.Future[int])

    cancelled: Future[int] = Future()
    assert cancelled.cancel()
    try:
        cancelled.result()
    except CancelledError:
        pass

    errors: tuple[type[Exception], ...] = (
        CancelledError,
        TimeoutError,
        InvalidStateError,
        BrokenExecutor,
        BrokenThreadPool,
        BrokenProcessPool,
    )
    assert issubclass(BrokenThreadPool, BrokenExecutor)
    assert errors[0] is concurrent.futures.CancelledError


def process_pool() -> None:
    with ProcessPoolExecutor(max_workers=1, initializer=remember, initargs=("p", 2)) as ex:
        fut: concurrent.futures.Future[int] = ex.submit(square, 4)
        assert fut.result(timeout=60) == 16
        assert list(ex.map(square, [1, 2], chunksize=2)) == [1, 4]
        if sys.platform != "win32":
            # The shared-memory pool (Windows has the stdlib's).
            assert_type(ex.submit(square, 5), Future[int])
            assert callable(ex.terminate_workers) and callable(ex.kill_workers)
    if sys.platform != "win32":
        with ProcessPoolExecutor(max_workers=1, max_tasks_per_child=2, zero_copy_results=True) as ex:
            assert ex.submit(square, 6).result(timeout=60) == 36


def main() -> None:
    assert isinstance(fastfutures.__version__, str)
    thread_pool()
    futures_by_hand()
    process_pool()
    print("typing example ok")


if __name__ == "__main__":
    main()
