# Included by _process_core.pyx: a call, its future, completing futures, map()'s
# result iterator.

@cython.freelist(64)
cdef class Call:
    """A pickled call: waiting in the pool's queue, or in a worker's ring
    (``worker`` set) until its reply (fields: _process_core.pxd).  Kept out
    of the cyclic GC (no_gc, declared there): nothing a Call refers to can
    refer back to it, and with many calls queued, collections scanning them
    cost more than the calls."""


cdef class PoolFutureCore(FutureCore):
    """A process pool's future.  While its call waits in a worker's ring it
    holds the call's claim slot (see _shm_ring.h): cancel() and the worker's
    claim race on it, and exactly one wins.  The future stays PENDING until
    the reply; running() reads the claim (fields: _process_core.pxd)."""

    def cancel(self):
        """Cancel the future if possible.

        Returns True if the future was cancelled, False otherwise. A future
        cannot be cancelled if it is running or has already completed
        (unless the pool was made with cancel_running=True: then its worker
        is killed and replaced).
        """
        cdef WorkerHandle worker = self.worker
        # No Python code between reading the state and the compare-and-swap.
        if self._state == ST_PENDING and worker is not None:
            if not worker.claims.cancel(self.slot):
                # The worker claimed it: running.
                if not worker.cancel_running:
                    return False
                worker.request_kill(self.slot)
        return FutureCore.cancel(self)

    def cancel_if_not_started(self):
        """cancel(), except that a running call is never stopped, whatever
        cancel_running says (shutdown(cancel_futures=True))."""
        cdef WorkerHandle worker = self.worker
        if self._state == ST_PENDING and worker is not None:
            if not worker.claims.cancel(self.slot):
                return False
        return FutureCore.cancel(self)

    def running(self):
        """Return True if the future is currently executing."""
        cdef WorkerHandle worker = self.worker
        if self._state == ST_PENDING and worker is not None:
            return worker.claims.claimed(self.slot)
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


cdef inline void in_ring(Call call, WorkerHandle worker, int slot) noexcept:
    """``call`` is being written into ``worker``'s ring, claim slot ``slot``."""
    cdef PoolFutureCore future = <PoolFutureCore>call.future
    future.worker = worker
    future.slot = slot
    call.worker = worker
    call.slot = slot


cdef inline void left_ring(Call call) noexcept:
    """``call`` (or None) is no longer in a worker's ring."""
    if call is not None:
        (<PoolFutureCore>call.future).worker = None
        call.worker = None


cdef int finish_cancelled(FutureCore future) except -1:
    """A call that cancel() stopped (not run, or its worker killed): the
    future ends cancelled -- cancel() may still be on its way in its thread,
    and finds it so -- and its waiters learn it now, as they do when the
    stdlib's pool reaches a cancelled call."""
    FutureCore.cancel(future)
    if future._state == ST_CANCELLED:
        future.set_running()
    return 0


cdef int notify_cancelled(list futures) except -1:
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
    return 0


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

