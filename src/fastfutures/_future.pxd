# The compiled Future and the waiter machinery shared by both pools.
from cpython.pythread cimport PyThread_type_lock, PyLockStatus
from ._stats cimport PoolStats

cdef extern from "pythread.h":
    ctypedef long long PY_TIMEOUT_T
    PY_TIMEOUT_T PY_TIMEOUT_MAX
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock, PY_TIMEOUT_T microseconds,
                                             int intr_flag) nogil

cdef extern from "_sync.h":
    int ff_load_acquire(int *p) nogil
    void ff_store_release(int *p, int v) nogil
    int ff_spin_until_at_least(int *value, int minimum, int spins) nogil
    int ff_spin_until_changed(int *value, int old, int spins) nogil
    int ff_increment(int *p) nogil
    double ff_monotonic() nogil
    void ff_yield() nogil
    void FF_ASSERT(bint) nogil

# Future states, ordered so that "done" is simply state >= ST_CANCELLED.
cdef enum:
    ST_PENDING = 0
    ST_RUNNING = 1
    ST_CANCELLED = 2
    ST_CANCELLED_AND_NOTIFIED = 3
    ST_FINISHED = 4

# How a future completed, as told to its waiters.
cdef enum:
    HOW_RESULT = 0
    HOW_EXCEPTION = 1
    HOW_CANCELLED = 2           # set_running_or_notify_cancel() on a cancelled future
    HOW_CANCEL_REQUESTED = 3    # cancel(): wakes result() callers only

# What a waiter waits for.
cdef enum:
    W_RESULT = 0                # a thread blocked in result()/exception()
    W_FIRST_COMPLETED = 1
    W_FIRST_EXCEPTION = 2
    W_ALL_COMPLETED = 3
    W_AS_COMPLETED = 4


ctypedef struct Deadline:
    bint forever        # no timeout
    double at           # ff_monotonic() time at which waiting stops


cdef class Waiter:
    cdef PyThread_type_lock _lock   # held while unsignalled; released once to wake the blocked thread
    cdef int _signalled
    cdef int kind
    cdef Py_ssize_t pending         # ALL_COMPLETED / FIRST_EXCEPTION: futures still to finish
    cdef list finished_futures

    cdef void signal(self) noexcept
    cdef void notify(self, object future, int how) noexcept
    cdef int block(self, Deadline deadline) except -1
    cdef void rearm(self) noexcept


cdef class FutureCore:
    cdef int _state
    cdef object _result_value
    cdef object _exception_value
    cdef object _callback0          # the first done-callback, stored inline
    cdef list _more_callbacks       # allocated only for a second callback
    cdef Waiter _waiter0            # the first of our waiters, stored inline
    cdef list _waiter_list          # further Waiters, or stdlib waiters (add_result/...)
    cdef object _compat_condition   # threading.Condition, made only if stdlib code asks for _condition
    cdef object __weakref__

    cdef void track(self) noexcept
    cdef bint set_running(self) except -1
    cdef int _notify_waiters(self, int how) except -1
    cdef int _invoke_callbacks(self) except -1
    cdef int _run_callback(self, object fn) except -1
    cdef int complete(self, object value, bint failed) except -1
    cdef int add_waiter(self, object waiter) except -1
    cdef int remove_waiter(self, object waiter) except -1
    cdef bint wait_done(self, Deadline deadline) except -1
    cdef object get_result(self)


cdef void note_gil_released() noexcept nogil
cdef int spin_then_hand_off(int *value, int minimum, int spins) noexcept nogil
cdef Deadline deadline_from_timeout(object timeout) except *
cdef FutureCore new_future()
cdef int run_call(FutureCore future, object fn, object args, object kwargs,
                  PoolStats stats=*) except -1
