# cython: language_level=3
"""PoolStats: the counters and histograms both pools record into (see
_stats.pxd for the invariant and _histogram.h for the buckets), and the
snapshot that turns them into a fastfutures.stats.ExecutorStats."""
from .stats import Distribution, ExecutorStats

# Exporters' bucket bounds: every power of two of nanoseconds, 2**10..2**36.
cdef int FIRST_EXPORTED_POWER = 10
cdef int LAST_EXPORTED_POWER = 36


cdef object distribution(ffh_histogram *h):
    cdef uint64_t total = h.count
    cdef list buckets = []
    cdef uint64_t cumulative = 0
    cdef int i, power = FIRST_EXPORTED_POWER
    cdef int bound_index = ffh_bucket_of(<uint64_t>1 << power)
    for i in range(FFH_BUCKETS):
        while i == bound_index and power <= LAST_EXPORTED_POWER:
            buckets.append(((<uint64_t>1 << power) * 1e-9, cumulative))
            power += 1
            bound_index = ffh_bucket_of(<uint64_t>1 << power) if power <= LAST_EXPORTED_POWER else -1
        cumulative += h.counts[i]
    buckets.append((float("inf"), total))
    return Distribution(total, h.sum, quantile(h, 0.5), quantile(h, 0.9), quantile(h, 0.99),
                        h.max, tuple(buckets))


cdef double quantile(ffh_histogram *h, double q):
    """The midpoint of the bucket holding the q-quantile, at most the max."""
    cdef uint64_t rank, seen = 0
    cdef int i
    cdef double middle
    if h.count == 0:
        return 0.0
    rank = <uint64_t>(q * h.count)
    if rank < 1:
        rank = 1
    for i in range(FFH_BUCKETS):
        seen += h.counts[i]
        if seen >= rank:
            middle = (ffh_bucket_lower(i) + ffh_bucket_upper(i)) / 2
            return middle if middle < h.max else h.max
    return h.max


cdef class PoolStats:
    """One pool's counters (fields in _stats.pxd)."""

    cdef object snapshot(self, Py_ssize_t queued, Py_ssize_t workers, Py_ssize_t max_workers,
                         object max_queue_size):
        """An ExecutorStats.  The caller holds the GIL from reading `queued`
        to here, and everything is copied before anything is allocated (an
        allocation can run the GC, whose finalizers can let other threads
        in), so the counters add up."""
        cdef PoolStats c = PoolStats.__new__(PoolStats)     # made first: see above
        cdef Py_ssize_t busy
        c.submitted = self.submitted
        c.running = self.running
        c.completed = self.completed
        c.failed = self.failed
        c.cancelled = self.cancelled
        c.timed_out = self.timed_out
        c.worker_deaths = self.worker_deaths
        c.workers_replaced = self.workers_replaced
        c.workers_exited_idle = self.workers_exited_idle
        c.rejected = self.rejected
        c.ran_in_caller = self.ran_in_caller
        c.queue_wait = self.queue_wait
        c.run_time = self.run_time
        busy = min(<Py_ssize_t>c.running, workers)
        return ExecutorStats(
            workers=workers, busy_workers=busy, idle_workers=workers - busy,
            max_workers=max_workers, queued=queued, running=c.running,
            submitted=c.submitted, completed=c.completed, failed=c.failed,
            cancelled=c.cancelled, timed_out=c.timed_out, worker_deaths=c.worker_deaths,
            workers_replaced=c.workers_replaced, workers_exited_idle=c.workers_exited_idle,
            rejected=c.rejected, ran_in_caller=c.ran_in_caller, max_queue_size=max_queue_size,
            queue_wait=distribution(&c.queue_wait), run_time=distribution(&c.run_time))

    # -- for a pool written in Python (DaskExecutor) ------------------------------
    # Its counters are the public fields, changed under the pool's own lock;
    # these two are the parts only C reaches.

    def record(self, double queue_wait, double run_time):
        """A finished call's durations, in seconds (negative: unknown)."""
        if queue_wait >= 0:
            ffh_record(&self.queue_wait, queue_wait)
        if run_time >= 0:
            ffh_record(&self.run_time, run_time)

    def snapshot_now(self, Py_ssize_t queued, Py_ssize_t workers, Py_ssize_t max_workers,
                     max_queue_size=None):
        """snapshot(), for a caller that holds the lock its writers hold."""
        return self.snapshot(queued, workers, max_workers, max_queue_size)
