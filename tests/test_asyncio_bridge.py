"""fastfutures.asyncio: the batched bridge, side by side with asyncio's own chaining.

Every test runs for the stdlib (a concurrent.futures pool, asyncio's own
``_chain_future``) and for fastfutures (a fastfutures pool with
``fastfutures.asyncio.install()``), on asyncio's loop and on uvloop.
"""
import asyncio
import concurrent.futures
import contextvars
import gc
import logging
import os
import random
import sys
import threading
import traceback
import weakref

import pytest

import fastfutures.asyncio as ffasyncio
from conftest import TIMEOUT, join_all, start_thread, wait_until

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

try:
    import uvloop
except ImportError:         # the test extra installs it; other loops still run
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    uvloop is None, reason="uvloop is not installed"))]


@pytest.fixture(params=LOOPS)
def new_loop(request):
    """Makes loops of the kind under test; closes those a test leaves open.
    Each is kept until then: one the garbage collector found first would be
    collected unclosed (a ResourceWarning, in whichever test runs then)."""
    made = []

    def new_loop():
        loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
        made.append(loop)
        return loop
    yield new_loop
    for loop in made:
        if not loop.is_closed():
            loop.close()


@pytest.fixture
def setup(cf):
    """setup(loop, workers=4): give ``loop`` a default executor of ``cf`` --
    through fastfutures.asyncio.install() for fastfutures.  Returns it."""
    executors = []

    def setup(loop, workers=4, executor=None):
        executor = executor or cf.ThreadPoolExecutor(workers)
        executors.append(executor)
        if cf is concurrent.futures:
            loop.set_default_executor(executor)
        else:
            assert ffasyncio.install(loop, executor) is executor
            assert ffasyncio.installed()
        return executor
    yield setup
    ffasyncio.uninstall()
    for executor in executors:
        executor.shutdown(wait=True)


@pytest.fixture
def run(new_loop, setup):
    """run(coro_fn): on a fresh set-up loop, with a timeout; returns its result."""
    def run(coro_fn, workers=4):
        loop = new_loop()
        setup(loop, workers)
        try:
            return loop.run_until_complete(asyncio.wait_for(coro_fn(), TIMEOUT))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    return run


@pytest.fixture
def loop_errors(caplog):
    """Errors logged by asyncio or concurrent.futures during the test."""
    caplog.set_level(logging.WARNING)
    return lambda: [r for r in caplog.records
                    if r.name in ("asyncio", "concurrent.futures") and r.levelno >= logging.WARNING]


def noop():
    return None


def fail():
    raise ValueError("in executor")


# -- results, exceptions -----------------------------------------------------------

def test_results_in_order(run):
    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(*[loop.run_in_executor(None, pow, 2, i) for i in range(200)])

    assert run(main) == [2 ** i for i in range(200)]


def test_to_thread_and_wrap_future(run, cf):
    async def main():
        executor = cf.ThreadPoolExecutor(2)
        try:
            wrapped = await asyncio.wrap_future(executor.submit(pow, 3, 3))
        finally:
            executor.shutdown(wait=True)
        return await asyncio.to_thread(pow, 2, 5), await ffasyncio.to_thread(pow, 2, 6), \
            await ffasyncio.run_in_executor(None, pow, 2, 7), wrapped

    assert run(main) == (32, 64, 128, 27)


def test_exception_type_and_traceback(run):
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match="in executor") as info:
            await loop.run_in_executor(None, fail)
        return info.value

    exc = run(main)
    assert type(exc) is ValueError
    # The traceback still reaches into the function that raised.
    assert traceback.extract_tb(exc.__traceback__)[-1].name == "fail"


def test_base_exception_from_the_call(run):
    class Stop(BaseException):
        pass

    def stop():
        raise Stop("stop")

    async def main():
        with pytest.raises(Stop):
            await asyncio.to_thread(stop)
        return "after"

    assert run(main) == "after"


@pytest.mark.parametrize("exc_name", ["CancelledError", "InvalidStateError", "TimeoutError"])
def test_concurrent_exceptions_are_converted(run, cf, exc_name):
    # asyncio converts concurrent.futures' CancelledError/InvalidStateError
    # (and TimeoutError on 3.10) to its own; the bridge uses its helper.
    async def main():
        source = cf.Future()
        source.set_exception(getattr(concurrent.futures, exc_name)("why"))
        try:
            await asyncio.wrap_future(source)
        except BaseException as exc:
            return type(exc), exc.args

    exc_type, args = run(main)
    expected = asyncio.futures._convert_future_exc(
        getattr(concurrent.futures, exc_name)("why"))
    assert exc_type is type(expected)


def test_to_thread_copies_context(run):
    var = contextvars.ContextVar("var")

    def read_and_set():
        value = var.get()
        var.set("changed in thread")
        return value

    async def main():
        var.set("ctx")
        got = await asyncio.to_thread(read_and_set), await ffasyncio.to_thread(read_and_set)
        return got, var.get()

    assert run(main) == (("ctx", "ctx"), "ctx")


# -- cancellation, both ways ---------------------------------------------------------

def test_cancelling_the_task_cancels_a_queued_call(run):
    started, release = threading.Event(), threading.Event()
    ran = []

    def blocker():
        started.set()
        release.wait(TIMEOUT)

    async def main():
        loop = asyncio.get_running_loop()
        first = loop.run_in_executor(None, blocker)
        while not started.is_set():
            await asyncio.sleep(0.001)
        task = asyncio.ensure_future(loop.run_in_executor(None, ran.append, 1))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):      # the cancellation reaches the source via a loop callback
            await asyncio.sleep(0)
        release.set()
        await first

    try:
        run(main, workers=1)
    finally:
        release.set()
    assert ran == []


def test_cancelling_in_the_same_loop_iteration_cancels_queued_calls(run):
    # Cancelled before the loop runs anything else: asyncio's check runs on
    # the next iteration, the bridge's first look at the calls too.
    started, release = threading.Event(), threading.Event()
    ran = []

    def blocker():
        started.set()
        release.wait(TIMEOUT)

    async def main():
        loop = asyncio.get_running_loop()
        first = loop.run_in_executor(None, blocker)
        while not started.is_set():
            await asyncio.sleep(0.001)
        queued = [loop.run_in_executor(None, ran.append, i) for i in range(10)]
        for future in queued:
            future.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        release.set()
        await first
        return [future.cancelled() for future in queued]

    try:
        assert run(main, workers=1) == [True] * 10
    finally:
        release.set()
    assert ran == []


def test_cancelling_a_running_call_lets_it_finish(run, loop_errors):
    started, release = threading.Event(), threading.Event()
    finished = []

    def slow():
        started.set()
        release.wait(TIMEOUT)
        finished.append(True)
        return "done"

    async def main():
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, slow)
        while not started.is_set():
            await asyncio.sleep(0.001)
        future.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await future
        # The call completes; its result has nowhere to go and is dropped quietly.
        return await loop.run_in_executor(None, lambda: wait_until(lambda: finished))

    try:
        assert run(main) == [True]
    finally:
        release.set()
    assert loop_errors() == []


def test_source_cancellation_cancels_the_asyncio_future(run, cf):
    async def main():
        source = cf.Future()
        wrapped = asyncio.wrap_future(source)
        threading.Thread(target=source.cancel).start()
        with pytest.raises(asyncio.CancelledError):
            await wrapped
        return wrapped.cancelled()

    assert run(main) is True


def test_executor_shutdown_while_awaited(run, cf):
    release = threading.Event()

    async def main():
        executor = cf.ThreadPoolExecutor(1)
        loop = asyncio.get_running_loop()
        try:
            running = loop.run_in_executor(executor, release.wait, TIMEOUT)
            queued = [loop.run_in_executor(executor, pow, 2, i) for i in range(10)]
            await asyncio.sleep(0.01)
            executor.shutdown(wait=False, cancel_futures=True)
            release.set()
            outcomes = await asyncio.gather(running, *queued, return_exceptions=True)
        finally:
            release.set()
            executor.shutdown(wait=True)
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            loop.run_in_executor(executor, noop)
        return outcomes

    outcomes = run(main)
    assert outcomes[0] is True
    # Queued calls are cancelled (a call the worker already took may still run).
    assert all(isinstance(o, asyncio.CancelledError) or o == 2 ** i
               for i, o in enumerate(outcomes[1:]))
    assert any(isinstance(o, asyncio.CancelledError) for o in outcomes[1:])


# -- bad input -----------------------------------------------------------------------

def test_non_callable_fails_like_asyncio(run):
    async def main():
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, 42)
        with pytest.raises(TypeError, match="not callable"):
            await future

    run(main)


def test_debug_mode(new_loop, setup, loop_errors):
    # asyncio's debug checks still run (the loop's own run_in_executor does
    # them), and the bridge calls the loop only from its thread.
    loop = new_loop()
    setup(loop)
    loop.set_debug(True)

    async def main():
        loop = asyncio.get_running_loop()
        if not (uvloop is not None and isinstance(loop, uvloop.Loop)):
            with pytest.raises(TypeError):
                loop.run_in_executor(None, 42)
        return await asyncio.gather(*[loop.run_in_executor(None, pow, 2, i) for i in range(50)])

    assert loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT)) == [2 ** i for i in range(50)]
    loop.close()
    assert [r for r in loop_errors() if "Executing" not in r.getMessage()] == []


def test_closed_loop_refuses_calls(new_loop, setup):
    loop = new_loop()
    setup(loop)
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_in_executor(None, noop)


# -- loops that stop, close or are interrupted ------------------------------------------

class Payload:
    pass


def test_loop_closed_before_completions_arrive(new_loop, setup, cf, loop_errors):
    # Completions for a closed loop are dropped: no call into the loop, no
    # logged error, and nothing kept alive.
    loop = new_loop()
    executor = setup(loop)
    release = threading.Event()
    alive = []

    def make():
        release.wait(TIMEOUT)
        payload = Payload()
        alive.append(weakref.ref(payload))
        return payload

    async def start():
        return [loop.run_in_executor(executor, make) for _ in range(8)]

    futures = loop.run_until_complete(start())
    loop.close()
    release.set()
    executor.shutdown(wait=True)
    assert not any(f.done() for f in futures)
    del futures
    gc.collect()
    assert len(alive) == 8 and all(ref() is None for ref in alive)
    assert loop_errors() == []


def test_bursts_larger_than_a_drain_while_calls_keep_coming(run):
    # The bridge takes a burst of fresh calls a slice per drain; calls made
    # meanwhile queue behind them.  Every result arrives, in its own future,
    # cancelled calls aside.
    async def main():
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(None, pow, 2, i % 50) for i in range(10_000)]
        for _ in range(20):
            futures.extend(loop.run_in_executor(None, pow, 3, i % 50) for i in range(500))
            futures[len(futures) - 7].cancel()
            await asyncio.sleep(0)
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]

    expected = [2 ** (i % 50) for i in range(10_000)]
    for round_no in range(20):
        batch = [3 ** (i % 50) for i in range(500)]
        batch[-7] = "CancelledError"
        expected.extend(batch)
    assert run(main) == expected


def test_calls_made_before_the_loop_runs(new_loop, setup):
    loop = new_loop()
    setup(loop)
    futures = [loop.run_in_executor(None, pow, 2, i) for i in range(100)]
    results = loop.run_until_complete(asyncio.wait_for(asyncio.gather(*futures), TIMEOUT))
    assert results == [2 ** i for i in range(100)]
    loop.close()


def test_loop_closed_before_it_ever_ran(new_loop, setup, cf, loop_errors):
    # Calls made on a loop that closes without running: nothing delivered,
    # nothing logged, nothing kept alive.
    loop = new_loop()
    executor = setup(loop)
    release = threading.Event()
    alive = []

    def make():
        release.wait(TIMEOUT)
        payload = Payload()
        alive.append(weakref.ref(payload))
        return payload

    futures = [loop.run_in_executor(executor, make) for _ in range(8)]
    loop.close()
    release.set()
    executor.shutdown(wait=True)
    assert not any(f.done() for f in futures)
    del futures
    gc.collect()
    assert len(alive) == 8 and all(ref() is None for ref in alive)
    assert loop_errors() == []


def test_loop_closed_with_completions_queued(new_loop, setup, cf, loop_errors):
    # Completions are queued (a drain or asyncio's handles scheduled) when
    # the loop closes, and more arrive after: nothing is delivered, nothing
    # logged; once the loop is dropped, nothing it was sent stays alive.
    loop = new_loop()
    setup(loop)
    alive = []

    def payload():
        value = Payload()
        alive.append(weakref.ref(value))
        return value

    async def start():
        sources = [cf.Future() for _ in range(20)]
        wrapped = [asyncio.wrap_future(f) for f in sources]
        for source in sources[:10]:
            source.set_result(payload())
        return sources, wrapped

    sources, wrapped = loop.run_until_complete(start())
    loop.close()
    thread = start_thread(lambda: [f.set_result(payload()) for f in sources[10:]])
    join_all([thread])
    assert not any(f.done() for f in wrapped[10:])
    del sources, wrapped, loop
    gc.collect()
    assert len(alive) == 20
    assert all(ref() is None for ref in alive)
    assert loop_errors() == []


def test_stopped_loop_delivers_when_run_again(new_loop, setup):
    loop = new_loop()
    setup(loop)
    release = threading.Event()

    async def start():
        futures = [loop.run_in_executor(None, lambda i=i: release.wait(TIMEOUT) and i)
                   for i in range(20)]
        loop.stop()
        return futures

    task = loop.create_task(start())
    loop.run_forever()          # stops at once
    futures = task.result()
    release.set()
    results = loop.run_until_complete(asyncio.wait_for(asyncio.gather(*futures), TIMEOUT))
    assert results == list(range(20))
    loop.close()


def test_keyboard_interrupt_in_the_loop_thread(new_loop, setup):
    # KeyboardInterrupt escapes run_until_complete with calls outstanding;
    # running the loop again delivers every one of them.
    loop = new_loop()
    setup(loop)

    async def interrupted():
        loop = asyncio.get_running_loop()
        futures.extend(loop.run_in_executor(None, pow, 2, i) for i in range(500))
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    futures = []
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(interrupted())
    results = loop.run_until_complete(asyncio.wait_for(asyncio.gather(*futures), TIMEOUT))
    assert results == [2 ** i for i in range(500)]
    loop.close()


# -- many loops, processes -------------------------------------------------------------

def test_many_loops_in_many_threads(new_loop, setup, cf):
    executor = cf.ThreadPoolExecutor(4)
    results = {}

    def serve(n):
        loop = new_loop()
        setup(loop, workers=1)      # closing a loop shuts its default executor down

        async def main():
            return await asyncio.gather(*[loop.run_in_executor(executor, pow, n, i)
                                          for i in range(300)])
        try:
            results[n] = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT))
        finally:
            loop.close()

    try:
        join_all([start_thread(serve, n) for n in range(2, 10)])
    finally:
        executor.shutdown(wait=True)
    assert results == {n: [n ** i for i in range(300)] for n in range(2, 10)}


def test_process_pool(run, cf):
    async def main():
        loop = asyncio.get_running_loop()
        with cf.ProcessPoolExecutor(1) as executor:
            return await asyncio.gather(*[loop.run_in_executor(executor, pow, 2, i)
                                          for i in range(20)])

    assert run(main) == [2 ** i for i in range(20)]


@pytest.mark.stdlib_differs
def test_a_burst_of_completions_wakes_the_loop_once(new_loop, setup, cf):
    # The point of the bridge: asyncio calls call_soon_threadsafe once per
    # completion; here the completions of one burst share one wake-up.
    loop = new_loop()
    calls = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counting(*args, **kwargs):
        calls.append(args)
        return call_soon_threadsafe(*args, **kwargs)
    loop.call_soon_threadsafe = counting
    setup(loop)

    async def main():
        sources = [cf.Future() for _ in range(1000)]
        wrapped = [asyncio.wrap_future(f) for f in sources]
        for i, source in enumerate(sources):
            source.set_result(i)        # all before the loop runs again
        return await asyncio.gather(*wrapped)

    assert loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT)) == list(range(1000))
    assert len(calls) == 1
    loop.close()


@pytest.mark.stdlib_differs
def test_a_lost_drain_is_replaced(cf):
    # KeyboardInterrupt can land between asyncio's loop taking a handle off
    # its ready queue and running it.  asyncio then loses that one
    # completion (its handle); the bridge would lose the drain of a whole
    # batch and every later completion of the loop, so a loop set up with
    # install() schedules a drain again when one stays pending too long.
    loop = asyncio.new_event_loop()
    try:
        ffasyncio.install(loop, cf.ThreadPoolExecutor(2))

        async def main():
            sources = [cf.Future() for _ in range(10)]
            wrapped = [asyncio.wrap_future(f) for f in sources]
            for i, source in enumerate(sources):
                source.set_result(i)
            loop._ready.clear()         # the drain's handle, lost
            more = await loop.run_in_executor(None, pow, 2, 10)
            return await asyncio.gather(*wrapped), more

        assert loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT)) == (list(range(10)), 1024)
    finally:
        ffasyncio.uninstall()
        loop.close()


# -- stress -----------------------------------------------------------------------------

def _stress(new_loop, setup, cf, loops, offloads):
    """``loops`` loops in as many threads share one pool; each runs ``offloads``
    calls from 50 tasks, cancelling some at random (queued, running or done).
    Every task must finish, and every call that was not cancelled must
    deliver its own result exactly once."""
    executor = cf.ThreadPoolExecutor(4)
    outcomes = {}

    def serve(seed):
        rng = random.Random(seed)
        loop = new_loop()
        setup(loop, workers=1)      # closing a loop shuts its default executor down
        delivered = []

        async def worker(task_no, count):
            loop = asyncio.get_running_loop()
            for i in range(count):
                future = loop.run_in_executor(executor, pow, task_no, i % 7)
                if rng.random() < 0.05:
                    if rng.random() < 0.5:
                        await asyncio.sleep(0)
                    future.cancel()
                try:
                    value = await future
                except asyncio.CancelledError:
                    delivered.append(None)
                    continue
                assert value == task_no ** (i % 7)
                delivered.append(value)
            return count

        async def main():
            tasks = 50
            counts = await asyncio.gather(*[worker(t, offloads // tasks) for t in range(tasks)])
            return sum(counts)
        try:
            total = loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT * 30))
        finally:
            loop.close()
        outcomes[seed] = (total, len(delivered))

    try:
        join_all([start_thread(serve, seed) for seed in range(loops)], timeout=TIMEOUT * 35)
    finally:
        executor.shutdown(wait=True)
    expected = offloads // 50 * 50
    assert outcomes == {seed: (expected, expected) for seed in range(loops)}


@pytest.mark.timeout(600)
def test_stress_many_loops(new_loop, setup, cf):
    _stress(new_loop, setup, cf, loops=8, offloads=2_000)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_stress_many_loops_full_size(new_loop, setup, cf):
    _stress(new_loop, setup, cf, loops=8, offloads=100_000)


# -- fastfutures.asyncio's own API (no stdlib twin) ---------------------------------------

def test_install_and_uninstall_replace_and_restore_asyncios_functions():
    originals = (asyncio.futures._chain_future, asyncio.futures.wrap_future, asyncio.wrap_future)
    loop = asyncio.new_event_loop()
    try:
        executor = ffasyncio.install(loop)
        assert loop.run_until_complete(loop.run_in_executor(None, pow, 2, 3)) == 8
        assert ffasyncio.installed()
        assert asyncio.futures._chain_future is not originals[0]
        assert asyncio.wrap_future is asyncio.futures.wrap_future is not originals[1]

        async def wrap_others():
            stdlib_future = concurrent.futures.Future()
            stdlib_future.set_result("stdlib")
            asyncio_future = loop.create_future()
            assert asyncio.wrap_future(asyncio_future) is asyncio_future
            with pytest.raises(AssertionError):
                asyncio.wrap_future("not a future")
            fast_future = executor.submit(pow, 2, 4)
            return await asyncio.wrap_future(stdlib_future), await asyncio.wrap_future(fast_future)
        assert loop.run_until_complete(asyncio.wait_for(wrap_others(), TIMEOUT)) == ("stdlib", 16)
    finally:
        ffasyncio.uninstall()
        loop.close()
    assert not ffasyncio.installed()
    assert (asyncio.futures._chain_future, asyncio.futures.wrap_future,
            asyncio.wrap_future) == originals


def test_run_in_executor_patched_on_the_loop_class_after_install(cf, setup, monkeypatch):
    # Instrumentation that wraps asyncio's method later still sees every call.
    loop = asyncio.new_event_loop()
    try:
        setup(loop)
        calls = []
        original = asyncio.BaseEventLoop.run_in_executor

        def traced(self, executor, func, *args):
            calls.append(func)
            return original(self, executor, func, *args)
        monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", traced)
        future = loop.run_in_executor(None, pow, 2, 5)
        assert loop.run_until_complete(asyncio.wait_for(future, TIMEOUT)) == 32
        assert calls == [pow]
    finally:
        loop.close()


def test_install_without_a_running_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        ffasyncio.install()


@pytest.mark.parametrize("loop_name", LOOPS)
def test_ctrl_c_with_calls_in_flight(cf, loop_name):
    # A real SIGINT, in a fresh interpreter: it lands wherever the loop thread
    # is (inside the bridge's drain too).  The loop winds down as asyncio.run
    # does, with nothing logged and no thread left blocked.
    import subprocess
    from conftest import load_test_script, src_path_of
    script = load_test_script("asyncio_interrupt").__file__
    env = dict(os.environ, PYTHONPATH=src_path_of(ffasyncio))
    proc = subprocess.run([sys.executable, script, cf.__name__, loop_name],
                          capture_output=True, text=True, timeout=TIMEOUT * 6, env=env)
    assert proc.stdout == "interrupted\nclosed\n", proc.stderr
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line and not line.startswith(" ")]
    assert errors == ["Traceback (most recent call last):", "KeyboardInterrupt"], proc.stderr


def test_install_twice_keeps_the_executor_it_made():
    async def main():
        first = ffasyncio.install()
        assert ffasyncio.install() is first
        assert isinstance(first, concurrent.futures.ThreadPoolExecutor)
        name = await asyncio.to_thread(lambda: threading.current_thread().name)
        return name

    try:
        assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)).startswith("asyncio_")
    finally:
        ffasyncio.uninstall()


# -- found in review of the compiled run_in_executor -------------------------------

def raise_stop_iteration():
    raise StopIteration     # set_exception(StopIteration) is a TypeError in asyncio


def _delivering_stop_iteration_fails():
    # Some asyncio versions' _copy_future_state pass a StopIteration on, which
    # set_exception() refuses (TypeError: the loop's exception handler runs);
    # newer ones convert it to RuntimeError.
    loop = asyncio.new_event_loop()
    try:
        source = concurrent.futures.Future()
        source.set_exception(StopIteration())
        asyncio.futures._copy_future_state(source, loop.create_future())
        return False
    except TypeError:
        return True
    finally:
        loop.close()


def test_call_made_while_calls_are_delivered(new_loop, setup):
    """A call made by Python code that runs while completions are delivered
    (here the loop's exception handler) completes too."""
    if not _delivering_stop_iteration_fails():
        pytest.skip("this asyncio delivers a StopIteration as RuntimeError: no handler call")
    loop = new_loop()
    setup(loop)
    from_handler = []

    def handler(loop, context):
        if not from_handler:
            from_handler.append(loop.run_in_executor(None, pow, 2, 10))
    loop.set_exception_handler(handler)

    async def main():
        failing = loop.run_in_executor(None, raise_stop_iteration)
        while not from_handler:
            await asyncio.sleep(0.001)
        del failing
        return await asyncio.wait_for(from_handler[0], TIMEOUT)
    assert loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT)) == 1024


@pytest.mark.parametrize("loop_runs_first", [False, True])
def test_results_let_go_when_the_loop_closes(new_loop, setup, loop_runs_first):
    """Calls that completed before loop.close() and were never awaited: their
    results are let go with the loop's ready handles, also while the closed
    loop object is kept."""
    loop = new_loop()
    executor = setup(loop)
    alive = []
    made = threading.Event()

    def make():
        payload = Payload()
        alive.append(weakref.ref(payload))
        if len(alive) == 8:
            made.set()
        return payload

    def start():
        for _ in range(8):
            loop.run_in_executor(None, make)

    async def start_in_loop():
        start()
    if loop_runs_first:
        loop.run_until_complete(start_in_loop())
    else:
        start()
    assert made.wait(TIMEOUT)
    executor.shutdown(wait=True)
    loop.close()
    gc.collect()
    assert len(alive) == 8 and all(ref() is None for ref in alive)


def test_run_in_executor_argument_errors_are_asyncios(new_loop, setup):
    loop = new_loop()
    setup(loop)
    with pytest.raises(TypeError) as missing:
        loop.run_in_executor(None)
    with pytest.raises(TypeError) as keyword:
        loop.run_in_executor(None, pow, 2, x=3)
    if isinstance(loop, asyncio.BaseEventLoop):
        assert "run_in_executor() missing 1 required positional argument: 'func'" \
            in str(missing.value)
        assert "run_in_executor() got an unexpected keyword argument 'x'" in str(keyword.value)
