"""Bounded concurrency stress: many threads racing on the same futures.

Every test has a fixed amount of work (a few seconds at most on 2 cores),
joins its threads with a deadline, and checks that every future ended in a
terminal state with exactly one outcome.
"""
import random
import sys
import threading
import time

import pytest

from conftest import TIMEOUT, join_all, start_thread

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

N_THREADS = 4


@pytest.fixture(autouse=True)
def frequent_thread_switches():
    # Switch threads far more often than the default 5 ms so that the races
    # below actually interleave inside the futures' methods.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(target, n=N_THREADS, *args):
    barrier = threading.Barrier(n)

    def body(i):
        barrier.wait(TIMEOUT)
        target(i, *args)

    errors = []

    def guarded(i):
        try:
            body(i)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [start_thread(guarded, i) for i in range(n)]
    join_all(threads, timeout=60)
    if errors:
        raise errors[0]


def test_racing_transitions_exactly_one_wins(cf):
    """set_result / set_exception / cancel race on every future."""
    n = 3000
    futures = [cf.Future() for _ in range(n)]
    outcomes = [[] for _ in range(n)]
    callbacks = [0] * n
    lock = threading.Lock()

    for i, f in enumerate(futures):
        def cb(fut, i=i):
            with lock:
                callbacks[i] += 1
        f.add_done_callback(cb)

    def racer(k):
        rnd = random.Random(k)
        order = list(range(n))
        rnd.shuffle(order)
        for i in order:
            f = futures[i]
            action = (i + k) % 3
            try:
                if action == 0:
                    f.set_result(k)
                    won = ("result", k)
                elif action == 1:
                    f.set_exception(ValueError(k))
                    won = ("exception", k)
                else:
                    won = ("cancel", k) if f.cancel() else None
            except cf.InvalidStateError:
                won = None
            if won is not None:
                with lock:
                    outcomes[i].append(won)

    run_threads(racer)

    for i, f in enumerate(futures):
        assert f.done()
        kinds = {kind for kind, _ in outcomes[i]}
        assert callbacks[i] == 1, (i, callbacks[i])
        if f.cancelled():
            assert kinds == {"cancel"}
            with pytest.raises(cf.CancelledError):
                f.result(timeout=0)
        else:
            # Exactly one setter succeeded and no cancel() returned True.
            assert len(outcomes[i]) == 1, outcomes[i]
            kind, k = outcomes[i][0]
            if kind == "result":
                assert f.result(timeout=0) == k
            else:
                assert kind == "exception"
                assert f.exception(timeout=0).args == (k,)


def test_waiters_and_completers(cf):
    """wait() and as_completed() in several threads while others complete."""
    n = 1500
    futures = [cf.Future() for _ in range(n)]
    seen = {}
    lock = threading.Lock()

    def completer(k):
        for i in range(k, n, 2):
            f = futures[i]
            if i % 5 == 0:
                f.cancel()
                f.set_running_or_notify_cancel()
            elif i % 7 == 0:
                f.set_exception(KeyError(i))
            else:
                f.set_result(i)

    def as_completed_consumer(k):
        got = list(cf.as_completed(futures, timeout=TIMEOUT))
        with lock:
            seen[("as_completed", k)] = got

    def wait_consumer(k):
        results = []
        results.append(cf.wait(futures, timeout=TIMEOUT, return_when=cf.FIRST_COMPLETED))
        results.append(cf.wait(futures, timeout=TIMEOUT, return_when=cf.FIRST_EXCEPTION))
        results.append(cf.wait(futures, timeout=TIMEOUT))
        with lock:
            seen[("wait", k)] = results

    def role(i):
        if i < 2:
            completer(i)
        elif i < 4:
            as_completed_consumer(i)
        else:
            wait_consumer(i)

    run_threads(role, 6)

    everything = set(futures)
    for key, value in seen.items():
        if key[0] == "as_completed":
            assert len(value) == n and set(value) == everything
        else:
            first, first_exc, all_done = value
            assert first.done
            assert first.done | first.not_done == everything
            assert first_exc.done | first_exc.not_done == everything
            assert all_done.done == everything and not all_done.not_done
    assert len(seen) == 4


def test_thread_pool_submit_cancel_from_many_threads(cf):
    """Several submitters, a canceller, and the workers, all at once."""
    per_thread = 2000
    submitted = []
    lock = threading.Lock()

    with cf.ThreadPoolExecutor(max_workers=4) as ex:
        def submitter(k):
            for i in range(per_thread):
                f = ex.submit(pow, i, 2)
                with lock:
                    submitted.append((i, f))

        def canceller(k):
            rnd = random.Random(k)
            for _ in range(per_thread):
                with lock:
                    if not submitted:
                        continue
                    _, f = submitted[rnd.randrange(len(submitted))]
                f.cancel()

        def role(k):
            if k == 0:
                canceller(k)
            else:
                submitter(k)

        run_threads(role, N_THREADS)

    assert len(submitted) == (N_THREADS - 1) * per_thread
    futures = [f for _, f in submitted]
    # After shutdown(wait=True) every cancelled item was seen by a worker and
    # notified, so wait() counts everything as done.
    done, not_done = cf.wait(futures, timeout=TIMEOUT)
    assert not not_done
    for i, f in submitted:
        assert f.done()
        if not f.cancelled():
            assert f.result(timeout=0) == i * i


def test_thread_pool_callbacks_and_nested_submit(cf):
    """Callbacks that submit more work, from worker threads."""
    total = 2000
    results = []
    lock = threading.Lock()
    all_done = threading.Event()

    with cf.ThreadPoolExecutor(max_workers=4) as ex:
        def chain(fut):
            with lock:
                results.append(fut.result(timeout=0))
                count = len(results)
            if count == total:
                all_done.set()

        for i in range(total // 2):
            f = ex.submit(pow, i, 1)
            f.add_done_callback(chain)
            f.add_done_callback(
                lambda fut, i=i: ex.submit(pow, i + total // 2, 1).add_done_callback(chain))
        assert all_done.wait(TIMEOUT)
    assert sorted(results) == list(range(total))


def test_map_from_many_threads(cf):
    with cf.ThreadPoolExecutor(max_workers=3) as ex:
        outputs = {}

        def mapper(k):
            outputs[k] = list(ex.map(lambda x: x * k, range(200), timeout=TIMEOUT))

        run_threads(mapper)
    for k in range(N_THREADS):
        assert outputs[k] == [x * k for x in range(200)]


def test_result_waiters_racing_with_completion(cf):
    """Many threads block in result()/exception() while another completes."""
    n = 1500
    futures = [cf.Future() for _ in range(n)]
    got = [[] for _ in range(N_THREADS)]

    def role(k):
        if k == 0:
            for i, f in enumerate(futures):
                if i % 4 == 0:
                    f.cancel()
                else:
                    f.set_result(i)
            return
        for i, f in enumerate(futures):
            try:
                got[k].append(f.result(timeout=TIMEOUT))
            except cf.CancelledError:
                got[k].append("cancelled")

    run_threads(role)
    expected = ["cancelled" if i % 4 == 0 else i for i in range(n)]
    for k in range(1, N_THREADS):
        assert got[k] == expected


def test_shutdown_cancel_futures_racing_with_submitters(cf):
    ex = cf.ThreadPoolExecutor(max_workers=2)
    submitted = []
    lock = threading.Lock()
    refused = []

    def role(k):
        if k == 0:
            ex.shutdown(wait=False, cancel_futures=True)
            return
        for i in range(2000):
            try:
                f = ex.submit(abs, -i)
            except RuntimeError:
                refused.append(k)
                return
            with lock:
                submitted.append(f)

    try:
        run_threads(role)
    finally:
        ex.shutdown(wait=True)
    for f in submitted:
        assert f.done()
        if not f.cancelled():
            assert f.result(timeout=0) >= 0
    # Futures cancelled by shutdown(cancel_futures=True) are never notified
    # by the stdlib (see test_thread_pool), so only the others go to wait().
    ran = [f for f in submitted if not f.cancelled()]
    done, not_done = cf.wait(ran, timeout=TIMEOUT)
    assert not not_done


def test_add_done_callback_racing_with_completion(cf):
    """Callbacks added while another thread completes: each runs once."""
    n = 1000
    futures = [cf.Future() for _ in range(n)]
    counts = [[0] * n for _ in range(N_THREADS)]

    def role(k):
        if k == 0:
            for i, f in enumerate(futures):
                if i % 3 == 0:
                    f.cancel()
                else:
                    f.set_result(i)
            return
        row = counts[k]
        for i, f in enumerate(futures):
            def cb(fut, i=i):
                row[i] += 1
            f.add_done_callback(cb)

    run_threads(role)
    for k in range(1, N_THREADS):
        assert counts[k] == [1] * n


class _SwitchOnCollect:
    """Garbage in a reference cycle whose finalizer lets other threads run:
    every GC pass then becomes a thread switch, also inside code that only
    allocates (where a lost wake-up once hid between a state check and the
    installation of a waiter)."""

    def __init__(self):
        self.cycle = self

    def __del__(self):
        import time
        time.sleep(0)


@pytest.fixture
def gc_switches_threads():
    import gc
    old = gc.get_threshold()
    gc.set_threshold(50, 1, 1)
    stop = threading.Event()

    def make_garbage():
        while not stop.is_set():
            _SwitchOnCollect()
            stop.wait(0.0005)

    t = start_thread(make_garbage)
    try:
        yield
    finally:
        stop.set()
        t.join(TIMEOUT)
        gc.set_threshold(*old)


@pytest.mark.parametrize("rounds", [30])
def test_waiting_while_the_gc_switches_threads(cf, gc_switches_threads, rounds):
    """result(), wait() and as_completed() never miss a completion, even
    when the GC runs finalizers (and so switches threads) at any allocation."""
    for _ in range(rounds):
        futures = [cf.Future() for _ in range(200)]

        def complete(i):
            for f in futures[i::2]:
                f.set_result(None)

        def consume(i):
            if i == 2:
                assert len(list(cf.as_completed(futures, timeout=TIMEOUT))) == len(futures)
            elif i == 3:
                done, not_done = cf.wait(futures, timeout=TIMEOUT,
                                         return_when=cf.FIRST_EXCEPTION)
                assert not not_done
            else:
                for f in reversed(futures):
                    f.result(timeout=TIMEOUT)

        run_threads(lambda i: complete(i) if i < 2 else consume(i), 5)


def test_many_waiters_installing_while_the_gc_switches_threads(cf, gc_switches_threads):
    """Several wait()/as_completed() calls install waiters on the same
    futures at once: none is dropped (a waiter list allocated by one thread
    could replace the one another thread had just stored)."""
    for _ in range(40):
        futures = [cf.Future() for _ in range(150)]
        installed = threading.Barrier(6)

        def complete(i):
            installed.wait(TIMEOUT)
            for f in futures[i::2]:
                f.set_result(None)

        def consume(i):
            if i % 2:
                it = cf.as_completed(futures, timeout=TIMEOUT)
                installed.wait(TIMEOUT)
                assert len(list(it)) == len(futures)
            else:
                installed.wait(TIMEOUT)
                done, not_done = cf.wait(futures, timeout=TIMEOUT,
                                         return_when=cf.FIRST_EXCEPTION)
                assert not not_done

        run_threads(lambda i: complete(i) if i < 2 else consume(i), 6)


def test_callbacks_while_the_gc_switches_threads(cf, gc_switches_threads):
    """Every callback added while another thread completes runs exactly once
    (a callback stored while the completer detached the list was lost)."""
    for _ in range(100):
        futures = [cf.Future() for _ in range(300)]
        calls = []

        def complete(i):
            for f in futures:
                f.set_result(None)

        def add_callbacks(i):
            for f in futures:
                for k in range(3):
                    f.add_done_callback(lambda fut, k=k: calls.append((fut, k)))

        run_threads(lambda i: complete(i) if i == 0 else add_callbacks(i), 3)
        assert len(calls) == len(futures) * 3 * 2
        assert len(set(calls)) == len(futures) * 3


@pytest.mark.parametrize("max_workers", [1, 3])
def test_shutdown_wait_races_submits(cf, gc_switches_threads, max_workers):
    """A submit() that returned a future queued it before shutdown(wait=True)
    began: the future is done when shutdown returns; and however the
    submitting threads interleave, no more than max_workers threads start."""
    for _ in range(20):
        ex = cf.ThreadPoolExecutor(max_workers)
        futures = []
        started = threading.Barrier(4)

        def submitter(i):
            started.wait(TIMEOUT)
            while True:
                try:
                    # Alternately a task that keeps a worker busy a while.
                    futures.append(ex.submit(time.sleep, 0.0005) if len(futures) % 2
                                   else ex.submit(pow, i, 2))
                except RuntimeError:
                    return

        threads = [start_thread(submitter, i) for i in range(3)]
        started.wait(TIMEOUT)
        ex.shutdown(wait=True)
        join_all(threads)
        assert len(ex._threads) <= max_workers
        assert all(f.done() for f in futures)
