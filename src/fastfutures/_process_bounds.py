"""What the process pool does in Python for issue-18 features: its bounded
queue (max_queue_size, on_queue_full) and the stdlib's introspection idioms
(_pending_work_items, _queue_count).  The counts come from the compiled
pool (_process_stats.pxi)."""
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures.process import _WorkItem

from ._bounds import QueueFull, check_bounds
from ._future import Future, wait


# How soon a blocked submitter looks again when no unfinished call can wake it.
RECHECK_SECONDS = 0.01


class Bound:
    """A pool's (or a with_options() view's) max_queue_size and policy."""

    __slots__ = ("max_queue_size", "policy", "timeout")

    def __init__(self, max_queue_size=None, on_queue_full=None, queue_full_timeout=None):
        self.max_queue_size, self.policy, self.timeout = check_bounds(
            max_queue_size, on_queue_full, queue_full_timeout)


UNBOUNDED = Bound()


def submit_within(executor, bound, submit, fn, args, kwargs):
    """``submit(fn, args, kwargs)`` once the pool has fewer than
    bound.max_queue_size calls queued (accepted, not claimed by a worker).

    Bounded submits take the executor's _bound_lock, so the count cannot
    change under one but by workers claiming calls (making room).  Room is
    seen when a call ends: a worker claims its next call after it answered
    the last.  Waiting holds nothing but that lock; an interrupted or timed
    out wait has submitted nothing."""
    core = executor._core
    stats = core.stats
    limit = bound.max_queue_size
    if bound.policy != "block" or threading.current_thread() is core.result_thread:
        # Never wait (the result thread makes the room: a done-callback).
        if core.queued_calls() < limit:
            with executor._bound_lock:
                if core.queued_calls() < limit:
                    return submit(fn, args, kwargs)
        if bound.policy == "caller_runs":
            stats.ran_in_caller += 1
            return run_here(fn, args, kwargs)
        stats.rejected += 1
        raise QueueFull(f"the pool's queue is full ({limit} calls)")
    deadline = None if bound.timeout < 0 else time.monotonic() + bound.timeout
    if not executor._bound_lock.acquire(timeout=-1 if deadline is None else bound.timeout):
        return refuse(stats, bound)
    try:
        while core.queued_calls() >= limit:
            core.check_open()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return refuse(stats, bound)
            unfinished = [call.future for _, call in core.pending_calls()
                          if not call.future.done()]
            if not unfinished:
                # Only cancelled calls fill the queue: the pool drops them
                # without completing anything, so look again shortly.
                remaining = RECHECK_SECONDS if remaining is None else min(
                    remaining, RECHECK_SECONDS)
            wait(unfinished + [executor._shutdown_signal], remaining, FIRST_COMPLETED)
        return submit(fn, args, kwargs)
    finally:
        executor._bound_lock.release()


def refuse(stats, bound):
    stats.rejected += 1
    raise QueueFull(f"the pool's queue stayed full ({bound.max_queue_size} calls)"
                    f" for {bound.timeout} seconds")


def run_here(fn, args, kwargs):
    """on_queue_full="caller_runs": the call, run by the submitting thread."""
    future = Future()
    future.set_running_or_notify_cancel()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
    return future


class PendingWorkItems(Mapping):
    """``executor._pending_work_items``: work id -> the stdlib's _WorkItem
    (future, fn, args, kwargs) of every call not finished.  A live view:
    len() is a counter read, an item is decoded (unpickled) when asked for."""

    __slots__ = ("_core",)

    def __init__(self, core):
        self._core = core

    def __len__(self):
        return self._core.unfinished_count()

    def __iter__(self):
        return iter([work_id for work_id, _ in self._core.pending_calls()])

    def __getitem__(self, work_id):
        for found, call in self._core.pending_calls():
            if found == work_id:
                return _WorkItem(call.future, *self._core.decode_call(call))
        raise KeyError(work_id)

    def __repr__(self):
        return f"<pending work items: {len(self)}>"
