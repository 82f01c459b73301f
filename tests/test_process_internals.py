"""Internal tests of the process pool's compiled parts (no stdlib twin: they
test fastfutures' own machinery, not behaviour the stdlib shares).

* The worker state machine: every transition of the table written above
  WorkerHandle in _process_workers.pxi, applied to a handle over a real
  channel and a stand-in process, from every state where it is legal, and
  the transitions that must be refused.
* The claim slots as the pool sees them (debug_state()): a stalled worker's
  unclaimed calls are taken back and its slots stay stale until the worker
  skips their records; every slot is free, stale or occupied, never two.
"""
import concurrent.futures
import multiprocessing
import os
import sys
import time

import pytest

from conftest import TIMEOUT, _load_fastfutures, wait_until

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"),
    pytest.mark.stdlib_differs(reason="fastfutures' own process-pool internals"),
    pytest.mark.skipif(sys.platform != "linux", reason="the shared-memory transport"),
]


class FakeProcess:
    """What a WorkerHandle uses of a multiprocessing.Process."""

    def __init__(self):
        self.pid = 424242
        self.read_fd, self.sentinel = os.pipe()
        self.exitcode = None
        self.signals = []

    def terminate(self):
        self.signals.append("TERM")

    def kill(self):
        self.signals.append("KILL")

    def join(self, timeout=None):
        self.exitcode = 0

    def close(self):
        os.close(self.read_fd)
        os.close(self.sentinel)


@pytest.fixture
def core():
    _load_fastfutures()
    from fastfutures import _process_core
    return _process_core


@pytest.fixture
def handle(core):
    from fastfutures import _transport
    channel = _transport.ParentChannel()
    process = FakeProcess()
    waitset = core.WaitSet()
    worker = core.WorkerHandle(process, channel, None, False, waitset)
    yield worker
    if worker.state_name != "dead":
        channel.close()
    process.close()


def walk(core, worker, *names):
    return [core._apply_transition(worker, name) for name in names]


def test_starting_worker_serves_after_its_first_reply(core, handle):
    assert handle.state_name == "starting"
    walk(core, handle, "served")
    assert handle.state_name == "serving"


def test_hold_and_release_return_to_the_state_before(core, handle):
    assert walk(core, handle, "hold") == [True]
    assert handle.state_name == "held"
    assert walk(core, handle, "hold") == [False]        # already held
    walk(core, handle, "release_hold")
    assert handle.state_name == "starting"
    walk(core, handle, "served", "hold")
    walk(core, handle, "release_hold")
    assert handle.state_name == "serving"


def test_a_reply_read_while_held_changes_the_state_it_returns_to(core, handle):
    walk(core, handle, "hold", "served")
    assert handle.state_name == "held"
    walk(core, handle, "release_hold")
    assert handle.state_name == "serving"
    walk(core, handle, "hold", "retire")
    walk(core, handle, "release_hold")
    assert handle.state_name == "retiring"


def test_retiring_after_its_last_task(core, handle):
    walk(core, handle, "served", "retire")
    assert handle.state_name == "retiring"
    assert walk(core, handle, "tell_to_leave") == [False]   # takes no calls now
    assert handle.state_name == "retiring"


def test_told_to_leave_then_retiring(core, handle):
    assert walk(core, handle, "served", "tell_to_leave") == [None, True]
    assert handle.state_name == "leaving"
    walk(core, handle, "retire")
    assert handle.state_name == "retiring"


@pytest.mark.parametrize("before", [(), ("served",), ("served", "tell_to_leave"),
                                    ("served", "retire"), ("hold",)])
def test_dying_from_every_living_state(core, handle, before):
    walk(core, handle, *before)
    assert walk(core, handle, "start_dying") == [True]
    assert handle.state_name == "dying"
    assert handle.process.signals == ["TERM"]
    # Final until it is buried: nothing brings it back.
    assert walk(core, handle, "start_dying", "hold", "tell_to_leave") == [False, False, False]
    walk(core, handle, "served", "retire")
    assert handle.state_name == "dying"
    walk(core, handle, "bury")
    assert handle.state_name == "dead"
    assert walk(core, handle, "start_dying") == [False]


def test_unknown_transition_is_refused(core, handle):
    with pytest.raises(ValueError):
        core._apply_transition(handle, "resurrect")


# -- the claim slots, seen through the pool ---------------------------------------

def wait_for_file(path, bound=TIMEOUT):
    deadline = time.monotonic() + bound
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return "gate never opened"
        time.sleep(0.002)
    return "opened"


def square(x):
    return x * x


def slots_partition(worker):
    """Every slot is exactly one of free, stale, occupied."""
    occupied = set(worker["calls"])
    free = {s for s in range(8) if worker["free_slots"] >> s & 1}
    stale = {s for s in range(8) if worker["stale_slots"] >> s & 1}
    return (not (free & stale) and not (free & occupied) and not (stale & occupied)
            and free | stale | occupied == set(range(8))
            and worker["in_flight"] == len(occupied))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_stalled_workers_calls_move_and_its_slots_stay_stale(tmp_path, method):
    ff = _load_fastfutures()
    gate = str(tmp_path / "gate")
    with ff.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool:
        assert list(pool.map(square, range(8))) == [x * x for x in range(8)]
        long_call = pool.submit(wait_for_file, gate)
        assert wait_until(long_call.running)
        shorts = [pool.submit(square, i) for i in range(12)]
        done, not_done = concurrent.futures.wait(shorts, timeout=TIMEOUT)
        state = pool._core.debug_state()
        assert not not_done
        stuck = [w for w in state["workers"] if w["in_flight"]]
        assert len(stuck) == 1 and stuck[0]["stalled"]
        assert all(slots_partition(w) for w in state["workers"])
        open(gate, "w").close()
        assert long_call.result(timeout=TIMEOUT) == "opened"
        # Once it has skipped the records taken from it, its slots are free.
        assert pool.submit(square, 3).result(timeout=TIMEOUT) == 9
        assert wait_until(lambda: all(
            w["stale_slots"] == 0 and w["in_flight"] == 0 and slots_partition(w)
            for w in pool._core.debug_state()["workers"]))
