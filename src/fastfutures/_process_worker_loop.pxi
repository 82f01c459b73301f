# Included by _process_core.pyx: the worker's side.

cdef class WorkerLoop:
    """A worker's serve loop: read requests, claim them, run them, reply
    (fields: _process_core.pxd)."""

    def __init__(self, endpoint, sleep, max_tasks):
        self.endpoint = endpoint
        self.inbox = endpoint.inbox
        self.outbox = endpoint.outbox
        self.claims = endpoint.claims
        self.sleep = sleep
        self.max_tasks = max_tasks
        self.functions = {}
        self.pickler = ReusablePickler()

    def serve(self):
        cdef Ring inbox = self.inbox
        cdef const char *p
        cdef uint32_t n
        cdef uint64_t consumed
        cdef ffm_header h
        cdef bint got
        cdef object payload, buffers
        # Started (its initializer succeeded): the parent's scheduler may
        # now move calls here that wait behind a long one elsewhere.
        ffr_wake_fd(self.outbox._peer_wake_fd)
        while True:
            p = ffr_peek(inbox._ctl, inbox._data, inbox._cap, &n, &consumed)
            if p == NULL:
                if self.endpoint.pending_releases:
                    self.endpoint.flush_releases()
                with nogil:
                    got = spin_until_nonempty(&inbox._ctl, 1, WORKER_SPIN_SECONDS)
                if got:
                    continue
                if ffr_reader_prepare_sleep(inbox._ctl):
                    try:
                        self.sleep()
                    finally:
                        ffr_reader_awake(inbox._ctl)
                else:
                    ffr_reader_awake(inbox._ctl)
                continue
            memcpy(&h, p, sizeof(h))
            buffers = None
            if ((h.kind == K_CALL or h.kind == K_CHUNK)
                    and not self.claims.claim(h.slot)):
                ffr_consume(inbox._ctl, consumed)
                self.skip(h)
                continue
            if h.nbuf == 0:
                payload = PyBytes_FromStringAndSize(p + sizeof(h), n - sizeof(h))
                ffr_consume(inbox._ctl, consumed)
            else:
                record = PyBytes_FromStringAndSize(p, n)
                ffr_consume(inbox._ctl, consumed)
                _, _, _, _, payload, buffers = self.endpoint.decode(record)
                record = None
            if ffr_writer_to_wake(inbox._ctl):
                ffr_wake_fd(inbox._peer_wake_fd)
            if h.kind == K_CALL or h.kind == K_CHUNK:
                self.tasks_done += 1
                exiting = self.max_tasks is not None and self.tasks_done >= self.max_tasks
                self.run(h, payload, buffers, exiting)
                payload = buffers = None
                if exiting:
                    return
            elif h.kind == K_EXIT:
                return
            else:
                self.endpoint.handle_control(h.kind, bytes(payload))

    cdef int skip(self, ffm_header h) except -1:
        """A call cancelled before we claimed it: not run, its segment (if
        any) handed back unread."""
        if ffr_writer_to_wake(self.inbox._ctl):
            ffr_wake_fd(self.inbox._peer_wake_fd)
        if h.nbuf:
            self.endpoint.peer_segments.get(h.seg_id)   # keeps the fd socket in step
            self.endpoint.pending_releases.append(h.seg_id)
        self.reply(K_SKIPPED, h.task_id, h.slot, None, 0)
        return 0

    cdef object function(self, payload, Py_ssize_t fn_len):
        key = bytes(payload[:fn_len])
        fn = self.functions.get(key)
        if fn is None:
            fn = loads(key)
            if len(self.functions) >= FN_CACHE_SIZE:
                self.functions.clear()
            self.functions[key] = fn
        return fn

    cdef int run(self, ffm_header h, payload, buffers, bint exiting) except -1:
        cdef Py_ssize_t fn_len = h.fn_len
        cdef uint8_t flags = F_WORKER_EXITING if exiting else 0
        cdef object fn, args, kwargs = None
        cdef double started
        # Unpickling errors propagate: the worker dies and the pool breaks,
        # as in the stdlib.
        if fn_len:
            fn = self.function(payload, fn_len)
            if h.flags & F_NO_ARGS:
                args = ()
            elif h.kind == K_CALL and h.flags & F_WITH_KWARGS:
                args, kwargs = loads(memoryview(payload)[fn_len:], buffers=buffers)
            else:
                args = loads(memoryview(payload)[fn_len:], buffers=buffers)
        elif h.kind == K_CALL:
            fn, args, kwargs = loads(payload, buffers=buffers)
        else:
            fn, args = loads(payload, buffers=buffers)
        payload = buffers = None
        started = ff_monotonic()
        self.claims.started(h.slot, started)
        try:
            if h.kind == K_CHUNK:
                result = list(starmap(fn, args) if h.flags & F_STAR else map(fn, args))
            elif kwargs:
                result = fn(*args, **kwargs)
            else:
                result = fn(*args)
        except BaseException as exc:
            self.claims.ran(h.slot, ff_monotonic() - started)
            fn = args = kwargs = None
            self.reply(K_EXCEPTION, h.task_id, h.slot,
                       _ExceptionWithTraceback(exc, exc.__traceback__), flags)
            exc = None
        else:
            self.claims.ran(h.slot, ff_monotonic() - started)
            fn = args = kwargs = None
            self.reply(K_RESULT, h.task_id, h.slot, result, flags)
        return 0

    cdef int reply(self, uint8_t kind, int64_t task_id, uint32_t slot, value,
                   uint8_t flags) except -1:
        cdef bytes payload
        cdef object buffers = None
        cdef Ring outbox = self.outbox
        if kind == K_SKIPPED:
            payload = EMPTY
        elif kind == K_RESULT and value is None:
            payload = EMPTY
            flags |= F_NONE_RESULT
        elif (kind == K_RESULT and type(value) is bytes
                and len(<bytes>value) >= transport.OOB_THRESHOLD):
            # The whole result is one big bytes: send it raw, as a buffer.
            kind = K_RAW_RESULT
            payload = EMPTY
            buffers = [memoryview(value)]
        else:
            try:
                payload, buffers = self.pickler.dumps(value)
            except BaseException as exc:
                kind = K_EXCEPTION
                self.pickler = ReusablePickler()
                payload, buffers = self.pickler.dumps(
                    _ExceptionWithTraceback(exc, exc.__traceback__))
                exc = None
        value = None
        while True:
            if buffers is None and outbox.fits(len(payload)):
                if write_record(outbox, kind, flags, task_id, slot, EMPTY, payload):
                    return 0
            elif self.endpoint.send(kind, task_id, payload, buffers, flags, 0, slot):
                return 0
            # The parent is behind: wait for room in the reply ring.
            if ffr_writer_prepare_wait(outbox._ctl, outbox._cap,
                                       min(len(payload) + 256, outbox.max_record)):
                self.sleep()

