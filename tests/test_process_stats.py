"""Seeing and bounding a process pool: the stdlib's introspection idioms
(``_pending_work_items``, ``_queue_count``) side by side with the stdlib, and
fastfutures' stats(), max_queue_size and on_queue_full -- with the fork,
spawn and forkserver start methods.  Calls that must wait do so on a gate
file (with their own bound), so nothing depends on timing."""
import concurrent.futures
import os
import sys
import threading

import pytest

from conftest import TIMEOUT, check_adds_up, join_all, start_thread, wait_until
from pool_calls import PoolFactory, mark, wait_for_file

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX start methods"),
]

METHODS = ["fork", "spawn", "forkserver"]


def kill_self():
    os._exit(3)


@pytest.fixture(params=METHODS)
def method(request):
    return request.param


@pytest.fixture
def make_pool(cf, method):
    factory = PoolFactory(cf, method)
    yield factory
    factory.close()


def test_pending_work_items_and_queue_count(cf, make_pool, tmp_path):
    gate = str(tmp_path / "gate")
    pool = make_pool(1)
    assert pool._queue_count == 0 and len(pool._pending_work_items) == 0
    first = pool.submit(wait_for_file, gate)
    rest = [pool.submit(mark, str(tmp_path), i) for i in range(3)]
    items = pool._pending_work_items
    # Scripts print "about N tasks remain"; services refuse work when full.
    assert len(items) == 4 and pool._queue_count == 4
    assert sorted(items) == [0, 1, 2, 3]
    item = items[3]
    assert item.future is rest[2]
    assert (item.fn, item.args, item.kwargs) == (mark, (str(tmp_path), 2), {})
    assert items[0].future is first
    open(gate, "x").close()
    assert first.result(TIMEOUT) == "opened"
    assert [f.result(TIMEOUT) for f in rest] == [0, 1, 2]
    assert wait_until(lambda: len(pool._pending_work_items) == 0)
    assert pool._queue_count == 4
    with pytest.raises(KeyError):
        pool._pending_work_items[0]


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_stats_counts_each_outcome(cf, make_pool, tmp_path):
    gate = str(tmp_path / "gate")
    pool = make_pool(1, on_worker_death="replace")
    held = pool.submit(wait_for_file, gate)
    ok = pool.submit(mark, str(tmp_path), "ok")
    bad = pool.submit(mark, str(tmp_path / "missing"), "bad")
    queued = [pool.submit(mark, str(tmp_path), i) for i in range(20)]
    cancelled = [f for f in queued if f.cancel()]
    assert wait_until(lambda: pool.stats().running == 1)
    s = pool.stats()
    check_adds_up(s)
    assert (s.submitted, s.running, s.workers) == (23, 1, 1)
    open(gate, "x").close()
    assert ok.result(TIMEOUT) == "ok"
    with pytest.raises(FileNotFoundError):
        bad.result(TIMEOUT)
    concurrent.futures.wait(queued, TIMEOUT)
    died = pool.submit(kill_self)
    with pytest.raises(cf.process.WorkerDied):
        died.result(TIMEOUT)
    timed = pool.with_options(timeout=0.2).submit(wait_for_file, str(tmp_path / "never"))
    with pytest.raises(cf.process.TaskTimeout):
        timed.result(TIMEOUT)
    assert pool.submit(mark, str(tmp_path), "after").result(TIMEOUT) == "after"
    s = pool.stats()
    check_adds_up(s)
    assert (s.queued, s.running, s.submitted) == (0, 0, 26)
    assert s.cancelled == len(cancelled)
    assert (s.timed_out, s.worker_deaths) == (1, 1)
    assert s.failed == 3                                # bad, died, timed
    assert s.completed == 26 - 3 - len(cancelled)
    assert s.workers_replaced == 2
    assert s.run_time.count == s.queue_wait.count == s.completed + 1   # + bad
    assert s.run_time.max > 0


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_stats_add_up_under_many_submitting_threads(cf, make_pool, tmp_path):
    pool = make_pool(2)
    stop = threading.Event()
    snapshots = []

    def watch():
        while not stop.is_set():
            snapshots.append(pool.stats())

    all_futures = []

    def produce(k):
        futures = [pool.submit(divmod, i, i % 3) for i in range(200)]
        assert list(pool.map(abs, range(-50, 50), chunksize=10)) == [abs(i) for i in range(-50, 50)]
        for f in futures[::5]:
            f.cancel()
        concurrent.futures.wait(futures, TIMEOUT)
        all_futures.extend(futures)

    watcher = start_thread(watch)
    join_all([start_thread(produce, k) for k in range(4)], timeout=60)
    stop.set()
    join_all([watcher])
    for s in snapshots:
        check_adds_up(s)
    final = pool.stats()
    check_adds_up(final)
    assert final.submitted == 4 * (200 + 10) and final.queued == final.running == 0
    # cancel() succeeds exactly for the calls that never ran: the counters
    # and the futures agree.
    cancelled = sum(f.cancelled() for f in all_futures)
    assert final.cancelled == cancelled
    assert final.failed == sum(1 for f in all_futures if not f.cancelled() and f.exception())
    assert len(snapshots) > 0


@pytest.mark.parametrize("kwargs, error", [
    ({"max_queue_size": 0}, ValueError),
    ({"max_queue_size": "2"}, TypeError),
    ({"max_queue_size": 2, "on_queue_full": "later"}, ValueError),
    ({"on_queue_full": "raise"}, ValueError),
])
@pytest.mark.stdlib_differs(reason="max_queue_size is fastfutures only")
def test_bad_bounds_fail_at_construction(cf, kwargs, error):
    with pytest.raises(error):
        cf.ProcessPoolExecutor(1, **kwargs)
    pool = cf.ProcessPoolExecutor(1)
    try:
        with pytest.raises(error):
            pool.with_options(**kwargs)
    finally:
        pool.shutdown()


@pytest.mark.stdlib_differs(reason="max_queue_size is fastfutures only")
def test_block_policy_never_exceeds_the_bound(cf, make_pool, tmp_path):
    pool = make_pool(2, max_queue_size=3)
    stop = threading.Event()
    depths = []

    def watch():
        while not stop.is_set():
            depths.append(pool.stats().queued)

    watcher = start_thread(watch)
    results = []

    def produce(k):
        results.extend(f.result(TIMEOUT) for f in
                       [pool.submit(mark, str(tmp_path), f"{k}-{i}") for i in range(15)])

    join_all([start_thread(produce, k) for k in range(4)], timeout=60)
    stop.set()
    join_all([watcher])
    assert sorted(results) == sorted(f"{k}-{i}" for k in range(4) for i in range(15))
    assert len(os.listdir(tmp_path)) == 60              # each ran once
    assert max(depths) <= 3
    assert list(pool.map(abs, range(-40, 0), chunksize=4)) == list(range(40, 0, -1))
    s = pool.stats()
    assert s.rejected == 0 and s.max_queue_size == 3


@pytest.mark.stdlib_differs(reason="max_queue_size is fastfutures only")
def test_raise_caller_runs_and_timeout(cf, make_pool, tmp_path):
    gate = str(tmp_path / "gate")
    pool = make_pool(1, max_queue_size=2, on_queue_full="raise")
    held = pool.submit(wait_for_file, gate)
    assert wait_until(lambda: pool.stats().running == 1)
    queued = [pool.submit(mark, str(tmp_path), i) for i in range(2)]
    with pytest.raises(cf.QueueFull):
        pool.submit(mark, str(tmp_path), "refused")
    here = pool.with_options(max_queue_size=2, on_queue_full="caller_runs").submit(os.getpid)
    assert here.result(0) == os.getpid()
    with pytest.raises(cf.QueueFull):
        pool.with_options(max_queue_size=2, queue_full_timeout=0.05).submit(
            mark, str(tmp_path), "timed")
    s = pool.stats()
    assert (s.rejected, s.ran_in_caller, s.queued) == (2, 1, 2)
    open(gate, "x").close()
    assert held.result(TIMEOUT) == "opened"
    assert [f.result(TIMEOUT) for f in queued] == [0, 1]
    assert sorted(os.listdir(tmp_path)) == ["0", "1", "gate"]    # nothing refused ran


@pytest.mark.stdlib_differs(reason="max_queue_size is fastfutures only")
def test_shutdown_refuses_blocked_submitters_and_callbacks_never_wait(cf, make_pool, tmp_path):
    gate = str(tmp_path / "gate")
    pool = make_pool(1, max_queue_size=1)
    held = pool.submit(wait_for_file, gate)
    assert wait_until(lambda: pool.stats().running == 1)
    pool.submit(mark, str(tmp_path), "queued")
    in_callback = []

    def callback(_):
        try:
            pool.submit(mark, str(tmp_path), "from-callback")
        except cf.QueueFull:
            in_callback.append("QueueFull")
        except RuntimeError:
            in_callback.append("shut down")

    errors = []

    def produce():
        try:
            pool.submit(mark, str(tmp_path), "blocked")
        except RuntimeError as exc:
            errors.append(exc)

    producer = start_thread(produce)
    assert wait_until(pool._bound_lock.locked)
    held.add_done_callback(callback)
    pool.shutdown(wait=False)
    join_all([producer])
    open(gate, "x").close()
    pool.shutdown()
    assert len(errors) == 1 and "shutdown" in str(errors[0])
    assert in_callback in (["QueueFull"], ["shut down"])
    assert sorted(os.listdir(tmp_path)) == ["gate", "queued"]


@pytest.mark.stdlib_differs(reason="max_queue_size is fastfutures only")
def test_blocked_submitter_sees_room_made_by_dropping_cancelled_calls(cf, make_pool, tmp_path):
    gate = str(tmp_path / "gate")
    pool = make_pool(1, max_queue_size=2)
    held = pool.submit(wait_for_file, gate)
    assert wait_until(lambda: pool.stats().running == 1)
    doomed = [pool.submit(mark, str(tmp_path), i) for i in range(2)]
    assert all(f.cancel() for f in doomed)
    results = []
    producer = start_thread(lambda: results.append(
        pool.submit(mark, str(tmp_path), "late").result(TIMEOUT)))
    assert wait_until(pool._bound_lock.locked)
    open(gate, "x").close()
    join_all([producer])
    assert results == ["late"] and held.result(TIMEOUT) == "opened"
    assert sorted(os.listdir(tmp_path)) == ["gate", "late"]
