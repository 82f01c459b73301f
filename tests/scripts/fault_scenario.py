"""Fault-injection scenarios, run in a fresh interpreter by tests/test_faults.py.

usage: python fault_scenario.py MODULE SCENARIO REPETITIONS SEED

MODULE is ``fastfutures`` or ``concurrent.futures``.  Each repetition builds
a fresh pool, injects the fault at a random moment (random pool size, work,
timing, start method; all drawn from ``random.Random(SEED + repetition)``),
then checks:

* hangs: a blocking step (waiting for futures, shutdown, joining a thread,
  waiting for a forked child) that did not finish within BOUND seconds;
* lost futures: futures that are not done once the pool has been shut down
  and every future waited for (bounded);
* leftovers: threads, child processes, file descriptors, /dev/shm entries
  that exist after the repetition and did not before it (resources.py);
* unexpected: a future with an outcome the fault does not explain (a wrong
  result, an exception other than the expected one), an exception escaping
  a pool's own thread, an unraisable exception.

Prints one JSON object with the totals.  After 3 repetitions that hang, the
scenario stops (the remaining ones are not run).
"""
import importlib
import json
import logging
import os
import pickle
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resources import KINDS, Snapshot, children  # noqa: E402

BOUND = 30.0            # seconds any one blocking step may take
MAX_HUNG_REPETITIONS = 3
SPAWN_SHARE = 0.2       # repetitions that start process workers with 'spawn'
FORKSERVER_SHARE = 0.1  # ... and with 'forkserver'
BIG = 300 * 1024        # results this large travel out of band (shared memory)


# -- work run by the pools (module level: picklable for 'spawn') --------------

def task(i, delay=0.0, size=0):
    if delay:
        time.sleep(delay)
    return (i, b"r" * size) if size else i


def expected(i, size=0):
    return (i, b"r" * size) if size else i


def exit_in_task(code, delay):
    time.sleep(delay)
    os._exit(code)


def return_unpicklable(i):
    return lambda: i


class _FailsToUnpickle:
    def __reduce__(self):
        return _raise_on_load, ()


def _raise_on_load():
    raise RuntimeError("cannot be loaded")


def return_fails_to_unpickle():
    return _FailsToUnpickle()


def failing_initializer(delay):
    if delay:
        time.sleep(delay)
    raise RuntimeError("initializer failed")


def record_pid(path, i, delay):
    time.sleep(delay)
    with open(path, "a") as f:
        f.write(f"{os.getpid()} {i}\n")      # one write: appends are atomic
    return i


def marked(directory, i, delay=0.0, gate=None):
    """A call that leaves ``directory/i`` behind when it starts; a second
    start of the same call fails (FileExistsError): a call run twice.  Then
    it sleeps ``delay`` or, with ``gate``, until that file exists."""
    open(os.path.join(directory, str(i)), "x").close()
    if gate is not None:
        deadline = time.monotonic() + BOUND
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.002)
    elif delay:
        time.sleep(delay)
    return i


def marked_exit(directory, i, how, delay):
    open(os.path.join(directory, str(i)), "x").close()
    time.sleep(delay)
    if how == "os_exit":
        os._exit(7)
    os.kill(os.getpid(), signal.SIGKILL)


def started(directory):
    """The calls that started (their marks)."""
    return {int(name) for name in os.listdir(directory) if name.isdigit()}


class ChildExit(BaseException):
    """Ends a child forked by a scenario with a normal interpreter exit."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


# -- one repetition -------------------------------------------------------------

class Repetition:
    def __init__(self, cf, rng):
        self.cf = cf
        self.rng = rng
        self.hangs = []
        self.lost = 0
        self.unexpected = []
        self.helpers = set()        # our own bounded-step threads
        self.cleanups = []          # run after the repetition

    def hang(self, what):
        self.hangs.append(what)

    def bounded(self, what, fn, *args, timeout=BOUND, **kwargs):
        """Run fn in a helper thread; a hang if it takes longer than timeout."""
        outcome = []

        def run():
            try:
                outcome.append(("ok", fn(*args, **kwargs)))
            except BaseException as exc:
                outcome.append(("error", exc))
        thread = threading.Thread(target=run, daemon=True, name=f"bounded {what}")
        self.helpers.add(thread)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            self.hang(what)
            return None
        self.helpers.discard(thread)
        kind, value = outcome[0]
        if kind == "error":
            self.unexpected.append(f"{what} raised {value!r}")
            return None
        return value

    def shutdown(self, pool, **kwargs):
        self.bounded("shutdown", pool.shutdown, **kwargs)

    def settle(self, futures):
        """Wait (bounded) for every future; count the ones never done."""
        futures = list(futures)
        # Short waits, rechecking done(): a future cancelled by
        # shutdown(cancel_futures=True) is done, but the stdlib's wait() does
        # not count it (CANCELLED, never notified) and would wait for nothing.
        pending = [f for f in futures if not f.done()]
        deadline = time.monotonic() + BOUND
        while pending and time.monotonic() < deadline:
            self.cf.wait(pending, timeout=0.05)
            pending = [f for f in pending if not f.done()]
        if pending:
            self.hang(f"{len(pending)} of {len(futures)} futures not done")
        self.lost += len(pending)

    def check(self, future, label, results=(), errors=(), cancelled=False):
        """A done future must have one of the accepted outcomes."""
        if not future.done():
            return                      # counted as lost by settle()
        if future.cancelled():
            if not cancelled:
                self.unexpected.append(f"{label}: cancelled")
            return
        exc = future.exception(timeout=0)
        if exc is None:
            result = future.result(timeout=0)
            if result not in results:
                self.unexpected.append(f"{label}: result {str(result)[:60]}")
        elif not isinstance(exc, errors):
            self.unexpected.append(f"{label}: {type(exc).__name__}: {exc}"[:200])

    def process_pool(self, max_workers=None, **kwargs):
        import multiprocessing
        draw = self.rng.random()
        method = ("spawn" if draw < SPAWN_SHARE else
                  "forkserver" if draw < SPAWN_SHARE + FORKSERVER_SHARE else "fork")
        if max_workers is None:
            max_workers = self.rng.randint(1, 3)
        return self.cf.ProcessPoolExecutor(
            max_workers, mp_context=multiprocessing.get_context(method), **kwargs)

    def thread_pool(self, max_workers=None, **kwargs):
        if max_workers is None:
            max_workers = self.rng.randint(1, 4)
        return self.cf.ThreadPoolExecutor(max_workers, **kwargs)

    def random_calls(self, low=5, high=40):
        """(index, delay, result size) for a random batch of tasks."""
        rng = self.rng
        return [(i, rng.choice((0.0, 0.0, rng.uniform(0, 0.005))),
                 BIG if rng.random() < 0.1 else 0)
                for i in range(rng.randint(low, high))]


# -- scenarios --------------------------------------------------------------------

def _broken_process_pool(cf):
    return cf.process.BrokenProcessPool


def _worker_dies(cf, rep, how):
    rng = rep.rng
    pool = rep.process_pool()
    calls = rep.random_calls()
    futures = [pool.submit(task, *call) for call in calls]
    victim = None
    if how == "os_exit":
        at = rng.randrange(len(futures) + 1)
        victim = pool.submit(exit_in_task, rng.randint(0, 5), rng.uniform(0, 0.01))
        futures.insert(at, victim)
        calls.insert(at, None)
    time.sleep(rng.uniform(0, 0.03))
    if how == "sigkill":
        pids = list((pool._processes or {}).keys())
        if pids:
            try:
                os.kill(rng.choice(pids), signal.SIGKILL)
            except ProcessLookupError:
                pass
    rep.settle(futures)
    rep.shutdown(pool, wait=True)
    broken = _broken_process_pool(rep.cf)
    for call, future in zip(calls, futures):
        if future is victim:
            rep.check(future, "the exiting task", errors=broken)
        else:
            rep.check(future, f"task {call[0]}", results=[expected(call[0], call[2])],
                      errors=broken)


def sc_process_sigkill_worker(cf, rep):
    _worker_dies(cf, rep, "sigkill")


def sc_process_os_exit_in_task(cf, rep):
    _worker_dies(cf, rep, "os_exit")


def sc_process_unpicklable_result(cf, rep):
    """Results that cannot be pickled fail only their future; with
    probability 1/4 one result also fails to *unpickle*, which breaks the pool."""
    rng = rep.rng
    pool = rep.process_pool()
    breaks = rng.random() < 0.25
    kinds = [rng.choice(("ok", "ok", "unpicklable")) for _ in range(rng.randint(3, 30))]
    if breaks:
        kinds[rng.randrange(len(kinds))] = "unloadable"
    futures = []
    for i, kind in enumerate(kinds):
        if kind == "ok":
            futures.append(pool.submit(task, i, rng.choice((0.0, 0.001))))
        elif kind == "unpicklable":
            futures.append(pool.submit(return_unpicklable, i))
        else:
            futures.append(pool.submit(return_fails_to_unpickle))
    rep.settle(futures)
    broken = _broken_process_pool(cf)
    pickling = (pickle.PicklingError, AttributeError, TypeError)
    for i, (kind, future) in enumerate(zip(kinds, futures)):
        if kind == "ok":
            rep.check(future, f"task {i}", results=[i], errors=broken if breaks else ())
        elif kind == "unpicklable":
            rep.check(future, f"unpicklable {i}",
                      errors=pickling + ((broken,) if breaks else ()))
        else:
            rep.check(future, "unloadable", errors=broken)
    if not breaks:      # still usable
        after = pool.submit(task, -1)
        rep.settle([after])
        rep.check(after, "task after", results=[-1])
    rep.shutdown(pool, wait=True)


def _initializer_fails(cf, rep, pool, broken):
    rng = rep.rng
    futures = []
    for i in range(rng.randint(1, 20)):
        try:
            futures.append(pool.submit(task, i))
        except broken:
            pass        # the pool broke already
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0, 0.003))
    rep.settle(futures)
    rep.shutdown(pool, wait=True)
    for i, future in enumerate(futures):
        rep.check(future, f"task {i}", errors=broken)
    try:
        pool.submit(task, -1)
    except (broken, RuntimeError):
        pass
    else:
        rep.unexpected.append("submit after the failure did not raise")


def sc_thread_initializer_fails(cf, rep):
    delay = rep.rng.choice((0.0, 0.001))
    pool = rep.thread_pool(initializer=failing_initializer, initargs=(delay,))
    _initializer_fails(cf, rep, pool, cf.thread.BrokenThreadPool)


def sc_process_initializer_fails(cf, rep):
    delay = rep.rng.choice((0.0, 0.001))
    pool = rep.process_pool(initializer=failing_initializer, initargs=(delay,))
    _initializer_fails(cf, rep, pool, _broken_process_pool(cf))


def _shutdown_races_submits(cf, rep, pool, processes):
    rng = rep.rng
    if processes:
        # Start the workers before the submitting threads exist: forking a
        # multi-threaded process is unsafe whatever the pool.
        warm = pool.submit(task, -1)
        rep.settle([warm])
    submitted = []          # (key, future)
    refusals = []
    lock = threading.Lock()
    start = threading.Barrier(rng.randint(2, 4) + 1)

    def submitter(k):
        start.wait(BOUND)
        for j in range(rng.randint(10, 200)):
            try:
                future = pool.submit(task, (k, j), 0.0005 if j % 16 == 0 else 0.0)
            except RuntimeError as exc:
                with lock:
                    refusals.append(str(exc))
                return
            with lock:
                submitted.append(((k, j), future))

    threads = [threading.Thread(target=submitter, args=(k,), name=f"submitter-{k}")
               for k in range(start.parties - 1)]
    for thread in threads:
        thread.start()
    start.wait(BOUND)
    time.sleep(rng.uniform(0, 0.01))
    cancel = rng.random() < 0.5
    pool.shutdown(wait=False, cancel_futures=cancel)
    for thread in threads:
        thread.join(BOUND)
        if thread.is_alive():
            rep.hang(f"{thread.name} still submitting")
    rep.settle(f for _, f in submitted)
    for key, future in submitted:
        rep.check(future, f"task {key}", results=[key], cancelled=cancel)
    for message in refusals:
        if message != "cannot schedule new futures after shutdown":
            rep.unexpected.append(f"submit refused with {message!r}")


def sc_thread_shutdown_race(cf, rep):
    _shutdown_races_submits(cf, rep, rep.thread_pool(), processes=False)


def sc_process_shutdown_race(cf, rep):
    _shutdown_races_submits(cf, rep, rep.process_pool(), processes=True)


def sc_thread_fork_busy(cf, rep):
    """The parent forks while its thread pool runs and receives work.

    The child uses a fresh pool (and, with fastfutures, the inherited one,
    which starts its own workers there; the stdlib's never runs anything in
    a child) and exits, half the time through a normal interpreter exit.
    The parent's pool must not notice: every task runs once, in the parent.
    """
    rng = rep.rng
    pool = rep.thread_pool()
    gate = threading.Event()
    fd, path = tempfile.mkstemp(prefix="fault-fork-")
    os.close(fd)
    busy = [pool.submit(gate.wait, BOUND) for _ in range(rng.randint(0, pool._max_workers))]
    queued = [pool.submit(record_pid, path, i, rng.choice((0.0, 0.0005)))
              for i in range(rng.randint(0, 20))]
    extra = []
    stop = threading.Event()

    def keep_submitting():
        j = 0
        while not stop.is_set() and j < 2000:
            extra.append((j, pool.submit(task, j)))
            j += 1
            if j % 8 == 0:
                time.sleep(0.0001)

    submitter = threading.Thread(target=keep_submitting, name="submitter")
    submitter.start()
    time.sleep(rng.uniform(0, 0.005))
    exit_how = rng.choice(("interpreter exit", "os._exit"))
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _fork_child(cf, pool, exit_how)         # never returns
    stop.set()
    submitter.join(BOUND)
    if submitter.is_alive():
        rep.hang("the submitting thread")
    deadline = time.monotonic() + BOUND
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid:
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                rep.unexpected.append(f"child ({exit_how}) exited with {code}")
            break
        if time.monotonic() > deadline:
            rep.hang(f"forked child ({exit_how})")
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.002)
    gate.set()
    everything = busy + queued + [f for _, f in extra]
    rep.settle(everything)
    rep.shutdown(pool, wait=True)
    for future in busy:
        rep.check(future, "busy task", results=[True])
    for i, future in enumerate(queued):
        rep.check(future, f"queued task {i}", results=[i])
    for j, future in extra:
        rep.check(future, f"extra task {j}", results=[j])
    with open(path) as f:
        runs = sorted(f.read().split("\n")[:-1])
    os.unlink(path)
    mine = sorted(f"{os.getpid()} {i}" for i in range(len(queued)))
    if runs != mine:
        rep.unexpected.append(f"queued tasks ran as {runs[:5]}..., expected once each "
                              f"in the parent")


def _fork_child(cf, pool, exit_how):
    code = 1
    try:
        with cf.ThreadPoolExecutor(2) as fresh:
            ok = list(fresh.map(pow, [2] * 10, range(10), timeout=BOUND)) == [
                2 ** i for i in range(10)]
        if cf.__name__ == "fastfutures":
            # An inherited pool runs the child's own work (stdlib_differs).
            ok = ok and pool.submit(pow, 3, 3).result(timeout=BOUND) == 27
        code = 0 if ok else 1
    except BaseException:
        traceback.print_exc()
        code = 2
    finally:
        if exit_how == "os._exit":
            sys.stderr.flush()
            os._exit(code)
    raise ChildExit(code)


# -- fastfutures' own controls: time limits, cancel_running, on_worker_death ----

def _marks(rep):
    directory = tempfile.mkdtemp(prefix="ff-fault-")
    rep.cleanups.append(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
    return directory


def _check_ran_once(rep, directory, futures, cancelled_means_not_run=True):
    """Every call that returned ran; a call whose cancel() succeeded before
    it started never did (marks); none started twice (its future says so)."""
    ran = started(directory)
    for i, future in enumerate(futures):
        if not future.done():
            continue
        if future.cancelled():
            continue
        exc = future.exception(timeout=0)
        if exc is None and i not in ran:
            rep.unexpected.append(f"call {i} returned without running")
        if isinstance(exc, FileExistsError):
            rep.unexpected.append(f"call {i} ran twice")


def _check_cancelled_exactly(rep, directory, futures, outcome):
    """cancel() returned True (``outcome[i]``) exactly for the calls that
    ended cancelled and never ran; every other call returned its index,
    and ran once."""
    ran = started(directory)
    for i, future in enumerate(futures):
        if outcome.get(i) or future.cancelled():
            if not future.cancelled():
                rep.unexpected.append(f"call {i}: cancel() returned True, not cancelled")
            if i in ran:
                rep.unexpected.append(f"call {i}: cancelled, but it ran")
        else:
            rep.check(future, f"call {i}", results=[i])
    _check_ran_once(rep, directory, futures)


def sc_process_overrunning_calls(cf, rep):
    """Calls that run past their limit (the pool's task_timeout or a
    with_options() view's): only they fail, with TaskTimeout; their worker is
    replaced; the calls queued behind them run, once."""
    rng = rep.rng
    directory = _marks(rep)
    limit = rng.uniform(0.05, 0.3)
    pooled = rng.random() < 0.5
    pool = rep.process_pool(task_timeout=limit if pooled else None)
    submitter = pool if pooled else pool.with_options(timeout=limit)
    kinds = [rng.choice(("quick", "quick", "quick", "overrun")) for _ in range(rng.randint(3, 25))]
    futures = []
    for i, kind in enumerate(kinds):
        if kind == "overrun":
            futures.append(submitter.submit(marked, directory, i, 10 * BOUND))
        else:
            futures.append(submitter.submit(marked, directory, i))
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0, limit))
    rep.settle(futures)
    timeout = cf.process.TaskTimeout
    for i, (kind, future) in enumerate(zip(kinds, futures)):
        if kind == "overrun":
            rep.check(future, f"overrunning call {i}", errors=timeout)
        else:
            # A loaded machine can make a quick call overrun a short limit.
            rep.check(future, f"call {i}", results=[i], errors=timeout)
    _check_ran_once(rep, directory, futures)
    after = pool.submit(task, -1)
    rep.settle([after])
    rep.check(after, "call after", results=[-1])
    rep.shutdown(pool, wait=True)


def sc_process_kill_on_cancel(cf, rep):
    """cancel_running=True: cancelling running calls kills their workers
    (replaced); cancelled calls end cancelled, the others run, once."""
    rng = rep.rng
    directory = _marks(rep)
    gate = os.path.join(directory, "gate")
    pool = rep.process_pool(cancel_running=True)
    futures = [pool.submit(marked, directory, i, gate=gate if rng.random() < 0.5 else None)
               for i in range(rng.randint(2, 20))]
    time.sleep(rng.uniform(0, 0.05))
    results = {}
    for i in rng.sample(range(len(futures)), rng.randint(1, len(futures))):
        results[i] = futures[i].cancel()
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0, 0.01))
    open(gate, "w").close()
    rep.settle(futures)
    for i, future in enumerate(futures):
        if results.get(i):
            if not future.cancelled():
                rep.unexpected.append(f"call {i}: cancel() returned True, not cancelled")
        else:
            rep.check(future, f"call {i}", results=[i], cancelled=i in results)
    _check_ran_once(rep, directory, futures)
    after = pool.submit(task, -1)
    rep.settle([after])
    rep.check(after, "call after", results=[-1])
    rep.shutdown(pool, wait=True)


def sc_process_worker_death_replaced(cf, rep):
    """on_worker_death="replace": a worker that dies (os._exit, SIGKILL from
    inside or outside) fails only the call it was running, with WorkerDied;
    the calls it had not started run on other workers, once."""
    rng = rep.rng
    directory = _marks(rep)
    pool = rep.process_pool(on_worker_death="replace")
    kinds = [rng.choice(("call",) * 6 + ("os_exit", "sigkill")) for _ in range(rng.randint(3, 25))]
    futures = []
    for i, kind in enumerate(kinds):
        if kind == "call":
            futures.append(pool.submit(marked, directory, i, rng.choice((0.0, 0.0, 0.002))))
        else:
            futures.append(pool.submit(marked_exit, directory, i, kind, rng.uniform(0, 0.01)))
    outside = rng.random() < 0.3
    if outside:
        time.sleep(rng.uniform(0, 0.03))
        # A worker that dies before it has started up breaks the pool, as a
        # failing initializer does: kill one that is up.
        pids = list(pool._core.processes(ready_only=True))
        if pids:
            try:
                os.kill(rng.choice(pids), signal.SIGKILL)
            except ProcessLookupError:
                pass
    rep.settle(futures)
    died = cf.process.WorkerDied
    for i, (kind, future) in enumerate(zip(kinds, futures)):
        if kind == "call":
            rep.check(future, f"call {i}", results=[i], errors=died if outside else ())
        else:
            rep.check(future, f"dying call {i}", errors=died)
    _check_ran_once(rep, directory, futures)
    after = pool.submit(task, -1)
    rep.settle([after])
    rep.check(after, "call after", results=[-1])
    rep.shutdown(pool, wait=True)


def sc_process_replace_while_subprocess_runs(cf, rep):
    """Workers replaced (calls overrunning a limit, cancel_running kills,
    deaths in "replace" mode) while another thread runs subprocesses: every
    subprocess ends (a replacement forked from the result thread at the wrong
    moment holds the pipes a run reads, or the stdin of a child the parent
    closes, and that run never ends), every call runs once."""
    import subprocess
    rng = rep.rng
    directory = _marks(rep)
    limit = rng.uniform(0.02, 0.1)
    how = rng.choice(("task_timeout", "with_options", "cancel_running", "replace"))
    options = {"task_timeout": {"task_timeout": limit}, "with_options": {},
               "cancel_running": {"cancel_running": True},
               "replace": {"on_worker_death": "replace"}}[how]
    pool = rep.process_pool(**options)
    # The pool starts (its zygote, under 'fork') before the other thread exists.
    first = pool.submit(task, -1)
    rep.settle([first])
    submitter = pool.with_options(timeout=limit) if how == "with_options" else pool
    stop = threading.Event()
    ends = []

    def run_subprocesses():
        # A child whose stdin this process closes later: it ends only if no
        # replacement holds the pipe's write end.
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            for _ in range(rng.randint(5, 40)):
                done = subprocess.run(["true"], capture_output=True, timeout=BOUND)
                ends.append(done.returncode)
                if stop.is_set():
                    break
        finally:
            cat.stdin.close()
            ends.append(cat.wait(BOUND))

    runner = threading.Thread(target=run_subprocesses, name="subprocesses", daemon=True)
    rep.helpers.add(runner)
    runner.start()
    kinds = []
    futures = []
    for i in range(rng.randint(3, 20)):
        kind = rng.choice(("quick", "quick", "stopped"))
        kinds.append(kind)
        if kind == "quick":
            futures.append(submitter.submit(marked, directory, i))
        elif how == "replace":
            futures.append(submitter.submit(marked_exit, directory, i, "os_exit",
                                            rng.uniform(0, 0.005)))
        else:
            futures.append(submitter.submit(marked, directory, i, 10 * BOUND
                                            if how != "cancel_running" else 0.5))
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, limit))
    if how == "cancel_running":
        for kind, future in zip(kinds, futures):
            if kind == "stopped":
                future.cancel()
    rep.settle(futures)
    stop.set()
    runner.join(BOUND)
    if runner.is_alive():
        rep.hang("subprocesses while workers were replaced")
    else:
        rep.helpers.discard(runner)
    if any(ends):
        rep.unexpected.append(f"subprocesses ended with {sorted(set(ends))}")
    errors = {"task_timeout": cf.process.TaskTimeout, "with_options": cf.process.TaskTimeout,
              "cancel_running": (), "replace": cf.process.WorkerDied}[how]
    for i, (kind, future) in enumerate(zip(kinds, futures)):
        if kind == "quick":
            # A loaded machine can make a quick call overrun a short limit.
            rep.check(future, f"call {i}", results=[i],
                      errors=errors if how != "replace" else ())
        else:
            rep.check(future, f"stopped call {i}", results=[i], errors=errors,
                      cancelled=how == "cancel_running")
    _check_ran_once(rep, directory, futures)
    after = pool.submit(task, -2)
    rep.settle([after])
    rep.check(after, "call after", results=[-2])
    rep.shutdown(pool, wait=True)


def sc_process_cancel_races_claim(cf, rep):
    """cancel() (from this thread and another) and shutdown(cancel_futures=
    True) race the workers claiming calls: cancel() returns True exactly for
    the calls that never run; every other call runs once."""
    rng = rep.rng
    directory = _marks(rep)
    pool = rep.process_pool()
    futures = []
    outcome = {}
    n = rng.randint(5, 60)

    def cancel_some(indices):
        for i in indices:
            outcome[i] = futures[i].cancel()

    for i in range(n):
        futures.append(pool.submit(marked, directory, i, rng.choice((0.0, 0.0, 0.001))))
    half = list(range(n))
    rng.shuffle(half)
    other = threading.Thread(target=cancel_some, args=(half[: n // 3],))
    other.start()
    cancel_some(half[n // 3: 2 * n // 3])
    other.join()
    if rng.random() < 0.3:
        rep.shutdown(pool, wait=True, cancel_futures=True)
    rep.settle(futures)
    _check_cancelled_exactly(rep, directory, futures, outcome)
    rep.shutdown(pool, wait=True)


def sc_process_mixed_lengths(cf, rep):
    """Calls of very different lengths (most instant, some 20-50x longer),
    submitted in bursts while cancel() races the workers and the pool's
    scheduler moves calls waiting behind long ones to idle workers: every
    call runs once or ends cancelled (cancel() True exactly for the calls
    that never ran), none is lost."""
    rng = rep.rng
    directory = _marks(rep)
    pool = rep.process_pool(max_workers=rng.randint(2, 4))
    futures = []
    outcome = {}
    for i in range(rng.randint(10, 50)):
        delay = rng.choice((0.0, 0.0, 0.0, 0.001, rng.uniform(0.02, 0.05)))
        futures.append(pool.submit(marked, directory, i, delay))
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0, 0.02))
        if futures and rng.random() < 0.15:
            j = rng.randrange(len(futures))
            outcome[j] = futures[j].cancel() or outcome.get(j, False)
    if rng.random() < 0.2:
        rep.shutdown(pool, wait=True, cancel_futures=True)
    rep.settle(futures)
    _check_cancelled_exactly(rep, directory, futures, outcome)
    rep.shutdown(pool, wait=True)


def sc_process_mixed_limits(cf, rep):
    """Many per-call limits, mixed and placed while other timed calls run
    (with_options() views and the pool's task_timeout): each overrunning
    call fails with TaskTimeout (settle()'s bound is far below the 10 x
    BOUND it would otherwise run); every other call runs once."""
    rng = rep.rng
    directory = _marks(rep)
    pool = rep.process_pool(max_workers=rng.randint(1, 3),
                            task_timeout=rng.choice((None, 5.0)))
    timeout = cf.process.TaskTimeout
    kinds, futures = [], []
    for i in range(rng.randint(3, 15)):
        limit = rng.choice((0.05, 0.1, 0.3, 1.0, 3.0))
        kind = rng.choice(("quick", "quick", "overrun"))
        view = pool.with_options(timeout=limit)
        if kind == "overrun":
            futures.append(view.submit(marked, directory, i, 10 * BOUND))
        else:
            futures.append(view.submit(marked, directory, i))
        kinds.append(kind)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.1))
    rep.settle(futures)
    for i, (kind, future) in enumerate(zip(kinds, futures)):
        if kind == "overrun":
            rep.check(future, f"overrunning call {i}", errors=timeout)
        else:
            rep.check(future, f"call {i}", results=[i], errors=timeout)
    _check_ran_once(rep, directory, futures)
    after = pool.submit(task, -1)
    rep.settle([after])
    rep.check(after, "call after", results=[-1])
    rep.shutdown(pool, wait=True)


def ignore_sigterm_marked(directory, i, delay):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return marked(directory, i, delay)


def sc_process_stubborn_workers(cf, rep):
    """Workers that ignore SIGTERM while the pool stops them: the pool
    breaks (a worker exits in a task), terminate_workers(), or a time limit.
    Every stop is bounded (SIGKILL after the grace): no hang, no process
    left, every future done."""
    rng = rep.rng
    directory = _marks(rep)
    how = rng.choice(("break", "terminate", "time_limit"))
    workers = rng.randint(2, 3)
    pool = rep.process_pool(max_workers=workers,
                            task_timeout=0.2 if how == "time_limit" else None)
    # "break": a worker must be free to run the call that exits.
    stubborn = rng.randint(1, workers - 1 if how == "break" else 4)
    futures = [pool.submit(ignore_sigterm_marked, directory, i, 10 * BOUND)
               for i in range(stubborn)]
    futures += [pool.submit(marked, directory, 100 + i) for i in range(rng.randint(0, 5))]
    time.sleep(rng.uniform(0, 0.2))
    if how == "break":
        futures.append(pool.submit(exit_in_task, 1, 0.0))
    elif how == "terminate":
        rep.bounded("terminate_workers", pool.terminate_workers)
    rep.settle(futures)
    rep.shutdown(pool, wait=True)


SCENARIOS = {name[3:].replace("_", ".", 1): fn for name, fn in globals().items()
             if name.startswith("sc_")}


# -- driver -----------------------------------------------------------------------

def main():
    module_name, scenario, repetitions, seed = sys.argv[1:5]
    repetitions, seed = int(repetitions), int(seed)
    cf = importlib.import_module(module_name)
    importlib.import_module(module_name + ".thread")
    importlib.import_module(module_name + ".process")
    run = SCENARIOS[scenario]

    # Faults are the point here: keep their log records and fork warnings quiet.
    logger = logging.getLogger("concurrent.futures")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # What escapes a pool's own threads, or a __del__ or weakref callback.
    escaped = []
    threading.excepthook = lambda args: escaped.append(
        f"exception in thread {args.thread.name if args.thread else '?'}: "
        f"{args.exc_type.__name__}: {args.exc_value}")
    sys.unraisablehook = lambda args: escaped.append(
        f"unraisable {args.exc_type.__name__}: {args.exc_value} in {args.object!r}")
    if scenario.startswith("process"):
        # 'spawn' starts multiprocessing's resource tracker once, for good.
        from multiprocessing import forkserver, resource_tracker
        resource_tracker.ensure_running()
        forkserver.ensure_running()

    totals = {"module": module_name, "scenario": scenario, "seed": seed,
              "repetitions": 0, "hangs": 0, "lost": 0, "unexpected": 0,
              "leftovers": {kind: 0 for kind in KINDS}, "details": []}
    hung_repetitions = 0
    started = time.monotonic()
    for index in range(repetitions):
        rng = random.Random(seed + index)
        before = Snapshot.take()
        rep = Repetition(cf, rng)
        escaped.clear()
        try:
            run(cf, rep)
        except ChildExit:
            raise
        except Exception:
            rep.unexpected.append(traceback.format_exc(limit=-3))
        finally:
            for cleanup in rep.cleanups:
                cleanup()
        left = before.leftovers(ignore_threads=rep.helpers)
        rep.unexpected += escaped
        totals["repetitions"] += 1
        totals["hangs"] += bool(rep.hangs)
        totals["lost"] += rep.lost
        totals["unexpected"] += len(rep.unexpected)
        for kind in KINDS:
            totals["leftovers"][kind] += len(left[kind])
        if rep.hangs or rep.lost or rep.unexpected or any(left.values()):
            if len(totals["details"]) < 10:
                totals["details"].append({
                    "repetition": index, "rng_seed": seed + index, "hangs": rep.hangs,
                    "lost": rep.lost, "unexpected": rep.unexpected[:5],
                    "leftovers": {k: v[:5] for k, v in left.items() if v}})
        if rep.hangs:
            hung_repetitions += 1
            if hung_repetitions >= MAX_HUNG_REPETITIONS:
                break
    totals["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(totals), flush=True)
    if hung_repetitions or totals["leftovers"]["threads"]:
        # A hung pool would hang the interpreter's exit as well; its workers
        # would wait for work forever.
        for pid in children():
            os.kill(pid, signal.SIGKILL)
        os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except ChildExit as child_exit:
        # A forked child: end with a normal interpreter exit (exit hooks and all).
        sys.exit(child_exit.code)
