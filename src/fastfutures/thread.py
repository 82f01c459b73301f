"""ThreadPoolExecutor: the stdlib's constructor and behaviour, compiled core.

The queue and the worker loop live in _threadpool.pyx; this module holds
what is naturally Python: validation, thread creation and naming, shutdown,
the interpreter-exit hook and fork handling.
"""
import itertools
import os
import sys
import threading
import weakref
from concurrent.futures import thread as _stdlib_thread
from concurrent.futures.thread import BrokenThreadPool

from . import _threadpool
from ._base import Executor
from ._bounds import check_bounds, check_seconds
from ._threadpool import ThreadPoolCore, WorkQueue

__all__ = ["ThreadPoolExecutor", "BrokenThreadPool"]

# Worker threads and their queues, for the exit hook (as the stdlib keeps).
_threads_queues = weakref.WeakKeyDictionary()
_shutdown = False
_global_shutdown_lock = threading.Lock()


def _python_exit():
    global _shutdown
    with _global_shutdown_lock:
        _shutdown = True
        _threadpool.set_interpreter_shutting_down()
    items = list(_threads_queues.items())
    for t, q in items:
        q.close()
    for t, q in items:
        t.join()


# Runs before atexit handlers, while threads can still be joined.
threading._register_atexit(_python_exit)


def _after_fork_in_child():
    # The child has only the forking thread: forget the parent's workers so
    # that a pool used in the child starts fresh threads when needed.
    _global_shutdown_lock._at_fork_reinit()
    for executor in list(_live_executors):
        executor._forget_workers_after_fork()
    _threads_queues.clear()


_live_executors = weakref.WeakSet()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_global_shutdown_lock.acquire,
        after_in_child=_after_fork_in_child,
        after_in_parent=_global_shutdown_lock.release,
    )


# 3.14: pools take **ctxkwargs for their class's prepare_context(), which
# decides how a worker runs a call (InterpreterPoolExecutor runs it in an
# interpreter of its own).
HAS_WORKER_CONTEXT = hasattr(_stdlib_thread.ThreadPoolExecutor, "prepare_context")
if HAS_WORKER_CONTEXT:
    _default_prepare_context = _stdlib_thread.ThreadPoolExecutor.prepare_context.__func__


def _default_max_workers():
    cpu_count = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(32, (cpu_count or 1) + 4)


# Appended to __init__'s docstring.
_BOUNDS_DOC = """
            fastfutures only:
            max_queue_size: at most this many calls wait in the queue (None:
                no limit, the stdlib's behaviour).  A submit that finds it
                full follows on_queue_full:
                "block" (the default): wait for room, at most
                    queue_full_timeout seconds (None: as long as it takes),
                    then raise QueueFull;
                "raise": raise QueueFull at once;
                "caller_runs": the submitting thread runs the call itself.
                A submit from one of the pool's own threads never waits
                (QueueFull, or the call runs there with "caller_runs"); one
                from a thread that runs an asyncio loop never blocks it: the
                call waits in line while the loop awaits its future.
            idle_timeout: a worker idle for this many seconds exits (None:
                never); the pool starts threads again when calls come.
            """


class ThreadPoolExecutor(ThreadPoolCore, Executor, _stdlib_thread.ThreadPoolExecutor):
    """A compiled drop-in for concurrent.futures.ThreadPoolExecutor."""

    # Used to assign unique thread names when thread_name_prefix is not supplied.
    _counter = itertools.count().__next__

    if HAS_WORKER_CONTEXT:
        def __init__(self, max_workers=None, thread_name_prefix='',
                     initializer=None, initargs=(), *, max_queue_size=None,
                     on_queue_full=None, queue_full_timeout=None, idle_timeout=None,
                     **ctxkwargs):
            """Initializes a new ThreadPoolExecutor instance.

            Args:
                max_workers: The maximum number of threads that can be used to
                    execute the given calls.
                thread_name_prefix: An optional name prefix to give our threads.
                initializer: A callable used to initialize worker threads.
                initargs: A tuple of arguments to pass to the initializer.
                ctxkwargs: Additional arguments to cls.prepare_context().
            """
            self._fastfutures_init(max_workers, thread_name_prefix, initializer, initargs,
                                   ctxkwargs, (max_queue_size, on_queue_full,
                                               queue_full_timeout, idle_timeout))
    else:
        def __init__(self, max_workers=None, thread_name_prefix='',
                     initializer=None, initargs=(), *, max_queue_size=None,
                     on_queue_full=None, queue_full_timeout=None, idle_timeout=None):
            """Initializes a new ThreadPoolExecutor instance.

            Args:
                max_workers: The maximum number of threads that can be used to
                    execute the given calls.
                thread_name_prefix: An optional name prefix to give our threads.
                initializer: A callable used to initialize worker threads.
                initargs: A tuple of arguments to pass to the initializer.
            """
            self._fastfutures_init(max_workers, thread_name_prefix, initializer, initargs,
                                   None, (max_queue_size, on_queue_full,
                                          queue_full_timeout, idle_timeout))


    __init__.__doc__ += _BOUNDS_DOC

    def _fastfutures_init(self, max_workers, thread_name_prefix, initializer, initargs,
                          ctxkwargs, bounds):
        if max_workers is None:
            max_workers = _default_max_workers()
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        max_queue_size, on_queue_full, queue_full_timeout, idle_timeout = bounds
        max_queue_size, on_queue_full, queue_full_timeout = check_bounds(
            max_queue_size, on_queue_full, queue_full_timeout)
        idle_timeout = check_seconds("idle_timeout", idle_timeout)
        resolve_task = None
        if HAS_WORKER_CONTEXT:
            prepare_context = type(self).prepare_context
            (self._create_worker_context,
             self._resolve_work_item_task,
             ) = prepare_context(initializer, initargs, **ctxkwargs)
            if getattr(prepare_context, "__func__", None) is not _default_prepare_context:
                # A context of the pool's own: workers run what it resolves.
                resolve_task = self._resolve_work_item_task
        elif initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")

        queue = WorkQueue()
        queue.broken_type = getattr(type(self), "BROKEN", BrokenThreadPool)
        queue.set_bounds(max_queue_size, on_queue_full, queue_full_timeout, idle_timeout)
        # Held while a thread is started and by shutdown(), as in the stdlib.
        self._shutdown_lock = threading.Lock()
        self._set_queue(queue, max_workers, self._shutdown_lock, resolve_task)
        self._custom_context = resolve_task is not None
        self._threads = queue.threads       # an idle worker leaves it as it exits
        self._thread_name_prefix = (thread_name_prefix or
                                    ("ThreadPoolExecutor-%d" % self._counter()))
        self._initializer = initializer
        self._initargs = initargs
        _live_executors.add(self)

    def _adjust_thread_count(self):
        # Called by the core, holding _shutdown_lock, when no idle worker
        # can take new work.
        num_threads = len(self._threads)
        if num_threads < self._max_workers:
            queue = self._work_queue
            # When the executor is dropped, its workers may exit.  The
            # worker holds this reference (as the stdlib's does): held by
            # the queue, it would close a cycle through its callback.
            executor_ref = weakref.ref(self, lambda _, q=queue: q.close())
            thread_name = '%s_%d' % (self._thread_name_prefix or self, self._thread_number())
            if self._custom_context:
                target = queue.run_worker_in_context
                args = (executor_ref, self._create_worker_context())
            else:
                target = queue.run_worker
                args = (executor_ref, self._initializer, self._initargs)
            t = threading.Thread(name=thread_name, target=target, args=args)
            t.start()
            self._threads.add(t)
            queue.num_threads = len(self._threads)
            _threads_queues[t] = queue

    def _thread_number(self):
        # The stdlib numbers threads 0..max_workers-1; with idle_timeout
        # threads come and go, and a new one must not reuse a live name.
        if self._work_queue.idle_timeout < 0:
            return len(self._threads)
        self._threads_started = getattr(self, "_threads_started", 0) + 1
        return self._threads_started - 1

    def _initializer_failed(self):
        queue = self._work_queue
        queue.broken = ('A thread initializer failed, the thread pool '
                        'is not usable anymore')
        queue.fail_pending(queue.broken_type, queue.broken)

    def _forget_workers_after_fork(self):
        # Another thread of the parent may have held it at the fork.
        self._shutdown_lock = threading.Lock()
        self._set_queue(self._work_queue, self._max_workers, self._shutdown_lock,
                        self._resolve_work_item_task if self._custom_context else None)
        queue = self._work_queue
        queue.reset_workers_after_fork()
        self._threads = queue.threads

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Clean-up the resources associated with the Executor.

        It is safe to call this method several times. Otherwise, no other
        methods can be called after this one.

        Args:
            wait: If True then shutdown will not return until all running
                futures have finished executing and the resources used by the
                executor have been reclaimed.
            cancel_futures: If True then shutdown will cancel all pending
                futures. Futures that are completed or running will not be
                cancelled.
        """
        queue = self._work_queue
        with self._shutdown_lock:
            queue.shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            # Outside the lock: cancelling runs done-callbacks.
            queue.cancel_pending()
        queue.close()
        if wait:
            for t in threads:
                t.join()
