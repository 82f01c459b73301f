# Included by _process_core.pyx: what the process pool counts (a PoolStats,
# _stats.pxd) and how stats(), _pending_work_items and max_queue_size read
# the pool.  The pool's own code only calls the hooks below, at the points
# where a call enters the pool or leaves its queue and the workers' rings:
#
#   call_accepted   enter() / slow_submit(): queued (submitted += 1)
#   call_replied    the result thread read its reply (completed or failed)
#   stats.cancelled a cancelled call left the queue, or its ring unrun
#   stats.failed    the pool broke, or no segment could be made
#   call_died       the worker running it died (failed, worker_deaths) or
#                   was killed for its time limit (failed, timed_out)
#
# Queued and running are not counted: a worker claims a call in its ring
# without telling the parent, so a snapshot reads the claims (a scan of the
# workers' rings, at most max_workers * MAX_IN_FLIGHT calls) under the
# pool's lock (which dispatch() holds while a call is between the queue and
# a ring); the hooks run with the GIL and no Python code between the
# change and the count, so the counters add up.
from functools import partial
from ._stats cimport PoolStats, ffh_record


cdef inline void call_accepted(PoolCore pool, Call call) noexcept:
    call.queued_at = ff_monotonic()
    call.work_id = <int64_t>pool.stats.submitted
    pool.stats.submitted += 1


cdef inline void call_replied(PoolCore pool, Call call, double started_at, bint failed) noexcept:
    """``started_at``: when its worker claimed it (the claim slot's clock,
    CLOCK_MONOTONIC like ff_monotonic); 0 when unknown."""
    cdef double now = ff_monotonic()
    if failed:
        pool.stats.failed += 1
    else:
        pool.stats.completed += 1
    if started_at > 0:
        ffh_record(&pool.stats.queue_wait, started_at - call.queued_at)
        ffh_record(&pool.stats.run_time, now - started_at)


cdef inline void call_died(PoolCore pool, bint timed_out) noexcept:
    pool.stats.failed += 1
    if timed_out:
        pool.stats.timed_out += 1
    else:
        pool.stats.worker_deaths += 1


cdef Py_ssize_t count_in_rings(PoolCore pool, bint claimed_only) noexcept:
    """Calls in the workers' rings (only those a worker has claimed, with
    ``claimed_only``), GIL held: no Python code, no allocation."""
    cdef WorkerHandle worker
    cdef Py_ssize_t count = 0
    cdef int slot
    for worker in pool.workers:
        for slot in range(MAX_IN_FLIGHT):
            if (<list>worker.calls)[slot] is not None and (
                    not claimed_only or worker.claims.claimed(slot)):
                count += 1
    return count


def queued_calls(PoolCore pool):
    """Calls accepted and not claimed by a worker: the pool's queue and the
    unclaimed calls of the workers' rings."""
    with pool.lock:
        return len(pool.queue) + count_in_rings(pool, False) - count_in_rings(pool, True)


def pool_stats(PoolCore pool, max_queue_size):
    """executor.stats(): an ExecutorStats whose counters add up."""
    cdef Py_ssize_t claimed, queued
    with pool.lock:
        claimed = count_in_rings(pool, True)
        queued = len(pool.queue) + count_in_rings(pool, False) - claimed
        pool.stats.running = claimed
        return pool.stats.snapshot(queued, len(pool.workers), pool.max_workers, max_queue_size)


def pending_calls(PoolCore pool):
    """(work id, Call) of every call not finished, oldest first."""
    cdef WorkerHandle worker
    with pool.lock:
        calls = list(pool.queue)
        for worker in pool.workers:
            calls.extend([call for call in worker.calls if call is not None])
    calls.sort(key=work_id_of)
    return [(call.work_id, call) for call in calls]


def unfinished_count(PoolCore pool):
    """len(_pending_work_items): submitted, not completed, failed or cancelled."""
    cdef PoolStats s = pool.stats
    return s.submitted - s.completed - s.failed - s.cancelled


def submitted_count(PoolCore pool):
    return pool.stats.submitted


def work_id_of(Call call):
    return call.work_id


def decode_call(Call call):
    """(fn, args, kwargs) of a pickled call, as the stdlib's _WorkItem has
    them; a map() chunk is (partial(_process_chunk, fn), (argument tuples,), {})."""
    if call.kind == K_CHUNK:
        if call.fn_bytes:
            fn, items = loads(call.fn_bytes), loads(call.rest, buffers=call.buffers)
        else:
            fn, items = loads(call.rest, buffers=call.buffers)
        chunk = tuple(items) if call.flags & F_STAR else tuple((item,) for item in items)
        return partial(_stdlib_process._process_chunk, fn), (chunk,), {}
    if not call.fn_bytes:
        return loads(call.rest, buffers=call.buffers)
    fn = loads(call.fn_bytes)
    if call.flags & F_NO_ARGS:
        return fn, (), {}
    if call.flags & F_WITH_KWARGS:
        args, kwargs = loads(call.rest, buffers=call.buffers)
        return fn, args, kwargs
    return fn, loads(call.rest, buffers=call.buffers), {}
