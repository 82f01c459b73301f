"""Memory metrics (fastfutures.bench.workloads, group "memory"): traced bytes per
pending Future and per submitted-but-not-run task.

Reported, not asserted: the numbers appear in the table at the end of the
session.  These tests do not use the benchmark fixture, so
``--benchmark-only`` skips them.
"""
import pytest

pytestmark = pytest.mark.workloads("memory")


def test_memory(workload, impl, size, record):
    record(impl, [workload.measure(impl, size)])
