"""Bounded thread pools (max_queue_size, on_queue_full), idle_timeout and
QueueFull -- fastfutures only: the stdlib's pools have neither (the process
pool's are in test_process_stats.py)."""
import asyncio
import signal
import sys
import threading

import pytest

from conftest import TIMEOUT, join_all, start_thread, wait_until

pytestmark = pytest.mark.stdlib_differs(reason="bounded queues and idle_timeout are fastfutures only")


@pytest.mark.parametrize("kwargs, error", [
    ({"max_queue_size": 0}, ValueError),
    ({"max_queue_size": -3}, ValueError),
    ({"max_queue_size": "3"}, TypeError),
    ({"max_queue_size": 2.5}, TypeError),
    ({"max_queue_size": True}, TypeError),
    ({"max_queue_size": 2, "on_queue_full": "drop"}, ValueError),
    ({"max_queue_size": 2, "on_queue_full": "raise", "queue_full_timeout": 1}, ValueError),
    ({"max_queue_size": 2, "queue_full_timeout": -1}, ValueError),
    ({"max_queue_size": 2, "queue_full_timeout": "1"}, TypeError),
    ({"on_queue_full": "raise"}, ValueError),
    ({"idle_timeout": -0.5}, ValueError),
    ({"idle_timeout": "1"}, TypeError),
])
def test_bad_options_fail_at_construction(cf, kwargs, error):
    with pytest.raises(error):
        cf.ThreadPoolExecutor(2, **kwargs)


def test_queue_full_is_public_but_not_in_all(cf):
    assert issubclass(cf.QueueFull, Exception)
    assert "QueueFull" not in cf.__all__
    assert cf.QueueFull.__doc__


def held_pool(cf, gate, workers=1, **kwargs):
    """A bounded pool whose workers are all busy until `gate` is set."""
    ex = cf.ThreadPoolExecutor(workers, **kwargs)
    blockers = [ex.submit(gate.wait, TIMEOUT) for _ in range(workers)]
    assert wait_until(lambda: all(f.running() for f in blockers))
    return ex


def test_raise_policy(cf):
    gate = threading.Event()
    ex = held_pool(cf, gate, max_queue_size=2, on_queue_full="raise")
    try:
        queued = [ex.submit(abs, -i) for i in range(2)]
        ran = []
        with pytest.raises(cf.QueueFull):
            ex.submit(ran.append, 1)
        s = ex.stats()
        assert (s.queued, s.rejected, s.max_queue_size) == (2, 1, 2)
        gate.set()
        assert [f.result(TIMEOUT) for f in queued] == [0, 1]
        assert ex.submit(abs, -5).result(TIMEOUT) == 5      # room again
        assert ran == []
    finally:
        gate.set()
        ex.shutdown()


def test_caller_runs_policy(cf):
    gate = threading.Event()
    ex = held_pool(cf, gate, max_queue_size=1, on_queue_full="caller_runs")
    try:
        ex.submit(abs, 0)
        f = ex.submit(threading.get_ident)
        assert f.done() and f.result() == threading.get_ident()
        g = ex.submit(divmod, 1, 0)
        with pytest.raises(ZeroDivisionError):
            g.result(0)
        s = ex.stats()
        assert (s.ran_in_caller, s.queued, s.submitted) == (2, 1, 2)
    finally:
        gate.set()
        ex.shutdown()


def test_block_policy_waits_for_room_in_order(cf):
    gate = threading.Event()
    ex = held_pool(cf, gate, max_queue_size=2)
    order = []
    try:
        [ex.submit(order.append, "q%d" % i) for i in range(2)]
        producers = []
        for i in range(3):
            producers.append(start_thread(lambda i=i: ex.submit(order.append, "w%d" % i)))
            assert wait_until(lambda: ex._work_queue.waiting_submitters == i + 1)
        assert ex.stats().queued == 2               # never past the bound
        gate.set()
        join_all(producers)
        ex.shutdown()
        assert order == ["q0", "q1", "w0", "w1", "w2"]
        s = ex.stats()
        assert (s.submitted, s.completed, s.rejected) == (6, 6, 0)
    finally:
        gate.set()
        ex.shutdown()


def test_block_with_timeout_raises_queue_full_and_never_runs_the_call(cf):
    gate = threading.Event()
    ex = held_pool(cf, gate, max_queue_size=1, queue_full_timeout=0.05)
    ran = []
    try:
        ex.submit(abs, 0)
        with pytest.raises(cf.QueueFull):
            ex.submit(ran.append, 1)
        assert ex._work_queue.waiting_submitters == 0
        assert ex.stats().rejected == 1
        gate.set()
    finally:
        gate.set()
        ex.shutdown()
    assert ran == []


def test_shutdown_refuses_blocked_submitters(cf):
    gate = threading.Event()
    ex = held_pool(cf, gate, max_queue_size=1)
    ran, errors = [], []

    def produce():
        try:
            ex.submit(ran.append, 1)
        except RuntimeError as exc:
            errors.append(exc)

    ex.submit(abs, 0)
    producers = [start_thread(produce) for _ in range(3)]
    assert wait_until(lambda: ex._work_queue.waiting_submitters == 3)
    ex.shutdown(wait=False)
    join_all(producers)
    gate.set()
    ex.shutdown()
    assert ran == [] and len(errors) == 3
    assert all("shutdown" in str(e) for e in errors)


@pytest.mark.skipif(sys.platform == "win32", reason="pthread_kill")
def test_ctrl_c_in_a_blocked_submit_loses_nothing(cf):
    gate = threading.Event()
    ex = held_pool(cf, gate, max_queue_size=1)
    ran = []
    main = threading.get_ident()
    # A suite started in the background (`&`, nohup) inherits SIGINT ignored:
    # Ctrl-C raises only with Python's default handler, as in CPython's tests.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        ex.submit(abs, 0)
        killer = start_thread(lambda: (wait_until(lambda: ex._work_queue.waiting_submitters),
                                       signal.pthread_kill(main, signal.SIGINT)))
        with pytest.raises(KeyboardInterrupt):
            ex.submit(ran.append, 1)
        join_all([killer])
        assert ex._work_queue.waiting_submitters == 0
        gate.set()
    finally:
        signal.signal(signal.SIGINT, previous)
        gate.set()
        ex.shutdown()
    assert ran == []
    s = ex.stats()
    assert s.submitted == s.completed == 2


@pytest.mark.parametrize("policy", ["block", "raise", "caller_runs"])
def test_a_call_in_the_pool_never_waits_for_its_own_pool(cf, policy):
    ex = cf.ThreadPoolExecutor(1, max_queue_size=1, on_queue_full=policy)
    queue_is_full = threading.Event()

    def resubmit():
        queue_is_full.wait(TIMEOUT)
        try:
            inner = ex.submit(threading.get_ident)
        except cf.QueueFull:
            return "QueueFull"
        return inner.done() and inner.result() == threading.get_ident()

    try:
        f = ex.submit(resubmit)
        assert wait_until(f.running)
        filler = ex.submit(abs, -2)
        queue_is_full.set()
        assert f.result(TIMEOUT) == (True if policy == "caller_runs" else "QueueFull")
        assert filler.result(TIMEOUT) == 2
    finally:
        queue_is_full.set()
        ex.shutdown()


def test_a_done_callback_on_a_worker_never_waits(cf):
    gate = threading.Event()
    ex = cf.ThreadPoolExecutor(1, max_queue_size=1)
    seen = []

    def callback(_):
        # Runs on the worker as the held call ends, the queue still full.
        try:
            ex.submit(abs, 1)
        except cf.QueueFull:
            seen.append(threading.current_thread() in ex._threads)

    try:
        held = ex.submit(gate.wait, TIMEOUT)
        assert wait_until(held.running)
        queued = ex.submit(abs, -3)
        held.add_done_callback(callback)
        gate.set()
        assert queued.result(TIMEOUT) == 3
    finally:
        gate.set()
        ex.shutdown()
    assert seen == [True]


def test_map_respects_the_bound(cf):
    depth = []
    with cf.ThreadPoolExecutor(2, max_queue_size=3) as ex:
        def work(x):
            depth.append(ex._work_queue.qsize())
            return x * 2
        assert list(ex.map(work, range(300))) == [x * 2 for x in range(300)]
        assert max(depth) <= 3
        assert ex.stats().submitted == 300


@pytest.mark.skipif(sys.version_info < (3, 14), reason="map(buffersize=) is 3.14's")
def test_map_with_buffersize_respects_the_bound(cf):
    depth = []
    with cf.ThreadPoolExecutor(2, max_queue_size=2) as ex:
        def work(x):
            depth.append(ex._work_queue.qsize())
            return x
        assert list(ex.map(work, range(100), buffersize=10)) == list(range(100))
    assert max(depth) <= 2


def test_asyncio_loop_keeps_running_while_calls_wait_for_room(cf):
    from fastfutures import asyncio as ff_asyncio
    gate = threading.Event()
    depth = []

    def work(x):
        depth.append(ex._work_queue.qsize())
        gate.wait(TIMEOUT)
        return x

    async def main():
        ff_asyncio.install(executor=ex)
        loop = asyncio.get_running_loop()
        calls = [loop.run_in_executor(None, work, i) for i in range(10)]
        calls += [asyncio.ensure_future(asyncio.to_thread(work, i)) for i in range(10, 20)]
        ticks = 0
        # The worker is held and the queue is full: every producer waits,
        # and the loop goes on serving this task.
        while ticks < 20:
            await asyncio.sleep(0)
            ticks += 1
        assert ex._work_queue.qsize() == 2
        assert ex._work_queue.waiting_submitters >= 15
        gate.set()
        return await asyncio.wait_for(asyncio.gather(*calls), TIMEOUT)

    ex = cf.ThreadPoolExecutor(1, max_queue_size=2)
    try:
        assert asyncio.run(main()) == list(range(20))
    finally:
        gate.set()
        ex.shutdown()
    assert max(depth) <= 2
    s = ex.stats()
    assert s.submitted == s.completed == 20


def test_idle_workers_exit_and_the_pool_grows_again(cf):
    with cf.ThreadPoolExecutor(3, idle_timeout=0.05) as ex:
        gate = threading.Event()
        fs = [ex.submit(gate.wait, TIMEOUT) for _ in range(3)]
        assert wait_until(lambda: all(f.running() for f in fs))
        assert ex.stats().workers == 3
        gate.set()
        assert wait_until(lambda: ex.stats().workers == 0)
        s = ex.stats()
        assert s.workers_exited_idle == 3 and not ex._threads
        assert ex.submit(abs, -4).result(TIMEOUT) == 4
        assert ex.stats().workers == 1
        assert len({t.name for t in ex._threads}) == len(ex._threads)
