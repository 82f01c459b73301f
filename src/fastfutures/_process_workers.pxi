# Included by _process_core.pyx: a worker as the parent sees it.

# A worker's life (WorkerHandle.state), changed only by WorkerHandle's
# methods below, which the pool calls with its lock held, or from the result
# thread's reading of replies (served(), retire(): the GIL alone):
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

WORKER_STATE_NAMES = ("starting", "serving", "leaving", "retiring", "held", "dying", "dead")


cdef class WorkerHandle:
    """A worker process, the parent's end of its channel, its state, and the
    calls in its ring, by claim slot (fields: _process_core.pxd)."""

    def __cinit__(self, process, channel, max_tasks, bint cancel_running, WaitSet waitset):
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
        self.waitset = waitset
        self.calls = [None] * MAX_IN_FLIGHT
        self.created_at = ff_monotonic()

    def __repr__(self):
        return (f"<WorkerHandle pid={self.process.pid} state={self.state} "
                f"in_flight={self.in_flight}>")

    @property
    def state_name(self):
        return WORKER_STATE_NAMES[self.state]

    def debug_state(self):
        """Its state, slots and calls, for tests and debugging."""
        cdef int slot
        return {
            "pid": self.process.pid,
            "state": WORKER_STATE_NAMES[self.state],
            "ready": self.claims.is_ready(),
            "stalled": self.stalled,
            "in_flight": self.in_flight,
            "free_slots": self.free_slots & SLOT_MASK,
            "stale_slots": self.stale_slots,
            "claimed": [slot for slot in range(MAX_IN_FLIGHT) if self.claims.claimed(slot)],
            "calls": {slot: (<Call>call).task_id for slot, call in enumerate(self.calls)
                      if call is not None},
        }

    @property
    def ready(self):
        """The worker's initializer has succeeded."""
        return self.claims.is_ready()

    # -- what it is -----------------------------------------------------------

    cdef bint takes_calls(self) noexcept:
        return self.state <= WORKER_SERVING

    cdef bint can_take(self) noexcept:
        return (self.state <= WORKER_SERVING
                and self.tasks_left != 0 and self.free_slots != 0)

    cdef bint exit_expected(self) noexcept:
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

    cdef void served(self) noexcept:
        """A reply was read from it: whatever it was stalled on is over."""
        self.stalled = False
        if self.state == WORKER_STARTING:
            self.state = WORKER_SERVING
        elif self.state == WORKER_HELD and self.state_before_hold == WORKER_STARTING:
            self.state_before_hold = WORKER_SERVING

    cdef void retire(self) noexcept:
        """Its reply says it exits after it (max_tasks_per_child).  A dying
        worker stays dying."""
        if self.state <= WORKER_LEAVING:
            self.state = WORKER_RETIRING
        elif self.state == WORKER_HELD:
            self.state_before_hold = WORKER_RETIRING

    cdef bint hold(self) noexcept:
        """A kill is being decided: it takes no calls meanwhile.  False
        when it is already dying."""
        if self.state >= WORKER_HELD:
            return False
        self.state_before_hold = self.state
        self.state = WORKER_HELD
        return True

    cdef void release_hold(self) noexcept:
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

    cdef uint64_t occupied_slots(self) noexcept:
        return ~(self.free_slots | self.stale_slots) & SLOT_MASK

    cdef void check_slots(self) noexcept:
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

    cdef bint has_unclaimed(self) noexcept:
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
        self.waitset.wake()

    cdef uint64_t take_kill_requests(self) noexcept:
        """The slots whose running call was cancelled since the last look."""
        cdef uint64_t requests = self.kill_requests
        self.kill_requests = 0
        return requests

    cdef int take_slot(self) noexcept:
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

    cdef void release_slot(self, int slot, bint ran) noexcept:
        """The call in ``slot`` left its ring; ``ran``: it counts towards
        max_tasks_per_child (else it is given back)."""
        FF_ASSERT(not (self.free_slots >> slot) & 1 and self.in_flight > 0)
        self.free_slots |= <uint64_t>1 << slot
        self.in_flight -= 1
        if not ran and self.tasks_left >= 0:
            self.tasks_left += 1
        self.kill_requests &= ~(<uint64_t>1 << slot)
        self.check_slots()

    cdef void release_stale_slot(self, int slot) noexcept:
        """release_slot() for a call taken back while its record is still in
        the ring: the slot is reused only once the worker has skipped it."""
        self.release_slot(slot, False)
        self.free_slots &= ~(<uint64_t>1 << slot)
        self.stale_slots |= <uint64_t>1 << slot
        self.check_slots()

    cdef void skipped(self, int slot) noexcept:
        if (self.stale_slots >> slot) & 1:
            self.stale_slots &= ~(<uint64_t>1 << slot)
            self.free_slots |= <uint64_t>1 << slot


    # -- the calls in its ring, by slot (the pool's lock or the GIL alone) -------
    #
    # Each slot is free (a bit in free_slots), stale (a bit in stale_slots: a
    # call taken back whose record the worker has yet to skip) or occupied
    # (calls[slot] is the Call); never two of these.  in_flight counts the
    # occupied slots.  check_slots() asserts it in the debug build.

    cdef int put(self, Call call, int64_t task_id) except -1:
        """``call`` goes into this worker's ring as ``task_id`` (the caller
        writes the record next): a free slot is offered for it.  Only when
        can_take().  Returns the slot."""
        cdef int slot = self.take_slot()
        call.task_id = task_id
        self.calls[slot] = call
        in_ring(call, self, slot)
        return slot

    cdef void unput(self, int slot) noexcept:
        """The record of the call just put() could not be written."""
        cdef Call call = <Call>self.calls[slot]
        self.calls[slot] = None
        left_ring(call)
        self.release_slot(slot, False)

    cdef Call answered(self, uint32_t slot, int64_t task_id, bint ran):
        """A reply for ``slot``: its call leaves the ring (None when the call
        was taken away meanwhile: killed, or the pool broke)."""
        cdef Call call
        if slot >= <uint32_t>MAX_IN_FLIGHT:
            return None
        call = <Call>self.calls[slot]
        if call is None or call.task_id != task_id:
            return None
        self.calls[slot] = None
        left_ring(call)
        self.release_slot(slot, ran)
        return call

    cdef int take_back(self, list back, list cancelled) except -1:
        """Held, being killed, dead or stalled: append to ``back`` the calls
        it has not claimed (in the order they were given; they run
        elsewhere) and to ``cancelled`` the futures of calls that cancel()
        stopped meanwhile (to notify).  Both leave its ring; their slots
        stay stale until it skips their records.  Claimed calls stay
        (take_started())."""
        cdef list taken = []
        cdef Call call
        cdef int slot
        for slot in range(MAX_IN_FLIGHT):
            call = <Call>self.calls[slot]
            if call is None:
                continue
            if self.claims.cancel(slot):        # unclaimed: ours again
                taken.append(call)
            elif self.claims.claimed(slot):
                continue
            else:                               # cancelled by cancel()
                cancelled.append(call.future)
            self.calls[slot] = None
            left_ring(call)
            self.release_stale_slot(slot)
        if taken:
            taken.sort(key=task_id_of)
            back.extend(taken)
        return 0

    cdef list take_started(self, uint64_t slots):
        """Remove and return the calls it claimed and did not answer, those
        whose slot is in the ``slots`` mask (killed, or dead)."""
        cdef list started = []
        cdef Call call
        cdef int slot
        for slot in range(MAX_IN_FLIGHT):
            call = <Call>self.calls[slot]
            if call is not None and (slots >> slot) & 1:
                self.calls[slot] = None
                left_ring(call)
                self.release_slot(slot, True)
                started.append(call)
        return started

    cdef list take_all(self):
        """Every call in its ring (the pool broke, or a forked child's copy)."""
        cdef list taken = []
        cdef Call call
        cdef int slot
        for slot in range(MAX_IN_FLIGHT):
            call = <Call>self.calls[slot]
            if call is not None:
                self.calls[slot] = None
                left_ring(call)
                taken.append(call)
        return taken

    cdef bint runs_any(self, uint64_t slots) noexcept:
        """A call in one of ``slots`` is still unanswered."""
        cdef int slot
        for slot in range(MAX_IN_FLIGHT):
            if (slots >> slot) & 1 and self.calls[slot] is not None:
                return True
        return False

    cdef Call first_pending(self):
        """Its oldest call whose future is still pending, or None."""
        cdef Call call, first = None
        cdef int slot
        for slot in range(MAX_IN_FLIGHT):
            call = <Call>self.calls[slot]
            if (call is not None and call.future._state == ST_PENDING
                    and (first is None or call.task_id < first.task_id)):
                first = call
        return first


def _apply_transition(WorkerHandle worker, str name):
    """Tests only (tests/test_process_internals.py): apply one transition
    of the worker state machine by name; returns what it returned."""
    if name == "served":
        worker.served()
    elif name == "retire":
        worker.retire()
    elif name == "hold":
        return worker.hold()
    elif name == "release_hold":
        worker.release_hold()
    elif name == "start_dying":
        return worker.start_dying(ff_monotonic() + 60)
    elif name == "tell_to_leave":
        return worker.tell_to_leave()
    elif name == "bury":
        worker.bury()
    else:
        raise ValueError(name)
    return None


cdef object task_id_of(Call call):
    return call.task_id


cdef int stop_workers(list handles) except -1:
    """Terminate workers, SIGKILL those still there after KILL_GRACE (one
    that ignores SIGTERM or blocks in C code), join them, close their
    channels.  Bounded: never waits on a worker without a limit."""
    cdef WorkerHandle worker
    cdef double deadline
    for worker in handles:
        if worker.process.exitcode is None:
            try:
                worker.process.terminate()
            except (ProcessLookupError, ValueError):
                pass
    deadline = ff_monotonic() + KILL_GRACE
    for worker in handles:
        worker.process.join(max(0.0, deadline - ff_monotonic()))
    for worker in handles:
        if worker.process.exitcode is None:
            try:
                worker.process.kill()
            except (ProcessLookupError, ValueError):
                pass
    for worker in handles:
        worker.bury()
    return 0
