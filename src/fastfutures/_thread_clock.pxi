# The thread pool's clock for its stats' durations (included by
# _threadpool.pyx): ticks of _ticks.h, turned into seconds.  Deadlines and
# time-outs keep ff_monotonic().
import os

from libc.stdint cimport uint64_t, int64_t

cdef extern from "_ticks.h":
    bint ff_ticks_from_counter
    uint64_t ff_ticks() nogil
    double ff_ticks_init(bint use_counter, double window, double *seconds0,
                         uint64_t *counter0) nogil
    double ff_ticks_measure(double seconds0, uint64_t counter0) nogil

# The clock of the stats' durations (_ticks.h): seconds per tick, and the
# first calibration sample, from which a snapshot refines the TSC's rate
# once a second or more has passed (the import measures it over 200 us).
cdef double tick_seconds
cdef double calibrated_at
cdef uint64_t calibrated_counter
cdef bint tick_refined = False


def _os_trusts_the_counter():
    """The CPU counter is as good as CLOCK_MONOTONIC here (see _ticks.h)."""
    if os.environ.get("FASTFUTURES_STATS_CLOCK") == "monotonic":
        return False
    machine = os.uname().machine if hasattr(os, "uname") else ""
    if machine in ("aarch64", "arm64"):
        return True
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            return f.read().strip() == "tsc"
    except OSError:
        return False


tick_seconds = ff_ticks_init(_os_trusts_the_counter(), 200e-6,
                             &calibrated_at, &calibrated_counter)


cdef inline double seconds_between(uint64_t start, uint64_t end) noexcept:
    return <double>(<int64_t>(end - start)) * tick_seconds


cdef void refine_tick() noexcept:
    global tick_seconds, tick_refined
    cdef double measured
    if tick_refined or not ff_ticks_from_counter or calibrated_at == 0:
        return
    if ff_monotonic() - calibrated_at < 1.0:
        return
    measured = ff_ticks_measure(calibrated_at, calibrated_counter)
    if measured > 0:
        tick_seconds = measured
        tick_refined = True


def stats_clock():
    """What the stats' durations are measured with: ("counter" or
    "monotonic", seconds per tick).  For tests and the curious."""
    return ("counter" if ff_ticks_from_counter else "monotonic", tick_seconds)
