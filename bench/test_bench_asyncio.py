"""asyncio offload (fastfutures.bench.workloads, group "asyncio"): sequential
to_thread, gather of run_in_executor, a server-like mix; stdlib vs
fastfutures.asyncio, with anyio and uvloop columns when installed."""
import pytest

pytestmark = pytest.mark.workloads("asyncio")


def test_asyncio(run_timed):
    run_timed()
