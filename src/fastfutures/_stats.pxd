# What a pool counts about its calls, and the histograms of their times.
#
# Writers hold the GIL and call no Python code between the changes that
# belong together (a call leaving the queue and becoming running), so a
# reader that also holds the GIL -- PoolStats.snapshot() -- sees counters
# that add up.  Nothing here takes a lock.
from libc.stdint cimport uint64_t

cdef extern from "_sync.h":
    double ff_monotonic() nogil

cdef extern from "_histogram.h":
    enum: FFH_BUCKETS
    ctypedef struct ffh_histogram:
        uint64_t counts[FFH_BUCKETS]
        uint64_t count
        double sum
        double max
    void ffh_record(ffh_histogram *h, double seconds) nogil
    int ffh_bucket_of(uint64_t nanoseconds) nogil
    double ffh_bucket_lower(int index) nogil
    double ffh_bucket_upper(int index) nogil


cdef class PoolStats:
    # Invariant (whenever the GIL is free to be taken):
    #   submitted == queued + running + completed + failed + cancelled
    # where the pool knows `queued` (its queue's length) and `running` is
    # counted here.  A time-out or a worker death counts as failed too.
    cdef public uint64_t submitted      # accepted into the queue
    cdef public uint64_t running        # claimed by a worker, not finished
    cdef public uint64_t completed      # returned a result
    cdef public uint64_t failed         # raised (or timed out, or its worker died)
    cdef public uint64_t cancelled      # left the queue cancelled, never run
    cdef public uint64_t timed_out      # failed with a time limit's error
    cdef public uint64_t worker_deaths  # failed because its worker died
    cdef public uint64_t workers_replaced
    cdef public uint64_t workers_exited_idle
    cdef public uint64_t rejected       # QueueFull raised to a submitter
    cdef public uint64_t ran_in_caller  # run by the submitter (caller_runs)
    cdef ffh_histogram queue_wait       # submit -> claimed by a worker
    cdef ffh_histogram run_time         # claimed -> finished

    cdef object snapshot(self, Py_ssize_t queued, Py_ssize_t workers, Py_ssize_t max_workers,
                         object max_queue_size)


cdef inline void call_claimed(PoolStats stats, double waited) noexcept:
    """A worker took a call that had been queued for `waited` seconds."""
    stats.running += 1
    ffh_record(&stats.queue_wait, waited)


cdef inline void call_skipped(PoolStats stats) noexcept:
    """A claimed call was found cancelled (or already done): not run."""
    stats.running -= 1
    stats.cancelled += 1


cdef inline void call_ended(PoolStats stats, bint failed) noexcept:
    """A claimed call returned or raised (counted before its future's
    waiters learn it; the worker records its run time after its
    done-callbacks)."""
    stats.running -= 1
    if failed:
        stats.failed += 1
    else:
        stats.completed += 1

