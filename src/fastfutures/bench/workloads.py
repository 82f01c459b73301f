"""The benchmark workloads, defined once for ``python -m fastfutures`` and bench/.

Two registries:

* ``IMPLEMENTATIONS``: the columns being compared -- the stdlib (the baseline),
  fastfutures, loky for the process pools (groups process, fresh, mixed), and for asyncio offload anyio's
  ``to_thread.run_sync`` and uvloop (with either pool), each when installed;
  for the "distributed" group (only where dask is installed), dask's own
  executor (that group's baseline) and its native client API.  A further
  column is one ``Implementation`` entry.
* ``WORKLOADS``: what is measured.  A ``Timed`` workload is a context manager
  ``prepare(impl, size)`` that builds everything outside the timed region
  (executor created, threads or processes started and warm) and yields a
  no-argument callable doing ``size`` operations; the caller times that
  callable (the report with ``perf_counter``, bench/ with pytest-benchmark).
  A ``Memory`` metric counts traced bytes instead of seconds.  A new workload
  is its function plus one entry.

The report (report.py) and the pytest-benchmark files (the repository's
bench/) both read these registries, so the two can never measure different
things.
"""
import asyncio
import collections
import contextlib
import gc
import importlib
import importlib.util
import itertools
import multiprocessing
import os
import random
import threading
import time
import tracemalloc
import warnings

__all__ = [
    "Implementation", "IMPLEMENTATIONS", "STDLIB", "implementation",
    "Measurement", "Workload", "Timed", "Mixed", "Memory", "WORKLOADS", "GROUPS", "select",
    "settle", "thread_pool", "process_pool", "fresh_process_pool", "noop", "noop1", "identity",
    "make_bytes", "busy", "ON_REQUEST",
]

MiB = 1 << 20

# Process pools get this many workers, whatever the CPU count: the issue's
# numbers come from a 2-core machine, and a fixed count keeps runs on
# different machines comparable.
PROCESS_WORKERS = 2


# -- the functions the pools run (module level: process pools pickle them) ---

def noop():
    return None


def noop1(_item):
    return None


def identity(item):
    return item


def make_bytes(size):
    return b"\0" * size


def busy(seconds):
    """A CPU-bound call: a busy loop for ``seconds`` of wall time (not CPU
    time), so that its length, and the ideal schedule of a batch of them,
    do not depend on how a shared machine is loaded."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# -- implementations (columns) -------------------------------------------------

def _process_context():
    # 'fork' starts workers cheaply where it exists; pool start-up is outside
    # the timed region anyway, this only keeps the run short.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _forking_process_pool(cf, workers, default_start=False, **options):
    # default_start: the platform's default start method, as
    # `with ProcessPoolExecutor() as ex:` gets (a fresh pool's start-up is
    # part of what it measures).
    context = None if default_start else _process_context()
    return cf.ProcessPoolExecutor(workers, mp_context=context, **options)


def _stdlib_process_pool(cf, workers, zero_copy_results=False, default_start=False):
    # The stdlib has no zero-copy option: it returns copies.
    return _forking_process_pool(cf, workers, default_start)


def _fastfutures_process_pool(cf, workers, zero_copy_results=False, default_start=False):
    return _forking_process_pool(cf, workers, default_start,
                                 zero_copy_results=zero_copy_results)


def _loky_process_pool(loky, workers, zero_copy_results=False, default_start=False):
    # loky.ProcessPoolExecutor, a new executor each time (not
    # get_reusable_executor(), whose workers would outlive a fresh pool's
    # `with` block), with loky's own start method.  loky has no zero-copy
    # option: it returns copies, as the stdlib does.
    return loky.ProcessPoolExecutor(max_workers=workers)


# -- dask.distributed (group "distributed", only where dask is installed) --------

DASK_CHUNKSIZE = 1000
HAS_DASK = importlib.util.find_spec("distributed") is not None


class _DaskExecutorRunner:
    """fastfutures.distributed.DaskExecutor: map() sends a task per chunk."""

    def __init__(self, client):
        from fastfutures.distributed import DaskExecutor
        self.executor = DaskExecutor(client)

    def map(self, fn, items):
        return list(self.executor.map(fn, items, chunksize=DASK_CHUNKSIZE))

    def call(self, fn):
        return self.executor.submit(fn).result()

    def close(self):
        self.executor.shutdown(wait=True)


class _DaskClientExecutorRunner(_DaskExecutorRunner):
    """dask's own ``client.get_executor()``: a task per item (it ignores chunksize)."""

    def __init__(self, client):
        self.executor = client.get_executor(pure=False)


class _DaskClientRunner:
    """dask's native API: ``client.map(..., batch_size=)`` then gather (batch_size
    groups the submissions; each item is still a task); ``client.submit``."""

    def __init__(self, client):
        self.client = client

    def map(self, fn, items):
        client = self.client
        return client.gather(client.map(fn, items, batch_size=DASK_CHUNKSIZE, pure=False))

    def call(self, fn):
        return self.client.submit(fn, pure=False).result()

    def close(self):
        pass


class Implementation:
    """One column of the comparison: a futures module and how to build its pools.

    ``module`` is imported lazily; ``groups`` are the workload groups it takes
    part in; ``process_pool(cf, workers, zero_copy_results=False)`` builds a
    process pool from the imported module; ``dask_runner(client)`` (group
    "distributed") runs calls on a dask cluster.
    """

    def __init__(self, name, module, groups, process_pool=None, dask_runner=None):
        self.name = name
        self.module_name = module
        self.groups = frozenset(groups)
        self._process_pool = process_pool
        self._dask_runner = dask_runner
        self._module = None
        self._error = None

    def __repr__(self):
        return "Implementation(%r)" % self.name

    @property
    def cf(self):
        """The imported module (raises ImportError when it is not importable)."""
        if self._module is None:
            self._module = importlib.import_module(self.module_name)
        return self._module

    def available(self):
        if self._module is None and self._error is None:
            try:
                self.cf
            except ImportError as exc:
                self._error = exc
        return self._module is not None

    @property
    def import_error(self):
        self.available()
        return self._error

    def runs(self, workload):
        return workload.group in self.groups and (workload.only is None
                                                  or self.name in workload.only)

    def process_pool(self, workers=PROCESS_WORKERS, **options):
        return self._process_pool(self.cf, workers, **options)

    def dask_runner(self, client):
        """How this column runs calls on the dask cluster of ``client``."""
        return self._dask_runner(client)


STDLIB = "stdlib"       # the baseline every ratio is taken against

IMPLEMENTATIONS = (
    Implementation(STDLIB, "concurrent.futures",
                   {"thread", "process", "fresh", "mixed", "memory", "asyncio"},
                   _stdlib_process_pool),
    Implementation("fastfutures", "fastfutures",
                   {"thread", "process", "fresh", "mixed", "memory", "asyncio", "distributed"},
                   _fastfutures_process_pool, _DaskExecutorRunner),
    Implementation("loky", "loky", {"process", "fresh", "mixed"}, _loky_process_pool),
    # asyncio offload only (see _asyncio_side): anyio's to_thread.run_sync on
    # asyncio's loop; uvloop with the stdlib pool; uvloop with fastfutures.
    Implementation("anyio", "anyio", {"asyncio"}, None),
    Implementation("uvloop", "uvloop", {"asyncio"}, None),
    Implementation("fastfutures+uvloop", "uvloop", {"asyncio"}, None),
    # The distributed group's baseline is dask's concurrent.futures executor.
    Implementation("dask.executor", "distributed", {"distributed"},
                   dask_runner=_DaskClientExecutorRunner),
    Implementation("dask.client", "distributed", {"distributed"},
                   dask_runner=_DaskClientRunner),
)


def implementation(name):
    for impl in IMPLEMENTATIONS:
        if impl.name == name:
            return impl
    raise KeyError("unknown implementation %r (known: %s)"
                   % (name, ", ".join(i.name for i in IMPLEMENTATIONS)))


# -- measurements --------------------------------------------------------------

class Measurement:
    """``value`` (seconds, or bytes for a memory metric) spent on ``ops`` operations."""

    __slots__ = ("value", "ops")

    def __init__(self, value, ops):
        self.value = value
        self.ops = ops

    @property
    def per_op(self):
        return self.value / self.ops

    def __repr__(self):
        return "Measurement(%r, %r)" % (self.value, self.ops)


class Workload:
    """Base of the registry entries.

    ``name`` is unique within ``group``; ``id`` ("thread.map") is unique overall.
    ``unit`` names one operation ("task", "item", ...).  ``size`` is the full
    run's operation count, ``quick_size`` the smoke run's.  ``target`` is the
    issue's goal for fastfutures: a speed-up factor (``Timed``) or a byte
    ceiling per operation (``Memory``); None where the issue sets none.
    ``baseline`` names the implementation ratios are taken against: the
    stdlib, except for the distributed group (dask's own executor).
    ``only``: the implementations that run it, where not all of the group's.
    """

    metric = None
    # The run the report shows: None for the command line's --stat (best by
    # default); "median" where the best run would flatter a noisy workload.
    stat = None

    def __init__(self, group, name, description, *, unit, size, quick_size, target=None,
                 baseline=STDLIB, only=None):
        self.baseline = baseline        # the column ratios are taken against
        self.only = only
        self.group = group
        self.name = name
        self.description = description
        self.unit = unit
        self.size = size
        self.quick_size = quick_size
        self.target = target

    @property
    def id(self):
        return "%s.%s" % (self.group, self.name)

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.id)

    def size_for(self, quick):
        return self.quick_size if quick else self.size

    def ops_for(self, size):
        """The operations a run of ``size`` counts (times are per operation)."""
        return size

    def measure(self, impl, size):
        raise NotImplementedError

    @contextlib.contextmanager
    def session(self, impl, size):
        """Yields a callable returning one Measurement per call; what it
        sets up (a warm pool) serves every repetition of the report."""
        yield lambda: self.measure(impl, size)


class Timed(Workload):
    """Seconds per operation.  ``prepare(impl, size)`` is a context manager
    yielding the callable to time; ``rounds`` is what bench/ asks
    pytest-benchmark for.  The report keeps one prepared pool per
    implementation for all its repetitions, except with ``pool_per_run``:
    16 MiB results cost 3-4x more for fastfutures (page faults) while the
    stdlib's pool and its results share the process heap, so each of those
    runs gets a pool (and warm-up round) of its own, as a lone user would."""

    metric = "seconds"

    def __init__(self, group, name, description, prepare, *, rounds=5,
                 pool_per_run=False, impl_size=None, **kwargs):
        super().__init__(group, name, description, **kwargs)
        self.prepare = prepare
        self.rounds = rounds
        self.pool_per_run = pool_per_run
        self._impl_size = impl_size

    def impl_size(self, impl, size):
        """The operations ``impl`` runs for a workload of ``size``: all of
        them, unless the workload scales a slow column down (its time per
        operation is what is compared)."""
        return size if self._impl_size is None else self._impl_size(impl, size)

    def measure(self, impl, size):
        size = self.impl_size(impl, size)
        with self.prepare(impl, size) as run:
            return self._time(run, size)

    def _time(self, run, size):
        settle()
        start = time.perf_counter()
        run()
        return Measurement(time.perf_counter() - start, self.ops_for(size))

    @contextlib.contextmanager
    def session(self, impl, size):
        if self.pool_per_run:
            with super().session(impl, size) as measure:
                yield measure
            return
        size = self.impl_size(impl, size)
        with self.prepare(impl, size) as run:
            yield lambda: self._time(run, size)


def settle():
    """Run before each timed run: garbage left by an earlier run must not be
    collected on this run's clock (the run's own garbage is its cost)."""
    gc.collect()


class Mixed(Timed):
    """A batch of calls of mixed lengths on a warm pool of PROCESS_WORKERS:
    the seconds from the first submit() to the last result (one operation,
    a "batch"), against ``ideal``, the length of the best schedule.
    ``calls(scale)`` lists ``(fn, seconds)`` in submission order; ``size``
    scales every length, in percent (the quick run's 10 keeps it a smoke
    test).  Shown as the median run: the issue's measure, and the best of
    a few runs of long calls would flatter whichever column got a quiet
    moment.  ``target`` is met within ``slack`` of the ideal and no slower
    than the stdlib (beyond ``noise``, the timers' and scheduler's jitter)."""

    stat = "median"

    def __init__(self, group, name, description, calls, *, ideal, slack=0.10, noise=0.02,
                 **kwargs):
        kwargs.setdefault("rounds", 3)
        super().__init__(group, name, description, self._prepare, unit="batch", size=100,
                         quick_size=10, **kwargs)
        self.calls = calls
        self._ideal = ideal
        self.slack = slack
        self.noise = noise

    def ops_for(self, size):
        return 1

    def ideal(self, size):
        """Seconds the best schedule of the batch takes at ``size``."""
        return self._ideal(self.calls(size / 100))

    @contextlib.contextmanager
    def _prepare(self, impl, size):
        calls = self.calls(size / 100)
        with process_pool(impl) as executor:
            submit = executor.submit

            def run():
                for future in [submit(fn, seconds) for fn, seconds in calls]:
                    future.result()
            yield run


class Memory(Workload):
    """Traced bytes per operation: ``count_bytes(impl, size)`` returns a
    Measurement of the bytes that ``size`` live objects hold (tracemalloc
    sees memory from Python's allocators, PyMem_*/PyObject_*, only)."""

    metric = "bytes"

    def __init__(self, group, name, description, count_bytes, **kwargs):
        super().__init__(group, name, description, **kwargs)
        self.count_bytes = count_bytes

    def measure(self, impl, size):
        return self.count_bytes(impl, size)


# -- thread workloads ----------------------------------------------------------

def thread_workers():
    """The stdlib's default max_workers, passed explicitly to both pools."""
    cpu_count = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(32, (cpu_count or 1) + 4)


def _warm(executor, workers):
    # Every worker started and idle: tasks that meet at a barrier force the
    # pool to start one thread per task.  A pool that starts its threads
    # differently only breaks the barrier (after the timeout), not the run.
    barrier = threading.Barrier(workers + 1)

    def meet():
        try:
            barrier.wait(5)
        except threading.BrokenBarrierError:
            pass

    futures = [executor.submit(meet) for _ in range(workers)]
    meet()
    for future in futures:
        future.result()
    for _ in range(100):
        executor.submit(noop).result()


@contextlib.contextmanager
def thread_pool(impl, workers=None):
    """A started, warm ThreadPoolExecutor of ``impl``; shut down on exit."""
    workers = workers or thread_workers()
    executor = impl.cf.ThreadPoolExecutor(workers)
    try:
        _warm(executor, workers)
        yield executor
    finally:
        executor.shutdown(wait=True)


@contextlib.contextmanager
def _future_cycle(impl, size):
    Future = impl.cf.Future

    def run():
        for _ in itertools.repeat(None, size):
            future = Future()
            future.set_result(None)
            future.result()
    yield run


@contextlib.contextmanager
def _submit_wait(impl, size):
    wait = impl.cf.wait
    with thread_pool(impl) as executor:
        submit = executor.submit

        def run():
            wait([submit(noop) for _ in itertools.repeat(None, size)])
        yield run


@contextlib.contextmanager
def _thread_map(impl, size):
    with thread_pool(impl) as executor:
        def run():
            list(executor.map(noop1, range(size)))
        yield run


@contextlib.contextmanager
def _as_completed(impl, size):
    as_completed = impl.cf.as_completed
    with thread_pool(impl) as executor:
        submit = executor.submit

        def run():
            for _ in as_completed([submit(noop) for _ in itertools.repeat(None, size)]):
                pass
        yield run


@contextlib.contextmanager
def _thread_round_trip(impl, size):
    with thread_pool(impl) as executor:
        submit = executor.submit

        def run():
            for _ in itertools.repeat(None, size):
                submit(noop).result()
        yield run


# -- process workloads ---------------------------------------------------------

@contextlib.contextmanager
def process_pool(impl, **options):
    """A started, warm process pool of ``impl``; shut down on exit."""
    executor = impl.process_pool(PROCESS_WORKERS, **options)
    try:
        with warnings.catch_warnings():
            # 3.12+ warns that forking a process with threads may deadlock;
            # the workers start here, with only this pool's threads about.
            warnings.filterwarnings("ignore", ".*use of fork", DeprecationWarning)
            list(executor.map(identity, range(64)))     # workers up and warm
        yield executor
    finally:
        executor.shutdown(wait=True)


@contextlib.contextmanager
def _process_submits(impl, size):
    with process_pool(impl) as executor:
        submit = executor.submit

        def run():
            for future in [submit(noop) for _ in itertools.repeat(None, size)]:
                future.result()
        yield run


@contextlib.contextmanager
def _process_map(impl, size):
    with process_pool(impl) as executor:
        def run():
            list(executor.map(identity, range(size), chunksize=256))
        yield run


@contextlib.contextmanager
def _process_round_trip(impl, size):
    with process_pool(impl) as executor:
        submit = executor.submit

        def run():
            for _ in itertools.repeat(None, size):
                submit(noop).result()
        yield run


def _large_results(zero_copy_results):
    @contextlib.contextmanager
    def prepare(impl, size):
        with process_pool(impl, zero_copy_results=zero_copy_results) as executor:
            submit = executor.submit

            def run():
                pending = collections.deque([submit(make_bytes, 16 * MiB)
                                             for _ in range(size)])
                while pending:
                    # Each result is used and dropped with its future, as a
                    # consumer of large results would: a zero-copy view's
                    # segment then goes back to the worker for reuse.
                    if len(pending.popleft().result()) != 16 * MiB:
                        raise AssertionError("short result")
            # Steady state, as in a long-running service: one untimed round
            # first, for every implementation (fastfutures creates its
            # shared segments then -- about 10 ms each here, the kernel
            # zeroing fresh pages -- and reuses them afterwards).
            run()
            yield run
    return prepare


# -- asyncio offload -------------------------------------------------------------

# The loop's default executor gets this many workers in every column (anyio
# uses its own pool, capped at 40 threads).
ASYNCIO_WORKERS = 4


@contextlib.contextmanager
def _asyncio_side(impl, bridge=True):
    """A warm event loop for ``impl`` and its two ways to offload a call:
    yields (loop, to_thread, run_in_executor), each taking a function and
    returning an awaitable.  stdlib: asyncio's loop with a concurrent.futures
    default executor; fastfutures: fastfutures.asyncio.install() with a
    fastfutures pool -- with ``bridge=False`` the pool is only the loop's
    default executor, and asyncio's own wrap_future() copies each result
    (3.15: through Future._get_snapshot()); anyio: anyio.to_thread.run_sync
    for both."""
    import concurrent.futures
    if impl.name in ("uvloop", "fastfutures+uvloop"):
        loop = impl.cf.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        if impl.name in ("fastfutures", "fastfutures+uvloop") and not bridge:
            import fastfutures
            loop.set_default_executor(fastfutures.ThreadPoolExecutor(ASYNCIO_WORKERS, "asyncio"))
        elif impl.name in ("fastfutures", "fastfutures+uvloop"):
            import fastfutures.asyncio
            fastfutures.asyncio.install(
                loop, fastfutures.ThreadPoolExecutor(ASYNCIO_WORKERS, "asyncio"))
        elif impl.name != "anyio":
            loop.set_default_executor(
                concurrent.futures.ThreadPoolExecutor(ASYNCIO_WORKERS, "asyncio"))
        if impl.name == "anyio":
            run_sync = impl.cf.to_thread.run_sync
            to_thread = run_in_executor = run_sync
        else:
            to_thread = asyncio.to_thread

            def run_in_executor(fn):
                return loop.run_in_executor(None, fn)

        async def warm():
            for _ in range(ASYNCIO_WORKERS * 25):
                await asyncio.gather(*[run_in_executor(noop) for _ in range(ASYNCIO_WORKERS)])
        loop.run_until_complete(warm())
        yield loop, to_thread, run_in_executor
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


@contextlib.contextmanager
def _sequential_to_thread(impl, size):
    with _asyncio_side(impl) as (loop, to_thread, _):
        async def offload():
            for _ in itertools.repeat(None, size):
                await to_thread(noop)

        def run():
            loop.run_until_complete(offload())
        yield run


def _gather_run_in_executor(bridge):
    @contextlib.contextmanager
    def prepare(impl, size):
        with _asyncio_side(impl, bridge) as (loop, _, run_in_executor):
            async def offload():
                await asyncio.gather(*[run_in_executor(noop)
                                       for _ in itertools.repeat(None, size)])

            def run():
                loop.run_until_complete(offload())
            yield run
    return prepare


SERVER_OFFLOADS_PER_TASK = 100


@contextlib.contextmanager
def _server_mix(impl, size):
    with _asyncio_side(impl) as (loop, _, run_in_executor):
        async def handler():
            for _ in itertools.repeat(None, SERVER_OFFLOADS_PER_TASK):
                await run_in_executor(noop)

        async def serve():
            tasks = max(1, size // SERVER_OFFLOADS_PER_TASK)
            await asyncio.gather(*[handler() for _ in range(tasks)])

        def run():
            loop.run_until_complete(serve())
        yield run


def _held_results(zero_copy_results):
    @contextlib.contextmanager
    def prepare(impl, size):
        with process_pool(impl, zero_copy_results=zero_copy_results) as executor:
            submit = executor.submit

            def run():
                # The common pattern: every result kept by the caller until
                # all have arrived (then dropped together).
                fs = [submit(make_bytes, 16 * MiB) for _ in range(size)]
                data = [f.result() for f in fs]
                if any(len(d) != 16 * MiB for d in data):
                    raise AssertionError("short result")
            run()       # one untimed round first, as for results_16mib
            yield run
    return prepare


# -- fresh pools: created, used and shut down inside the timed region -------------

@contextlib.contextmanager
def fresh_process_pool(impl, **options):
    """A new pool of ``impl`` as `with ProcessPoolExecutor() as ex:` makes
    one (the platform's default start method), shut down on exit."""
    with warnings.catch_warnings():
        # 3.12+ warns that forking a process with threads may deadlock
        # (the report's pools are alone here).
        warnings.filterwarnings("ignore", ".*use of fork", DeprecationWarning)
        with impl.process_pool(PROCESS_WORKERS, default_start=True, **options) as executor:
            yield executor


@contextlib.contextmanager
def _fresh_submits(impl, size):
    def run():
        with fresh_process_pool(impl) as executor:
            submit = executor.submit
            for future in [submit(noop) for _ in itertools.repeat(None, size)]:
                future.result()
    yield run


@contextlib.contextmanager
def _fresh_map(impl, size):
    def run():
        with fresh_process_pool(impl) as executor:
            list(executor.map(identity, range(size), chunksize=256))
    yield run


def _fresh_held_results(zero_copy_results):
    @contextlib.contextmanager
    def prepare(impl, size):
        def run():
            with fresh_process_pool(impl, zero_copy_results=zero_copy_results) as executor:
                fs = [executor.submit(make_bytes, 16 * MiB) for _ in range(size)]
                data = [f.result() for f in fs]
            if any(len(d) != 16 * MiB for d in data):
                raise AssertionError("short result")
        yield run
    return prepare


# -- mixed call lengths (group "mixed", on request) -----------------------------------

def _short_behind_long(fn, long, short, count):
    # One long call, then `count` short ones: the stdlib runs the short ones
    # on the other worker while the long one runs; a pool that hands calls
    # out ahead of time may queue some behind the long one.
    def calls(scale):
        return [(fn, long * scale)] + [(fn, short * scale)] * count
    return calls


def _one_worker_each(calls):
    # The long call on one worker, every short one on the other.
    lengths = [seconds for _, seconds in calls]
    return max(lengths[0], sum(lengths[1:]))


HEAVY_TAIL_SHORT = 0.010            # seconds
HEAVY_TAIL_LONG = 20 * HEAVY_TAIL_SHORT
HEAVY_TAIL_CALLS = 120
HEAVY_TAIL_LONG_CALLS = 6


def _heavy_tailed(scale):
    # Mostly short calls and a few 20x longer, shuffled (fixed seed: every
    # column and run gets the same order) so the long ones are spread
    # through the batch.
    lengths = ([HEAVY_TAIL_LONG] * HEAVY_TAIL_LONG_CALLS
               + [HEAVY_TAIL_SHORT] * (HEAVY_TAIL_CALLS - HEAVY_TAIL_LONG_CALLS))
    random.Random(16).shuffle(lengths)
    return [(busy, seconds * scale) for seconds in lengths]


def _work_per_worker(calls):
    return max(max(s for _, s in calls), sum(s for _, s in calls) / PROCESS_WORKERS)


# -- memory metrics ------------------------------------------------------------

@contextlib.contextmanager
def _tracing():
    """Yield a function returning the bytes traced since entry."""
    was_tracing = tracemalloc.is_tracing()
    gc.collect()
    if not was_tracing:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    try:
        yield lambda: tracemalloc.get_traced_memory()[0] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()


def _pending_future_bytes(impl, size):
    Future = impl.cf.Future
    slots = [None] * size           # allocated before tracing: not counted
    with _tracing() as traced:
        for i in range(size):
            slots[i] = Future()
        used = traced()
    return Measurement(used, size)


def _pending_task_bytes(impl, size):
    # One worker, held busy: every submit stays queued (work item, future
    # and queue slot all counted), none runs while tracing.
    release = threading.Event()
    executor = impl.cf.ThreadPoolExecutor(1)
    try:
        started = threading.Event()
        executor.submit(lambda: (started.set(), release.wait()))
        started.wait()
        slots = [None] * size
        submit = executor.submit
        with _tracing() as traced:
            for i in range(size):
                slots[i] = submit(noop)
            used = traced()
    finally:
        release.set()
        executor.shutdown(wait=True)
    return Measurement(used, size)


# -- distributed workloads -----------------------------------------------------

_dask = {}


def dask_client():
    """The client of one LocalCluster (PROCESS_WORKERS single-threaded worker
    processes) that every distributed workload of this process shares; it is
    closed at exit.  Every column runs on the same workers."""
    if "client" not in _dask:
        import atexit
        import distributed
        cluster = distributed.LocalCluster(n_workers=PROCESS_WORKERS, threads_per_worker=1,
                                           processes=True, dashboard_address=":0")
        _dask["cluster"] = cluster
        _dask["client"] = distributed.Client(cluster, set_as_default=False)

        def close():
            _dask.pop("client").close()
            _dask.pop("cluster").close()
        atexit.register(close)
    return _dask["client"]


@contextlib.contextmanager
def _dask_map(impl, size):
    runner = impl.dask_runner(dask_client())
    try:
        runner.map(noop1, range(min(size, DASK_CHUNKSIZE)))      # warm
        yield lambda: runner.map(noop1, range(size))
    finally:
        runner.close()


@contextlib.contextmanager
def _dask_round_trip(impl, size):
    runner = impl.dask_runner(dask_client())
    try:
        runner.call(noop)
        call = runner.call

        def run():
            for _ in itertools.repeat(None, size):
                call(noop)
        yield run
    finally:
        runner.close()


def _a_task_per_item_scaled_down(impl, size):
    # dask's columns make a task per item (about 0.2-1 ms each on a quiet
    # machine): 100k of them would take minutes.  They map 1/50 of the
    # items; the time per item is compared.
    return size if impl.name == "fastfutures" else max(1, size // 50)


DISTRIBUTED_WORKLOADS = (
    Timed("distributed", "map",
          "list(map(noop, range(n))): fastfutures DaskExecutor chunksize=%d; dask's"
          " executor and client.map(batch_size=%d): a task per item, on n/50 items"
          % (DASK_CHUNKSIZE, DASK_CHUNKSIZE),
          _dask_map, unit="item", size=100_000, quick_size=10_000, target=20, rounds=3,
          baseline="dask.executor", impl_size=_a_task_per_item_scaled_down),
    Timed("distributed", "round_trip", "submit(noop).result() latency on the cluster",
          _dask_round_trip, unit="op", size=200, quick_size=20, rounds=3,
          baseline="dask.executor"),
) if HAS_DASK else ()


# -- the registry ----------------------------------------------------------------

WORKLOADS = (
    Timed("thread", "future_cycle", "Future() + set_result() + result()",
          _future_cycle, unit="op", size=100_000, quick_size=10_000, target=10),
    Timed("thread", "submit_wait", "no-op submit()s, then wait(fs)",
          _submit_wait, unit="task", size=100_000, quick_size=10_000, target=25),
    Timed("thread", "map", "list(ex.map(noop, range(n)))",
          _thread_map, unit="item", size=100_000, quick_size=10_000, target=50),
    Timed("thread", "as_completed", "no-op submit()s, then as_completed(fs)",
          _as_completed, unit="task", size=100_000, quick_size=10_000, target=20),
    Timed("thread", "round_trip", "ex.submit(noop).result() latency",
          _thread_round_trip, unit="op", size=5_000, quick_size=500, target=5, rounds=10),
    Timed("process", "submit_results", "no-op submit()s, then each result()",
          _process_submits, unit="task", size=10_000, quick_size=1_000, target=10, rounds=3),
    Timed("process", "map", "list(ex.map(identity, range(n), chunksize=256))",
          _process_map, unit="item", size=200_000, quick_size=20_000, target=5, rounds=3),
    Timed("process", "round_trip", "ex.submit(noop).result() latency",
          _process_round_trip, unit="op", size=1_000, quick_size=100, target=4, rounds=5),
    Timed("process", "results_16mib", "16 MiB bytes results, copied (after a warm-up round)",
          _large_results(False), unit="result", size=32, quick_size=4, target=3, rounds=2,
          pool_per_run=True),
    Timed("process", "results_16mib_zero_copy",
          "16 MiB results; fastfutures with zero_copy_results=True (views; after a warm-up round)",
          _large_results(True), unit="result", size=32, quick_size=4, target=8, rounds=2,
          pool_per_run=True),
    Timed("process", "results_16mib_held",
          "32 results of 16 MiB kept until all have arrived, copied",
          _held_results(False), unit="result", size=32, quick_size=4, target=3, rounds=2,
          pool_per_run=True),
    Timed("process", "results_16mib_held_zero_copy",
          "32 results of 16 MiB kept until all have arrived; fastfutures with "
          "zero_copy_results=True",
          _held_results(True), unit="result", size=32, quick_size=4, target=8, rounds=2,
          pool_per_run=True),
    Timed("fresh", "submit_results",
          "with ProcessPoolExecutor() as ex: no-op submit()s, then each result()",
          _fresh_submits, unit="task", size=10_000, quick_size=1_000, rounds=3),
    Timed("fresh", "map",
          "with ProcessPoolExecutor() as ex: list(ex.map(identity, range(n), chunksize=256))",
          _fresh_map, unit="item", size=200_000, quick_size=20_000, rounds=3),
    Timed("fresh", "results_16mib_held",
          "with ProcessPoolExecutor() as ex: n results of 16 MiB kept, copied",
          _fresh_held_results(False), unit="result", size=32, quick_size=4, target=1,
          rounds=2),
    Timed("fresh", "results_16mib_held_zero_copy",
          "with ProcessPoolExecutor() as ex: n results of 16 MiB kept; fastfutures with"
          " zero_copy_results=True",
          _fresh_held_results(True), unit="result", size=32, quick_size=4, rounds=2),
    Mixed("mixed", "short_behind_long_sleep",
          "2 workers: sleep(3), then 8 x sleep(0.2); ideal: 3 s (short ones at 0.2..1.6 s)",
          _short_behind_long(time.sleep, 3.0, 0.2, 8), ideal=_one_worker_each),
    Mixed("mixed", "short_behind_long_cpu",
          "2 workers: a 600 ms busy loop, then 8 x 40 ms; ideal: 600 ms",
          _short_behind_long(busy, 0.6, 0.04, 8), ideal=_one_worker_each),
    Mixed("mixed", "heavy_tailed",
          "2 workers: %d busy loops of %d ms, %d of them %d ms, shuffled; ideal: total / 2"
          % (HEAVY_TAIL_CALLS, HEAVY_TAIL_SHORT * 1000, HEAVY_TAIL_LONG_CALLS,
             HEAVY_TAIL_LONG * 1000),
          _heavy_tailed, ideal=_work_per_worker),
    Timed("asyncio", "to_thread", "await asyncio.to_thread(noop), one after another",
          _sequential_to_thread, unit="call", size=5_000, quick_size=500, target=3),
    Timed("asyncio", "gather", "gather of n loop.run_in_executor(None, noop)",
          _gather_run_in_executor(True), unit="call", size=100_000, quick_size=10_000,
          target=10, rounds=3),
    Timed("asyncio", "gather_no_install",
          "the same without install(): the pool is the loop's default executor and "
          "asyncio's wrap_future() copies each result",
          _gather_run_in_executor(False), unit="call", size=100_000, quick_size=10_000,
          rounds=3, only={STDLIB, "fastfutures", "uvloop", "fastfutures+uvloop"}),
    Timed("asyncio", "server_mix", "n/100 concurrent tasks, each 100 run_in_executor(None, noop)",
          _server_mix, unit="call", size=100_000, quick_size=10_000, target=5, rounds=3),
    Memory("memory", "pending_future", "bytes per pending Future()",
           _pending_future_bytes, unit="future", size=20_000, quick_size=10_000,
           target=200),
    Memory("memory", "pending_task", "bytes per submitted, not yet run task",
           _pending_task_bytes, unit="task", size=20_000, quick_size=10_000,
           target=400),
) + DISTRIBUTED_WORKLOADS

GROUPS = tuple(dict.fromkeys(w.group for w in WORKLOADS))


# Groups left out of a run that names no workloads, each run by
# `--only <group>`: the distributed group starts a dask cluster; the asyncio
# group's six columns (anyio, uvloop) at 100k calls take about five minutes
# here; the mixed group's batches of long calls, three columns, three runs
# each, about a minute.  The default run stays a few minutes.
ON_REQUEST = frozenset({"distributed", "asyncio", "mixed"})


def select(patterns=None):
    """The workloads matching any of ``patterns``: a group ("thread"), an id
    ("thread.map") or a name ("map": every group's but the ON_REQUEST
    groups').  None selects all but the ON_REQUEST groups."""
    if not patterns:
        return [w for w in WORKLOADS if w.group not in ON_REQUEST]
    chosen = []
    for pattern in patterns:
        matched = [w for w in WORKLOADS if pattern in (w.group, w.id)
                   or pattern == w.name and w.group not in ON_REQUEST]
        if not matched and not HAS_DASK and pattern.split(".")[0] == "distributed":
            raise KeyError("the distributed workloads need dask.distributed:"
                           " pip install \"fastfutures[dask]\"")
        if not matched:
            raise KeyError("no workload matches %r (groups: %s; workloads: %s)"
                           % (pattern, ", ".join(GROUPS),
                              ", ".join(w.id for w in WORKLOADS)))
        chosen += [w for w in matched if w not in chosen]
    return [w for w in WORKLOADS if w in chosen]     # registry order
