"""ProcessPoolExecutor over a shared-memory transport.

Same constructor, behaviour, exceptions and messages as the running
Python's ``concurrent.futures.ProcessPoolExecutor`` (of which it is a
subclass), plus ``terminate_workers()`` / ``kill_workers()`` (the 3.14 API)
on every version.  Its futures are ``fastfutures.Future`` objects.

How work travels (see _transport.py): each worker has a channel -- two
shared-memory rings and a wake-up pipe per direction.  ``submit()`` pickles
the call in the caller's thread and, when a worker can take it, writes it
straight into that worker's request ring; otherwise the work item waits in
the pool's queue.  A call in a ring stays cancellable until the worker
claims it (a compare-and-swap on the call's claim slot, see _shm_ring.h).

Which worker, and how far ahead (the Scheduler, _process_scheduler.pxi): up
to ``MAX_IN_FLIGHT_PER_WORKER`` short calls per worker, two when calls run
long; a worker whose call runs long (at least 1 ms and twice the mean) is
stalled: it gets no new call, and the calls waiting behind it are taken back
through their claim slots and run on the other workers.  So a call waits
only while every worker is busy, as in the stdlib.  One result
thread per pool drains every reply ring, completes the futures, hands queued
work to workers, and blocks in ``poll()`` on the reply wake-ups, the worker
sentinels and its own wake-up pipe, so a dying worker is noticed at once.
``map()`` sends each chunk as one message and gets its results back as one
list, as the stdlib's does.

The pool itself -- its state and its workers' states, the queue, the task
table, submitting, the result thread's loop, the worker's loop -- is
compiled (_process_core.pyx, PoolCore); this module checks arguments, spawns
the worker processes and the result thread, and is the stdlib's subclass.

Zero-copy results (opt-in)
--------------------------
``ProcessPoolExecutor(..., zero_copy_results=True)`` returns large
out-of-band parts of a result (64 KiB or more) as views of the shared
segment the worker wrote them into, instead of copies:

* a numpy array comes back as a numpy array whose memory is the segment;
* a ``bytes`` or ``bytearray`` result comes back as a ``memoryview`` (read-only
  for ``bytes``), a ``memoryview`` as a ``memoryview``.

The segment goes back to the worker for reuse when the last view of it
(every array or memoryview made from it, and their slices) has been dropped.
Small results are unaffected.  With the default (``False``) results are
plain copies of exactly the types the stdlib pool returns.

Time limits, cancel_running, on_worker_death (opt-in)
---------------------------------------------------
``task_timeout=`` / ``with_options(timeout=...)``: a call whose function
runs longer fails with TaskTimeout and its worker is replaced;
``cancel_running=True``: cancel() of a running call kills its worker;
``on_worker_death="replace"``: a worker that dies fails only its running
call (WorkerDied).  The result thread does the killing and replacing; it
never forks this process: under 'fork' a replacement is forked by the pool's
zygote, a single-threaded process forked when the pool starts (in the
thread of its first submit), so it holds nothing opened since (_zygote.py
says why and how); 'spawn' starts one by fork+exec, 'forkserver' through
multiprocessing's forkserver.

Everywhere, large ``bytearray``/``memoryview``/numpy buffers in arguments and
results travel through shared memory; a ``memoryview`` (which the stdlib
cannot pickle at all) is accepted and arrives as a ``memoryview``.

On platforms without the transport (Windows) this module re-exports the
stdlib pool.
"""
import itertools
import multiprocessing as mp
import os
import threading
import weakref
from concurrent.futures import _base as _stdlib_base
from concurrent.futures import process as _stdlib_process
# _RemoteTraceback: the stdlib's class, the __cause__ of a broken pool's
# errors (CPython's tests read it here).
from concurrent.futures.process import (BrokenProcessPool, _RemoteTraceback,  # noqa: F401
                                        _chain_from_iterable_of_lists, _process_chunk)
from itertools import islice
from functools import partial

from . import _shm_platform
from ._base import HAS_BUFFERSIZE, Executor, check_buffersize, map_results
from ._future import Future, results_in_order

__all__ = ["ProcessPoolExecutor", "BrokenProcessPool", "TaskTimeout", "WorkerDied"]


from ._process_errors import TaskTimeout, WorkerDied  # noqa: E402 (public here)


def _check_time_limit(name, value):
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None")
    if not value > 0:
        raise ValueError(f"{name} must be > 0")
    return float(value)


if not _shm_platform.SUPPORTED:     # pragma: no cover - Windows
    from concurrent.futures.process import ProcessPoolExecutor  # noqa: F401,F811
    KILL_GRACE_SECONDS = 0.25
else:
    from . import _transport as transport
    from . import _process_core
    from . import _zygote
    from ._process_core import KILL_GRACE_SECONDS  # noqa: F401 (documented)
    from ._process_worker import worker_main
    from ._process_bounds import UNBOUNDED, Bound, PendingWorkItems, submit_within

# Result threads, joined at interpreter exit (before atexit handlers).
_result_threads = weakref.WeakSet()
# Pools that a child created by os.fork() inherits.
_live_cores = weakref.WeakSet()


def _after_fork_in_child():
    for core in list(_live_cores):
        core.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _python_exit():
    # Submits are refused before any result thread can see the flag and
    # stop its workers (a call placed after that would never run).
    _process_core.set_global_shutdown()
    threads = list(_result_threads)
    for thread in threads:
        core = thread.core
        if core is not None:
            core.wake()
    for thread in threads:
        thread.join()


threading._register_atexit(_python_exit)


def _get_chunks(*iterables, chunksize):
    """Iterates over zip()ed iterables in chunks (tuples of argument tuples)."""
    it = zip(*iterables)
    if hasattr(itertools, "batched"):
        return itertools.batched(it, chunksize)
    return iter(lambda: tuple(itertools.islice(it, chunksize)), ())


_KEEP = object()     # with_options(): an option not given keeps its value


def _default_max_workers():
    return getattr(os, "process_cpu_count", os.cpu_count)() or 1


class _PoolCore(_process_core.PoolCore if _shm_platform.SUPPORTED else object):
    """The pool (_process_core.PoolCore: its state, workers, queue and result
    loop), plus what is done in Python: spawning a worker process, starting
    the result thread, the wake-up pipe.

    The result thread references this, never the executor (it holds only a
    weak reference to it), so dropping the executor lets the pool wind down.
    """

    def __init__(self, executor, mp_context, initializer, initargs, max_workers,
                 max_tasks_per_child, zero_copy, task_timeout, cancel_running, replace_dead):
        super().__init__(max_workers, max_tasks_per_child,
                         mp_context.get_start_method(allow_none=False) != "fork",
                         zero_copy, task_timeout, cancel_running, replace_dead)
        self.mp_context = mp_context
        self.worker_args = (initializer, initargs, max_tasks_per_child)
        self.executor_ref = weakref.ref(executor)
        self.result_thread = None
        # 'fork': replacements come from a zygote (_zygote.py), forked in the
        # thread that starts the pool when the pool may replace workers.
        self.forks = mp_context.get_start_method(allow_none=False) == "fork"
        self.replaces = bool(task_timeout) or cancel_running or replace_dead
        self.zygote = None
        self.zygote_closed = False
        self.set_wake_pipe(*_shm_platform.wake_pipe())
        _live_cores.add(self)

    def spawn_worker(self):
        # Under 'fork', the first workers are forked here, in the thread that
        # submitted the pool's first call; every later one by the zygote
        # (never a fork from the result thread, _zygote.py).
        replacement = self.result_thread is not None and self.forks
        if replacement and self.zygote is None:
            raise RuntimeError("a 'fork' pool cannot start a worker without its zygote")
        if not replacement and self.forks and self.replaces:
            self.start_zygote()     # before the first worker's channel exists
        channel = transport.ParentChannel()
        # With fork, start() can raise after the child exists (3.15: fork()'s
        # "multi-threaded" DeprecationWarning as an error): that child would
        # serve a channel nobody reads, forever.  It waits for a go-ahead,
        # sent once the pool knows it; without one it leaves.  (The zygote
        # forks single-threaded: no warning there.)
        go_ahead = os.pipe() if self.forks and not replacement else None
        started = False
        try:
            if replacement:
                process = self.zygote.fork_worker(channel.spec)
            else:
                process = self.mp_context.Process(target=worker_main,
                                                  args=(channel.spec, *self.worker_args),
                                                  kwargs={"go_ahead": go_ahead})
                process.start()
            started = True
        except BaseException:
            channel.close()
            raise
        finally:
            if go_ahead is not None:
                if started:
                    os.write(go_ahead[1], b"\1")
                os.close(go_ahead[0])
                os.close(go_ahead[1])
        channel.worker_started()
        self.add_worker(process, channel)

    def start_zygote(self):
        """Fork the zygote now, in this (a user's) thread, unless there is
        one (lock held)."""
        if self.zygote is None and not self.zygote_closed:
            self.zygote = _zygote.Zygote(self.mp_context, self.worker_args)

    def limits_wanted(self):
        """with_options() made a view with a time limit (the caller's thread):
        a 'fork' pool needs its zygote from now on; one already started
        forks it now, in this thread."""
        if not self.forks or self.replaces:
            return
        with self.lock:
            if self.result_thread is not None and not self.winding_down:
                self.start_zygote()
            self.replaces = True

    def close_zygote(self):
        """Every worker is gone (or the pool never started): let the zygote go."""
        with self.lock:
            zygote, self.zygote = self.zygote, None
            self.zygote_closed = True
        if zygote is not None:
            zygote.close()

    def start_result_thread(self):
        thread = _ResultThread(self, self.executor_ref())
        thread.start()
        self.result_thread = thread
        _result_threads.add(thread)

    # Read by _process_bounds and the executor's stats() (_process_stats.pxi).
    def queued_calls(self):
        return _process_core.queued_calls(self)

    def pending_calls(self):
        return _process_core.pending_calls(self)

    def unfinished_count(self):
        return _process_core.unfinished_count(self)

    def decode_call(self, call):
        return _process_core.decode_call(call)

    def after_fork_in_child(self):
        # Locks held by the parent's other threads stay held in the child.
        if self.zygote is not None:
            # The parent's: this copy must not keep it alive after the parent.
            self.zygote.forget()
            self.zygote = None
            self.zygote_closed = True
        executor = self.executor_ref()
        if executor is not None:
            executor._shutdown_lock = threading.Lock()
        # The parent's pipe: never wake its thread.  A pool never started
        # (nor shut down) stays usable with a pipe of its own.
        had_pipe = self.has_wake_pipe
        self.close_wake_pipe()
        if not self.forked() and had_pipe:
            self.set_wake_pipe(*_shm_platform.wake_pipe())


class _ResultThread(threading.Thread):
    """Runs the pool's result loop (PoolCore.serve())."""

    def __init__(self, core, executor):
        super().__init__(name="fastfutures-process-results")
        self.core = core

        def on_executor_collected(_, core=core):
            core.executor_gone()
            core.wake()
        self.executor_ref = weakref.ref(executor, on_executor_collected)

    def run(self):
        core = self.core
        try:
            core.serve()
        finally:
            core.close_wake_pipe()
            core.close_zygote()
            # The core keeps this thread (shutdown() joins it): without this
            # reference the two form no cycle, and the pool (its initargs
            # included) is freed as soon as the executor is dropped.
            self.core = None


class ProcessPoolExecutor(Executor, _stdlib_process.ProcessPoolExecutor):
    """A drop-in for concurrent.futures.ProcessPoolExecutor over shared memory."""

    def __init__(self, max_workers=None, mp_context=None,
                 initializer=None, initargs=(), *, max_tasks_per_child=None,
                 zero_copy_results=False, task_timeout=None, cancel_running=False,
                 on_worker_death="break", max_queue_size=None, on_queue_full=None,
                 queue_full_timeout=None):
        """Initializes a new ProcessPoolExecutor instance.

        Args:
            max_workers: The maximum number of processes that can be used to
                execute the given calls. If None or not given then as many
                worker processes will be created as the machine has processors.
            mp_context: A multiprocessing context to launch the workers. This
                object should provide SimpleQueue, Queue and Process. Useful
                to allow specific multiprocessing start methods.
            initializer: A callable used to initialize worker processes.
            initargs: A tuple of arguments to pass to the initializer.
            max_tasks_per_child: The maximum number of tasks a worker process
                can complete before it will exit and be replaced with a fresh
                worker process. The default of None means worker process will
                live as long as the executor. Requires a non-'fork' mp_context
                start method. When given, we default to using 'spawn' if no
                mp_context is supplied.
            zero_copy_results: fastfutures only.  Return large buffers of a
                result (numpy arrays, bytes, bytearray, memoryview of 64 KiB
                or more) as views of the shared memory the worker wrote them
                into instead of copies; see the module docstring.
            task_timeout: fastfutures only.  A limit in seconds for every
                call (with_options(timeout=...) sets one for some calls).  A
                call that runs longer fails with TaskTimeout; its worker is
                killed (SIGTERM, then SIGKILL) and replaced; other calls are
                untouched.
            cancel_running: fastfutures only.  When True, cancel() of a call
                that is running kills its worker (replaced): the future ends
                cancelled and cancel() returns True.
            on_worker_death: fastfutures only.  "break" (the stdlib's
                behaviour): a worker that dies breaks the pool.  "replace":
                only the call it was running fails, with WorkerDied; the
                calls it had not started run on other workers; a
                replacement starts.
            max_queue_size: fastfutures only.  At most this many calls
                wait (accepted, not yet started by a worker; None: no
                limit).  A submit that finds them all taken follows
                on_queue_full: "block" (the default; at most
                queue_full_timeout seconds, then QueueFull), "raise"
                (QueueFull) or "caller_runs" (the submitting thread runs
                the call).  A done-callback (on the pool's result thread)
                never waits: QueueFull, or it runs the call.
        """
        if max_workers is None:
            self._max_workers = _default_max_workers()
        else:
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
            self._max_workers = max_workers

        if mp_context is None:
            if max_tasks_per_child is not None:
                mp_context = mp.get_context("spawn")
            else:
                mp_context = mp.get_context()
        self._mp_context = mp_context
        self._safe_to_dynamically_spawn_children = (
            self._mp_context.get_start_method(allow_none=False) != "fork")

        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._initializer = initializer
        self._initargs = initargs

        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            elif max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
            if self._mp_context.get_start_method(allow_none=False) == "fork":
                raise ValueError("max_tasks_per_child is incompatible with"
                                 " the 'fork' multiprocessing start method;"
                                 " supply a different mp_context.")
        self._max_tasks_per_child = max_tasks_per_child

        self._shutdown_lock = threading.Lock()
        self._bound = Bound(max_queue_size, on_queue_full, queue_full_timeout)
        self._bound_lock = threading.Lock()          # one bounded submit at a time
        self._shutdown_signal = Future()             # wakes bounded submitters
        task_timeout = _check_time_limit("task_timeout", task_timeout)
        if on_worker_death not in ("break", "replace"):
            raise ValueError('on_worker_death must be "break" or "replace"')
        self._core = _PoolCore(self, mp_context, initializer, initargs, self._max_workers,
                               max_tasks_per_child, bool(zero_copy_results), task_timeout,
                               bool(cancel_running), on_worker_death == "replace")

    # -- stdlib-compatible introspection --------------------------------------

    @property
    def _processes(self):
        core = getattr(self, "_core", None)
        return core.processes() if core is not None else None

    # The stdlib's attributes, read from the pool's state (its only owner).
    @property
    def _broken(self):
        core = getattr(self, "_core", None)
        return core.broken if core is not None else False

    @property
    def _shutdown_thread(self):
        core = getattr(self, "_core", None)
        return core.winding_down if core is not None else False

    # The stdlib's introspection idioms: calls not finished (a live view,
    # work id -> _WorkItem) and the next work id (calls submitted so far).
    @property
    def _pending_work_items(self):
        core = getattr(self, "_core", None)
        return PendingWorkItems(core) if core is not None else {}

    @property
    def _queue_count(self):
        core = getattr(self, "_core", None)
        return core.stats.submitted if core is not None else 0

    def stats(self):
        """A snapshot of the pool: fastfutures.stats.ExecutorStats (its
        counters add up; see there).  fastfutures only."""
        return _process_core.pool_stats(self._core, self._bound.max_queue_size or None)

    # -- submitting --------------------------------------------------------

    @property
    def _result_thread(self):
        core = self._core
        return core.result_thread if core is not None else None

    # The stdlib's name for the thread that completes futures: code that
    # joins it after shutdown(wait=False) (CPython's own tests do) joins ours.
    _executor_manager_thread = _result_thread

    def submit(self, fn, /, *args, **kwargs):
        if self._bound.max_queue_size:
            return submit_within(self, self._bound, self._core.submit, fn, args, kwargs)
        return self._core.submit(fn, args, kwargs)
    submit.__doc__ = _stdlib_base.Executor.submit.__doc__

    def _map(self, fn, iterables, timeout, chunksize, buffersize, view=None):
        """map(); ``view``: a with_options() view whose limit applies."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        check_buffersize(buffersize)
        if view is not None:
            submitter, limit = view, view._limit
        else:
            submitter, limit = self, -1     # the pool's own limit
        bound = view._bound if view is not None else self._bound
        if (buffersize is not None or "submit" in self.__dict__ or bound.max_queue_size
                or type(self).submit is not ProcessPoolExecutor.submit):
            # Each chunk goes through submit(), as with the stdlib: a
            # subclass's submit() or one set on the instance (tqdm's
            # process_map wraps it so) sees every chunk; buffersize bounds
            # the chunks in flight; a bounded queue's policy applies to each.
            results = Executor.map(submitter, partial(_process_chunk, fn),
                                   _get_chunks(*iterables, chunksize=chunksize),
                                   timeout=timeout,
                                   **({} if buffersize is None else {"buffersize": buffersize}))
            return _chain_from_iterable_of_lists(results)
        # One message per chunk: a list of items (or of argument tuples) and
        # the function, run by the worker as list(map(fn, items)).
        if len(iterables) == 1:
            items, star = iter(iterables[0]), False
        else:
            items, star = zip(*iterables), True
        futures = []
        results = results_in_order(futures, timeout)   # the deadline starts now
        submit_chunk = self._core.submit_chunk
        while chunk := list(islice(items, chunksize)):
            futures.append(submit_chunk(fn, chunk, star, limit))
        return map_results(_process_core.ChunkedResults(results))

    if HAS_BUFFERSIZE:
        def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None):
            return self._map(fn, iterables, timeout, chunksize, buffersize)
    else:
        def map(self, fn, *iterables, timeout=None, chunksize=1):
            return self._map(fn, iterables, timeout, chunksize, None)
    map.__doc__ = _stdlib_process.ProcessPoolExecutor.map.__doc__

    def with_options(self, *, timeout=_KEEP, max_queue_size=_KEEP, on_queue_full=None,
                     queue_full_timeout=None):
        """A view of this pool whose submit() and map() give each call a
        time limit of ``timeout`` seconds (None: no limit), overriding
        task_timeout, and/or follow another max_queue_size/on_queue_full
        (counted against the pool's queue; None: unbounded).  fastfutures
        only."""
        return _PoolView.made(self, -1, self._bound, timeout, max_queue_size,
                              on_queue_full, queue_full_timeout)

    # -- stopping ------------------------------------------------------------

    def shutdown(self, wait=True, *, cancel_futures=False):
        core = self._core
        with self._shutdown_lock:
            if core is not None:
                core.shut_down(cancel_futures)
        if not self._shutdown_signal.done():
            try:
                self._shutdown_signal.set_result(None)     # bounded submitters see it
            except _stdlib_base.InvalidStateError:
                pass
        if core is not None:
            thread = core.result_thread
            if thread is None:
                # Never used: nothing to wind down.
                self._close_unused_core()
            else:
                core.wake()
                if wait:
                    thread.join()
    shutdown.__doc__ = _stdlib_base.Executor.shutdown.__doc__

    def _close_unused_core(self):
        self._core.close_wake_pipe()
        self._core.close_zygote()

    def _force_shutdown(self, terminate):
        core = self._core
        processes = list(core.processes().values()) if core is not None else []
        self.shutdown(wait=False, cancel_futures=True)
        if terminate and core is not None:
            core.terminate_workers()    # SIGKILL follows after KILL_GRACE_SECONDS
            return
        for process in processes:
            try:
                if process.exitcode is not None:
                    continue
                if terminate:
                    process.terminate()
                else:
                    process.kill()
            except (ProcessLookupError, ValueError):
                continue

    def terminate_workers(self):
        """Attempts to terminate the executor's workers.
        Iterates through all of the current worker processes and terminates
        each one that is still alive.

        After terminating workers, the pool will be in a broken state
        and no longer usable (for instance, new tasks should not be
        submitted).
        """
        self._force_shutdown(terminate=True)

    def kill_workers(self):
        """Attempts to kill the executor's workers.
        Iterates through all of the current worker processes and kills
        each one that is still alive.

        After killing workers, the pool will be in a broken state
        and no longer usable (for instance, new tasks should not be
        submitted).
        """
        self._force_shutdown(terminate=False)

    def __del__(self):
        # The result thread notices through its weak reference; nothing to do
        # for a pool that never started one.
        core = getattr(self, "_core", None)
        if core is not None and core.result_thread is None:
            self._close_unused_core()


class _PoolView:
    """ProcessPoolExecutor.with_options(): the same pool, another time limit
    (-1: the pool's) or bound."""

    __slots__ = ("_executor", "_limit", "_bound", "__weakref__")

    def __init__(self, executor, limit, bound=None):
        self._executor = executor
        self._limit = limit
        self._bound = bound if bound is not None else executor._bound

    @classmethod
    def made(cls, executor, limit, bound, timeout, max_queue_size, on_queue_full,
             queue_full_timeout):
        if timeout is not _KEEP:
            limit = _check_time_limit("timeout", timeout)
            if limit:
                executor._core.limits_wanted()
        if max_queue_size is not _KEEP:
            bound = Bound(max_queue_size, on_queue_full, queue_full_timeout)
        elif on_queue_full is not None or queue_full_timeout is not None:
            raise ValueError("on_queue_full and queue_full_timeout need max_queue_size")
        return cls(executor, limit, bound)

    def submit(self, fn, /, *args, **kwargs):
        executor = self._executor
        if self._limit < 0:
            submit = executor._core.submit
        else:
            def submit(fn, args, kwargs, submit_limited=executor._core.submit_limited):
                return submit_limited(fn, args, kwargs, self._limit)
        if self._bound.max_queue_size:
            return submit_within(executor, self._bound, submit, fn, args, kwargs)
        return submit(fn, args, kwargs)
    submit.__doc__ = _stdlib_base.Executor.submit.__doc__

    if HAS_BUFFERSIZE:
        def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None):
            return self._executor._map(fn, iterables, timeout, chunksize, buffersize, self)
    else:
        def map(self, fn, *iterables, timeout=None, chunksize=1):
            return self._executor._map(fn, iterables, timeout, chunksize, None, self)
    map.__doc__ = _stdlib_process.ProcessPoolExecutor.map.__doc__

    def with_options(self, *, timeout=_KEEP, max_queue_size=_KEEP, on_queue_full=None,
                     queue_full_timeout=None):
        return _PoolView.made(self._executor, self._limit, self._bound, timeout,
                              max_queue_size, on_queue_full, queue_full_timeout)

    def __repr__(self):
        limit = "the pool's" if self._limit < 0 else (self._limit or None)
        return f"<{type(self._executor).__name__} view: time limit {limit}>"


if not _shm_platform.SUPPORTED:     # pragma: no cover - Windows
    from concurrent.futures.process import ProcessPoolExecutor  # noqa: F811
