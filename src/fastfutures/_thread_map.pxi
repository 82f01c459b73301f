# ThreadPoolExecutor.map() without a future per call (included by
# _threadpool.pyx).
#
# The futures of the stdlib's map() are seen by nobody but its result
# iterator, so here the calls of one map() share one MapCalls: the work queue
# holds (MapCalls, index) items and each call's outcome is a slot of one
# list.  A future costs an allocation, a deallocation and the GC's attention
# per call -- about half of map()'s cost per call on 3.15.
#
# A slot goes PENDING -> RUNNING -> the result (or a Raised), or PENDING ->
# CANCELLED.  Every change is made under the GIL with no Python code between
# looking at a slot and storing into it, so a worker's claim and the
# consumer's cancel cannot both win.  ThreadPoolCore.map() takes the submit()
# path instead where a call must be seen one by one (a submit() override, a
# bounded queue, a worker context).

cdef inline void store(list outcomes, Py_ssize_t i, object outcome) noexcept:
    """outcomes[i] = outcome, without the generic item assignment's checks
    (i is a slot of this map, and the list never shrinks)."""
    cdef PyObject *old = PyList_GET_ITEM(outcomes, i)
    Py_INCREF(outcome)
    PyList_SET_ITEM(outcomes, i, outcome)
    Py_XDECREF(old)     # last: a result's finalizer may run here


cdef object PENDING = object()     # queued
cdef object RUNNING = object()     # claimed by a worker
cdef object CANCELLED = object()   # will not run (close(), a time-out, cancel_futures)


@cython.final
cdef class Raised:
    """A slot's outcome when the call raised (or the pool failed it)."""
    cdef object exception

    def __cinit__(self, exception):
        self.exception = exception


@cython.final
cdef class MapCalls:
    """The calls of one map() and, for its consumer, their results in order.

    As the stdlib's result generator: the deadline counts from map(); a
    result that times out is cancelled with every call not consumed; an
    error, or close(), cancels the calls not consumed; each result is let go
    of as it is handed out (CPython bpo-14406).  _base.map_results() wraps it
    in a real generator.
    """
    cdef list outcomes
    cdef bint star                  # fn(*args): map() over several iterables
    cdef bint closed                # outcomes settled from now on are dropped
    cdef Py_ssize_t next_index      # the consumer's next slot
    cdef Py_ssize_t waiting_for     # the slot the consumer blocks on, or -1
    cdef Waiter waiter
    cdef Deadline deadline

    def __cinit__(self):
        self.outcomes = []
        self.waiting_for = -1

    cdef inline Py_ssize_t add(self) except -1:
        """A slot for the next call."""
        self.outcomes.append(PENDING)
        return PyList_GET_SIZE(self.outcomes) - 1

    # -- the workers' side ------------------------------------------------------

    cdef inline bint claim(self, Py_ssize_t i) except -1:
        """Mark slot i running; False if it was cancelled."""
        if <object>PyList_GET_ITEM(self.outcomes, i) is not PENDING:
            return False
        store(self.outcomes, i, RUNNING)
        return True

    cdef int settle(self, Py_ssize_t i, object outcome) except -1:
        """Store slot i's outcome and wake the consumer if it waits for it."""
        store(self.outcomes, i, None if self.closed else outcome)
        if i == self.waiting_for:
            self.waiting_for = -1
            self.waiter.signal()
        return 0

    cdef int cancel_call(self, Py_ssize_t i) except -1:
        """The pool drops a queued call (shutdown(cancel_futures=True))."""
        if <object>PyList_GET_ITEM(self.outcomes, i) is PENDING:
            self.settle(i, CANCELLED)
        return 0

    cdef bint fail_call(self, Py_ssize_t i, object exception) except -1:
        """The pool fails a queued call (a broken pool); False if it had
        been cancelled."""
        cdef Raised raised = Raised(exception)     # allocated before looking
        if <object>PyList_GET_ITEM(self.outcomes, i) is not PENDING:
            return False
        self.settle(i, raised)
        return True

    # -- the consumer's side ----------------------------------------------------

    def __iter__(self):
        return self

    def __next__(self):
        cdef Py_ssize_t i = self.next_index
        if i >= PyList_GET_SIZE(self.outcomes):
            raise StopIteration
        outcome = <object>PyList_GET_ITEM(self.outcomes, i)
        try:
            if outcome is PENDING or outcome is RUNNING:
                outcome = self.wait_for(i)
            store(self.outcomes, i, None)
            self.next_index = i + 1
            if type(outcome) is Raised:
                raise (<Raised>outcome).exception
            if outcome is CANCELLED:
                raise CancelledError()
            return outcome
        except BaseException:
            self.close()
            raise

    cdef object wait_for(self, Py_ssize_t i):
        """Slot i's outcome once settled; on a time-out, FuturesTimeoutError
        (the caller's close() then cancels slot i with the rest)."""
        cdef int signalled
        outcome = <object>PyList_GET_ITEM(self.outcomes, i)
        while outcome is PENDING or outcome is RUNNING:
            if self.waiter is None:
                self.waiter = Waiter(W_RESULT)
            self.waiting_for = i
            # Looked at again: the allocation above can run the GC, whose
            # finalizers can let a worker settle slot i unseen.
            outcome = <object>PyList_GET_ITEM(self.outcomes, i)
            if not (outcome is PENDING or outcome is RUNNING):
                self.waiting_for = -1
                break
            try:
                signalled = self.waiter.block(self.deadline)
            except BaseException:
                # Ctrl-C: the waiter may be left signalled; a fresh one next time.
                self.waiting_for = -1
                self.waiter = None
                raise
            self.waiting_for = -1
            if signalled:
                self.waiter.rearm()
            outcome = <object>PyList_GET_ITEM(self.outcomes, i)
            if not signalled and (outcome is PENDING or outcome is RUNNING):
                raise FuturesTimeoutError()
        return outcome

    def close(self):
        """Cancel the calls whose results were not consumed; drop the results."""
        cdef list outcomes = self.outcomes
        cdef Py_ssize_t i = self.next_index
        self.closed = True
        self.next_index = PyList_GET_SIZE(outcomes)
        while i < PyList_GET_SIZE(outcomes):
            # None: a queued call is skipped (cancelled); a running one
            # settles later, into a None too (closed).
            if <object>PyList_GET_ITEM(outcomes, i) is not RUNNING:
                store(outcomes, i, None)
            i += 1


cdef int run_map_call(MapCalls calls, Py_ssize_t i, object fn, object arg,
                      PoolStats stats) except -1:
    """A worker's run_call() for a map() call: run it, settle its slot.
    1 if it ran, 0 if it had been cancelled."""
    if not calls.claim(i):
        call_skipped(stats)
        return 0
    try:
        result = fn(*arg) if calls.star else fn(arg)
    except BaseException as exc:
        call_ended(stats, True)
        calls.settle(i, Raised(exc))
        exc = None      # break the frame -> exception -> traceback cycle
    else:
        call_ended(stats, False)
        calls.settle(i, result)
    return 1
