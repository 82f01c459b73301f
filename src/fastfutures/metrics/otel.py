"""OpenTelemetry metrics for a fastfutures pool (``pip install fastfutures[otel]``).

    from fastfutures.metrics.otel import instrument
    instrument(executor, name="image-resize")   # the global MeterProvider

Names follow OpenTelemetry's semantic-convention rules (lowercase, dotted
namespaces, UCUM units: ``s``, ``{call}``, ``{worker}``); every point carries
``fastfutures.executor.name`` and ``fastfutures.executor.type``
(``thread``/``process``):

=========================================== ====================== ==================
instrument                                  kind                   attributes
=========================================== ====================== ==================
fastfutures.executor.calls.queued           ObservableUpDownCounter
fastfutures.executor.calls.running          ObservableUpDownCounter
fastfutures.executor.workers                ObservableUpDownCounter fastfutures.worker.state: busy|idle
fastfutures.executor.calls.submitted        ObservableCounter
fastfutures.executor.calls.finished         ObservableCounter      fastfutures.call.outcome: completed|failed|cancelled
fastfutures.executor.calls.timed_out        ObservableCounter
fastfutures.executor.calls.rejected         ObservableCounter      (QueueFull)
fastfutures.executor.calls.ran_in_caller    ObservableCounter
fastfutures.executor.worker.deaths          ObservableCounter
fastfutures.executor.workers.replaced       ObservableCounter
fastfutures.executor.workers.exited_idle    ObservableCounter
fastfutures.executor.queue.wait.duration    ObservableGauge (s)    quantile: 0.5|0.9|0.99|1
fastfutures.executor.call.duration          ObservableGauge (s)    quantile: 0.5|0.9|0.99|1
fastfutures.executor.queue.wait.time        ObservableCounter (s)  (the sum; .count beside it)
fastfutures.executor.call.time              ObservableCounter (s)
=========================================== ====================== ==================

The durations are quantile gauges plus sum/count counters, not OpenTelemetry
histograms: the metrics API has no asynchronous histogram, and recording
every call into a synchronous one would cost each call what stats() saves.
(The Prometheus collector exports them as real histograms.)
"""
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .._version import __version__
from . import SnapshotSource

__all__ = ["instrument"]

_QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("1", "max"))


def instrument(executor, meter_provider=None, name=None):
    """Report ``executor.stats()`` through OpenTelemetry.

    ``meter_provider``: None for the global one; ``name``: the
    ``fastfutures.executor.name`` attribute (default: the class name and a
    number).  Returns the list of instruments made.  The executor is held
    weakly: once it is gone its instruments report nothing."""
    source = SnapshotSource(executor, name)
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter("fastfutures", __version__)
    base = {"fastfutures.executor.name": source.name, "fastfutures.executor.type": source.kind}

    def observe(read):
        def callback(options: CallbackOptions):
            snapshot = source.snapshot()
            if snapshot is None:
                return []
            return [Observation(value, {**base, **extra}) for value, extra in read(snapshot)]
        return callback

    def field(attribute):
        return observe(lambda s: [(getattr(s, attribute), {})])

    def quantiles(distribution):
        return observe(lambda s: [(getattr(getattr(s, distribution), q), {"quantile": label})
                                  for label, q in _QUANTILES])

    made = []

    def add(factory, instrument_name, callback, unit, description):
        made.append(factory(instrument_name, callbacks=[callback], unit=unit,
                            description=description))

    up_down, counter, gauge = (meter.create_observable_up_down_counter,
                               meter.create_observable_counter, meter.create_observable_gauge)
    prefix = "fastfutures.executor."
    add(up_down, prefix + "calls.queued", field("queued"), "{call}",
        "Calls accepted and not yet started by a worker")
    add(up_down, prefix + "calls.running", field("running"), "{call}", "Calls being run")
    add(up_down, prefix + "workers", observe(lambda s: [
        (s.busy_workers, {"fastfutures.worker.state": "busy"}),
        (s.idle_workers, {"fastfutures.worker.state": "idle"})]), "{worker}", "Live workers")
    add(counter, prefix + "calls.submitted", field("submitted"), "{call}", "Calls accepted")
    add(counter, prefix + "calls.finished", observe(lambda s: [
        (s.completed, {"fastfutures.call.outcome": "completed"}),
        (s.failed, {"fastfutures.call.outcome": "failed"}),
        (s.cancelled, {"fastfutures.call.outcome": "cancelled"})]), "{call}",
        "Calls that left the pool (a time-out or a worker death is failed)")
    for attribute, unit, description in (
            ("timed_out", "{call}", "Calls stopped by their time limit"),
            ("rejected", "{call}", "Submits refused with QueueFull"),
            ("ran_in_caller", "{call}", 'Calls run by their submitter (on_queue_full="caller_runs")')):
        add(counter, prefix + "calls." + attribute, field(attribute), unit, description)
    add(counter, prefix + "worker.deaths", field("worker_deaths"), "{worker}",
        "Calls failed because their worker died")
    add(counter, prefix + "workers.replaced", field("workers_replaced"), "{worker}",
        "Workers started in place of one that ended")
    add(counter, prefix + "workers.exited_idle", field("workers_exited_idle"), "{worker}",
        "Workers that exited after idle_timeout")
    for distribution, stem, what in (("queue_wait", "queue.wait", "Time from submit to a worker"),
                                     ("run_time", "call", "Time a call ran")):
        add(gauge, prefix + stem + ".duration", quantiles(distribution), "s",
            what + " (quantiles; 1 is the max)")
        add(counter, prefix + stem + ".time",
            observe(lambda s, d=distribution: [(getattr(s, d).sum, {})]), "s", what + " (sum)")
        add(counter, prefix + stem + ".count",
            observe(lambda s, d=distribution: [(getattr(s, d).count, {})]), "{call}",
            what + " (count)")
    return made
