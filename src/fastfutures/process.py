"""ProcessPoolExecutor over a shared-memory transport.

Same constructor, behaviour, exceptions and messages as the running
Python's ``concurrent.futures.ProcessPoolExecutor`` (of which it is a
subclass), plus ``terminate_workers()`` / ``kill_workers()`` (the 3.14 API)
on every version.  Its futures are ``fastfutures.Future`` objects.

How work travels (see _transport.py): each worker has a channel -- two
shared-memory rings and a wake-up pipe per direction.  ``submit()`` pickles
the call in the caller's thread and, when a worker has room, writes it
straight into that worker's request ring; otherwise the work item waits in
the pool's queue (where ``cancel()`` still works) until a worker has fewer
than ``_MAX_IN_FLIGHT`` tasks.  One result thread per pool drains every
reply ring, completes the futures, hands queued work to workers, and
blocks in ``poll()`` on the reply wake-ups, the worker sentinels and its own
wake-up pipe, so a dying worker is noticed at once.

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

Everywhere, large ``bytearray``/``memoryview``/numpy buffers in arguments and
results travel through shared memory; a ``memoryview`` (which the stdlib
cannot pickle at all) is accepted and arrives as a ``memoryview``.

On platforms without the transport (Windows) this module re-exports the
stdlib pool.
"""
import itertools
import multiprocessing as mp
import os
import select
import sys
import threading
import weakref
from collections import deque
from concurrent.futures import _base as _stdlib_base
from concurrent.futures import process as _stdlib_process
from concurrent.futures.process import (BrokenProcessPool, _RemoteTraceback,
                                        _chain_from_iterable_of_lists, _process_chunk)
from functools import partial
from traceback import format_exception

from . import _shm_platform
from ._base import Executor
from ._future import Future

__all__ = ["ProcessPoolExecutor", "BrokenProcessPool"]

if not _shm_platform.SUPPORTED:     # pragma: no cover - Windows
    from concurrent.futures.process import ProcessPoolExecutor  # noqa: F401,F811
else:
    from . import _transport as transport
    from ._process_worker import worker_main

# Tasks handed to one worker ahead of their turn.  Futures in a worker's ring
# are RUNNING and cannot be cancelled; a deeper ring keeps workers busy
# between two wake-ups of the result thread.
_MAX_IN_FLIGHT = 8

_BROKEN_MESSAGE = ('A child process terminated abruptly, the process pool '
                   'is not usable anymore')
_FUTURE_BROKEN_MESSAGE = ('A process in the process pool was terminated '
                          'abruptly while the future was running or pending.')

# Result threads, joined at interpreter exit (before atexit handlers).
_result_threads = weakref.WeakSet()
_global_shutdown = False


def _python_exit():
    global _global_shutdown
    _global_shutdown = True
    threads = list(_result_threads)
    for thread in threads:
        thread.core.wake()
    for thread in threads:
        thread.join()


threading._register_atexit(_python_exit)


def _get_chunks(*iterables, chunksize):
    """Iterates over zip()ed iterables in chunks (tuples of argument tuples)."""
    it = zip(*iterables)
    if hasattr(itertools, "batched"):
        return itertools.batched(it, chunksize)
    return iter(lambda: tuple(itertools.islice(it, chunksize)), ())


def _default_max_workers():
    return getattr(os, "process_cpu_count", os.cpu_count)() or 1


class _Task:
    __slots__ = ("task_id", "future", "payload", "buffers", "worker")

    def __init__(self, task_id, future, payload, buffers):
        self.task_id = task_id
        self.future = future
        self.payload = payload
        self.buffers = buffers
        self.worker = None


class _Worker:
    """A worker process and the parent's end of its channel."""

    def __init__(self, process, channel, max_tasks):
        self.process = process
        self.channel = channel
        self.endpoint = channel.endpoint
        self.sentinel = process.sentinel
        self.in_flight = 0
        self.tasks_left = max_tasks     # None: unlimited
        self.retiring = False           # told us its last reply is coming
        self.exit_sent = False

    def can_take(self):
        if self.retiring or self.exit_sent:
            return False
        if self.tasks_left is not None and self.in_flight >= self.tasks_left:
            return False
        return self.in_flight < _MAX_IN_FLIGHT


class _PoolCore:
    """State shared by the executor and its result thread.

    The result thread references this, never the executor (it holds only a
    weak reference to it), so dropping the executor lets the pool wind down.
    ``lock`` guards the queue, the task table, the workers and the rings'
    write side.
    """

    def __init__(self, mp_context, initializer, initargs, max_workers,
                 max_tasks_per_child, zero_copy):
        self.lock = threading.Lock()
        self.mp_context = mp_context
        self.initializer = initializer
        self.initargs = initargs
        self.max_workers = max_workers
        self.max_tasks_per_child = max_tasks_per_child
        self.zero_copy = zero_copy
        self.workers = []
        self.queue = deque()            # _Task not yet handed to a worker
        self.tasks = {}                 # task_id -> _Task handed to a worker
        self.shutting_down = False
        self.cancel_queued = False
        self.broken = False
        self.task_ids = itertools.count()
        self.wake_read, self.wake_write = _shm_platform.wake_pipe()
        self.wake_closed = False
        # Reentrant: wake() also runs from a weakref callback, i.e. from the
        # garbage collector, possibly inside a wake() of the same thread.
        self.wake_lock = threading.RLock()
        self.workers_changed = True

    def wake(self):
        with self.wake_lock:
            if not self.wake_closed:
                try:
                    os.write(self.wake_write, b"\0")
                except BlockingIOError:
                    pass

    def close_wake_pipe(self):
        with self.wake_lock:
            if not self.wake_closed:
                self.wake_closed = True
                os.close(self.wake_read)
                os.close(self.wake_write)

    # -- workers (lock held) ----------------------------------------------

    def spawn_worker(self):
        channel = transport.ParentChannel()
        try:
            process = self.mp_context.Process(
                target=worker_main,
                args=(channel.spec, self.initializer, self.initargs,
                      self.max_tasks_per_child))
            process.start()
        except BaseException:
            channel.close()
            raise
        channel.worker_started()
        self.workers.append(_Worker(process, channel, self.max_tasks_per_child))
        self.workers_changed = True

    def has_idle_worker(self):
        return any(w.in_flight == 0 and w.can_take() for w in self.workers)

    def dispatch(self):
        """Hand queued tasks to workers with room.  Lock held; returns the
        futures cancelled meanwhile (already notified)."""
        queue = self.queue
        while queue:
            best = None
            for w in self.workers:
                if w.can_take() and (best is None or w.in_flight < best.in_flight):
                    best = w
            if best is None:
                return
            task = queue[0]
            endpoint = best.endpoint
            needed = len(task.payload) + 96 + 16 * len(task.buffers)
            if (needed < endpoint.outbox.max_record
                    and not endpoint.outbox.has_room(needed)):
                return      # ring full: the worker's next reply brings us back
            queue.popleft()
            if not task.future.set_running_or_notify_cancel():
                continue
            if not endpoint.send(transport.CALL, task.task_id, task.payload, task.buffers):
                # Only a segment-carried message can still miss room.
                queue.appendleft(task)
                return
            task.payload = task.buffers = None
            task.worker = best
            best.in_flight += 1
            if best.tasks_left is not None:
                best.tasks_left -= 1
            self.tasks[task.task_id] = task


class _ResultThread(threading.Thread):
    """Completes futures from the workers' replies and watches the workers."""

    def __init__(self, core, executor):
        super().__init__(name="fastfutures-process-results")
        self.core = core

        def on_executor_collected(_, core=core):
            core.wake()
        self.executor_ref = weakref.ref(executor, on_executor_collected)

    def run(self):
        core = self.core
        try:
            self._loop()
        except BaseException as exc:
            self._break(format_exception(type(exc), exc, exc.__traceback__))
            raise
        finally:
            core.close_wake_pipe()

    def _shutting_down(self):
        core = self.core
        return (core.shutting_down or _global_shutdown
                or self.executor_ref() is None)

    def _loop(self):
        core = self.core
        poller = None
        registered = {}
        while True:
            progressed = False
            for worker in list(core.workers):
                records = worker.endpoint.inbox.read_batch()
                if records:
                    progressed = True
                    if not self._handle_replies(worker, records):
                        return          # the pool broke
            if progressed:
                continue
            if self._shutting_down():
                if self._wind_down():
                    return
            if core.workers_changed or poller is None:
                poller = select.poll()
                registered = {core.wake_read: None}
                poller.register(core.wake_read, select.POLLIN)
                with core.lock:
                    core.workers_changed = False
                    workers = list(core.workers)
                for worker in workers:
                    poller.register(worker.endpoint.wake_read_fd, select.POLLIN)
                    poller.register(worker.sentinel, select.POLLIN)
                    registered[worker.endpoint.wake_read_fd] = None
                    registered[worker.sentinel] = worker
            sleepers = []
            may_sleep = True
            for worker in core.workers:
                sleepers.append(worker)
                if not worker.endpoint.inbox.prepare_sleep():
                    may_sleep = False
                    break
            events = poller.poll(None if may_sleep else 0)
            for worker in sleepers:
                worker.endpoint.inbox.awake()
            for fd, _ in events:
                worker = registered.get(fd)
                if worker is None:
                    _shm_platform.drain(fd)
            for fd, _ in events:
                worker = registered.get(fd)
                if worker is not None and not self._worker_exited(worker):
                    return

    def _handle_replies(self, worker, records):
        core = self.core
        endpoint = worker.endpoint
        completions = []
        cause = None
        for record in records:
            try:
                kind, flags, task_id, value = endpoint.decode(record, core.zero_copy)
            except BaseException as exc:
                # As in the stdlib: a reply that cannot be read breaks the pool.
                cause = format_exception(type(exc), exc, exc.__traceback__)
                break
            if kind == transport.RESULT or kind == transport.RAW_RESULT:
                completions.append((task_id, value, False, flags))
            elif kind == transport.EXCEPTION:
                completions.append((task_id, value, True, flags))
            else:
                with core.lock:
                    endpoint.handle_control(kind, value)
        value = None
        with core.lock:
            for i, (task_id, value, failed, flags) in enumerate(completions):
                task = core.tasks.pop(task_id, None)
                worker.in_flight -= 1
                if flags & transport.WORKER_EXITING:
                    worker.retiring = True
                completions[i] = (task.future if task is not None else None, value, failed)
            endpoint.flush_releases()
            if cause is None:
                core.dispatch()
        for future, value, failed in completions:
            if future is None:
                continue
            if failed:
                future.set_exception(value)
            else:
                future.set_result(value)
        if cause is not None:
            self._break(cause)
            return False
        return True

    def _worker_exited(self, worker):
        """A worker's sentinel fired.  False when that broke the pool."""
        core = self.core
        records = worker.endpoint.inbox.read_batch()     # its last replies
        if records and not self._handle_replies(worker, records):
            return False
        if not (worker.retiring or worker.exit_sent):
            self._break(None)
            return False
        worker.process.join()
        with core.lock:
            core.workers.remove(worker)
            core.workers_changed = True
            worker.channel.close()
            if worker.retiring and not self._shutting_down():
                core.spawn_worker()
                core.dispatch()
        return True

    def _wind_down(self):
        """Shutting down: once no work is left, stop the workers.  True when
        every worker is gone."""
        core = self.core
        cancelled = []
        with core.lock:
            core.shutting_down = True
            if core.cancel_queued:
                cancelled = list(core.queue)
                core.queue.clear()
                core.cancel_queued = False
        for task in cancelled:
            task.future.cancel()
        with core.lock:
            if core.queue or core.tasks:
                return False
            for worker in core.workers:
                if not worker.exit_sent and worker.endpoint.send(transport.EXIT, 0, b""):
                    worker.exit_sent = True
            if core.workers:
                return False
            return True

    def _break(self, cause):
        """The pool is broken: fail every future, stop every worker."""
        core = self.core
        executor = self.executor_ref()
        with core.lock:
            if core.broken:
                return
            core.broken = _BROKEN_MESSAGE
            core.shutting_down = True
            if executor is not None:
                executor._broken = _BROKEN_MESSAGE
                executor._shutdown_thread = True
            executor = None
            tasks = list(core.tasks.values()) + list(core.queue)
            core.tasks.clear()
            core.queue.clear()
            workers = list(core.workers)
            core.workers.clear()
            core.workers_changed = True
        error = BrokenProcessPool(_FUTURE_BROKEN_MESSAGE)
        if cause is not None:
            error.__cause__ = _RemoteTraceback(f"\n'''\n{''.join(cause)}'''")
        for task in tasks:
            if not task.future.done():
                try:
                    task.future.set_exception(error)
                except _stdlib_base.InvalidStateError:
                    pass    # cancelled meanwhile
        for worker in workers:
            if worker.process.exitcode is None:
                worker.process.terminate()
        for worker in workers:
            worker.process.join()
            worker.channel.close()


class ProcessPoolExecutor(Executor, _stdlib_process.ProcessPoolExecutor):
    """A drop-in for concurrent.futures.ProcessPoolExecutor over shared memory."""

    def __init__(self, max_workers=None, mp_context=None,
                 initializer=None, initargs=(), *, max_tasks_per_child=None,
                 zero_copy_results=False):
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

        self._shutdown_thread = False
        self._broken = False
        self._shutdown_lock = threading.Lock()      # orders submit vs shutdown
        self._core = _PoolCore(mp_context, initializer, initargs, self._max_workers,
                               max_tasks_per_child, bool(zero_copy_results))
        self._result_thread = None

    # -- stdlib-compatible introspection --------------------------------------

    @property
    def _processes(self):
        core = self._core
        if core is None:
            return None
        return {w.process.pid: w.process for w in list(core.workers)}

    # -- submitting --------------------------------------------------------

    def _start_result_thread(self):
        if self._result_thread is None:
            core = self._core
            if not self._safe_to_dynamically_spawn_children:   # fork: all now,
                with core.lock:                                 # before our thread
                    while len(core.workers) < self._max_workers:
                        core.spawn_worker()
            thread = _ResultThread(core, self)
            thread.start()
            self._result_thread = thread
            _result_threads.add(thread)

    def submit(self, fn, /, *args, **kwargs):
        try:
            payload, buffers = transport.dumps((fn, args, kwargs))
            pickling_error = None
        except Exception as exc:
            pickling_error = exc
        with self._shutdown_lock:
            if self._broken:
                raise BrokenProcessPool(self._broken)
            if self._shutdown_thread:
                raise RuntimeError('cannot schedule new futures after shutdown')
            if _global_shutdown:
                raise RuntimeError('cannot schedule new futures after '
                                   'interpreter shutdown')
            future = Future()
            if pickling_error is not None:
                # As the stdlib's queue feeder does: only this future fails.
                tb = format_exception(type(pickling_error), pickling_error,
                                      pickling_error.__traceback__)
                pickling_error.__cause__ = _RemoteTraceback(
                    '\n"""\n{}"""'.format(''.join(tb)))
                future.set_exception(pickling_error)
                return future
            core = self._core
            self._start_result_thread()
            with core.lock:
                if core.broken:
                    raise BrokenProcessPool(core.broken)
                core.queue.append(_Task(next(core.task_ids), future, payload, buffers))
                if (self._safe_to_dynamically_spawn_children
                        and len(core.workers) < self._max_workers
                        and not core.has_idle_worker()):
                    core.spawn_worker()
                core.dispatch()
            if core.workers_changed:
                core.wake()
            return future
    submit.__doc__ = _stdlib_base.Executor.submit.__doc__

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Returns an iterator equivalent to map(fn, iter).

        Args:
            fn: A callable that will take as many arguments as there are
                passed iterables.
            timeout: The maximum number of seconds to wait. If None, then there
                is no limit on the wait time.
            chunksize: If greater than one, the iterables will be chopped into
                chunks of size chunksize and submitted to the process pool.
                If set to one, the items in the list will be sent one at a time.

        Returns:
            An iterator equivalent to: map(func, *iterables) but the calls may
            be evaluated out-of-order.

        Raises:
            TimeoutError: If the entire result iterator could not be generated
                before the given timeout.
            Exception: If fn(*args) raises for any values.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        results = super().map(partial(_process_chunk, fn),
                              _get_chunks(*iterables, chunksize=chunksize),
                              timeout=timeout)
        return _chain_from_iterable_of_lists(results)

    # -- stopping ------------------------------------------------------------

    def shutdown(self, wait=True, *, cancel_futures=False):
        core = self._core
        with self._shutdown_lock:
            self._shutdown_thread = True
            if core is not None:
                with core.lock:
                    core.shutting_down = True
                    if cancel_futures:
                        core.cancel_queued = True
        thread = self._result_thread
        if core is not None:
            if thread is None:
                # Never used: nothing to wind down.
                self._close_unused_core()
            else:
                core.wake()
                if wait:
                    thread.join()
        if wait:
            self._result_thread = None
    shutdown.__doc__ = _stdlib_base.Executor.shutdown.__doc__

    def _close_unused_core(self):
        self._core.close_wake_pipe()

    def _force_shutdown(self, terminate):
        core = self._core
        processes = [w.process for w in list(core.workers)] if core is not None else []
        self.shutdown(wait=False, cancel_futures=True)
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
        if core is not None and self._result_thread is None:
            self._close_unused_core()
