# The process pool's compiled parts and their interfaces (the code is in
# _process_core.pyx and the .pxi files it includes, one part each).
#
#   PoolCore       the pool: its state, its workers and queue, submit, the
#                  result thread's loop; wires the parts below
#   CallEncoder    a call -> the bytes a worker reads (function cache, picklers)
#   Scheduler      which worker gets a call; taking calls back from stalled ones
#   LimitPolicy    per-call time limits and kills on cancel(): what is overdue
#   WaitSet        what the result thread sleeps on; owns the wake-up pipe
#   WorkerHandle   a worker as the parent sees it: its state, its claim slots
#                  and the calls in its ring, by slot
#   Call           one pickled call; PoolFutureCore: its future
#   WorkerLoop     the worker's side: read, claim, run, reply
cimport cython
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t

from ._future cimport FutureCore
from ._shm cimport Ring, Claims, ffr_ctl, ffm_header

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


@cython.final
@cython.no_gc       # nothing a Call refers to can refer back to it: no cycle
cdef class Call:
    cdef readonly FutureCore future
    cdef uint8_t kind
    cdef uint8_t flags
    cdef bytes fn_bytes             # the function's own pickle, or b"" (inside rest)
    cdef bytes rest
    cdef object buffers             # None, or out-of-band buffers for a segment
    cdef readonly double limit      # seconds it may run; 0: no limit
    cdef readonly object fn         # kept for a time limit's message
    cdef readonly WorkerHandle worker   # the worker whose ring holds it, or None
    cdef readonly int slot          # its claim slot there
    cdef readonly int64_t task_id   # its id in that ring's records


cdef class PoolFutureCore(FutureCore):
    cdef WorkerHandle worker        # None unless the call is in a worker's ring
    cdef int slot


@cython.final
cdef class WorkerHandle:
    cdef readonly object process
    cdef object channel
    cdef object endpoint
    cdef int sentinel
    cdef int wake_read_fd
    cdef Ring outbox
    cdef Ring inbox
    cdef Claims claims
    cdef WaitSet waitset                # the result thread's: request_kill() wakes it
    cdef int state                      # WORKER_*
    cdef int state_before_hold          # HELD: the state it goes back to
    cdef long long tasks_left           # calls it may still be given; -1: unlimited
    cdef double kill_at                 # sent SIGTERM: when to SIGKILL it (0: not stopping)
    cdef bint cancel_running            # the pool's option
    cdef uint64_t kill_requests         # slots whose running call cancel() stopped
    cdef bint stalled                   # busy with a long call: gets no calls (Scheduler)
    cdef double created_at              # when the pool added it (ff_monotonic)
    # Its claim slots.  Each is free (bit in free_slots), stale (bit in
    # stale_slots: taken back, its record still in the ring, free once the
    # worker skips it) or occupied (calls[slot] is its Call) -- exactly one
    # of the three; in_flight counts the occupied ones (check_slots()).
    cdef uint64_t free_slots
    cdef uint64_t stale_slots
    cdef list calls
    cdef readonly int in_flight

    # what it is
    cdef bint takes_calls(self) noexcept
    cdef bint can_take(self) noexcept
    cdef bint exit_expected(self) noexcept
    cdef bint has_begun(self) noexcept
    cdef double busy_since(self) noexcept
    cdef bint has_unclaimed(self) noexcept
    # its state's transitions
    cdef void served(self) noexcept
    cdef void retire(self) noexcept
    cdef bint hold(self) noexcept
    cdef void release_hold(self) noexcept
    cdef bint tell_to_leave(self) except -1
    cdef bint start_dying(self, double kill_at) except -1
    cdef bint terminate(self, double kill_at) except -1
    cdef double kill_if_due(self, double now) except -2
    cdef int bury(self) except -1
    # its slots
    cdef uint64_t occupied_slots(self) noexcept
    cdef void check_slots(self) noexcept
    cdef void request_kill(self, int slot) noexcept
    cdef uint64_t take_kill_requests(self) noexcept
    cdef int take_slot(self) noexcept
    cdef void release_slot(self, int slot, bint ran) noexcept
    cdef void release_stale_slot(self, int slot) noexcept
    cdef void skipped(self, int slot) noexcept
    # the calls in its ring
    cdef int put(self, Call call, int64_t task_id) except -1
    cdef void unput(self, int slot) noexcept
    cdef Call answered(self, uint32_t slot, int64_t task_id, bint ran)
    cdef int take_back(self, list back, list cancelled) except -1
    cdef list take_started(self, uint64_t slots)
    cdef list take_all(self)
    cdef bint runs_any(self, uint64_t slots) noexcept
    cdef Call first_pending(self)


@cython.final
cdef class CallEncoder:
    cdef dict fn_cache                  # function -> its pickle (bounded)
    cdef list picklers                  # free list of ReusablePickler

    cdef object dumps(self, obj)
    cdef bytes fn_pickle(self, fn)
    cdef Call call(self, fn, tuple args, dict kwargs)
    cdef Call chunk(self, fn, list items, bint star)


@cython.final
cdef class Scheduler:
    cdef double mean_run                # seconds, moving average of run times; 0: unknown
    cdef int read_ahead                 # calls handed to one worker at most

    cdef void note_run(self, double seconds) noexcept
    cdef void note_stall(self, double seconds) noexcept
    cdef double stall_after(self) noexcept
    cdef bint may_take(self, WorkerHandle worker) noexcept
    cdef WorkerHandle choose(self, list workers)
    cdef bint any_ready_taker(self, list workers) noexcept
    cdef tuple find_stalled(self, list workers)


@cython.final
cdef class LimitPolicy:
    cdef readonly double task_timeout   # the pool's limit per call; 0: none
    cdef readonly bint cancel_running   # cancel() of a running call kills its worker
    cdef bint any_limits                # a call with a limit was submitted
    # A timed call placed while the result thread sleeps past the time it
    # must look at it wakes it; it counts them (timed_placed) and notes the
    # count overdue() has looked at (timed_seen).
    cdef uint64_t timed_placed
    cdef uint64_t timed_seen

    cdef bint active(self) noexcept
    cdef void limit(self, Call call, fn, double limit) noexcept
    cdef void placed(self, Call call, WaitSet waitset) noexcept
    cdef bint unseen(self) noexcept
    cdef tuple overdue(self, list workers)


@cython.final
cdef class WaitSet:
    cdef pollfd *fds                    # [0]: wake-up pipe; then per worker: ring fd, sentinel
    cdef int nfds
    cdef list fd_workers                # per fds[i]: the handle of a sentinel, or None
    cdef ffr_ctl **rings                # the workers' reply rings (spun on before poll)
    cdef Py_ssize_t nrings
    cdef int wake_fd
    cdef int wake_write_fd
    cdef bint pipe_closed
    cdef bint changed                   # the workers changed: rebuild before the next wait
    cdef double sleeping_until          # ff_monotonic(); 0: awake; INFINITY: no limit

    cpdef void wake(self) noexcept
    cdef bint sleeps_past(self, double seconds) noexcept
    cdef int rebuild(self, list workers) except -1
    cdef int forget(self) except -1
    cdef list wait(self, list workers, double timeout, LimitPolicy limits)


cdef class PoolCore:
    # Configuration
    cdef int max_workers
    cdef object max_tasks_per_child
    cdef bint dynamic_spawning          # a worker per call up to max_workers (not fork)
    cdef bint zero_copy
    cdef bint replace_dead              # on_worker_death="replace"
    # State
    cdef int state                      # POOL_*
    cdef object broken_message
    cdef bint cancel_queued             # shutdown(cancel_futures=True), not done yet
    cdef bint executor_collected
    cdef bint started                   # the result thread runs
    cdef bint ready                     # every worker spawned: submit() may skip the slow path
    cdef readonly object lock
    cdef list workers                   # WorkerHandle, in no state but DEAD
    cdef object queue                   # collections.deque of Call not in a ring
    cdef int64_t next_task_id
    cdef object cause                   # traceback lines of an unreadable reply
    # Parts
    cdef CallEncoder encoder
    cdef Scheduler scheduler
    cdef LimitPolicy limits
    cdef WaitSet waitset

    cdef bint should_wind_down(self) noexcept
    cdef bint mark_broken(self, message) except -1
    cpdef int check_open(self) except -1
    # submitting
    cdef FutureCore make_call(self, fn, tuple args, dict kwargs, double limit)
    cdef FutureCore failed_future(self, exc)
    cdef FutureCore enter(self, Call call)
    cdef Py_ssize_t record_size(self, Call call)
    cdef WorkerHandle least_loaded(self)
    cdef bint place(self, Call call) except -1
    cdef int dispatch(self) except -1
    cdef bint send_with_segment(self, Call call) except -1
    cdef int slow_submit(self, Call call) except -1
    cdef bint has_idle_worker(self)
    # workers and calls (lock held)
    cdef list take_workers(self)
    cdef int remove_worker(self, WorkerHandle worker) except -1
    cdef bint any_in_ring(self) noexcept
    cdef list take_all_futures(self)
    cdef list take_unstarted(self)
    cdef list take_back(self, WorkerHandle worker)
    # the result thread
    cdef bint wind_down(self) except -1
    cdef bint worker_exited(self, WorkerHandle worker) except -1
    cdef bint replace(self, WorkerHandle worker) except -1
    cdef bint any_kill_due(self) noexcept
    cdef double rebalance(self) except? -2
    cdef double enforce_limits(self) except? -2
    cdef int kill_worker(self, WorkerHandle worker, Call timed_out,
                         uint64_t cancelled_slots) except -1
    cdef int break_pool(self, cause, message=*) except -1
    cdef Py_ssize_t drain(self) except -1
    cdef Py_ssize_t drain_worker(self, WorkerHandle worker) except -1
    cdef Py_ssize_t drain_worker_replies(self, WorkerHandle worker, list done) except -1
    cdef object decode_with_segment(self, WorkerHandle worker, bytes record)


cdef class WorkerLoop:
    cdef object endpoint
    cdef Ring inbox
    cdef Ring outbox
    cdef Claims claims
    cdef object sleep                   # blocks until woken; raises when the parent is gone
    cdef object max_tasks
    cdef long long tasks_done
    cdef dict functions                 # function pickle -> function
    cdef object pickler

    cdef int skip(self, ffm_header h) except -1
    cdef object function(self, payload, Py_ssize_t fn_len)
    cdef int run(self, ffm_header h, payload, buffers, bint exiting) except -1
    cdef int reply(self, uint8_t kind, int64_t task_id, uint32_t slot, value,
                   uint8_t flags) except -1
