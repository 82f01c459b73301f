"""Process pool workloads (fastfutures.bench.workloads, group "process"): 2 workers,
stdlib vs fastfutures vs loky (when installed): no-op submits then results,
map() with chunksize=256, round trip, 16 MiB results (copied, and zero-copy
views for fastfutures), dropped one by one or all kept until the last has
arrived."""
import pytest

pytestmark = pytest.mark.workloads("process")


def test_process(run_timed):
    run_timed()
