"""fastfutures' own process-pool controls, which the stdlib does not have:
per-call time limits (``task_timeout=``, ``with_options(timeout=...)``,
``TaskTimeout``), ``cancel_running=True`` and ``on_worker_death="replace"``
(``WorkerDied``).  Each runs with the fork, spawn and forkserver start
methods.  Calls that must not finish wait on a gate file the test never
creates (with their own bound), so no test depends on timing: a time limit
is always far shorter than the call it stops.
"""
import concurrent.futures
import multiprocessing
import os
import signal
import sys
import time

import pytest

from conftest import TIMEOUT, _load_fastfutures, wait_until
from pool_calls import PoolFactory, exit_now, get_pid, mark, square, wait_for_file

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX start methods"),
]

METHODS = ["fork", "spawn", "forkserver"]


# -- functions run in the workers ------------------------------------------------


def mark_and_wait(directory, name, gate):
    mark(directory, name)
    return wait_for_file(gate)


def takes_timeout(*, timeout):
    return timeout


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(TIMEOUT)


def failing_initializer():
    raise RuntimeError("initializer failed")


# -- fixtures ----------------------------------------------------------------------

@pytest.fixture
def ff():
    return _load_fastfutures()


@pytest.fixture(params=METHODS)
def make_pool(request, ff):
    factory = PoolFactory(ff, request.param)
    yield factory
    factory.close()


def never(tmp_path):
    """A gate path the test never creates."""
    return str(tmp_path / "never")


# -- arguments ---------------------------------------------------------------------

@pytest.mark.parametrize("bad, error", [("1", TypeError), (True, TypeError), (0, ValueError),
                                        (-1.5, ValueError)])
def test_time_limit_validation(ff, bad, error):
    with pytest.raises(error, match="task_timeout"):
        ff.ProcessPoolExecutor(1, task_timeout=bad)
    pool = ff.ProcessPoolExecutor(1)
    try:
        with pytest.raises(error, match="timeout"):
            pool.with_options(timeout=bad)
        with pytest.raises(TypeError):
            pool.with_options(0.5)          # keyword only
    finally:
        pool.shutdown()


def test_on_worker_death_validation(ff):
    with pytest.raises(ValueError, match="on_worker_death"):
        ff.ProcessPoolExecutor(1, on_worker_death="ignore")


def test_exception_classes(ff):
    assert issubclass(ff.process.TaskTimeout, concurrent.futures.TimeoutError)
    assert issubclass(ff.process.WorkerDied, concurrent.futures.process.BrokenProcessPool)


# -- time limits -----------------------------------------------------------------

def test_task_timeout_fails_only_the_overrunning_call(make_pool, ff, tmp_path):
    pool = make_pool(1, task_timeout=0.3)
    first_pid = pool.submit(get_pid).result(timeout=TIMEOUT)
    overrun = pool.submit(wait_for_file, never(tmp_path))
    queued = [pool.submit(mark, str(tmp_path), i) for i in range(10)]
    with pytest.raises(ff.process.TaskTimeout) as info:
        overrun.result(timeout=TIMEOUT)
    assert isinstance(info.value, concurrent.futures.TimeoutError)
    assert "wait_for_file" in str(info.value) and "0.3 s" in str(info.value)
    # The calls behind it ran on the replacement, once each.
    assert [f.result(timeout=TIMEOUT) for f in queued] == list(range(10))
    assert sorted(os.listdir(tmp_path)) == [str(i) for i in sorted(range(10), key=str)]
    assert pool.submit(get_pid).result(timeout=TIMEOUT) != first_pid
    assert len(pool._processes) == 1


def test_with_options_limits_only_its_calls(make_pool, ff, tmp_path):
    pool = make_pool(2)
    gate = str(tmp_path / "gate")
    limited = pool.with_options(timeout=0.2)
    unlimited_call = pool.submit(wait_for_file, gate)
    overrun = limited.submit(wait_for_file, never(tmp_path))
    with pytest.raises(ff.process.TaskTimeout):
        overrun.result(timeout=TIMEOUT)
    assert not unlimited_call.done()
    open(gate, "w").close()
    assert unlimited_call.result(timeout=TIMEOUT) == "opened"
    # The called function's own timeout= keyword is its own.
    assert limited.submit(takes_timeout, timeout=99).result(timeout=TIMEOUT) == 99
    assert list(limited.map(square, range(10), chunksize=3)) == [i * i for i in range(10)]
    results = limited.map(wait_for_file, [never(tmp_path)])
    with pytest.raises(ff.process.TaskTimeout):
        list(results)


def test_with_options_overrides_task_timeout(make_pool, tmp_path):
    pool = make_pool(1, task_timeout=0.2)
    gate = str(tmp_path / "gate")
    call = pool.with_options(timeout=None).submit(wait_for_file, gate)
    assert wait_until(call.running)
    # Far past the pool's limit, the call still runs.
    wait_until(lambda: False, timeout=0.5)
    assert not call.done()
    open(gate, "w").close()
    assert call.result(timeout=TIMEOUT) == "opened"


# -- cancel_running --------------------------------------------------------------------

def test_cancel_running_kills_and_replaces_the_worker(make_pool, ff, tmp_path):
    pool = make_pool(1, cancel_running=True)
    first_pid = pool.submit(get_pid).result(timeout=TIMEOUT)
    running = pool.submit(mark_and_wait, str(tmp_path), "running", never(tmp_path))
    queued = [pool.submit(mark, str(tmp_path), i) for i in range(5)]
    assert wait_until(running.running)
    assert running.cancel()
    assert running.cancelled() and running.done()
    done, not_done = ff.wait([running], timeout=TIMEOUT)
    assert running in done
    with pytest.raises(concurrent.futures.CancelledError):
        running.result(timeout=0)
    assert [f.result(timeout=TIMEOUT) for f in queued] == list(range(5))
    assert pool.submit(get_pid).result(timeout=TIMEOUT) != first_pid


def test_shutdown_cancel_futures_lets_running_calls_finish(make_pool, tmp_path):
    """cancel_running applies to cancel(), not to shutdown(cancel_futures=
    True), which cancels only what has not started (as in the stdlib)."""
    pool = make_pool(1, cancel_running=True)
    gate = str(tmp_path / "gate")
    running = pool.submit(wait_for_file, gate)
    assert wait_until(running.running)
    queued = [pool.submit(square, i) for i in range(5)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert wait_until(lambda: all(f.cancelled() for f in queued))
    assert running.running() and not running.cancelled()
    open(gate, "w").close()
    pool.shutdown(wait=True)
    assert running.result(timeout=0) == "opened"


def test_cancel_of_running_call_fails_without_cancel_running(make_pool, tmp_path):
    pool = make_pool(1)
    gate = str(tmp_path / "gate")
    running = pool.submit(wait_for_file, gate)
    assert wait_until(running.running)
    assert not running.cancel()
    open(gate, "w").close()
    assert running.result(timeout=TIMEOUT) == "opened"


# -- on_worker_death="replace" ---------------------------------------------------------

@pytest.mark.parametrize("how", ["os_exit", "sigkill"])
def test_replace_fails_only_the_running_call(make_pool, ff, tmp_path, how):
    pool = make_pool(1, on_worker_death="replace")
    first_pid = pool.submit(get_pid).result(timeout=TIMEOUT)
    victim = pool.submit(exit_now, 3) if how == "os_exit" else pool.submit(kill_self)
    queued = [pool.submit(mark, str(tmp_path), i) for i in range(10)]
    with pytest.raises(ff.process.WorkerDied) as info:
        victim.result(timeout=TIMEOUT)
    assert isinstance(info.value, concurrent.futures.process.BrokenProcessPool)
    assert info.value.pid == first_pid
    if how == "os_exit":
        assert info.value.exitcode == 3 and info.value.signal is None
    else:
        assert info.value.signal == signal.SIGKILL
    assert [f.result(timeout=TIMEOUT) for f in queued] == list(range(10))
    assert pool.submit(square, 4).result(timeout=TIMEOUT) == 16


def test_replace_keeps_the_initializer_failure_behaviour(make_pool, ff):
    pool = make_pool(1, on_worker_death="replace", initializer=failing_initializer)
    with pytest.raises(concurrent.futures.process.BrokenProcessPool) as info:
        pool.submit(square, 2).result(timeout=TIMEOUT)
    assert not isinstance(info.value, ff.process.WorkerDied)
    with pytest.raises(concurrent.futures.process.BrokenProcessPool):
        pool.submit(square, 2)


def test_replace_keeps_max_tasks_per_child(ff, tmp_path):
    pool = ff.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                  max_tasks_per_child=2, on_worker_death="replace")
    try:
        pids = [pool.submit(get_pid).result(timeout=TIMEOUT) for _ in range(6)]
        assert len(set(pids)) == 3
    finally:
        pool.shutdown(wait=True)


def test_default_breaks_the_pool(make_pool):
    pool = make_pool(1)
    victim = pool.submit(exit_now, 3)
    with pytest.raises(concurrent.futures.process.BrokenProcessPool) as info:
        victim.result(timeout=TIMEOUT)
    assert type(info.value) is concurrent.futures.process.BrokenProcessPool
    with pytest.raises(concurrent.futures.process.BrokenProcessPool):
        pool.submit(square, 2)


# -- killing while the result thread was busy (found in review) -----------------
# A done-callback holds the result thread while the workers go on, so that
# replies pile up before a kill is decided.

def log_run(directory, name, gate=None):
    """Appends ``name`` to directory/runs, then waits for ``gate``."""
    with open(os.path.join(directory, "runs"), "a") as runs:
        runs.write(f"{name}\n")
    open(os.path.join(directory, f"{name}.started"), "w").close()
    if gate is not None:
        wait_for_file(os.path.join(directory, gate))
    return name


def sleep_then_return(name, seconds):
    time.sleep(seconds)
    return name


class _Unloadable:
    def __reduce__(self):
        return (_refuse_to_load, ())


def _refuse_to_load():
    raise ValueError("this reply cannot be loaded")


def unloadable_after(directory, gate):
    wait_for_file(os.path.join(directory, gate))
    return _Unloadable()


def _hold_result_thread(future):
    """Returns (entered, release): the result thread blocks in ``future``'s
    done-callback until release is set."""
    import threading
    entered, release = threading.Event(), threading.Event()

    def block(_):
        entered.set()
        release.wait(TIMEOUT)
    future.add_done_callback(block)
    return entered, release


def _fork_pool(ff, **options):
    return ff.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"), **options)


def test_kill_not_needed_keeps_the_queued_calls_running_once(ff, tmp_path):
    """The cancelled call ended, and the worker took the next, before the
    kill was decided: no kill, and the calls behind it run once each."""
    d = str(tmp_path)
    pool = _fork_pool(ff, cancel_running=True)
    try:
        x = pool.submit(log_run, d, "X", "gate_x")
        entered, release = _hold_result_thread(x)
        a = pool.submit(log_run, d, "A", "gate_a")
        b = pool.submit(log_run, d, "B", "gate_b")
        rest = [pool.submit(log_run, d, name) for name in "CDEF"]
        open(os.path.join(d, "gate_x"), "w").close()
        assert entered.wait(TIMEOUT)
        assert wait_until(lambda: os.path.exists(os.path.join(d, "A.started")))
        assert a.cancel()                       # running: its worker is to be killed
        open(os.path.join(d, "gate_a"), "w").close()
        assert wait_until(lambda: os.path.exists(os.path.join(d, "B.started")))
        release.set()                           # ... but A has ended and B runs
        time.sleep(0.2)                         # (the kill is decided meanwhile)
        open(os.path.join(d, "gate_b"), "w").close()
        assert b.result(timeout=TIMEOUT) == "B"
        assert [f.result(timeout=TIMEOUT) for f in rest] == list("CDEF")
        assert a.cancelled()
    finally:
        pool.shutdown(wait=True)
    with open(os.path.join(d, "runs")) as runs:
        assert runs.read().split() == list("XABCDEF")


def test_two_late_calls_answered_before_the_kill(ff, tmp_path):
    """Both timed calls overran and were answered while the result thread
    was busy: they complete with their results, the pool goes on."""
    d = str(tmp_path)
    pool = _fork_pool(ff)
    try:
        x = pool.submit(wait_for_file, os.path.join(d, "gate_x"))
        entered, release = _hold_result_thread(x)
        timed = pool.with_options(timeout=0.05)
        late = [timed.submit(sleep_then_return, name, 0.2) for name in "AB"]
        open(os.path.join(d, "gate_x"), "w").close()
        assert entered.wait(TIMEOUT)
        time.sleep(0.6)                         # both ran past their limit and ended
        release.set()
        assert [f.result(timeout=TIMEOUT) for f in late] == ["A", "B"]
        assert pool.submit(square, 3).result(timeout=TIMEOUT) == 9
    finally:
        pool.shutdown(wait=True)


def test_unreadable_reply_read_before_a_kill_breaks_the_pool(ff, tmp_path):
    """A reply that cannot be loaded, read while a time limit is enforced,
    breaks the pool at once (not when the overrunning call ends)."""
    d = str(tmp_path)
    pool = _fork_pool(ff)
    try:
        x = pool.submit(wait_for_file, os.path.join(d, "gate_x"))
        entered, release = _hold_result_thread(x)
        bad = pool.submit(unloadable_after, d, "gate_b")
        overrun = pool.with_options(timeout=0.1).submit(
            log_run, d, "C", "gate_never")
        open(os.path.join(d, "gate_x"), "w").close()
        assert entered.wait(TIMEOUT)
        open(os.path.join(d, "gate_b"), "w").close()
        assert wait_until(lambda: os.path.exists(os.path.join(d, "C.started")))
        time.sleep(0.3)                         # C is past its limit
        release.set()
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            bad.result(timeout=TIMEOUT / 2)     # C waits for its gate up to TIMEOUT
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            overrun.result(timeout=TIMEOUT)
    finally:
        pool.shutdown(wait=True)
