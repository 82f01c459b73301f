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
from libc.string cimport memcpy

# Bytes of control block in front of each ring's data area.
cdef enum:
    HEADER_SIZE = 192
RING_HEADER_SIZE = HEADER_SIZE

# The wire protocol, for the Python side (_transport): _shm_ring.h's.
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
MESSAGE_HEADER_SIZE = sizeof(ffm_header)


def pack_header(int kind, int flags, int nbuf, uint32_t seg_id, int64_t task_id,
                uint32_t fn_len, uint32_t slot):
    """The ffm_header of a message, as bytes."""
    cdef ffm_header h
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


cdef class Ring:
    """One end of a shared SPSC ring: ``Ring(segment, offset, capacity, peer_wake_fd)``.

    ``peer_wake_fd`` is the write end of the pipe the *other* process sleeps
    on: the writer writes a byte there when the reader sleeps, the reader
    when the writer waits for room.
    """
    # Fields: see _shm.pxd.

    def __cinit__(self, segment, Py_ssize_t offset, Py_ssize_t capacity, int peer_wake_fd):
        if capacity < 64 or (capacity & (capacity - 1)) != 0:
            raise ValueError("ring capacity must be a power of two >= 64")
        PyObject_GetBuffer(segment, &self._view, PyBUF_WRITABLE)
        self._has_view = True
        if offset < 0 or offset % 64 or offset + HEADER_SIZE + capacity > self._view.len:
            self.close()
            raise ValueError("ring does not fit in the segment")
        self._ctl = <ffr_ctl *>(<char *>self._view.buf + offset)
        self._data = <char *>self._view.buf + offset + HEADER_SIZE
        self._cap = capacity
        self._peer_wake_fd = peer_wake_fd
        # A record never exceeds half the ring, so it always fits once the
        # reader has caught up.
        self.max_record = capacity // 2 - 16

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
        if r > 0:
            ffr_wake_fd(self._peer_wake_fd)
        return True


cdef class Claims:
    """``Claims(segment, offset, count)``: the claim slots of one channel and
    the worker's ready word after them (see _shm_ring.h).  Holds a view of
    the segment, so the slots stay mapped for as long as anyone holds this
    object."""
    # Fields and the inline operations: see _shm.pxd.

    def __cinit__(self, segment, Py_ssize_t offset, int count):
        PyObject_GetBuffer(segment, &self._view, PyBUF_WRITABLE)
        self._has_view = True
        if (count < 0 or offset < 0 or offset % 64
                or offset + count * <Py_ssize_t>sizeof(ffc_slot) + 8 > self._view.len):
            raise ValueError("claim slots do not fit in the segment")
        self._slots = <ffc_slot *>(<char *>self._view.buf + offset)
        self._ready = <uint32_t *>(<char *>self._view.buf + offset + count * sizeof(ffc_slot))
        self.count = count

    def mark_ready(self):
        """Worker: the initializer succeeded."""
        self.set_ready()

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
