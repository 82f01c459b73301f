"""What ``executor.stats()`` returns: one consistent snapshot of a pool.

fastfutures only (the stdlib has no such API, gh-66477).  Times are seconds.
"""
from dataclasses import dataclass, field
from typing import Optional, Tuple

__all__ = ["ExecutorStats", "Distribution"]


@dataclass(frozen=True)
class Distribution:
    """A distribution of durations, read from a log-bucket histogram whose
    buckets are at most 1/8 as wide as their lower bound: the quantiles are
    within about 6% of the exact ones (max and sum are exact)."""
    count: int
    sum: float
    p50: float
    p90: float
    p99: float
    max: float
    # (upper bound in seconds, number of durations <= it), cumulative, at
    # every power of two of nanoseconds from 2**10 ns (~1 us) to 2**36 ns
    # (~69 s): exact counts, for exporters' histograms.  The last bound is
    # +inf (== count).
    buckets: Tuple[Tuple[float, int], ...] = field(default=(), repr=False)

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0


@dataclass(frozen=True)
class ExecutorStats:
    """A snapshot of a pool.  Its counters add up:
    ``submitted == queued + running + completed + failed + cancelled``.

    queued: accepted, not yet claimed by a worker (for the process pool also
    when already written to a worker's ring); running: claimed by a worker
    and not finished; completed: returned; failed: raised -- a call that
    timed out (``timed_out``) or whose worker died (``worker_deaths``)
    counts as failed too; cancelled: left the pool without running (counted
    when a worker or shutdown() drops it: until then a cancelled call is
    still queued, as in ``_work_queue.qsize()``).  ``rejected`` calls
    (QueueFull) and ``ran_in_caller`` ones (``on_queue_full="caller_runs"``)
    were never submitted.
    """
    workers: int            # started and alive
    busy_workers: int
    idle_workers: int
    max_workers: int
    queued: int
    running: int
    submitted: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    worker_deaths: int
    workers_replaced: int
    workers_exited_idle: int
    rejected: int
    ran_in_caller: int
    max_queue_size: Optional[int]
    queue_wait: Distribution
    run_time: Distribution
