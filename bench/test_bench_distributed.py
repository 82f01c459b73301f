"""dask.distributed workloads (fastfutures.bench.workloads, group "distributed"),
only where dask is installed: fastfutures' DaskExecutor vs dask's own
executor (client.get_executor(), the baseline) vs client.map/client.submit,
on one LocalCluster of 2 single-threaded worker processes: map() of short
calls with chunksize=1000, and the submit+result round trip."""
import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed")

pytestmark = pytest.mark.workloads("distributed")


def test_distributed(run_timed):
    run_timed()
