"""ProcessPoolExecutor over a shared-memory transport.

Same constructor, behaviour, exceptions and messages as the running
Python's ``concurrent.futures.ProcessPoolExecutor`` (of which it is a
subclass), plus ``terminate_workers()`` / ``kill_workers()`` (the 3.14 API)
on every version.  Its futures are ``fastfutures.Future`` objects.

How work travels (see _transport.py): each worker has a channel -- two
shared-memory rings and a wake-up pipe per direction.  ``submit()`` pickles
the call in the caller's thread and, when a worker has room, writes it
straight into that worker's request ring; otherwise the work item waits in
the pool's queue until a worker has fewer than ``MAX_IN_FLIGHT_PER_WORKER``
tasks.  A call in a ring stays cancellable until the worker claims it (a
compare-and-swap on the call's claim slot, see _shm_ring.h).  One result thread per pool drains
every reply ring, completes the futures, hands queued work to workers, and
blocks in ``poll()`` on the reply wake-ups, the worker sentinels and its own
wake-up pipe, so a dying worker is noticed at once.  ``map()`` sends each
chunk as one message and gets its results back as one list, as the
stdlib's does.  The hot paths (submit, the worker's loop, reading replies)
are compiled: _process_core.pyx.

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
call (WorkerDied).  The result thread does the killing and replacing.

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
import signal
import sys
import time
import threading
import weakref
from collections import deque
from concurrent.futures import _base as _stdlib_base
from concurrent.futures import process as _stdlib_process
from concurrent.futures.process import (BrokenProcessPool, _RemoteTraceback,
                                        _chain_from_iterable_of_lists, _process_chunk)
from itertools import islice
from functools import partial
from traceback import format_exception

from . import _shm_platform
from ._base import HAS_BUFFERSIZE, Executor, check_buffersize, map_results
from ._future import results_in_order

__all__ = ["ProcessPoolExecutor", "BrokenProcessPool", "TaskTimeout", "WorkerDied"]


class TaskTimeout(_stdlib_base.TimeoutError):
    """A call ran past its time limit (``task_timeout=`` or
    ``with_options(timeout=...)``): its worker was killed and replaced."""

    def __init__(self, message, limit=None):
        super().__init__(message)
        self.limit = limit


class WorkerDied(BrokenProcessPool):
    """The worker running this call died (a signal, ``os._exit()``, the OOM
    killer, or killed by the pool while it ran another call).  Raised with
    ``on_worker_death="replace"``; the pool stays usable."""

    def __init__(self, message, pid=None, exitcode=None):
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode      # negative: -signal number

    @property
    def signal(self):
        """The signal number that killed the worker, or None."""
        return -self.exitcode if self.exitcode is not None and self.exitcode < 0 else None


def _death_message(pid, exitcode):
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exit code {exitcode}"
    return f"The worker process (pid {pid}) running this call died ({how})"


def _check_time_limit(name, value):
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None")
    if not value > 0:
        raise ValueError(f"{name} must be > 0")
    return float(value)


# A worker killed for a time limit or cancel_running gets SIGTERM, then
# SIGKILL if it is still there after this long (seconds).
KILL_GRACE_SECONDS = 0.25

if not _shm_platform.SUPPORTED:     # pragma: no cover - Windows
    from concurrent.futures.process import ProcessPoolExecutor  # noqa: F401,F811
else:
    from . import _transport as transport
    from . import _process_core
    from ._process_worker import worker_main

_BROKEN_MESSAGE = ('A child process terminated abruptly, the process pool '
                   'is not usable anymore')
_FUTURE_BROKEN_MESSAGE = ('A process in the process pool was terminated '
                          'abruptly while the future was running or pending.')

# gh-152967 (in the stdlib of Debian's 3.14.10): the executor was dropped
# while its last worker retired (max_tasks_per_child) with work queued; the
# stdlib cannot start a replacement then, and fails the queued work.
_STRANDED_WORK_FAILS = hasattr(_stdlib_process._ExecutorManagerThread, "_replace_dead_worker")
_STRANDED_MESSAGE = ("The ProcessPoolExecutor was garbage collected with "
                     "work pending after its last worker process exited "
                     "upon reaching max_tasks_per_child; the pending work "
                     "can never be run.")

_INHERITED_MESSAGE = ('The process pool was started by the parent of this process '
                      '(os.fork()): it is not usable here')

# Result threads, joined at interpreter exit (before atexit handlers).
_result_threads = weakref.WeakSet()
_global_shutdown = False
# Pools that a child created by os.fork() inherits.
_live_cores = weakref.WeakSet()


def _after_fork_in_child():
    for core in list(_live_cores):
        core.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _python_exit():
    global _global_shutdown
    # Submits are refused before any result thread can see the flag and
    # stop its workers (a call placed after that would never run).
    _process_core.set_global_shutdown()
    _global_shutdown = True
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


def _default_max_workers():
    return getattr(os, "process_cpu_count", os.cpu_count)() or 1


class _PoolCore(_process_core.PoolCore if _shm_platform.SUPPORTED else object):
    """State shared by the executor and its result thread (the compiled
    part: _process_core.PoolCore), plus starting and replacing workers.

    The result thread references this, never the executor (it holds only a
    weak reference to it), so dropping the executor lets the pool wind down.
    """

    def __init__(self, executor, mp_context, initializer, initargs, max_workers,
                 max_tasks_per_child, zero_copy, task_timeout, cancel_running, replace_dead):
        # Reentrant: dispatch() takes it, also when called with it held
        # (start(), _worker_exited()).
        self.lock = threading.RLock()
        self.queue = deque()            # Call not yet handed to a worker
        self.mp_context = mp_context
        self.initializer = initializer
        self.initargs = initargs
        self.max_workers = max_workers
        self.max_tasks_per_child = max_tasks_per_child
        self.zero_copy = zero_copy
        self.task_timeout = task_timeout
        self.cancel_running = cancel_running
        self.replace_dead = replace_dead     # on_worker_death="replace"
        self.dynamic_spawning = mp_context.get_start_method(allow_none=False) != "fork"
        self.executor_ref = weakref.ref(executor)
        self.result_thread = None
        self.wake_read, self.wake_write = _shm_platform.wake_pipe()
        self.set_wake_fds(self.wake_read, self.wake_write)
        self.wake_closed = False
        # Reentrant: wake() also runs from a weakref callback, i.e. from the
        # garbage collector, possibly inside a wake() of the same thread.
        self.wake_lock = threading.RLock()
        _live_cores.add(self)

    def after_fork_in_child(self):
        """This process is a child forked from the pool's owner.  A pool
        never started becomes the child's own (with a wake-up pipe of its
        own); a started one belongs to the parent (its workers, rings and
        result thread): the child's copy refuses work and never touches the
        parent's workers.  Its futures are the parent's and are left as
        they are."""
        # Locks held by the parent's other threads stay held in the child.
        self.lock = threading.RLock()
        self.wake_lock = threading.RLock()
        executor = self.executor_ref()
        if executor is not None:
            executor._shutdown_lock = threading.Lock()
        if self.result_thread is None and not self.workers:
            if not self.wake_closed:
                os.close(self.wake_read)
                os.close(self.wake_write)
                self.wake_read, self.wake_write = _shm_platform.wake_pipe()
                self.set_wake_fds(self.wake_read, self.wake_write)
            return
        self.mark_broken(_INHERITED_MESSAGE)
        if executor is not None:
            executor._broken = _INHERITED_MESSAGE
            executor._shutdown_thread = True
        self.workers.clear()
        self.take_all_futures()     # their cancel() must not touch the parent's claims
        self.close_wake_pipe()      # the parent's pipe: never wake its thread

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
        self.workers.append(_process_core.Link(process, channel, self.max_tasks_per_child,
                                               self.cancel_running, self.wake_write))
        self.workers_changed = True

    def take_workers(self):
        """Remove every worker from the pool and return them."""
        workers = list(self.workers)
        self.workers.clear()
        self.workers_changed = True
        return workers

    def has_idle_worker(self):
        return any(w.in_flight == 0 and w.serving for w in self.workers)

    def start(self, call):
        """submit()'s slow path: the first call starts the result thread (and,
        with 'fork', every worker); with other start methods a worker is
        added per call until there are max_workers."""
        with self.lock:
            self.check_open()
            if self.result_thread is None:
                if not self.dynamic_spawning:       # fork: all now, before our thread
                    try:
                        while len(self.workers) < self.max_workers:
                            self.spawn_worker()
                    except BaseException:
                        _stop(self.take_workers())  # nobody else would
                        raise
                executor = self.executor_ref()
                thread = _ResultThread(self, executor)
                executor = None
                thread.start()
                self.result_thread = thread
                _result_threads.add(thread)
            # A worker that cannot be started fails this submit() before
            # anything is queued (the call would wait for nobody).
            if (self.dynamic_spawning and len(self.workers) < self.max_workers
                    and not self.has_idle_worker()):
                self.spawn_worker()
            self.queue.append(call)
            self.dispatch()
            self.ready = len(self.workers) >= self.max_workers
        if self.workers_changed:
            self.wake()


def _fail(future, error):
    """Fail ``future`` unless it ended meanwhile (cancelled...)."""
    try:
        future.set_exception(error)
    except _stdlib_base.InvalidStateError:
        pass


def _stop(workers):
    """Terminate and join workers, close their channels."""
    for worker in workers:
        if worker.process.exitcode is None:
            worker.process.terminate()
    for worker in workers:
        worker.process.join()
        worker.channel.close()


class _ResultThread(threading.Thread):
    """Completes futures from the workers' replies and watches the workers."""

    def __init__(self, core, executor):
        super().__init__(name="fastfutures-process-results")
        self.core = core
        self.dying = []         # Links being killed (time limit, cancel_running)

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
            core.forget_fds()
            core.close_wake_pipe()
            # The core keeps this thread (shutdown() joins it): without this
            # reference the two form no cycle, and the pool (its initargs
            # included) is freed as soon as the executor is dropped.
            self.core = None

    def _shutting_down(self):
        core = self.core
        return (core.winding_down or _global_shutdown
                or self.executor_ref() is None)

    def _loop(self):
        core = self.core
        while True:
            core.drain()
            if core.cause is not None:
                self._break(core.cause)
                return
            if self._shutting_down():
                if self._wind_down():
                    return
            timeout = -1
            if core.any_limits or core.cancel_running or self.dying:
                timeout = self._enforce_limits()
            for worker in core.wait(timeout):
                if not self._worker_exited(worker):
                    return

    # -- killing workers: time limits and cancel_running -------------------------

    def _enforce_limits(self):
        """Kill the workers whose call ran out of time or was cancelled while
        running; SIGKILL those still there after the grace period.  Returns
        the seconds until something is due (-1: nothing)."""
        core = self.core
        if core.cancel_running:
            for worker in list(core.workers):
                slots = worker.take_kill_requests()
                if slots:
                    self._kill(worker, cancelled_slots=slots)
        timeout = -1
        if core.any_limits:
            late, timeout = core.overdue()
            for call in late:
                self._kill(call.link, timed_out=call)
        now = time.monotonic()
        for worker in self.dying:
            if worker.kill_at and worker.process.exitcode is None:
                left = worker.kill_at - now
                if left <= 0:
                    worker.process.kill()
                    worker.kill_at = 0
                elif timeout < 0 or left < timeout:
                    timeout = left
        return timeout

    def _kill(self, worker, timed_out=None, cancelled_slots=()):
        """Stop ``worker``: the calls it has not started go to other workers,
        the timed-out call fails with TaskTimeout, the cancelled one ends
        cancelled; a replacement starts once it is gone (_bury())."""
        core = self.core
        timeouts = []
        with core.lock:
            notify = []
            if worker.start_dying(time.monotonic() + KILL_GRACE_SECONDS):
                notify = core.take_back(worker)
                self.dying.append(worker)
                try:
                    worker.process.terminate()
                except (ProcessLookupError, ValueError):
                    pass
            if timed_out is not None:
                timeouts = core.take_started(worker, {timed_out.slot})
            if cancelled_slots:
                notify += [call.future for call in core.take_started(worker, set(cancelled_slots))]
            core.dispatch()
        for call in timeouts:
            name = getattr(call.fn, "__qualname__", None) or repr(call.fn)
            _fail(call.future, TaskTimeout(
                f"{name}() exceeded its time limit of {call.limit:g} s", call.limit))
        _process_core.notify_cancelled(notify)

    def _bury(self, worker):
        """A worker that was killed, or died alone (on_worker_death="replace"),
        is gone: its replies have been read.  The calls it had started fail
        with WorkerDied, those it had not run elsewhere, a replacement
        starts."""
        core = self.core
        worker.process.join()
        pid, exitcode = worker.process.pid, worker.process.exitcode
        with core.lock:
            notify = core.take_back(worker)
            started = core.take_started(worker)
            core.workers.remove(worker)
            core.workers_changed = True
            worker.channel.close()
            if worker in self.dying:
                self.dying.remove(worker)
            if core.queue or not self._shutting_down():
                core.spawn_worker()
            core.dispatch()
        for call in started:
            _fail(call.future, WorkerDied(_death_message(pid, exitcode), pid, exitcode))
        _process_core.notify_cancelled(notify)
        return True

    def _worker_exited(self, worker):
        """A worker's sentinel fired.  False when that broke the pool."""
        core = self.core
        core.drain_worker(worker)       # its last replies
        if core.cause is not None:
            self._break(core.cause)
            return False
        if worker.dying:
            return self._bury(worker)
        expected = worker.exit_expected
        if not expected and core.replace_dead and worker.ready:
            # Died alone after a successful start (an initializer failure
            # still breaks the pool, as in the stdlib).
            return self._bury(worker)
        # A worker may only exit when told to, or after its last task
        # (max_tasks_per_child), with every reply read.
        if not expected:
            self._break(None)
            return False
        worker.process.join()
        with core.lock:
            core.workers.remove(worker)
            core.workers_changed = True
            worker.channel.close()
            stranded = (_STRANDED_WORK_FAILS and worker.retiring and not core.workers
                        and bool(core.queue or core.tasks) and self.executor_ref() is None)
            # Replaced while work is queued, also when shutting down: the
            # queued calls still run (as the stdlib's do).
            if not stranded and worker.retiring and (core.queue or not self._shutting_down()):
                core.spawn_worker()
            core.dispatch()
        if stranded:
            self._break(None, _STRANDED_MESSAGE)
            return False
        return True

    def _wind_down(self):
        """Shutting down: once no work is left, stop the workers.  True when
        every worker is gone."""
        core = self.core
        cancelled = []
        with core.lock:
            core.abandon()
            if core.take_cancel_request():
                cancelled = core.unstarted_futures()
        # Calls in the workers' rings too: those not claimed yet are skipped;
        # running ones go on (also with cancel_running).
        for future in cancelled:
            future.cancel_if_not_started()
        with core.lock:
            if core.queue or core.tasks:
                return False
            for worker in core.workers:
                worker.tell_to_leave()
            if core.workers:
                return False
            return True

    def _break(self, cause, message=_FUTURE_BROKEN_MESSAGE):
        """The pool is broken: fail every future, stop every worker."""
        core = self.core
        executor = self.executor_ref()
        with core.lock:
            if not core.mark_broken(_BROKEN_MESSAGE):
                return
            if executor is not None:
                executor._broken = _BROKEN_MESSAGE
                executor._shutdown_thread = True
            executor = None
            futures = core.take_all_futures()
            workers = core.take_workers()
        cause_text = None if cause is None else f"\n'''\n{''.join(cause)}'''"
        # Every future fails and every worker is stopped even if a
        # done-callback raises (SystemExit...): that is raised after.
        callback_error = None
        for future in futures:
            # An exception of its own for each future (gh-101267): a shared
            # one would gather a traceback frame per result() call.
            error = BrokenProcessPool(message)
            if cause_text is not None:
                error.__cause__ = _RemoteTraceback(cause_text)
            try:
                if not future.done():
                    future.set_exception(error)
            except _stdlib_base.InvalidStateError:
                pass    # cancelled meanwhile
            except BaseException as exc:
                callback_error = callback_error or exc
        _stop(workers)
        if callback_error is not None:
            raise callback_error


class ProcessPoolExecutor(Executor, _stdlib_process.ProcessPoolExecutor):
    """A drop-in for concurrent.futures.ProcessPoolExecutor over shared memory."""

    def __init__(self, max_workers=None, mp_context=None,
                 initializer=None, initargs=(), *, max_tasks_per_child=None,
                 zero_copy_results=False, task_timeout=None, cancel_running=False,
                 on_worker_death="break"):
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
        self._shutdown_lock = threading.Lock()
        task_timeout = _check_time_limit("task_timeout", task_timeout)
        if on_worker_death not in ("break", "replace"):
            raise ValueError('on_worker_death must be "break" or "replace"')
        self._core = _PoolCore(self, mp_context, initializer, initargs, self._max_workers,
                               max_tasks_per_child, bool(zero_copy_results), task_timeout,
                               bool(cancel_running), on_worker_death == "replace")

    # -- stdlib-compatible introspection --------------------------------------

    @property
    def _processes(self):
        core = self._core
        if core is None:
            return None
        return {w.process.pid: w.process for w in list(core.workers)}

    # -- submitting --------------------------------------------------------

    @property
    def _result_thread(self):
        core = self._core
        return core.result_thread if core is not None else None

    # The stdlib's name for the thread that completes futures: code that
    # joins it after shutdown(wait=False) (CPython's own tests do) joins ours.
    _executor_manager_thread = _result_thread

    def submit(self, fn, /, *args, **kwargs):
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
        if (buffersize is not None or "submit" in self.__dict__
                or type(self).submit is not ProcessPoolExecutor.submit):
            # Each chunk goes through submit(), as with the stdlib: a
            # subclass's submit() or one set on the instance (tqdm's
            # process_map wraps it so) sees every chunk; buffersize bounds
            # the chunks in flight.
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

    def with_options(self, *, timeout):
        """A view of this pool whose submit() and map() give each call a
        time limit of ``timeout`` seconds (None: no limit), overriding
        task_timeout.  fastfutures only."""
        return _PoolView(self, _check_time_limit("timeout", timeout))

    # -- stopping ------------------------------------------------------------

    def shutdown(self, wait=True, *, cancel_futures=False):
        core = self._core
        with self._shutdown_lock:
            self._shutdown_thread = True
            if core is not None:
                with core.lock:
                    core.shut_down(cancel_futures)
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
        if core is not None and core.result_thread is None:
            self._close_unused_core()


class _PoolView:
    """ProcessPoolExecutor.with_options(): the same pool, another time limit."""

    __slots__ = ("_executor", "_limit", "__weakref__")

    def __init__(self, executor, limit):
        self._executor = executor
        self._limit = limit

    def submit(self, fn, /, *args, **kwargs):
        return self._executor._core.submit_limited(fn, args, kwargs, self._limit)
    submit.__doc__ = _stdlib_base.Executor.submit.__doc__

    if HAS_BUFFERSIZE:
        def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None):
            return self._executor._map(fn, iterables, timeout, chunksize, buffersize, self)
    else:
        def map(self, fn, *iterables, timeout=None, chunksize=1):
            return self._executor._map(fn, iterables, timeout, chunksize, None, self)
    map.__doc__ = _stdlib_process.ProcessPoolExecutor.map.__doc__

    def with_options(self, *, timeout):
        return _PoolView(self._executor, _check_time_limit("timeout", timeout))

    def __repr__(self):
        return f"<{type(self._executor).__name__} view: time limit {self._limit or None}>"


if not _shm_platform.SUPPORTED:     # pragma: no cover - Windows
    from concurrent.futures.process import ProcessPoolExecutor  # noqa: F811
