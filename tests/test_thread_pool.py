"""ThreadPoolExecutor behaviour: arguments, submit, map, shutdown, lifecycle."""
import gc
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
import weakref

import pytest

from conftest import TIMEOUT, join_all, src_path_of, start_thread, wait_until

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def _threads_named(prefix):
    return [t for t in threading.enumerate()
            if t.name.startswith(prefix + "_") and t.is_alive()]


def _unique_prefix(tag):
    return f"fftest-{tag}-{os.getpid()}-{time.monotonic_ns()}"


def _expected_default_workers():
    if sys.version_info >= (3, 13):
        cpus = os.process_cpu_count()
    else:
        cpus = os.cpu_count()
    return min(32, (cpus or 1) + 4)


# -- constructor arguments ------------------------------------------------------

@pytest.mark.parametrize("max_workers", [0, -1])
def test_max_workers_must_be_positive(cf, max_workers):
    with pytest.raises(ValueError, match=r"^max_workers must be greater than 0$"):
        cf.ThreadPoolExecutor(max_workers=max_workers)
    with pytest.raises(ValueError, match=r"^max_workers must be greater than 0$"):
        cf.ThreadPoolExecutor(max_workers)


def test_non_callable_initializer(cf):
    with pytest.raises(TypeError, match=r"^initializer must be a callable$"):
        cf.ThreadPoolExecutor(initializer=42)


def test_keyword_arguments(cf):
    calls = []
    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kw",
                               initializer=calls.append, initargs=("init",)) as ex:
        assert ex.submit(threading.current_thread).result(timeout=TIMEOUT).name == "kw_0"
    assert calls == ["init"]


def test_default_max_workers(cf):
    # Behavioural check of min(32, cpu + 4): with every worker blocked, exactly
    # that many tasks start and the rest wait in the queue.
    expected = _expected_default_workers()
    release = threading.Event()
    started = []
    lock = threading.Lock()

    def task():
        with lock:
            started.append(threading.current_thread().name)
        release.wait(TIMEOUT)

    ex = cf.ThreadPoolExecutor()
    try:
        fs = [ex.submit(task) for _ in range(expected + 3)]
        assert wait_until(lambda: len(started) >= expected)
        time.sleep(0.1)  # give an (incorrect) extra worker a chance to start
        with lock:
            assert len(started) == expected
            assert len(set(started)) == expected
    finally:
        release.set()
        ex.shutdown(wait=True)
    assert all(f.done() for f in fs)
    assert len(started) == expected + 3


def test_max_workers_bounds_concurrency(cf):
    release = threading.Event()
    running = []
    lock = threading.Lock()
    peak = [0]

    def task():
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        release.wait(TIMEOUT)
        with lock:
            running.pop()

    with cf.ThreadPoolExecutor(max_workers=3) as ex:
        fs = [ex.submit(task) for _ in range(8)]
        assert wait_until(lambda: peak[0] >= 3)
        time.sleep(0.05)
        assert peak[0] == 3
        release.set()
    assert all(f.result(timeout=0) is None for f in fs)
    assert peak[0] == 3


# -- thread names ----------------------------------------------------------------

def test_default_thread_names(cf):
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        name = ex.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
    with cf.ThreadPoolExecutor(max_workers=1) as ex2:
        name2 = ex2.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
    m1 = re.fullmatch(r"ThreadPoolExecutor-(\d+)_0", name)
    m2 = re.fullmatch(r"ThreadPoolExecutor-(\d+)_0", name2)
    assert m1 and m2, (name, name2)
    # Each executor gets its own number.
    assert m1.group(1) != m2.group(1)


def test_thread_name_prefix(cf):
    release = threading.Event()
    names = set()
    lock = threading.Lock()

    def task():
        with lock:
            names.add(threading.current_thread().name)
        release.wait(TIMEOUT)

    with cf.ThreadPoolExecutor(max_workers=3, thread_name_prefix="SpecialPool") as ex:
        for _ in range(3):
            ex.submit(task)
        assert wait_until(lambda: len(names) == 3)
        release.set()
    assert names == {"SpecialPool_0", "SpecialPool_1", "SpecialPool_2"}


def test_worker_thread_exits_after_shutdown(cf):
    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nd") as ex:
        t = ex.submit(threading.current_thread).result(timeout=TIMEOUT)
    assert t.name == "nd_0"
    assert not t.is_alive()


# -- initializer -------------------------------------------------------------------

def test_initializer_runs_once_per_worker_with_initargs(cf):
    local = threading.local()
    calls = []
    lock = threading.Lock()

    def init(a, b):
        local.value = (a, b)
        with lock:
            calls.append(threading.current_thread().name)

    release = threading.Event()

    def task():
        release.wait(TIMEOUT)
        return local.value

    with cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="init",
                               initializer=init, initargs=(1, "x")) as ex:
        fs = [ex.submit(task) for _ in range(6)]
        release.set()
        assert [f.result(timeout=TIMEOUT) for f in fs] == [(1, "x")] * 6
    assert sorted(calls) in (["init_0"], ["init_0", "init_1"])


def pool_whose_initializer_fails(cf):
    """A one-worker pool whose initializer raises once the event is set."""
    go = threading.Event()

    def init():
        go.wait(TIMEOUT)
        raise ValueError("error in initializer")

    return cf.ThreadPoolExecutor(max_workers=1, initializer=init), go


def test_initializer_failure_breaks_pool(cf, caplog):
    ex, go = pool_whose_initializer_fails(cf)
    try:
        with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
            # The only worker is stuck in its initializer: these are pending.
            fs = [ex.submit(pow, 2, i) for i in range(5)]
            go.set()
            for f in fs:
                with pytest.raises(cf.thread.BrokenThreadPool):
                    f.result(timeout=TIMEOUT)
                assert isinstance(f.exception(timeout=0), cf.BrokenExecutor)
        # From now on submit() fails.
        with pytest.raises(cf.thread.BrokenThreadPool, match="initializer failed"):
            ex.submit(pow, 2, 2)
    finally:
        ex.shutdown(wait=True)
    records = [r for r in caplog.records
               if r.name == "concurrent.futures" and r.levelno == logging.CRITICAL]
    assert records, caplog.records
    assert records[0].getMessage() == "Exception in initializer:"
    assert records[0].exc_info[0] is ValueError


@pytest.mark.stdlib_differs
def test_initializer_failure_with_cancelled_futures_queued(cf, caplog):
    """fastfutures-only: queued futures cancelled before (or while) the
    initializer fails are notified as cancelled, the others fail with
    BrokenThreadPool; wait() sees every one done.  The stdlib calls
    set_exception() on the cancelled ones too: InvalidStateError kills the
    worker, the futures queued behind stay pending for ever."""
    for _ in range(20):
        go = threading.Event()

        def init():
            go.wait(TIMEOUT)
            raise ValueError("error in initializer")

        ex = cf.ThreadPoolExecutor(max_workers=1, initializer=init)
        with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
            fs = [ex.submit(pow, 2, i) for i in range(200)]
            for f in fs[:50:2]:
                f.cancel()
            canceller = start_thread(lambda: [f.cancel() for f in fs[50::2]])
            go.set()
            join_all([canceller])
            ex.shutdown(wait=True)
        done, not_done = cf.wait(fs, timeout=TIMEOUT)
        assert not not_done
        for f in fs:
            assert f.cancelled() or isinstance(f.exception(timeout=0),
                                               cf.thread.BrokenThreadPool)


def test_broken_thread_pool_is_broken_executor(cf):
    assert issubclass(cf.thread.BrokenThreadPool, cf.BrokenExecutor)
    assert issubclass(cf.BrokenExecutor, RuntimeError)


# -- submit --------------------------------------------------------------------------

def test_submit_returns_future(cf):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        f = ex.submit(pow, 2, 8)
        assert isinstance(f, cf.Future)
        assert f.result(timeout=TIMEOUT) == 256


def test_submit_kwargs(cf):
    def capture(*args, **kwargs):
        return args, kwargs

    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        assert ex.submit(capture, 1, 2, a=3).result(timeout=TIMEOUT) == ((1, 2), {"a": 3})
        # 'fn' and 'self' are ordinary keyword arguments for the task.
        assert ex.submit(capture, fn=1, self=2).result(timeout=TIMEOUT) == (
            (), {"fn": 1, "self": 2})


def test_submit_fn_is_positional_only(cf):
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError):
            ex.submit(fn=pow)
        with pytest.raises(TypeError):
            ex.submit()


def test_submit_non_callable_fails_the_future(cf):
    # submit() does not check callability; calling it in the worker fails.
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        f = ex.submit(42)
        with pytest.raises(TypeError):
            f.result(timeout=TIMEOUT)
        # The worker survives and the pool keeps working.
        assert ex.submit(abs, -3).result(timeout=TIMEOUT) == 3


def test_task_exception(cf):
    def fail():
        raise ZeroDivisionError("task failed")

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        f = ex.submit(fail)
        with pytest.raises(ZeroDivisionError, match="task failed"):
            f.result(timeout=TIMEOUT)
        assert isinstance(f.exception(timeout=0), ZeroDivisionError)
        assert ex.submit(len, "abc").result(timeout=TIMEOUT) == 3


def test_task_base_exception_is_stored(cf):
    class Stop(BaseException):
        pass

    def fail():
        raise Stop()

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        f = ex.submit(fail)
        with pytest.raises(Stop):
            f.result(timeout=TIMEOUT)
        assert ex.submit(len, "ab").result(timeout=TIMEOUT) == 2


def test_submitted_future_is_running_while_task_runs(cf):
    started = threading.Event()
    release = threading.Event()

    def task():
        started.set()
        release.wait(TIMEOUT)
        return "done"

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        f = ex.submit(task)
        assert started.wait(TIMEOUT)
        assert f.running()
        assert f.cancel() is False
        release.set()
        assert f.result(timeout=TIMEOUT) == "done"


def test_cancel_queued_task_never_runs(cf):
    started = threading.Event()
    release = threading.Event()
    ran = []

    def blocker():
        started.set()
        release.wait(TIMEOUT)

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        ex.submit(blocker)
        assert started.wait(TIMEOUT)
        f = ex.submit(ran.append, 1)
        assert f.cancel() is True
        release.set()
    assert ran == []
    assert f.cancelled()
    # The worker took the cancelled item and notified: wait() now counts it.
    assert cf.wait([f], timeout=0).done == {f}


def test_callbacks_run_in_worker_thread(cf):
    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cbw") as ex:
        seen = []
        release = threading.Event()
        f = ex.submit(release.wait, TIMEOUT)
        f.add_done_callback(lambda fut: seen.append(threading.current_thread().name))
        release.set()
        f.result(timeout=TIMEOUT)
    assert seen == ["cbw_0"]


def test_idle_thread_reuse(cf):
    prefix = _unique_prefix("reuse")
    with cf.ThreadPoolExecutor(thread_name_prefix=prefix) as ex:
        names = set()
        for i in range(5):
            names.add(ex.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT))
            # Let the worker get back to waiting for work (become idle) before
            # the next submit; without this the check would be racy.
            time.sleep(0.05)
        assert names == {prefix + "_0"}
        assert len(_threads_named(prefix)) == 1


# -- shutdown ---------------------------------------------------------------------

def test_submit_after_shutdown(cf):
    ex = cf.ThreadPoolExecutor(max_workers=1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):
        ex.submit(pow, 2, 2)


def test_submit_after_shutdown_nowait(cf):
    ex = cf.ThreadPoolExecutor(max_workers=1)
    ex.submit(pow, 2, 2).result(timeout=TIMEOUT)
    ex.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(pow, 2, 2)


def test_shutdown_twice(cf):
    ex = cf.ThreadPoolExecutor(max_workers=2)
    ex.submit(pow, 2, 2).result(timeout=TIMEOUT)
    ex.shutdown()
    ex.shutdown()
    ex.shutdown(wait=False)
    ex.shutdown(wait=True, cancel_futures=True)


def test_shutdown_without_any_submit(cf):
    ex = cf.ThreadPoolExecutor()
    ex.shutdown(wait=True)
    ex2 = cf.ThreadPoolExecutor()
    ex2.shutdown(wait=False)


def test_shutdown_wait_true_waits_for_all(cf):
    prefix = _unique_prefix("swt")
    ex = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix=prefix)

    def slow(i):
        time.sleep(0.02)
        return i

    fs = [ex.submit(slow, i) for i in range(10)]
    ex.shutdown(wait=True)
    assert [f.result(timeout=0) for f in fs] == list(range(10))
    # The workers have been joined.
    assert _threads_named(prefix) == []


def test_shutdown_wait_false_returns_and_work_completes(cf):
    release = threading.Event()
    ex = cf.ThreadPoolExecutor(max_workers=1)
    f1 = ex.submit(release.wait, TIMEOUT)
    f2 = ex.submit(pow, 3, 3)
    ex.shutdown(wait=False)
    # shutdown did not wait for the blocked task (it would otherwise be done).
    assert not f1.done()
    release.set()
    assert f1.result(timeout=TIMEOUT) is True
    assert f2.result(timeout=TIMEOUT) == 27


def test_shutdown_cancel_futures(cf):
    started = threading.Event()
    release = threading.Event()
    ran = []

    def blocker():
        started.set()
        release.wait(TIMEOUT)
        return "first"

    ex = cf.ThreadPoolExecutor(max_workers=1)
    first = ex.submit(blocker)
    assert started.wait(TIMEOUT)
    queued = [ex.submit(ran.append, i) for i in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    assert not first.cancelled()
    release.set()
    assert first.result(timeout=TIMEOUT) == "first"
    ex.shutdown(wait=True)
    assert ran == []
    for f in queued:
        with pytest.raises(cf.CancelledError):
            f.result(timeout=0)


def _cancel_queued_by_shutdown(cf):
    started = threading.Event()
    release = threading.Event()

    def blocker():
        started.set()
        release.wait(TIMEOUT)

    ex = cf.ThreadPoolExecutor(max_workers=1)
    ex.submit(blocker)
    assert started.wait(TIMEOUT)
    queued = [ex.submit(pow, 2, i) for i in range(3)]
    ex.shutdown(wait=False, cancel_futures=True)
    release.set()
    ex.shutdown(wait=True)
    assert all(f.cancelled() for f in queued)
    return queued


@pytest.mark.stdlib_differs
def test_shutdown_cancel_futures_notifies_waiters(cf):
    # fastfutures-only: futures cancelled by shutdown(cancel_futures=True) are
    # also notified, so wait()/as_completed() count them as done.  The stdlib
    # leaves them CANCELLED (not notified) forever, and wait() without a
    # timeout hangs on them: CPython gh-109934 / gh-87893 (open).
    queued = _cancel_queued_by_shutdown(cf)
    assert cf.wait(queued, timeout=TIMEOUT).done == set(queued)
    assert set(cf.as_completed(queued, timeout=TIMEOUT)) == set(queued)


def test_shutdown_cancel_futures_wait_true(cf):
    started = threading.Event()
    release = threading.Event()

    def blocker():
        started.set()
        release.wait(TIMEOUT)

    ex = cf.ThreadPoolExecutor(max_workers=1)
    first = ex.submit(blocker)
    assert started.wait(TIMEOUT)
    queued = [ex.submit(pow, 2, i) for i in range(3)]
    t = start_thread(lambda: (time.sleep(0.05), release.set()))
    ex.shutdown(wait=True, cancel_futures=True)
    join_all([t])
    assert first.done() and not first.cancelled()
    assert all(f.cancelled() for f in queued)


def test_shutdown_cancel_futures_is_keyword_only(cf):
    ex = cf.ThreadPoolExecutor(max_workers=1)
    try:
        with pytest.raises(TypeError):
            ex.shutdown(True, True)
    finally:
        ex.shutdown()


def test_context_manager(cf):
    def slow(i):
        time.sleep(0.01)
        return i

    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        fs = [ex.submit(slow, i) for i in range(6)]
    assert all(f.done() for f in fs)
    with pytest.raises(RuntimeError):
        ex.submit(slow, 1)


def test_context_manager_enter_returns_self_and_exit_returns_false(cf):
    ex = cf.ThreadPoolExecutor(max_workers=1)
    assert ex.__enter__() is ex
    assert ex.__exit__(None, None, None) is False


def test_context_manager_does_not_swallow_exceptions(cf):
    with pytest.raises(KeyError):
        with cf.ThreadPoolExecutor(max_workers=1) as ex:
            f = ex.submit(pow, 2, 3)
            raise KeyError()
    assert f.result(timeout=0) == 8


# -- map -------------------------------------------------------------------------------

def test_map_order(cf):
    def inverse_sleep(i):
        time.sleep(0.002 * (10 - i))
        return i * i

    with cf.ThreadPoolExecutor(max_workers=5) as ex:
        assert list(ex.map(inverse_sleep, range(10))) == [i * i for i in range(10)]


def test_map_multiple_iterables(cf):
    with cf.ThreadPoolExecutor(max_workers=3) as ex:
        assert list(ex.map(pow, range(10), range(10))) == list(map(pow, range(10), range(10)))
        # Shortest iterable wins, like the builtin map.
        assert list(ex.map(pow, [2, 3], [4, 5, 6])) == [16, 243]
        assert list(ex.map(pow, [], [1])) == []


def test_map_empty(cf):
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        assert list(ex.map(abs, [])) == []


def test_map_is_eager(cf):
    # All tasks are submitted before map() returns, without iterating.
    ran = []
    lock = threading.Lock()

    def record(i):
        with lock:
            ran.append(i)

    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        ex.map(record, range(8))
    assert sorted(ran) == list(range(8))


def test_map_exception_at_its_position(cf):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        it = ex.map(lambda x: 10 // x, [5, 2, 0, 1])
        assert next(it) == 2
        assert next(it) == 5
        with pytest.raises(ZeroDivisionError):
            next(it)


def test_map_chunksize_accepted(cf):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        assert list(ex.map(abs, range(-5, 5), chunksize=3)) == [abs(i) for i in range(-5, 5)]
        assert list(ex.map(abs, [-1], chunksize=100)) == [1]


def test_map_timeout_raises_and_cancels_the_rest(cf):
    release = threading.Event()
    ran = []
    lock = threading.Lock()

    def task(i):
        with lock:
            ran.append(i)
        if i == 0:
            release.wait(TIMEOUT)
        return i

    ex = cf.ThreadPoolExecutor(max_workers=1)
    try:
        it = ex.map(task, range(5), timeout=0.1)
        with pytest.raises(cf.TimeoutError):
            list(it)
    finally:
        release.set()
        ex.shutdown(wait=True)
    assert ran == [0]


def test_map_timeout_not_hit(cf):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        assert list(ex.map(abs, [-1, -2], timeout=TIMEOUT)) == [1, 2]


def test_map_early_close_cancels_the_rest(cf):
    second_started = threading.Event()
    release = threading.Event()
    ran = []
    lock = threading.Lock()

    def task(i):
        with lock:
            ran.append(i)
        if i == 1:
            second_started.set()
            release.wait(TIMEOUT)
        return i

    ex = cf.ThreadPoolExecutor(max_workers=1)
    try:
        it = ex.map(task, range(6))
        assert next(it) == 0
        assert second_started.wait(TIMEOUT)
        it.close()
    finally:
        release.set()
        ex.shutdown(wait=True)
    assert ran == [0, 1]


def test_map_exception_cancels_the_rest_on_close(cf):
    release = threading.Event()
    ran = []

    def task(i):
        ran.append(i)
        if i == 0:
            raise ValueError("first")
        release.wait(TIMEOUT)
        return i

    ex = cf.ThreadPoolExecutor(max_workers=1)
    try:
        it = ex.map(task, range(5))
        with pytest.raises(ValueError):
            next(it)
        # The generator is finished after raising; its finally cancelled the
        # futures not yet started.
        with pytest.raises(StopIteration):
            next(it)
    finally:
        release.set()
        ex.shutdown(wait=True)
    assert ran[0] == 0
    assert len(ran) <= 2


@pytest.mark.parametrize("warm", [False, True])
def test_map_starts_each_call_as_the_iterable_yields_it(cf, warm):
    # The iterable waits for its first call to have run: the stdlib's map()
    # submits each item as it comes, so that call must not wait for the end
    # of the iterable (a fresh pool starts a thread; a warm one wakes one).
    ran = threading.Event()

    def items():
        yield 1
        assert ran.wait(TIMEOUT), "the first call did not start"
        yield 2

    def call(x):
        ran.set()
        return x

    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        if warm:
            assert [f.result(TIMEOUT) for f in [ex.submit(abs, -1), ex.submit(abs, -2)]] == [1, 2]
            time.sleep(0.05)        # the workers go idle
        assert list(ex.map(call, items(), timeout=TIMEOUT)) == [1, 2]


def map_behind_a_held_first_call(cf, n):
    """A one-worker pool's map(identity, range(n)), its first call running
    and held until the returned event is set."""
    started = threading.Event()
    release = threading.Event()

    def task(i):
        if i == 0:
            started.set()
            release.wait(TIMEOUT)
        return i

    ex = cf.ThreadPoolExecutor(max_workers=1)
    it = ex.map(task, range(n))
    assert started.wait(TIMEOUT)
    return ex, it, release


def test_map_shutdown_cancelling_futures_cancels_its_queued_calls(cf):
    ex, it, release = map_behind_a_held_first_call(cf, 5)
    try:
        ex.shutdown(wait=False, cancel_futures=True)
        release.set()
        assert next(it) == 0
        with pytest.raises(cf.CancelledError):
            next(it)
        with pytest.raises(StopIteration):
            next(it)
    finally:
        release.set()
        ex.shutdown(wait=True)


def test_map_waiting_consumer_woken_by_shutdown_cancelling_futures(cf):
    ex, it, release = map_behind_a_held_first_call(cf, 3)
    try:
        outcome = []

        def consume():
            try:
                outcome.append(list(it))
            except BaseException as exc:
                outcome.append(exc)

        consumer = start_thread(consume)
        time.sleep(0.05)
        ex.shutdown(wait=False, cancel_futures=True)
        release.set()
        consumer.join(TIMEOUT)
        assert not consumer.is_alive()
        assert type(outcome[0]) is cf.CancelledError
    finally:
        release.set()
        ex.shutdown(wait=True)


def test_map_on_a_pool_whose_initializer_fails(cf, caplog):
    ex, go = pool_whose_initializer_fails(cf)
    try:
        with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
            it = ex.map(abs, range(4))
            go.set()
            with pytest.raises(cf.thread.BrokenThreadPool):
                next(it)
    finally:
        go.set()
        ex.shutdown(wait=True)


def test_map_error_carries_the_worker_frame(cf):
    def fails_in_worker(x):
        raise KeyError(x)

    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        it = ex.map(fails_in_worker, [7])
        with pytest.raises(KeyError) as info:
            next(it)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "fails_in_worker" in names


def test_map_base_exception_from_a_call_is_its_result(cf):
    def exits(x):
        raise SystemExit(x)

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        it = ex.map(exits, [3, 4])
        with pytest.raises(SystemExit) as info:
            next(it)
        assert info.value.code == 3
        # The pool lives on.
        assert ex.submit(abs, -1).result(timeout=TIMEOUT) == 1


def test_map_single_iterable_not_iterable(cf):
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError):
            ex.map(abs, 5)
        with pytest.raises(TypeError):
            ex.map(pow, [1], 5)


def test_map_results_kept_alive_by_the_consumer(cf):
    # Each result is its own object, still intact after the pool is gone.
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(lambda i: [i] * 3, range(1000)))
    assert results == [[i] * 3 for i in range(1000)]


# -- lifecycle -------------------------------------------------------------------------

def test_executor_garbage_collected_workers_exit(cf):
    prefix = _unique_prefix("gc")
    ex = cf.ThreadPoolExecutor(max_workers=3, thread_name_prefix=prefix)
    fs = [ex.submit(time.sleep, 0.01) for _ in range(3)]
    for f in fs:
        f.result(timeout=TIMEOUT)
    assert _threads_named(prefix)
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None
    assert wait_until(lambda: not _threads_named(prefix)), _threads_named(prefix)


def test_executor_not_kept_alive_by_futures(cf):
    ex = cf.ThreadPoolExecutor(max_workers=1)
    f = ex.submit(pow, 2, 5)
    assert f.result(timeout=TIMEOUT) == 32
    ex.shutdown()
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None
    assert f.result(timeout=0) == 32


def _run_script(cf, body, timeout=60):
    module = cf.__name__
    script = textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {src_path_of(cf)!r})
        import {module} as cf
        import {module}.thread
    """) + textwrap.dedent(body)
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_interpreter_exit_runs_pending_work(cf):
    proc = _run_script(cf, """
        import time
        def task(i):
            time.sleep(0.05)
            sys.stdout.write(f"done {i}\\n")  # one write: threads must not interleave
            sys.stdout.flush()
        ex = cf.ThreadPoolExecutor(max_workers=2)
        for i in range(6):
            ex.submit(task, i)
        print("main exits", flush=True)
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "main exits"
    assert sorted(lines[1:]) == [f"done {i}" for i in range(6)]
    assert proc.stderr == ""


def test_interpreter_exit_after_shutdown_nowait_runs_pending(cf):
    proc = _run_script(cf, """
        import time
        ex = cf.ThreadPoolExecutor(max_workers=1)
        f = ex.submit(time.sleep, 0.1)
        f.add_done_callback(lambda fut: print("callback", flush=True))
        ex.shutdown(wait=False)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "callback\n"
    assert proc.stderr == ""


def test_submit_from_atexit_fails_cleanly(cf):
    # After interpreter shutdown has started, submit raises RuntimeError.
    proc = _run_script(cf, """
        import atexit
        ex = cf.ThreadPoolExecutor(max_workers=1)
        ex.submit(abs, 1).result()
        def late():
            try:
                cf.ThreadPoolExecutor(max_workers=1).submit(abs, 1)
            except RuntimeError as e:
                print("RuntimeError:", e, flush=True)
            else:
                print("no error", flush=True)
        atexit.register(late)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "RuntimeError: cannot schedule new futures after interpreter shutdown\n")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_fork_with_busy_pool(cf):
    release = threading.Event()
    ex = cf.ThreadPoolExecutor(max_workers=2)
    try:
        busy = [ex.submit(release.wait, TIMEOUT) for _ in range(2)]
        queued = ex.submit(pow, 2, 10)
        with warnings.catch_warnings():
            # 3.12+: "This process is multi-threaded, use of fork() may lead
            # to deadlocks in the child." -- expected here.
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    message=".*fork.*")
            pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                with cf.ThreadPoolExecutor(max_workers=2) as child_ex:
                    if child_ex.submit(pow, 3, 3).result(timeout=TIMEOUT) == 27:
                        code = 0
            except BaseException:
                code = 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("forked child hung")
            time.sleep(0.01)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        release.set()
        assert all(f.result(timeout=TIMEOUT) for f in busy)
        assert queued.result(timeout=TIMEOUT) == 1024
    finally:
        release.set()
        ex.shutdown(wait=True)


# -- more map / submit edge cases ----------------------------------------------------

@pytest.mark.parametrize("pool", ["cold", "warm"])
def test_map_iterable_error_raised_from_map_and_submitted_tasks_run(cf, pool):
    ran = []
    lock = threading.Lock()

    def record(i):
        with lock:
            ran.append(i)
        return i

    def items():
        yield 0
        yield 1
        yield 2
        raise KeyError("iterable broke")

    ex = cf.ThreadPoolExecutor(max_workers=2)
    try:
        if pool == "warm":  # workers already started and idle
            ex.submit(abs, 1).result(timeout=TIMEOUT)
        # map() is eager: the iterable's error comes out of map() itself.
        with pytest.raises(KeyError, match="iterable broke"):
            ex.map(record, items())
        # What was submitted before the error runs (nothing cancelled it),
        # without waiting for shutdown.
        wait_until(lambda: len(ran) == 3, timeout=5)
        assert sorted(ran) == [0, 1, 2]
    finally:
        ex.shutdown(wait=True)
    assert sorted(ran) == [0, 1, 2]


def test_map_after_shutdown(cf):
    ex = cf.ThreadPoolExecutor(max_workers=1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.map(abs, [1, 2])


def test_map_partially_consumed_iterator_dropped_cancels_the_rest(cf):
    second_started = threading.Event()
    release = threading.Event()
    ran = []
    lock = threading.Lock()

    def task(i):
        with lock:
            ran.append(i)
        if i == 1:
            second_started.set()
            release.wait(TIMEOUT)
        return i

    ex = cf.ThreadPoolExecutor(max_workers=1)
    try:
        it = ex.map(task, range(6))
        assert next(it) == 0
        assert second_started.wait(TIMEOUT)
        del it  # generator finalisation cancels what has not started
        gc.collect()
    finally:
        release.set()
        ex.shutdown(wait=True)
    assert ran == [0, 1]


def test_map_uses_overridden_submit(cf):
    class CountingPool(cf.ThreadPoolExecutor):
        def __init__(self, *args, tag="x", **kwargs):
            super().__init__(*args, **kwargs)
            self.tag = tag
            self.submitted = 0

        def submit(self, fn, /, *args, **kwargs):
            self.submitted += 1
            return super().submit(fn, *args, **kwargs)

    with CountingPool(max_workers=2, tag="y") as ex:
        assert list(ex.map(abs, [-1, -2, -3])) == [1, 2, 3]
        assert ex.submitted == 3
        assert ex.tag == "y"
        assert isinstance(ex, cf.ThreadPoolExecutor)


@pytest.mark.parametrize("exc_type", [ValueError, SystemExit])
def test_initializer_base_exception_also_breaks_pool(cf, caplog, exc_type):
    go = threading.Event()

    def init():
        go.wait(TIMEOUT)
        raise exc_type("init failed")

    ex = cf.ThreadPoolExecutor(max_workers=1, initializer=init)
    try:
        with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
            f = ex.submit(abs, -1)
            go.set()
            with pytest.raises(cf.BrokenExecutor):
                f.result(timeout=TIMEOUT)
    finally:
        ex.shutdown(wait=True)
    assert any(r.getMessage() == "Exception in initializer:" for r in caplog.records)


def test_initargs_any_iterable(cf):
    got = []
    with cf.ThreadPoolExecutor(max_workers=1, initializer=lambda *a: got.append(a),
                               initargs=[1, 2]) as ex:
        ex.submit(abs, 1).result(timeout=TIMEOUT)
    assert got == [(1, 2)]


def test_thread_name_prefix_none_or_empty_uses_default(cf):
    for prefix in (None, ""):
        with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=prefix) as ex:
            name = ex.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT)
        assert re.fullmatch(r"ThreadPoolExecutor-\d+_0", name), name


def test_task_arguments_released_after_run(cf):
    class Payload:
        pass

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        payload = Payload()
        ref = weakref.ref(payload)
        f = ex.submit(id, payload)
        f.result(timeout=TIMEOUT)
        del payload

        def released():
            gc.collect()
            return ref() is None

        # The executor is still alive: the worker must not hold the arguments.
        assert wait_until(released)


def test_task_result_released_with_future(cf):
    class Result:
        pass

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        f = ex.submit(Result)
        ref = weakref.ref(f.result(timeout=TIMEOUT))
        del f

        def released():
            gc.collect()
            return ref() is None

        assert wait_until(released)


def test_task_exception_has_traceback_of_the_task(cf):
    import traceback

    def failing_task_function():
        raise LookupError("x")

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        exc = ex.submit(failing_task_function).exception(timeout=TIMEOUT)
    assert isinstance(exc, LookupError)
    names = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "failing_task_function" in names


def test_tasks_do_not_inherit_submitters_context(cf):
    import contextvars
    var = contextvars.ContextVar("fastfutures_test_var", default="unset")
    token = var.set("main")
    try:
        with cf.ThreadPoolExecutor(max_workers=1) as ex:
            assert ex.submit(var.get).result(timeout=TIMEOUT) == "unset"
    finally:
        var.reset(token)


def test_future_constructor_takes_no_arguments(cf):
    with pytest.raises(TypeError):
        cf.Future(1)


def test_nested_submit_from_task(cf):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        def outer():
            return ex.submit(pow, 2, 5)

        inner = ex.submit(outer).result(timeout=TIMEOUT)
        assert inner.result(timeout=TIMEOUT) == 32


def test_add_done_callback_after_task_finished_runs_in_caller(cf):
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        f = ex.submit(abs, -4)
        f.result(timeout=TIMEOUT)
        seen = []
        f.add_done_callback(lambda fut: seen.append((threading.get_ident(), fut.result())))
    assert seen == [(threading.get_ident(), 4)]
