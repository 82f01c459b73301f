/* Small portable primitives for the nogil parts of the core.
 *
 * The future state machine itself is protected by the GIL (every transition
 * runs with the GIL held and calls no Python code in between), exactly like
 * CPython's C asyncio Future.  These helpers only serve the threads that
 * *observe* state without the GIL while they spin before blocking.
 */
#ifndef FASTFUTURES_SYNC_H
#define FASTFUTURES_SYNC_H

#include <stdint.h>

#if defined(_MSC_VER)
#  include <intrin.h>
#  include <windows.h>
#  define ff_load_acquire(p)      ((int)_InterlockedOr((volatile long *)(p), 0))
#  define ff_store_release(p, v)  ((void)_InterlockedExchange((volatile long *)(p), (long)(v)))
#  define ff_increment(p)         ((int)_InterlockedIncrement((volatile long *)(p)))
#  if defined(_M_X64) || defined(_M_IX86)
#    define ff_cpu_relax() _mm_pause()
#  else
#    define ff_cpu_relax() __yield()
#  endif
static inline void ff_yield(void) { SwitchToThread(); }
static inline double ff_monotonic(void) {
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}
#else
#  include <sched.h>
#  include <time.h>
#  define ff_load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#  define ff_store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#  define ff_increment(p)         __atomic_add_fetch((p), 1, __ATOMIC_ACQ_REL)
#  if defined(__x86_64__) || defined(__i386__)
#    define ff_cpu_relax() __builtin_ia32_pause()
#  elif defined(__aarch64__) || defined(__arm__)
#    define ff_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#  else
#    define ff_cpu_relax() __asm__ __volatile__("" ::: "memory")
#  endif
static inline void ff_yield(void) { sched_yield(); }
static inline double ff_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#endif

/* Spinners yield the CPU every FF_YIELD_MASK+1 rounds: on a loaded 2-core
 * machine the thread being waited for may be queued behind the spinner. */
#ifndef FF_YIELD_MASK
#  define FF_YIELD_MASK 7
#endif

/* Spin until *value >= minimum, for at most `spins` rounds; every
 * FF_YIELD_MASK+1-th round
 * yields the CPU so a spinner never starves the thread it is waiting for on a
 * small machine.  Returns the last value read.  Called without the GIL. */
/* A spin is bounded in time as well as in rounds: on a loaded machine each
 * ff_yield() can give the CPU away for a whole time slice, and a waiter with
 * a short timeout (result(timeout=0.001)) must not spin past it. */
#ifndef FF_SPIN_MAX_SECONDS
#  define FF_SPIN_MAX_SECONDS 200e-6
#endif
static inline int ff_spin_until_at_least(int *value, int minimum, int spins) {
    int v = ff_load_acquire(value);
    double end = 0.0;
    for (int i = 0; i < spins && v < minimum; i++) {
        if ((i & FF_YIELD_MASK) == FF_YIELD_MASK) {
            double now = ff_monotonic();
            if (end == 0.0) end = now + FF_SPIN_MAX_SECONDS;
            else if (now >= end) break;
            ff_yield();
        } else {
            ff_cpu_relax();
        }
        v = ff_load_acquire(value);
    }
    return v;
}

/* Spin until *value != old, for at most `spins` rounds of cpu_relax (no
 * yielding: this wait is meant to last a few microseconds at most). */
static inline int ff_spin_until_changed(int *value, int old, int spins) {
    int v = ff_load_acquire(value);
    for (int i = 0; i < spins && v == old; i++) {
        ff_cpu_relax();
        v = ff_load_acquire(value);
    }
    return v;
}

#ifdef FF_DEBUG
#  include <assert.h>
#  define FF_ASSERT(x) assert(x)
#else
#  define FF_ASSERT(x) ((void)0)
#endif

#endif /* FASTFUTURES_SYNC_H */
