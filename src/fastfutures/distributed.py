"""DaskExecutor: the concurrent.futures API on a dask.distributed cluster.

From threads to processes to a cluster is a constructor change::

    ThreadPoolExecutor(8)  ->  ProcessPoolExecutor(8)  ->  DaskExecutor("tcp://host:8786")

``DaskExecutor(client)`` runs on an existing ``distributed.Client``;
``DaskExecutor("tcp://host:8786")`` connects a client of its own to that
scheduler; ``DaskExecutor()`` (or ``DaskExecutor(max_workers=4)``) starts a
``LocalCluster`` of single-threaded worker processes on this machine.  What it
started (the client, the cluster), it closes at shutdown; a client it was
given stays open.  fastfutures must be importable on the workers.

Semantics are ProcessPoolExecutor's, with a cluster in place of the pool:

* Futures are ``fastfutures.Future`` objects.  A future becomes RUNNING when
  its task has been running on a worker for 10 ms (the worker then logs an
  event that reaches the client moments later; a shorter call is done before
  that would matter, and skipping the event keeps its latency down).  Until
  then ``cancel()`` succeeds and is forwarded to the scheduler, which drops
  the task.  One difference from the process pool
  (which marks a future RUNNING as soon as it hands it to a worker): dask
  does not tell the client when it hands a task to a worker, so a task the
  scheduler had already sent to a worker may still run if the worker reaches
  it before the cancellation does; its result is dropped.
* ``map(chunksize=n)`` sends each chunk of ``n`` items as one dask task that
  returns a list; results come back in order, with ``timeout`` counted from
  the call and closing the iterator cancelling the chunks not yet consumed.
* An exception raised by the function is re-raised by ``result()`` with the
  worker's formatted traceback as its ``__cause__``, as the process pool
  does.  What dask decides about a task whose worker died (retry it
  elsewhere, or fail it with ``KilledWorker``) is what the future gets.
* Every submit runs: tasks are impure (a fresh key per call), never
  deduplicated by dask.
* It is a ``concurrent.futures.Executor``, not a ``ProcessPoolExecutor``
  subclass: what is about the processes of this machine (``mp_context``,
  ``initializer``, ``max_tasks_per_child``, shared memory, worker pids) has no
  meaning on a cluster.  tests/test_distributed_process_suite.py runs the
  process pool's tests on it and lists those left out.
* dask pickles with cloudpickle where pickle fails: a lambda or a local
  function travels (the process pool fails its future).  A result that fails
  to unpickle fails only its own future (the process pool breaks).  dask
  warns (``UserWarning``) about a task whose arguments pass 10 MiB.
* If the client loses its scheduler (or is closed under the executor), every
  pending future fails with ``BrokenDaskCluster`` (a ``BrokenExecutor``) and
  later submits raise it.

Nothing runs on dask's event loop but enqueueing: dask's done-callbacks and
the start events put into a queue that one thread per executor (the result
thread, like the process pool's) drains in batches, gathering the finished
results of a batch in one call and completing the futures.  Done-callbacks
of the futures therefore run in that thread.
"""
import asyncio
import itertools
import logging
import queue
import threading
import time
import uuid
import weakref
from concurrent.futures import _base as _stdlib_base
from concurrent.futures import BrokenExecutor, InvalidStateError
from concurrent.futures.process import _RemoteTraceback
from functools import partial
from traceback import format_exception

try:
    import distributed
    from dask.utils import funcname
except ImportError as exc:      # the optional extra: pip install "fastfutures[dask]"
    raise ImportError(
        "fastfutures.distributed needs dask.distributed: "
        "pip install \"fastfutures[dask]\"") from exc

from ._base import Executor, buffered_map, map_results, take_buffersize
from ._future import Future, results_in_order
from ._process_core import ChunkedResults
from ._stats import PoolStats

__all__ = ["DaskExecutor", "BrokenDaskCluster"]


class BrokenDaskCluster(BrokenExecutor):
    """The executor's client lost its scheduler (or was closed): the
    DaskExecutor is not usable anymore."""


_LOGGER = logging.getLogger("concurrent.futures")

_BROKEN_MESSAGE = ("The dask client lost its scheduler or was closed; "
                   "the DaskExecutor is not usable anymore")

# The reason dask gives for the futures it cancels when the connection to the
# scheduler drops (distributed.Client._reconnect).
_CONNECTION_LOST = "scheduler-connection-lost"


# -- what runs on the workers (module level: pickled by reference) -------------

# A call running this long (seconds) tells the client it has started.
_REPORT_START_AFTER = 0.01

# The attribute that carries a failed call's (start, run time) from the
# worker to the client, on the exception; removed before the future sees it.
_TIMES = "_fastfutures_times"

class _RemoteCall:
    """fn(*args, **kwargs), telling the client (through a dask event on the
    executor's topic) that it has started.  An opaque object, so that dask
    does not walk the arguments looking for its own collections: they are
    pickled as they are, as by the process pool."""

    __slots__ = ("topic", "key", "fn", "args", "kwargs")

    def __init__(self, topic, key, fn, args, kwargs):
        self.topic = topic
        self.key = key
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __reduce__(self):
        return _RemoteCall, (self.topic, self.key, self.fn, self.args, self.kwargs)

    def __call__(self):
        """The result as a _Timed: the start (wall clock, for the client's
        queue wait) and the run time (the worker's monotonic clock) feed
        the executor's stats().  A call that raises carries them on its
        exception."""
        # The start is reported only by a call still running after
        # _REPORT_START_AFTER seconds: an event costs the scheduler and the
        # client a message each (it doubled the latency of a short call
        # here), and a short call's future is soon done anyway.
        worker = distributed.get_worker()
        running = [True]

        def report_start():                 # the worker's event loop
            if running[0]:
                worker.log_event(self.topic, self.key)
        worker.loop.add_callback(worker.loop.call_later, _REPORT_START_AFTER, report_start)
        started_at = time.time()
        clock = time.perf_counter()
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            try:
                setattr(exc, _TIMES, (started_at, time.perf_counter() - clock))
            except Exception:           # an exception that takes no attributes
                pass
            raise
        finally:
            running[0] = False
        return _Timed(result, started_at, time.perf_counter() - clock)


class _Timed:
    """A call's result and when it started / how long it ran on the worker."""

    __slots__ = ("result", "started_at", "run_time")

    def __init__(self, result, started_at, run_time):
        self.result = result
        self.started_at = started_at
        self.run_time = run_time

    def __reduce__(self):
        return _Timed, (self.result, self.started_at, self.run_time)


def _call_chunk(fn, star, items):
    """One map() chunk: its results as one list."""
    if star:
        return list(itertools.starmap(fn, items))
    return list(map(fn, items))


# -- the client side -------------------------------------------------------------

class _Task:
    """A submitted call: its future, the dask future that keeps the task
    alive, and whether set_running_or_notify_cancel() was called (it may be
    called once: by the start event, or when the task ends cancelled)."""

    __slots__ = ("future", "dask_future", "marked", "running", "submitted_at")

    def __init__(self, future, dask_future, submitted_at):
        self.future = future
        self.dask_future = dask_future
        self.marked = False
        self.running = False            # counted running in the stats
        self.submitted_at = submitted_at    # time.time(), for the queue wait

    def mark(self):
        """RUNNING (True), or notify the waiters of a cancelled future (False)."""
        self.marked = True
        return self.future.set_running_or_notify_cancel()


def _take_times(exc):
    """(start, run time) carried by a failed call's exception, or (None, None)."""
    times = getattr(exc, "__dict__", {}).pop(_TIMES, None)
    return times if times is not None else (None, None)


def _with_remote_traceback(exc, tb):
    """``exc`` as the process pool re-raises a worker's exception: no remote
    frames of its own, the worker's traceback text as ``__cause__``."""
    text = "".join(format_exception(type(exc), exc, tb))
    exc.__traceback__ = None
    exc.__cause__ = _RemoteTraceback(f"\n'''\n{text}'''")
    return exc


class _Completer:
    """The result thread and what it shares with submit(): the tasks in
    flight by key, and the queue that dask's callbacks feed.

    Queue items: a key (str: its task started); (True, key, value): a
    result; (False, dask future, exception): a task that failed, or was
    cancelled, or whose result could not be fetched; None: wake up
    (shutdown).  It holds no reference to the executor, so dropping the
    executor shuts it down.

    Stats: a task is queued from submit() until its start event (a call
    shorter than _REPORT_START_AFTER goes from queued to its outcome), then
    running; its durations come from the worker (_RemoteCall).  Every count
    changes under stats_lock, so a snapshot adds up.
    """

    def __init__(self, client, owned):
        self.client = client
        self.owned = owned              # what to close when done: client, cluster
        self.tasks = {}                 # key -> _Task
        self.events = queue.SimpleQueue()
        # closed/broken vs. registering a task; held across client.submit()
        # (pickling), so dask's loop never takes it: it takes batch_lock,
        # which guards only the two lists below.
        self.lock = threading.Lock()
        self.batch_lock = threading.Lock()
        self.closed = False
        self.broken = None              # the BrokenDaskCluster message once broken
        self.to_cancel = []             # dask futures to cancel, sent in batches
        self.to_watch = []              # new dask futures, watched in batches
        self.watching = set()           # the loop's tasks awaiting results
        self.stats = PoolStats()
        self.stats_lock = threading.Lock()
        self.workers = 0                # worker threads at the last snapshot
        self.topic = "fastfutures-" + uuid.uuid4().hex
        self.key_prefix = uuid.uuid4().hex[:12]
        self.counter = itertools.count()
        self.thread = threading.Thread(target=self.run, daemon=True,
                                       name="DaskExecutor-results")
        client.subscribe_topic(self.topic, self.on_start_event)
        self.thread.start()

    # -- called from dask's threads: enqueue only -----------------------------

    def on_start_event(self, event):        # dask's event loop
        self.events.put(event[1])

    def watch_new(self):                    # dask's event loop
        with self.batch_lock:
            batch, self.to_watch = self.to_watch, []
        for dask_future in batch:
            # asyncio keeps only a weak reference to a task: we hold it.
            task = asyncio.ensure_future(self.watch(dask_future))
            self.watching.add(task)
            task.add_done_callback(self.watching.discard)

    async def watch(self, dask_future):     # dask's event loop
        """Wait for a task's result without blocking the loop (many run at
        once), then hand it to the result thread."""
        try:
            value = await self.client.gather(dask_future, asynchronous=True)
        except BaseException as exc:       # failed or cancelled: its status says
            self.events.put((False, dask_future, exc))
        else:
            self.events.put((True, dask_future.key, value))

    # -- submit / cancel (user threads) ------------------------------------------

    def submit(self, name, fn, args, kwargs):
        future = Future()
        submitted_at = time.time()
        with self.lock:
            if self.broken is not None:
                raise BrokenDaskCluster(self.broken)
            if self.closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            key = "%s-%s-%d" % (name, self.key_prefix, next(self.counter))
            call = _RemoteCall(self.topic, key, fn, args, kwargs)
            try:
                dask_future = self.client.submit(call, key=key, pure=False)
            except Exception as exc:
                if self.client.status not in ("running", "connecting"):
                    self.broken = _BROKEN_MESSAGE
                    raise BrokenDaskCluster(self.broken) from exc
                # An argument that cannot be pickled fails only its future,
                # as with the process pool.
                with self.stats_lock:
                    self.stats.submitted += 1
                    self.stats.failed += 1
                future.set_exception(exc)
                return future
            with self.stats_lock:
                self.stats.submitted += 1
            self.tasks[key] = _Task(future, dask_future, submitted_at)
        with self.batch_lock:
            # One wake-up of dask's loop for a burst of submits.
            self.to_watch.append(dask_future)
            first = len(self.to_watch) == 1
        future.add_done_callback(partial(self.forward_cancel, key))
        if first:
            self.client.loop.add_callback(self.watch_new)
        return future

    def forward_cancel(self, key, future):
        """Done-callback of every future: a cancelled one cancels its task."""
        if not future.cancelled():
            return
        task = self.tasks.get(key)
        if task is None:
            return
        with self.batch_lock:
            self.to_cancel.append(task.dask_future)
            first = len(self.to_cancel) == 1
        if first:
            try:
                self.client.loop.add_callback(self.send_cancels)
            except RuntimeError:        # the loop is closed: the task dies with it
                pass

    async def send_cancels(self):           # dask's event loop
        with self.batch_lock:
            batch, self.to_cancel = self.to_cancel, []
        batch = [f for f in batch if f is not None]    # None: finished meanwhile
        if batch:
            try:
                await self.client.cancel(batch, asynchronous=True)
            except Exception:           # the client closed: the tasks went with it
                pass

    # -- the result thread ---------------------------------------------------------

    def run(self):
        try:
            while not (self.closed and not self.tasks):
                try:
                    # With tasks in flight, look at the client now and then:
                    # a client closed under us may never report its futures.
                    item = self.events.get(timeout=0.5 if self.tasks else None)
                except queue.Empty:
                    if self.client.status in ("closing", "closed", "failed"):
                        self.break_cluster()
                    continue
                if item is not None:
                    try:
                        self.handle(item)
                    except Exception:
                        # A bug here must not stop the thread (every future
                        # would hang): say so, go on.
                        _LOGGER.exception("DaskExecutor's result thread: %r", item)
        finally:
            self.close_owned()

    def handle(self, item):
        if isinstance(item, str):
            task = self.tasks.get(item)
            if task is not None and not task.marked:
                with self.stats_lock:
                    if task.mark():
                        task.running = True
                        self.stats.running += 1
            return
        ok, which, value = item
        if ok:
            task = self.tasks.pop(which, None)
            if task is not None:
                self.settle(task, True, value)
            return
        task = self.tasks.pop(which.key, None)
        if task is None:
            return
        if task.future.cancelled():
            self.notify_cancelled(task)
        elif which.status == "error":
            try:
                error = _with_remote_traceback(which.exception(), which.traceback())
            except Exception as exc:        # the client closed meanwhile
                error = exc
            self.settle(task, False, error)
        elif which.status == "cancelled" or self.client.status != "running":
            self.on_cancelled_in_dask(task)
        else:
            self.settle(task, False, value)     # gather() failed otherwise

    def settle(self, task, ok, value):
        task.dask_future = None         # lets dask release the key
        if ok:
            if type(value) is _Timed:
                value, started_at, run_time = value.result, value.started_at, value.run_time
            else:                       # a worker with an older fastfutures
                started_at = run_time = None
        else:
            started_at, run_time = _take_times(value)
        # Counted before the future's waiters wake (a snapshot taken after
        # result() returns counts the call), not while its callbacks run.
        with self.stats_lock:
            # RUNNING first (if no start event made it so): from the count
            # on, cancel() cannot win.  False: it already had (cancelled).
            if not task.marked and not task.mark():
                outcome = None
            else:
                outcome = "completed" if ok else "failed"
                self.count_end(task, outcome)
                if started_at is not None:
                    self.stats.record(max(0.0, started_at - task.submitted_at), run_time)
                if not ok and isinstance(value, distributed.KilledWorker):
                    self.stats.worker_deaths += 1
        if outcome is None:
            self.notify_cancelled(task)
            return
        try:
            if ok:
                task.future.set_result(value)
            else:
                task.future.set_exception(value)
        except InvalidStateError:       # set by someone else (misuse): theirs stands
            pass

    def notify_cancelled(self, task):
        task.dask_future = None
        with self.stats_lock:
            self.count_end(task, "cancelled")
        if not task.marked:
            task.mark()

    def count_end(self, task, outcome):
        """Count a task's outcome (stats_lock held)."""
        if task.running:
            task.running = False
            self.stats.running -= 1
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)

    def snapshot(self):
        """executor.stats()."""
        if self.client.status == "running":
            try:
                # One round trip to the scheduler (not possible from dask's
                # own loop: the last known count then).
                self.workers = sum(self.client.nthreads(callback_timeout=5).values())
            except Exception:
                pass
        with self.stats_lock:
            s = self.stats
            queued = s.submitted - s.running - s.completed - s.failed - s.cancelled
            return s.snapshot_now(queued, self.workers, self.workers)

    def on_cancelled_in_dask(self, task):
        state = getattr(task.dask_future, "_state", None)
        reason = getattr(getattr(state, "exception", None), "reason", None)
        if reason == _CONNECTION_LOST or self.client.status != "running":
            self.break_cluster(task)
        elif task.future.cancel():
            # Someone cancelled the key in dask (client.cancel, restart):
            # cancelled, as if by its owner.
            self.notify_cancelled(task)
        else:
            self.settle(task, False, _stdlib_base.CancelledError(
                "the task was cancelled in dask while running"))

    def break_cluster(self, task=None):
        """Fail every task in flight with BrokenDaskCluster; refuse new ones."""
        with self.lock:
            self.broken = _BROKEN_MESSAGE
            tasks = list(self.tasks.values())
            self.tasks.clear()
        if task is not None:
            tasks.append(task)
        for task in tasks:
            if task.future.cancelled():
                self.notify_cancelled(task)
            else:
                self.settle(task, False, BrokenDaskCluster(_BROKEN_MESSAGE))

    # -- stopping -------------------------------------------------------------------

    def shutdown(self, cancel_futures):
        with self.lock:
            self.closed = True
            tasks = list(self.tasks.values())
        if cancel_futures:
            for task in tasks:
                task.future.cancel()
        self.events.put(None)

    def close_owned(self):
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:               # closed already
            pass
        for resource in self.owned:
            try:
                resource.close()
            except Exception:           # already gone (the cluster was lost)
                pass


def _start_local_cluster(max_workers, cluster_options):
    # A free port for the dashboard (the default, 8787, may be taken).
    options = {"processes": True, "threads_per_worker": 1, "dashboard_address": ":0"}
    if max_workers is not None:
        options["n_workers"] = max_workers
    options.update(cluster_options)
    cluster = distributed.LocalCluster(**options)
    try:
        return distributed.Client(cluster, set_as_default=False), cluster
    except BaseException:
        cluster.close()
        raise


class DaskExecutor(Executor):
    """An Executor that runs calls as tasks on a dask.distributed cluster.

    Args:
        cluster: a ``distributed.Client`` (used, not closed at shutdown), a
            scheduler address such as ``"tcp://10.0.0.5:8786"`` or a dask
            ``Cluster`` object (a client of the executor's own connects to
            it), or None: start a ``LocalCluster`` of worker processes on
            this machine, closed at shutdown.
        max_workers: with ``cluster=None``, the number of worker processes
            (one thread each); the default is LocalCluster's.
        **cluster_options: with ``cluster=None``, more LocalCluster
            arguments (``memory_limit``, ``dashboard_address``, ...).
    """

    def __init__(self, cluster=None, /, max_workers=None, **cluster_options):
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if cluster is None:
            client, local = _start_local_cluster(max_workers, cluster_options)
            owned = (client, local)
        elif max_workers is not None or cluster_options:
            raise TypeError("max_workers and cluster options apply only to the"
                            " LocalCluster that DaskExecutor() starts")
        elif isinstance(cluster, distributed.Client):
            client, owned = cluster, ()
        else:
            client = distributed.Client(cluster, set_as_default=False)
            owned = (client,)
        self._client = client
        self._completer = _Completer(client, owned)
        # Dropping the executor shuts it down (without waiting), as the
        # stdlib pools do.
        self._finalizer = weakref.finalize(self, self._completer.shutdown, False)

    @property
    def client(self):
        """The ``distributed.Client`` the tasks go through."""
        return self._client

    def stats(self):
        """One consistent snapshot of the executor (an ``ExecutorStats``):
        calls queued (submitted, not seen running), running (the worker
        reported its start: calls that run 10 ms or more), completed,
        failed (``worker_deaths``: failed with dask's ``KilledWorker``),
        cancelled; queue wait (submit to start on the worker, wall clocks
        of the two machines) and run time (the worker's clock) of every call
        that ran; ``workers``: the cluster's worker threads (one round trip
        to the scheduler per snapshot).  A ``map()`` chunk is one call."""
        return self._completer.snapshot()

    def submit(self, fn, /, *args, **kwargs):
        return self._completer.submit(funcname(fn), fn, args, kwargs)
    submit.__doc__ = _stdlib_base.Executor.submit.__doc__

    def map(self, fn, *iterables, timeout=None, chunksize=1, **buffering):
        """Returns an iterator equivalent to map(fn, iter).

        Args:
            fn: A callable that will take as many arguments as there are
                passed iterables.
            timeout: The maximum number of seconds to wait. If None, then there
                is no limit on the wait time.
            chunksize: The iterables are chopped into chunks of this many
                items; each chunk is one dask task.
            buffersize (Python 3.14+): the number of submitted chunks whose
                results have not yet been yielded; None submits every chunk
                at once.

        Returns:
            An iterator equivalent to: map(func, *iterables) but the calls may
            be evaluated out-of-order.

        Raises:
            TimeoutError: If the entire result iterator could not be generated
                before the given timeout.
            Exception: If fn(*args) raises for any values.
        """
        # The stdlib's order of checks: chunksize first.
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        buffersize = take_buffersize(buffering)
        if len(iterables) == 1:
            items, star = iter(iterables[0]), False
        else:
            items, star = zip(*iterables), True
        chunks = iter(lambda: list(itertools.islice(items, chunksize)), [])
        run_chunk = partial(_call_chunk, fn, star)
        if buffersize is not None:
            # Chunks go through self.submit(), buffersize of them at a time.
            return map_results(ChunkedResults(
                buffered_map(self, run_chunk, (chunks,), timeout, buffersize)))
        futures = []
        results = results_in_order(futures, timeout)   # the deadline starts now
        if "submit" in self.__dict__ or type(self).submit is not DaskExecutor.submit:
            # A subclass's submit() or one set on the instance (tqdm's
            # process_map wraps it so) sees every chunk, as with the stdlib.
            futures.extend(self.submit(run_chunk, chunk) for chunk in chunks)
        else:
            submit = self._completer.submit
            name = funcname(fn)
            futures.extend(submit(name, run_chunk, (chunk,), {}) for chunk in chunks)
        return map_results(ChunkedResults(results))

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._completer.shutdown(cancel_futures)
        # (From a done-callback, which runs in the result thread, it cannot
        # wait for itself.)
        if wait and threading.current_thread() is not self._completer.thread:
            self._completer.thread.join()
    shutdown.__doc__ = _stdlib_base.Executor.shutdown.__doc__

