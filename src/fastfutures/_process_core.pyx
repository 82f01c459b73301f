"""The process pool's hot paths, compiled: submitting a call, the worker's
serve loop, and the result thread's reading of replies.

Thread safety: a pool's state (the task table, the queue, the workers'
counters, the write side of the request rings) is changed by submitting
threads and by the result thread.  Every change that must be atomic --
checking the pool is open, choosing a worker, writing the request record,
recording the task -- runs with the GIL held and without calling Python code
in between, so no other thread can see it half done.  Pickling, unpickling
and completing futures (which runs callbacks) can let other threads in, so
they happen before or after such a section, never inside one.  Sends that
need a buffer segment run Python code in the middle and hold the pool's lock
instead (see _transport.Endpoint, which is not thread-safe).

The record format and message kinds are _transport's (HEADER = ffm_header).
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Realloc, PyMem_Free
from cpython.list cimport PyList_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject

from ._future cimport (FutureCore, new_future, note_gil_released, ff_monotonic, ff_yield,
                       ST_PENDING, ST_RUNNING, ST_CANCELLED)
from ._shm cimport (Ring, Claims, ffr_ctl, ffm_header, ffr_write3, ffr_peek, ffr_consume, ffr_writer_to_wake,
                    ffr_is_empty, ffr_reader_prepare_sleep, ffr_reader_awake,
                    ffr_writer_prepare_wait, ffr_wake_fd, ffr_relax,
                    FFM_CALL, FFM_EXIT, FFM_RESULT, FFM_RAW_RESULT, FFM_EXCEPTION, FFM_CHUNK,
                    FFM_SKIPPED, FFM_WORKER_EXITING, FFM_NO_ARGS, FFM_WITH_KWARGS, FFM_STAR,
                    FFM_NONE_RESULT)

import pickle
from itertools import starmap
from concurrent.futures.process import _ExceptionWithTraceback, _RemoteTraceback
from concurrent.futures.process import BrokenProcessPool
from traceback import format_exception

from . import _transport as transport
from ._future import Future as _PublicFuture

cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ
    ctypedef object (*newfunc)(PyTypeObject *, object, PyObject *)

cdef extern from *:
    """
    #if defined(_WIN32)
    /* The pool falls back to the stdlib's there; this only has to compile. */
    struct pollfd { int fd; short events; short revents; };
    #define POLLIN 1
    static int ffp_poll(struct pollfd *f, unsigned long n, int t) { (void)f; (void)n; (void)t; return -1; }
    static long ffp_read(int fd, void *b, size_t n) { (void)fd; (void)b; (void)n; return -1; }
    #else
    #include <poll.h>
    #include <unistd.h>
    #define ffp_poll(f, n, t) poll((f), (nfds_t)(n), (t))
    #define ffp_read(fd, b, n) read((fd), (b), (n))
    #endif
    """
    struct pollfd:
        int fd
        short events
        short revents
    int ffp_poll(pollfd *fds, unsigned long nfds, int timeout) nogil
    long ffp_read(int fd, void *buf, size_t count) nogil
    enum: POLLIN

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


def set_spin(double result_seconds, double worker_seconds):
    """Tune the spins before sleeping (0 disables); returns the old pair.
    For experiments; a worker takes the value its process had at start."""
    global RESULT_SPIN_SECONDS, WORKER_SPIN_SECONDS
    old = (RESULT_SPIN_SECONDS, WORKER_SPIN_SECONDS)
    RESULT_SPIN_SECONDS = result_seconds
    WORKER_SPIN_SECONDS = worker_seconds
    return old


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


cdef inline void drain_pipe(int fd) noexcept nogil:
    cdef char buf[256]
    while ffp_read(fd, buf, sizeof(buf)) == sizeof(buf):
        pass


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


# ---------------------------------------------------------------------------
# The parent


@cython.final
@cython.freelist(64)
@cython.no_gc       # nothing a Call refers to can refer back to it: no cycle
cdef class Call:
    """A pickled call: waiting in the pool's queue, or in a worker's ring
    (``link`` set) until its reply.  Kept out of the cyclic GC: with many
    calls queued, collections scanning them cost more than the calls."""
    cdef readonly FutureCore future
    cdef uint8_t kind
    cdef uint8_t flags
    cdef bytes fn_bytes     # the function's own pickle, or b"" (inside rest)
    cdef bytes rest
    cdef object buffers     # None, or out-of-band buffers for a segment
    cdef readonly double limit      # seconds it may run; 0: no limit
    cdef readonly object fn         # kept for a time limit's message
    cdef readonly Link link         # the worker whose ring holds it, or None
    cdef readonly int slot          # its claim slot there


cdef class PoolFutureCore(FutureCore):
    """A process pool's future.  While its call waits in a worker's ring it
    holds the call's claim slot (see _shm_ring.h): cancel() and the worker's
    claim race on it, and exactly one wins.  The future stays PENDING until
    the reply; running() reads the claim."""
    cdef Link link          # None unless the call is in a worker's ring
    cdef int slot

    def cancel(self):
        """Cancel the future if possible.

        Returns True if the future was cancelled, False otherwise. A future
        cannot be cancelled if it is running or has already completed
        (unless the pool was made with cancel_running=True: then its worker
        is killed and replaced).
        """
        cdef Link link = self.link
        # No Python code between reading the state and the compare-and-swap.
        if self._state == ST_PENDING and link is not None:
            if not link.claims.cancel(self.slot):
                # The worker claimed it: running.
                if not link.cancel_running:
                    return False
                link.request_kill(self.slot)
        return FutureCore.cancel(self)

    def cancel_if_not_started(self):
        """cancel(), except that a running call is never stopped, whatever
        cancel_running says (shutdown(cancel_futures=True))."""
        cdef Link link = self.link
        if self._state == ST_PENDING and link is not None:
            if not link.claims.cancel(self.slot):
                return False
        return FutureCore.cancel(self)

    def running(self):
        """Return True if the future is currently executing."""
        cdef Link link = self.link
        if self._state == ST_PENDING and link is not None:
            return link.claims.claimed(self.slot)
        return self._state == ST_RUNNING


class Future(PoolFutureCore, _PublicFuture):
    """The future of a process pool's call: a fastfutures.Future whose call
    can be cancelled until a worker has started it."""
    __slots__ = ()


cdef object PoolFutureType = Future
cdef newfunc pool_future_tp_new = <newfunc>(<PyTypeObject*>Future).tp_new
cdef tuple EMPTY_TUPLE = ()


cdef inline PoolFutureCore new_pool_future():
    return <PoolFutureCore>pool_future_tp_new(<PyTypeObject*>PoolFutureType, EMPTY_TUPLE, NULL)


cdef inline void in_ring(Call call, Link link, int slot) noexcept:
    """``call`` is being written into ``link``'s ring, claim slot ``slot``."""
    cdef PoolFutureCore future = <PoolFutureCore>call.future
    future.link = link
    future.slot = slot
    call.link = link
    call.slot = slot


cdef inline void left_ring(Call call) noexcept:
    """``call`` (or None) is no longer in a worker's ring."""
    if call is not None:
        (<PoolFutureCore>call.future).link = None
        call.link = None


cdef int finish_cancelled(FutureCore future) except -1:
    """A call that cancel() stopped (not run, or its worker killed): the
    future ends cancelled -- cancel() may still be on its way in its thread,
    and finds it so -- and its waiters learn it now, as they do when the
    stdlib's pool reaches a cancelled call."""
    FutureCore.cancel(future)
    if future._state == ST_CANCELLED:
        future.set_running()
    return 0


def notify_cancelled(list futures):
    """finish_cancelled() for each future; the first error is raised after."""
    error = None
    for future in futures:
        try:
            finish_cancelled(<FutureCore>future)
        except BaseException as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error


# complete_all()'s outcomes
cdef enum:
    OUTCOME_RESULT = 0
    OUTCOME_EXCEPTION = 1
    OUTCOME_SKIPPED = 2


@cython.boundscheck(False)     # done holds whole triples: i + 2 < len(done)
@cython.wraparound(False)
cdef int complete_all(list done) except -1:
    """Complete the (future, value, outcome) triples read from replies.

    Each future has left ``tasks`` already, so every one is completed even
    when one raises (a done-callback's SystemExit, a user's set_result() on
    a running future); the first error is raised after."""
    cdef Py_ssize_t i
    cdef FutureCore future
    cdef int outcome
    error = None
    for i in range(0, len(done), 3):
        future = done[i]
        outcome = done[i + 2]
        if future is None:
            continue
        if outcome == OUTCOME_SKIPPED:
            try:
                finish_cancelled(future)
            except BaseException as exc:
                if error is None:
                    error = exc
            continue
        if future._state >= ST_CANCELLED:
            if future._state == ST_CANCELLED:
                # cancel_running: cancelled while it ran; it ends now.
                try:
                    future.set_running()
                except BaseException as exc:
                    if error is None:
                        error = exc
            continue
        try:
            future.complete(done[i + 1], outcome == OUTCOME_EXCEPTION)
        except BaseException as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error
    return 0


@cython.final
cdef class ChunkedResults:
    """map()'s result iterator: the items of each chunk's result list, in
    order.  Each item's reference is dropped as it is handed out, as by the
    stdlib's _chain_from_iterable_of_lists (a generator costing ~4x more per
    item); close() cancels the chunks not yet consumed."""
    cdef object chunks          # _future.results_in_order() over the chunks
    cdef list current
    cdef Py_ssize_t index

    def __cinit__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return self

    @cython.boundscheck(False)     # index < the list's size, checked first
    @cython.wraparound(False)
    def __next__(self):
        cdef list current = self.current
        while current is None or self.index >= PyList_GET_SIZE(current):
            self.current = current = None
            current = next(self.chunks)     # StopIteration ends us too
            self.current = current
            self.index = 0
        item = current[self.index]
        current[self.index] = None
        self.index += 1
        return item

    def close(self):
        self.current = None
        self.chunks.close()


# A worker's life, as the parent sees it (Link.state).  Only SERVING takes
# calls; every other state ends with the process exiting, which the result
# thread expects (it breaks the pool otherwise, in "break" mode).
cdef enum:
    WORKER_SERVING = 0
    WORKER_RETIRING = 1     # max_tasks_per_child: its last reply says it exits
    WORKER_LEAVING = 2      # told to exit (shutdown)
    WORKER_DYING = 3        # being killed (time limit, cancel_running)


@cython.final
cdef class Link:
    """A worker process and the parent's end of its channel."""
    cdef public object process
    cdef public object channel
    cdef public object endpoint
    cdef public int sentinel
    cdef public int wake_read_fd
    cdef Ring outbox
    cdef Ring inbox
    cdef public int in_flight
    cdef Claims claims
    cdef uint64_t free_slots            # bit i set: claim slot i is free
    cdef public long long tasks_left     # -1: unlimited
    cdef int state                       # WORKER_*
    cdef public double kill_at           # when to SIGKILL it (0: done)
    cdef bint cancel_running             # the pool's option
    cdef int pool_wake_fd                # the result thread's wake-up pipe
    cdef uint64_t kill_requests          # slots whose running call cancel() stopped

    def __init__(self, process, channel, max_tasks, bint cancel_running=False,
                 int pool_wake_fd=-1):
        self.process = process
        self.channel = channel
        self.endpoint = channel.endpoint
        self.outbox = self.endpoint.outbox
        self.inbox = self.endpoint.inbox
        self.sentinel = process.sentinel
        self.wake_read_fd = self.endpoint.wake_read_fd
        self.in_flight = 0
        self.claims = self.endpoint.claims
        self.free_slots = (<uint64_t>1 << MAX_IN_FLIGHT) - 1
        self.tasks_left = -1 if max_tasks is None else max_tasks
        self.state = WORKER_SERVING
        self.cancel_running = cancel_running
        self.pool_wake_fd = pool_wake_fd

    @property
    def ready(self):
        """The worker's initializer has succeeded."""
        return self.claims.is_ready()

    # -- its state: read by the result thread, changed only here ------------

    @property
    def serving(self):
        return self.state == WORKER_SERVING

    @property
    def retiring(self):
        return self.state == WORKER_RETIRING

    @property
    def dying(self):
        return self.state == WORKER_DYING

    @property
    def exit_expected(self):
        """Its process may end now without breaking anything: it was told
        to, or its last reply said so, and every call it had is answered."""
        return (self.state == WORKER_RETIRING or self.state == WORKER_LEAVING) \
            and self.in_flight == 0

    cdef inline void retire(self) noexcept:
        # A dying worker stays dying; one told to leave can still retire.
        if self.state == WORKER_SERVING or self.state == WORKER_LEAVING:
            self.state = WORKER_RETIRING

    def tell_to_leave(self):
        """Shutting down: send EXIT to a serving worker.  True when sent (a
        full ring: the next reply brings the result thread back)."""
        if self.state != WORKER_SERVING:
            return False
        if not self.endpoint.send(K_EXIT, 0, b""):
            return False
        self.state = WORKER_LEAVING
        return True

    def start_dying(self, double kill_at):
        """Being killed: takes no more calls.  False when it already is."""
        if self.state == WORKER_DYING:
            return False
        self.state = WORKER_DYING
        self.kill_at = kill_at
        return True

    cdef void request_kill(self, int slot) noexcept:
        """cancel() of the running call in ``slot`` (any thread): the result
        thread kills this worker."""
        self.kill_requests |= <uint64_t>1 << slot
        ffr_wake_fd(self.pool_wake_fd)

    def take_kill_requests(self):
        """The slots whose running call was cancelled since the last look."""
        cdef uint64_t requests = self.kill_requests
        self.kill_requests = 0
        return [slot for slot in range(MAX_IN_FLIGHT) if (requests >> slot) & 1]

    cdef inline bint can_take(self):
        return (self.state == WORKER_SERVING
                and self.tasks_left != 0 and self.in_flight < MAX_IN_FLIGHT)

    cdef inline int take_slot(self) noexcept:
        """A free claim slot, offered.  Only when can_take(): fewer than
        MAX_IN_FLIGHT calls in flight, so one is free."""
        cdef int slot = 0
        while not (self.free_slots >> slot) & 1:
            slot += 1
        self.free_slots &= ~(<uint64_t>1 << slot)
        self.claims.offer(slot)
        return slot

    cdef inline void release_slot(self, int slot) noexcept:
        self.free_slots |= <uint64_t>1 << slot


# The pool's life (PoolCore.state).  Only OPEN takes calls.  SHUT_DOWN:
# shutdown() was called; ABANDONED: the executor was dropped or the
# interpreter exits without it; in both the result thread winds the pool down
# once every call is answered.  BROKEN: every call failed, workers stopped.
cdef enum:
    POOL_OPEN = 0
    POOL_SHUT_DOWN = 1
    POOL_ABANDONED = 2
    POOL_BROKEN = 3


cdef class PoolCore:
    """State shared by a ProcessPoolExecutor and its result thread, with the
    hot paths; process.py's _PoolCore adds the rest (workers, shutting down).

    ``lock`` serialises the slow paths: starting and replacing workers,
    segment-carried sends, breaking and winding down.
    """
    cdef public list workers            # Link
    cdef public object queue            # collections.deque of Call
    cdef public dict tasks              # task id -> Call, for calls in a ring
    cdef public double task_timeout     # the pool's limit per call; 0: none
    cdef public bint any_limits         # a call with a limit was submitted
    cdef public bint cancel_running     # cancel() of a running call kills its worker
    cdef int state                      # POOL_*
    cdef object broken_message
    cdef bint cancel_queued             # shutdown(cancel_futures=True), not done yet
    cdef public bint ready              # submit() may skip the slow path
    cdef public bint workers_changed
    cdef public bint zero_copy
    cdef public object lock
    cdef public object cause            # traceback lines of an unreadable reply
    cdef int64_t next_task_id
    cdef dict fn_cache
    cdef list picklers
    cdef pollfd *fds
    cdef int nfds
    cdef ffr_ctl **rings                # the workers' reply rings
    cdef Py_ssize_t nrings
    cdef int wake_fd
    cdef int wake_write_fd
    # A timed call placed while the result thread sleeps without a deadline
    # must wake it: it counts them (timed_placed), notes the count it has
    # looked at (timed_seen), and says when it sleeps (sleeping_untimed).
    cdef uint64_t timed_placed
    cdef uint64_t timed_seen
    cdef bint sleeping_untimed
    cdef list fd_links                  # per fds[i]: the Link of a sentinel, or None

    def __cinit__(self, *args, **kwargs):
        self.workers = []
        self.tasks = {}
        self.state = POOL_OPEN
        self.fn_cache = {}
        self.picklers = []
        self.fd_links = []
        self.workers_changed = True
        self.wake_fd = -1
        self.wake_write_fd = -1

    def __dealloc__(self):
        PyMem_Free(self.fds)
        PyMem_Free(self.rings)

    # -- submitting ----------------------------------------------------------

    cdef object dumps(self, obj):
        cdef list picklers = self.picklers
        pickler = picklers.pop() if picklers else ReusablePickler()
        result = pickler.dumps(obj)
        if len(picklers) < 4 and pickler.reusable():
            picklers.append(pickler)
        return result

    cdef bytes fn_pickle(self, fn):
        cdef object found = self.fn_cache.get(fn)
        if found is not None:
            return <bytes>found
        data = function_pickle(fn)
        if data is None:
            return EMPTY
        if len(self.fn_cache) >= FN_CACHE_SIZE:
            self.fn_cache.clear()
        self.fn_cache[fn] = data
        return data

    # -- the pool's state: changed only here (lock held) -------------------------

    @property
    def broken(self):
        """False, or the BrokenProcessPool message."""
        return self.broken_message if self.state == POOL_BROKEN else False

    @property
    def winding_down(self):
        return self.state != POOL_OPEN

    def shut_down(self, bint cancel_futures):
        """shutdown(): no more calls; with ``cancel_futures``, the result
        thread cancels what has not started."""
        if self.state != POOL_BROKEN:
            self.state = POOL_SHUT_DOWN
        if cancel_futures:
            self.cancel_queued = True

    def abandon(self):
        """The result thread winds down a pool nobody shut down (its
        executor is gone, or the interpreter exits)."""
        if self.state == POOL_OPEN:
            self.state = POOL_ABANDONED

    def take_cancel_request(self):
        """True once after shutdown(cancel_futures=True)."""
        cdef bint requested = self.cancel_queued
        self.cancel_queued = False
        return requested

    def mark_broken(self, message):
        """The pool is broken (for good).  False when it already was."""
        if self.state == POOL_BROKEN:
            return False
        self.state = POOL_BROKEN
        self.broken_message = message
        return True

    cpdef int check_open(self) except -1:
        if self.state == POOL_BROKEN:
            raise BrokenProcessPool(self.broken_message)
        if self.state == POOL_SHUT_DOWN:
            raise RuntimeError('cannot schedule new futures after shutdown')
        if global_shutdown:
            raise RuntimeError('cannot schedule new futures after '
                               'interpreter shutdown')
        return 0

    def submit(self, fn, tuple args, dict kwargs):
        """submit(fn, *args, **kwargs) of the executor."""
        return self.make_call(fn, args, kwargs, self.task_timeout)

    def submit_limited(self, fn, tuple args, dict kwargs, double limit):
        """submit() with a time limit (seconds; 0: none)."""
        return self.make_call(fn, args, kwargs, limit)

    cdef FutureCore make_call(self, fn, tuple args, dict kwargs, double limit):
        cdef Call call = Call.__new__(Call)
        cdef bytes fn_bytes
        try:
            fn_bytes = self.fn_pickle(fn)
            call.kind = K_CALL
            if not fn_bytes:
                call.rest, call.buffers = self.dumps((fn, args, kwargs))
            elif kwargs:
                call.rest, call.buffers = self.dumps((args, kwargs))
                call.flags = F_WITH_KWARGS
            elif args:
                call.rest, call.buffers = self.dumps(args)
            else:
                call.rest = EMPTY
                call.flags = F_NO_ARGS
            call.fn_bytes = fn_bytes
        except Exception as exc:
            self.check_open()
            return self.failed_future(exc)
        if limit > 0:
            self.limit(call, fn, limit)
        return self.enter(call)

    cdef inline void timed_call_placed(self) noexcept:
        self.timed_placed += 1
        if self.sleeping_untimed:
            ffr_wake_fd(self.wake_write_fd)

    cdef void limit(self, Call call, fn, double limit):
        call.limit = limit
        call.fn = fn
        self.any_limits = True

    def submit_chunk(self, fn, list items, bint star, double limit=-1):
        """A future for ``list(map(fn, items))`` (``starmap`` when ``star``);
        ``limit``: seconds (0: none; -1: the pool's)."""
        cdef Call call = Call.__new__(Call)
        cdef bytes fn_bytes
        try:
            fn_bytes = self.fn_pickle(fn)
            call.kind = K_CHUNK
            call.flags = F_STAR if star else 0
            if fn_bytes:
                call.rest, call.buffers = self.dumps(items)
            else:
                call.rest, call.buffers = self.dumps((fn, items))
            call.fn_bytes = fn_bytes
        except Exception as exc:
            self.check_open()
            return self.failed_future(exc)
        if limit < 0:
            limit = self.task_timeout
        if limit > 0:
            self.limit(call, fn, limit)
        return self.enter(call)

    cdef FutureCore failed_future(self, exc):
        # As the stdlib's queue feeder does: only this future fails.
        cdef FutureCore future = new_future()
        tb = format_exception(type(exc), exc, exc.__traceback__)
        exc.__cause__ = _RemoteTraceback('\n"""\n{}"""'.format(''.join(tb)))
        future.complete(exc, True)
        return future

    cdef FutureCore enter(self, Call call):
        # Allocated first: an allocation can run the GC, whose finalizers can
        # let other threads in (shutdown()) between the check and the queueing.
        cdef FutureCore future = new_pool_future()
        # From here to the end: no Python code unless on the slow path.
        self.check_open()
        call.future = future
        if not self.ready:
            self.slow_submit(call)
        elif self.queue or not self.place(call):
            self.queue.append(call)
            if call.buffers is not None or self.record_size(call) > 0:
                # Nobody else may dispatch it soon (the workers can be idle).
                self.dispatch()
        return future

    cdef inline Py_ssize_t record_size(self, Call call):
        """0 when the call fits a ring record, else its size."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(call.fn_bytes) + PyBytes_GET_SIZE(call.rest)
        cdef Link link
        if self.workers:
            link = self.workers[0]
            if link.outbox.fits(n):
                return 0
        return n + 1

    cdef Link least_loaded(self):
        cdef Link best = None
        cdef Link link
        for link in self.workers:
            if link.can_take() and (best is None or link.in_flight < best.in_flight):
                best = link
        return best

    cdef bint place(self, Call call) except -1:
        """Write a small call into the least loaded worker's ring; False when
        no worker has room (or the call needs a segment).  Runs no Python
        code: the caller's GIL makes it atomic."""
        cdef Link best
        cdef int64_t task_id
        cdef int slot
        if call.buffers is not None or self.record_size(call):
            return False
        best = self.least_loaded()
        if best is None:
            return False
        task_id = self.next_task_id
        slot = best.take_slot()
        if not write_record(best.outbox, call.kind, call.flags, task_id, slot,
                            call.fn_bytes, call.rest):
            best.release_slot(slot)
            return False
        in_ring(call, best, slot)
        self.next_task_id = task_id + 1
        self.tasks[task_id] = call
        if call.limit > 0:
            self.timed_call_placed()
        best.in_flight += 1
        if best.tasks_left > 0:
            best.tasks_left -= 1
        return True

    def dispatch(self):
        """Hand queued calls to workers with room.

        Under the lock: a call taken off the queue is in neither the queue
        nor ``tasks`` until it is placed, and set_running() (a cancelled
        future notifies its waiters) or a segment send runs Python code, so
        other threads can run meanwhile; _break() and _wind_down(), which
        hold the lock, must not look at the pool in that gap."""
        cdef Call call
        cdef int state
        cdef list failed = []
        queue = self.queue
        if not queue:
            return
        with self.lock:
            while queue:
                if self.least_loaded() is None:
                    break
                call = queue.popleft()
                try:
                    state = call.future._state
                    if state != ST_PENDING:
                        # Cancelled while queued: its waiters learn it now.
                        if state == ST_CANCELLED:
                            call.future.set_running()
                        continue
                    if self.place(call):
                        continue
                    if call.buffers is None and not self.record_size(call):
                        queue.appendleft(call)  # the ring is full: the next reply brings us back
                        break
                    if self.send_with_segment(call):
                        continue
                except Exception as exc:
                    # No segment could be made (/dev/shm full...): this call
                    # fails, as one whose arguments cannot be pickled does.
                    failed.append((call.future, exc))
                    continue
                except BaseException:
                    queue.appendleft(call)      # KeyboardInterrupt & co.: not lost
                    raise
                queue.appendleft(call)
                break
        # Outside the lock: completing runs the futures' done-callbacks.
        for future, exc in failed:
            if (<FutureCore>future)._state < ST_CANCELLED:
                (<FutureCore>future).complete(exc, True)

    cdef bint send_with_segment(self, Call call) except -1:
        """A call that needs a buffer segment (lock held).

        The task is registered before the send, which runs Python code:
        place() in other threads must not take its id or its worker's last
        slot meanwhile, and the reply can arrive before send() returns."""
        cdef Link best = self.least_loaded()
        cdef int64_t task_id
        cdef int slot
        cdef bint counted
        cdef bint sent = False
        if best is None:
            return False
        task_id = self.next_task_id
        self.next_task_id = task_id + 1
        slot = best.take_slot()
        in_ring(call, best, slot)
        self.tasks[task_id] = call
        if call.limit > 0:
            self.timed_call_placed()
        best.in_flight += 1
        counted = best.tasks_left > 0
        if counted:
            best.tasks_left -= 1
        try:
            sent = best.endpoint.send(call.kind, task_id, call.fn_bytes + call.rest,
                                      call.buffers, call.flags, len(call.fn_bytes), slot)
        finally:
            if not sent:
                self.tasks.pop(task_id, None)
                left_ring(call)
                best.release_slot(slot)
                best.in_flight -= 1
                if counted:
                    best.tasks_left += 1
        if not sent:
            return False        # its ring is full: the next reply brings us back
        return True

    cdef int slow_submit(self, Call call) except -1:
        self.start(call)
        return 0

    def start(self, Call call):
        """Overridden in process.py: start the result thread and workers,
        then queue and dispatch ``call``."""
        raise NotImplementedError

    def take_all_futures(self):
        """Empty the queue and the task table; return their futures (lock
        held: the pool is broken)."""
        cdef Call call
        cdef list futures = []
        for call in self.tasks.values():
            left_ring(call)
            futures.append(call.future)
        futures.extend([(<Call>call).future for call in self.queue])
        self.tasks.clear()
        self.queue.clear()
        return futures

    def unstarted_futures(self):
        """shutdown(cancel_futures=True): empty the queue; return its
        futures and those of the calls in the workers' rings (lock held).
        Cancelling the latter fails for the calls a worker has claimed."""
        cdef list futures = [(<Call>call).future for call in self.queue]
        self.queue.clear()
        futures.extend([(<Call>call).future for call in self.tasks.values()])
        return futures

    # -- workers that are killed or die (lock held) ----------------------------

    def take_back(self, Link link):
        """``link``'s worker is being killed or has died: take back the
        calls it has not claimed (to the front of the queue, in order; they
        run elsewhere) and return the futures of calls that cancel() stopped
        meanwhile (to notify).  Claimed calls stay until the worker's last
        replies have been read (take_started())."""
        cdef Call call
        cdef list back = []
        cdef list cancelled = []
        cdef Claims claims = link.claims
        for task_id, call in list(self.tasks.items()):
            if call.link is not link:
                continue
            if claims.cancel(call.slot):        # unclaimed: ours again
                back.append(call)
            elif claims.claimed(call.slot):
                continue
            else:                               # cancelled by cancel()
                cancelled.append(call.future)
            del self.tasks[task_id]
            left_ring(call)
            link.in_flight -= 1
        for call in reversed(back):
            self.queue.appendleft(call)
        return cancelled

    def take_started(self, Link link, slots=None):
        """Remove and return the calls ``link``'s worker claimed and did not
        answer (all of them, or those in ``slots``)."""
        cdef Call call
        cdef list started = []
        for task_id, call in list(self.tasks.items()):
            if call.link is link and (slots is None or call.slot in slots):
                del self.tasks[task_id]
                left_ring(call)
                link.in_flight -= 1
                started.append(call)
        return started

    def overdue(self):
        """``(calls, seconds)``: the calls that have run past their limit,
        and how long until the next one could (-1: no call is timed).  A
        timed call that no worker has claimed yet is looked at again soon."""
        cdef Call call
        cdef list late = []
        cdef double now = ff_monotonic()
        cdef double next_check = -1
        cdef double left, started_at
        self.timed_seen = self.timed_placed
        for call in self.tasks.values():
            if call.limit <= 0 or call.link.state == WORKER_DYING:
                continue
            started_at = call.link.claims.started_at(call.slot)
            if started_at > 0 and call.link.claims.claimed(call.slot):
                left = started_at + call.limit - now
                if left <= 0:
                    late.append(call)
                    continue
            else:
                left = min(call.limit, UNCLAIMED_RECHECK_SECONDS)
            if next_check < 0 or left < next_check:
                next_check = left
        return late, next_check

    # -- the result thread -----------------------------------------------------

    def drain(self):
        """Read every reply there is, complete the futures, refill the rings.
        Returns the number of replies; sets ``cause`` (and stops) when a
        reply cannot be read."""
        cdef list done = []
        cdef Py_ssize_t count = 0
        cdef Link link
        for link in list(self.workers):
            count += self.drain_link(link, done)
            if self.cause is not None:
                break
        if count:
            if self.cause is None:
                self.dispatch()
            complete_all(done)
        return count

    def drain_worker(self, Link link):
        """Replies of one worker (that just exited)."""
        cdef list done = []
        cdef Py_ssize_t count = self.drain_link(link, done)
        complete_all(done)
        return count

    cdef Py_ssize_t drain_link(self, Link link, list done) except -1:
        cdef Ring ring = link.inbox
        cdef const char *p
        cdef uint32_t n
        cdef uint64_t consumed
        cdef ffm_header h
        cdef Py_ssize_t count = 0
        cdef bint consumed_already
        cdef object value
        cdef Call call
        while ring._ctl != NULL:
            p = ffr_peek(ring._ctl, ring._data, ring._cap, &n, &consumed)
            if p == NULL:
                break
            memcpy(&h, p, sizeof(h))
            count += 1
            if h.kind == K_RESULT or h.kind == K_EXCEPTION or h.kind == K_RAW_RESULT:
                consumed_already = False
                try:
                    if h.nbuf == 0:
                        if h.flags & F_NONE_RESULT:
                            value = None
                        else:
                            view = PyMemoryView_FromMemory(<char *>p + sizeof(h),
                                                           n - sizeof(h), PyBUF_READ)
                            try:
                                value = loads(view)
                            finally:
                                view.release()
                                view = None
                    else:
                        record = PyBytes_FromStringAndSize(p, n)
                        ffr_consume(ring._ctl, consumed)
                        consumed_already = True
                        value = self.decode_with_segment(link, record)
                        record = None
                except BaseException as exc:
                    # As in the stdlib: a reply that cannot be read breaks the pool.
                    self.cause = format_exception(type(exc), exc, exc.__traceback__)
                    if not consumed_already:
                        ffr_consume(ring._ctl, consumed)
                    break
                if not consumed_already:
                    ffr_consume(ring._ctl, consumed)
                # Only now: the future of an unreadable reply fails with the pool.
                call = self.tasks.pop(h.task_id, None)
                if h.flags & F_WORKER_EXITING:
                    link.retire()
                if call is not None:        # else: taken back from a dying worker
                    left_ring(call)
                    link.kill_requests &= ~(<uint64_t>1 << h.slot)   # it is over
                    link.release_slot(h.slot)
                    link.in_flight -= 1
                    done.append(call.future)
                    done.append(value)
                    done.append(OUTCOME_EXCEPTION if h.kind == K_EXCEPTION else OUTCOME_RESULT)
                value = call = None
            elif h.kind == K_SKIPPED:
                ffr_consume(ring._ctl, consumed)
                call = self.tasks.pop(h.task_id, None)
                if call is not None:
                    left_ring(call)
                    link.release_slot(h.slot)
                    link.in_flight -= 1
                    if link.tasks_left >= 0:
                        link.tasks_left += 1    # not run: it does not count
                    done.append(call.future)
                    done.append(None)
                    done.append(OUTCOME_SKIPPED)
                call = None
            else:
                record = PyBytes_FromStringAndSize(p + sizeof(h), n - sizeof(h))
                ffr_consume(ring._ctl, consumed)
                with self.lock:
                    link.endpoint.handle_control(h.kind, record)
                record = None
        if count and ring._ctl != NULL and ffr_writer_to_wake(ring._ctl):
            ffr_wake_fd(ring._peer_wake_fd)
        if link.endpoint.pending_releases:
            with self.lock:
                link.endpoint.flush_releases()
        return count

    cdef object decode_with_segment(self, Link link, bytes record):
        kind, flags, task_id, fn_len, payload, buffers = link.endpoint.decode(
            record, self.zero_copy)
        if kind == K_RAW_RESULT:
            return payload
        return loads(payload, buffers=buffers)

    def set_wake_fds(self, int read_fd, int write_fd):
        """The result thread's wake-up pipe."""
        self.wake_fd = read_fd
        self.wake_write_fd = write_fd
        self.workers_changed = True

    cdef int rebuild_fds(self) except -1:
        cdef Link link
        cdef Py_ssize_t n = 1 + 2 * len(self.workers)
        cdef pollfd *fds = <pollfd *>PyMem_Realloc(self.fds, n * sizeof(pollfd))
        cdef ffr_ctl **rings
        cdef int i = 1
        if fds == NULL:
            raise MemoryError()
        self.fds = fds
        rings = <ffr_ctl **>PyMem_Realloc(self.rings, n * sizeof(ffr_ctl *))
        if rings == NULL:
            raise MemoryError()
        self.rings = rings
        self.nrings = 0
        for link in self.workers:
            rings[self.nrings] = link.inbox._ctl
            self.nrings += 1
        fds[0].fd = self.wake_fd
        fds[0].events = POLLIN
        self.fd_links = [None]
        for link in self.workers:
            fds[i].fd = link.wake_read_fd
            fds[i].events = POLLIN
            fds[i + 1].fd = link.sentinel
            fds[i + 1].events = POLLIN
            self.fd_links.append(None)
            self.fd_links.append(link)
            i += 2
        self.nfds = i
        self.workers_changed = False
        return 0

    def forget_fds(self):
        """The result thread is done: drop what wait() kept (the Links)."""
        self.fd_links = []
        self.nfds = 0
        self.nrings = 0
        self.workers_changed = True

    @cython.boundscheck(False)     # fd_links has nfds entries (rebuild_fds)
    @cython.wraparound(False)
    def wait(self, double timeout=-1):
        """Sleep until a reply, a wake-up, a worker's exit or ``timeout``
        seconds (-1: no limit).  Returns the Links whose process ended
        (usually none)."""
        cdef Link link
        cdef list links
        cdef Py_ssize_t i, prepared = 0
        cdef bint may_sleep = True
        cdef bint expecting = False
        cdef int r, poll_ms
        if self.workers_changed:
            self.rebuild_fds()
        links = self.workers
        for link in links:
            if link.in_flight > 0:
                expecting = True
        if expecting and RESULT_SPIN_SECONDS > 0:
            with nogil:
                note_gil_released()
                r = spin_until_nonempty(self.rings, self.nrings, RESULT_SPIN_SECONDS)
            if r:
                return []
        for link in links:
            prepared += 1
            if not ffr_reader_prepare_sleep(link.inbox._ctl):
                may_sleep = False
                break
        if not may_sleep:
            poll_ms = 0
        elif timeout >= 0:
            poll_ms = <int>(timeout * 1000) + 1
        elif self.any_limits and self.timed_placed != self.timed_seen:
            poll_ms = 0         # a timed call came since overdue() looked
        else:
            poll_ms = -1
        self.sleeping_untimed = poll_ms < 0
        with nogil:
            note_gil_released()
            r = ffp_poll(self.fds, self.nfds, poll_ms)
        self.sleeping_untimed = False
        for i in range(prepared):
            ffr_reader_awake((<Link>links[i]).inbox._ctl)
        fired = []
        if r <= 0:
            return fired
        for i in range(self.nfds):
            if self.fds[i].revents:
                link = self.fd_links[i]
                if link is None:
                    drain_pipe(self.fds[i].fd)
                else:
                    fired.append(link)
        return fired


# ---------------------------------------------------------------------------
# The worker


cdef class WorkerLoop:
    """A worker's serve loop: read requests, claim them, run them, reply."""
    cdef object endpoint
    cdef Ring inbox
    cdef Ring outbox
    cdef Claims claims
    cdef object sleep           # blocks until woken; raises when the parent is gone
    cdef object max_tasks
    cdef long long tasks_done
    cdef dict functions         # function pickle -> function
    cdef object pickler

    def __init__(self, endpoint, sleep, max_tasks):
        self.endpoint = endpoint
        self.inbox = endpoint.inbox
        self.outbox = endpoint.outbox
        self.claims = endpoint.claims
        self.sleep = sleep
        self.max_tasks = max_tasks
        self.functions = {}
        self.pickler = ReusablePickler()

    def serve(self):
        cdef Ring inbox = self.inbox
        cdef const char *p
        cdef uint32_t n
        cdef uint64_t consumed
        cdef ffm_header h
        cdef bint got
        cdef object payload, buffers
        while True:
            p = ffr_peek(inbox._ctl, inbox._data, inbox._cap, &n, &consumed)
            if p == NULL:
                if self.endpoint.pending_releases:
                    self.endpoint.flush_releases()
                with nogil:
                    got = spin_until_nonempty(&inbox._ctl, 1, WORKER_SPIN_SECONDS)
                if got:
                    continue
                if ffr_reader_prepare_sleep(inbox._ctl):
                    try:
                        self.sleep()
                    finally:
                        ffr_reader_awake(inbox._ctl)
                else:
                    ffr_reader_awake(inbox._ctl)
                continue
            memcpy(&h, p, sizeof(h))
            buffers = None
            if ((h.kind == K_CALL or h.kind == K_CHUNK)
                    and not self.claims.claim(h.slot)):
                ffr_consume(inbox._ctl, consumed)
                self.skip(h)
                continue
            if h.nbuf == 0:
                payload = PyBytes_FromStringAndSize(p + sizeof(h), n - sizeof(h))
                ffr_consume(inbox._ctl, consumed)
            else:
                record = PyBytes_FromStringAndSize(p, n)
                ffr_consume(inbox._ctl, consumed)
                _, _, _, _, payload, buffers = self.endpoint.decode(record)
                record = None
            if ffr_writer_to_wake(inbox._ctl):
                ffr_wake_fd(inbox._peer_wake_fd)
            if h.kind == K_CALL or h.kind == K_CHUNK:
                self.tasks_done += 1
                exiting = self.max_tasks is not None and self.tasks_done >= self.max_tasks
                self.run(h, payload, buffers, exiting)
                payload = buffers = None
                if exiting:
                    return
            elif h.kind == K_EXIT:
                return
            else:
                self.endpoint.handle_control(h.kind, bytes(payload))

    cdef int skip(self, ffm_header h) except -1:
        """A call cancelled before we claimed it: not run, its segment (if
        any) handed back unread."""
        if ffr_writer_to_wake(self.inbox._ctl):
            ffr_wake_fd(self.inbox._peer_wake_fd)
        if h.nbuf:
            self.endpoint.peer_segments.get(h.seg_id)   # keeps the fd socket in step
            self.endpoint.pending_releases.append(h.seg_id)
        self.reply(K_SKIPPED, h.task_id, h.slot, None, 0)
        return 0

    cdef object function(self, payload, Py_ssize_t fn_len):
        key = bytes(payload[:fn_len])
        fn = self.functions.get(key)
        if fn is None:
            fn = loads(key)
            if len(self.functions) >= FN_CACHE_SIZE:
                self.functions.clear()
            self.functions[key] = fn
        return fn

    cdef int run(self, ffm_header h, payload, buffers, bint exiting) except -1:
        cdef Py_ssize_t fn_len = h.fn_len
        cdef uint8_t flags = F_WORKER_EXITING if exiting else 0
        cdef object fn, args, kwargs = None
        # Unpickling errors propagate: the worker dies and the pool breaks,
        # as in the stdlib.
        if fn_len:
            fn = self.function(payload, fn_len)
            if h.flags & F_NO_ARGS:
                args = ()
            elif h.kind == K_CALL and h.flags & F_WITH_KWARGS:
                args, kwargs = loads(memoryview(payload)[fn_len:], buffers=buffers)
            else:
                args = loads(memoryview(payload)[fn_len:], buffers=buffers)
        elif h.kind == K_CALL:
            fn, args, kwargs = loads(payload, buffers=buffers)
        else:
            fn, args = loads(payload, buffers=buffers)
        payload = buffers = None
        self.claims.started(h.slot, ff_monotonic())
        try:
            if h.kind == K_CHUNK:
                result = list(starmap(fn, args) if h.flags & F_STAR else map(fn, args))
            elif kwargs:
                result = fn(*args, **kwargs)
            else:
                result = fn(*args)
        except BaseException as exc:
            fn = args = kwargs = None
            self.reply(K_EXCEPTION, h.task_id, h.slot,
                       _ExceptionWithTraceback(exc, exc.__traceback__), flags)
            exc = None
        else:
            fn = args = kwargs = None
            self.reply(K_RESULT, h.task_id, h.slot, result, flags)
        return 0

    cdef int reply(self, uint8_t kind, int64_t task_id, uint32_t slot, value,
                   uint8_t flags) except -1:
        cdef bytes payload
        cdef object buffers = None
        cdef Ring outbox = self.outbox
        if kind == K_SKIPPED:
            payload = EMPTY
        elif kind == K_RESULT and value is None:
            payload = EMPTY
            flags |= F_NONE_RESULT
        elif (kind == K_RESULT and type(value) is bytes
                and len(<bytes>value) >= transport.OOB_THRESHOLD):
            # The whole result is one big bytes: send it raw, as a buffer.
            kind = K_RAW_RESULT
            payload = EMPTY
            buffers = [memoryview(value)]
        else:
            try:
                payload, buffers = self.pickler.dumps(value)
            except BaseException as exc:
                kind = K_EXCEPTION
                self.pickler = ReusablePickler()
                payload, buffers = self.pickler.dumps(
                    _ExceptionWithTraceback(exc, exc.__traceback__))
                exc = None
        value = None
        while True:
            if buffers is None and outbox.fits(len(payload)):
                if write_record(outbox, kind, flags, task_id, slot, EMPTY, payload):
                    return 0
            elif self.endpoint.send(kind, task_id, payload, buffers, flags, 0, slot):
                return 0
            # The parent is behind: wait for room in the reply ring.
            if ffr_writer_prepare_wait(outbox._ctl, outbox._cap,
                                       min(len(payload) + 256, outbox.max_record)):
                self.sleep()
