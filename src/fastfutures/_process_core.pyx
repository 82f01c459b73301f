"""The process pool, compiled: its state machine (PoolCore, WorkerHandle), submitting a
call, the result thread's loop, and the worker's serve loop.

Files: _process_calls.pxi (a call and its future), _process_workers.pxi (a
worker as the parent sees it), _process_pool.pxi (the pool), and
_process_worker_loop.pxi (the worker's side), included here so that they
share C types and inline functions; the wire protocol is _shm_ring.h's.

Thread safety: a pool's state (the task table, the queue, the workers'
counters, the write side of the request rings) is changed by submitting
threads and by the result thread.  Every change that must be atomic --
checking the pool is open, choosing a worker, writing the request record,
recording the task -- runs with the GIL held and without calling Python code
in between, so no other thread can see it half done.  Pickling, unpickling
and completing futures (which runs callbacks) can let other threads in, so
they happen before or after such a section, never inside one.  Everything
else (sends that need a buffer segment, starting, killing and replacing
workers, the pool's state changes) holds the pool's lock (see
_transport.Endpoint, which is not thread-safe); the result thread's reading
of replies changes a worker's state with the GIL alone.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Realloc, PyMem_Free
from cpython.list cimport PyList_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from libc.math cimport INFINITY
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject

from ._future cimport (FutureCore, new_future, note_gil_released, ff_monotonic,
                       ST_PENDING, ST_RUNNING, ST_CANCELLED, FF_ASSERT)
from ._shm cimport (Ring, Claims, ffr_ctl, ffm_header, ffr_write3, ffr_peek, ffr_consume, ffr_writer_to_wake,
                    ffr_is_empty, ffr_reader_prepare_sleep, ffr_reader_awake,
                    ffr_writer_prepare_wait, ffr_wake_fd, ffr_relax,
                    FFM_CALL, FFM_EXIT, FFM_RESULT, FFM_RAW_RESULT, FFM_EXCEPTION, FFM_CHUNK,
                    FFM_SKIPPED, FFM_WORKER_EXITING, FFM_NO_ARGS, FFM_WITH_KWARGS, FFM_STAR,
                    FFM_NONE_RESULT)

import pickle
from collections import deque
from itertools import starmap
from threading import RLock
from concurrent.futures import process as _stdlib_process
from concurrent.futures._base import InvalidStateError
from concurrent.futures.process import _ExceptionWithTraceback, _RemoteTraceback
from concurrent.futures.process import BrokenProcessPool
from traceback import format_exception
from os import close as os_close

from . import _process_errors
from . import _transport as transport
from ._future import Future as _PublicFuture

# gh-152967 (in the stdlib of Debian's 3.14.10): see _process_errors.STRANDED_MESSAGE.
cdef bint STRANDED_WORK_FAILS = hasattr(_stdlib_process._ExecutorManagerThread,
                                        "_replace_dead_worker")

cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ
    ctypedef object (*newfunc)(PyTypeObject *, object, PyObject *)

cdef extern from *:
    int popcount "__builtin_popcountll" (unsigned long long) nogil


# The wire protocol's kinds and flags (_shm_ring.h), by short names.
cdef enum:
    K_CALL = FFM_CALL
    K_EXIT = FFM_EXIT
    K_RESULT = FFM_RESULT
    K_RAW_RESULT = FFM_RAW_RESULT
    K_EXCEPTION = FFM_EXCEPTION
    K_CHUNK = FFM_CHUNK
    K_SKIPPED = FFM_SKIPPED
    F_WORKER_EXITING = FFM_WORKER_EXITING
    F_NO_ARGS = FFM_NO_ARGS
    F_WITH_KWARGS = FFM_WITH_KWARGS
    F_STAR = FFM_STAR
    F_NONE_RESULT = FFM_NONE_RESULT

# Tasks handed to one worker ahead of their turn (each holds one of its claim
# slots until answered, so at most transport.CLAIM_SLOTS).  They stay
# cancellable until the worker claims them; a deeper ring keeps workers busy
# between two wake-ups of the result thread.
cdef int MAX_IN_FLIGHT = 8
MAX_IN_FLIGHT_PER_WORKER = MAX_IN_FLIGHT
assert MAX_IN_FLIGHT <= transport.CLAIM_SLOTS
cdef uint64_t ALL_SLOTS = ~<uint64_t>0
cdef uint64_t SLOT_MASK = (<uint64_t>1 << MAX_IN_FLIGHT) - 1

# A worker the pool stops (a time limit, cancel_running, kill_workers(), a
# broken pool, shutdown of a broken pool) gets SIGTERM, then SIGKILL if it is
# still there after this long (seconds).
cdef double KILL_GRACE = 0.25
KILL_GRACE_SECONDS = KILL_GRACE

# How long a reader spins on its rings before it sleeps in poll(): long enough
# to catch the reply of a short call (or the next request of a busy caller)
# without a system call on either side, short enough that an idle pool costs
# nothing.  Seconds.
cdef double RESULT_SPIN_SECONDS = 50e-6
cdef double WORKER_SPIN_SECONDS = 50e-6

# How often the result thread looks at a timed call whose function has not
# started yet (it does not know when it will): the limit is enforced within
# this much of the start.
cdef double UNCLAIMED_RECHECK_SECONDS = 0.02

# Cached function pickles (either side).  Bounded: cleared when full.
cdef Py_ssize_t FN_CACHE_SIZE = 256

cdef object loads = pickle.loads
cdef object function_pickle = transport.function_pickle
cdef object ReusablePickler = transport.ReusablePickler
cdef bytes EMPTY = b""

cdef bint global_shutdown = False


def set_global_shutdown():
    """The interpreter is exiting: every pool refuses new work."""
    global global_shutdown
    global_shutdown = True


cdef inline bint spin_until_nonempty(ffr_ctl **rings, Py_ssize_t n,
                                     double seconds) noexcept nogil:
    """Spin (no GIL) until one of ``rings`` has data or ``seconds`` pass."""
    cdef double end = ff_monotonic() + seconds
    cdef int i
    cdef Py_ssize_t k
    while True:
        for i in range(16):
            for k in range(n):
                if not ffr_is_empty(rings[k]):
                    return True
            ffr_relax()
        if ff_monotonic() >= end:
            return False


cdef inline double earliest(double a, double b) noexcept:
    """The sooner of two timeouts in seconds, where -1 means none."""
    if a < 0:
        return b
    if b < 0:
        return a
    return a if a < b else b


cdef inline void drain_pipe(int fd) noexcept nogil:
    cdef char buf[256]
    while ffp_read(fd, buf, sizeof(buf)) == sizeof(buf):
        pass


cdef int fail(future, error) except -1:
    """Fail ``future`` unless it ended meanwhile (cancelled...)."""
    try:
        future.set_exception(error)
    except InvalidStateError:
        pass
    return 0


cdef inline int write_record(Ring ring, uint8_t kind, uint8_t flags, int64_t task_id,
                             uint32_t slot, bytes fn_bytes, bytes rest) noexcept:
    """One record into ``ring``; 0 when there is no room.  No Python code runs."""
    cdef ffm_header h
    cdef int r
    if ring._ctl == NULL:
        return 0
    h.kind = kind
    h.flags = flags
    h.nbuf = 0
    h.seg_id = 0
    h.task_id = task_id
    h.fn_len = <uint32_t>PyBytes_GET_SIZE(fn_bytes)
    h.slot = slot
    r = ffr_write3(ring._ctl, ring._data, ring._cap, <char *>&h, sizeof(h),
                   PyBytes_AS_STRING(fn_bytes), PyBytes_GET_SIZE(fn_bytes),
                   PyBytes_AS_STRING(rest), PyBytes_GET_SIZE(rest))
    if r < 0:
        return 0
    if r > 0:
        ffr_wake_fd(ring._peer_wake_fd)
    return 1



include "_process_calls.pxi"
include "_process_encoder.pxi"
include "_process_workers.pxi"
include "_process_scheduler.pxi"
include "_process_limits.pxi"
include "_process_waitset.pxi"
include "_process_pool.pxi"
include "_process_worker_loop.pxi"
