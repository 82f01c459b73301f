"""Fresh process pools (fastfutures.bench.workloads, group "fresh"): each
round creates a pool with `with ProcessPoolExecutor() as ex:` (the platform's
default start method, 2 workers), uses it and shuts it down, all timed:
no-op submits then results, map() with chunksize=256, 16 MiB results kept
(copied, and zero-copy views for fastfutures).  stdlib vs fastfutures vs
loky (loky.ProcessPoolExecutor, when installed)."""
import pytest

pytestmark = pytest.mark.workloads("fresh")


def test_fresh(run_timed):
    run_timed()
