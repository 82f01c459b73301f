# Included by _process_core.pyx: what the result thread sleeps on.

cdef class WaitSet:
    """The result thread's poll set: its wake-up pipe, and per worker the
    reply ring's wake-up fd and the process sentinel (fields:
    _process_core.pxd).  The only writer and closer of the wake-up pipe:
    wake() and close_pipe() run no Python code between the check and the
    write, so the GIL orders them (a wake() never writes to a closed, maybe
    reused, descriptor)."""

    def __cinit__(self):
        self.wake_fd = -1
        self.wake_write_fd = -1
        self.pipe_closed = True
        self.changed = True
        self.fd_workers = []

    def __dealloc__(self):
        PyMem_Free(self.fds)
        PyMem_Free(self.rings)

    def adopt_pipe(self, int read_fd, int write_fd):
        """The wake-up pipe (non-blocking), now this object's to close."""
        self.wake_fd = read_fd
        self.wake_write_fd = write_fd
        self.pipe_closed = False
        self.changed = True

    cpdef void wake(self) noexcept:
        """Wake the result thread (any thread; a no-op once closed)."""
        if not self.pipe_closed:
            ffr_wake_fd(self.wake_write_fd)

    def close_pipe(self):
        if self.pipe_closed:
            return
        self.pipe_closed = True
        os_close(self.wake_fd)
        os_close(self.wake_write_fd)

    def forget_pipe(self):
        """A forked child: the pipe is the parent's; close our copies."""
        self.close_pipe()

    cdef bint sleeps_past(self, double seconds) noexcept:
        """The result thread sleeps longer than ``seconds`` from now."""
        return (self.sleeping_until > 0
                and self.sleeping_until > ff_monotonic() + seconds)

    cdef int rebuild(self, list workers) except -1:
        cdef WorkerHandle worker
        cdef Py_ssize_t n = 1 + 2 * len(workers)
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
        for worker in workers:
            rings[self.nrings] = worker.inbox._ctl
            self.nrings += 1
        fds[0].fd = self.wake_fd
        fds[0].events = POLLIN
        self.fd_workers = [None]
        for worker in workers:
            fds[i].fd = worker.wake_read_fd
            fds[i].events = POLLIN
            fds[i + 1].fd = worker.sentinel
            fds[i + 1].events = POLLIN
            self.fd_workers.append(None)
            self.fd_workers.append(worker)
            i += 2
        self.nfds = i
        self.changed = False
        return 0

    cdef int forget(self) except -1:
        """The result thread is done: drop what wait() kept (the handles)."""
        self.fd_workers = []
        self.nfds = 0
        self.nrings = 0
        self.changed = True
        return 0

    @cython.boundscheck(False)     # fd_workers has nfds entries (rebuild())
    @cython.wraparound(False)
    cdef list wait(self, list workers, double timeout, LimitPolicy limits):
        """Sleep until a reply, a wake-up, a worker's exit or ``timeout``
        seconds (-1: no limit).  Spins a little first while a reply is
        expected; does not sleep when a timed call came since ``limits``
        looked (checked last, under the GIL: a later one wakes us).  Returns
        the handles whose process ended (usually none)."""
        cdef WorkerHandle worker
        cdef Py_ssize_t i, prepared = 0
        cdef bint may_sleep = True
        cdef bint expecting = False
        cdef int r, poll_ms
        if self.changed:
            self.rebuild(workers)
        for worker in workers:
            if worker.in_flight > 0:
                expecting = True
        if expecting and RESULT_SPIN_SECONDS > 0:
            with nogil:
                note_gil_released()
                r = spin_until_nonempty(self.rings, self.nrings, RESULT_SPIN_SECONDS)
            if r:
                return EMPTY_LIST
        for worker in workers:
            prepared += 1
            if not ffr_reader_prepare_sleep(worker.inbox._ctl):
                may_sleep = False
                break
        if not may_sleep or limits.unseen():
            poll_ms = 0
        elif timeout >= 0:
            poll_ms = <int>(timeout * 1000) + 1
        else:
            poll_ms = -1
        self.sleeping_until = INFINITY if poll_ms < 0 else ff_monotonic() + poll_ms * 1e-3
        with nogil:
            note_gil_released()
            r = ffp_poll(self.fds, self.nfds, poll_ms)
        self.sleeping_until = 0
        for i in range(prepared):
            ffr_reader_awake((<WorkerHandle>workers[i]).inbox._ctl)
        if r <= 0:
            return EMPTY_LIST
        fired = []
        for i in range(self.nfds):
            if self.fds[i].revents:
                worker = self.fd_workers[i]
                if worker is None:
                    drain_pipe(self.fds[i].fd)
                else:
                    fired.append(worker)
        return fired
