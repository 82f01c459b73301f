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
    """A process pool: its state, its workers and its queue, the submitting
    hot paths and the result thread's loop (fields: _process_core.pxd).  It
    keeps the pool's state and wires its parts: the CallEncoder (pickling),
    the Scheduler (which worker gets a call, and taking calls back from a
    stalled one), the LimitPolicy (time limits, kills on cancel()), the
    WaitSet (what the result thread sleeps on), and a WorkerHandle per
    worker (its state and the calls in its ring, by claim slot).

    process.py's _PoolCore adds only what the Python layer does: spawning a
    worker process (``spawn_worker()``, which calls ``add_worker()``) and
    starting the result thread (``start_result_thread()``, whose body is
    ``serve()``).

    ``lock`` (reentrant) serialises everything but the hot paths: starting,
    killing and replacing workers, segment-carried sends, state changes.
    """

    def __cinit__(self, *args, **kwargs):
        self.state = POOL_OPEN
        self.lock = RLock()
        self.workers = []
        self.scheduler = Scheduler()
        self.encoder = CallEncoder()
        self.waitset = WaitSet()
        self.queue = deque()
        self.stats = PoolStats()

    def __init__(self, int max_workers, max_tasks_per_child, bint dynamic_spawning,
                 bint zero_copy, double task_timeout, bint cancel_running, bint replace_dead):
        self.max_workers = max_workers
        self.max_tasks_per_child = max_tasks_per_child
        self.dynamic_spawning = dynamic_spawning
        self.zero_copy = zero_copy
        self.limits = LimitPolicy(task_timeout, cancel_running)
        self.replace_dead = replace_dead

    # -- what the Python layer provides ------------------------------------------

    def spawn_worker(self):
        """Start a worker process and add_worker() it (lock held)."""
        raise NotImplementedError

    def start_result_thread(self):
        """Start the thread that runs serve() (lock held)."""
        raise NotImplementedError

    def wake(self):
        """Wake the result thread (any thread)."""
        self.waitset.wake()

    def set_wake_pipe(self, int read_fd, int write_fd):
        """The result thread's wake-up pipe (non-blocking), which the pool
        closes (close_wake_pipe())."""
        self.waitset.adopt_pipe(read_fd, write_fd)

    def close_wake_pipe(self):
        self.waitset.close_pipe()

    @property
    def has_wake_pipe(self):
        return not self.waitset.pipe_closed

    def add_worker(self, process, channel):
        """``process`` was started for ``channel`` (lock held)."""
        self.workers.append(WorkerHandle(process, channel, self.max_tasks_per_child,
                                         self.limits.cancel_running, self.waitset))
        self.waitset.changed = True

    # -- for the executor --------------------------------------------------------

    def processes(self, bint ready_only=False):
        """{pid: process} of the workers (those whose initializer succeeded)."""
        cdef WorkerHandle worker
        return {worker.process.pid: worker.process for worker in list(self.workers)
                if not ready_only or worker.claims.is_ready()}

    def debug_state(self):
        """A snapshot of the pool's internals, for tests and debugging."""
        cdef WorkerHandle worker
        return {
            "state": self.state,
            "queued": len(self.queue),
            "mean_run": self.scheduler.mean_run,
            "read_ahead": self.scheduler.read_ahead,
            "workers": [worker.debug_state() for worker in self.workers],
        }

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
        cdef WorkerHandle worker
        cdef double kill_at = ff_monotonic() + KILL_GRACE
        with self.lock:
            for worker in self.workers:
                worker.terminate(kill_at)
        self.waitset.wake()

    # -- submitting ----------------------------------------------------------

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

    cdef bint should_wind_down(self) noexcept:
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
        its own: set_wake_pipe()).  A started one belongs to the parent (its
        workers, rings and result thread): this copy breaks, refuses work
        and never touches them; its futures are the parent's and are left
        as they are.  Returns True in that case."""
        self.lock = RLock()         # the parent's other threads may hold it
        if not self.started and not self.workers:
            return False
        self.mark_broken(errors.INHERITED_MESSAGE)
        self.take_all_futures()     # their cancel() must not touch the parent's claims
        for worker in self.workers:
            # Our copies of the parent's channels (descriptors, mappings):
            # closing them here touches nothing of the parent's.
            try:
                (<WorkerHandle>worker).channel.close()
            except Exception:
                pass
        self.workers = []
        self.waitset.forget()
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
        return self.make_call(fn, args, kwargs, self.limits.task_timeout)

    def submit_limited(self, fn, tuple args, dict kwargs, double limit):
        """submit() with a time limit (seconds; 0: none)."""
        return self.make_call(fn, args, kwargs, limit)

    cdef FutureCore make_call(self, fn, tuple args, dict kwargs, double limit):
        cdef Call call
        try:
            call = self.encoder.call(fn, args, kwargs)
        except Exception as exc:
            self.check_open()
            return self.failed_future(exc)
        if limit > 0:
            self.limits.limit(call, fn, limit)
        return self.enter(call)

    def submit_chunk(self, fn, list items, bint star, double limit=-1):
        """A future for ``list(map(fn, items))`` (``starmap`` when ``star``);
        ``limit``: seconds (0: none; -1: the pool's)."""
        cdef Call call
        try:
            call = self.encoder.chunk(fn, items, star)
        except Exception as exc:
            self.check_open()
            return self.failed_future(exc)
        if limit < 0:
            limit = self.limits.task_timeout
        if limit > 0:
            self.limits.limit(call, fn, limit)
        return self.enter(call)

    cdef FutureCore failed_future(self, exc):
        # As the stdlib's queue feeder does: only this future fails.
        cdef FutureCore future = new_future()
        self.stats.submitted += 1       # as the stdlib's, it fails alone
        self.stats.failed += 1
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
            return future
        call_accepted(self, call)
        if self.queue or not self.place(call):
            self.queue.append(call)
            if call.buffers is not None or self.record_size(call) > 0:
                # Nobody else may dispatch it soon (the workers can be idle).
                self.dispatch()
        return future

    cdef Py_ssize_t record_size(self, Call call):
        """0 when the call fits a ring record, else its size."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(call.fn_bytes) + PyBytes_GET_SIZE(call.rest)
        cdef WorkerHandle worker
        if self.workers:
            worker = self.workers[0]
            if worker.outbox.fits(n):
                return 0
        return n + 1

    cdef WorkerHandle least_loaded(self):
        return self.scheduler.choose(self.workers)

    cdef bint place(self, Call call) except -1:
        """Write a small call into the least loaded worker's ring; False when
        no worker has room (or the call needs a segment).  Runs no Python
        code: the caller's GIL makes it atomic."""
        cdef WorkerHandle best
        cdef int64_t task_id
        cdef int slot
        if call.buffers is not None or self.record_size(call):
            return False
        best = self.least_loaded()
        if best is None:
            return False
        FF_ASSERT(self.state != POOL_BROKEN)    # enter() checked, dispatch() holds the lock
        task_id = self.next_task_id
        slot = best.put(call, task_id)
        if not write_record(best.outbox, call.kind, call.flags, task_id, slot,
                            call.fn_bytes, call.rest):
            best.unput(slot)
            return False
        self.next_task_id = task_id + 1
        self.limits.placed(call, self.waitset)
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
                        self.stats.cancelled += 1
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
                    self.stats.failed += 1
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
        cdef WorkerHandle best = self.least_loaded()
        cdef int64_t task_id
        cdef int slot
        cdef bint sent = False
        if best is None:
            return False
        task_id = self.next_task_id
        self.next_task_id = task_id + 1
        slot = best.put(call, task_id)
        self.limits.placed(call, self.waitset)
        try:
            sent = best.endpoint.send(call.kind, task_id, call.fn_bytes + call.rest,
                                      call.buffers, call.flags, len(call.fn_bytes), slot)
        finally:
            # Unless an earlier kill or a broken pool took it meanwhile.
            if not sent and best.calls[slot] is call:
                best.unput(slot)
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
                        stop_workers(self.take_workers())     # nobody else would
                        raise
                self.start_result_thread()
                self.started = True
            if (self.dynamic_spawning and len(self.workers) < self.max_workers
                    and not self.has_idle_worker()):
                self.spawn_worker()
            call_accepted(self, call)
            self.queue.append(call)
            self.dispatch()
            self.ready = len(self.workers) >= self.max_workers
        if self.waitset.changed:
            self.waitset.wake()
        return 0

    cdef bint has_idle_worker(self):
        cdef WorkerHandle worker
        for worker in self.workers:
            if worker.takes_calls() and worker.in_flight == 0:
                return True
        return False

    cdef list take_workers(self):
        """Remove every worker from the pool and return them (lock held)."""
        cdef list workers = self.workers
        self.workers = []
        self.waitset.changed = True
        return workers

    cdef int remove_worker(self, WorkerHandle worker) except -1:
        """``worker``'s process has ended, its replies are read and its calls
        have left its ring (lock held)."""
        FF_ASSERT(worker.in_flight == 0)
        self.workers.remove(worker)
        self.waitset.changed = True
        worker.bury()
        return 0

    # -- the calls in the queue and in the rings (lock held) ------------------------

    cdef bint any_in_ring(self) noexcept:
        cdef WorkerHandle worker
        for worker in self.workers:
            if worker.in_flight:
                return True
        return False

    cdef list take_all_futures(self):
        """Empty the queue and the rings; return their futures (the pool is
        broken)."""
        cdef WorkerHandle worker
        cdef list futures = []
        for worker in self.workers:
            futures.extend([(<Call>call).future for call in worker.take_all()])
        futures.extend([(<Call>call).future for call in self.queue])
        self.queue.clear()
        self.stats.failed += len(futures)
        return futures

    cdef list take_unstarted(self):
        """shutdown(cancel_futures=True): empty the queue; return its futures
        and those of the calls in the workers' rings, except the first call
        of each worker still starting (it runs: what the stdlib's pool has
        handed to its call queue runs too, and a pool shut down right after
        its submits runs some).  Cancelling fails for the calls a worker
        claims meanwhile."""
        cdef WorkerHandle worker
        cdef Call call, spared
        cdef list futures = [(<Call>call).future for call in self.queue]
        self.queue.clear()
        self.stats.cancelled += len(futures)      # cancelled by the caller, never run
        for worker in self.workers:
            # Its oldest call: usually the first record in its ring (a
            # segment-carried send, which runs Python code, can let a later
            # call in first; one call is spared either way).
            spared = None if worker.has_begun() else worker.first_pending()
            for call in worker.calls:
                if call is not None and call is not spared:
                    futures.append(call.future)
        return futures

    cdef list take_back(self, WorkerHandle worker):
        """The calls ``worker`` has not claimed go back to the front of the
        queue, in order (they run elsewhere); returns the futures of calls
        that cancel() stopped meanwhile (to notify)."""
        cdef list back = []
        cdef list cancelled = []
        worker.take_back(back, cancelled)
        self.stats.cancelled += len(cancelled)
        for call in reversed(back):
            self.queue.appendleft(call)
        return cancelled

    # -- the result thread -----------------------------------------------------

    def serve(self):
        """The result thread's body: read replies and complete their futures,
        hand queued calls to workers, watch the workers (exits, time limits,
        kill requests), wind the pool down.  Returns when every worker is
        gone or the pool broke."""
        cdef WorkerHandle worker
        cdef double timeout
        try:
            while True:
                self.drain()
                if self.cause is not None:
                    self.break_pool(self.cause)
                    return
                if self.should_wind_down() and self.wind_down():
                    return
                timeout = self.rebalance()
                if self.limits.active() or self.any_kill_due():
                    timeout = earliest(timeout, self.enforce_limits())
                if self.cause is not None:  # a kill read an unreadable reply
                    self.break_pool(self.cause)
                    return
                for worker in self.waitset.wait(self.workers, timeout, self.limits):
                    if not self.worker_exited(worker):
                        return
        except BaseException as exc:
            self.break_pool(format_exception(type(exc), exc, exc.__traceback__))
            raise
        finally:
            self.waitset.forget()

    cdef bint wind_down(self) except -1:
        """Shutting down: cancel what shutdown() asked to, and once no call
        is left, tell the workers to leave.  True when every worker is gone."""
        cdef list cancelled = []
        cdef WorkerHandle worker
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
            if self.queue or self.any_in_ring():
                return False
            for worker in self.workers:
                worker.tell_to_leave()
            return not self.workers

    cdef bint worker_exited(self, WorkerHandle worker) except -1:
        """``worker``'s process ended.  False when that broke the pool."""
        cdef bint expected, stranded, retired
        self.drain_worker(worker)         # its last replies
        if self.cause is not None:
            self.break_pool(self.cause)
            return False
        if worker.state == WORKER_DYING:
            return self.replace(worker)
        expected = worker.exit_expected()
        if not expected and self.replace_dead and worker.claims.is_ready():
            # Died alone after a successful start (an initializer failure
            # still breaks the pool, as in the stdlib).
            return self.replace(worker)
        # A worker may only exit when told to, or after its last task
        # (max_tasks_per_child), with every reply read.
        if not expected:
            worker.process.join()       # it exited: this only reaps it, for its exit code
            self.break_pool(errors.abrupt_exits([w.process for w in self.workers]))
            return False
        retired = worker.state == WORKER_RETIRING
        with self.lock:
            self.remove_worker(worker)
            stranded = (STRANDED_WORK_FAILS and retired and self.executor_collected
                        and not self.workers and bool(self.queue or self.any_in_ring()))
            # Replaced while work is queued, also when shutting down: the
            # queued calls still run (as the stdlib's do).
            if not stranded and retired and (self.queue or not self.should_wind_down()):
                self.spawn_worker()
                self.stats.workers_replaced += 1
            self.dispatch()
        if stranded:
            self.break_pool(None, errors.STRANDED_MESSAGE)
            return False
        return True

    cdef bint replace(self, WorkerHandle worker) except -1:
        """A worker that was killed, or died alone (on_worker_death="replace"),
        is gone and its replies are read: the calls it had started fail with
        WorkerDied, those it had not run elsewhere, a replacement starts."""
        cdef list started, notify
        worker.process.join()
        with self.lock:
            notify = self.take_back(worker)
            started = worker.take_started(ALL_SLOTS)
            for call in started:
                call_died(self, False)
            self.remove_worker(worker)
            if self.queue or not self.should_wind_down():
                self.spawn_worker()
                self.stats.workers_replaced += 1
            self.dispatch()
        pid, exitcode = worker.process.pid, worker.process.exitcode
        for call in started:
            fail((<Call>call).future, errors.worker_died(pid, exitcode))
        notify_cancelled(notify)
        return True

    cdef bint any_kill_due(self) noexcept:
        cdef WorkerHandle worker
        for worker in self.workers:
            if worker.kill_at > 0:
                return True
        return False

    cdef double rebalance(self) except? -2:
        """Take back the calls waiting behind a long one (Scheduler) and hand
        them to other workers.  Returns the seconds until a worker could
        stall (-1: none can)."""
        cdef list victims, notify = []
        cdef WorkerHandle worker
        cdef double timeout
        victims, timeout = self.scheduler.find_stalled(self.workers)
        if victims:
            with self.lock:
                for worker in victims:
                    notify += self.take_back(worker)
                self.dispatch()
            notify_cancelled(notify)
        return timeout

    cdef double enforce_limits(self) except? -2:
        """Kill the workers whose call ran out of time or was cancelled while
        running; SIGKILL those still there after the grace period.  Returns
        the seconds until something is due (-1: nothing)."""
        cdef WorkerHandle worker
        cdef Call call
        cdef uint64_t slots
        cdef double timeout = -1, left, now
        if self.limits.cancel_running:
            for worker in list(self.workers):
                slots = worker.take_kill_requests()
                if slots:
                    self.kill_worker(worker, None, slots)
        if self.limits.any_limits:
            late, timeout = self.limits.overdue(self.workers)
            for call in late:
                if call.worker is not None:   # else answered meanwhile (an earlier kill read it)
                    self.kill_worker(call.worker, call, 0)
        now = ff_monotonic()
        for worker in self.workers:
            left = worker.kill_if_due(now)
            if left >= 0 and (timeout < 0 or left < timeout):
                timeout = left
        return timeout

    cdef int kill_worker(self, WorkerHandle worker, Call timed_out, uint64_t cancelled_slots) except -1:
        """Stop ``worker``'s worker, running the call ``timed_out`` or those in
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
        if timed_out is not None:
            slots |= <uint64_t>1 << timed_out.slot
        with self.lock:
            if worker.hold():
                notify = self.take_back(worker)
        try:
            if worker.state == WORKER_HELD:
                try:
                    self.drain_worker(worker)
                finally:
                    with self.lock:
                        if not worker.runs_any(slots) or self.cause is not None:
                            worker.release_hold()
                        else:
                            worker.start_dying(ff_monotonic() + KILL_GRACE)
            with self.lock:
                if worker.state == WORKER_DYING:
                    if timed_out is not None:
                        timeouts = worker.take_started(<uint64_t>1 << timed_out.slot)
                        for call in timeouts:
                            call_died(self, True)
                    if cancelled_slots:
                        killed = worker.take_started(cancelled_slots)
                        self.stats.cancelled += len(killed)
                        notify += [(<Call>call).future for call in killed]
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
        stop_workers(workers)
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
        cdef WorkerHandle worker
        for worker in list(self.workers):
            count += self.drain_worker_replies(worker, done)
            if self.cause is not None:
                break
        if count:
            if self.cause is None:
                self.dispatch()
            complete_all(done)
        return count

    cdef Py_ssize_t drain_worker(self, WorkerHandle worker) except -1:
        """Replies of one worker (that just exited)."""
        cdef list done = []
        cdef Py_ssize_t count = self.drain_worker_replies(worker, done)
        complete_all(done)
        return count

    cdef Py_ssize_t drain_worker_replies(self, WorkerHandle worker, list done) except -1:
        cdef Ring ring = worker.inbox
        cdef const char *p
        cdef uint32_t n
        cdef uint64_t consumed
        cdef ffm_header h
        cdef Py_ssize_t count = 0
        cdef bint consumed_already
        cdef object value
        cdef Call call
        cdef double ran_for, started_at
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
                        value = self.decode_with_segment(worker, record)
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
                ran_for = worker.claims.ran_for(h.slot) if h.slot < <uint32_t>MAX_IN_FLIGHT else -1
                started_at = worker.claims.started_at(h.slot) if h.slot < <uint32_t>MAX_IN_FLIGHT else 0
                call = worker.answered(h.slot, h.task_id, True)
                if call is not None:
                    call_replied(self, call, started_at, h.kind == K_EXCEPTION)
                if h.flags & F_WORKER_EXITING:
                    worker.retire()
                worker.served()
                if call is not None:        # else: taken back from a dying worker
                    self.scheduler.note_run(ran_for)
                    done.append(call.future)
                    done.append(value)
                    done.append(OUTCOME_EXCEPTION if h.kind == K_EXCEPTION else OUTCOME_RESULT)
                value = call = None
            elif h.kind == K_SKIPPED:
                ffr_consume(ring._ctl, consumed)
                call = worker.answered(h.slot, h.task_id, False)   # not run: not counted
                worker.served()
                if call is None:
                    worker.skipped(h.slot)
                else:
                    self.stats.cancelled += 1
                    done.append(call.future)
                    done.append(None)
                    done.append(OUTCOME_SKIPPED)
                call = None
            else:
                record = PyBytes_FromStringAndSize(p + sizeof(h), n - sizeof(h))
                ffr_consume(ring._ctl, consumed)
                with self.lock:
                    worker.endpoint.handle_control(h.kind, record)
                record = None
        if count and ring._ctl != NULL and ffr_writer_to_wake(ring._ctl):
            ffr_wake_fd(ring._peer_wake_fd)
        if worker.endpoint.pending_releases:
            with self.lock:
                worker.endpoint.flush_releases()
        return count

    cdef object decode_with_segment(self, WorkerHandle worker, bytes record):
        kind, flags, task_id, fn_len, payload, buffers = worker.endpoint.decode(
            record, self.zero_copy)
        if kind == K_RAW_RESULT:
            return payload
        return loads(payload, buffers=buffers)
