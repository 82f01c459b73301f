# cython: language_level=3
"""The compiled Future, its waiters, wait() and as_completed().

Thread safety model: every state transition runs with the GIL held and calls
no Python code between reading and writing the state, the way CPython's C
asyncio Future does.  Threads that *wait* release the GIL: they first spin
briefly on the state (a hand-off between two busy threads then costs no
system call), then block on a per-waiter lock that the completing thread
releases.

The module is deliberately not declared freethreading_compatible: on a
free-threaded build the GIL-protected transitions would need a mutex.
"""
import logging
import threading
import types
import concurrent.futures
from concurrent.futures._base import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    CancelledError,
    DoneAndNotDoneFutures,
    InvalidStateError,
)
# Before 3.11 concurrent.futures has a TimeoutError of its own.
from concurrent.futures._base import TimeoutError as FuturesTimeoutError

cimport cython
from ._stats cimport PoolStats, call_skipped, call_ended
from cpython.pythread cimport (
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_acquire_lock,
    PyThread_release_lock,
    PyLockStatus,
    PY_LOCK_ACQUIRED,
    PY_LOCK_INTR,
    NOWAIT_LOCK,
    WAIT_LOCK,
)
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM

cdef extern from "Python.h":
    int PyObject_GC_IsTracked(object)
    void PyObject_GC_Track(PyObject *)
    void PyObject_GC_UnTrack(PyObject *)
    bint PyObject_IS_GC(object)
    int PyObject_GenericSetAttr(object, object, object) except -1
    ctypedef object (*newfunc)(PyTypeObject *, object, PyObject *)

LOGGER = logging.getLogger("concurrent.futures")

# Same strings as concurrent.futures._base, for repr(), error messages and the
# `_state` compatibility attribute.
cdef tuple STATE_NAMES = ("PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED")
cdef tuple STATE_DESCRIPTIONS = ("pending", "running", "cancelled", "cancelled", "finished")

# How long a waiting thread spins (without the GIL) before it blocks.  Long
# enough to catch a quick hand-off from another thread, short enough not to
# matter when the wait is long.  Tunable for experiments via set_spin_rounds().
cdef int spin_rounds = 2000


# Bumped by every thread of ours right after it releases the GIL to wait.
# A thread that sees what it waited for has happened spins a little longer,
# until the thread that made it happen has released the GIL too: taking a GIL
# that is still held means sleeping on a condition variable, and that wake-up
# is what makes a hand-off between two Python threads cost tens of µs.
# The hand-off spin is kept short (about 5 µs): a worker of ours releases the
# GIL within a microsecond or two of completing a future when it has nothing
# else to do, and a thread of somebody else's may not release it at all.
cdef int gil_release_epoch = 0
cdef int hand_off_rounds = 64


cdef void note_gil_released() noexcept nogil:
    """Tell spinning waiters that this thread no longer holds the GIL.

    For threads outside this module that complete futures and then wait
    without the GIL (the process pool's result thread).
    """
    ff_increment(&gil_release_epoch)


cdef int spin_then_hand_off(int *value, int minimum, int spins) noexcept nogil:
    """Spin (GIL released) until *value >= minimum; returns the last value."""
    cdef int epoch = ff_increment(&gil_release_epoch)
    cdef int v = ff_spin_until_at_least(value, minimum, spins)
    if v >= minimum and hand_off_rounds:
        ff_spin_until_changed(&gil_release_epoch, epoch, hand_off_rounds)
    return v


def set_spin_rounds(int rounds, hand_off=None):
    """Tune how long waiters spin before blocking (0 disables spinning).

    Returns the previous (rounds, hand_off) pair.  For experiments and
    benchmarks; the defaults suit a small machine.
    """
    global spin_rounds, hand_off_rounds
    old = (spin_rounds, hand_off_rounds)
    spin_rounds = max(rounds, 0)
    if hand_off is not None:
        hand_off_rounds = max(<int>hand_off, 0)
    return old


cdef Deadline deadline_from_timeout(object timeout) except *:
    cdef Deadline d
    cdef double seconds
    if timeout is None:
        d.forever = True
        d.at = 0.0
        return d
    seconds = timeout           # TypeError for non-numbers, as the stdlib's lock does
    d.forever = False
    d.at = ff_monotonic() + seconds if seconds > 0 else 0.0
    return d


@cython.final
@cython.freelist(8)
cdef class Waiter:
    """What a blocked thread waits on: result(), wait() or as_completed().

    Futures call notify() (C) on their waiters; stdlib futures, which we also
    accept in wait()/as_completed(), call add_result()/add_exception()/
    add_cancelled() like they would on their own waiter classes.
    """

    def __cinit__(self, int kind=W_RESULT, Py_ssize_t pending=0):
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError()
        PyThread_acquire_lock(self._lock, WAIT_LOCK)
        self._signalled = 0
        self.kind = kind
        self.pending = pending
        self.finished_futures = [] if kind != W_RESULT else None

    def __dealloc__(self):
        if self._lock != NULL:
            if self._signalled:
                # The lock was released by signal() and never re-taken.
                PyThread_acquire_lock(self._lock, NOWAIT_LOCK)
            PyThread_release_lock(self._lock)
            PyThread_free_lock(self._lock)
            self._lock = NULL

    cdef void signal(self) noexcept:
        FF_ASSERT(self._lock != NULL)
        if not self._signalled:
            ff_store_release(&self._signalled, 1)
            PyThread_release_lock(self._lock)

    cdef void rearm(self) noexcept:
        # Called after block() returned 1: the lock is held again, only the
        # flag needs resetting.
        self._signalled = 0

    cdef void notify(self, object future, int how) noexcept:
        cdef int kind = self.kind
        if kind == W_RESULT:
            self.signal()
            return
        if how == HOW_CANCEL_REQUESTED:
            return          # wait()/as_completed() count only CANCELLED_AND_NOTIFIED
        self.finished_futures.append(future)
        if kind == W_ALL_COMPLETED or kind == W_FIRST_EXCEPTION:
            if kind == W_FIRST_EXCEPTION and how == HOW_EXCEPTION:
                self.signal()
            else:
                self.pending -= 1
                if self.pending <= 0:
                    self.signal()
        else:
            self.signal()

    # The protocol of concurrent.futures._base._Waiter, for stdlib futures.
    def add_result(self, future):
        self.notify(future, HOW_RESULT)

    def add_exception(self, future):
        self.notify(future, HOW_EXCEPTION)

    def add_cancelled(self, future):
        self.notify(future, HOW_CANCELLED)

    cdef int block(self, Deadline deadline) except -1:
        """Wait until signalled (1) or the deadline passes (0).

        Spins first without the GIL, then blocks; signals (Ctrl-C) are
        handled while blocked, as in threading.Lock.acquire().
        """
        cdef PyLockStatus status
        cdef PY_TIMEOUT_T micros
        cdef double remaining
        cdef int spins = spin_rounds
        if spins and not self._signalled:
            with nogil:
                spin_then_hand_off(&self._signalled, 1, spins)
        while True:
            if deadline.forever:
                micros = -1
            else:
                remaining = deadline.at - ff_monotonic()
                if remaining <= 0:
                    micros = 0
                elif remaining * 1e6 >= <double>PY_TIMEOUT_MAX:
                    micros = PY_TIMEOUT_MAX
                else:
                    micros = <PY_TIMEOUT_T>(remaining * 1e6)
            if micros == 0:
                status = PyThread_acquire_lock_timed(self._lock, 0, 0)
            else:
                with nogil:
                    status = PyThread_acquire_lock_timed(self._lock, micros, 1)
            if status == PY_LOCK_ACQUIRED:
                # A signal that arrived while we slept is handled here, as in
                # the stdlib (whose next bytecode in result()/wait() runs the
                # handler): Ctrl-C raises from the waiting call, also when
                # the future completed in the same instant.
                PyErr_CheckSignals()
                return 1
            if status == PY_LOCK_INTR:
                PyErr_CheckSignals()    # raises KeyboardInterrupt & co.
                continue
            if micros == PY_TIMEOUT_MAX:
                continue
            if self._signalled:         # signalled after the timeout: take it
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
                return 1
            return 0


cdef object _new_condition = threading.Condition
# _get_snapshot()'s answers other than FINISHED's.
cdef tuple SNAPSHOT_CANCELLED = (True, True, None, None)
cdef tuple SNAPSHOT_NOT_DONE = (False, False, None, None)


cdef class FutureCore:
    """State machine of a Future; the public class adds the stdlib base."""

    def __cinit__(self, *args, **kwargs):
        # *args: subclasses may take constructor arguments of their own.
        self._state = ST_PENDING
        # A fresh future references nothing, so it cannot be part of a
        # reference cycle: keep it out of the cyclic GC (as CPython does for
        # tuples and dicts) until it stores a reference that could close one.
        # With 100k pending futures this halves the cost of creating them.
        PyObject_GC_UnTrack(<PyObject *>self)

    cdef void track(self) noexcept:
        if not PyObject_GC_IsTracked(self):
            PyObject_GC_Track(<PyObject *>self)

    def __setattr__(self, name, value):
        # Attributes live in the instance __dict__, which may close a cycle.
        PyObject_GenericSetAttr(self, name, value)
        self.track()

    def __init__(self):
        pass

    # -- internals used by the pools -------------------------------------

    cdef bint set_running(self) except -1:
        """set_running_or_notify_cancel(); True when the work may run."""
        cdef object cond = self._compat_condition
        if cond is not None:
            cond.acquire()
        try:
            if self._state == ST_PENDING:
                ff_store_release(&self._state, ST_RUNNING)
                return True
            if self._state == ST_CANCELLED:
                ff_store_release(&self._state, ST_CANCELLED_AND_NOTIFIED)
                self._notify_waiters(HOW_CANCELLED)
                return False
            LOGGER.critical('Future %s in unexpected state: %s',
                            id(self), STATE_NAMES[self._state])
            raise RuntimeError('Future in unexpected state')
        finally:
            if cond is not None:
                cond.release()

    cdef int complete(self, object value, bint failed) except -1:
        """set_result(value) or set_exception(value)."""
        cdef object cond = self._compat_condition
        if cond is not None:
            cond.acquire()
        try:
            if self._state >= ST_CANCELLED:
                raise InvalidStateError('{}: {!r}'.format(STATE_NAMES[self._state], self))
            if failed:
                self._exception_value = value
            else:
                self._result_value = value
            if PyObject_IS_GC(value):
                self.track()
            ff_store_release(&self._state, ST_FINISHED)
            self._notify_waiters(HOW_EXCEPTION if failed else HOW_RESULT)
            if cond is not None:
                cond.notify_all()
        finally:
            if cond is not None:
                cond.release()
        self._invoke_callbacks()
        return 0

    cdef int _notify_waiters(self, int how) except -1:
        cdef list waiters = self._waiter_list
        cdef Waiter first
        cdef object w
        if waiters is not None:
            # A copy: a stdlib waiter's method runs Python code, during which
            # other threads may add or remove waiters (an index loop would
            # then skip one).  Waiters added meanwhile see the new state
            # themselves.
            waiters = list(waiters)
        # Read after the copy: allocating it can let another thread move the
        # first waiter into the list (the _waiters property), and it must
        # not be notified twice.
        first = self._waiter0
        if first is not None:
            first.notify(self, how)
        if waiters is None:
            return 0
        for w in waiters:
            if type(w) is Waiter:
                (<Waiter>w).notify(self, how)
            elif how == HOW_RESULT:
                w.add_result(self)
            elif how == HOW_EXCEPTION:
                w.add_exception(self)
            elif how == HOW_CANCELLED:
                w.add_cancelled(self)
        return 0

    cdef int _invoke_callbacks(self) except -1:
        cdef object first = self._callback0
        cdef list more = self._more_callbacks
        if first is None:
            return 0
        # Detach before calling, so callbacks that add callbacks see a done
        # future (and run at once) instead of mutating what we iterate.
        self._callback0 = None
        self._more_callbacks = None
        self._run_callback(first)
        if more is not None:
            for fn in more:
                self._run_callback(fn)
        return 0

    cdef int _run_callback(self, object fn) except -1:
        try:
            fn(self)
        except Exception:
            LOGGER.exception('exception calling callback for %r', self)
        return 0

    cdef int add_waiter(self, object waiter) except -1:
        cdef list fresh
        self.track()
        if self._waiter0 is None and self._waiter_list is None and type(waiter) is Waiter:
            self._waiter0 = <Waiter>waiter      # no list for the usual single waiter
            return 0
        if self._waiter_list is None:
            # Allocating can run the GC, whose finalizers can let another
            # thread store a list of its own meanwhile: look again after.
            fresh = []
            if self._waiter_list is None:
                self._waiter_list = fresh
        self._waiter_list.append(waiter)
        return 0

    cdef int remove_waiter(self, object waiter) except -1:
        cdef list waiters = self._waiter_list
        cdef Py_ssize_t i
        if self._waiter0 is waiter:
            self._waiter0 = None
        elif waiters is not None:
            for i in range(PyList_GET_SIZE(waiters) - 1, -1, -1):
                if <object>PyList_GET_ITEM(waiters, i) is waiter:
                    del waiters[i]
                    break
        return 0

    cdef bint wait_done(self, Deadline deadline) except -1:
        """Block (GIL released) until done or the deadline; True if done."""
        cdef Waiter waiter
        if self._state >= ST_CANCELLED:
            return True
        if not deadline.forever and deadline.at == 0.0:
            return False
        if spin_rounds:
            with nogil:
                spin_then_hand_off(&self._state, ST_CANCELLED, spin_rounds)
            if self._state >= ST_CANCELLED:
                return True
        waiter = Waiter(W_RESULT)
        self.add_waiter(waiter)
        try:
            # Allocating the waiter can run the GC, whose finalizers can let
            # a completer in: look again now that the waiter is installed.
            if self._state < ST_CANCELLED:
                waiter.block(deadline)
        finally:
            self.remove_waiter(waiter)
        return self._state >= ST_CANCELLED

    cdef object get_result(self):
        # `is not None`, not truth: an exception whose bool() is False is
        # still raised (the stdlib swallows it before 3.14).
        if self._exception_value is not None:
            raise self._exception_value
        return self._result_value

    # -- public API (same names and semantics as concurrent.futures.Future) --

    def cancel(self):
        """Cancel the future if possible.

        Returns True if the future was cancelled, False otherwise. A future
        cannot be cancelled if it is running or has already completed.
        """
        cdef object cond = self._compat_condition
        if cond is not None:
            cond.acquire()
        try:
            if self._state == ST_RUNNING or self._state == ST_FINISHED:
                return False
            if self._state == ST_CANCELLED or self._state == ST_CANCELLED_AND_NOTIFIED:
                return True
            ff_store_release(&self._state, ST_CANCELLED)
            self._notify_waiters(HOW_CANCEL_REQUESTED)
            if cond is not None:
                cond.notify_all()
        finally:
            if cond is not None:
                cond.release()
        self._invoke_callbacks()
        return True

    def cancelled(self):
        """Return True if the future was cancelled."""
        return self._state == ST_CANCELLED or self._state == ST_CANCELLED_AND_NOTIFIED

    def running(self):
        """Return True if the future is currently executing."""
        return self._state == ST_RUNNING

    def done(self):
        """Return True if the future was cancelled or finished executing."""
        return self._state >= ST_CANCELLED

    def add_done_callback(self, fn):
        """Attaches a callable that will be called when the future finishes.

        The callable is called with the future as its only argument, when the
        future completes or is cancelled, in the thread that completes it; at
        once if the future is already done.  Callables are called in the
        order they were added.
        """
        cdef list more
        while self._state < ST_CANCELLED:
            if self._callback0 is None:
                self._callback0 = fn
            elif self._more_callbacks is not None:
                self._more_callbacks.append(fn)
            else:
                # Allocating can run the GC, whose finalizers can let the
                # completer in (it detaches the callbacks): look again after.
                more = [fn]
                if self._state >= ST_CANCELLED or self._callback0 is None \
                        or self._more_callbacks is not None:
                    continue
                self._more_callbacks = more
            self.track()
            return
        self._run_callback(fn)

    def result(self, timeout=None):
        """Return the result of the call that the future represents.

        Raises CancelledError if the future was cancelled, TimeoutError if it
        did not finish within *timeout* seconds, or the call's exception.
        """
        cdef int state = self._state
        if state == ST_FINISHED:
            return self.get_result()
        if state >= ST_CANCELLED:
            raise CancelledError()
        self.wait_done(deadline_from_timeout(timeout))
        state = self._state
        if state == ST_FINISHED:
            return self.get_result()
        if state >= ST_CANCELLED:
            raise CancelledError()
        raise FuturesTimeoutError()

    def exception(self, timeout=None):
        """Return the exception raised by the call, or None.

        Raises CancelledError if the future was cancelled, TimeoutError if it
        did not finish within *timeout* seconds.
        """
        cdef int state = self._state
        if state < ST_CANCELLED:
            self.wait_done(deadline_from_timeout(timeout))
            state = self._state
        if state == ST_FINISHED:
            return self._exception_value
        if state >= ST_CANCELLED:
            raise CancelledError()
        raise FuturesTimeoutError()

    def set_running_or_notify_cancel(self):
        """Mark the future as running or process any cancel notifications.

        Returns False if the future was cancelled (waiters of wait() and
        as_completed() are notified), True otherwise.  Raises RuntimeError if
        called twice or after set_result()/set_exception().
        """
        return self.set_running()

    def set_result(self, result):
        """Sets the return value of work associated with the future."""
        self.complete(result, False)

    def set_exception(self, exception):
        """Sets the result of the future as being the given exception."""
        self.complete(exception, True)

    def __repr__(self):
        cdef int state = self._state
        cdef str name = type(self).__name__
        if state == ST_FINISHED:
            if self._exception_value:
                return '<%s at %#x state=finished raised %s>' % (
                    name, id(self), type(self._exception_value).__name__)
            return '<%s at %#x state=finished returned %s>' % (
                name, id(self), type(self._result_value).__name__)
        return '<%s at %#x state=%s>' % (name, id(self), STATE_DESCRIPTIONS[state])

    def __reduce__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def _get_snapshot(self):
        """(done, cancelled, result, exception), read atomically.

        3.15's asyncio copies a concurrent future into an asyncio one through
        this (wrap_future, run_in_executor without the bridge).  No lock: the
        values are written before the state and never change once it is
        FINISHED; the reads below run no Python code, so under the GIL no
        other thread runs between them.
        """
        cdef int state = ff_load_acquire(&self._state)
        if state == ST_FINISHED:
            return True, False, self._result_value, self._exception_value
        if state >= ST_CANCELLED:
            return SNAPSHOT_CANCELLED
        return SNAPSHOT_NOT_DONE

    # -- attributes the stdlib's own wait()/as_completed() and asyncio read --

    @property
    def _state(self):
        return STATE_NAMES[self._state]

    @property
    def _result(self):
        return self._result_value

    @property
    def _exception(self):
        return self._exception_value

    @property
    def _waiters(self):
        cdef list fresh
        self.track()
        if self._waiter_list is None:
            fresh = []              # may let another thread in (see add_waiter)
            if self._waiter_list is None:
                self._waiter_list = fresh
        if self._waiter0 is not None:
            # Stdlib code edits this list directly: keep every waiter in it.
            self._waiter_list.insert(0, self._waiter0)
            self._waiter0 = None
        return self._waiter_list

    @property
    def _done_callbacks(self):
        cdef list callbacks = []
        if self._callback0 is not None:
            callbacks.append(self._callback0)
            if self._more_callbacks is not None:
                callbacks.extend(self._more_callbacks)
        return callbacks

    @property
    def _condition(self):
        # Made on first use: from then on every transition of this future
        # takes it, so concurrent.futures.wait()/as_completed() (which lock
        # each future's _condition while installing their waiters) see a
        # consistent state.
        cdef object cond
        if self._compat_condition is None:
            # Runs Python code: another thread may make one meanwhile, and
            # every user must get the same condition.
            cond = _new_condition()
            if self._compat_condition is None:
                self.track()
                self._compat_condition = cond
        return self._compat_condition


class Future(FutureCore, concurrent.futures.Future):
    """Represents the result of an asynchronous computation.

    A compiled drop-in for concurrent.futures.Future (and an instance of it).
    """
    __slots__ = ()
    __class_getitem__ = classmethod(types.GenericAlias)


cdef object FutureType = Future
cdef newfunc future_tp_new = <newfunc>(<PyTypeObject*>Future).tp_new
cdef tuple EMPTY_TUPLE = ()


cdef FutureCore new_future():
    """A fresh fastfutures.Future, without the cost of a Python-level call."""
    return <FutureCore>future_tp_new(<PyTypeObject*>FutureType, EMPTY_TUPLE, NULL)


cdef int run_call(FutureCore future, object fn, object args, object kwargs,
                  PoolStats stats=None) except -1:
    """What a worker does with one work item: run it and complete the future.

    ``stats``: the pool's, which counted the call running when the worker
    took it; it learns how the call ended before the future's waiters do,
    so a snapshot taken after result() returns counts it (the worker records
    the run time).  Returns 1 if the call ran, 0 if it was cancelled; -1 only
    for an exception raised by a done-callback that is not an Exception
    (those propagate, as in the stdlib).
    """
    cdef bint runs
    try:
        runs = future.set_running()
    except BaseException:
        if stats is not None:
            call_skipped(stats)
        raise
    if not runs:
        if stats is not None:
            call_skipped(stats)
        return 0
    try:
        if kwargs is None:
            result = fn(*args)
        else:
            result = fn(*args, **kwargs)
    except BaseException as exc:
        if stats is not None:
            call_ended(stats, True)
        future.complete(exc, True)
        exc = None      # break the frame -> exception -> traceback cycle
    else:
        if stats is not None:
            call_ended(stats, False)
        future.complete(result, False)
    return 1


# ---------------------------------------------------------------------------
# wait() and as_completed()

cdef inline bint is_core(object f):
    return isinstance(f, FutureCore)


cdef class _ForeignLocks:
    """Ordered acquire of stdlib futures' conditions (as _AcquireFutures)."""
    cdef list conditions

    def __cinit__(self, foreign):
        self.conditions = [f._condition for f in sorted(foreign, key=id)]

    cdef acquire(self):
        for c in self.conditions:
            c.acquire()

    cdef release(self):
        for c in self.conditions:
            c.release()


cdef bint _finished_for_waiting(object f) except -1:
    # Done as far as wait()/as_completed() are concerned: FINISHED or
    # CANCELLED_AND_NOTIFIED (a merely CANCELLED future is not).
    cdef int state
    if is_core(f):
        state = (<FutureCore>f)._state
        return state == ST_FINISHED or state == ST_CANCELLED_AND_NOTIFIED
    return f._state in ("CANCELLED_AND_NOTIFIED", "FINISHED")


cdef list _foreign(set futures):
    # A function of its own so that no loop variable outlives it (a
    # generator's locals would keep the last future alive).
    return [f for f in futures if not is_core(f)]


cdef bint _install_unless_finished(object f, Waiter waiter) except -1:
    """Install *waiter* on *f*, or return True if *f* is already finished.

    Installs first and looks at the state after: looking first would leave a
    window (allocations can run the GC, whose finalizers can let a completer
    in) in which a future finishes without notifying the waiter.  For stdlib
    futures the caller holds their conditions.
    """
    cdef FutureCore core
    if is_core(f):
        core = <FutureCore>f
        core.add_waiter(waiter)
        if _finished_for_waiting(core):
            core.remove_waiter(waiter)
            return True
        return False
    if _finished_for_waiting(f):
        return True
    f._waiters.append(waiter)
    return False


cdef int _uninstall_all(set fs, Waiter waiter) except -1:
    for f in fs:
        _uninstall(f, waiter)
    return 0


cdef int _uninstall(object f, Waiter waiter) except -1:
    if is_core(f):
        (<FutureCore>f).remove_waiter(waiter)
    else:
        with f._condition:
            try:
                f._waiters.remove(waiter)
            except ValueError:
                pass            # finished before we looked: never installed
    return 0


def wait(fs, timeout=None, return_when=ALL_COMPLETED):
    """Wait for the futures in the given sequence to complete.

    Returns a named 2-tuple of sets (done, not_done), like
    concurrent.futures.wait(); accepts fastfutures and stdlib futures mixed.
    """
    cdef set futures = set(fs)
    cdef set done = set()
    cdef set not_done
    cdef list foreign
    cdef _ForeignLocks locks
    cdef Waiter waiter
    cdef int kind, outcome
    cdef Deadline deadline
    cdef bint timed = False         # deadline set
    if return_when == ALL_COMPLETED:
        # (Its time-out, once it waits, counts on the general path below too.)
        outcome = _wait_all_in_turn(futures, timeout, &deadline, &timed)
        if outcome == ALL_FINISHED:
            return DoneAndNotDoneFutures(futures, set())
        if outcome == TIMED_OUT:
            done = {f for f in futures if _finished_for_waiting(f)}
            return DoneAndNotDoneFutures(done, futures - done)
    foreign = _foreign(futures)
    locks = _ForeignLocks(foreign) if foreign else None
    if return_when == FIRST_COMPLETED:
        kind = W_FIRST_COMPLETED
    elif return_when == FIRST_EXCEPTION:
        kind = W_FIRST_EXCEPTION
    elif return_when == ALL_COMPLETED:
        kind = W_ALL_COMPLETED
    else:
        kind = -1           # the stdlib raises only if it has to wait
    # pending counts down from every future; those found finished are taken
    # off below (they never notify).
    waiter = Waiter(kind if kind >= 0 else W_FIRST_COMPLETED, len(futures))
    not_done = futures
    if locks is not None:
        locks.acquire()
    try:
        for f in futures:
            if _install_unless_finished(f, waiter):
                done.add(f)
        not_done = futures - done
        if ((return_when == FIRST_COMPLETED and done)
                or (return_when == FIRST_EXCEPTION and done and
                    any(f for f in done if not f.cancelled() and f.exception() is not None))
                or not not_done):
            _uninstall_all(not_done, waiter)
            return DoneAndNotDoneFutures(done, not_done)
        if kind < 0:
            _uninstall_all(not_done, waiter)
            raise ValueError("Invalid return condition: %r" % return_when)
        waiter.pending -= len(done)
        if waiter.pending <= 0 and kind != W_FIRST_COMPLETED:
            waiter.signal()
    finally:
        if locks is not None:
            locks.release()
    try:
        if not timed:
            # As the stdlib: a time-out is looked at only when there is a wait.
            deadline = deadline_from_timeout(timeout)
        waiter.block(deadline)
    finally:
        _uninstall_all(not_done, waiter)
    done.update(waiter.finished_futures)
    return DoneAndNotDoneFutures(done, futures - done)


# What _wait_all_in_turn() found.
cdef enum:
    ALL_FINISHED
    TIMED_OUT
    NEEDS_A_WAITER


cdef int _wait_all_in_turn(set futures, object timeout, Deadline *deadline,
                           bint *timed) except -1:
    """wait(ALL_COMPLETED) for fastfutures futures: wait for each in turn.

    Cheaper than a waiter on every future: while the waiting thread blocks on
    one future, the others complete without notifying anybody.  Returns
    NEEDS_A_WAITER for a stdlib future, or one cancelled-but-not-notified
    (only a waiter sees that state end): the caller takes the general path.
    The deadline is made (*timed set) at the first wait, as the stdlib looks
    at a time-out only when it has to wait.
    """
    cdef FutureCore core
    cdef int state
    for f in futures:
        if not is_core(f):
            return NEEDS_A_WAITER
        core = <FutureCore>f
        state = core._state
        if state < ST_CANCELLED:
            if not timed[0]:
                deadline[0] = deadline_from_timeout(timeout)
                timed[0] = True
            if not core.wait_done(deadline[0]):
                return TIMED_OUT    # the caller reports what is done
            state = core._state
        if state == ST_CANCELLED:
            return NEEDS_A_WAITER
    return ALL_FINISHED


def as_completed(fs, timeout=None):
    """An iterator over the given futures that yields each as it completes.

    Finished futures come first, then the others in completion order.
    Raises TimeoutError('%d (of %d) futures unfinished') on timeout.
    Accepts fastfutures and stdlib futures mixed; duplicates come once.
    """
    cdef Deadline deadline = deadline_from_timeout(timeout)
    cdef set futures = set(fs)
    cdef Py_ssize_t total = len(futures)
    cdef list foreign = _foreign(futures)
    cdef _ForeignLocks locks = _ForeignLocks(foreign) if foreign else None
    cdef Waiter waiter = Waiter(W_AS_COMPLETED)
    cdef list finished = []
    cdef set pending
    # The generator must hold no reference to a future it has yielded
    # (bpo-14406): the locks hold conditions, not futures.
    foreign = None
    if locks is not None:
        locks.acquire()
    try:
        for f in futures:
            if _install_unless_finished(f, waiter):
                finished.append(f)
        pending = futures.difference(finished)
    finally:
        if locks is not None:
            locks.release()
    f = None
    try:
        while True:
            # Yield in reverse order of `finished`, dropping every reference
            # we hold to a future before it is handed out.
            while finished:
                f = finished[-1]
                futures.discard(f)
                pending.discard(f)
                _uninstall(f, waiter)
                f = None
                yield finished.pop()
            if not pending:
                break
            if not deadline.forever and deadline.at - ff_monotonic() < 0:
                raise FuturesTimeoutError('%d (of %d) futures unfinished' % (len(pending), total))
            if waiter.block(deadline):
                # Re-arm before taking the list: allocating the new list can
                # run the GC, whose finalizers can let a completer in; a
                # notify() between the swap and a late rearm() would be lost.
                waiter.rearm()
                finished = waiter.finished_futures
                waiter.finished_futures = []
                finished.reverse()
    finally:
        for f in futures:
            _uninstall(f, waiter)


def results_in_order(list fs, timeout):
    """Executor.map()'s results: those of *fs* in order (see ResultsInOrder).

    The deadline is fixed now, when map() is called; *fs* may be filled
    afterwards.
    """
    return ResultsInOrder(fs, timeout)


@cython.final
cdef class ResultsInOrder:
    """The results of a list of futures, in order: map()'s result iterator.

    As the stdlib's generator: a result that times out cancels its future;
    an error, or close(), cancels the futures not yet consumed.  Each future
    and each result is dropped as it is handed out, so a consumer that lets
    go of a result frees it (CPython bpo-14406).  _base.map_results() wraps
    it in a real generator.
    """
    cdef list futures
    cdef Py_ssize_t next_index
    cdef Deadline deadline

    def __cinit__(self, list fs, timeout):
        self.futures = fs
        self.deadline = deadline_from_timeout(timeout)

    def __iter__(self):
        return self

    def __next__(self):
        cdef list fs = self.futures
        cdef Py_ssize_t i = self.next_index
        if i >= PyList_GET_SIZE(fs):
            raise StopIteration
        f = <object>PyList_GET_ITEM(fs, i)
        fs[i] = None
        self.next_index = i + 1
        try:
            return self.result_of(f)
        except BaseException:
            self.close()
            raise

    cdef object result_of(self, object f):
        cdef FutureCore core
        if is_core(f):
            core = <FutureCore>f
            if core._state != ST_FINISHED:
                core.wait_done(self.deadline)
            if core._state == ST_FINISHED and core._exception_value is None:
                # The common case, with no Python-level call at all (cancel()
                # of a finished future is a no-op).
                return core._result_value
        try:
            if self.deadline.forever:
                return f.result()
            return f.result(self.deadline.at - ff_monotonic())
        finally:
            f.cancel()

    def close(self):
        """Cancel the futures whose results were not consumed."""
        cdef list fs = self.futures
        cdef Py_ssize_t i = self.next_index
        self.next_index = PyList_GET_SIZE(fs)
        while i < PyList_GET_SIZE(fs):
            f = <object>PyList_GET_ITEM(fs, i)
            fs[i] = None
            i += 1
            if f is not None:
                f.cancel()
