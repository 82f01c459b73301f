"""DaskExecutor (fastfutures.distributed) against ProcessPoolExecutor.

The behaviour tests take an executor (or a factory of them) and run,
unchanged, on the stdlib's ProcessPoolExecutor -- the reference twin -- and
on a DaskExecutor over a real cluster on loopback (a LocalCluster of two
single-threaded worker processes, shared by the whole module: starting one
costs seconds).  Tests about dask alone (one task per chunk, cancellation
reaching the scheduler, the client and cluster it owns or not, a scheduler
and a worker started as separate processes, a killed worker, a lost
scheduler) follow.

Tasks and tests meet across processes through files in ``tmp_path``: a task
writes a "started" marker, waits for a "release" file, and so on.
"""
import asyncio
import concurrent.futures
import concurrent.futures.process
import gc
import inspect
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (DASK_WORKERS, TIMEOUT, _load_fastfutures, check_adds_up, src_path_of,
                      wait_until)

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install \"fastfutures[dask]\")")

from fastfutures.distributed import BrokenDaskCluster, DaskExecutor  # noqa: E402

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process control"),
    # Torn down last: every process the module starts is gone by then.
    pytest.mark.usefixtures("no_processes_left"),
    # 3.12+: fork() with dask's threads alive warns; the pool's workers only
    # run the pool's loop.
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
]

WORKERS = DASK_WORKERS


# -- functions run remotely (module level: importable by the workers) -----------

def square(x):
    return x * x


def add(a, b=0):
    return a + b


def raise_value_error(message):
    raise ValueError(message)


def fail_on(bad, x):
    if x == bad:
        raise ValueError("bad item %r" % x)
    return x


def token(_=None):
    return os.urandom(16)


def touch(path):
    with open(path, "w"):
        pass


def gated(directory, name, value=None):
    """Mark ``name`` started, then wait (bounded) for a release file: the
    gate's ("release") or its own ("<name>.release")."""
    touch(os.path.join(directory, name + ".started"))
    releases = [os.path.join(directory, "release"), os.path.join(directory, name + ".release")]
    deadline = time.monotonic() + 30
    while not any(map(os.path.exists, releases)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def mark_run(directory, name):
    touch(os.path.join(directory, name + ".ran"))
    return name


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def current_task(x):
    return distributed.get_worker().get_current_task()


def kill_worker_once(directory):
    """SIGKILL the worker process running this, the first time only."""
    marker = os.path.join(directory, "killed")
    if not os.path.exists(marker):
        touch(marker)
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def ran(directory, suffix=".ran"):
    return sorted(n[:-len(suffix)] for n in os.listdir(directory) if n.endswith(suffix))


# -- fixtures ------------------------------------------------------------------------

# The reference twin is the stdlib's process pool (fastfutures' own is held
# to it in test_process.py).
EXECUTORS = ["process", "dask"]


def _creator(kind, request):
    if kind == "dask":
        client = request.getfixturevalue("dask_client")
        return lambda: DaskExecutor(client)
    # fork where it is safe: workers that need not import dask again
    # (seconds each here).
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    return lambda: concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=context)


@pytest.fixture(scope="module", params=EXECUTORS)
def shared_executor(request):
    """One executor of each kind for the tests that leave it usable."""
    executor = _creator(request.param, request)()
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(params=EXECUTORS)
def make_executor(request):
    """A factory of fresh executors of one kind; all shut down after the test."""
    kind = request.param
    create = _creator(kind, request)
    made = []

    def factory():
        executor = create()
        made.append(executor)
        return executor
    factory.kind = kind
    yield factory
    for executor in made:
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def executor(make_executor):
    return make_executor()


@pytest.fixture
def gate(tmp_path):
    """Opens the gate of gated() tasks at the end of the test whatever happens."""
    yield str(tmp_path)
    touch(os.path.join(tmp_path, "release"))


def started(directory):
    return ran(directory, ".started")


def wait_started(directory, count):
    assert wait_until(lambda: len(started(directory)) >= count), started(directory)


# -- submit and results ------------------------------------------------------------

def test_submit_result(shared_executor):
    futures = [shared_executor.submit(square, i) for i in range(20)]
    assert [f.result(timeout=TIMEOUT) for f in futures] == [i * i for i in range(20)]
    assert shared_executor.submit(add, 1, b=2).result(timeout=TIMEOUT) == 3


def test_futures_are_fastfutures_futures(dask_client):
    ff = _load_fastfutures()
    with DaskExecutor(dask_client) as executor:
        assert isinstance(executor, concurrent.futures.Executor)
        assert isinstance(executor, ff.Executor)
        future = executor.submit(square, 3)
        assert type(future) is ff.Future
        assert isinstance(future, concurrent.futures.Future)
        done, _ = ff.wait([future], timeout=TIMEOUT)
        assert done == {future}
        futures = [executor.submit(square, i) for i in range(5)]
        assert sorted(f.result() for f in ff.as_completed(futures, timeout=TIMEOUT)) == [
            0, 1, 4, 9, 16]
        # The stdlib's own functions accept them too.
        done, _ = concurrent.futures.wait(futures, timeout=TIMEOUT)
        assert done == set(futures)

        async def main():
            return await asyncio.wrap_future(executor.submit(square, 4))
        assert asyncio.run(main()) == 16


def test_impure_identical_submits_both_run(shared_executor):
    first = shared_executor.submit(token)
    second = shared_executor.submit(token)
    assert first.result(timeout=TIMEOUT) != second.result(timeout=TIMEOUT)


def test_exception_has_remote_traceback(shared_executor):
    future = shared_executor.submit(raise_value_error, "boom")
    with pytest.raises(ValueError, match="boom") as info:
        future.result(timeout=TIMEOUT)
    cause = info.value.__cause__
    assert type(cause) is concurrent.futures.process._RemoteTraceback
    assert "raise_value_error" in str(cause) and "Traceback" in str(cause)
    assert type(future.exception(timeout=TIMEOUT)) is ValueError


class Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def unpicklable_result():
    return Unpicklable()


def test_what_cannot_be_pickled_fails_only_its_future(shared_executor):
    future = shared_executor.submit(square, threading.Lock())
    assert isinstance(future.exception(timeout=TIMEOUT), TypeError)
    future = shared_executor.submit(unpicklable_result)
    assert isinstance(future.exception(timeout=TIMEOUT), TypeError)
    assert shared_executor.submit(square, 2).result(timeout=TIMEOUT) == 4


def test_done_callback_runs_off_the_event_loop(dask_client):
    seen = []
    done = threading.Event()

    def callback(future):
        seen.append((threading.current_thread(), future.result()))
        done.set()
    with DaskExecutor(dask_client) as executor:
        executor.submit(square, 5).add_done_callback(callback)
        assert done.wait(TIMEOUT)
    thread, value = seen[0]
    assert value == 25
    # Not dask's event loop: a slow callback must not stall the client.
    assert thread is not threading.main_thread()
    assert thread.ident != dask_client.loop.asyncio_loop._thread_id


# -- map ---------------------------------------------------------------------------

@pytest.mark.parametrize("chunksize", [1, 3, 7, 100])
def test_map_order(shared_executor, chunksize):
    assert list(shared_executor.map(square, range(50), chunksize=chunksize, timeout=TIMEOUT)) == [
        i * i for i in range(50)]
    # Several iterables, the shortest ends it (zip).
    assert list(shared_executor.map(add, range(10), range(100, 105), chunksize=chunksize)) == [
        i + 100 + i for i in range(5)]
    assert list(shared_executor.map(square, [], chunksize=chunksize)) == []


def test_map_returns_a_generator(shared_executor):
    # As the stdlib's map() does (code checks for one).
    results = shared_executor.map(square, range(3), chunksize=2)
    assert inspect.isgenerator(results)
    assert list(results) == [0, 1, 4]


def test_map_chunksize_validation(shared_executor):
    with pytest.raises(ValueError, match="chunksize must be >= 1."):
        shared_executor.map(square, range(3), chunksize=0)


def test_map_exception_at_its_position(shared_executor):
    # The chunk holding the failing item fails as a whole (items 2 and 3).
    results = shared_executor.map(fail_on, [3] * 6, range(6), chunksize=2, timeout=TIMEOUT)
    assert [next(results) for _ in range(2)] == [0, 1]
    with pytest.raises(ValueError, match="bad item 3"):
        next(results)


def test_map_timeout(executor, gate):
    executor.submit(square, 1).result(timeout=TIMEOUT)      # workers up
    results = executor.map(gated, [gate] * 2, ["fast", "slow"], [1, 2], timeout=3)
    touch(os.path.join(gate, "fast.release"))
    assert next(results) == 1
    with pytest.raises(concurrent.futures.TimeoutError):
        next(results)


def test_map_close_cancels_the_rest(executor, gate):
    names = ["%02d" % i for i in range(40)]
    results = executor.map(gated, [gate] * 40, names, names, chunksize=1)
    touch(os.path.join(gate, "00.release"))
    assert next(results) == "00"
    results.close()
    assert wait_until(lambda: _cancellations_landed(executor))
    touch(os.path.join(gate, "release"))
    executor.shutdown(wait=True)
    # Items already handed to a worker may run; the rest never start.
    assert 1 <= len(started(gate)) < 40


@pytest.mark.skipif(sys.version_info < (3, 14), reason="map(buffersize=) is new in 3.14")
def test_map_buffersize(shared_executor):
    results = shared_executor.map(square, range(30), chunksize=2, buffersize=3, timeout=TIMEOUT)
    assert list(results) == [i * i for i in range(30)]


# -- cancel, shutdown -----------------------------------------------------------

def _occupy_workers(executor, gate):
    """One gated task per worker, each started."""
    blockers = [executor.submit(gated, gate, "blocker%d" % i) for i in range(WORKERS)]
    wait_started(gate, WORKERS)
    # DaskExecutor learns of a start from an event that follows it.
    assert wait_until(lambda: all(b.running() for b in blockers))
    return blockers


def _submissions_landed(executor):
    """True once the scheduler knows every task submitted (a DaskExecutor's
    submit() only sends the task; the scheduler unpacks it a moment later)."""
    if not isinstance(executor, DaskExecutor):
        return True
    keys = set(executor._completer.tasks)

    def on_scheduler(dask_scheduler):
        return [key for key in keys if key in dask_scheduler.tasks]
    return set(executor.client.run_on_scheduler(on_scheduler)) == keys


def _cancellations_landed(executor):
    """True once the executor has acted on the cancel()s made: no task of a
    cancelled future is still waiting to start.  (A DaskExecutor cancels in
    the scheduler, which hears of it a moment later and tells the workers;
    a task a worker already holds can still start if the worker gets there
    first: see fastfutures.distributed.)"""
    if not isinstance(executor, DaskExecutor):
        return True
    completer = executor._completer
    wanted = {key for key, task in list(completer.tasks.items())
              if not task.future.cancelled()}
    prefix = completer.key_prefix

    def on_scheduler(dask_scheduler):       # not yet sent to a worker
        return [key for key, ts in dask_scheduler.tasks.items()
                if prefix in key and ts.state in ("released", "waiting", "queued", "no-worker")]

    def on_worker(dask_worker):             # sent to this worker, not started
        return [key for key, ts in dask_worker.state.tasks.items()
                if prefix in key and ts.state in ("waiting", "ready", "constrained")]
    client = executor.client
    waiting = set(client.run_on_scheduler(on_scheduler))
    for keys in client.run(on_worker).values():
        waiting.update(keys)
    return waiting <= wanted


def test_cancel_queued_work(executor, gate):
    blockers = _occupy_workers(executor, gate)
    queued = [executor.submit(mark_run, gate, "q%d" % i) for i in range(8)]
    assert wait_until(lambda: _submissions_landed(executor))
    last = queued[-1]
    assert last.cancel()
    assert last.cancelled() and last.done()
    with pytest.raises(concurrent.futures.CancelledError):
        last.result(timeout=0)
    assert wait_until(lambda: _cancellations_landed(executor))
    # A task that is running cannot be cancelled (dask reports the start).
    assert wait_until(lambda: all(b.running() for b in blockers))
    assert not any(b.cancel() for b in blockers)
    touch(os.path.join(gate, "release"))
    assert [b.result(timeout=TIMEOUT) for b in blockers] == [None] * WORKERS
    assert [f.result(timeout=TIMEOUT) for f in queued[:-1]] == ["q%d" % i for i in range(7)]
    done, not_done = concurrent.futures.wait(queued, timeout=TIMEOUT)
    assert not not_done
    executor.shutdown(wait=True)
    assert "q7" not in ran(gate)


def test_shutdown_waits(executor):
    futures = [executor.submit(sleep_then, 0.05, i) for i in range(6)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(6))


def test_shutdown_cancel_futures(executor, gate):
    blockers = _occupy_workers(executor, gate)
    queued = [executor.submit(mark_run, gate, "q%d" % i) for i in range(8)]
    assert wait_until(lambda: _submissions_landed(executor))
    executor.shutdown(wait=False, cancel_futures=True)
    # The process pools cancel in their manager thread, dask in its scheduler.
    assert wait_until(lambda: sum(f.cancelled() for f in queued) >= len(queued) - WORKERS - 1)
    assert wait_until(lambda: _cancellations_landed(executor))
    touch(os.path.join(gate, "release"))
    executor.shutdown(wait=True)
    assert [b.result(timeout=TIMEOUT) for b in blockers] == [None] * WORKERS
    # The ones never handed to a worker are cancelled (the process pools
    # hand one more per worker ahead), and none of those ran.
    cancelled = {"q%d" % i for i, f in enumerate(queued) if f.cancelled()}
    assert len(cancelled) >= len(queued) - WORKERS - 1
    assert not cancelled & set(ran(gate))
    if isinstance(executor, DaskExecutor):
        # (The stdlib's pool can leave one RUNNING after shutdown(wait=True)
        # here, now and then; and wait() would block on the ones it cancelled,
        # which it leaves unnotified: see docs/migrating.md.)
        done, not_done = concurrent.futures.wait(queued, timeout=TIMEOUT)
        assert not not_done


def test_submit_after_shutdown(executor):
    executor.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(square, 1)
    executor.shutdown(wait=True)        # again: harmless


def test_context_manager(make_executor):
    with make_executor() as executor:
        futures = [executor.submit(sleep_then, 0.05, i) for i in range(4)]
    assert [f.result(timeout=0) for f in futures] == list(range(4))
    with pytest.raises(RuntimeError):
        executor.submit(square, 1)


# -- dask only ---------------------------------------------------------------------

def test_chunksize_is_one_task_per_chunk(dask_client):
    with DaskExecutor(dask_client) as executor:
        keys = list(executor.map(current_task, range(100), chunksize=10, timeout=TIMEOUT))
    assert len(set(keys)) == 10
    assert [keys[i * 10:(i + 1) * 10] == [keys[i * 10]] * 10 for i in range(10)] == [True] * 10


class FailsToUnpickle:
    def __reduce__(self):
        return _raise_on_load, ()


def _raise_on_load():
    raise RuntimeError("cannot be loaded")


def fails_to_unpickle():
    return FailsToUnpickle()


def test_result_that_fails_to_unpickle_fails_only_its_future(dask_client):
    # (The process pool breaks: its result stream is lost.  See
    # test_process.py's test_result_that_fails_to_unpickle_breaks_pool.)
    with DaskExecutor(dask_client) as executor:
        future = executor.submit(fails_to_unpickle)
        with pytest.raises(RuntimeError, match="cannot be loaded"):
            future.result(timeout=TIMEOUT)
        assert executor.submit(square, 3).result(timeout=TIMEOUT) == 9


def test_cancel_is_forwarded_to_dask(dask_client, gate):
    with DaskExecutor(dask_client) as executor:
        _occupy_workers(executor, gate)
        before = set(executor._completer.tasks)
        queued = executor.submit(mark_run, gate, "queued")
        key, = set(executor._completer.tasks) - before
        assert wait_until(lambda: _submissions_landed(executor))
        assert queued.cancel()
        # The scheduler forgets the task (no client wants it any more).
        assert wait_until(lambda: key not in dask_client.who_has())
        # ... and so do the workers (see _cancellations_landed).
        assert wait_until(lambda: _cancellations_landed(executor))
        touch(os.path.join(gate, "release"))
    assert ran(gate) == []


def test_stats(dask_client, gate):
    # stats() is fastfutures' (no stdlib twin): every outcome counted once,
    # the counters adding up in every snapshot, durations from the workers.
    with DaskExecutor(dask_client) as executor:
        s = executor.stats()
        check_adds_up(s)
        assert (s.submitted, s.queued, s.running, s.workers) == (0, 0, 0, WORKERS)
        assert executor.submit(square, 3).result(timeout=TIMEOUT) == 9
        with pytest.raises(ValueError):
            executor.submit(raise_value_error, "no").result(timeout=TIMEOUT)
        started = time.perf_counter()
        assert executor.submit(sleep_then, 0.3, "slept").result(timeout=TIMEOUT) == "slept"
        slept_call = time.perf_counter() - started
        assert list(executor.map(square, range(10), chunksize=5, timeout=TIMEOUT)) == [
            i * i for i in range(10)]       # two calls: one per chunk
        s = executor.stats()
        check_adds_up(s)
        assert (s.submitted, s.completed, s.failed, s.queued, s.running) == (5, 4, 1, 0, 0)
        assert s.run_time.count == s.queue_wait.count == 5
        # Measured on the worker: at least the sleep, within the caller's view.
        assert 0.3 <= s.run_time.max <= slept_call * 1.05 and s.queue_wait.max >= 0

        blockers = _occupy_workers(executor, gate)
        queued = executor.submit(mark_run, gate, "queued")
        s = executor.stats()
        check_adds_up(s)
        assert (s.submitted, s.running, s.queued) == (5 + WORKERS + 1, WORKERS, 1)
        assert s.busy_workers == WORKERS and s.idle_workers == 0
        assert queued.cancel()
        touch(os.path.join(gate, "release"))
        assert [b.result(timeout=TIMEOUT) for b in blockers] == [None] * WORKERS
        # The cancelled call is counted when dask reports it (cancelled, or
        # run anyway and its result dropped: cancelled either way).
        assert wait_until(lambda: executor.stats().queued == 0)
        s = executor.stats()
        check_adds_up(s)
        assert (s.completed, s.failed, s.cancelled, s.running) == (4 + WORKERS, 1, 1, 0)
        assert s.run_time.count == s.completed + s.failed
        assert s.worker_deaths == s.timed_out == 0


def test_stats_add_up_while_calls_run(dask_client):
    with DaskExecutor(dask_client) as executor:
        stop = threading.Event()
        snapshots = []

        def watch():
            while not stop.is_set():
                snapshots.append(executor.stats())
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            futures = [executor.submit(sleep_then, 0.02 * (i % 3), i) for i in range(60)]
            assert [f.result(timeout=TIMEOUT) for f in futures] == list(range(60))
        finally:
            stop.set()
            watcher.join()
        for s in snapshots:
            check_adds_up(s)
        final = executor.stats()
        assert (final.submitted, final.completed, final.queued, final.running) == (60, 60, 0, 0)


def test_constructor_arguments(dask_client):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        DaskExecutor(max_workers=0)
    with pytest.raises(TypeError):
        DaskExecutor(dask_client, max_workers=2)
    with DaskExecutor(dask_client) as executor:
        assert executor.client is dask_client
    # A client given is left open.
    assert dask_client.status == "running"


def test_cluster_object_gets_a_client_of_its_own(dask_client):
    with DaskExecutor(dask_client.cluster) as executor:
        client = executor.client
        assert client is not dask_client
        assert executor.submit(square, 5).result(timeout=TIMEOUT) == 25
    assert client.status == "closed"
    assert dask_client.status == "running"


def test_dropping_the_executor_shuts_it_down(dask_client):
    executor = DaskExecutor(dask_client)
    future = executor.submit(square, 3)
    thread = executor._completer.thread
    del executor
    gc.collect()
    assert future.result(timeout=TIMEOUT) == 9
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_client_closed_under_the_executor(dask_client, gate):
    client = distributed.Client(dask_client.scheduler.address, set_as_default=False)
    executor = DaskExecutor(client)
    try:
        pending = executor.submit(gated, gate, "pending")
        wait_started(gate, 1)
        client.close()
        with pytest.raises(BrokenDaskCluster):
            pending.result(timeout=TIMEOUT)
        with pytest.raises(BrokenDaskCluster):
            executor.submit(square, 1)
    finally:
        executor.shutdown(wait=True)


def test_owned_local_cluster_is_closed():
    with DaskExecutor(max_workers=1) as executor:
        client = executor.client
        cluster = client.cluster
        assert executor.submit(square, 6).result(timeout=TIMEOUT) == 36
        pids = client.run(os.getpid)
    assert client.status == "closed"
    assert cluster.status.name == "closed"
    for pid in pids.values():
        assert wait_until(lambda pid=pid: not _alive(pid)), pid


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes once its parent reaps it.
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


# -- a scheduler and a worker as separate processes ------------------------------

@pytest.fixture
def cli_cluster(tmp_path):
    """`dask scheduler` and `dask worker` started as commands on 127.0.0.1;
    yields the scheduler's address and the two Popen objects."""
    scheduler_file = str(tmp_path / "scheduler.json")
    env = dict(os.environ)
    # The worker imports this module's functions by name.
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.abspath(__file__)), src_path_of(_load_fastfutures())]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    dask = [sys.executable, "-m", "dask"]          # the `dask` command
    scheduler = subprocess.Popen(
        dask + ["scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", scheduler_file],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    processes = [scheduler]
    try:
        assert wait_until(lambda: os.path.exists(scheduler_file), timeout=60)
        worker = subprocess.Popen(
            dask + ["worker", "--scheduler-file",
             scheduler_file, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
             "--host", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        processes.append(worker)
        address = wait_until(lambda: _read_address(scheduler_file), timeout=60)
        yield address, scheduler, worker
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(TIMEOUT)


def _read_address(path):
    try:
        with open(path) as file:
            return json.load(file)["address"]
    except (OSError, ValueError, KeyError):
        return None


def test_cluster_by_address_worker_killed_then_scheduler_lost(cli_cluster, tmp_path):
    address, scheduler, worker = cli_cluster
    directory = str(tmp_path)
    executor = DaskExecutor(address)
    try:
        client = executor.client
        assert client.wait_for_workers(1, timeout=60) is None
        assert executor.submit(square, 7).result(timeout=TIMEOUT) == 49
        assert list(executor.map(square, range(20), chunksize=6, timeout=TIMEOUT)) == [
            i * i for i in range(20)]

        # A worker killed mid-task: dask retries the task on the worker the
        # nanny starts again, or fails it (KilledWorker); it never hangs.
        killed = executor.submit(kill_worker_once, directory)
        try:
            assert killed.result(timeout=60) == "survived"
        except distributed.KilledWorker:
            pass
        assert os.path.exists(os.path.join(directory, "killed"))
        client.wait_for_workers(1, timeout=60)
        assert executor.submit(square, 8).result(timeout=60) == 64

        # The scheduler lost: what was in flight fails with BrokenDaskCluster,
        # and the executor refuses new work.
        pending = executor.submit(gated, directory, "blocked")
        wait_started(directory, 1)
        os.killpg(scheduler.pid, signal.SIGKILL)
        with pytest.raises(BrokenDaskCluster):
            pending.result(timeout=60)
        assert isinstance(pending.exception(), concurrent.futures.BrokenExecutor)
        with pytest.raises(BrokenDaskCluster):
            executor.submit(square, 1)
    finally:
        touch(os.path.join(directory, "release"))
        executor.shutdown(wait=True)
