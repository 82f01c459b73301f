# cython: boundscheck=False, wraparound=False
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
from libc.stdint cimport uint64_t, uint32_t

# Bytes of control block in front of each ring's data area.
cdef enum:
    HEADER_SIZE = 192
RING_HEADER_SIZE = HEADER_SIZE


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

    def write(self, bytes header, bytes payload):
        """Append header+payload as one record; False when there is no room."""
        self._check()
        cdef int r = ffr_write2(self._ctl, self._data, self._cap,
                                PyBytes_AS_STRING(header), PyBytes_GET_SIZE(header),
                                PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))
        if r < 0:
            return False
        if r > 0:
            ffr_wake_fd(self._peer_wake_fd)
        return True

    def has_room(self, Py_ssize_t nbytes):
        self._check()
        return bool(ffr_has_room(self._ctl, self._cap, nbytes))

    def read_batch(self, Py_ssize_t limit=1 << 30):
        """Take up to ``limit`` records (as bytes); wakes a writer waiting for room."""
        self._check()
        cdef list out = []
        cdef const char *p
        cdef uint32_t n
        cdef uint64_t consumed
        while len(out) < limit:
            p = ffr_peek(self._ctl, self._data, self._cap, &n, &consumed)
            if p == NULL:
                break
            out.append(PyBytes_FromStringAndSize(p, n))
            ffr_consume(self._ctl, consumed)
        if out and ffr_writer_to_wake(self._ctl):
            ffr_wake_fd(self._peer_wake_fd)
        return out

    def empty(self):
        self._check()
        return bool(ffr_is_empty(self._ctl))

    def spin(self, long rounds):
        """Wait (GIL released, no syscall) up to ``rounds`` pauses for data."""
        self._check()
        cdef int r
        with nogil:
            r = ffr_spin_nonempty(self._ctl, rounds)
        return bool(r)

    def prepare_sleep(self):
        """Reader: announce sleep.  True: block now; False: data arrived."""
        self._check()
        return bool(ffr_reader_prepare_sleep(self._ctl))

    def awake(self):
        self._check()
        ffr_reader_awake(self._ctl)

    def prepare_wait_room(self, Py_ssize_t nbytes):
        """Writer: announce a wait for room.  True: block now; False: room appeared."""
        self._check()
        return bool(ffr_writer_prepare_wait(self._ctl, self._cap, nbytes))


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
from libc.string cimport memcpy

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
