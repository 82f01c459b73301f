"""fastfutures.metrics: OpenTelemetry (through the SDK's in-memory reader)
and Prometheus (a real start_http_server() on 127.0.0.1, parsed with
prometheus_client's own parser), checked against stats().  Skipped where the
[otel] / [prometheus] extras are not installed."""
import gc
import threading
import urllib.request

import pytest

from conftest import TIMEOUT, wait_until

pytestmark = pytest.mark.stdlib_differs(reason="stats() and its exporters are fastfutures only")


def busy_pool(cf, kind):
    """A pool with a known history: 20 completed, 5 failed, 3 cancelled,
    1 running (held by `gate`), 2 queued."""
    gate = threading.Event() if kind == "thread" else None
    if kind == "thread":
        ex = cf.ThreadPoolExecutor(1, max_queue_size=10)
        hold = (gate.wait, TIMEOUT)
    else:
        ex = cf.ProcessPoolExecutor(1, max_queue_size=10)
        hold = None
    list(ex.map(abs, range(20)))
    for f in [ex.submit(divmod, 1, 0) for _ in range(5)]:
        f.exception(TIMEOUT)
    if hold is not None:
        held = ex.submit(*hold)
        assert wait_until(held.running)
        queued = [ex.submit(abs, i) for i in range(5)]
        for f in queued[:3]:
            assert f.cancel()
    return ex, gate


def release(ex, gate):
    if gate is not None:
        gate.set()
    ex.shutdown()


@pytest.fixture(params=["thread", "process"])
def kind(request):
    return request.param


def test_otel_instruments_report_the_snapshot(cf, kind):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from fastfutures.metrics.otel import instrument

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    ex, gate = busy_pool(cf, kind)
    try:
        instrument(ex, meter_provider=provider, name="resize")
        s = ex.stats()
        points = {}
        for rm in reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                assert sm.scope.name == "fastfutures"
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes)
                        assert attributes.pop("fastfutures.executor.name") == "resize"
                        assert attributes.pop("fastfutures.executor.type") == kind
                        points[(metric.name, tuple(sorted(attributes.items())))] = (
                            point.value, metric.unit)
        p = "fastfutures.executor."
        assert points[(p + "calls.queued", ())] == (s.queued, "{call}")
        assert points[(p + "calls.running", ())][0] == s.running
        assert points[(p + "calls.submitted", ())][0] == s.submitted
        outcome = "fastfutures.call.outcome"
        assert points[(p + "calls.finished", ((outcome, "completed"),))][0] == s.completed == 20
        assert points[(p + "calls.finished", ((outcome, "failed"),))][0] == s.failed == 5
        assert points[(p + "calls.finished", ((outcome, "cancelled"),))][0] == s.cancelled
        state = "fastfutures.worker.state"
        assert points[(p + "workers", ((state, "busy"),))][0] == s.busy_workers
        assert points[(p + "workers", ((state, "idle"),))][0] == s.idle_workers
        assert points[(p + "call.duration", (("quantile", "0.99"),))] == (s.run_time.p99, "s")
        assert points[(p + "call.duration", (("quantile", "1"),))][0] == s.run_time.max
        assert points[(p + "queue.wait.count", ())][0] == s.queue_wait.count
        assert points[(p + "call.time", ())][0] == pytest.approx(s.run_time.sum)
        assert points[(p + "calls.rejected", ())][0] == 0
    finally:
        release(ex, gate)
    # The instruments hold the pool weakly: gone, it reports nothing.
    del ex
    gc.collect()
    data = reader.get_metrics_data()        # None: no point at all
    names = [] if data is None else [m.name for rm in data.resource_metrics
                                     for sm in rm.scope_metrics for m in sm.metrics
                                     if any(True for _ in m.data.data_points)]
    assert "fastfutures.executor.calls.submitted" not in names


def test_prometheus_scrape_over_loopback(cf, kind):
    prometheus_client = pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families
    from fastfutures.metrics.prometheus import register

    registry = prometheus_client.CollectorRegistry()
    ex, gate = busy_pool(cf, kind)
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        register(ex, name="resize", registry=registry)
        s = ex.stats()
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            text = response.read().decode()
        samples = {}
        types = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                labels = dict(sample.labels)
                assert labels.pop("executor") == "resize" and labels.pop("type") == kind
                samples[(sample.name, tuple(sorted(labels.items())))] = sample.value
        p = "fastfutures_executor_"
        assert samples[(p + "queued_calls", ())] == s.queued
        assert samples[(p + "running_calls", ())] == s.running
        assert samples[(p + "max_queue_size", ())] == 10
        assert samples[(p + "calls_submitted_total", ())] == s.submitted
        assert types[p + "calls_submitted"] == "counter"
        assert samples[(p + "calls_finished_total", (("outcome", "completed"),))] == 20
        assert samples[(p + "calls_finished_total", (("outcome", "failed"),))] == 5
        assert samples[(p + "calls_finished_total", (("outcome", "cancelled"),))] == s.cancelled
        assert samples[(p + "workers", (("state", "busy"),))] == s.busy_workers
        assert types[p + "run_seconds"] == "histogram"
        assert samples[(p + "run_seconds_count", ())] == s.run_time.count
        assert samples[(p + "run_seconds_sum", ())] == pytest.approx(s.run_time.sum)
        assert samples[(p + "run_seconds_bucket", (("le", "+Inf"),))] == s.run_time.count
        buckets = sorted((float(dict(labels)["le"]), value) for (name, labels), value
                         in samples.items() if name == p + "queue_wait_seconds_bucket")
        assert [c for _, c in buckets] == sorted(c for _, c in buckets)
        assert buckets[-1][1] == s.queue_wait.count
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
        release(ex, gate)
