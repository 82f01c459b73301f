# Included by _process_core.pyx: which worker gets a call, and when calls
# handed to a worker ahead of time move to another one.

# A call whose function has run this long (and at least STALL_MEAN_FACTOR
# times the pool's mean run time) stalls its worker: the calls waiting behind
# it in its ring go back to the pool's queue, for the other workers.  Seconds.
cdef double STALL_MIN_SECONDS = 0.001
cdef double STALL_MEAN_FACTOR = 2.0

# Calls no longer than this on average (seconds) are handed out MAX_IN_FLIGHT
# at a time; longer ones READ_AHEAD_LONG at a time (one running, one ready:
# the worker never waits for the result thread, and at most one call waits
# behind a long one until it is taken back).
cdef double SHORT_CALL_SECONDS = 200e-6
cdef int READ_AHEAD_LONG = 2


cdef list EMPTY_LIST = []


cdef class Scheduler:
    """Chooses the worker for each call, and takes back calls stuck behind
    a long one.

    Why this design: a worker's ring holds calls handed to it ahead of time,
    so that a stream of short calls never waits for a wake-up of the result
    thread (the no-op throughput of the pool).  Ahead of time, nobody knows
    how long a call runs, so a call can end up behind a long one while
    another worker idles.  Rather than one shared claim queue (every worker
    contending on one cache line per call) or stealing by the workers (the
    parent's task table would have to follow), the parent moves the calls:
    an unclaimed call can be taken back at any time with the compare-and-swap
    of its claim slot (the one cancel() uses), and placed elsewhere.

    - How far ahead: MAX_IN_FLIGHT calls per worker while calls are short
      (mean run time <= SHORT_CALL_SECONDS, measured by the workers and read
      with the replies; a stall counts as a run at least that long),
      READ_AHEAD_LONG otherwise.
    - Stalled: a worker whose current call has run longer than
      max(STALL_MIN_SECONDS, STALL_MEAN_FACTOR x the mean) gets no new call
      while another worker can take one, and its unclaimed calls are taken
      back (front of the queue, in order) to run elsewhere -- as soon as
      another worker can take them.  Its next reply ends the stall.
    - The chosen worker is the least loaded one that is not stalled; when
      every worker is stalled, calls wait in the pool's queue (the stdlib's
      guarantee: a call waits only while every worker is busy).

    Calls taken back after a kill or from a replaced worker go through the
    same queue, so they spread over every worker that can take them.
    (Fields: _process_core.pxd.)"""
    def __cinit__(self):
        self.read_ahead = MAX_IN_FLIGHT

    cdef void note_run(self, double seconds) noexcept:
        """A call ran for ``seconds`` (measured at its reply)."""
        if seconds < 0:
            return
        if self.mean_run == 0:
            self.mean_run = seconds
        else:
            self.mean_run += (seconds - self.mean_run) * 0.125
        self.read_ahead = MAX_IN_FLIGHT if self.mean_run <= SHORT_CALL_SECONDS else READ_AHEAD_LONG

    cdef void note_stall(self, double seconds) noexcept:
        """A call has run ``seconds`` and goes on: calls are long now, whatever
        the mean said (a kill leaves no reply to measure)."""
        if seconds > self.mean_run:
            self.mean_run = seconds
            self.read_ahead = MAX_IN_FLIGHT if seconds <= SHORT_CALL_SECONDS else READ_AHEAD_LONG

    cdef double stall_after(self) noexcept:
        return max(STALL_MIN_SECONDS, STALL_MEAN_FACTOR * self.mean_run)

    cdef bint may_take(self, WorkerHandle worker) noexcept:
        return worker.can_take() and not worker.stalled and worker.in_flight < self.read_ahead

    cdef WorkerHandle choose(self, list workers):
        """The worker for the next call, or None (it waits in the queue)."""
        cdef WorkerHandle best = None
        cdef WorkerHandle worker
        for worker in workers:
            if self.may_take(worker) and (best is None or worker.in_flight < best.in_flight):
                best = worker
        return best

    cdef bint any_ready_taker(self, list workers) noexcept:
        """A worker past its start could take a call now (moving calls to
        a worker that is still starting gains nothing)."""
        cdef WorkerHandle worker
        for worker in workers:
            if self.may_take(worker) and worker.claims.is_ready():
                return True
        return False

    cdef tuple find_stalled(self, list workers):
        """``(victims, seconds)``: the workers to take unclaimed calls back
        from now, and how long until another worker could stall (-1: none
        can).  A worker running a long call is marked stalled (no new
        calls); one still starting is a victim only while a worker past
        its start could take its calls, so that calls move only to where
        they can run now."""
        cdef WorkerHandle worker
        cdef list candidates = None
        cdef double now = 0, since, left
        cdef double threshold = self.stall_after()
        cdef double next_check = -1
        for worker in workers:
            if not worker.takes_calls() or worker.in_flight == 0:
                continue
            since = worker.busy_since()
            if since <= 0:
                # About to claim one: look again once it could have stalled
                # (its claim wakes nobody).
                next_check = earliest(next_check, threshold)
                continue
            if now == 0:
                now = ff_monotonic()
            left = since + threshold - now
            if left > 0:
                next_check = earliest(next_check, left)
                continue
            if worker.claims.is_ready() and not worker.stalled:
                worker.stalled = True
                self.note_stall(now - since)
            if worker.has_unclaimed():
                if candidates is None:
                    candidates = []
                candidates.append(worker)
        if candidates is None or not self.any_ready_taker(workers):
            return EMPTY_LIST, next_check
        for worker in candidates:
            worker.stalled = True
        return candidates, next_check
