"""Drop-in details that real client libraries rely on.

Each test here failed before its fix (found through tqdm, tornado, the
tutorials and CPython's own suite), and runs against both implementations.
"""
import concurrent.futures.process
import gc
import inspect
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import types
import weakref

import pytest

from conftest import TIMEOUT

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

PY314 = sys.version_info >= (3, 14)


class Big:
    """A result whose lifetime a test watches."""


def make_big(_):
    return Big()


# -- map() ------------------------------------------------------------------

def test_thread_map_returns_a_generator(cf):
    with cf.ThreadPoolExecutor(2) as ex:
        results = ex.map(abs, [-1, -2, -3])
        assert inspect.isgenerator(results)
        assert isinstance(results, types.GeneratorType)
        assert list(results) == [1, 2, 3]


def test_executor_subclass_map_returns_a_generator(cf):
    class Inline(cf.Executor):
        def submit(self, fn, /, *args, **kwargs):
            future = cf.Future()
            future.set_result(fn(*args, **kwargs))
            return future

    results = Inline().map(str, range(3))
    assert inspect.isgenerator(results)
    assert list(results) == ["0", "1", "2"]


def test_closing_map_generator_cancels_the_rest(cf):
    gate = threading.Event()
    with cf.ThreadPoolExecutor(1) as ex:
        results = ex.map(lambda x: gate.wait(TIMEOUT) and x, range(4))
        results.close()
        gate.set()
    # Nothing to assert on the futures (map hides them): the pool shut down
    # without running what was cancelled, and closing did not raise.


def test_thread_map_drops_each_result_it_yields(cf):
    # CPython bpo-14406 (test_thread_pool.test_free_reference): the iterator
    # keeps no reference to a result it has handed out.
    with cf.ThreadPoolExecutor(2) as ex:
        for obj in ex.map(make_big, range(10)):
            ref = weakref.ref(obj)
            del obj
            assert ref() is None


def test_thread_map_honours_an_instance_submit(cf):
    # tqdm.contrib.concurrent.thread_map sets `ex.submit = wrapper` on the
    # instance to count calls, then calls ex.map().
    calls = []
    with cf.ThreadPoolExecutor(2) as ex:
        original = ex.submit

        def counting_submit(fn, /, *args, **kwargs):
            calls.append(args)
            return original(fn, *args, **kwargs)

        ex.submit = counting_submit
        assert list(ex.map(abs, [-1, -2, -3])) == [1, 2, 3]
    assert calls == [(-1,), (-2,), (-3,)]


# -- exceptions ---------------------------------------------------------------

class FalseyError(Exception):
    def __bool__(self):
        return False


def raise_falsey():
    raise FalseyError("falsey")


# Before 3.14 the stdlib's result() swallows an exception whose bool() is
# False (returns None); fastfutures raises it on every version.
falsey_differs = pytest.mark.stdlib_differs if not PY314 else (lambda test: test)


@falsey_differs
def test_falsey_exception_set_by_hand_is_raised(cf):
    future = cf.Future()
    future.set_exception(FalseyError("falsey"))
    with pytest.raises(FalseyError):
        future.result(timeout=TIMEOUT)
    assert isinstance(future.exception(timeout=TIMEOUT), FalseyError)


@falsey_differs
def test_falsey_exception_from_a_thread_pool_is_raised(cf):
    with cf.ThreadPoolExecutor(1) as ex:
        future = ex.submit(raise_falsey)
        with pytest.raises(FalseyError):
            future.result(timeout=TIMEOUT)
        with pytest.raises(FalseyError):
            list(ex.map(lambda _: raise_falsey(), [1], timeout=TIMEOUT))


# -- reference cycles ---------------------------------------------------------

class InitArg:
    """An initializer argument whose lifetime a test watches."""


def _init(arg):
    pass


THREAD_POOL_MODULES = {
    "fastfutures._future", "fastfutures._threadpool", "fastfutures.thread", "fastfutures._base",
    "concurrent.futures._base", "concurrent.futures.thread", "threading", "weakref",
}


@pytest.mark.parametrize("use", ["submit", "map", "unused"])
def test_thread_pool_leaves_no_reference_cycle(cf, use):
    # As tornado's circlerefs test: with the cyclic GC off, everything the
    # pool made must be freed by reference counting alone.
    arg = InitArg()
    arg_ref = weakref.ref(arg)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        ex = cf.ThreadPoolExecutor(2, initializer=_init, initargs=(arg,))
        if use == "submit":
            assert ex.submit(pow, 2, 5).result(timeout=TIMEOUT) == 32
        elif use == "map":
            assert list(ex.map(abs, [-1, -2], timeout=TIMEOUT)) == [1, 2]
        ex.shutdown(wait=True)
        del ex, arg
        assert arg_ref() is None, "the pool's initargs outlived it"
        gc.collect()
        # What a thread pool is made of (other tests' leftovers, collected
        # meanwhile, are not this test's business).
        ours = [obj for obj in gc.garbage if type(obj).__module__ in THREAD_POOL_MODULES]
        assert ours == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_dropped_thread_pool_lets_its_workers_exit(cf):
    ex = cf.ThreadPoolExecutor(2)
    assert ex.submit(abs, -1).result(timeout=TIMEOUT) == 1
    threads = list(ex._threads)
    del ex
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()


# -- as_completed() -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["own", "stdlib"])
def test_as_completed_drops_each_future_it_yields(cf, kind):
    # CPython's test_as_completed.test_free_reference_yielded_future: the
    # iterator holds no reference to a future it has handed out, also for
    # the stdlib's futures passed to fastfutures' as_completed().
    import concurrent.futures
    make = cf.Future if kind == "own" else concurrent.futures.Future
    pending = [make() for _ in range(4)]
    done = make()
    done.set_result(42)
    pending.append(done)
    del done
    pending[0].set_result("first")
    for future in cf.as_completed(pending, timeout=TIMEOUT):
        pending.remove(future)
        ref = weakref.ref(future)
        del future
        gc.collect()
        assert ref() is None
        unfinished = [f for f in pending if not f.done()]
        if unfinished:
            unfinished[0].set_result("next")
        del unfinished


def test_process_map_returns_a_generator(cf):
    with cf.ProcessPoolExecutor(2) as ex:
        results = ex.map(abs, [-1, -2, -3], chunksize=2)
        assert inspect.isgenerator(results)
        assert list(results) == [1, 2, 3]


# -- a broken process pool ------------------------------------------------------

def _exit_abruptly():
    os._exit(3)


def _wait_for_file(path):
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.002)
    return 0


# Before 3.14 the stdlib fails every future with one shared exception.
own_exception_differs = (pytest.mark.stdlib_differs if sys.version_info < (3, 14)
                         else (lambda test: test))


# 3.15: forking with other threads running (pytest's faulthandler watchdog)
# raises the warning, which the suite turns into an error.
FORK_WITH_THREADS = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")


@own_exception_differs
@FORK_WITH_THREADS
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_broken_process_pool_fails_each_future_with_its_own_exception(cf, method):
    # gh-101267 (CPython's test_broken_process_pool_traceback, 3.14): a
    # shared exception would gather one traceback frame per result() call.
    ctx = multiprocessing.get_context(method)
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        futures = [ex.submit(_exit_abruptly)] + [ex.submit(abs, -1) for _ in range(2)]
        errors = []
        for future in futures:
            try:
                future.result(timeout=TIMEOUT)
            except cf.process.BrokenProcessPool as exc:
                errors.append(exc)
        assert len(errors) == 3
        assert len({id(e) for e in errors}) == 3
        for exc in errors:
            frames = [f for f in traceback.extract_tb(exc.__traceback__)
                      if f.filename == __file__]
            assert len(frames) == 1


def _killed_by_sigkill():
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.stdlib_differs
@pytest.mark.parametrize("target, exitcode", [(_exit_abruptly, 3),
                                              (_killed_by_sigkill, -signal.SIGKILL)])
def test_broken_pool_says_which_process_ended_and_how(cf, target, exitcode):
    # Each BrokenProcessPool's __cause__ is a _RemoteTraceback naming the
    # process and its exit code, as 3.15's stdlib gives it -- when it has the
    # code: it reads it as soon as the worker's sentinel fires, before the
    # worker is reaped, and then (usually, on 3.15.2 here) finds none.
    # Before 3.15 the stdlib gives no cause.
    assert cf.process._RemoteTraceback is concurrent.futures.process._RemoteTraceback
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        pid = ex.submit(os.getpid).result(timeout=TIMEOUT)
        futures = [ex.submit(target), ex.submit(abs, -1)]
        for future in futures:
            with pytest.raises(cf.process.BrokenProcessPool) as info:
                future.result(timeout=TIMEOUT)
            cause = info.value.__cause__
            assert type(cause) is concurrent.futures.process._RemoteTraceback
            assert f"Process {pid} terminated abruptly with exit code {exitcode}" in str(cause)


@pytest.mark.skipif(
    not hasattr(concurrent.futures.process._ExecutorManagerThread, "_replace_dead_worker"),
    reason="the running stdlib replaces the retiring worker and runs the work (gh-152967 "
           "is not in it)")
def test_dropped_pool_fails_work_stranded_by_a_retiring_worker(cf, tmp_path):
    # gh-152967: the executor is garbage collected while its only worker
    # retires (max_tasks_per_child) with work queued: that work fails.
    gate = str(tmp_path / "gate")
    ex = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                max_tasks_per_child=1)
    futures = [ex.submit(_wait_for_file, gate)] + [ex.submit(abs, -i) for i in (1, 2)]
    manager_thread = ex._executor_manager_thread
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None
    open(gate, "w").close()
    assert futures[0].result(timeout=TIMEOUT) == 0
    for future in futures[1:]:
        with pytest.raises(cf.process.BrokenProcessPool, match="garbage collected"):
            future.result(timeout=TIMEOUT)
    manager_thread.join(TIMEOUT)
