"""test_process.py's tests, run on DaskExecutor (issue 12).

Every stdlib-semantics test of the process pool runs here, unchanged, with
its pools -- the ``shared_pool`` and ``make_pool`` fixtures -- replaced by
DaskExecutors on one LocalCluster of two worker processes on loopback
(conftest's ``dask_client``).  The tests that are about the processes of
this machine, or about a documented difference of DaskExecutor (see
fastfutures.distributed), are skipped with their reason: the table below.
A test added to test_process.py runs here too until it is listed.

``make_pool(n)`` gives a DaskExecutor on the cluster's two workers whatever
``n`` asks: the tests that use it hold for any number of workers.
"""
import sys
import types

import pytest

from conftest import _load_fastfutures

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install \"fastfutures[dask]\")")

import test_process  # noqa: E402
from test_process import *  # noqa: E402,F401,F403  -- the tests, their helpers and fixtures

from fastfutures.distributed import DaskExecutor  # noqa: E402

# -- the tests of test_process.py that do not run on DaskExecutor -------------------

_PROCESSES = "about the worker processes of this machine: "
_DIFFERS = "a documented DaskExecutor difference: "
NOT_ON_DASK = {
    "test_types": _DIFFERS + "an Executor, not a ProcessPoolExecutor subclass",
    "test_every_call_not_started_can_be_cancelled":
        _PROCESSES + "fastfutures' worker rings, per start method",
    "test_shutdown_cancel_futures_cancels_calls_in_rings":
        _PROCESSES + "fastfutures' worker rings",
    "test_shutdown_cancel_futures_spares_each_starting_workers_first_call":
        _PROCESSES + "fastfutures' worker rings, initializer",
    "test_constructor_validation": _PROCESSES + "mp_context, max_tasks_per_child, cpu count",
    "test_initializer": _PROCESSES + "initializer",
    "test_failing_initializer_breaks_pool": _PROCESSES + "initializer",
    "test_no_reference_cycle_survives_shutdown": _PROCESSES + "initializer, mp_context",
    "test_max_tasks_per_child_replaces_workers": _PROCESSES + "max_tasks_per_child",
    "test_max_tasks_per_child_shutdown_runs_queued_work": _PROCESSES + "max_tasks_per_child",
    "test_worker_that_cannot_start_fails_submit": _PROCESSES + "spawn, initargs",
    "test_large_call_refused_by_a_full_ring_is_sent_later":
        _PROCESSES + "fastfutures' worker rings",
    "test_start_methods": _PROCESSES + "fork, spawn, forkserver",
    "test_unpicklable_argument_fails_only_that_future":
        _DIFFERS + "dask pickles with cloudpickle: a lambda travels",
    "test_unpicklable_result_fails_only_that_future":
        _DIFFERS + "dask pickles with cloudpickle: a lambda travels",
    "test_result_that_fails_to_unpickle_breaks_pool":
        _DIFFERS + "only that future fails (no shared result stream to lose)",
    "test_worker_dies_mid_task":
        _PROCESSES + "killing a worker pid (dask's retry: test_distributed.py)",
    "test_no_leaks_after_sigkill": _PROCESSES + "killing a worker pid, /dev/shm, fds",
    "test_no_leaks_after_clean_shutdown": _PROCESSES + "/dev/shm, fds",
    "test_workers_exit_with_their_parent": _PROCESSES + "worker pids, os.fork, exit hook",
    "test_terminate_and_kill_workers": _PROCESSES + "terminate_workers/kill_workers",
    "test_memoryview_travels": _PROCESSES + "memoryviews through shared memory",
    "test_zero_copy_results": _PROCESSES + "zero_copy_results, shared memory",
}

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process control"),
    # Torn down last: every process the module starts is gone by then.
    pytest.mark.usefixtures("no_processes_left"),
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
    # dask's advice on a task whose arguments pass 10 MiB (scatter them);
    # the value still travels, which is what the tests check.
    pytest.mark.filterwarnings("ignore:Sending large graph of size:UserWarning"),
]


@pytest.fixture(autouse=True)
def not_on_dask(request):
    # A skip, not a mark: the test functions are test_process.py's own
    # objects, and a mark set on them would reach its tests too.
    reason = NOT_ON_DASK.get(request.function.__name__)
    if reason is not None:
        pytest.skip(reason)


# -- test_process.py's pools, as DaskExecutors ---------------------------------------

@pytest.fixture(scope="module")
def shared_pool(dask_client):
    executor = DaskExecutor(dask_client)
    executor.cf = _load_fastfutures()
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def make_pool(dask_client):
    made = []

    def factory(max_workers=2):
        executor = DaskExecutor(dask_client)
        made.append(executor)
        return executor
    factory.cf = _load_fastfutures()
    yield factory
    for executor in made:
        executor.shutdown(wait=True, cancel_futures=True)


def test_shutdown_cancel_futures_cancels_queued_calls(make_pool, monkeypatch):
    """test_process's, which builds its own pool through _module(impl)."""
    as_module = types.SimpleNamespace(
        ProcessPoolExecutor=lambda max_workers, mp_context=None: make_pool(max_workers))
    monkeypatch.setattr(test_process, "_module", lambda impl: as_module)
    test_process.test_shutdown_cancel_futures_cancels_queued_calls("dask", None)


def test_the_table_names_tests_of_test_process():
    assert [name for name in NOT_ON_DASK if not hasattr(test_process, name)] == []
