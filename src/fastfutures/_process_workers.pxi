# Included by _process_core.pyx: a worker as the parent sees it.

# A worker's life (Link.state), changed only by Link's methods below, which
# the pool calls with its lock held, or from the result thread's reading of
# replies (served(), retire(): the GIL alone):
#
#   STARTING --first claim or reply seen--> SERVING
#   STARTING, SERVING --shutdown: EXIT sent--> LEAVING
#   STARTING, SERVING, LEAVING --its reply says it exits (max_tasks_per_child)--> RETIRING
#   any of the above --a kill is being decided (time limit, cancel_running)--> HELD
#   HELD --the call to stop had already ended--> back to the state it was in
#   any of the above, HELD --killed, or died alone--> DYING
#   any --its process has ended and its replies are read--> DEAD (out of the pool)
#
# STARTING and SERVING take calls (idle or busy: in_flight); LEAVING,
# RETIRING and DYING end with the process exiting, which the pool expects
# (in "break" mode an exit it does not expect breaks the pool).  HELD lasts
# only inside the result thread's kill_worker().
cdef enum:
    WORKER_STARTING = 0
    WORKER_SERVING = 1
    WORKER_LEAVING = 2
    WORKER_RETIRING = 3
    WORKER_HELD = 4
    WORKER_DYING = 5
    WORKER_DEAD = 6


@cython.final
cdef class Link:
    """A worker process, the parent's end of its channel, and its state."""
    cdef readonly object process
    cdef object channel
    cdef object endpoint
    cdef int sentinel
    cdef int wake_read_fd
    cdef Ring outbox
    cdef Ring inbox
    cdef Claims claims
    cdef int state                      # WORKER_*
    cdef int state_before_hold          # HELD: the state it goes back to
    cdef readonly int in_flight         # calls in its ring, claimed or not
    cdef uint64_t free_slots            # bit i set: claim slot i is free
    cdef long long tasks_left           # calls it may still be given; -1: unlimited
    cdef double kill_at                 # sent SIGTERM: when to SIGKILL it (0: not stopping)
    cdef bint cancel_running            # the pool's option
    cdef int pool_wake_fd               # the result thread's wake-up pipe
    cdef uint64_t kill_requests         # slots whose running call cancel() stopped
    cdef uint64_t stale_slots           # taken back, record still in its ring: free once SKIPPED
    # Slots: each of the MAX_IN_FLIGHT claim slots is free (bit in
    # free_slots), stale (bit in stale_slots) or occupied by a call in its
    # ring (neither bit) -- never two at once (check_slots()).
    cdef bint stalled                   # busy with a long call: gets no calls (see Scheduler)
    cdef double created_at              # when the pool added it (ff_monotonic)

    def __cinit__(self, process, channel, max_tasks, bint cancel_running, int pool_wake_fd):
        self.process = process
        self.channel = channel
        self.endpoint = channel.endpoint
        self.outbox = self.endpoint.outbox
        self.inbox = self.endpoint.inbox
        self.claims = self.endpoint.claims
        self.sentinel = process.sentinel
        self.wake_read_fd = self.endpoint.wake_read_fd
        self.state = WORKER_STARTING
        self.free_slots = (<uint64_t>1 << MAX_IN_FLIGHT) - 1
        self.tasks_left = -1 if max_tasks is None else max_tasks
        self.cancel_running = cancel_running
        self.pool_wake_fd = pool_wake_fd
        self.created_at = ff_monotonic()

    def __repr__(self):
        return (f"<Link pid={self.process.pid} state={self.state} "
                f"in_flight={self.in_flight}>")

    @property
    def ready(self):
        """The worker's initializer has succeeded."""
        return self.claims.is_ready()

    # -- what it is -----------------------------------------------------------

    cdef inline bint takes_calls(self) noexcept:
        return self.state <= WORKER_SERVING

    cdef inline bint can_take(self) noexcept:
        return (self.state <= WORKER_SERVING
                and self.tasks_left != 0 and self.free_slots != 0)

    cdef inline bint exit_expected(self) noexcept:
        """Its process may end now without breaking anything: it was told
        to, or its last reply said so, and every call it had is answered."""
        return (self.state == WORKER_LEAVING or self.state == WORKER_RETIRING) \
            and self.in_flight == 0

    cdef bint has_begun(self) noexcept:
        """Past its start: it has claimed or answered a call.  (STARTING ->
        SERVING when a claim is seen here, or a reply in served().)"""
        cdef int slot
        if self.state != WORKER_STARTING:
            return True
        for slot in range(MAX_IN_FLIGHT):
            if not (self.free_slots >> slot) & 1 and self.claims.claimed(slot):
                self.state = WORKER_SERVING
                return True
        return False

    # -- transitions ----------------------------------------------------------

    cdef inline void served(self) noexcept:
        """A reply was read from it: whatever it was stalled on is over."""
        self.stalled = False
        if self.state == WORKER_STARTING:
            self.state = WORKER_SERVING
        elif self.state == WORKER_HELD and self.state_before_hold == WORKER_STARTING:
            self.state_before_hold = WORKER_SERVING

    cdef inline void retire(self) noexcept:
        """Its reply says it exits after it (max_tasks_per_child).  A dying
        worker stays dying."""
        if self.state <= WORKER_LEAVING:
            self.state = WORKER_RETIRING
        elif self.state == WORKER_HELD:
            self.state_before_hold = WORKER_RETIRING

    cdef inline bint hold(self) noexcept:
        """A kill is being decided: it takes no calls meanwhile.  False
        when it is already dying."""
        if self.state >= WORKER_HELD:
            return False
        self.state_before_hold = self.state
        self.state = WORKER_HELD
        return True

    cdef inline void release_hold(self) noexcept:
        """Not killed after all."""
        FF_ASSERT(self.state == WORKER_HELD)
        self.state = self.state_before_hold

    cdef bint tell_to_leave(self) except -1:
        """Shutting down: send EXIT to a worker that takes calls.  True when
        sent (a full ring: the next reply brings the result thread back)."""
        if not self.takes_calls():
            return False
        FF_ASSERT(self.in_flight == 0)     # only once every call is answered
        if not self.endpoint.send(K_EXIT, 0, b""):
            return False
        self.state = WORKER_LEAVING
        return True

    cdef bint start_dying(self, double kill_at) except -1:
        """Being killed: SIGTERM now, SIGKILL at ``kill_at`` if it is still
        there; takes no more calls.  False when it already is dying."""
        if self.state == WORKER_DYING or self.state == WORKER_DEAD:
            return False
        self.state = WORKER_DYING
        self.kill_at = kill_at
        try:
            self.process.terminate()
        except (ProcessLookupError, ValueError):
            pass
        return True

    cdef bint terminate(self, double kill_at) except -1:
        """terminate_workers(): SIGTERM now, SIGKILL at ``kill_at`` if it is
        still there (its state is left as it is: its exit breaks the pool,
        as in the stdlib).  False when it has already exited."""
        if self.process.exitcode is not None:
            return False
        try:
            self.process.terminate()
        except (ProcessLookupError, ValueError):
            return False
        if not self.kill_at or kill_at < self.kill_at:
            self.kill_at = kill_at
        return True

    cdef double kill_if_due(self, double now) except -2:
        """A worker sent SIGTERM (start_dying(), terminate()): SIGKILL it
        when its grace period is over.  Returns the seconds left until then
        (-1: nothing more to do)."""
        cdef double left
        if not self.kill_at or self.process.exitcode is not None:
            return -1
        left = self.kill_at - now
        if left > 0:
            return left
        self.process.kill()
        self.kill_at = 0
        return -1

    cdef int bury(self) except -1:
        """Its process has ended (joined here) and its replies are read: close
        the channel.  Every call it had has left the task table."""
        self.process.join()
        self.channel.close()
        self.state = WORKER_DEAD
        return 0

    # -- its claim slots --------------------------------------------------------

    cdef inline uint64_t occupied_slots(self) noexcept:
        return ~(self.free_slots | self.stale_slots) & SLOT_MASK

    cdef inline void check_slots(self) noexcept:
        """The slot invariant (debug build): no slot both free and stale,
        in_flight counts the occupied ones."""
        FF_ASSERT((self.free_slots & self.stale_slots) == 0)
        FF_ASSERT(popcount(self.occupied_slots()) == self.in_flight)

    cdef double busy_since(self) noexcept:
        """When the call it is running started; for a worker that has not
        begun, when it was added; 0 when it runs nothing."""
        cdef uint64_t occupied = self.occupied_slots()
        cdef int slot
        cdef double at
        if not occupied:
            return 0
        for slot in range(MAX_IN_FLIGHT):
            if (occupied >> slot) & 1 and self.claims.claimed(slot):
                at = self.claims.started_at(slot)
                return at if at > 0 else ff_monotonic()   # claimed, unpickling
        return 0 if self.claims.is_ready() else self.created_at

    cdef inline bint has_unclaimed(self) noexcept:
        cdef uint64_t occupied = self.occupied_slots()
        cdef int slot
        for slot in range(MAX_IN_FLIGHT):
            if (occupied >> slot) & 1 and not self.claims.claimed(slot):
                return True
        return False

    cdef void request_kill(self, int slot) noexcept:
        """cancel() of the running call in ``slot`` (any thread): the result
        thread kills this worker."""
        self.kill_requests |= <uint64_t>1 << slot
        ffr_wake_fd(self.pool_wake_fd)

    cdef inline uint64_t take_kill_requests(self) noexcept:
        """The slots whose running call was cancelled since the last look."""
        cdef uint64_t requests = self.kill_requests
        self.kill_requests = 0
        return requests

    cdef inline int take_slot(self) noexcept:
        """A free claim slot, offered.  Only when can_take()."""
        cdef int slot = 0
        FF_ASSERT(self.can_take())       # so a slot is free
        while not (self.free_slots >> slot) & 1:
            slot += 1
        self.free_slots &= ~(<uint64_t>1 << slot)
        self.claims.offer(slot)
        self.in_flight += 1
        if self.tasks_left > 0:
            self.tasks_left -= 1
        self.check_slots()
        return slot

    cdef inline void release_slot(self, int slot, bint ran) noexcept:
        """The call in ``slot`` left its ring; ``ran``: it counts towards
        max_tasks_per_child (else it is given back)."""
        FF_ASSERT(not (self.free_slots >> slot) & 1 and self.in_flight > 0)
        self.free_slots |= <uint64_t>1 << slot
        self.in_flight -= 1
        if not ran and self.tasks_left >= 0:
            self.tasks_left += 1
        self.kill_requests &= ~(<uint64_t>1 << slot)
        self.check_slots()

    cdef inline void release_stale_slot(self, int slot) noexcept:
        """release_slot() for a call taken back while its record is still in
        the ring: the slot is reused only once the worker has skipped it."""
        self.release_slot(slot, False)
        self.free_slots &= ~(<uint64_t>1 << slot)
        self.stale_slots |= <uint64_t>1 << slot
        self.check_slots()

    cdef inline void skipped(self, int slot) noexcept:
        if (self.stale_slots >> slot) & 1:
            self.stale_slots &= ~(<uint64_t>1 << slot)
            self.free_slots |= <uint64_t>1 << slot


cdef int stop_links(list links) except -1:
    """Terminate workers, SIGKILL those still there after KILL_GRACE (one
    that ignores SIGTERM or blocks in C code), join them, close their
    channels.  Bounded: never waits on a worker without a limit."""
    cdef Link link
    cdef double deadline
    for link in links:
        if link.process.exitcode is None:
            try:
                link.process.terminate()
            except (ProcessLookupError, ValueError):
                pass
    deadline = ff_monotonic() + KILL_GRACE
    for link in links:
        link.process.join(max(0.0, deadline - ff_monotonic()))
    for link in links:
        if link.process.exitcode is None:
            try:
                link.process.kill()
            except (ProcessLookupError, ValueError):
                pass
    for link in links:
        link.bury()
    return 0
