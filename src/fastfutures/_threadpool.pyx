# cython: language_level=3
"""The work queue and worker loop of ThreadPoolExecutor.

Everything here runs with the GIL held except the idle wait.  The queue is a
C ring buffer of (future, fn, args, kwargs) items, so a submit is an append
without a lock; a thread is woken only when an idle worker exists to take
the work (a burst of submits therefore pays at most one wake-up per worker,
not one per task).  An idle worker spins for a short while before it blocks,
so the next task of a steady request/response stream finds it awake.

A bounded pool (max_queue_size) keeps at most that many calls queued; a
submit that finds the queue full follows the pool's on_queue_full policy
(see _bounds.py).  A submitter that waits for room is a WaitingCall in the
queue's `waiting` line: workers move the oldest ones into the queue as they
take calls out, so room goes to waiters in order and no waiter polls.
Every call is counted in the queue's PoolStats (_stats.pxd).
"""
import collections
import logging
import threading
import sys
from concurrent.futures._base import CancelledError, InvalidStateError
from concurrent.futures._base import TimeoutError as FuturesTimeoutError
from concurrent.futures.thread import BrokenThreadPool

cimport cython
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_SET_ITEM
from cpython.pythread cimport (
    PyThread_type_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_acquire_lock,
    PyThread_release_lock,
    PyThread_get_thread_ident,
    PyLockStatus,
    PY_LOCK_ACQUIRED,
    NOWAIT_LOCK,
    WAIT_LOCK,
)
from ._future cimport (
    FutureCore,
    Waiter,
    Deadline,
    deadline_from_timeout,
    PyThread_acquire_lock_timed,
    PY_TIMEOUT_T,
    PY_TIMEOUT_MAX,
    ST_CANCELLED,
    W_RESULT,
    ff_load_acquire,
    ff_monotonic,
    spin_then_hand_off,
    FF_ASSERT,
    ff_store_release,
    new_future,
    run_call,
)
from ._base import buffered_map, map_results, map_with_submit, take_buffersize
from ._bounds import QueueFull
from ._stats cimport PoolStats, call_claimed, call_skipped, call_ended, ffh_record

include "_thread_clock.pxi"

LOGGER = logging.getLogger("concurrent.futures")

# Set by thread.py's exit hook: the interpreter is shutting down.
cdef bint interpreter_shutting_down = False

# How long an idle worker spins before it blocks (see _future.spin_rounds).
cdef int worker_spin_rounds = 2000

def set_interpreter_shutting_down():
    global interpreter_shutting_down
    interpreter_shutting_down = True


def set_worker_spin_rounds(int rounds):
    global worker_spin_rounds
    old = worker_spin_rounds
    worker_spin_rounds = max(rounds, 0)
    return old


ctypedef struct WorkItem:
    PyObject *future            # the call's FutureCore; a map() call's MapCalls
    PyObject *fn
    PyObject *args              # a map() call's: its one argument unless MapCalls.star
    PyObject *kwargs            # NULL when the call has no keyword arguments
    Py_ssize_t map_index        # a map() call's slot in its MapCalls; -1: a submit()
    uint64_t queued_tick        # ff_ticks() when it entered the queue


include "_thread_map.pxi"


@cython.final
cdef class WorkerSlot:
    """One worker thread's wake-up lock (held while it sleeps)."""
    cdef PyThread_type_lock lock
    cdef int woken

    def __cinit__(self):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()
        PyThread_acquire_lock(self.lock, WAIT_LOCK)

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    cdef void wake(self) noexcept:
        ff_store_release(&self.woken, 1)
        PyThread_release_lock(self.lock)


# on_queue_full policies (_bounds.POLICIES)
cdef enum:
    POLICY_BLOCK = 0
    POLICY_RAISE = 1
    POLICY_CALLER_RUNS = 2

cdef dict POLICY_CODES = {"block": POLICY_BLOCK, "raise": POLICY_RAISE,
                          "caller_runs": POLICY_CALLER_RUNS}

# A WaitingCall's outcome
cdef enum:
    WAITING = 0
    ADMITTED = 1                # in the queue now
    REFUSED = 2                 # the pool shut down or broke first


@cython.final
cdef class WaitingCall:
    """A submit waiting for room in a full bounded queue.  Its thread blocks
    on `waiter`; or -- a thread that runs an asyncio loop must not block --
    `waiter` is None and submit() has already returned the future: the call
    enters the queue when room is made, and the loop awaits it meanwhile."""
    cdef FutureCore future
    cdef object fn, args, kwargs
    cdef Waiter waiter
    cdef int outcome


@cython.final
cdef class WorkQueue:
    """State shared by a ThreadPoolExecutor and its worker threads.

    Workers hold this object, not the executor, so dropping the executor
    lets them exit (its weakref callback calls close()).
    """
    cdef WorkItem *items
    cdef Py_ssize_t head, count, capacity
    cdef list idle                  # WorkerSlot stack of sleeping/spinning workers
    cdef WorkerSlot spinner         # the idle worker currently spinning, if any
    cdef public bint shutdown       # no more submits
    cdef bint closing               # workers exit once the queue is empty
    cdef public object broken       # None, or the BrokenThreadPool message
    cdef public object broken_type  # the executor's BROKEN class (3.14: per pool class)
    cdef public Py_ssize_t num_threads
    cdef readonly PoolStats stats
    cdef readonly Py_ssize_t max_queue_size     # 0: unbounded
    cdef int policy                 # POLICY_*, for a full queue
    cdef double queue_full_timeout  # POLICY_BLOCK's limit in seconds; < 0: none
    cdef object waiting             # deque of WaitingCall, oldest first
    cdef public double idle_timeout # seconds an idle worker waits before it exits; < 0: forever
    cdef public object threads      # the executor's set of worker threads
    cdef set worker_idents          # thread idents of the live workers

    def __cinit__(self):
        self.capacity = 64
        self.items = <WorkItem *>PyMem_Malloc(self.capacity * sizeof(WorkItem))
        if self.items == NULL:
            raise MemoryError()
        self.idle = []
        self.broken_type = BrokenThreadPool
        self.stats = PoolStats()
        self.waiting = collections.deque()
        self.idle_timeout = -1
        self.threads = set()
        self.worker_idents = set()

    def set_bounds(self, Py_ssize_t max_queue_size, str policy, double queue_full_timeout,
                   double idle_timeout):
        """The checked options (_bounds.check_bounds): 0 is unbounded, < 0 no limit."""
        self.max_queue_size = max_queue_size
        self.policy = POLICY_CODES[policy]
        self.queue_full_timeout = queue_full_timeout
        self.idle_timeout = idle_timeout

    def __dealloc__(self):
        cdef WorkItem item
        if self.items != NULL:
            while self.pop(&item):
                clear_item(&item)
            PyMem_Free(self.items)
            self.items = NULL

    # -- the ring buffer --------------------------------------------------

    cdef int grow(self) except -1:
        cdef Py_ssize_t new_capacity = self.capacity * 2
        cdef Py_ssize_t i
        cdef WorkItem *items = <WorkItem *>PyMem_Realloc(
            self.items, new_capacity * sizeof(WorkItem))
        if items == NULL:
            raise MemoryError()
        # Unwrap: move the wrapped-around prefix after the old end.
        if self.head + self.count > self.capacity:
            for i in range(self.head + self.count - self.capacity):
                items[self.capacity + i] = items[i]
        self.items = items
        self.capacity = new_capacity
        return 0

    cdef int push(self, object future, object fn, object args, object kwargs,
                  uint64_t queued_tick=0, Py_ssize_t map_index=-1) except -1:
        """Queue a call: a submit()'s with its FutureCore, or a map()'s with
        its MapCalls and slot.  ``queued_tick``: a tick just read (map()
        reads one per MAP_CLOCK_EVERY calls), 0: read it now."""
        cdef WorkItem *item
        if self.count == self.capacity:
            self.grow()
        item = &self.items[(self.head + self.count) % self.capacity]
        Py_INCREF(future)
        Py_INCREF(fn)
        Py_INCREF(args)
        item.future = <PyObject *>future
        item.fn = <PyObject *>fn
        item.args = <PyObject *>args
        if kwargs:
            Py_INCREF(kwargs)
            item.kwargs = <PyObject *>kwargs
        else:
            item.kwargs = NULL
        item.map_index = map_index
        item.queued_tick = queued_tick if queued_tick else ff_ticks()
        self.count += 1
        self.stats.submitted += 1
        return 0

    cdef bint pop(self, WorkItem *out) noexcept:
        if self.count == 0:
            return False
        FF_ASSERT(self.head < self.capacity and self.count <= self.capacity)
        out[0] = self.items[self.head]
        self.head = (self.head + 1) % self.capacity
        self.count -= 1
        if self.count == 0:
            self.head = 0
        return True

    @property
    def pending(self):
        """Number of queued work items not yet taken by a worker."""
        return self.count

    # The stdlib's queue.SimpleQueue methods that code reads
    # (executor._work_queue.qsize() to watch a pool's backlog).
    def qsize(self):
        """The number of calls queued, not yet taken by a worker."""
        return self.count

    def empty(self):
        """True when no call is queued."""
        return self.count == 0

    # -- a bounded queue's waiting line ----------------------------------------

    cdef inline bint full(self) noexcept:
        return self.max_queue_size > 0 and self.count >= self.max_queue_size

    cdef int admit_waiting(self) except -1:
        """Move the oldest waiting calls into the room there is.  Runs no
        Python code until the last one is queued."""
        cdef WaitingCall waiting
        cdef bint admitted = False
        while self.waiting and not self.full():
            waiting = self.waiting.popleft()
            self.push(waiting.future, waiting.fn, waiting.args, waiting.kwargs)
            waiting.outcome = ADMITTED
            if waiting.waiter is not None:
                waiting.waiter.signal()
            admitted = True
        if admitted:
            self.wake_one()
        return 0

    cdef int refuse_blocked_submitters(self) except -1:
        """Shut down or broken: the threads blocked in submit() get the
        pool's error.  Calls whose future submit() already returned (from a
        loop thread) stay in line: they were accepted, and run."""
        cdef WaitingCall waiting
        for waiting in list(self.waiting):
            if waiting.waiter is not None:
                self.waiting.remove(waiting)
                waiting.outcome = REFUSED
                waiting.waiter.signal()
        return 0

    cdef list take_waiting(self):
        """Empty the waiting line; return the WaitingCalls of loop threads
        (their futures are out) after refusing the blocked threads."""
        cdef list accepted = []
        self.refuse_blocked_submitters()
        while self.waiting:
            accepted.append(self.waiting.popleft())
        return accepted

    cdef bint in_worker_thread(self) noexcept:
        return PyThread_get_thread_ident() in self.worker_idents

    def stats_snapshot(self, Py_ssize_t max_workers):
        refine_tick()
        return self.stats.snapshot(self.count, self.num_threads, max_workers,
                                   self.max_queue_size if self.max_queue_size else None)

    @property
    def waiting_submitters(self):
        """Submits waiting for room (blocked threads and loop-thread calls)."""
        return len(self.waiting)

    # -- waking workers ------------------------------------------------------

    cdef bint wake_one(self) noexcept:
        """Wake an idle worker, preferring the one already spinning."""
        cdef WorkerSlot slot
        if not self.idle:
            return False
        slot = self.spinner
        if slot is not None and slot.woken == 0:
            self.idle.remove(slot)
        else:
            slot = self.idle.pop()
        slot.wake()
        return True

    def reset_workers_after_fork(self):
        """In a forked child: the parent's worker threads do not exist here.

        Work queued in the parent is the parent's to run: the child drops it
        (running it twice could repeat side effects), and starts workers of
        its own for what it submits itself.
        """
        cdef WorkItem item
        while self.pop(&item):
            clear_item(&item)
        self.idle = []
        self.spinner = None
        self.num_threads = 0
        self.waiting = collections.deque()     # the parent's submitters
        self.threads = set()
        self.worker_idents = set()
        self.stats = PoolStats()                # counts the child's calls only

    def close(self):
        """Let every worker exit once the queue is empty."""
        self.closing = True
        self.refuse_blocked_submitters()
        while self.wake_one():
            pass

    cdef bint idle_wait(self, WorkerSlot slot) except -1:
        """Wait to be woken; False when idle_timeout passed first (the slot
        has then left the idle list)."""
        cdef bint spin = self.spinner is None and worker_spin_rounds > 0
        cdef bint taken = False
        cdef double timeout = self.idle_timeout
        cdef PY_TIMEOUT_T micros = -1
        if timeout >= 0:
            micros = <PY_TIMEOUT_T>(timeout * 1e6) if timeout * 1e6 < <double>PY_TIMEOUT_MAX \
                else PY_TIMEOUT_MAX
        slot.woken = 0
        self.idle.append(slot)
        if spin:
            self.spinner = slot
        with nogil:
            if spin:
                spin_then_hand_off(&slot.woken, 1, worker_spin_rounds)
            if not ff_load_acquire(&slot.woken):
                if micros < 0:
                    PyThread_acquire_lock(slot.lock, WAIT_LOCK)
                    taken = True
                else:
                    taken = PyThread_acquire_lock_timed(slot.lock, micros, 0) == PY_LOCK_ACQUIRED
        if spin:
            self.spinner = None
        if not taken and not slot.woken:
            # Idle too long, and nobody woke us since (the GIL is held from
            # here to the worker's exit: a submit sees it idle or gone).
            self.idle.remove(slot)
            return False
        FF_ASSERT(slot.woken == 1)
        if not taken:
            # wake() set the flag and released the lock under the GIL we now
            # hold, so the lock is free: take it back for the next sleep.
            PyThread_acquire_lock(slot.lock, NOWAIT_LOCK)
        return True

    # -- draining ------------------------------------------------------------

    def cancel_pending(self):
        """shutdown(cancel_futures=True): cancel every queued future."""
        cdef WorkItem item
        cdef FutureCore future
        cdef WaitingCall waiting
        for waiting in self.take_waiting():
            # Accepted (a loop thread has its future), never queued: not counted.
            waiting.future.cancel()
            waiting.future.set_running()
        while self.pop(&item):
            self.stats.cancelled += 1
            if item.map_index >= 0:
                try:
                    (<MapCalls>item.future).cancel_call(item.map_index)
                finally:
                    clear_item(&item)
                continue
            future = <FutureCore>item.future
            clear_call(&item)
            future.cancel()
            # Notify wait()/as_completed() too, so no waiter hangs on a
            # future that no worker will ever look at again.
            future.set_running()
            future = None
            Py_XDECREF(item.future)

    def fail_pending(self, exception_type, message):
        """Fail every queued future (initializer failure)."""
        cdef WorkItem item
        cdef FutureCore future
        cdef WaitingCall waiting
        for waiting in self.take_waiting():
            if waiting.future._state < ST_CANCELLED:
                waiting.future.complete(exception_type(message), True)
        while self.pop(&item):
            if item.map_index >= 0:
                try:
                    if (<MapCalls>item.future).fail_call(item.map_index,
                                                         exception_type(message)):
                        self.stats.failed += 1
                    else:
                        self.stats.cancelled += 1
                finally:
                    clear_item(&item)
                continue
            self.stats.failed += 1
            future = <FutureCore>item.future
            clear_call(&item)
            # Made before looking at the state: the allocation (and the
            # future's condition, if any) can let a cancel() in.
            error = exception_type(message)
            try:
                if future._state < ST_CANCELLED:
                    future.complete(error, True)
            except InvalidStateError:
                pass                    # cancelled meanwhile
            if future._state == ST_CANCELLED:
                future.set_running()    # notifies wait()/as_completed()
            future = None
            Py_XDECREF(item.future)

    # -- the worker thread ---------------------------------------------------

    def run_worker(self, executor_ref, initializer, initargs):
        """Body of a worker thread: take the next item, run it, repeat.

        *executor_ref* is only held: it is the weak reference whose callback
        closes the queue when the executor is dropped, and it must live as
        long as the worker (the queue itself must not hold it: the callback
        refers to the queue, which would make a reference cycle).
        """
        if initializer is not None:
            try:
                initializer(*initargs)
            except BaseException:
                LOGGER.critical('Exception in initializer:', exc_info=True)
                self.initializer_failed()
                return
        self.serve(None)

    def run_worker_in_context(self, executor_ref, context):
        """Body of a worker thread of a pool with a worker context of its own
        (3.14's prepare_context(): InterpreterPoolExecutor, or a subclass):
        queued items hold resolved tasks, run by context.run(task)."""
        try:
            context.initialize()
        except BaseException:
            LOGGER.critical('Exception in initializer:', exc_info=True)
            self.initializer_failed()
            return
        try:
            self.serve(context.run)
        finally:
            context.finalize()

    cdef serve(self, object run_task):
        cdef WorkItem item
        cdef WorkerSlot slot = WorkerSlot()
        cdef uint64_t tick = 0          # the last tick read ...
        cdef bint tick_fresh = False    # ... made just before this worker's last pop
        cdef uint64_t claimed
        cdef int ran
        cdef object ident = PyThread_get_thread_ident()
        cdef object thread = threading.current_thread()
        self.worker_idents.add(ident)
        try:
            while True:
                if self.pop(&item):
                    # No Python code from the pop to here: a snapshot sees
                    # the call queued or running, never neither.  Straight
                    # from the last call, its end is this one's claim time
                    # (one clock read per call: it costs as much as the rest
                    # of the recording).
                    if not tick_fresh:
                        tick = ff_ticks()
                    call_claimed(self.stats, seconds_between(item.queued_tick, tick))
                    claimed = tick
                    tick_fresh = False
                    ran = 0
                    try:
                        if self.max_queue_size and self.waiting:
                            self.admit_waiting()
                        if item.map_index >= 0:
                            ran = run_map_call(<MapCalls>item.future, item.map_index,
                                               <object>item.fn, <object>item.args, self.stats)
                        elif run_task is None:
                            ran = run_call(<FutureCore>item.future, <object>item.fn,
                                           <object>item.args,
                                           <object>item.kwargs if item.kwargs != NULL else None,
                                           self.stats)
                        else:
                            ran = run_call(<FutureCore>item.future, run_task, (<object>item.fn,),
                                           None, self.stats)
                    finally:
                        clear_item(&item)
                    if ran:
                        # The run time runs to the end of the done-callbacks.
                        tick = ff_ticks()
                        ffh_record(&self.stats.run_time, seconds_between(claimed, tick))
                        tick_fresh = True
                    continue
                # The last tick is not the next call's claim time after a wait.
                tick_fresh = False
                if self.closing or interpreter_shutting_down:
                    # Pass the word on, like the stdlib's None sentinel.
                    self.close()
                    return
                if not self.idle_wait(slot) and self.count == 0:
                    # Idle too long: leave (the pool starts a thread again
                    # when a call finds no idle one).
                    self.threads.discard(thread)
                    self.num_threads = len(self.threads)
                    self.stats.workers_exited_idle += 1
                    return
        except BaseException:
            LOGGER.critical('Exception in worker', exc_info=True)
        finally:
            self.worker_idents.discard(ident)
            if (self.closing or self.broken is not None) and not self.worker_idents:
                # The last worker of a pool that is done: let go of the
                # executor's thread set, or the exit hook's entry for a
                # thread (thread -> this queue) would keep it alive for
                # ever through this queue (thread -> queue -> threads).
                self.threads = set()

    cdef initializer_failed(self):
        message = 'A thread initializer failed, the thread pool is not usable anymore'
        self.broken = message
        self.fail_pending(self.broken_type, message)


cdef inline void clear_call(WorkItem *item) noexcept:
    Py_XDECREF(item.fn)
    Py_XDECREF(item.args)
    Py_XDECREF(item.kwargs)
    item.fn = item.args = item.kwargs = NULL


cdef inline void clear_item(WorkItem *item) noexcept:
    clear_call(item)
    Py_XDECREF(item.future)
    item.future = NULL


cdef class ThreadPoolCore:
    """The compiled half of ThreadPoolExecutor: submit() and map().

    thread.py's ThreadPoolExecutor mixes this with the stdlib class and adds
    the constructor, thread management and shutdown.
    """
    cdef WorkQueue queue
    cdef Py_ssize_t max_workers
    cdef object shutdown_lock       # the executor's _shutdown_lock
    cdef object resolve_task        # 3.14 prepare_context()'s, or None: plain (fn, args, kwargs)

    cdef int check_open(self) except -1:
        cdef WorkQueue queue = self.queue
        if queue is None:
            raise RuntimeError('ThreadPoolExecutor.__init__() was not called')
        if queue.broken is not None:
            raise queue.broken_type(queue.broken)
        if queue.shutdown:
            raise RuntimeError('cannot schedule new futures after shutdown')
        if interpreter_shutting_down:
            raise RuntimeError('cannot schedule new futures after interpreter shutdown')
        return 0

    # Thread safety.  The fast path -- checking the pool is open, queueing
    # the item, waking an idle worker -- runs under the GIL without a Python
    # call or an allocation in between, so shutdown() cannot come between
    # them, and a worker that exists drains the queue before it exits.
    # Starting a thread runs Python code: that path holds the executor's
    # _shutdown_lock (as the stdlib's submit does), so shutdown(wait=True)
    # joins every thread started for work queued before it, and concurrent
    # submits never start more than max_workers threads.

    cdef inline bint needs_thread(self):
        # As the stdlib: reuse an idle thread before starting a new one.
        return not self.queue.idle and self.queue.num_threads < self.max_workers

    cdef bint submit_starting_thread(self, object future, fn, args, kwargs,
                                     Py_ssize_t map_index=-1) except -1:
        """Queue a call as push() does, starting a thread if none is idle.
        False (nothing queued) when a bounded queue filled up while the lock
        was being taken."""
        with self.shutdown_lock:
            self.check_open()
            if self.queue.full():
                return False
            if self.resolve_task is not None:
                # Python code (as in the stdlib, under the lock); the item
                # holds the task, which the worker's context runs.
                fn, args, kwargs = self.resolve_task(fn, args, kwargs), EMPTY_TUPLE, None
            self.queue.push(future, fn, args, kwargs, 0, map_index)
            if not self.queue.wake_one() and self.queue.num_threads < self.max_workers:
                self._adjust_thread_count()
        return True

    def submit(self, fn, /, *args, **kwargs):
        """Submits a callable to be executed with the given arguments.

        Schedules the callable to be executed as fn(*args, **kwargs) and
        returns a Future instance representing the execution of the callable.
        """
        cdef FutureCore future = new_future()
        self.check_open()
        if self.queue.full():
            return self.submit_to_full_queue(future, fn, args, kwargs)
        if self.resolve_task is not None or self.needs_thread():
            if not self.submit_starting_thread(future, fn, args, kwargs):
                return self.submit_to_full_queue(future, fn, args, kwargs)
        else:
            self.queue.push(future, fn, args, kwargs)
            self.queue.wake_one()
        return future

    cdef object submit_to_full_queue(self, FutureCore future, fn, args, kwargs):
        """The queue is full: the pool's on_queue_full policy decides.  A
        pool's own thread never waits (the room it waits for could be its
        own to make); neither does a thread running an asyncio loop (its
        call waits in line, the loop awaits the future)."""
        cdef WorkQueue queue = self.queue
        cdef WaitingCall waiting
        if queue.policy == POLICY_RAISE or (queue.policy == POLICY_BLOCK
                                            and queue.in_worker_thread()):
            queue.stats.rejected += 1
            raise QueueFull(f"the pool's queue is full ({queue.max_queue_size} calls)")
        if queue.policy == POLICY_CALLER_RUNS and (queue.in_worker_thread()
                                                   or not in_loop_thread()):
            queue.stats.ran_in_caller += 1
            run_call(future, fn, args, kwargs if kwargs else None)
            return future
        if self.resolve_task is not None:
            fn, args, kwargs = self.resolve_task(fn, args, kwargs), EMPTY_TUPLE, None
        waiting = WaitingCall.__new__(WaitingCall)
        waiting.future = future
        waiting.fn = fn
        waiting.args = args
        waiting.kwargs = kwargs if kwargs else None
        if not in_loop_thread():
            waiting.waiter = Waiter()
        # Room may have been made while the above ran Python code.
        self.check_open()
        queue.waiting.append(waiting)
        queue.admit_waiting()
        if waiting.waiter is not None:
            self.wait_for_room(waiting)
        return future

    cdef int wait_for_room(self, WaitingCall waiting) except -1:
        """Block until a worker queues `waiting` (or the pool refuses it, or
        queue_full_timeout passes: QueueFull).  Interrupted (Ctrl-C), the
        call is taken out of line -- or, if it was queued meanwhile,
        cancelled -- so it never runs unseen."""
        cdef WorkQueue queue = self.queue
        cdef Deadline deadline = deadline_from_timeout(
            queue.queue_full_timeout if queue.queue_full_timeout >= 0 else None)
        try:
            signalled = waiting.waiter.block(deadline)
        except BaseException:
            if waiting.outcome == WAITING:
                queue.waiting.remove(waiting)
            elif waiting.outcome == ADMITTED:
                waiting.future.cancel()
            raise
        if not signalled and waiting.outcome == WAITING:
            queue.waiting.remove(waiting)
            queue.stats.rejected += 1
            raise QueueFull(f"the pool's queue stayed full ({queue.max_queue_size} calls)"
                            f" for {queue.queue_full_timeout} seconds")
        if waiting.outcome == REFUSED:
            self.check_open()       # raises the pool's error
            raise RuntimeError('cannot schedule new futures after shutdown')
        return 0

    def stats(self):
        """A snapshot of the pool: fastfutures.stats.ExecutorStats (its
        counters add up; see there).  fastfutures only."""
        return self.queue.stats_snapshot(self.max_workers)

    def map(self, fn, *iterables, timeout=None, chunksize=1, **buffering):
        """Returns an iterator equivalent to map(fn, iter).

        Every call is queued before map() returns; results come in input
        order.  *chunksize* is accepted and ignored, as by the stdlib's
        ThreadPoolExecutor.  On Python 3.14+, buffersize=N keeps at most N
        calls in flight.
        """
        cdef MapCalls calls
        cdef Py_ssize_t index
        cdef uint64_t tick = 0
        if buffering:
            buffersize = take_buffersize(buffering)
            if buffersize is not None:
                return buffered_map(self, fn, iterables, timeout, buffersize)
        if (type(self).submit is not core_submit or self.resolve_task is not None
                or self.queue.max_queue_size or has_instance_submit(self)):
            # A subclass or an instance attribute (tqdm's thread_map sets
            # `executor.submit = wrapper`) that wraps submit() must see every
            # call, as with the stdlib's map(); so must a worker context's
            # resolve_task(); and a bounded queue's policy, each call.
            return map_with_submit(self, fn, iterables, timeout)
        # The deadline starts now, before the calls are queued, as in the stdlib.
        calls = MapCalls.__new__(MapCalls)
        calls.deadline = deadline_from_timeout(timeout)
        calls.star = len(iterables) != 1
        arguments = zip(*iterables) if calls.star else iter(iterables[0])
        for arg in arguments:
            self.check_open()
            index = calls.add()
            # Each call can start at once, as each submit() of the stdlib's
            # map() does (the iterable may wait for one of them): a thread is
            # started while none is idle, an idle one woken (cheap while it
            # spins); an iterable that raises part-way leaves the queued
            # calls running, as there.
            if self.needs_thread():
                self.submit_starting_thread(calls, fn, arg, None, index)
            else:
                if tick == 0 or index % MAP_CLOCK_EVERY == 0:
                    tick = ff_ticks()
                self.queue.push(calls, fn, arg, None, tick, index)
                if self.queue.idle:
                    self.queue.wake_one()
        return map_results(calls)

    def _set_queue(self, WorkQueue queue, Py_ssize_t max_workers, shutdown_lock,
                   resolve_task=None):
        self.queue = queue
        self.max_workers = max_workers
        self.shutdown_lock = shutdown_lock
        self.resolve_task = resolve_task

    @property
    def _max_workers(self):
        return self.max_workers

    @property
    def _work_queue(self):
        return self.queue

    @property
    def _shutdown(self):
        return self.queue.shutdown

    @property
    def _broken(self):
        return self.queue.broken if self.queue.broken is not None else False


cdef object core_submit = ThreadPoolCore.__dict__["submit"]
cdef object get_running_loop = None     # asyncio's, once asyncio is imported


cdef bint in_loop_thread() except -1:
    """This thread runs an asyncio event loop.  (Without importing asyncio:
    where it was never imported, no loop runs.)"""
    global get_running_loop
    if get_running_loop is None:
        events = sys.modules.get("asyncio.events")
        if events is None:
            return False
        get_running_loop = events._get_running_loop
    return get_running_loop() is not None
cdef tuple EMPTY_TUPLE = ()
# map() queues its calls in a tight loop: one clock read per this many calls
# (a clock read costs as much as queueing a call; the queue waits recorded
# for the others start up to that many queueings early).
cdef Py_ssize_t MAP_CLOCK_EVERY = 8


cdef bint has_instance_submit(object executor) except -1:
    cdef dict attributes = getattr(executor, "__dict__", None)
    return attributes is not None and "submit" in attributes
