"""fastfutures through the libraries users already drive executors with.

tqdm's map helpers, dask's threaded scheduler, tornado's run_on_executor and
asyncio on uvloop: each runs against both implementations.  The libraries
come with the `test` extra; a test skips (saying which) only where one does
not install on the running Python.
"""
import asyncio
import concurrent.futures
import io
import sys
import threading

import pytest

from conftest import TIMEOUT

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def square(x):
    return x * x


# -- tqdm ---------------------------------------------------------------------

try:
    import tqdm.contrib.concurrent as tqdm_concurrent
except ImportError:
    tqdm_concurrent = None
else:
    class Recorder(tqdm_concurrent.tqdm_auto):
        """A bar that records its updates.  At module level: process_map()
        sends its set_lock to the workers as their initializer (pickled
        with spawn and forkserver)."""
        updates = []

        def update(self, n=1):
            Recorder.updates.append(n)
            return super().update(n)


@pytest.fixture
def tqdm_recorder(monkeypatch):
    if tqdm_concurrent is None:
        pytest.skip("tqdm is not installed")
    Recorder.updates = []
    # No monitor thread: one left running would make every later fork()
    # "multi-threaded" (a DeprecationWarning, an error on 3.15).
    monkeypatch.setattr(Recorder, "monitor_interval", 0)
    yield tqdm_concurrent, Recorder
    assert Recorder.monitor is None


def test_tqdm_thread_map_counts_each_call(cf, monkeypatch, tqdm_recorder):
    tqdm_concurrent, Recorder = tqdm_recorder
    # thread_map() looks up concurrent.futures.ThreadPoolExecutor when called
    # and sets `executor.submit = wrapper` on the instance before map().
    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", cf.ThreadPoolExecutor)
    results = tqdm_concurrent.thread_map(square, range(6), max_workers=2,
                                         tqdm_class=Recorder, file=io.StringIO())
    assert results == [x * x for x in range(6)]
    assert Recorder.updates == [1] * 6          # the bar moved with each call


def test_tqdm_process_map_counts_each_chunk(cf, monkeypatch, tqdm_recorder):
    tqdm_concurrent, Recorder = tqdm_recorder
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", cf.ProcessPoolExecutor)
    results = tqdm_concurrent.process_map(square, range(8), max_workers=2, chunksize=2,
                                          tqdm_class=Recorder, file=io.StringIO())
    assert results == [x * x for x in range(8)]
    # The stdlib's process map() submits one call per chunk through submit().
    assert Recorder.updates == [1] * 4


# -- dask (threaded scheduler) ------------------------------------------------

def test_dask_compute_with_a_pool_as_scheduler(cf):
    dask = pytest.importorskip("dask")
    import dask.bag

    with cf.ThreadPoolExecutor(4) as pool:
        bag = dask.bag.from_sequence(range(100), npartitions=10).map(square)
        total = bag.sum().compute(scheduler=pool)
        assert total == sum(x * x for x in range(100))
        delayed = [dask.delayed(square)(i) for i in range(20)]
        assert dask.compute(*delayed, scheduler=pool) == tuple(x * x for x in range(20))


def test_dask_config_pool(cf):
    dask = pytest.importorskip("dask")
    with cf.ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool, scheduler="threads"):
        values = [dask.delayed(square)(i) for i in range(10)]
        assert dask.compute(*values) == tuple(x * x for x in range(10))


# -- tornado ------------------------------------------------------------------

def test_tornado_run_on_executor(cf):
    pytest.importorskip("tornado")
    from tornado.concurrent import run_on_executor

    class Handler:
        def __init__(self, executor):
            self.executor = executor

        @run_on_executor
        def work(self, x):
            return square(x), threading.current_thread().name

    async def main(executor):
        handler = Handler(executor)
        results = await asyncio.gather(*(handler.work(i) for i in range(10)))
        return results

    with cf.ThreadPoolExecutor(2, thread_name_prefix="tornado-pool") as executor:
        results = asyncio.run(asyncio.wait_for(main(executor), TIMEOUT))
    assert [r for r, _ in results] == [x * x for x in range(10)]
    assert all(name.startswith("tornado-pool_") for _, name in results)


# -- asyncio on uvloop --------------------------------------------------------

def _loop_factories():
    factories = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        factories.append(pytest.param(
            None, id="uvloop",
            marks=pytest.mark.skip(reason="uvloop does not install on this Python/platform")))
    else:
        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


@pytest.mark.parametrize("new_loop", _loop_factories())
def test_run_in_executor_and_wrap_future(cf, new_loop):
    async def main(executor):
        loop = asyncio.get_running_loop()
        loop.set_default_executor(executor)
        direct = await asyncio.gather(*(loop.run_in_executor(executor, square, i)
                                        for i in range(50)))
        default = await loop.run_in_executor(None, square, 7)
        wrapped = await asyncio.wrap_future(executor.submit(square, 8))
        threaded = await asyncio.to_thread(square, 9)
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(executor, divmod, 1, 0)
        return direct, default, wrapped, threaded

    loop = new_loop()
    executor = cf.ThreadPoolExecutor(4)
    try:
        direct, default, wrapped, threaded = loop.run_until_complete(
            asyncio.wait_for(main(executor), TIMEOUT))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        executor.shutdown()
    assert direct == [x * x for x in range(50)]
    assert (default, wrapped, threaded) == (49, 64, 81)


@pytest.mark.parametrize("new_loop", _loop_factories())
def test_cancelled_executor_future_cancels_the_awaiting_task(cf, new_loop):
    gate = threading.Event()

    async def main(executor):
        loop = asyncio.get_running_loop()
        blocker = loop.run_in_executor(executor, gate.wait, TIMEOUT)
        queued = executor.submit(square, 3)
        awaiting = asyncio.wrap_future(queued)
        assert queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await awaiting
        gate.set()
        await blocker

    loop = new_loop()
    with cf.ThreadPoolExecutor(1) as executor:
        try:
            loop.run_until_complete(asyncio.wait_for(main(executor), TIMEOUT))
        finally:
            gate.set()
            loop.close()
