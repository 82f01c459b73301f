"""Bounded queues: QueueFull and the checks of the options that bound a pool
(max_queue_size, on_queue_full, queue_full_timeout, idle_timeout), shared by
both pools."""
import numbers

__all__ = ["QueueFull", "POLICIES"]


class QueueFull(Exception):
    """A pool made with ``max_queue_size=`` had no room for a call.

    Raised by ``submit()`` (and ``map()``) when ``on_queue_full="raise"``;
    when ``on_queue_full="block"`` and ``queue_full_timeout`` seconds passed
    without room; and -- whatever the policy but ``caller_runs`` -- to a
    submit made from one of the pool's own threads (a call running in the
    pool, a done-callback), which must never wait for the pool to make room.
    The call was not submitted.  fastfutures only.
    """


# on_queue_full= values.  "block": wait for room (the default when bounded);
# "raise": QueueFull; "caller_runs": the submitting thread runs the call.
POLICIES = ("block", "raise", "caller_runs")


def check_bounds(max_queue_size, on_queue_full, queue_full_timeout):
    """The validated (max_queue_size or 0, policy, timeout or -1.0)."""
    if max_queue_size is None:
        if on_queue_full is not None or queue_full_timeout is not None:
            raise ValueError("on_queue_full and queue_full_timeout need max_queue_size")
        return 0, "block", -1.0
    if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, numbers.Integral):
        raise TypeError("max_queue_size must be an integer or None")
    if max_queue_size <= 0:
        raise ValueError("max_queue_size must be > 0")
    if on_queue_full is None:
        on_queue_full = "block"
    if on_queue_full not in POLICIES:
        raise ValueError(f"on_queue_full must be one of {', '.join(map(repr, POLICIES))};"
                         f" got {on_queue_full!r}")
    timeout = check_seconds("queue_full_timeout", queue_full_timeout)
    if timeout >= 0 and on_queue_full != "block":
        raise ValueError('queue_full_timeout is only used with on_queue_full="block"')
    return int(max_queue_size), on_queue_full, timeout


def check_seconds(name, value):
    """A number of seconds >= 0, or None (returned as -1.0)."""
    if value is None:
        return -1.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds or None")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0")
    return float(value)
