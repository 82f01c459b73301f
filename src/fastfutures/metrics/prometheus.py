"""A prometheus_client collector for a fastfutures pool
(``pip install fastfutures[prometheus]``).

    from fastfutures.metrics.prometheus import register
    register(executor, name="image-resize")     # prometheus_client.REGISTRY

Names follow Prometheus' conventions (snake_case, a ``fastfutures_executor_``
prefix, base units in the name: ``_seconds``; counters end in ``_total``);
every sample has the labels ``executor`` (the name) and ``type``
(``thread``/``process``):

========================================================= ========= =================
metric                                                    type      extra labels
========================================================= ========= =================
fastfutures_executor_queued_calls                         gauge
fastfutures_executor_running_calls                        gauge
fastfutures_executor_workers                              gauge     state: busy|idle
fastfutures_executor_max_workers                          gauge
fastfutures_executor_max_queue_size                       gauge     (bounded pools)
fastfutures_executor_calls_submitted_total                counter
fastfutures_executor_calls_finished_total                 counter   outcome: completed|failed|cancelled
fastfutures_executor_calls_timed_out_total                counter
fastfutures_executor_calls_rejected_total                 counter   (QueueFull)
fastfutures_executor_calls_ran_in_caller_total            counter
fastfutures_executor_worker_deaths_total                  counter
fastfutures_executor_workers_replaced_total               counter
fastfutures_executor_workers_exited_idle_total            counter
fastfutures_executor_queue_wait_seconds                   histogram (le: powers of two of ns, ~1 us..69 s)
fastfutures_executor_run_seconds                          histogram
========================================================= ========= =================
"""
from prometheus_client.core import (REGISTRY, CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.registry import Collector

from . import SnapshotSource

__all__ = ["ExecutorCollector", "register"]

PREFIX = "fastfutures_executor_"


class ExecutorCollector(Collector):
    """Collects one snapshot of ``executor.stats()`` per scrape."""

    def __init__(self, executor, name=None):
        self._source = SnapshotSource(executor, name, max_age=0)

    def describe(self):
        return []       # metrics depend on the pool (max_queue_size): no dry run

    def collect(self):
        s = self._source.snapshot()
        if s is None:
            return
        labels = ["executor", "type"]
        values = [self._source.name, self._source.kind]

        def family(kind, name, doc, value, extra=None):
            """One metric family; ``value``, when ``extra`` names more
            labels: a list of (value, {label: label value})."""
            made = kind(PREFIX + name, doc, labels=labels + list(extra or {}))
            for v, more in (value if extra is not None else [(value, {})]):
                made.add_metric(values + list(more.values()), v)
            return made

        def gauge(*args):
            return family(GaugeMetricFamily, *args)

        def counter(*args):
            return family(CounterMetricFamily, *args)

        yield gauge("queued_calls", "Calls accepted and not yet started by a worker", s.queued)
        yield gauge("running_calls", "Calls being run", s.running)
        yield gauge("workers", "Live workers", [(s.busy_workers, {"state": "busy"}),
                                                (s.idle_workers, {"state": "idle"})],
                    {"state": None})
        yield gauge("max_workers", "The pool's max_workers", s.max_workers)
        if s.max_queue_size is not None:
            yield gauge("max_queue_size", "The pool's max_queue_size", s.max_queue_size)
        yield counter("calls_submitted", "Calls accepted", s.submitted)
        yield counter("calls_finished", "Calls that left the pool (a time-out or a worker "
                      "death is failed)", [(s.completed, {"outcome": "completed"}),
                                           (s.failed, {"outcome": "failed"}),
                                           (s.cancelled, {"outcome": "cancelled"})],
                      {"outcome": None})
        yield counter("calls_timed_out", "Calls stopped by their time limit", s.timed_out)
        yield counter("calls_rejected", "Submits refused with QueueFull", s.rejected)
        yield counter("calls_ran_in_caller", "Calls run by their submitter", s.ran_in_caller)
        yield counter("worker_deaths", "Calls failed because their worker died", s.worker_deaths)
        yield counter("workers_replaced", "Workers started in place of one that ended",
                      s.workers_replaced)
        yield counter("workers_exited_idle", "Workers that exited after idle_timeout",
                      s.workers_exited_idle)
        for name, doc, d in (("queue_wait_seconds", "Time from submit to a worker", s.queue_wait),
                             ("run_seconds", "Time a call ran", s.run_time)):
            family = HistogramMetricFamily(PREFIX + name, doc, labels=labels)
            family.add_metric(values, [(_le(bound), count) for bound, count in d.buckets],
                              d.sum)
            yield family


def _le(bound):
    return "+Inf" if bound == float("inf") else repr(bound)


def register(executor, name=None, registry=REGISTRY):
    """Register an ExecutorCollector for ``executor``; returns it (pass it
    to ``registry.unregister()`` to stop)."""
    collector = ExecutorCollector(executor, name)
    registry.register(collector)
    return collector
