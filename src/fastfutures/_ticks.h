/* The thread pool's clock for the durations its stats record (queue wait,
 * run time).
 *
 * clock_gettime() costs 20-40 ns through the vDSO (more in some VMs): as much
 * as the rest of a map() call's bookkeeping, and a worker reads it once per
 * call.  The CPU's own counter costs ~10 ns.  It is used where the OS itself
 * trusts it: x86-64 with Linux's clocksource on the TSC (invariant and
 * synchronised across CPUs, or the kernel would not have picked it; the
 * caller checks) and aarch64 (the architected virtual counter, whose
 * frequency CNTFRQ_EL0 gives).  Elsewhere a tick is a nanosecond of
 * CLOCK_MONOTONIC.  Ticks are for differences within one process only;
 * deadlines and time-outs keep ff_monotonic().
 */
#ifndef FASTFUTURES_TICKS_H
#define FASTFUTURES_TICKS_H

#include <stdint.h>
#include "_sync.h"

#if (defined(__x86_64__) || defined(__aarch64__)) && (defined(__GNUC__) || defined(__clang__))
#  define FF_HAVE_COUNTER 1
#else
#  define FF_HAVE_COUNTER 0
#endif

static int ff_ticks_from_counter = 0;

static inline uint64_t ff_counter(void) {
#if FF_HAVE_COUNTER && defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif FF_HAVE_COUNTER
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return 0;
#endif
}

static inline uint64_t ff_ticks(void) {
    if (ff_ticks_from_counter)
        return ff_counter();
    return (uint64_t)(ff_monotonic() * 1e9);
}

/* A (monotonic seconds, counter) pair read close together: the counter
 * bracketed by two clock reads less than 2 us apart (a preemption in
 * between would skew a calibration).  0 if no such pair was read. */
static inline int ff_ticks_sample(double *seconds, uint64_t *counter) {
    int i;
    for (i = 0; i < 100; i++) {
        double before = ff_monotonic();
        uint64_t c = ff_counter();
        double after = ff_monotonic();
        if (after - before < 2e-6) {
            *seconds = (before + after) / 2;
            *counter = c;
            return 1;
        }
    }
    return 0;
}

/* Seconds per counter tick, measured against CLOCK_MONOTONIC between two
 * samples (seconds0, counter0) and now; 0 when it cannot be measured. */
static inline double ff_ticks_measure(double seconds0, uint64_t counter0) {
    double seconds;
    uint64_t counter;
    if (!ff_ticks_sample(&seconds, &counter) || counter <= counter0 || seconds <= seconds0)
        return 0;
    return (seconds - seconds0) / (double)(counter - counter0);
}

/* Choose the source (use_counter: the OS trusts the counter) and return
 * seconds per tick.  On x86-64 the TSC's rate is measured over `window`
 * seconds (busy); the caller may refine it later with ff_ticks_measure()
 * from the same first sample, returned in *seconds0 / *counter0. */
static inline double ff_ticks_init(int use_counter, double window,
                                   double *seconds0, uint64_t *counter0) {
    ff_ticks_from_counter = 0;
    *seconds0 = 0;
    *counter0 = 0;
#if FF_HAVE_COUNTER && defined(__aarch64__)
    if (use_counter) {
        uint64_t frequency;
        __asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(frequency));
        if (frequency) {
            ff_ticks_from_counter = 1;
            return 1.0 / (double)frequency;
        }
    }
#elif FF_HAVE_COUNTER
    if (use_counter && ff_ticks_sample(seconds0, counter0)) {
        double tick;
        while (ff_monotonic() - *seconds0 < window)
            ;
        tick = ff_ticks_measure(*seconds0, *counter0);
        if (tick > 0) {
            ff_ticks_from_counter = 1;
            return tick;
        }
    }
#endif
    (void)use_counter;
    (void)window;
    return 1e-9;
}

#endif
