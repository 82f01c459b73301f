"""Shared-memory primitives of the process pool's transport.

``Ring``: one direction of a worker channel, a single-producer
single-consumer byte ring laid out in a shared segment (see _shm_ring.h for
the memory ordering and the sleep/wake protocol).

``SharedView``: a buffer-protocol object over part of a shared segment.  It
keeps ``owner`` alive for as long as any memoryview or numpy array made from
it exists, which is how a zero-copy result gives its segment back: when the
user drops the last view, ``owner`` is collected and its ``__del__`` returns
the segment to the worker that wrote it.
"""
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE,
                             PyBUF_SIMPLE, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES)
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
cimport cython
from libc.stdint cimport uint64_t, uint32_t, uint16_t, uint8_t, int64_t
from libc.string cimport memcpy, memset

# The wire format, for the Python side (_transport): _shm_ring.h's, never
# repeated there.
RING_HEADER_SIZE = FFR_CTL_SIZE
MESSAGE_HEADER_SIZE = sizeof(ffm_header)
SPAN_SIZE = sizeof(ffm_span)
SPAN_ALIGN = FFM_SPAN_ALIGN
CLAIM_SLOTS = FFC_SLOTS
CLAIM_SLOT_SIZE = sizeof(ffc_slot)
SEGMENT_HELLO_SIZE = sizeof(ffm_segment_hello)

CALL = FFM_CALL
EXIT = FFM_EXIT
RESULT = FFM_RESULT
RAW_RESULT = FFM_RAW_RESULT
EXCEPTION = FFM_EXCEPTION
RELEASE = FFM_RELEASE
FORGET = FFM_FORGET
CHUNK = FFM_CHUNK
SKIPPED = FFM_SKIPPED
PAYLOAD_IN_SEGMENT = FFM_PAYLOAD_IN_SEGMENT
WORKER_EXITING = FFM_WORKER_EXITING
NO_ARGS = FFM_NO_ARGS
WITH_KWARGS = FFM_WITH_KWARGS
STAR = FFM_STAR
NONE_RESULT = FFM_NONE_RESULT


def channel_layout(uint64_t capacity):
    """``(requests, replies, claims, returns_to_parent, returns_to_worker,
    size)``: the offsets of a channel's parts (message rings of ``capacity``
    bytes) and its segment's size."""
    cdef ffch_layout l = ffch_layout_for(capacity)
    return l.requests, l.replies, l.claims, l.returns_to_parent, l.returns_to_worker, l.size


RETURNS_CAPACITY = FFCH_RETURNS_CAPACITY
RECORD_SLACK = FFM_RECORD_SLACK


def pack_header(int kind, int flags, int nbuf, uint32_t seg_id, int64_t task_id,
                uint32_t fn_len, uint32_t slot):
    """The ffm_header of a message, as bytes."""
    cdef ffm_header h
    memset(&h, 0, sizeof(h))
    h.kind = <uint8_t>kind
    h.flags = <uint8_t>flags
    h.nbuf = <uint16_t>nbuf
    h.seg_id = seg_id
    h.task_id = task_id
    h.fn_len = fn_len
    h.slot = slot
    return PyBytes_FromStringAndSize(<char *>&h, sizeof(h))


@cython.boundscheck(False)         # the length is checked first
def unpack_header(const unsigned char[::1] record):
    """``(kind, flags, nbuf, seg_id, task_id, fn_len, slot)`` of a message."""
    cdef ffm_header h
    if record.shape[0] < <Py_ssize_t>sizeof(h):
        raise ValueError("message shorter than its header")
    memcpy(&h, &record[0], sizeof(h))
    return h.kind, h.flags, h.nbuf, h.seg_id, h.task_id, h.fn_len, h.slot


def pack_spans(spans):
    """The ffm_spans of ``(offset, length)`` pairs, as bytes."""
    cdef ffm_span span
    parts = []
    for offset, length in spans:
        span.offset = offset
        span.length = length
        parts.append(PyBytes_FromStringAndSize(<char *>&span, sizeof(span)))
    return b"".join(parts)


@cython.boundscheck(False)         # the length is checked first
def unpack_spans(const unsigned char[::1] record, int nbuf):
    """The ``(offset, length)`` pairs after a message's header."""
    cdef ffm_span span
    cdef Py_ssize_t at = sizeof(ffm_header)
    if nbuf < 0 or record.shape[0] < at + nbuf * <Py_ssize_t>sizeof(span):
        raise ValueError("message shorter than its buffer spans")
    out = []
    for i in range(nbuf):
        memcpy(&span, &record[at + i * sizeof(span)], sizeof(span))
        out.append((span.offset, span.length))
    return out


def pack_ids(ids):
    """A RELEASE / FORGET payload: segment ids as an ffm_seg_id array."""
    cdef ffm_seg_id seg_id
    cdef Py_ssize_t i, n = len(ids)
    out = PyBytes_FromStringAndSize(NULL, n * sizeof(ffm_seg_id))
    cdef char *p = PyBytes_AS_STRING(out)
    for i in range(n):
        seg_id = ids[i]
        memcpy(p + i * sizeof(ffm_seg_id), &seg_id, sizeof(ffm_seg_id))
    return out


@cython.boundscheck(False)         # whole ids only
def unpack_ids(const unsigned char[::1] payload):
    """The segment ids of a RELEASE / FORGET payload."""
    cdef ffm_seg_id seg_id
    cdef Py_ssize_t i, n = payload.shape[0] // <Py_ssize_t>sizeof(ffm_seg_id)
    if payload.shape[0] % <Py_ssize_t>sizeof(ffm_seg_id):
        raise ValueError("segment id list of %d bytes" % payload.shape[0])
    out = []
    for i in range(n):
        memcpy(&seg_id, &payload[i * sizeof(ffm_seg_id)], sizeof(ffm_seg_id))
        out.append(seg_id)
    return out


def pack_hello(uint32_t seg_id, uint64_t size):
    """The ffm_segment_hello that travels with a new segment's descriptor."""
    cdef ffm_segment_hello hello
    memset(&hello, 0, sizeof(hello))
    hello.seg_id = seg_id
    hello.size = size
    return PyBytes_FromStringAndSize(<char *>&hello, sizeof(hello))


@cython.boundscheck(False)         # the length is checked first
def unpack_hello(const unsigned char[::1] data):
    """``(seg_id, size)`` of an ffm_segment_hello."""
    cdef ffm_segment_hello hello
    if data.shape[0] != <Py_ssize_t>sizeof(hello):
        raise ValueError("segment hello of %d bytes" % data.shape[0])
    memcpy(&hello, &data[0], sizeof(hello))
    return hello.seg_id, hello.size


cdef class Ring:
    """One end of a shared SPSC ring: ``Ring(segment, offset, capacity, peer_wake_fd)``.

    ``peer_wake_fd`` is the write end of the pipe the *other* process sleeps
    on: the writer writes a byte there when the reader sleeps, the reader
    when the writer waits for room.
    """
    # Fields: see _shm.pxd.

    def __cinit__(self, segment, Py_ssize_t offset, Py_ssize_t capacity, int peer_wake_fd):
        if capacity < FFR_MIN_CAPACITY or (capacity & (capacity - 1)) != 0:
            raise ValueError("ring capacity must be a power of two >= %d" % FFR_MIN_CAPACITY)
        PyObject_GetBuffer(segment, &self._view, PyBUF_WRITABLE)
        self._has_view = True
        if (offset < 0 or offset % FFR_CTL_ALIGN
                or offset + FFR_CTL_SIZE + capacity > self._view.len):
            self.close()
            raise ValueError("ring does not fit in the segment")
        self._ctl = <ffr_ctl *>(<char *>self._view.buf + offset)
        self._data = <char *>self._view.buf + offset + FFR_CTL_SIZE
        self._cap = capacity
        self._peer_wake_fd = peer_wake_fd
        self.max_record = FFR_MAX_RECORD(capacity)

    def close(self):
        if self._has_view:
            self._has_view = False
            self._ctl = NULL
            PyBuffer_Release(&self._view)

    def __dealloc__(self):
        if self._has_view:
            PyBuffer_Release(&self._view)

    cdef int _check(self) except -1:
        if self._ctl == NULL:
            raise ValueError("ring is closed")
        return 0

    cpdef bint fits(self, Py_ssize_t size) noexcept:
        """Whether a message whose header is followed by ``size`` more bytes
        (buffer spans and payload) fits in one record (the one rule for
        both sides; bigger payloads travel in a buffer segment)."""
        return <Py_ssize_t>sizeof(ffm_header) + size < self.max_record - FFM_RECORD_SLACK

    def write(self, bytes header, bytes payload):
        """Append header+payload as one record; False when there is no room.
        One call under the GIL: writers in several threads never interleave."""
        self._check()
        cdef int r = ffr_write3(self._ctl, self._data, self._cap,
                                PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header),
                                PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload),
                                NULL, 0)
        if r < 0:
            return False
        if r > 0 and self._peer_wake_fd >= 0:
            ffr_wake_fd(self._peer_wake_fd)
        return True

    def read(self):
        """The next record as bytes, or None when the ring is empty: for the
        rings read from Python (segment returns, tests); the message rings'
        readers are compiled (_process_core)."""
        self._check()
        cdef uint32_t n
        cdef uint64_t consumed
        cdef const char *p = ffr_peek(self._ctl, self._data, self._cap, &n, &consumed)
        if p == NULL:
            return None
        record = PyBytes_FromStringAndSize(p, n)
        ffr_consume(self._ctl, consumed)
        if ffr_writer_to_wake(self._ctl) and self._peer_wake_fd >= 0:
            ffr_wake_fd(self._peer_wake_fd)
        return record

    # The first half of the sleep/wake protocol, from Python (tests; the
    # compiled loops call the C functions).

    def prepare_sleep(self):
        """Reader about to block: True when it may (the writer will wake
        it), False when data arrived meanwhile."""
        self._check()
        return bool(ffr_reader_prepare_sleep(self._ctl))

    def prepare_wait(self, Py_ssize_t size):
        """Writer about to block for room for a ``size``-byte record: True
        when it may (the reader will wake it)."""
        self._check()
        return bool(ffr_writer_prepare_wait(self._ctl, self._cap, size))


cdef class Claims:
    """``Claims(segment, offset, count)``: the claim slots of one channel and
    the worker's ready word after them (see _shm_ring.h).  Holds a view of
    the segment, so the slots stay mapped for as long as anyone holds this
    object."""
    # Fields and the inline operations: see _shm.pxd.

    def __cinit__(self, segment, Py_ssize_t offset, int count):
        PyObject_GetBuffer(segment, &self._view, PyBUF_WRITABLE)
        self._has_view = True
        if (count < 0 or offset < 0 or offset % FFR_CTL_ALIGN
                or offset + count * <Py_ssize_t>sizeof(ffc_slot) + FFC_READY_BYTES
                > self._view.len):
            raise ValueError("claim slots do not fit in the segment")
        self._slots = <ffc_slot *>(<char *>self._view.buf + offset)
        self._ready = <uint32_t *>(<char *>self._view.buf + offset + count * sizeof(ffc_slot))
        self.count = count

    def mark_ready(self):
        """Worker: the initializer succeeded."""
        self.set_ready()

    # The slot operations from Python (tests); the compare-and-swaps run
    # without the GIL, so two threads really race.

    def _slot(self, int slot):
        if not 0 <= slot < self.count:
            raise IndexError("claim slot out of range")
        return slot

    def offer_call(self, int slot):
        self.offer(self._slot(slot))

    def claim_call(self, int slot):
        """True when the call is ours to run."""
        cdef bint won
        slot = self._slot(slot)
        with nogil:
            won = ffc_claim(&self._slots[slot])
        return won

    def cancel_call(self, int slot):
        """True when the call was cancelled before any claim."""
        cdef bint won
        slot = self._slot(slot)
        with nogil:
            won = ffc_cancel(&self._slots[slot])
        return won

    def is_claimed(self, int slot):
        return self.claimed(self._slot(slot))

    @property
    def ready(self):
        return self.is_ready()

    def __dealloc__(self):
        if self._has_view:
            PyBuffer_Release(&self._view)


cdef class SharedView:
    """``SharedView(segment, offset, length, owner, readonly=False)``: a
    1-D unsigned-byte buffer over ``segment[offset:offset+length]``.
    Holds ``owner`` (and the segment mapping) until every view made from it
    is gone."""
    cdef Py_buffer _src
    cdef bint _has_src
    cdef char *_ptr
    cdef Py_ssize_t _shape[1]
    cdef Py_ssize_t _strides[1]
    cdef readonly bint readonly
    cdef readonly object owner

    def __cinit__(self, segment, Py_ssize_t offset, Py_ssize_t length, owner, bint readonly=False):
        PyObject_GetBuffer(segment, &self._src, PyBUF_SIMPLE)
        self._has_src = True
        if offset < 0 or length < 0 or offset + length > self._src.len:
            raise ValueError("view outside the segment")
        self._ptr = <char *>self._src.buf + offset
        self._shape[0] = length
        self._strides[0] = 1
        self.readonly = readonly
        self.owner = owner

    def __len__(self):
        return self._shape[0]

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if (flags & PyBUF_WRITABLE) and self.readonly:
            raise BufferError("shared view is read-only")
        buffer.buf = self._ptr
        buffer.obj = self
        buffer.len = self._shape[0]
        buffer.readonly = self.readonly
        buffer.itemsize = 1
        buffer.format = NULL
        if flags & PyBUF_FORMAT:
            buffer.format = b"B"
        buffer.ndim = 1
        buffer.shape = NULL
        buffer.strides = NULL
        if flags & PyBUF_ND:
            buffer.shape = self._shape
        if (flags & PyBUF_STRIDES) == PyBUF_STRIDES:
            buffer.strides = self._strides
        buffer.suboffsets = NULL
        buffer.internal = NULL

    def __releasebuffer__(self, Py_buffer *buffer):
        pass

    def __dealloc__(self):
        if self._has_src:
            PyBuffer_Release(&self._src)


cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/mman.h>
    /* Fresh memory for a large copy: ask for transparent huge pages on the
       2 MiB-aligned interior, so the copy takes a handful of page faults
       instead of one per 4 KiB (on small VMs the faults, not the copy,
       dominate).  A hint: ignored where THP is off. */
    static void ffs_advise_huge(char *p, Py_ssize_t n) {
        const uintptr_t huge = (uintptr_t)2 << 20;
        uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1);
        uintptr_t end = ((uintptr_t)p + (uintptr_t)n) & ~(huge - 1);
        if (end > start)
            (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
    }
    #else
    static void ffs_advise_huge(char *p, Py_ssize_t n) { (void)p; (void)n; }
    #endif
    """
    void ffs_advise_huge(char *p, Py_ssize_t n) nogil

from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING

# Copies this large are worth a huge-page hint and a GIL release.
cdef Py_ssize_t LARGE_COPY = 4 << 20


def copy_out(segment, Py_ssize_t offset, Py_ssize_t length, bint as_bytearray=False):
    """``bytes`` (or ``bytearray``) copy of ``segment[offset:offset+length]``;
    the copy runs without the GIL when it is large."""
    cdef Py_buffer src
    cdef char *dest
    PyObject_GetBuffer(segment, &src, PyBUF_SIMPLE)
    try:
        if offset < 0 or length < 0 or offset + length > src.len:
            raise ValueError("copy outside the segment")
        if as_bytearray:
            out = PyByteArray_FromStringAndSize(NULL, length)
            dest = PyByteArray_AS_STRING(out)
        else:
            out = PyBytes_FromStringAndSize(NULL, length)
            dest = PyBytes_AS_STRING(out)
        if length >= LARGE_COPY:
            with nogil:
                ffs_advise_huge(dest, length)
                memcpy(dest, <char *>src.buf + offset, length)
        else:
            memcpy(dest, <char *>src.buf + offset, length)
        return out
    finally:
        PyBuffer_Release(&src)
