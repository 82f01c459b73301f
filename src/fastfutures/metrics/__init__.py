"""Exporting ``executor.stats()`` to monitoring systems (optional extras):

* ``fastfutures.metrics.otel.instrument(executor)`` -- OpenTelemetry
  (``pip install fastfutures[otel]``);
* ``fastfutures.metrics.prometheus.register(executor)`` -- a prometheus_client
  collector (``pip install fastfutures[prometheus]``).

Both read one snapshot per collection (the counters add up) and hold the
executor weakly: an exporter never keeps a pool alive.
"""
import itertools
import time
import weakref

__all__ = ["SnapshotSource"]

_unnamed = itertools.count()


class SnapshotSource:
    """An executor's stats() for one collection: the snapshot is reused for
    ``max_age`` seconds, so the instruments of one collection agree.  None
    once the executor is gone."""

    __slots__ = ("_executor", "name", "kind", "_max_age", "_taken_at", "_snapshot")

    def __init__(self, executor, name=None, max_age=0.5):
        if not callable(getattr(executor, "stats", None)):
            raise TypeError(f"{type(executor).__name__} has no stats(): "
                            "a fastfutures pool is needed")
        self._executor = weakref.ref(executor)
        self.name = name if name is not None else f"{type(executor).__name__}-{next(_unnamed)}"
        self.kind = "process" if "Process" in type(executor).__name__ else "thread"
        self._max_age = max_age
        self._taken_at = -max_age
        self._snapshot = None

    def snapshot(self):
        executor = self._executor()
        if executor is None:
            self._snapshot = None
            return None
        now = time.monotonic()
        if self._snapshot is None or now - self._taken_at >= self._max_age:
            self._snapshot, self._taken_at = executor.stats(), now
        return self._snapshot
