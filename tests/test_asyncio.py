"""asyncio interoperability: wrap_future, run_in_executor, default executor."""
import asyncio
import threading

import pytest

from conftest import TIMEOUT

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def test_wrap_future_result(cf):
    async def main():
        f = cf.Future()
        wrapped = asyncio.wrap_future(f)
        assert isinstance(wrapped, asyncio.Future)
        asyncio.get_running_loop().call_soon(f.set_result, 42)
        return await wrapped

    assert run(main()) == 42


def test_wrap_future_completed_from_thread(cf):
    async def main():
        f = cf.Future()
        wrapped = asyncio.wrap_future(f)
        t = threading.Timer(0.02, f.set_result, ("from thread",))
        t.start()
        try:
            return await wrapped
        finally:
            t.join(TIMEOUT)

    assert run(main()) == "from thread"


def test_wrap_future_already_done(cf):
    async def main():
        f = cf.Future()
        f.set_result("early")
        return await asyncio.wrap_future(f)

    assert run(main()) == "early"


def test_wrap_future_exception(cf):
    async def main():
        f = cf.Future()
        f.set_exception(KeyError("k"))
        with pytest.raises(KeyError):
            await asyncio.wrap_future(f)

    run(main())


def test_wrap_future_cancelled_source_becomes_asyncio_cancelled(cf):
    async def main():
        f = cf.Future()
        wrapped = asyncio.wrap_future(f)
        assert f.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wrapped
        assert wrapped.cancelled()

    run(main())


def test_wrap_future_exception_cancelled_error_is_converted(cf):
    # set_exception(CancelledError()) on the concurrent future arrives in
    # asyncio as asyncio.CancelledError (asyncio tests the exact stdlib class).
    async def main():
        f = cf.Future()
        f.set_exception(cf.CancelledError())
        wrapped = asyncio.wrap_future(f)
        with pytest.raises(asyncio.CancelledError):
            await wrapped

    run(main())


def test_cancelling_asyncio_side_cancels_source(cf):
    async def main():
        f = cf.Future()
        wrapped = asyncio.wrap_future(f)
        wrapped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wrapped
        # The cancellation is propagated through the loop to the source.
        for _ in range(100):
            if f.cancelled():
                break
            await asyncio.sleep(0.001)
        return f

    f = run(main())
    assert f.cancelled()


def test_run_in_executor(cf):
    def work(a, b):
        return a + b, threading.current_thread().name

    async def main():
        loop = asyncio.get_running_loop()
        with cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="aio") as ex:
            return await loop.run_in_executor(ex, work, 2, 3)

    value, name = run(main())
    assert value == 5
    assert name.startswith("aio_")


def test_run_in_executor_exception(cf):
    def fail():
        raise ValueError("in executor")

    async def main():
        loop = asyncio.get_running_loop()
        with cf.ThreadPoolExecutor(max_workers=1) as ex:
            with pytest.raises(ValueError, match="in executor"):
                await loop.run_in_executor(ex, fail)

    run(main())


def test_run_in_executor_cancel_queued(cf):
    started = threading.Event()
    release = threading.Event()
    ran = []

    def blocker():
        started.set()
        release.wait(TIMEOUT)

    async def main():
        loop = asyncio.get_running_loop()
        ex = cf.ThreadPoolExecutor(max_workers=1)
        try:
            first = loop.run_in_executor(ex, blocker)
            await loop.run_in_executor(None, started.wait, TIMEOUT)
            queued = loop.run_in_executor(ex, ran.append, 1)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            # The cancellation reaches the concurrent future through a loop
            # callback: let the loop run it before the worker is released.
            for _ in range(3):
                await asyncio.sleep(0)
            release.set()
            await first
        finally:
            release.set()
            ex.shutdown(wait=True)

    run(main())
    assert ran == []


def test_many_run_in_executor(cf):
    async def main():
        loop = asyncio.get_running_loop()
        with cf.ThreadPoolExecutor(max_workers=4) as ex:
            return await asyncio.gather(*[loop.run_in_executor(ex, pow, 2, i)
                                          for i in range(50)])

    assert run(main()) == [2 ** i for i in range(50)]


def test_set_default_executor(cf):
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="default-ex"))
        name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
        name2 = await asyncio.to_thread(lambda: threading.current_thread().name)
        return name, name2

    name, name2 = run(main())
    assert name.startswith("default-ex_")
    assert name2.startswith("default-ex_")


def test_to_thread_exception_and_context(cf):
    import contextvars
    var = contextvars.ContextVar("var")

    def read():
        return var.get()

    def fail():
        raise OSError("to_thread")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(cf.ThreadPoolExecutor(max_workers=1))
        var.set("ctx")
        assert await asyncio.to_thread(read) == "ctx"
        with pytest.raises(OSError, match="to_thread"):
            await asyncio.to_thread(fail)

    run(main())


def test_run_coroutine_threadsafe_in_worker(cf):
    # A task in a cf pool waits on a coroutine scheduled on the loop.
    async def coro():
        await asyncio.sleep(0)
        return "from loop"

    async def main():
        loop = asyncio.get_running_loop()

        def in_worker():
            return asyncio.run_coroutine_threadsafe(coro(), loop).result(TIMEOUT)

        with cf.ThreadPoolExecutor(max_workers=1) as ex:
            return await loop.run_in_executor(ex, in_worker)

    assert run(main()) == "from loop"
