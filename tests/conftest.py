"""Shared fixtures: every behaviour test runs against the stdlib and fastfutures.

The ``cf`` fixture is the module under test, used the way user code would use
``import concurrent.futures as cf``.  A test that documents a deliberate
difference from the stdlib is marked ``stdlib_differs`` and only runs against
fastfutures.
"""
import concurrent.futures
import concurrent.futures.process
import concurrent.futures.thread
import importlib
import importlib.util
import os
import threading
import time

import pytest

# Generous bound for anything that should complete "soon": a bug makes the
# test fail after this long instead of hanging until pytest-timeout fires.
TIMEOUT = 10.0


def _load_fastfutures():
    module = importlib.import_module("fastfutures")
    # Make the submodules reachable as attributes, like the stdlib ones above.
    importlib.import_module("fastfutures.thread")
    importlib.import_module("fastfutures.process")
    return module


@pytest.fixture(params=["stdlib", "fastfutures"])
def cf(request):
    """The futures module under test: concurrent.futures or fastfutures."""
    if request.param == "stdlib":
        if request.node.get_closest_marker("stdlib_differs") is not None:
            pytest.skip("documented fastfutures-only behaviour")
        return concurrent.futures
    return _load_fastfutures()


@pytest.fixture
def is_fastfutures(cf):
    return cf is not concurrent.futures


def check_adds_up(s):
    """An executor.stats() snapshot's counters add up (ExecutorStats)."""
    assert s.submitted == s.queued + s.running + s.completed + s.failed + s.cancelled, s
    assert s.busy_workers + s.idle_workers == s.workers, s


def wait_until(predicate, timeout=TIMEOUT, interval=0.005):
    """Poll ``predicate`` until it is true; return its last value.

    Used where a test must observe something happening in another thread
    (a worker exiting, a task starting).  It never asserts on elapsed time:
    the caller asserts on the returned value.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def start_thread(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join_all(threads, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    assert not alive, f"threads still running (deadlock?): {alive}"


def src_path_of(module):
    """The directory to put on sys.path for a child process to import ``module``."""
    return os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))


def load_test_script(name):
    """tests/scripts/<name>.py as a module, without putting tests/scripts on sys.path."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", name + ".py")
    spec = importlib.util.spec_from_file_location("_fastfutures_test_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_leaked_threads():
    """Fail a test whose pools leave non-daemon threads running afterwards.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("no_leaked_threads")``.

    Every test shuts its executors down (or drops them); their workers must
    then exit.  Waits a bounded time, since shutdown(wait=False) and garbage
    collection let workers finish asynchronously.
    """
    before = set(threading.enumerate())
    yield

    def leaked():
        return [t for t in threading.enumerate()
                if t not in before and t.is_alive() and not t.daemon]

    if wait_until(lambda: not leaked(), timeout=TIMEOUT):
        return
    import gc
    gc.collect()
    remaining = leaked() if not wait_until(lambda: not leaked(), timeout=2) else []
    assert not remaining, f"threads left running after the test: {remaining}"


# -- a dask cluster on loopback (test_distributed*.py) ----------------------------

# Worker processes of the LocalCluster that dask_client starts.
DASK_WORKERS = 2


@pytest.fixture(scope="module")
def no_processes_left():
    """Every process a module starts (cluster, workers, pools, commands) is
    gone once its fixtures are torn down.  Opt in per module, before the
    fixtures that start them: ``pytest.mark.usefixtures("no_processes_left")``."""
    import psutil
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield

    def left():
        alive = []
        for process in me.children(recursive=True):
            try:
                if (process.pid not in before and process.status() != psutil.STATUS_ZOMBIE
                        # multiprocessing's, kept for the interpreter's life
                        and "resource_tracker" not in " ".join(process.cmdline())):
                    alive.append(process)
            except psutil.NoSuchProcess:
                pass
        return alive
    assert wait_until(lambda: not left(), timeout=30), left()


@pytest.fixture(scope="module")
def dask_client():
    """One LocalCluster of DASK_WORKERS single-threaded worker processes on
    127.0.0.1 for the module (starting one costs seconds), and a client."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=DASK_WORKERS, threads_per_worker=1,
                                       processes=True, dashboard_address=":0",
                                       host="127.0.0.1")
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()
