"""Thread workloads (fastfutures.bench.workloads, group "thread"), stdlib vs fastfutures:
Future cycle, no-op submits + wait(), map(), as_completed(), round trip."""
import pytest

pytestmark = pytest.mark.workloads("thread")


def test_thread(run_timed):
    run_timed()
