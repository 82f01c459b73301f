# The shared ring, for the process pool's compiled hot path (_process_core.pyx).
from libc.stdint cimport uint64_t, uint32_t, uint16_t, uint8_t, int64_t

cdef extern from "_shm_ring.h":
    # The wire protocol (defined in _shm_ring.h only).
    enum:
        FFM_CALL
        FFM_EXIT
        FFM_RESULT
        FFM_RAW_RESULT
        FFM_EXCEPTION
        FFM_RELEASE
        FFM_FORGET
        FFM_CHUNK
        FFM_SKIPPED
        FFM_PAYLOAD_IN_SEGMENT
        FFM_WORKER_EXITING
        FFM_NO_ARGS
        FFM_WITH_KWARGS
        FFM_STAR
        FFM_NONE_RESULT
        FFM_RECORD_SLACK
    ctypedef struct ffr_ctl:
        pass
    ctypedef struct ffm_header:
        uint8_t kind
        uint8_t flags
        uint16_t nbuf
        uint32_t seg_id
        int64_t task_id
        uint32_t fn_len
        uint32_t slot
    ctypedef struct ffc_slot:
        uint32_t state
        double started_at
    int ffr_write3(ffr_ctl *c, char *data, uint64_t cap, const char *p1, uint64_t n1,
                   const char *p2, uint64_t n2, const char *p3, uint64_t n3) nogil
    const char *ffr_peek(ffr_ctl *c, char *data, uint64_t cap, uint32_t *length,
                         uint64_t *consumed) nogil
    void ffr_consume(ffr_ctl *c, uint64_t consumed) nogil
    int ffr_writer_to_wake(ffr_ctl *c) nogil
    int ffr_is_empty(ffr_ctl *c) nogil
    int ffr_reader_prepare_sleep(ffr_ctl *c) nogil
    void ffr_reader_awake(ffr_ctl *c) nogil
    int ffr_writer_prepare_wait(ffr_ctl *c, uint64_t cap, uint64_t n) nogil
    void ffr_wake_fd(int fd) nogil
    void ffr_relax() nogil
    void ffc_offer(ffc_slot *s) nogil
    int ffc_cancel(ffc_slot *s) nogil
    int ffc_claimed(ffc_slot *s) nogil
    int ffc_claim(ffc_slot *s) nogil
    void ffc_started(ffc_slot *s, double now) nogil
    double ffc_started_at(ffc_slot *s) nogil
    void ffc_ran(ffc_slot *s, double seconds) nogil
    double ffc_ran_for(ffc_slot *s) nogil
    void ffc_set_word(uint32_t *p, uint32_t v) nogil
    uint32_t ffc_get_word(uint32_t *p) nogil


cdef class Ring:
    cdef Py_buffer _view
    cdef bint _has_view
    cdef ffr_ctl *_ctl
    cdef char *_data
    cdef uint64_t _cap
    cdef int _peer_wake_fd
    cdef readonly Py_ssize_t max_record

    cdef int _check(self) except -1
    cpdef bint fits(self, Py_ssize_t size) noexcept


cdef class Claims:
    cdef Py_buffer _view
    cdef bint _has_view
    cdef ffc_slot *_slots
    cdef uint32_t *_ready
    cdef readonly int count

    # Callers pass 0 <= slot < count (the pool's slot bitmask guarantees it).
    cdef inline void offer(self, int slot) noexcept:
        ffc_offer(&self._slots[slot])

    cdef inline bint cancel(self, int slot) noexcept:
        return ffc_cancel(&self._slots[slot])

    cdef inline bint claimed(self, int slot) noexcept:
        return ffc_claimed(&self._slots[slot])

    cdef inline bint claim(self, int slot) noexcept:
        return ffc_claim(&self._slots[slot])

    cdef inline void started(self, int slot, double now) noexcept:
        ffc_started(&self._slots[slot], now)

    cdef inline double started_at(self, int slot) noexcept:
        return ffc_started_at(&self._slots[slot])

    cdef inline void ran(self, int slot, double seconds) noexcept:
        ffc_ran(&self._slots[slot], seconds)

    cdef inline double ran_for(self, int slot) noexcept:
        return ffc_ran_for(&self._slots[slot])

    cdef inline void set_ready(self) noexcept:
        ffc_set_word(self._ready, 1)

    cdef inline bint is_ready(self) noexcept:
        return ffc_get_word(self._ready) != 0
