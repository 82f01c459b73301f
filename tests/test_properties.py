"""Property-based tests (hypothesis).

* ``FutureComparison``: random sequences of Future operations applied to a
  fastfutures Future and a concurrent.futures Future side by side; every
  outcome (return value, or exception type) must be the same, and so must
  the callbacks' calls, wait(timeout=0) and as_completed(timeout=0).
* Threaded variants: the same operations from several threads at once on
  shared futures; invariants: every future ends in exactly one terminal
  state, exactly one completing call succeeds, every callback runs once.
* Random interleavings of submit / cancel / shutdown(cancel_futures) on the
  thread pool and the process pool: every future reaches a terminal state
  and every callback runs exactly once.

Default runs use few examples; the ``slow`` variants many more:
``python -m pytest -m slow tests/test_properties.py``.
"""
import concurrent.futures
import logging
import multiprocessing
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

import fastfutures
import fastfutures.process

from conftest import TIMEOUT, wait_until

pytestmark = pytest.mark.filterwarnings(
    # 3.12+: the process-pool property forks while pool threads exist.
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")

PROCESS_POOL_LANDED = fastfutures.process.ProcessPoolExecutor.__module__ == "fastfutures.process"

# Rules that take a future are filtered out until the bundle has one: at
# random, that can trip the filter_too_much health check (seen on 3.12).
HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much]
FAST = settings(max_examples=60, deadline=None, stateful_step_count=30,
                suppress_health_check=HEALTH)
THOROUGH = settings(max_examples=1000, deadline=None, stateful_step_count=60,
                    suppress_health_check=HEALTH)

RETURN_WHENS = [concurrent.futures.FIRST_COMPLETED, concurrent.futures.FIRST_EXCEPTION,
                concurrent.futures.ALL_COMPLETED]


@pytest.fixture(autouse=True)
def quiet_futures_logger():
    # set_running_or_notify_cancel() in a wrong state logs CRITICAL (both
    # implementations); keep it out of the output.
    logger = logging.getLogger("concurrent.futures")
    old = logger.disabled
    logger.disabled = True
    yield
    logger.disabled = old


def outcome(call):
    """What a call did: ('ok', value) or ('raised', exception type)."""
    try:
        value = call()
    except BaseException as exc:    # noqa: B902 - compared, never swallowed silently
        return ("raised", type(exc))
    if isinstance(value, BaseException):
        return ("ok", type(value), value.args)
    return ("ok", value)


# ---------------------------------------------------------------------------
# fastfutures vs stdlib, operation by operation

class FutureComparison(RuleBasedStateMachine):
    futures = Bundle("futures")

    @initialize()
    def setup(self):
        self.pairs = []         # [(fastfutures.Future, concurrent.futures.Future)]
        self.calls = {}         # (pair index, side) -> [(callback id, done, cancelled)]
        self.callbacks_added = {}

    @rule(target=futures)
    def new_future(self):
        self.pairs.append((fastfutures.Future(), concurrent.futures.Future()))
        index = len(self.pairs) - 1
        self.calls[index, 0] = []
        self.calls[index, 1] = []
        self.callbacks_added[index] = 0
        return index

    def both(self, index, op):
        ff_future, std_future = self.pairs[index]
        got = outcome(lambda: op(ff_future))
        expected = outcome(lambda: op(std_future))
        assert got == expected, (op, got, expected)
        return got

    @rule(i=futures)
    def cancel(self, i):
        self.both(i, lambda f: f.cancel())

    @rule(i=futures)
    def set_running_or_notify_cancel(self, i):
        self.both(i, lambda f: f.set_running_or_notify_cancel())

    @rule(i=futures, value=st.integers())
    def set_result(self, i, value):
        self.both(i, lambda f: f.set_result(value))

    @rule(i=futures, value=st.integers(), kind=st.sampled_from([ValueError, KeyError, SystemExit]))
    def set_exception(self, i, value, kind):
        self.both(i, lambda f: f.set_exception(kind(value)))

    @rule(i=futures)
    def add_done_callback(self, i):
        number = self.callbacks_added[i]
        self.callbacks_added[i] += 1
        for side, future in enumerate(self.pairs[i]):
            record = self.calls[i, side]
            future.add_done_callback(
                lambda f, record=record, n=number: record.append((n, f.done(), f.cancelled())))

    @rule(i=futures)
    def result(self, i):
        self.both(i, lambda f: f.result(timeout=0))

    @rule(i=futures)
    def exception(self, i):
        self.both(i, lambda f: f.exception(timeout=0))

    @rule(i=futures)
    def predicates(self, i):
        self.both(i, lambda f: (f.done(), f.running(), f.cancelled()))

    @rule(indices=st.lists(futures, min_size=1, max_size=5), return_when=st.sampled_from(RETURN_WHENS))
    def wait(self, indices, return_when):
        results = []
        for side in (0, 1):
            module = fastfutures if side == 0 else concurrent.futures
            fs = [self.pairs[i][side] for i in indices]
            done, not_done = module.wait(fs, timeout=0, return_when=return_when)
            results.append((sorted({indices[fs.index(f)] for f in done}),
                            sorted({indices[fs.index(f)] for f in not_done})))
        assert results[0] == results[1]

    @rule(indices=st.lists(futures, min_size=1, max_size=5))
    def as_completed(self, indices):
        results = []
        for side in (0, 1):
            module = fastfutures if side == 0 else concurrent.futures
            fs = [self.pairs[i][side] for i in indices]
            yielded = set()
            timed_out = False
            try:
                for f in module.as_completed(fs, timeout=0):
                    yielded.add(indices[fs.index(f)])
            except concurrent.futures.TimeoutError as exc:
                timed_out = str(exc)
            results.append((sorted(yielded), timed_out))
        assert results[0] == results[1]

    @invariant()
    def same_callback_calls(self):
        for index in range(len(self.pairs)):
            assert self.calls[index, 0] == self.calls[index, 1]
            ff_future = self.pairs[index][0]
            # Every callback ran exactly once iff the future is done.
            expected = self.callbacks_added[index] if ff_future.done() else 0
            assert sorted(n for n, _, _ in self.calls[index, 0]) == list(range(expected))


FutureComparison.TestCase.settings = FAST
test_future_against_stdlib = FutureComparison.TestCase


class FutureComparisonThorough(FutureComparison):
    pass


FutureComparisonThorough.TestCase.settings = THOROUGH
test_future_against_stdlib_thorough = pytest.mark.slow(FutureComparisonThorough.TestCase)


# ---------------------------------------------------------------------------
# several threads on shared futures

THREAD_OPS = st.sampled_from(["cancel", "run", "result", "exception", "callback",
                              "wait", "as_completed", "query", "result_blocking"])


def run_threaded_ops(cf, n_futures, programs):
    futures = [cf.Future() for _ in range(n_futures)]
    lock = threading.Lock()
    succeeded = [[] for _ in futures]        # successful completing calls
    callbacks = [0] * n_futures               # added
    calls = [[] for _ in futures]             # callback runs (ids)
    errors = []
    barrier = threading.Barrier(len(programs))

    def worker(thread_no, program):
        try:
            barrier.wait(TIMEOUT)
            for step, (op, i) in enumerate(program):
                f = futures[i % n_futures]
                i = i % n_futures
                if op == "cancel":
                    if f.cancel():
                        with lock:
                            succeeded[i].append("cancel")
                elif op == "run":
                    try:
                        if f.set_running_or_notify_cancel():
                            with lock:
                                succeeded[i].append("running")
                            if step % 2:
                                f.set_result((thread_no, step))
                            else:
                                f.set_exception(ValueError(thread_no, step))
                            with lock:
                                succeeded[i].append("finished")
                    except RuntimeError:
                        pass        # not PENDING/CANCELLED any more
                elif op == "result":
                    try:
                        f.result(timeout=0)
                    except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError,
                            ValueError):
                        pass
                elif op == "result_blocking":
                    # Bounded: another thread may never complete it.
                    try:
                        f.result(timeout=0.001)
                    except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError,
                            ValueError):
                        pass
                elif op == "exception":
                    try:
                        f.exception(timeout=0)
                    except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
                        pass
                elif op == "callback":
                    with lock:
                        number = callbacks[i]
                        callbacks[i] += 1

                    def callback(fut, i=i, number=number):
                        with lock:
                            calls[i].append(number)
                    f.add_done_callback(callback)
                elif op == "wait":
                    cf.wait(futures, timeout=0.001, return_when=RETURN_WHENS[step % 3])
                elif op == "as_completed":
                    try:
                        for _ in cf.as_completed(futures, timeout=0.001):
                            pass
                    except concurrent.futures.TimeoutError:
                        pass
                else:
                    assert not (f.cancelled() and f.running())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n, p)) for n, p in enumerate(programs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 3)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors

    # Everything still pending is settled now; then check the invariants.
    for f in futures:
        if f.cancel():
            try:
                f.set_running_or_notify_cancel()
            except RuntimeError:
                pass        # already CANCELLED_AND_NOTIFIED
        elif f.running():
            f.set_result(None)
        elif not f.done():
            raise AssertionError("pending future refused cancel()")
    done, not_done = cf.wait(futures, timeout=TIMEOUT)
    assert not not_done
    for i, f in enumerate(futures):
        # Exactly one terminal state.
        assert f.done() and not f.running()
        terminal = "cancelled" if f.cancelled() else "finished"
        if terminal == "finished":
            assert succeeded[i].count("finished") <= 1
            assert "cancel" not in succeeded[i]
        else:
            assert "running" not in succeeded[i] and "finished" not in succeeded[i]
        # Each callback exactly once.
        assert sorted(calls[i]) == list(range(callbacks[i])), (i, calls[i], callbacks[i])


THREAD_PROGRAMS = st.lists(st.lists(st.tuples(THREAD_OPS, st.integers(0, 3)), max_size=25),
                           min_size=2, max_size=4)


@settings(FAST, max_examples=40)
@given(n_futures=st.integers(1, 4), programs=THREAD_PROGRAMS)
@pytest.mark.parametrize("cf", [concurrent.futures, fastfutures], ids=["stdlib", "fastfutures"])
def test_threaded_future_invariants(cf, n_futures, programs):
    run_threaded_ops(cf, n_futures, programs)


@pytest.mark.slow
@settings(THOROUGH)
@given(n_futures=st.integers(1, 6), programs=THREAD_PROGRAMS)
@pytest.mark.parametrize("cf", [concurrent.futures, fastfutures], ids=["stdlib", "fastfutures"])
def test_threaded_future_invariants_thorough(cf, n_futures, programs):
    run_threaded_ops(cf, n_futures, programs)


# ---------------------------------------------------------------------------
# submit / cancel / shutdown interleavings on the pools

def task(kind, value):
    if kind == "raise":
        raise ValueError(value)
    if kind == "exit":
        raise SystemExit(value)
    return value


POOL_ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(["ok", "raise", "exit"])),
        st.tuples(st.just("submit_blocked"), st.just(None)),
        st.tuples(st.just("cancel"), st.integers(0, 40)),
        st.tuples(st.just("release"), st.just(None)),
        st.tuples(st.just("shutdown"), st.booleans()),
    ),
    max_size=40)


def run_pool_actions(pool, actions, submit_blocked, release):
    """Apply ``actions`` to ``pool``; every future must end terminal and
    every callback must run exactly once.

    ``submit_blocked(pool)`` submits a task that runs until ``release()``
    opens the gate current at its submission (``release(final=True)``
    opens every gate for good).
    """
    futures = []
    calls = []
    lock = threading.Lock()
    shut = False

    def callback(f, number):
        with lock:
            calls.append(number)
    try:
        for action, arg in actions:
            if action in ("submit", "submit_blocked"):
                try:
                    if action == "submit":
                        f = pool.submit(task, arg, len(futures))
                    else:
                        f = submit_blocked(pool)
                except RuntimeError:
                    assert shut     # 'cannot schedule new futures after shutdown'
                    continue
                assert not shut
                number = len(futures)
                futures.append(f)
                f.add_done_callback(lambda fut, n=number: callback(fut, n))
            elif action == "cancel" and futures:
                futures[arg % len(futures)].cancel()
            elif action == "release":
                release()
            elif action == "shutdown":
                pool.shutdown(wait=False, cancel_futures=arg)
                shut = True
    finally:
        release(final=True)
        pool.shutdown(wait=True)
    if type(pool).__module__.startswith("fastfutures"):
        # The stdlib leaves futures cancelled by shutdown(cancel_futures=True)
        # CANCELLED, never notified, so its wait() would not count them
        # (a documented difference: fastfutures notifies them).
        done, not_done = concurrent.futures.wait(futures, timeout=TIMEOUT)
        assert not not_done, f"futures never finished: {not_done}"
    else:
        # The stdlib's process pool (3.10, 3.11) forgets its manager thread
        # in shutdown(wait=False), so a later shutdown(wait=True) returns
        # before the running calls finish; they still finish.
        wait_until(lambda: all(f.done() for f in futures))
    for f in futures:
        assert f.done() and not f.running()
        if not f.cancelled():
            f.exception(timeout=0)      # finished with a result or an exception
    with lock:
        assert sorted(calls) == list(range(len(futures)))


def thread_pool_case(cf, actions, max_workers):
    gates = [threading.Event()]

    def release(final=False):
        gates[-1].set()
        if final:
            for gate in gates:
                gate.set()
        else:
            gates.append(threading.Event())

    run_pool_actions(cf.ThreadPoolExecutor(max_workers), actions,
                     lambda pool: pool.submit(gates[-1].wait, TIMEOUT), release)


@settings(FAST)
@given(actions=POOL_ACTIONS, max_workers=st.integers(1, 3))
@pytest.mark.parametrize("cf", [concurrent.futures, fastfutures], ids=["stdlib", "fastfutures"])
def test_thread_pool_interleavings(cf, actions, max_workers):
    thread_pool_case(cf, actions, max_workers)


@pytest.mark.slow
@settings(THOROUGH)
@given(actions=POOL_ACTIONS, max_workers=st.integers(1, 4))
@pytest.mark.parametrize("cf", [concurrent.futures, fastfutures], ids=["stdlib", "fastfutures"])
def test_thread_pool_interleavings_thorough(cf, actions, max_workers):
    thread_pool_case(cf, actions, max_workers)


def blocked_in_worker(path):
    # A process-pool task that runs until the parent creates `path`.
    import os
    import time
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.002)
    return path


def process_pool_case(cf, actions, directory):
    gates = [0]

    def path(n):
        return str(directory / f"open-{n}")

    def release(final=False):
        for n in (gates if final else gates[-1:]):
            open(path(n), "w").close()
        if not final:
            gates.append(gates[-1] + 1)

    pool = cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    run_pool_actions(pool, actions,
                     lambda pool: pool.submit(blocked_in_worker, path(gates[-1])), release)


needs_process_pool = pytest.mark.skipif(
    not PROCESS_POOL_LANDED,
    reason="fastfutures.process.ProcessPoolExecutor is still the stdlib pool")


@needs_process_pool
@settings(FAST, max_examples=15)
@given(actions=POOL_ACTIONS)
@pytest.mark.parametrize("cf", [concurrent.futures, fastfutures], ids=["stdlib", "fastfutures"])
def test_process_pool_interleavings(cf, actions, tmp_path_factory):
    process_pool_case(cf, actions, tmp_path_factory.mktemp("gates"))


@pytest.mark.slow
@needs_process_pool
@settings(THOROUGH, max_examples=200)
@given(actions=POOL_ACTIONS)
@pytest.mark.parametrize("cf", [concurrent.futures, fastfutures], ids=["stdlib", "fastfutures"])
def test_process_pool_interleavings_thorough(cf, actions, tmp_path_factory):
    process_pool_case(cf, actions, tmp_path_factory.mktemp("gates"))
