# Included by _process_core.pyx: the pool.

# The pool's life (PoolCore.state), changed only by PoolCore's methods, with
# its lock held:
#
#   OPEN --shutdown()--> SHUT_DOWN
#   OPEN --the executor was collected, or the interpreter exits--> ABANDONED
#   OPEN, SHUT_DOWN, ABANDONED --a worker died, a reply unreadable, an
#       initializer failed, os.fork() (the child's copy)--> BROKEN
#
# Only OPEN takes calls.  In SHUT_DOWN and ABANDONED the result thread winds
# the pool down: every call still queued runs (unless shutdown cancelled it),
# then the workers are told to leave.  BROKEN is final: every call failed,
# every worker stopped.
cdef enum:
    POOL_OPEN = 0
    POOL_SHUT_DOWN = 1
    POOL_ABANDONED = 2
    POOL_BROKEN = 3

cdef object errors = _process_errors


cdef class PoolCore:
    """A process pool: its state, its workers, its queue and task table, the
    submitting hot paths and the result thread's loop.

    process.py's _PoolCore adds only what the Python layer does: spawning a
    worker process (``spawn_worker()``, which calls ``add_worker()``), starting
    the result thread (``start_result_thread()``, whose body is ``serve()``),
    and the wake-up pipe (``wake()``).

    ``lock`` (reentrant) serialises everything but the hot paths: starting,
    killing and replacing workers, segment-carried sends, state changes.
    """
    # Configuration
    cdef int max_workers
    cdef object max_tasks_per_child
    cdef bint dynamic_spawning          # a worker per call up to max_workers (not fork)
    cdef bint zero_copy
    cdef double task_timeout            # the pool's limit per call; 0: none
    cdef bint cancel_running            # cancel() of a running call kills its worker
    cdef bint replace_dead              # on_worker_death="replace"
    # State
    cdef int state                      # POOL_*
    cdef object broken_message
    cdef bint cancel_queued             # shutdown(cancel_futures=True), not done yet
    cdef bint executor_collected
    cdef bint started                   # the result thread runs
    cdef bint ready                     # every worker spawned: submit() may skip the slow path
    cdef bint any_limits                # a call with a limit was submitted
    cdef readonly object lock
    cdef list workers                   # Link, in no state but DEAD
    cdef Scheduler scheduler
    cdef object queue                   # collections.deque of Call not in a ring
    cdef dict tasks                     # task id -> Call, for calls in a ring
    cdef int64_t next_task_id
    cdef object cause                   # traceback lines of an unreadable reply
    # Pickling
    cdef dict fn_cache
    cdef list picklers
    # What the result thread waits on (rebuilt when workers_changed)
    cdef bint workers_changed
    cdef pollfd *fds
    cdef int nfds
    cdef list fd_links                  # per fds[i]: the Link of a sentinel, or None
    cdef ffr_ctl **rings                # the workers' reply rings
    cdef Py_ssize_t nrings
    cdef int wake_fd
    cdef int wake_write_fd
    # A timed call placed while the result thread sleeps past the time it
    # must look at it must wake it: it counts them (timed_placed), notes the
    # count it has looked at (timed_seen), and says until when it sleeps
    # (sleeping_until: ff_monotonic() seconds; 0: awake; INFINITY: no limit).
    cdef uint64_t timed_placed
    cdef uint64_t timed_seen
    cdef double sleeping_until

    def __cinit__(self, *args, **kwargs):
        self.state = POOL_OPEN
        self.lock = RLock()
        self.workers = []
        self.scheduler = Scheduler()
        self.queue = deque()
        self.tasks = {}
        self.fn_cache = {}
        self.picklers = []
        self.fd_links = []
        self.workers_changed = True
        self.wake_fd = -1
        self.wake_write_fd = -1

    def __init__(self, int max_workers, max_tasks_per_child, bint dynamic_spawning,
                 bint zero_copy, double task_timeout, bint cancel_running, bint replace_dead):
        self.max_workers = max_workers
        self.max_tasks_per_child = max_tasks_per_child
        self.dynamic_spawning = dynamic_spawning
        self.zero_copy = zero_copy
        self.task_timeout = task_timeout
        self.cancel_running = cancel_running
        self.replace_dead = replace_dead

    def __dealloc__(self):
        PyMem_Free(self.fds)
        PyMem_Free(self.rings)

    # -- what the Python layer provides ------------------------------------------

    def spawn_worker(self):
        """Start a worker process and add_worker() it (lock held)."""
        raise NotImplementedError

    def start_result_thread(self):
        """Start the thread that runs serve() (lock held)."""
        raise NotImplementedError

    def wake(self):
        """Wake the result thread (it rebuilds what it waits on)."""
        raise NotImplementedError

    def add_worker(self, process, channel):
        """``process`` was started for ``channel`` (lock held)."""
        self.workers.append(Link(process, channel, self.max_tasks_per_child,
                                 self.cancel_running, self.wake_write_fd))
        self.workers_changed = True

    # -- for the executor --------------------------------------------------------

    def processes(self, bint ready_only=False):
        """{pid: process} of the workers (those whose initializer succeeded)."""
        cdef Link link
        return {link.process.pid: link.process for link in list(self.workers)
                if not ready_only or link.claims.is_ready()}

    @property
    def broken(self):
        """False, or the BrokenProcessPool message."""
        return self.broken_message if self.state == POOL_BROKEN else False

    @property
    def winding_down(self):
        return self.state != POOL_OPEN

    def terminate_workers(self):
        """terminate_workers(): SIGTERM every worker; the result thread
        SIGKILLs those still there after KILL_GRACE (a worker that ignores
        SIGTERM or blocks in C code)."""
        cdef Link link
        cdef double kill_at = ff_monotonic() + KILL_GRACE
        with self.lock:
            for link in self.workers:
                link.terminate(kill_at)
        self.wake()

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

    # -- the pool's state: changed only here ------------------------------------

    def shut_down(self, bint cancel_futures):
        """shutdown(): no more calls; with ``cancel_futures``, the result
        thread cancels the calls no worker has started."""
        with self.lock:
            if self.state != POOL_BROKEN:
                self.state = POOL_SHUT_DOWN
            if cancel_futures:
                self.cancel_queued = True

    def executor_gone(self):
        """The executor was collected (a weakref callback: no lock, any
        thread): the result thread winds the pool down."""
        self.executor_collected = True

    cdef inline bint should_wind_down(self) noexcept:
        return self.state != POOL_OPEN or global_shutdown or self.executor_collected

    cdef bint mark_broken(self, message) except -1:
        """The pool is broken, for good (lock held).  False when it already was."""
        if self.state == POOL_BROKEN:
            return False
        self.state = POOL_BROKEN
        self.broken_message = message
        self.ready = False
        return True

    def forked(self):
        """This process is a child forked from the pool's owner.  A pool
        never started stays usable (the caller gives it a wake-up pipe of
        its own: set_wake_fds()).  A started one belongs to the parent (its
        workers, rings and result thread): this copy breaks, refuses work
        and never touches them; its futures are the parent's and are left
        as they are.  Returns True in that case."""
        self.lock = RLock()         # the parent's other threads may hold it
        if not self.started and not self.workers:
            return False
        self.mark_broken(errors.INHERITED_MESSAGE)
        self.workers = []
        self.take_all_futures()     # their cancel() must not touch the parent's claims
        self.forget_fds()
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
        # The result thread looks at a new timed call within
        # UNCLAIMED_RECHECK_SECONDS (it cannot know when it starts): wake it
        # if it sleeps longer than that.
        self.timed_placed += 1
        if (self.sleeping_until > 0
                and self.sleeping_until > ff_monotonic() + UNCLAIMED_RECHECK_SECONDS):
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

    cdef inline Link least_loaded(self):
        return self.scheduler.choose(self.workers)

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
        FF_ASSERT(self.state != POOL_BROKEN)    # enter() checked, dispatch() holds the lock
        task_id = self.next_task_id
        slot = best.take_slot()
        if not write_record(best.outbox, call.kind, call.flags, task_id, slot,
                            call.fn_bytes, call.rest):
            best.release_slot(slot, False)
            return False
        in_ring(call, best, slot)
        self.next_task_id = task_id + 1
        self.tasks[task_id] = call
        if call.limit > 0:
            self.timed_call_placed()
        return True

    cdef int dispatch(self) except -1:
        """Hand queued calls to workers with room.

        Under the lock: a call taken off the queue is in neither the queue
        nor ``tasks`` until it is placed, and set_running() (a cancelled
        future notifies its waiters) or a segment send runs Python code, so
        other threads can run meanwhile; break_pool() and wind_down(), which
        hold the lock, must not look at the pool in that gap."""
        cdef Call call
        cdef int state
        cdef list failed = []
        queue = self.queue
        if not queue:
            return 0
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
        return 0

    cdef bint send_with_segment(self, Call call) except -1:
        """A call that needs a buffer segment (lock held).

        The task is registered before the send, which runs Python code:
        place() in other threads must not take its id or its worker's last
        slot meanwhile, and the reply can arrive before send() returns."""
        cdef Link best = self.least_loaded()
        cdef int64_t task_id
        cdef int slot
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
        try:
            sent = best.endpoint.send(call.kind, task_id, call.fn_bytes + call.rest,
                                      call.buffers, call.flags, len(call.fn_bytes), slot)
        finally:
            if not sent:
                self.tasks.pop(task_id, None)
                left_ring(call)
                best.release_slot(slot, False)
        if not sent:
            return False        # its ring is full: the next reply brings us back
        return True

    cdef int slow_submit(self, Call call) except -1:
        """submit() before every worker is spawned: the first call starts the
        result thread (and, with 'fork', every worker, before the thread);
        with other start methods a worker is added per call while none is
        idle, up to max_workers.  A worker that cannot be started fails this
        submit() before anything is queued (the call would wait for nobody)."""
        with self.lock:
            self.check_open()
            if not self.started:
                if not self.dynamic_spawning:
                    try:
                        while len(self.workers) < self.max_workers:
                            self.spawn_worker()
                    except BaseException:
                        stop_links(self.take_workers())     # nobody else would
                        raise
                self.start_result_thread()
                self.started = True
            if (self.dynamic_spawning and len(self.workers) < self.max_workers
                    and not self.has_idle_worker()):
                self.spawn_worker()
            self.queue.append(call)
            self.dispatch()
            self.ready = len(self.workers) >= self.max_workers
        if self.workers_changed:
            self.wake()
        return 0

    cdef bint has_idle_worker(self):
        cdef Link link
        for link in self.workers:
            if link.takes_calls() and link.in_flight == 0:
                return True
        return False

    cdef list take_workers(self):
        """Remove every worker from the pool and return them (lock held)."""
        cdef list workers = self.workers
        self.workers = []
        self.workers_changed = True
        return workers

    cdef int remove_worker(self, Link link) except -1:
        """``link``'s process has ended, its replies are read and its calls
        have left the task table (lock held)."""
        FF_ASSERT(link.in_flight == 0)
        self.workers.remove(link)
        self.workers_changed = True
        link.bury()
        return 0

    # -- the task table and the queue (lock held) ----------------------------------

    cdef list take_all_futures(self):
        """Empty the queue and the task table; return their futures (the
        pool is broken)."""
        cdef Call call
        cdef list futures = []
        for call in self.tasks.values():
            left_ring(call)
            futures.append(call.future)
        futures.extend([(<Call>call).future for call in self.queue])
        self.tasks.clear()
        self.queue.clear()
        return futures

    cdef list take_unstarted(self):
        """shutdown(cancel_futures=True): empty the queue; return its futures
        and those of the calls in the workers' rings, except the first call
        of each worker still starting (it runs: what the stdlib's pool has
        handed to its call queue runs too, and a pool shut down right after
        its submits runs some).  Cancelling fails for the calls a worker
        claims meanwhile."""
        cdef Call call
        cdef Link link
        # starting Link -> its oldest call's id: usually the first record in
        # its ring (a segment-carried send, which runs Python code, can let
        # a later call into the ring first; one call is spared either way)
        cdef dict first = {}
        cdef list futures = [(<Call>call).future for call in self.queue]
        self.queue.clear()
        for task_id, call in self.tasks.items():
            link = call.link
            if call.future._state == ST_PENDING and not link.has_begun():
                if link not in first or task_id < first[link]:
                    first[link] = task_id
        spared = set(first.values())
        futures.extend([(<Call>call).future for task_id, call in self.tasks.items()
                        if task_id not in spared])
        return futures

    cdef list take_back(self, Link link):
        """``link``'s worker is held, being killed or has died: take back the
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
            link.release_stale_slot(call.slot)
            left_ring(call)
        for call in reversed(back):
            self.queue.appendleft(call)
        return cancelled

    cdef list take_started(self, Link link, uint64_t slots):
        """Remove and return the calls ``link``'s worker claimed and did not
        answer, those whose slot is in the ``slots`` mask."""
        cdef Call call
        cdef list started = []
        for task_id, call in list(self.tasks.items()):
            if call.link is link and (slots >> call.slot) & 1:
                del self.tasks[task_id]
                link.release_slot(call.slot, True)
                left_ring(call)
                started.append(call)
        return started

    cdef tuple overdue(self):
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

    def serve(self):
        """The result thread's body: read replies and complete their futures,
        hand queued calls to workers, watch the workers (exits, time limits,
        kill requests), wind the pool down.  Returns when every worker is
        gone or the pool broke."""
        cdef Link link
        cdef double timeout
        try:
            while True:
                self.drain()
                if self.cause is not None:
                    self.break_pool(self.cause)
                    return
                if self.should_wind_down() and self.wind_down():
                    return
                timeout = -1
                timeout = self.rebalance()
                if self.any_limits or self.cancel_running or self.any_kill_due():
                    timeout = earliest(timeout, self.enforce_limits())
                if self.cause is not None:  # a kill read an unreadable reply
                    self.break_pool(self.cause)
                    return
                for link in self.wait(timeout):
                    if not self.worker_exited(link):
                        return
        except BaseException as exc:
            self.break_pool(format_exception(type(exc), exc, exc.__traceback__))
            raise
        finally:
            self.forget_fds()

    cdef bint wind_down(self) except -1:
        """Shutting down: cancel what shutdown() asked to, and once no call
        is left, tell the workers to leave.  True when every worker is gone."""
        cdef list cancelled = []
        cdef Link link
        with self.lock:
            if self.state == POOL_OPEN:
                self.state = POOL_ABANDONED
            if self.cancel_queued:
                self.cancel_queued = False
                cancelled = self.take_unstarted()
        # Running calls go on (also with cancel_running); those a worker
        # has not claimed are skipped by it.
        for future in cancelled:
            (<PoolFutureCore>future).cancel_if_not_started()
        with self.lock:
            if self.queue or self.tasks:
                return False
            for link in self.workers:
                link.tell_to_leave()
            return not self.workers

    cdef bint worker_exited(self, Link link) except -1:
        """``link``'s process ended.  False when that broke the pool."""
        cdef bint expected, stranded, retired
        self.drain_worker(link)         # its last replies
        if self.cause is not None:
            self.break_pool(self.cause)
            return False
        if link.state == WORKER_DYING:
            return self.replace(link)
        expected = link.exit_expected()
        if not expected and self.replace_dead and link.claims.is_ready():
            # Died alone after a successful start (an initializer failure
            # still breaks the pool, as in the stdlib).
            return self.replace(link)
        # A worker may only exit when told to, or after its last task
        # (max_tasks_per_child), with every reply read.
        if not expected:
            link.process.join()         # it exited: this only reaps it, for its exit code
            self.break_pool(errors.abrupt_exits(link.process for link in self.workers))
            return False
        retired = link.state == WORKER_RETIRING
        with self.lock:
            self.remove_worker(link)
            stranded = (STRANDED_WORK_FAILS and retired and self.executor_collected
                        and not self.workers and bool(self.queue or self.tasks))
            # Replaced while work is queued, also when shutting down: the
            # queued calls still run (as the stdlib's do).
            if not stranded and retired and (self.queue or not self.should_wind_down()):
                self.spawn_worker()
            self.dispatch()
        if stranded:
            self.break_pool(None, errors.STRANDED_MESSAGE)
            return False
        return True

    cdef bint replace(self, Link link) except -1:
        """A worker that was killed, or died alone (on_worker_death="replace"),
        is gone and its replies are read: the calls it had started fail with
        WorkerDied, those it had not run elsewhere, a replacement starts."""
        cdef list started, notify
        link.process.join()
        with self.lock:
            notify = self.take_back(link)
            started = self.take_started(link, ALL_SLOTS)
            self.remove_worker(link)
            if self.queue or not self.should_wind_down():
                self.spawn_worker()
            self.dispatch()
        pid, exitcode = link.process.pid, link.process.exitcode
        for call in started:
            fail((<Call>call).future, errors.worker_died(pid, exitcode))
        notify_cancelled(notify)
        return True

    cdef bint any_kill_due(self) noexcept:
        cdef Link link
        for link in self.workers:
            if link.kill_at > 0:
                return True
        return False

    cdef double rebalance(self) except? -2:
        """Take back the calls waiting behind a long one (Scheduler) and hand
        them to other workers.  Returns the seconds until a worker could
        stall (-1: none can)."""
        cdef list victims, notify = []
        cdef Link link
        cdef double timeout
        victims, timeout = self.scheduler.find_stalled(self.workers)
        if victims:
            with self.lock:
                for link in victims:
                    notify += self.take_back(link)
                self.dispatch()
            notify_cancelled(notify)
        return timeout

    cdef double enforce_limits(self) except? -2:
        """Kill the workers whose call ran out of time or was cancelled while
        running; SIGKILL those still there after the grace period.  Returns
        the seconds until something is due (-1: nothing)."""
        cdef Link link
        cdef Call call
        cdef uint64_t slots
        cdef double timeout = -1, left, now
        if self.cancel_running:
            for link in list(self.workers):
                slots = link.take_kill_requests()
                if slots:
                    self.kill_worker(link, None, slots)
        if self.any_limits:
            late, timeout = self.overdue()
            for call in late:
                if call.link is not None:   # else answered meanwhile (an earlier kill read it)
                    self.kill_worker(call.link, call, 0)
        now = ff_monotonic()
        for link in self.workers:
            left = link.kill_if_due(now)
            if left >= 0 and (timeout < 0 or left < timeout):
                timeout = left
        return timeout

    cdef int kill_worker(self, Link link, Call timed_out, uint64_t cancelled_slots) except -1:
        """Stop ``link``'s worker, running the call ``timed_out`` or those in
        ``cancelled_slots``: the calls it has not started go to other
        workers, the timed-out call fails with TaskTimeout, the cancelled
        ones end cancelled; a replacement starts once it is gone (replace()).

        The call may have ended, and the worker claimed the next one, before
        this runs: that one must not die with it.  So the worker is first
        held (it gets no new calls) and its unclaimed calls taken back (it
        can start nothing more; their records stay in its ring, their slots
        unused until it skips them); then its replies are read (their
        done-callbacks delay this); only if the call is still unanswered --
        the one call it can be running -- is it killed."""
        cdef list timeouts = []
        cdef list notify = []
        cdef uint64_t slots = cancelled_slots
        cdef Call call
        cdef bint running = False
        if timed_out is not None:
            slots |= <uint64_t>1 << timed_out.slot
        with self.lock:
            if link.hold():
                notify = self.take_back(link)
        try:
            if link.state == WORKER_HELD:
                try:
                    self.drain_worker(link)
                finally:
                    with self.lock:
                        for call in self.tasks.values():
                            if call.link is link and (slots >> call.slot) & 1:
                                running = True
                                break
                        if not running or self.cause is not None:
                            link.release_hold()
                        else:
                            link.start_dying(ff_monotonic() + KILL_GRACE)
            with self.lock:
                if link.state == WORKER_DYING:
                    if timed_out is not None:
                        timeouts = self.take_started(link, <uint64_t>1 << timed_out.slot)
                    if cancelled_slots:
                        notify += [(<Call>call).future
                                   for call in self.take_started(link, cancelled_slots)]
                self.dispatch()
        finally:
            notify_cancelled(notify)    # whatever happens: their waiters must learn it
        for call in timeouts:
            fail(call.future, errors.task_timeout(call.fn, call.limit))
        return 0

    cdef int break_pool(self, cause, message=errors.FUTURE_BROKEN_MESSAGE) except -1:
        """The pool is broken: every future fails (each with its own
        BrokenProcessPool, gh-101267; ``cause``: traceback lines for its
        __cause__), every worker is stopped -- even if a done-callback raises
        (SystemExit...): that is raised after."""
        cdef list futures, workers
        with self.lock:
            if not self.mark_broken(errors.BROKEN_MESSAGE):
                return 0
            futures = self.take_all_futures()
            workers = self.take_workers()
        cause_text = None if cause is None else f"\n'''\n{''.join(cause)}'''"
        callback_error = None
        for future in futures:
            error = BrokenProcessPool(message)
            if cause_text is not None:
                error.__cause__ = _RemoteTraceback(cause_text)
            try:
                fail(future, error)
            except BaseException as exc:
                callback_error = callback_error or exc
        stop_links(workers)
        if callback_error is not None:
            raise callback_error
        return 0

    # -- reading replies (the result thread) ----------------------------------------

    cdef Py_ssize_t drain(self) except -1:
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

    cdef Py_ssize_t drain_worker(self, Link link) except -1:
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
                link.served()
                if call is not None:        # else: taken back from a dying worker
                    self.scheduler.note_run(link.claims.ran_for(h.slot))
                    left_ring(call)
                    link.release_slot(h.slot, True)
                    done.append(call.future)
                    done.append(value)
                    done.append(OUTCOME_EXCEPTION if h.kind == K_EXCEPTION else OUTCOME_RESULT)
                value = call = None
            elif h.kind == K_SKIPPED:
                ffr_consume(ring._ctl, consumed)
                call = self.tasks.pop(h.task_id, None)
                link.served()
                if call is None:
                    link.skipped(h.slot)
                else:
                    left_ring(call)
                    link.release_slot(h.slot, False)    # not run: it does not count
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

    cdef int forget_fds(self) except -1:
        """The result thread is done: drop what wait() kept (the Links)."""
        self.fd_links = []
        self.nfds = 0
        self.nrings = 0
        self.workers_changed = True
        return 0

    @cython.boundscheck(False)     # fd_links has nfds entries (rebuild_fds)
    @cython.wraparound(False)
    cdef list wait(self, double timeout):
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
        self.sleeping_until = INFINITY if poll_ms < 0 else ff_monotonic() + poll_ms * 1e-3
        with nogil:
            note_gil_released()
            r = ffp_poll(self.fds, self.nfds, poll_ms)
        self.sleeping_until = 0
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

