/* A single-producer single-consumer byte ring in shared memory.
 *
 * The control block and the data area live in a segment mapped by two
 * processes.  `head` (bytes ever written) belongs to the writer and `tail`
 * (bytes ever consumed) to the reader; each is published with a release store
 * and read with an acquire load, so a reader that sees a head also sees the
 * bytes written before it.
 *
 * Wake-ups: a reader that found the ring empty sets `reader_sleeping` and
 * re-checks `head` before blocking (on a pipe); a writer publishes `head`,
 * then checks the flag.  Both sides put a full fence between their store and
 * their load (the Dekker pattern), so at least one of them sees the other:
 * either the reader sees the new data, or the writer sees the flag and writes
 * a wake-up byte.  The writer pays a syscall only when the reader really
 * sleeps.  `writer_waiting` is the mirror image for a writer waiting for room.
 *
 * Records are a 4-byte length followed by the bytes, padded to 8.  A record
 * never wraps: when it does not fit before the end of the data area, a WRAP
 * marker fills the rest and the record starts again at offset 0.
 */
#ifndef FASTFUTURES_SHM_RING_H
#define FASTFUTURES_SHM_RING_H

#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER)
#  include <intrin.h>
#  define ffr_load_acquire(p)     (*(volatile uint64_t *)(p))
#  define ffr_store_release(p, v) (_ReadWriteBarrier(), *(volatile uint64_t *)(p) = (v))
#  define ffr_fence()             MemoryBarrier()
#  define ffr_load32(p)           (*(volatile uint32_t *)(p))
#  define ffr_store32(p, v)       (*(volatile uint32_t *)(p) = (v))
#  define ffr_xchg32(p, v)        ((uint32_t)_InterlockedExchange((volatile long *)(p), (long)(v)))
#  define ffr_relax()             YieldProcessor()
#else
#  define ffr_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#  define ffr_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#  define ffr_fence()             __atomic_thread_fence(__ATOMIC_SEQ_CST)
#  define ffr_load32(p)           __atomic_load_n((p), __ATOMIC_RELAXED)
#  define ffr_store32(p, v)       __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#  define ffr_xchg32(p, v)        __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#  if defined(__x86_64__) || defined(__i386__)
#    define ffr_relax() __builtin_ia32_pause()
#  elif defined(__aarch64__) || defined(__arm__)
#    define ffr_relax() __asm__ __volatile__("yield" ::: "memory")
#  else
#    define ffr_relax() __asm__ __volatile__("" ::: "memory")
#  endif
#endif

#define FFR_WRAP 0xFFFFFFFFu

typedef struct {
    uint64_t head;              /* written by the writer */
    char _pad0[56];
    uint64_t tail;              /* written by the reader */
    char _pad1[56];
    uint32_t reader_sleeping;
    uint32_t writer_waiting;
    char _pad2[56];
} ffr_ctl;                      /* 192 bytes; the data area follows */

#define FFR_ALIGN8(n) (((n) + 7u) & ~(uint64_t)7u)

/* Bytes a record of `n` payload bytes takes, including a WRAP filler if it
 * must start over at offset 0. */
static inline uint64_t ffr_space_needed(uint64_t head, uint64_t cap, uint64_t n) {
    uint64_t rec = FFR_ALIGN8(4u + n);
    uint64_t room_to_end = cap - (head & (cap - 1));
    return rec <= room_to_end ? rec : room_to_end + rec;
}

static inline int ffr_has_room(ffr_ctl *c, uint64_t cap, uint64_t n) {
    uint64_t head = c->head;
    return head + ffr_space_needed(head, cap, n) - ffr_load_acquire(&c->tail) <= cap;
}

/* Append one record made of three parts.  Returns -1 when there is no room,
 * 1 when the reader was asleep (the caller must wake it), 0 otherwise. */
static inline int ffr_write3(ffr_ctl *c, char *data, uint64_t cap,
                             const char *p1, uint64_t n1, const char *p2, uint64_t n2,
                             const char *p3, uint64_t n3) {
    uint64_t head = c->head;
    uint64_t n = n1 + n2 + n3;
    uint64_t need = ffr_space_needed(head, cap, n);
    if (head + need - ffr_load_acquire(&c->tail) > cap)
        return -1;
    uint64_t pos = head & (cap - 1);
    uint64_t rec = FFR_ALIGN8(4u + n);
    if (need != rec) {              /* fill to the end, start over */
        *(uint32_t *)(data + pos) = FFR_WRAP;
        head += cap - pos;
        pos = 0;
    }
    uint32_t len32 = (uint32_t)n;
    memcpy(data + pos, &len32, 4);
    if (n1) memcpy(data + pos + 4, p1, n1);
    if (n2) memcpy(data + pos + 4 + n1, p2, n2);
    if (n3) memcpy(data + pos + 4 + n1 + n2, p3, n3);
    ffr_store_release(&c->head, head + rec);
    ffr_fence();
    if (ffr_load32(&c->reader_sleeping))
        return ffr_xchg32(&c->reader_sleeping, 0) ? 1 : 0;
    return 0;
}

/* The next record, or NULL when the ring is empty.  *consumed is what
 * ffr_consume() must advance by once the caller has copied the record. */
static inline const char *ffr_peek(ffr_ctl *c, char *data, uint64_t cap,
                                   uint32_t *len, uint64_t *consumed) {
    uint64_t tail = c->tail;
    uint64_t head = ffr_load_acquire(&c->head);
    uint64_t skip = 0;
    if (tail == head)
        return NULL;
    uint64_t pos = tail & (cap - 1);
    uint32_t n;
    memcpy(&n, data + pos, 4);
    if (n == FFR_WRAP) {
        skip = cap - pos;
        pos = 0;
        memcpy(&n, data, 4);
    }
    *len = n;
    *consumed = skip + FFR_ALIGN8(4u + (uint64_t)n);
    return data + pos + 4;
}

static inline void ffr_consume(ffr_ctl *c, uint64_t consumed) {
    ffr_store_release(&c->tail, c->tail + consumed);
}

/* After consuming: 1 when a writer waits for room and must be woken. */
static inline int ffr_writer_to_wake(ffr_ctl *c) {
    ffr_fence();
    if (ffr_load32(&c->writer_waiting))
        return ffr_xchg32(&c->writer_waiting, 0) ? 1 : 0;
    return 0;
}

static inline int ffr_is_empty(ffr_ctl *c) {
    return ffr_load_acquire(&c->head) == c->tail;
}

/* Reader about to block: 1 when it may sleep (the ring is still empty after
 * the flag became visible), 0 when data arrived meanwhile. */
static inline int ffr_reader_prepare_sleep(ffr_ctl *c) {
    ffr_store32(&c->reader_sleeping, 1);
    ffr_fence();
    if (ffr_load_acquire(&c->head) != c->tail) {
        ffr_store32(&c->reader_sleeping, 0);
        return 0;
    }
    return 1;
}

static inline void ffr_reader_awake(ffr_ctl *c) { ffr_store32(&c->reader_sleeping, 0); }

/* Writer about to block for room for n bytes: 1 when it may sleep. */
static inline int ffr_writer_prepare_wait(ffr_ctl *c, uint64_t cap, uint64_t n) {
    ffr_store32(&c->writer_waiting, 1);
    ffr_fence();
    if (ffr_has_room(c, cap, n)) {
        ffr_store32(&c->writer_waiting, 0);
        return 0;
    }
    return 1;
}

/* The wire protocol between the parent and a worker: message kinds, flags,
 * and the header in front of every message.  Defined here only: _shm.pyx
 * exposes them to Python (_transport), _process_core cimports them. */
enum {
    FFM_CALL = 1,           /* parent -> worker: (fn, args, kwargs) */
    FFM_EXIT = 2,           /* parent -> worker: finish and exit */
    FFM_RESULT = 3,         /* worker -> parent: the pickled result */
    FFM_RAW_RESULT = 4,     /* worker -> parent: a bytes result, as the single buffer */
    FFM_EXCEPTION = 5,      /* worker -> parent: the pickled exception */
    FFM_RELEASE = 6,        /* either way: the peer's segments I am done with */
    FFM_FORGET = 7,         /* either way: segments of mine I closed; unmap them */
    FFM_CHUNK = 8,          /* parent -> worker: (fn, items) of map(); the reply is the list */
    FFM_SKIPPED = 9         /* worker -> parent: cancelled before it started; not run */
};
enum {
    FFM_PAYLOAD_IN_SEGMENT = 1,     /* the pickle itself is the last buffer */
    FFM_WORKER_EXITING = 2,         /* max_tasks_per_child reached: this is the last reply */
    FFM_NO_ARGS = 4,                /* CALL: fn(), the payload is only the function */
    FFM_WITH_KWARGS = 8,            /* CALL: the arguments pickle as (args, kwargs), else as args */
    FFM_STAR = 16,                  /* CHUNK: the items are argument tuples */
    FFM_NONE_RESULT = 32            /* RESULT: None, no payload */
};

/* A message fits in one ring record when its header, buffer spans and
 * payload take less than this much below the ring's largest record; bigger
 * ones carry their payload in a buffer segment. */
#define FFM_RECORD_SLACK 64

/* The header in front of every message. */
typedef struct {
    uint8_t kind;
    uint8_t flags;
    uint16_t nbuf;          /* out-of-band buffers in a buffer segment */
    uint32_t seg_id;        /* that segment */
    int64_t task_id;
    uint32_t fn_len;        /* CALL/CHUNK: payload bytes that pickle the function alone */
    uint32_t slot;          /* CALL/CHUNK and their replies: the call's claim slot */
} ffm_header;               /* 24 bytes, then nbuf (offset, length) pairs, then the payload */

/* Claim slots: one per call a worker has been handed and not answered yet,
 * in the channel's segment next to the rings.  The parent offers a call
 * (QUEUED) before writing its record; the worker claims it (QUEUED ->
 * CLAIMED, with the time) just before running it; the parent cancels it
 * (QUEUED -> CANCELLED).  Both transitions are compare-and-swaps on the same
 * word, so exactly one side wins: a cancelled call never runs and a claimed
 * one is never reported cancelled.  The worker skips a cancelled call and
 * answers SKIPPED, after which the parent reuses the slot. */
enum { FFC_FREE = 0, FFC_QUEUED = 1, FFC_CLAIMED = 2, FFC_CANCELLED = 3 };

typedef struct {
    uint32_t state;
    uint32_t ran_us;        /* microseconds its function ran (saturated), set before the reply */
    double started_at;      /* CLOCK_MONOTONIC seconds the call's function started; 0: not yet */
} ffc_slot;                 /* 16 bytes */

#if defined(_MSC_VER)
static inline int ffc_cas(uint32_t *p, uint32_t expected, uint32_t desired) {
    return (uint32_t)_InterlockedCompareExchange((volatile long *)p, (long)desired,
                                                 (long)expected) == expected;
}
#  define ffc_load(p) (*(volatile uint32_t *)(p))
#  define ffc_store(p, v) (_ReadWriteBarrier(), *(volatile uint32_t *)(p) = (v))
#else
static inline int ffc_cas(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
#  define ffc_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#  define ffc_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#endif

static inline void ffc_offer(ffc_slot *s) {
    s->started_at = 0.0;
    s->ran_us = 0;
    ffc_store(&s->state, FFC_QUEUED);
}
/* Worker, before its reply: how long the call ran (the parent's scheduler
 * reads it with the reply, which the ring orders after this store). */
static inline void ffc_ran(ffc_slot *s, double seconds) {
    double us = seconds * 1e6;
    s->ran_us = us <= 0 ? 0 : us >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)us;
}
static inline double ffc_ran_for(ffc_slot *s) { return s->ran_us * 1e-6; }
static inline int ffc_cancel(ffc_slot *s) { return ffc_cas(&s->state, FFC_QUEUED, FFC_CANCELLED); }
static inline int ffc_claimed(ffc_slot *s) { return ffc_load(&s->state) == FFC_CLAIMED; }
/* The worker's "ready" word after the slots: set once its initializer has
 * succeeded, so that the parent tells a failed start from a later death. */
static inline void ffc_set_word(uint32_t *p, uint32_t v) { ffc_store(p, v); }
static inline uint32_t ffc_get_word(uint32_t *p) { return ffc_load(p); }
/* Worker: 1 when the call is ours to run, 0 when it was cancelled. */
static inline int ffc_claim(ffc_slot *s) {
    return ffc_cas(&s->state, FFC_QUEUED, FFC_CLAIMED);
}
/* Worker, once the call's arguments are loaded: its function starts now
 * (a time limit counts from here; loading a spawned worker's first function
 * can import a module). */
#if defined(_MSC_VER)
static inline void ffc_started(ffc_slot *s, double now) { *(volatile double *)&s->started_at = now; }
static inline double ffc_started_at(ffc_slot *s) { return *(volatile double *)&s->started_at; }
#else
static inline void ffc_started(ffc_slot *s, double now) {
    __atomic_store(&s->started_at, &now, __ATOMIC_RELEASE);
}
static inline double ffc_started_at(ffc_slot *s) {
    double at;
    __atomic_load(&s->started_at, &at, __ATOMIC_ACQUIRE);
    return at;
}
#endif

#if defined(_WIN32)
#  include <io.h>
static inline void ffr_wake_fd(int fd) { char b = 0; (void)_write(fd, &b, 1); }
#else
#  include <unistd.h>
/* One byte into a non-blocking pipe; a full pipe already means "awake". */
static inline void ffr_wake_fd(int fd) { char b = 0; ssize_t r = write(fd, &b, 1); (void)r; }
#endif

#endif
