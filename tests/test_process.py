"""ProcessPoolExecutor: every behaviour test runs against the stdlib pool and
fastfutures, with the 'fork' and 'spawn' start methods (some with
'forkserver' too).  Pools are shared per module where a test does not
change the pool's state (spawning workers is slow).
"""
import concurrent.futures
import concurrent.futures.process
import gc
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import TIMEOUT, _load_fastfutures, src_path_of, wait_until

pytestmark = [
    # 3.12+: fork() with other threads alive (another pool's manager thread)
    # warns; the pools themselves fork before starting their thread.
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX start methods"),
]

IMPLS = ["stdlib", "fastfutures"]
METHODS = ["fork", "spawn"]


def _module(impl):
    return concurrent.futures if impl == "stdlib" else _load_fastfutures()


# -- functions run in the workers (importable by spawned children) ---------

def square(x):
    return x * x


def add(a, b=0):
    return a + b


def get_pid(_=None):
    return os.getpid()


def raise_value_error(message):
    raise ValueError(message)


def sleep_and_return(seconds, value=None):
    time.sleep(seconds)
    return value


def kill_self(sig, delay=0.0):
    time.sleep(delay)       # lets the test submit more work first
    os.kill(os.getpid(), sig)
    time.sleep(10)


def exit_abruptly(delay=0.0):
    time.sleep(delay)
    os._exit(3)


def wait_for_file(path, timeout=TIMEOUT):
    """A call that runs until the test creates ``path`` (a gate, not a timer)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.002)
    return "opened"


def touch(directory, name):
    """A call whose running leaves a trace: the file ``directory/name``."""
    open(os.path.join(directory, str(name)), "w").close()
    return name


def make_bytes(n):
    return b"x" * n


def key_and_size(key, data):
    return key, len(data)


def echo(value):
    return value


def return_unpicklable():
    return lambda: None


class FailsToUnpickle:
    def __reduce__(self):
        return _raise_on_load, ()


def _raise_on_load():
    raise RuntimeError("cannot be loaded")


def return_fails_to_unpickle():
    return FailsToUnpickle()


_init_value = None


def set_init_value(value):
    global _init_value
    _init_value = value


def get_init_value(_=None):
    return _init_value


def failing_initializer():
    raise RuntimeError("initializer failed")


def failing_initializer_with(_):
    raise RuntimeError("initializer failed")


# -- fixtures ------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_leaked_threads(request):
    """conftest's check, except for the module-scoped pools, whose result
    threads outlive a test by design (they end when the module is done)."""
    before = set(threading.enumerate())
    yield
    if "shared_pool" in request.fixturenames:
        return

    def leaked():
        return [t for t in threading.enumerate()
                if t not in before and t.is_alive() and not t.daemon]
    gc.collect()
    assert wait_until(lambda: not leaked()), f"threads left running: {leaked()}"


@pytest.fixture(scope="module", params=[(i, m) for i in IMPLS for m in METHODS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def shared_pool(request):
    """A long-lived 2-worker pool for tests that leave it usable."""
    impl, method = request.param
    cf = _module(impl)
    pool = cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method))
    pool.cf = cf
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture(params=[(i, m) for i in IMPLS for m in METHODS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def make_pool(request):
    """A factory for pools that a test breaks or shuts down."""
    impl, method = request.param
    cf = _module(impl)
    pools = []

    def factory(max_workers=2, **kwargs):
        kwargs.setdefault("mp_context", multiprocessing.get_context(method))
        pool = cf.ProcessPoolExecutor(max_workers, **kwargs)
        pools.append(pool)
        return pool
    factory.cf = cf
    factory.method = method
    yield factory
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def ff():
    return _load_fastfutures()


# -- basic behaviour -------------------------------------------------------------

def test_submit_result(shared_pool):
    futures = [shared_pool.submit(square, i) for i in range(50)]
    assert [f.result(timeout=TIMEOUT) for f in futures] == [i * i for i in range(50)]
    assert shared_pool.submit(add, 1, b=2).result(timeout=TIMEOUT) == 3


def test_types(shared_pool):
    assert isinstance(shared_pool, concurrent.futures.ProcessPoolExecutor)
    future = shared_pool.submit(square, 2)
    assert isinstance(future, concurrent.futures.Future)
    assert isinstance(future, shared_pool.cf.Future)
    future.result(timeout=TIMEOUT)


def test_exception_has_remote_traceback(shared_pool):
    future = shared_pool.submit(raise_value_error, "boom")
    with pytest.raises(ValueError, match="boom") as info:
        future.result(timeout=TIMEOUT)
    cause = info.value.__cause__
    assert type(cause) is concurrent.futures.process._RemoteTraceback
    assert "raise_value_error" in str(cause) and "Traceback" in str(cause)
    assert type(future.exception(timeout=TIMEOUT)) is ValueError


def test_map(shared_pool):
    assert list(shared_pool.map(square, range(100), timeout=TIMEOUT)) == [
        i * i for i in range(100)]
    assert list(shared_pool.map(add, range(1000), range(1000), chunksize=64,
                                timeout=TIMEOUT)) == [2 * i for i in range(1000)]
    assert list(shared_pool.map(square, [], chunksize=5)) == []


def test_map_chunksize_validation(shared_pool):
    with pytest.raises(ValueError, match="chunksize must be >= 1."):
        shared_pool.map(square, range(3), chunksize=0)


def test_map_exception(shared_pool):
    results = shared_pool.map(raise_value_error, ["a", "b"], timeout=TIMEOUT)
    with pytest.raises(ValueError):
        list(results)


def test_map_timeout(shared_pool):
    results = shared_pool.map(sleep_and_return, [2.0], timeout=0.05)
    with pytest.raises(shared_pool.cf.TimeoutError):
        list(results)


def test_map_honours_submit_set_on_the_instance(make_pool):
    """tqdm's process_map sets ``ex.submit = wrapper`` on the instance, then
    calls ``ex.map()``: every chunk goes through that submit."""
    pool = make_pool(2)
    original = pool.submit
    chunks = []

    def counting_submit(fn, /, *args, **kwargs):
        chunks.append(args)
        return original(fn, *args, **kwargs)
    pool.submit = counting_submit
    try:
        assert list(pool.map(square, range(10), chunksize=3, timeout=TIMEOUT)) == [
            i * i for i in range(10)]
        assert len(chunks) == 4
        assert list(pool.map(add, [1, 2], [3, 4], timeout=TIMEOUT)) == [4, 6]
        assert len(chunks) == 6
    finally:
        del pool.submit     # the wrapper and the pool form a cycle


@pytest.mark.skipif(sys.version_info < (3, 14), reason="buffersize is new in 3.14")
def test_map_buffersize(shared_pool):
    assert list(shared_pool.map(square, range(20), buffersize=3, timeout=TIMEOUT)) == [
        i * i for i in range(20)]
    assert list(shared_pool.map(add, range(20), range(20), chunksize=4, buffersize=2,
                                timeout=TIMEOUT)) == [2 * i for i in range(20)]
    assert list(shared_pool.map(square, [], buffersize=1)) == []


@pytest.mark.skipif(sys.version_info < (3, 14), reason="buffersize is new in 3.14")
@pytest.mark.parametrize("bad, exc", [("2", TypeError), (2.0, TypeError),
                                      (0, ValueError), (-1, ValueError)])
def test_map_buffersize_validation(shared_pool, bad, exc):
    with pytest.raises(exc, match="buffersize must be"):
        shared_pool.map(square, range(3), buffersize=bad)
    with pytest.raises(ValueError, match="chunksize must be >= 1."):
        shared_pool.map(square, range(3), chunksize=0, buffersize=bad)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="buffersize is new in 3.14")
def test_map_buffersize_bounds_the_chunks_in_flight(make_pool):
    pool = make_pool(1)
    original = pool.submit
    chunks = []

    def counting_submit(fn, /, *args, **kwargs):
        chunks.append(args)
        return original(fn, *args, **kwargs)
    pool.submit = counting_submit
    try:
        results = pool.map(square, range(100), chunksize=5, buffersize=2, timeout=TIMEOUT)
        assert len(chunks) == 2
        assert next(results) == 0
        assert len(chunks) == 3
        assert list(results) == [i * i for i in range(1, 100)]
        assert len(chunks) == 20
    finally:
        del pool.submit


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14 accepts buffersize")
def test_map_buffersize_rejected_before_314(shared_pool):
    with pytest.raises(TypeError, match="unexpected keyword argument 'buffersize'"):
        shared_pool.map(square, range(3), buffersize=2)


def test_large_values_round_trip(shared_pool):
    data = bytes(range(256)) * 4096                 # 1 MiB
    assert shared_pool.submit(echo, data).result(timeout=TIMEOUT) == data
    ba = bytearray(data)
    out = shared_pool.submit(echo, ba).result(timeout=TIMEOUT)
    assert type(out) is bytearray and out == ba
    nested = {"a": [data, ba], "b": (1, data)}
    assert shared_pool.submit(echo, nested).result(timeout=TIMEOUT) == nested
    out = shared_pool.submit(make_bytes, 3 << 20).result(timeout=TIMEOUT)
    assert type(out) is bytes and out == b"x" * (3 << 20)


def test_very_large_values_round_trip(shared_pool):
    # Past the size where the copy out of shared memory runs without the GIL
    # into huge-page-advised memory: odd sizes, every byte checked.
    data = bytes(range(251)) * ((9 << 20) // 251)
    assert shared_pool.submit(echo, data).result(timeout=TIMEOUT) == data
    ba = bytearray(data[: (5 << 20) + 3])
    out = shared_pool.submit(echo, [ba, data[1:]]).result(timeout=TIMEOUT)
    assert type(out[0]) is bytearray and out[0] == ba
    assert type(out[1]) is bytes and out[1] == data[1:]


def test_numpy_round_trip(shared_pool):
    np = pytest.importorskip("numpy")
    array = np.arange(1 << 18, dtype=np.float64).reshape(512, 512)
    out = shared_pool.submit(echo, array).result(timeout=TIMEOUT)
    assert type(out) is np.ndarray and out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)
    out[0, 0] = -1.0                               # a private, writable copy
    small = np.arange(10)
    np.testing.assert_array_equal(shared_pool.submit(echo, small).result(timeout=TIMEOUT),
                                  small)


def test_running_future_cannot_be_cancelled(make_pool):
    pool = make_pool(1)
    running = pool.submit(sleep_and_return, 0.5, "done")
    assert wait_until(running.running)
    assert not running.cancel()
    # Far more than any pool hands to a worker ahead of time.
    queued = [pool.submit(square, i) for i in range(60)]
    assert queued[-1].cancel()
    assert queued[-1].cancelled()
    assert running.result(timeout=TIMEOUT) == "done"
    assert queued[0].result(timeout=TIMEOUT) == 0


@pytest.mark.stdlib_differs(reason="the stdlib marks the calls in its call queue RUNNING "
                                   "ahead of time: cancel() fails for them")
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_every_call_not_started_can_be_cancelled(ff, method, tmp_path):
    """Calls handed to a worker's ring ahead of time stay cancellable until
    the worker claims one; a cancelled call never runs."""
    pool = ff.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method))
    try:
        gate = str(tmp_path / "gate")
        running = pool.submit(wait_for_file, gate)
        assert wait_until(running.running)
        queued = [pool.submit(touch, str(tmp_path), i) for i in range(20)]
        big = [pool.submit(key_and_size, i, b"z" * (1 << 20)) for i in range(3)]
        assert not any(f.running() for f in queued + big)
        assert all(f.cancel() for f in queued + big)
        assert all(f.cancelled() and not f.running() for f in queued + big)
        assert not running.cancel()
        assert running.running() and not running.cancelled()
        open(gate, "w").close()
        assert running.result(timeout=TIMEOUT) == "opened"
        # Runs after the cancelled calls' records: by now the worker skipped them.
        assert pool.submit(touch, str(tmp_path), "after").result(timeout=TIMEOUT) == "after"
        assert sorted(os.listdir(tmp_path)) == ["after", "gate"]
        done, not_done = ff.wait(queued + big, timeout=TIMEOUT)
        assert not not_done
        # The worker takes new work as before.
        assert list(pool.map(square, range(30), timeout=TIMEOUT)) == [i * i for i in range(30)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("impl", IMPLS)
def test_shutdown_cancel_futures_cancels_queued_calls(impl, method):
    """CPython's test_shutdown...test_cancel_futures: with few workers and
    50 queued calls, shutdown(cancel_futures=True) cancels most of them and
    every other one finishes."""
    cf = _module(impl)
    pool = cf.ProcessPoolExecutor(5, mp_context=multiprocessing.get_context(method))
    fs = [pool.submit(time.sleep, .1) for _ in range(50)]
    pool.shutdown(cancel_futures=True)
    cancelled = [f for f in fs if f.cancelled()]
    assert len(cancelled) > 20
    others = [f for f in fs if not f.cancelled()]
    for f in others:
        assert f.done()
        assert f.exception() is None
    if impl != "dask":      # DaskExecutor (test_distributed_process_suite) may cancel all
        assert others       # the stdlib runs the calls in its call queue


@pytest.mark.stdlib_differs(reason="the stdlib cannot cancel the calls in its call queue")
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_shutdown_cancel_futures_spares_each_starting_workers_first_call(ff, method, tmp_path):
    """Workers held in their initializer: shutdown(cancel_futures=True)
    cancels every call but the first of each worker (it runs, as the calls
    in the stdlib's call queue do); cancel() still works for that one."""
    gate = str(tmp_path / "gate")
    pool = ff.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method),
                                  initializer=wait_for_file, initargs=(gate,))
    fs = [pool.submit(touch, str(tmp_path), i) for i in range(10)]
    assert not any(f.running() for f in fs)
    assert fs[0].cancel()
    pool.shutdown(wait=False, cancel_futures=True)
    assert wait_until(lambda: sum(f.cancelled() for f in fs) == 8)
    open(gate, "w").close()
    pool.shutdown(wait=True)
    ran = [i for i, f in enumerate(fs) if not f.cancelled()]
    assert ran == [1, 2]
    assert [fs[i].result(timeout=0) for i in ran] == ran
    assert sorted(os.listdir(tmp_path)) == ["1", "2", "gate"]


@pytest.mark.stdlib_differs(reason="the stdlib cannot cancel the calls in its call queue")
def test_shutdown_cancel_futures_cancels_calls_in_rings(ff, tmp_path):
    pool = ff.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    gate = str(tmp_path / "gate")
    running = [pool.submit(wait_for_file, gate) for _ in range(2)]
    assert wait_until(lambda: all(f.running() for f in running))
    queued = [pool.submit(touch, str(tmp_path), i) for i in range(12)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert wait_until(lambda: all(f.cancelled() for f in queued))
    open(gate, "w").close()
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in running] == ["opened"] * 2
    assert sorted(os.listdir(tmp_path)) == ["gate"]


# -- constructor ----------------------------------------------------------------

def _skip_stdlib_without_max_tasks(impl):
    if impl == "stdlib" and sys.version_info < (3, 11):
        pytest.skip("max_tasks_per_child is new in 3.11 (fastfutures offers it on 3.10)")


@pytest.mark.parametrize("impl", IMPLS)
def test_constructor_validation(impl):
    cf = _module(impl)
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        cf.ProcessPoolExecutor(-1)
    _skip_stdlib_without_max_tasks(impl)
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        cf.ProcessPoolExecutor(0)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        cf.ProcessPoolExecutor(1, initializer=5)
    with pytest.raises(TypeError, match="max_tasks_per_child must be an integer"):
        cf.ProcessPoolExecutor(1, max_tasks_per_child=1.5)
    with pytest.raises(ValueError, match="max_tasks_per_child must be >= 1"):
        cf.ProcessPoolExecutor(1, max_tasks_per_child=0)
    with pytest.raises(ValueError, match="incompatible with the 'fork'"):
        cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"),
                               max_tasks_per_child=3)
    pool = cf.ProcessPoolExecutor(max_tasks_per_child=3)
    assert pool._mp_context.get_start_method() == "spawn"
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    assert pool._max_workers == cpus
    pool.shutdown()


def test_initializer(make_pool):
    pool = make_pool(2, initializer=set_init_value, initargs=("ready",))
    assert pool.submit(get_init_value).result(timeout=TIMEOUT) == "ready"
    assert set(pool.map(get_init_value, range(4), timeout=TIMEOUT)) == {"ready"}


def test_failing_initializer_breaks_pool(make_pool, caplog):
    cf = make_pool.cf
    pool = make_pool(1, initializer=failing_initializer)
    future = pool.submit(square, 2)
    with pytest.raises(cf.process.BrokenProcessPool):
        future.result(timeout=TIMEOUT)


def _our_garbage(garbage):
    """Objects of the pools' and multiprocessing's modules in ``garbage``."""
    prefixes = ("fastfutures", "concurrent.futures", "multiprocessing")
    return [repr(o)[:100] for o in garbage
            if type(o).__module__.startswith(prefixes)]


@pytest.mark.parametrize("failing", [False, True], ids=["initializer", "failing-initializer"])
def test_no_reference_cycle_survives_shutdown(make_pool, failing):
    """As tornado's circlerefs test and CPython's
    FailingInitializerResourcesTest check: after shutdown() and ``del``, the
    pool -- its initargs included -- is freed at once, not by the cyclic GC."""
    import weakref
    ctx = multiprocessing.get_context(make_pool.method)
    initializer = failing_initializer_with if failing else set_init_value
    gc.collect()
    gc.disable()
    try:
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        queue = ctx.Queue()
        queue_freed = weakref.ref(queue)
        pool = make_pool.cf.ProcessPoolExecutor(2, mp_context=ctx, initializer=initializer,
                                                initargs=(queue,))
        del queue
        future = pool.submit(square, 3)
        if failing:
            with pytest.raises(make_pool.cf.process.BrokenProcessPool):
                future.result(timeout=TIMEOUT)
        else:
            assert future.result(timeout=TIMEOUT) == 9
            assert list(pool.map(square, range(20), chunksize=4, timeout=TIMEOUT)) == [
                i * i for i in range(20)]
            assert len(pool.submit(make_bytes, 1 << 20).result(timeout=TIMEOUT)) == 1 << 20
        del future
        pool.shutdown(wait=True)
        del pool
        assert queue_freed() is None, "initargs kept alive by a reference cycle"
        gc.collect()
        assert _our_garbage(gc.garbage) == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("impl", IMPLS)
def test_max_tasks_per_child_replaces_workers(impl):
    _skip_stdlib_without_max_tasks(impl)
    cf = _module(impl)
    with cf.ProcessPoolExecutor(1, max_tasks_per_child=2) as pool:
        pids = [pool.submit(get_pid).result(timeout=TIMEOUT) for _ in range(6)]
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]


@pytest.mark.parametrize("impl", IMPLS)
def test_max_tasks_per_child_shutdown_runs_queued_work(impl):
    """Every worker retires while calls are still queued at shutdown: new
    workers run them (the stdlib's test_max_tasks_early_shutdown)."""
    _skip_stdlib_without_max_tasks(impl)
    cf = _module(impl)
    pool = cf.ProcessPoolExecutor(3, max_tasks_per_child=1)
    futures = [pool.submit(square, i) for i in range(6)]
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == [i * i for i in range(6)]


@pytest.mark.parametrize("impl", IMPLS)
def test_worker_that_cannot_start_fails_submit(impl):
    """With 'spawn', initargs that cannot be pickled make starting a worker
    fail: submit() raises it; shutdown() then returns."""
    cf = _module(impl)
    pool = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=set_init_value, initargs=(lambda: 1,))
    try:
        with pytest.raises(Exception):
            pool.submit(square, 2)
    finally:
        done = threading.Event()
        t = threading.Thread(target=lambda: (pool.shutdown(wait=True), done.set()),
                             daemon=True)
        t.start()
        stdlib_hangs = impl == "stdlib"
        assert done.wait(TIMEOUT) or stdlib_hangs


# -- shutdown ---------------------------------------------------------------------

def test_context_manager_and_submit_after_shutdown(make_pool):
    with make_pool(2) as pool:
        future = pool.submit(sleep_and_return, 0.1, 7)
    assert future.done() and future.result() == 7
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit(square, 1)


def test_shutdown_without_wait_finishes_work(make_pool):
    pool = make_pool(2)
    futures = [pool.submit(sleep_and_return, 0.05, i) for i in range(6)]
    pool.shutdown(wait=False)
    assert [f.result(timeout=TIMEOUT) for f in futures] == list(range(6))


def test_shutdown_cancel_futures(make_pool):
    pool = make_pool(1)
    first = pool.submit(sleep_and_return, 0.3, "first")
    assert wait_until(first.running)
    rest = [pool.submit(square, i) for i in range(60)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert first.result(timeout=TIMEOUT) == "first"
    assert rest[-1].cancelled()
    assert all(f.done() for f in rest)


def test_shutdown_cancel_futures_with_large_calls_queued(make_pool):
    """Calls whose arguments travel in shared memory, queued behind a busy
    worker: shutdown(cancel_futures=True) cancels what has not started and
    the rest runs; every future ends, and shutdown returns."""
    pool = make_pool(1)
    big = b"y" * (1 << 20)
    futures = [pool.submit(key_and_size, i, big) for i in range(40)]
    pool.shutdown(wait=True, cancel_futures=True)
    for i, f in enumerate(futures):
        assert f.done()
        assert f.cancelled() or f.result(timeout=0) == (i, len(big))


def test_submits_from_many_threads_large_and_small_calls(make_pool):
    """Calls that need a shared-memory segment and calls that fit a ring,
    submitted from several threads at once with frequent thread switches:
    every future gets its own call's result (a segment send runs Python
    code, during which other submits must not take its task id)."""
    pool = make_pool(2)
    big = b"x" * (300 * 1024)
    futures = {}
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        def submitter(k):
            for j in range(60):
                if j % 3 == 0:
                    futures[k, j] = (pool.submit(key_and_size, (k, j), big),
                                     ((k, j), len(big)))
                else:
                    futures[k, j] = (pool.submit(echo, (k, j)), (k, j))

        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
    finally:
        sys.setswitchinterval(old)
    assert len(futures) == 4 * 60
    for future, expected in futures.values():
        assert future.result(timeout=TIMEOUT) == expected


def test_large_call_refused_by_a_full_ring_is_sent_later(ff, monkeypatch):
    """fastfutures internals: a call carried in a segment whose record does
    not fit the worker's ring (the send refuses it) goes back to the head
    of the queue and is sent when a reply makes room (it was lost)."""
    from fastfutures import _transport
    send = _transport.Endpoint.send
    refused = []

    def full_once(self, kind, task_id, payload, buffers=(), *args):
        if (buffers or len(payload) > 1 << 19) and not refused:
            refused.append(task_id)
            return False
        return send(self, kind, task_id, payload, buffers, *args)

    monkeypatch.setattr(_transport.Endpoint, "send", full_once)
    with ff.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        first = pool.submit(sleep_and_return, 0.3, "first")
        last = pool.submit(key_and_size, "last", bytearray(1 << 20))
        assert first.result(timeout=TIMEOUT) == "first"
        assert last.result(timeout=TIMEOUT) == ("last", 1 << 20)
    assert refused


def test_shutdown_unused_pool(make_pool):
    make_pool(2).shutdown(wait=True)
    make_pool(2).shutdown(wait=False)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_start_methods(ff, method):
    with ff.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool:
        assert list(pool.map(square, range(20), chunksize=3, timeout=TIMEOUT)) == [
            i * i for i in range(20)]


# -- pickling failures ----------------------------------------------------------------

def test_unpicklable_argument_fails_only_that_future(shared_pool):
    future = shared_pool.submit(echo, lambda: None)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        future.result(timeout=TIMEOUT)
    assert shared_pool.submit(square, 3).result(timeout=TIMEOUT) == 9


def test_unpicklable_result_fails_only_that_future(shared_pool):
    future = shared_pool.submit(return_unpicklable)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        future.result(timeout=TIMEOUT)
    assert shared_pool.submit(square, 4).result(timeout=TIMEOUT) == 16


def test_result_that_fails_to_unpickle_breaks_pool(make_pool):
    cf = make_pool.cf
    pool = make_pool(2)
    future = pool.submit(return_fails_to_unpickle)
    with pytest.raises(cf.process.BrokenProcessPool) as info:
        future.result(timeout=TIMEOUT)
    assert "cannot be loaded" in str(info.value.__cause__)
    with pytest.raises(cf.process.BrokenProcessPool):
        pool.submit(square, 1)


# -- dying workers -------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigkill", "os_exit"])
def test_worker_dies_mid_task(make_pool, how):
    cf = make_pool.cf
    pool = make_pool(2)
    assert pool.submit(square, 2).result(timeout=TIMEOUT) == 4
    if how == "sigkill":
        killer = pool.submit(kill_self, signal.SIGKILL, 0.3)
    else:
        killer = pool.submit(exit_abruptly, 0.3)
    slow = [pool.submit(sleep_and_return, 5) for _ in range(4)]
    for future in [killer] + slow:
        with pytest.raises(cf.process.BrokenProcessPool,
                           match="terminated abruptly while the future was running or pending"):
            future.result(timeout=TIMEOUT)
    with pytest.raises(cf.process.BrokenProcessPool,
                       match="A child process terminated abruptly, the process pool is "
                             "not usable anymore"):
        pool.submit(square, 1)
    pool.shutdown(wait=True)


def _shm_entries():
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return set()


def _open_fds():
    try:
        return set(os.listdir(f"/proc/{os.getpid()}/fd"))
    except FileNotFoundError:
        return set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/shm and /proc")
def test_no_leaks_after_sigkill(make_pool):
    cf = make_pool.cf
    _start_multiprocessing_helpers(make_pool.method)
    shm_before, fds_before = _shm_entries(), _open_fds()
    pool = make_pool(2)
    big = b"y" * (2 << 20)
    assert pool.submit(echo, big).result(timeout=TIMEOUT) == big
    assert len(pool.submit(make_bytes, 2 << 20).result(timeout=TIMEOUT)) == 2 << 20
    future = pool.submit(kill_self, signal.SIGKILL)
    with pytest.raises(cf.process.BrokenProcessPool):
        future.result(timeout=TIMEOUT)
    pool.shutdown(wait=True)
    del pool, future
    gc.collect()
    assert wait_until(lambda: _shm_entries() <= shm_before)
    assert wait_until(lambda: _open_fds() <= fds_before), _describe_fds(_open_fds() - fds_before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/shm and /proc")
def test_no_leaks_after_clean_shutdown(make_pool):
    _start_multiprocessing_helpers(make_pool.method)
    shm_before, fds_before = _shm_entries(), _open_fds()
    with make_pool(2) as pool:
        assert pool.submit(echo, b"z" * (1 << 20)).result(timeout=TIMEOUT) == b"z" * (1 << 20)
        assert list(pool.map(square, range(100), chunksize=10)) == [i * i for i in range(100)]
    del pool
    gc.collect()
    assert wait_until(lambda: _shm_entries() <= shm_before)
    assert wait_until(lambda: _open_fds() <= fds_before), _describe_fds(_open_fds() - fds_before)


def _describe_fds(fds):
    out = {}
    for fd in fds:
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            out[fd] = "?"
    return out


def _start_multiprocessing_helpers(method):
    """multiprocessing's own helpers (the resource tracker for spawn and
    forkserver, the forkserver) live as long as this process: started
    before the baseline, their descriptors are not the pool's leftovers."""
    from multiprocessing import forkserver, resource_tracker
    if method != "fork":
        resource_tracker.ensure_running()
    if method == "forkserver":
        forkserver.ensure_running()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of a dead parent is reaped by init; treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


_PARENT_SCRIPT = """
import multiprocessing, os, sys, time
sys.path[:0] = [{src!r}, {tests!r}]
import {module} as cf
import test_process as t
if __name__ == "__main__":
    pool = cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context({method!r}))
    pids = set(pool.map(t.get_pid, range(8)))
    futures = [pool.submit(t.sleep_and_return, 0.5) for _ in range(6)]
    print(" ".join(map(str, sorted(pids))), flush=True)
    {ending}
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("ending", ["sigkill", "gc"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("impl", IMPLS)
def test_workers_exit_with_their_parent(impl, method, ending):
    """The parent SIGKILLed, or the executor garbage-collected, with work
    pending: the workers exit."""
    if impl == "stdlib" and ending == "sigkill":
        pytest.skip("the stdlib's workers outlive a SIGKILLed parent (blocked on "
                    "their call queue); fastfutures' workers watch the parent")
    cf = _module(impl)
    module = "concurrent.futures" if impl == "stdlib" else "fastfutures"
    if ending == "sigkill":
        code = "os.kill(os.getpid(), 9)"
    else:
        code = "del pool; import gc; gc.collect(); time.sleep(30)"
    script = _PARENT_SCRIPT.format(src=src_path_of(cf) if impl != "stdlib" else "",
                                   tests=os.path.dirname(__file__), module=module,
                                   method=method, ending=code)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        pids = [int(p) for p in line.split()]
        assert pids
        assert wait_until(lambda: not any(_pid_alive(p) for p in pids), timeout=20)
    finally:
        proc.kill()
        proc.wait(TIMEOUT)
        proc.stdout.close()


# -- fastfutures extensions ----------------------------------------------------------

def test_terminate_and_kill_workers(ff):
    for stop in ("terminate_workers", "kill_workers"):
        pool = ff.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
        assert pool.submit(square, 3).result(timeout=TIMEOUT) == 9
        running = pool.submit(sleep_and_return, 5)
        assert wait_until(running.running)
        getattr(pool, stop)()
        with pytest.raises(ff.process.BrokenProcessPool):
            running.result(timeout=TIMEOUT)
        with pytest.raises((ff.process.BrokenProcessPool, RuntimeError)):
            pool.submit(square, 1)
        pool.shutdown(wait=True)


@pytest.mark.stdlib_differs
def test_memoryview_travels(ff):
    with ff.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        data = memoryview(bytearray(b"abc" * 100000))
        out = pool.submit(echo, data).result(timeout=TIMEOUT)
        assert type(out) is memoryview and out == data


@pytest.mark.parametrize("method", METHODS)
def test_zero_copy_results(ff, method):
    np = pytest.importorskip("numpy")
    with ff.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method),
                                zero_copy_results=True) as pool:
        raw = pool.submit(make_bytes, 1 << 20).result(timeout=TIMEOUT)
        assert type(raw) is memoryview and raw.readonly and raw == b"x" * (1 << 20)
        array = np.arange(1 << 17, dtype=np.int64)
        out = pool.submit(echo, array).result(timeout=TIMEOUT)
        assert type(out) is np.ndarray
        np.testing.assert_array_equal(out, array)
        view = out[10:20]
        del out, raw
        gc.collect()
        np.testing.assert_array_equal(view, array[10:20])   # still backed
        del view
        # Segments come back for reuse: many more results than the cache holds.
        for _ in range(40):
            pool.submit(make_bytes, 8 << 20).result(timeout=TIMEOUT).release()
        assert pool.submit(square, 5).result(timeout=TIMEOUT) == 25
