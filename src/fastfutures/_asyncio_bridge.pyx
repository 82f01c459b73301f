# cython: language_level=3
"""Completing asyncio futures from fastfutures futures, in batches.

asyncio chains a concurrent future to an asyncio future with a done-callback
that calls ``loop.call_soon_threadsafe`` once per completion: a lock, a
handle and a self-pipe write (a loop wake-up) for every call.  Here each loop
has one ``LoopBridge``: a completing thread appends the chain's ``Link`` to
the bridge's queue, and only the completion that finds the queue without a
drain scheduled wakes the loop.  The drain runs on the loop thread and
completes every queued asyncio future, so asyncio futures are only ever
touched by their loop's thread.  A closed loop is never called.  On
asyncio's own loops, install() also wraps the selector's select() (see
SpinningSelect) so that a loop about to sleep first spins for a completion.

install() also gives asyncio's own loops a compiled ``run_in_executor``
(RunInExecutor).  The future it gets from a fastfutures pool's submit() is
seen by nobody else, so such a "fresh" call needs no Link at first: its
source's done-callback is the bridge itself (which does nothing), and the
loop's next pass (SpinningSelect before it polls, or else a drain scheduled
when the call is made) delivers it if it has completed by then -- in a
burst of calls most have -- or else gives it a Link then, which also starts
watching the asyncio future for cancellation from then on.  A delivered fresh call costs no object of the bridge's, and
its asyncio future keeps the caller's callback inline (asyncio allocates a
list, a tuple and a context copy for a second callback).

What is delivered is exactly what ``asyncio.futures._chain_future`` would
deliver: results directly, everything else (exceptions, cancellation, the
conversion of concurrent.futures' exception classes) through asyncio's own
``_copy_future_state``; cancelling the asyncio future cancels the source.
"""
import contextvars
from asyncio import base_events as asyncio_base_events
from asyncio import futures as asyncio_futures

from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.pythread cimport PyThread_get_thread_ident
from ._future cimport (
    FutureCore, ST_CANCELLED, ST_FINISHED, spin_then_hand_off, ff_store_release, ff_monotonic,
)
from ._threadpool import ThreadPoolCore

cdef object copy_future_state = asyncio_futures._copy_future_state
cdef object is_asyncio_future = asyncio_futures.isfuture
cdef object AsyncioFuture = asyncio_futures.Future      # the C future where there is one
cdef object BaseEventLoop = asyncio_base_events.BaseEventLoop
cdef object base_create_future = BaseEventLoop.create_future
cdef object base_run_in_executor = BaseEventLoop.run_in_executor
cdef object core_submit = ThreadPoolCore.__dict__["submit"]

# How many fresh calls one drain takes at most (see take_fresh_calls).
cdef Py_ssize_t FRESH_PER_DRAIN = 1024


cdef class LoopBridge:
    """One loop's queue of completed links and fresh calls, drained on the
    loop's thread."""

    cdef object loop
    cdef object call_soon_threadsafe
    cdef object drain_handle_callback   # self.drain, bound once
    cdef list pending                   # Links whose source is done, oldest first
    cdef list fresh_sources             # fresh calls, oldest first (loop thread only)
    cdef list fresh_destinations        # ... and their asyncio futures, in step
    cdef Py_ssize_t fresh_taken         # how many of them drains have taken
    cdef bint select_takes_fresh        # the loop's SpinningSelect takes them, no drain needed
    cdef object watch_context           # the context the Links of fresh calls watch in
    cdef int drain_scheduled            # an int: a spinning loop thread reads it without the GIL
    cdef Py_ssize_t outstanding         # chained links not yet delivered (loop thread only)
    cdef bint loop_spinning             # the loop thread spins in select(), GIL released
    cdef bint handed_off                # ... and a completion asked it to drain: no pipe write
    cdef bint loop_closed               # nothing is delivered any more

    def __cinit__(self, loop):
        self.loop = loop
        self.call_soon_threadsafe = loop.call_soon_threadsafe
        self.drain_handle_callback = self.drain
        self.pending = []
        self.fresh_sources = []
        self.fresh_destinations = []
        # Not a copy of the caller's: the check only cancels a source nobody
        # else holds, which runs no callback but the Link's (context-free).
        # One per loop: a context is entered by one thread at a time.
        self.watch_context = contextvars.Context()

    def __call__(self, source):
        """The done-callback of a fresh call's source (any thread): nothing
        to do, the loop's next pass looks at it (see add_fresh).  Unless the
        loop was closed meanwhile: that pass never comes."""
        if not self.loop_closed and self.loop._closed:     # a BaseEventLoop
            self.forget_if_closed()

    cdef int enqueue(self, Link link) except -1:
        """Called in the completing thread (any thread, GIL held)."""
        if self.loop_closed:
            return 0
        # No Python code between reading drain_scheduled and appending: the
        # drain swaps the queue and clears the flag in one step too.
        self.pending.append(link)
        if self.drain_scheduled:
            # close() drops a scheduled drain: without this look the queue
            # would grow until the loop is collected.  (asyncio's chaining
            # calls is_closed() once per completion too.)
            if not self.loop_spinning:
                self.forget_if_closed()
            return 0
        if self.loop_spinning:
            # The loop thread sees the flag and schedules the drain itself
            # (it clears loop_spinning under the GIL we hold: no race).
            self.handed_off = True
            ff_store_release(&self.drain_scheduled, 1)
            return 0
        ff_store_release(&self.drain_scheduled, 1)
        if self.forget_if_closed():
            return 0
        try:
            self.call_soon_threadsafe(self.drain_handle_callback)
        except BaseException:
            # Closed meanwhile (RuntimeError), or interrupted: let the next
            # completion try again rather than leave the queue without a drain.
            if not self.forget_if_closed():
                self.drain_scheduled = False
                raise
        return 0

    cdef bint forget_if_closed(self) except -1:
        if not self.loop.is_closed():
            return False
        self.loop_closed = True
        self.pending = []
        self.forget_fresh()
        return True

    cdef int forget_fresh(self) except -1:
        self.fresh_sources = []
        self.fresh_destinations = []
        self.fresh_taken = 0
        return 0

    def drain(self):
        """Deliver every queued completion, then take the fresh calls made
        since the last drain (a loop callback)."""
        cdef list fresh = []            # allocated first: may let other threads in
        cdef list batch = self.pending
        cdef Py_ssize_t n, i = 0
        self.pending = fresh
        self.drain_scheduled = False
        n = PyList_GET_SIZE(batch)
        self.outstanding -= n
        try:
            while i < n:
                (<Link>PyList_GET_ITEM(batch, i)).deliver()
                i += 1
        finally:
            if i < n:
                # A BaseException (KeyboardInterrupt, SystemExit) escapes:
                # the rest, from the link it interrupted on, waits for the
                # next drain (deliver() skips a destination already done).
                self.requeue(batch[i:])
        self.take_fresh_calls()

    cdef int take_fresh_calls(self) except -1:
        """Take the next FRESH_PER_DRAIN fresh calls, oldest first; a drain
        for the rest is scheduled (after the handles this one scheduled:
        the loop runs those first, so a burst never has more than that many
        waiting in the ready queue -- a handle is an object for the cyclic
        GC, and 100k of them at once cost full collections).  Returns
        whether it left the loop something to do: handles, or calls."""
        cdef list sources = self.fresh_sources
        cdef list destinations = self.fresh_destinations
        cdef Py_ssize_t n = PyList_GET_SIZE(sources)
        cdef Py_ssize_t i = self.fresh_taken
        cdef Py_ssize_t end = min(n, i + FRESH_PER_DRAIN)
        cdef int delivered = 0
        if i == n:
            return 0
        self.outstanding -= end - i
        try:
            while i < end:
                delivered |= self.take_fresh(<FutureCore>PyList_GET_ITEM(sources, i),
                                             <object>PyList_GET_ITEM(destinations, i))
                i += 1
        finally:
            # Also when a BaseException escapes: the rest, from the call it
            # interrupted on (taking it again is harmless), waits for the
            # next drain.
            self.outstanding += end - i
            if sources is not self.fresh_sources:
                pass        # forgotten meanwhile: the loop was closed
            elif i == PyList_GET_SIZE(sources):
                # (Re-read: delivering runs Python code -- an exception
                # handler, a finalizer -- which may have made more calls.)
                self.forget_fresh()
            else:
                if i > FRESH_PER_DRAIN * 4 and i * 2 > n and sources is self.fresh_sources:
                    # Calls keep coming faster than drains take them: drop
                    # the taken ones now and then rather than hold them all.
                    del sources[:i]
                    del destinations[:i]
                    i = 0
                self.fresh_taken = i
                if not self.drain_scheduled and not self.loop_closed:
                    self.schedule_from_loop_thread()
        return delivered or end < n

    cdef int add_fresh(self, FutureCore source, object destination) except -1:
        """On the loop thread, its loop running here or not yet: chain a
        fresh call; the loop's next select() takes it (SpinningSelect), or
        else the next drain (scheduled now if need be)."""
        if source._state < ST_CANCELLED and source._callback0 is None:
            # Its done-callback, set here rather than by add_done_callback(),
            # which would also put the future in the cyclic GC: its only
            # reference that could close a cycle is this one, to the bridge,
            # and that lives while the pool holds the future (until it
            # completes).  With 100k calls in flight, one tracked object less
            # per call is a cheaper full collection, and fewer of them.
            # (Under the GIL, no Python code between the look and the store:
            # a worker completing it meanwhile would find no callback.)
            source._callback0 = self
        elif source._state < ST_CANCELLED:
            source.add_done_callback(self)      # (not expected: a private source)
        # else: completed already, the drain delivers it.
        self.fresh_sources.append(source)
        self.fresh_destinations.append(destination)
        self.outstanding += 1
        if not self.select_takes_fresh and not self.drain_scheduled:
            # A completing thread that finds the flag set only queues: the
            # drain scheduled here delivers what it queued too.
            self.schedule_from_loop_thread()
        return 0

    cdef int take_fresh(self, FutureCore source, object destination) except -1:
        """In the drain: deliver a fresh call that has completed (returns 1);
        give one
        still running a Link, which from now on is the done-callback of its
        source and watches its asyncio future -- what chaining does at once,
        done late: a future cancelled meanwhile cancels the source now, no
        later than asyncio's check scheduled on cancellation would."""
        cdef Link link
        if source._state < ST_CANCELLED:
            link = new_link(self, source, destination)
            # Allocating may run the GC, whose finalizers may let the
            # source's worker complete it: look again.  From here no Python
            # code runs until the link is its done-callback.
            if source._state < ST_CANCELLED:
                self.outstanding += 1
                if source._callback0 is self and source._more_callbacks is None:
                    source._callback0 = link
                else:
                    source.add_done_callback(link)      # (not expected: a private source)
                link.watch()
                return 0
        deliver(self, source, destination, None)
        return 1

    cdef int requeue(self, list links) except -1:
        self.outstanding += PyList_GET_SIZE(links)
        self.pending = links + self.pending
        if not self.drain_scheduled and not self.loop_closed:
            self.schedule_from_loop_thread()
        return 0

    cdef int schedule_from_loop_thread(self) except -1:
        ff_store_release(&self.drain_scheduled, 1)
        self.loop.call_soon(self.drain_handle_callback)
        return 0


cdef class Link:
    """One chain, source -> destination; the done-callback of both."""

    cdef LoopBridge bridge
    cdef FutureCore source
    cdef object destination
    cdef bint watching                  # a done-callback of the destination too

    def __call__(self, future):
        if future is self.destination:
            # The asyncio future is done first: it was cancelled (on the
            # loop thread, as asyncio's _call_check_cancel).
            if future.cancelled():
                self.source.cancel()
        else:
            self.bridge.enqueue(self)

    cdef int deliver(self) except -1:
        """On the loop thread: copy the source's outcome to the destination."""
        return deliver(self.bridge, self.source, self.destination, self if self.watching else None)

    cdef int watch(self) except -1:
        """On the loop thread, for a fresh call still running: watch the
        destination, or cancel the source if it was cancelled meanwhile."""
        cdef object destination = self.destination
        try:
            if not destination.done():
                destination.add_done_callback(self, context=self.bridge.watch_context)
                self.watching = True
            elif destination.cancelled():
                self.source.cancel()
        except Exception as exc:
            self.bridge.loop.call_exception_handler({
                "message": "Exception while chaining an asyncio future"
                           " to its fastfutures future",
                "exception": exc,
                "future": destination,
            })
        return 0


cdef int deliver(LoopBridge bridge, FutureCore source, object destination,
                 Link watching) except -1:
    """On the loop thread: copy the source's outcome to the destination;
    ``watching``: the Link that is a done-callback of the destination."""
    try:
        if destination.done():
            return 0        # cancelled meanwhile; its callback cancels the source
        if watching is not None:
            # Done now, so the link's cancellation check would be a no-op
            # handle: drop it.
            destination.remove_done_callback(watching)
        if source._state == ST_FINISHED and source._exception_value is None:
            destination.set_result(source._result_value)
        else:
            copy_future_state(source, destination)
    except Exception as exc:
        bridge.loop.call_exception_handler({
            "message": "Exception while completing an asyncio future"
                       " from its fastfutures future",
            "exception": exc,
            "future": destination,
        })
    return 0


cdef Link new_link(LoopBridge bridge, FutureCore source, object destination):
    cdef Link link = Link.__new__(Link)
    link.bridge = bridge
    link.source = source
    link.destination = destination
    return link


cdef object bridge_of(object loop):
    bridge = getattr(loop, "_fastfutures_bridge", None)
    if bridge is None:
        bridge = LoopBridge(loop)
        loop._fastfutures_bridge = bridge
        # What close() would drop with the loop's ready handles -- queued
        # completions, fresh calls, their results -- goes with it here too.
        loop.close = CloseLoop(loop, bridge)
    return bridge


cdef int link_futures(FutureCore source, object destination) except -1:
    cdef LoopBridge bridge = bridge_of(destination.get_loop())
    cdef Link link = new_link(bridge, source, destination)
    bridge.outstanding += 1
    link.watching = True
    destination.add_done_callback(link)
    source.add_done_callback(link)
    return 0


cdef object new_destination(object loop):
    # loop.create_future() without its Python frame, where it is asyncio's.
    if type(loop).create_future is base_create_future:
        return AsyncioFuture(loop=loop)
    return loop.create_future()


cdef object original_chain_future = asyncio_futures._chain_future
cdef object original_wrap_future = asyncio_futures.wrap_future


def chain_future(source, destination):
    """``asyncio.futures._chain_future`` through the bridge when the source is
    a fastfutures future and the destination an asyncio future; asyncio's
    own for anything else (run_coroutine_threadsafe, stdlib futures)."""
    if not isinstance(source, FutureCore) or not (
            type(destination) is AsyncioFuture or is_asyncio_future(destination)):
        return original_chain_future(source, destination)
    link_futures(<FutureCore>source, destination)


def wrap_future(future, *, loop=None):
    """``asyncio.futures.wrap_future``: a fastfutures future given with its
    loop (what ``loop.run_in_executor`` passes) goes straight to the bridge,
    without asyncio's Python-level steps; anything else to asyncio's own
    (which reaches the bridge through ``chain_future``)."""
    cdef object destination
    if loop is None or not isinstance(future, FutureCore):
        return original_wrap_future(future, loop=loop)
    destination = new_destination(loop)
    link_futures(<FutureCore>future, destination)
    return destination


cdef class RunInExecutor:
    """``loop.run_in_executor`` of one asyncio loop (BaseEventLoop's), with
    its checks and errors, without its Python frame; a call submitted to a
    fastfutures thread pool's own submit() is a fresh call (see the module's
    docstring).  Anything out of the ordinary (debug mode, a closed loop or
    one whose executor was shut down, no default executor yet, the bridge
    uninstalled, run_in_executor patched on the class) goes to asyncio's own
    method."""

    cdef object loop
    cdef LoopBridge bridge
    cdef object loop_run_in_executor    # type(loop).run_in_executor when installed

    def __cinit__(self, loop, LoopBridge bridge):
        self.loop = loop
        self.bridge = bridge
        self.loop_run_in_executor = type(loop).run_in_executor

    def __call__(self, *args, **kwargs):
        cdef object loop = self.loop
        cdef object source, destination, executor, func
        if kwargs or len(args) < 2:
            # asyncio's own signature errors (and keyword arguments).
            return type(loop).run_in_executor(loop, *args, **kwargs)
        executor = args[0]
        func = args[1]
        args = args[2:]
        if (type(loop).run_in_executor is not self.loop_run_in_executor
                or asyncio_futures.wrap_future is not wrap_future
                or loop._closed or loop._debug
                or (executor is None and (loop._executor_shutdown_called
                                          or loop._default_executor is None))):
            return type(loop).run_in_executor(loop, executor, func, *args)
        if executor is None:
            executor = loop._default_executor
        source = executor.submit(func, *args)
        if not isinstance(source, FutureCore):
            return original_wrap_future(source, loop=loop)
        destination = new_destination(loop)
        if (type(executor).submit is not core_submit
                or "submit" in getattr(executor, "__dict__", ())
                or not runs_in_this_thread(loop)):
            # A submit() of its own may have handed the future to others; a
            # loop running in another thread would not wake up for a drain
            # scheduled from here (call_soon).
            link_futures(<FutureCore>source, destination)
            return destination
        self.bridge.add_fresh(<FutureCore>source, destination)
        return destination


cdef bint runs_in_this_thread(object loop) except -1:
    """The loop runs in this thread, or not yet (BaseEventLoop's own record;
    asyncio._get_running_loop() would cost a getpid() call)."""
    cdef object thread_id = loop._thread_id
    return thread_id is None or <unsigned long>thread_id == PyThread_get_thread_ident()


def bridge_run_in_executor(loop):
    """Give an asyncio loop (a BaseEventLoop whose run_in_executor is
    asyncio's) the compiled RunInExecutor.  Returns False for other loops."""
    if not isinstance(loop, BaseEventLoop) \
            or type(loop).run_in_executor is not base_run_in_executor:
        return False
    if type(getattr(loop, "run_in_executor")) is not RunInExecutor:
        loop.run_in_executor = RunInExecutor(loop, bridge_of(loop))
    return True


cdef class CloseLoop:
    """``loop.close`` of a loop with a bridge: the loop's own, then the
    completions and fresh calls it will never deliver are let go (as close()
    drops the loop's ready handles), with their results."""

    cdef object loop
    cdef LoopBridge bridge

    def __cinit__(self, loop, LoopBridge bridge):
        self.loop = loop
        self.bridge = bridge

    def __call__(self):
        try:
            return type(self.loop).close(self.loop)
        finally:
            if self.loop.is_closed():
                self.bridge.forget_if_closed()


# How long a loop spins for a completion before it blocks in select().  About
# three times a to_thread() round trip on a small machine: long enough to
# catch the next completion of a steady stream, short enough that the I/O
# events that the spin delays (select() is not polled meanwhile) do not notice.
DEFAULT_SPIN_SECONDS = 50e-6


cdef class SpinningSelect:
    """A selector's ``select`` that, while offloaded calls are outstanding,
    first spins (GIL released) for a completion before the loop blocks."""

    cdef object select
    cdef LoopBridge bridge
    cdef public double spin_seconds

    def __cinit__(self, select, LoopBridge bridge, double spin_seconds):
        self.select = select
        self.bridge = bridge
        self.spin_seconds = spin_seconds

    def __call__(self, timeout=None):
        cdef LoopBridge bridge = self.bridge
        cdef double deadline
        # From now on fresh calls need no drain: this takes them, each pass.
        # (Not before: a loop whose pass never calls select() would never.)
        bridge.select_takes_fresh = True
        if bridge.fresh_taken < PyList_GET_SIZE(bridge.fresh_sources):
            # The fresh calls made since the last poll, taken here rather
            # than by a drain handle: one loop pass less per call for calls
            # awaited one after another (their futures' callbacks are
            # scheduled now, and run in this pass).
            if bridge.take_fresh_calls():
                timeout = 0
        if bridge.drain_scheduled and timeout != 0:
            # The loop only blocks with an empty ready queue, so the drain
            # is not in it: a KeyboardInterrupt landed between the loop
            # taking its handle and running it (asyncio would lose that one
            # completion; here the whole queue would wait).  Or a completing
            # thread is between setting the flag and scheduling it: a second
            # drain is harmless.
            bridge.schedule_from_loop_thread()
            timeout = 0
        elif bridge.outstanding > 0 and not bridge.drain_scheduled and timeout != 0 \
                and self.spin_seconds > 0:
            bridge.loop_spinning = True
            with nogil:
                deadline = ff_monotonic() + self.spin_seconds
                while spin_then_hand_off(&bridge.drain_scheduled, 1, 64) == 0 \
                        and ff_monotonic() < deadline:
                    pass
            bridge.loop_spinning = False
            if bridge.handed_off:
                bridge.handed_off = False
                bridge.schedule_from_loop_thread()
                timeout = 0
            elif bridge.drain_scheduled:
                timeout = 0
        return self.select(timeout)


def spin_before_select(loop, double spin_seconds=DEFAULT_SPIN_SECONDS):
    """Make a selector-based loop (asyncio's own) spin before it blocks while
    calls are outstanding: a completion then reaches it without a self-pipe
    write and without waking a sleeping thread.  Returns False for a loop
    without a selector (uvloop: libuv's poll cannot be wrapped)."""
    selector = getattr(loop, "_selector", None)
    select = getattr(selector, "select", None)
    if select is None:
        return False
    if type(select) is not SpinningSelect:
        selector.select = SpinningSelect(select, bridge_of(loop), spin_seconds)
    return True
