# Included by _process_core.pyx: per-call time limits and kills on cancel().

cdef class LimitPolicy:
    """Which running calls must be stopped, and when to look again (fields:
    _process_core.pxd).  The pool does the stopping (kill_worker()).

    A call's limit counts from the moment its function starts in the worker
    (the claim slot's start time); a timed call no worker has claimed yet is
    looked at again every UNCLAIMED_RECHECK_SECONDS.  A timed call placed
    while the result thread sleeps longer than that wakes it (placed())."""

    def __cinit__(self, double task_timeout, bint cancel_running):
        self.task_timeout = task_timeout
        self.cancel_running = cancel_running

    cdef bint active(self) noexcept:
        return self.any_limits or self.cancel_running

    cdef void limit(self, Call call, fn, double limit) noexcept:
        """``call`` may run ``limit`` seconds (> 0)."""
        call.limit = limit
        call.fn = fn
        self.any_limits = True

    cdef void placed(self, Call call, WaitSet waitset) noexcept:
        """``call`` was written into a worker's ring."""
        if call.limit > 0:
            self.timed_placed += 1
            if waitset.sleeps_past(UNCLAIMED_RECHECK_SECONDS):
                waitset.wake()

    cdef bint unseen(self) noexcept:
        """A timed call was placed since overdue() last looked."""
        return self.any_limits and self.timed_placed != self.timed_seen

    cdef tuple overdue(self, list workers):
        """``(calls, seconds)``: the calls that have run past their limit,
        and how long until the next one could (-1: no call is timed)."""
        cdef WorkerHandle worker
        cdef Call call
        cdef list late = []
        cdef double now = ff_monotonic()
        cdef double next_check = -1
        cdef double left, started_at
        self.timed_seen = self.timed_placed
        for worker in workers:
            if worker.state == WORKER_DYING or worker.in_flight == 0:
                continue
            for call in worker.calls:
                if call is None or call.limit <= 0:
                    continue
                started_at = worker.claims.started_at(call.slot)
                if started_at > 0 and worker.claims.claimed(call.slot):
                    left = started_at + call.limit - now
                    if left <= 0:
                        late.append(call)
                        continue
                else:
                    left = min(call.limit, UNCLAIMED_RECHECK_SECONDS)
                next_check = earliest(next_check, left)
        return late, next_check
