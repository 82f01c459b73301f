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


@cython.final
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
    same queue, so they spread over every worker that can take them."""
    cdef double mean_run            # seconds, exponential moving average; 0: unknown
    cdef int read_ahead             # calls handed to one worker at most

    def __cinit__(self):
        self.read_ahead = MAX_IN_FLIGHT

    cdef inline void note_run(self, double seconds) noexcept:
        """A call ran for ``seconds`` (measured at its reply)."""
        if seconds < 0:
            return
        if self.mean_run == 0:
            self.mean_run = seconds
        else:
            self.mean_run += (seconds - self.mean_run) * 0.125
        self.read_ahead = MAX_IN_FLIGHT if self.mean_run <= SHORT_CALL_SECONDS else READ_AHEAD_LONG

    cdef inline void note_stall(self, double seconds) noexcept:
        """A call has run ``seconds`` and goes on: calls are long now, whatever
        the mean said (a kill leaves no reply to measure)."""
        if seconds > self.mean_run:
            self.mean_run = seconds
            self.read_ahead = MAX_IN_FLIGHT if seconds <= SHORT_CALL_SECONDS else READ_AHEAD_LONG

    cdef inline double stall_after(self) noexcept:
        return max(STALL_MIN_SECONDS, STALL_MEAN_FACTOR * self.mean_run)

    cdef inline bint may_take(self, Link link) noexcept:
        return link.can_take() and not link.stalled and link.in_flight < self.read_ahead

    cdef Link choose(self, list workers):
        """The worker for the next call, or None (it waits in the queue)."""
        cdef Link best = None
        cdef Link link
        for link in workers:
            if self.may_take(link) and (best is None or link.in_flight < best.in_flight):
                best = link
        return best

    cdef bint any_ready_taker(self, list workers) noexcept:
        """A worker past its start could take a call now (moving calls to
        a worker that is still starting gains nothing)."""
        cdef Link link
        for link in workers:
            if self.may_take(link) and link.claims.is_ready():
                return True
        return False

    cdef tuple find_stalled(self, list workers):
        """``(victims, seconds)``: the workers to take unclaimed calls back
        from now, and how long until another worker could stall (-1: none
        can).  A worker running a long call is marked stalled (no new
        calls); one still starting is a victim only while a worker past
        its start could take its calls, so that calls move only to where
        they can run now."""
        cdef Link link
        cdef list candidates = None
        cdef double now = 0, since, left
        cdef double threshold = self.stall_after()
        cdef double next_check = -1
        for link in workers:
            if not link.takes_calls() or link.in_flight == 0:
                continue
            since = link.busy_since()
            if since <= 0:
                continue        # about to claim one
            if now == 0:
                now = ff_monotonic()
            left = since + threshold - now
            if left > 0:
                next_check = earliest(next_check, left)
                continue
            if link.claims.is_ready() and not link.stalled:
                link.stalled = True
                self.note_stall(now - since)
            if link.has_unclaimed():
                if candidates is None:
                    candidates = []
                candidates.append(link)
        if candidates is None or not self.any_ready_taker(workers):
            return EMPTY_LIST, next_check
        for link in candidates:
            link.stalled = True
        return candidates, next_check
