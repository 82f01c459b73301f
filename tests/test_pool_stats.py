"""Seeing what a thread pool does: the stdlib's de-facto idioms
(``_work_queue.qsize()``/``empty()``) side by side with the stdlib, and
fastfutures' ``stats()`` snapshot (process pool: test_process_stats.py)."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import TIMEOUT, check_adds_up, join_all, start_thread, wait_until


def test_work_queue_qsize_and_empty(cf):
    gate = threading.Event()
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        first = ex.submit(gate.wait, TIMEOUT)
        assert wait_until(first.running)
        rest = [ex.submit(abs, -i) for i in range(3)]
        # Public code reads these to watch a pool's backlog.
        assert ex._work_queue.qsize() == 3
        assert not ex._work_queue.empty()
        gate.set()
        assert [f.result(TIMEOUT) for f in rest] == [0, 1, 2]
        assert ex._work_queue.qsize() == 0
        assert ex._work_queue.empty()
    assert ex._max_workers == 1
    assert isinstance(ex._threads, set)


def test_qsize_counts_a_cancelled_call_until_a_worker_drops_it(cf):
    gate = threading.Event()
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        first = ex.submit(gate.wait, TIMEOUT)
        assert wait_until(first.running)
        doomed = ex.submit(abs, 1)
        assert doomed.cancel()
        assert ex._work_queue.qsize() == 1      # as in the stdlib's queue
        gate.set()
        assert wait_until(ex._work_queue.empty)


def one_worker_held(cf):
    """A one-worker pool, its worker held by a call until the gate is set."""
    gate = threading.Event()
    ex = cf.ThreadPoolExecutor(max_workers=1)
    blocker = ex.submit(gate.wait, TIMEOUT)
    assert wait_until(blocker.running)
    return ex, gate, blocker


def check_thread_stats(s):
    check_adds_up(s)
    assert s.busy_workers <= s.running or s.running >= s.workers


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_stats_counts_each_outcome(cf):
    ex, gate, blocker = one_worker_held(cf)
    try:
        ok = ex.submit(abs, -1)
        bad = ex.submit(divmod, 1, 0)
        cancelled = ex.submit(abs, 2)
        assert cancelled.cancel()
        s = ex.stats()
        check_thread_stats(s)
        assert (s.submitted, s.queued, s.running) == (4, 3, 1)
        assert (s.workers, s.busy_workers, s.idle_workers, s.max_workers) == (1, 1, 0, 1)
        assert s.max_queue_size is None
        gate.set()
        assert ok.result(TIMEOUT) == 1
        with pytest.raises(ZeroDivisionError):
            bad.result(TIMEOUT)
        assert blocker.result(TIMEOUT) is True
        # Counted before the future's waiters are woken: no wait needed.
        s = ex.stats()
        check_thread_stats(s)
        assert (s.queued, s.running, s.completed, s.failed, s.cancelled) == (0, 0, 2, 1, 1)
        assert (s.timed_out, s.worker_deaths, s.rejected, s.ran_in_caller) == (0, 0, 0, 0)
        assert s.run_time.count == 3            # the cancelled one never ran
        assert s.queue_wait.count == 4            # every call a worker took
    finally:
        gate.set()
        ex.shutdown()


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_stats_count_each_map_call(cf):
    ex, gate, blocker = one_worker_held(cf)
    try:
        it = ex.map(lambda x: 1 // x, [1, 0, 2, 3])
        s = ex.stats()
        check_thread_stats(s)
        assert (s.submitted, s.queued, s.running) == (5, 4, 1)
        gate.set()
        assert next(it) == 1
        with pytest.raises(ZeroDivisionError):
            next(it)                # closes the map: calls 2 and 3 cancelled if not taken
        assert wait_until(lambda: ex.stats().queued == 0)
        s = ex.stats()
        check_thread_stats(s)
        assert s.failed == 1 and s.completed + s.cancelled == 4
        assert s.run_time.count == s.completed + s.failed
        assert s.queue_wait.count == 5
    finally:
        gate.set()
        ex.shutdown()


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_stats_distributions(cf):
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(abs, range(200)))
        s = ex.stats()
    for d in (s.queue_wait, s.run_time):
        assert d.count == 200
        assert 0 <= d.p50 <= d.p90 <= d.p99 <= d.max
        assert d.sum >= d.max > 0
        assert d.mean == pytest.approx(d.sum / 200)
        bounds = [b for b, _ in d.buckets]
        counts = [c for _, c in d.buckets]
        assert bounds == sorted(bounds) and bounds[-1] == float("inf")
        assert counts == sorted(counts) and counts[-1] == 200


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_run_time_leaves_out_the_idle_time_before_a_call(cf):
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        started = time.perf_counter()
        ex.submit(abs, 1).result(TIMEOUT)
        idle_from = time.perf_counter()
        time.sleep(0.5)             # the worker waits, idle
        idle = time.perf_counter() - idle_from
        ex.submit(abs, 2).result(TIMEOUT)
        busy = time.perf_counter() - started - idle
        s = ex.stats()
    assert s.run_time.count == 2
    # Both calls ran outside the idle time (no bound on the machine's speed).
    assert s.run_time.sum <= busy * 1.05


CLOCK_CHECK = """
import json, time, fastfutures
from fastfutures._threadpool import stats_clock
with fastfutures.ThreadPoolExecutor(max_workers=1) as ex:
    started = time.perf_counter()
    for f in [ex.submit(time.sleep, 0.05) for _ in range(4)]:
        f.result()
    elapsed = time.perf_counter() - started
    s = ex.stats()
print(json.dumps([stats_clock()[0], elapsed, s.run_time.mean, s.run_time.sum,
                  s.queue_wait.max]))
"""


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
@pytest.mark.parametrize("clock", ["default", "monotonic"])
def test_stats_durations_are_seconds_with_either_clock(cf, clock):
    # The thread pool's durations come from the CPU counter where the OS
    # trusts it, else CLOCK_MONOTONIC; both must give seconds.  No bound on
    # the machine's speed: a sleep lasts at least its time, and what the
    # stats measured fits in what the program measured around it (5% for
    # the counter's calibration); a misread tick rate is off by 2x or 1e9x.
    if cf.__name__ != "fastfutures":
        pytest.skip("fastfutures' clock")
    env = dict(os.environ)
    env.pop("FASTFUTURES_STATS_CLOCK", None)
    if clock == "monotonic":
        env["FASTFUTURES_STATS_CLOCK"] = "monotonic"
    out = subprocess.run([sys.executable, "-c", CLOCK_CHECK], env=env, capture_output=True,
                         text=True, timeout=TIMEOUT, check=True).stdout
    source, elapsed, run_mean, run_sum, waited_max = json.loads(out)
    if clock == "monotonic":
        assert source == "monotonic"
    assert 0.045 <= run_mean and run_sum <= elapsed * 1.05
    assert 0.1 <= waited_max <= elapsed * 1.05    # the last call queued behind three sleeps


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_stats_add_up_under_many_submitting_threads(cf):
    ex = cf.ThreadPoolExecutor(max_workers=4)
    stop = threading.Event()
    snapshots = []

    def watch():
        while not stop.is_set():
            snapshots.append(ex.stats())

    def produce(n):
        futures = [ex.submit(divmod, i, i % 3) for i in range(n)]
        for f in futures[::7]:
            f.cancel()
        return futures

    results = []
    watcher = start_thread(watch)
    producers = [start_thread(lambda: results.append(produce(500))) for _ in range(8)]
    join_all(producers)
    ex.shutdown()
    stop.set()
    join_all([watcher])
    for s in snapshots:
        check_thread_stats(s)
    final = ex.stats()
    check_thread_stats(final)
    futures = [f for batch in results for f in batch]
    assert final.submitted == 4000 and final.queued == final.running == 0
    assert final.cancelled == sum(f.cancelled() for f in futures)
    assert final.failed == sum(1 for f in futures if not f.cancelled() and f.exception())
    assert final.completed == 4000 - final.cancelled - final.failed
    assert len(snapshots) > 0


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_stats_after_shutdown_cancel_futures(cf):
    gate = threading.Event()
    ex = cf.ThreadPoolExecutor(max_workers=1)
    blocker = ex.submit(gate.wait, TIMEOUT)
    assert wait_until(blocker.running)
    queued = [ex.submit(abs, i) for i in range(5)]
    ex.shutdown(wait=False, cancel_futures=True)
    gate.set()
    ex.shutdown()
    s = ex.stats()
    check_thread_stats(s)
    assert (s.completed, s.cancelled) == (1, 5)
    assert all(f.cancelled() for f in queued)
