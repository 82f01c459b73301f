"""Which worker runs a call, and when: a call waits only while every worker is
busy (the stdlib's guarantee, kept although fastfutures hands calls to
workers ahead of time), calls taken back after a kill spread over every
worker, per-call limits are honoured whatever order they were placed in, and
every stop the pool decides is bounded (a worker that ignores SIGTERM is
SIGKILLed after the grace).

No test depends on timing: calls that must run at the same time meet (each
leaves a file and waits for the other's), calls that must not finish wait on
a gate file, each with its own bound, and a bound that runs out is a failure
that says so instead of a hang.  The bounds are generous (LONG): on a loaded
2-core machine a spawned replacement can take seconds to start.
"""
import concurrent.futures
import sys
import time

import pytest

from conftest import TIMEOUT, _load_fastfutures, wait_until
from pool_calls import (PoolFactory, exit_now, ignore_sigterm_and_wait, meet, square,
                        wait_for_file)

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX start methods"),
]

METHODS = ["fork", "spawn", "forkserver"]
IMPLS = ["stdlib", "fastfutures"]
LONG = 4 * TIMEOUT


# -- fixtures ----------------------------------------------------------------------

def _module(impl):
    return concurrent.futures if impl == "stdlib" else _load_fastfutures()


@pytest.fixture(params=[(i, m) for i in IMPLS for m in METHODS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def make_pool(request):
    impl, method = request.param
    factory = PoolFactory(_module(impl), method, 2)
    yield factory
    factory.close()


@pytest.fixture(params=METHODS)
def make_ff_pool(request):
    factory = PoolFactory(_load_fastfutures(), request.param, 2)
    yield factory
    factory.close()


# -- a call waits only while every worker is busy ----------------------------------

@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "warm"])
def test_short_calls_do_not_wait_behind_a_long_one(make_pool, tmp_path, warm):
    pool = make_pool(2)
    if warm:
        assert list(pool.map(square, range(8))) == [x * x for x in range(8)]
    gate = str(tmp_path / "gate")
    long_call = pool.submit(wait_for_file, gate, 2 * LONG)
    shorts = [pool.submit(square, i) for i in range(8)]
    done, not_done = concurrent.futures.wait(shorts, timeout=LONG)
    stuck = not long_call.done()
    open(gate, "w").close()
    assert not not_done, "short calls waited behind the long one"
    assert stuck
    assert [f.result() for f in shorts] == [i * i for i in range(8)]
    assert long_call.result(timeout=TIMEOUT) == "opened"


def test_calls_behind_two_long_ones_run_when_a_worker_frees(make_pool, tmp_path):
    """Three workers, two stuck: the calls behind them all run on the third."""
    pool = make_pool(3)
    assert list(pool.map(square, range(9))) == [x * x for x in range(9)]
    gate = str(tmp_path / "gate")
    longs = [pool.submit(wait_for_file, gate, 2 * LONG) for _ in range(2)]
    shorts = [pool.submit(square, i) for i in range(20)]
    done, not_done = concurrent.futures.wait(shorts, timeout=LONG)
    stuck = not any(f.done() for f in longs)
    open(gate, "w").close()
    assert not not_done and stuck
    assert [f.result() for f in longs] == ["opened"] * 2


def test_later_calls_meet_while_an_earlier_one_runs(make_pool, tmp_path):
    """Two workers free while a third runs a long call: two calls submitted
    after it run at the same time (neither is held behind the long one)."""
    pool = make_pool(3)
    assert list(pool.map(square, range(9))) == [x * x for x in range(9)]
    gate = str(tmp_path / "gate")
    long_call = pool.submit(wait_for_file, gate, 2 * LONG)
    pair = [pool.submit(meet, str(tmp_path), "a", "b", LONG),
            pool.submit(meet, str(tmp_path), "b", "a", LONG)]
    results = [f.result(timeout=2 * LONG) for f in pair]
    open(gate, "w").close()
    assert results == ["met", "met"]
    assert long_call.result(timeout=TIMEOUT) == "opened"


@pytest.mark.stdlib_differs(reason="cancel_running is fastfutures' own")
def test_calls_taken_back_after_a_kill_spread_over_every_worker(make_ff_pool, tmp_path):
    pool = make_ff_pool(2, cancel_running=True)
    assert list(pool.map(square, range(8))) == [x * x for x in range(8)]
    never = str(tmp_path / "never")
    running = [pool.submit(wait_for_file, never) for _ in range(2)]
    pair = [pool.submit(meet, str(tmp_path), "a", "b", LONG),
            pool.submit(meet, str(tmp_path), "b", "a", LONG)]
    assert wait_until(lambda: all(f.running() for f in running))
    for f in running:
        assert f.cancel()
    # Both workers are replaced; the two calls must run side by side.
    assert [f.result(timeout=2 * LONG) for f in pair] == ["met", "met"]
    assert all(f.cancelled() for f in running)


@pytest.mark.stdlib_differs(reason="task_timeout is fastfutures' own")
def test_calls_taken_back_after_a_time_limit_spread_over_every_worker(make_ff_pool, tmp_path):
    pool = make_ff_pool(2)
    assert list(pool.map(square, range(8))) == [x * x for x in range(8)]
    never = str(tmp_path / "never")
    limited = pool.with_options(timeout=0.3)
    timed = [limited.submit(wait_for_file, never, 60) for _ in range(2)]
    pair = [pool.submit(meet, str(tmp_path), "a", "b", LONG),
            pool.submit(meet, str(tmp_path), "b", "a", LONG)]
    for f in timed:
        with pytest.raises(_load_fastfutures().process.TaskTimeout):
            f.result(timeout=LONG)
    assert [f.result(timeout=2 * LONG) for f in pair] == ["met", "met"]


# -- per-call limits are exact ------------------------------------------------------

@pytest.mark.stdlib_differs(reason="with_options(timeout=) is fastfutures' own")
def test_a_shorter_limit_placed_while_a_longer_one_runs_is_honoured(make_ff_pool, tmp_path):
    ff = _load_fastfutures()
    pool = make_ff_pool(2)
    assert list(pool.map(square, range(4))) == [0, 1, 4, 9]
    gate = str(tmp_path / "gate")
    never = str(tmp_path / "never")
    patient = pool.with_options(timeout=100).submit(wait_for_file, gate, 60)
    assert wait_until(patient.running)
    # Were the 100 s deadline the only one the result thread knew, these
    # would run their 60 s and result(timeout=) would raise TimeoutError.
    short = pool.with_options(timeout=0.3).submit(wait_for_file, never, 60)
    with pytest.raises(ff.process.TaskTimeout):
        short.result(timeout=TIMEOUT)
    assert not patient.done()
    open(gate, "w").close()
    assert patient.result(timeout=TIMEOUT) == "opened"


@pytest.mark.stdlib_differs(reason="with_options(timeout=) is fastfutures' own")
def test_many_mixed_limits_are_each_honoured(make_ff_pool, tmp_path):
    ff = _load_fastfutures()
    pool = make_ff_pool(3)
    assert list(pool.map(square, range(6))) == [x * x for x in range(6)]
    gate = str(tmp_path / "gate")
    never = str(tmp_path / "never")
    patient = pool.with_options(timeout=50).submit(wait_for_file, gate, 60)
    limited = []
    for limit in (5.0, 0.4, 2.0, 0.2, 1.0, 0.3):
        limited.append(pool.with_options(timeout=limit).submit(wait_for_file, never, 60))
        time.sleep(0.05)        # placed while others run (no assertion on time)
    fine = [pool.with_options(timeout=30).submit(square, i) for i in range(6)]
    for f in limited:
        with pytest.raises(ff.process.TaskTimeout):
            f.result(timeout=3 * TIMEOUT)
    assert [f.result(timeout=TIMEOUT) for f in fine] == [i * i for i in range(6)]
    assert not patient.done()
    open(gate, "w").close()
    assert patient.result(timeout=TIMEOUT) == "opened"


# -- every stop the pool decides is bounded ------------------------------------------

def _processes_end(processes):
    return wait_until(lambda: not any(p.is_alive() for p in processes), timeout=2 * TIMEOUT)


@pytest.mark.stdlib_differs(reason="the stdlib's terminate_workers() (3.14) leaves a worker "
                                   "that ignores SIGTERM running; fastfutures SIGKILLs it "
                                   "after the grace")
def test_terminate_workers_kills_a_worker_that_ignores_sigterm(make_ff_pool, tmp_path):
    pool = make_ff_pool(2)
    never = str(tmp_path / "never")
    calls = [pool.submit(ignore_sigterm_and_wait, never, 60) for _ in range(2)]
    assert wait_until(lambda: all(f.running() for f in calls))
    processes = list(pool._processes.values())
    pool.terminate_workers()
    assert _processes_end(processes)
    for f in calls:
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            f.result(timeout=TIMEOUT)


@pytest.mark.stdlib_differs(reason="the stdlib joins a SIGTERMed worker without a limit "
                                   "when its pool breaks")
def test_a_broken_pool_kills_a_worker_that_ignores_sigterm(make_ff_pool, tmp_path):
    pool = make_ff_pool(2)
    never = str(tmp_path / "never")
    stubborn = pool.submit(ignore_sigterm_and_wait, never, 60)
    assert wait_until(stubborn.running)
    processes = list(pool._processes.values())
    pool.submit(exit_now, 3)
    with pytest.raises(concurrent.futures.process.BrokenProcessPool):
        stubborn.result(timeout=2 * TIMEOUT)
    assert _processes_end(processes)
    pool.shutdown(wait=True)


@pytest.mark.stdlib_differs(reason="task_timeout is fastfutures' own")
def test_a_timed_out_call_that_ignores_sigterm_is_killed(make_ff_pool, tmp_path):
    ff = _load_fastfutures()
    pool = make_ff_pool(1, task_timeout=0.2)
    never = str(tmp_path / "never")
    f = pool.submit(ignore_sigterm_and_wait, never, 60)
    with pytest.raises(ff.process.TaskTimeout):
        f.result(timeout=TIMEOUT)
    assert pool.submit(square, 7).result(timeout=TIMEOUT) == 49
