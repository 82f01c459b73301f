"""examples/service.py, run for real: an aiohttp server on 127.0.0.1 in front
of a bounded fastfutures pool.  Concurrent requests over loopback: every one
is answered (200 with the right result, or 503 when the queue is full), each
accepted call runs once, and the queue never holds more than its bound."""
import asyncio
import hashlib
import importlib.util
import os
import threading

import pytest

from conftest import TIMEOUT

pytestmark = pytest.mark.stdlib_differs(reason="the example uses max_queue_size and stats()")

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "service.py")


def load_example():
    pytest.importorskip("aiohttp")
    pytest.importorskip("prometheus_client")
    spec = importlib.util.spec_from_file_location("_fastfutures_service_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_service_sheds_load_and_loses_nothing(cf):
    service = load_example()
    import aiohttp
    from aiohttp import web
    from prometheus_client.parser import text_string_to_metric_families

    workers, bound, requests = 2, 4, 40
    gate = threading.Event()

    async def scenario():
        app = service.create_app(workers, bound, gate=gate)
        pool = app[service.POOL_KEY]
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        depths = []

        async def sample():
            while True:
                depths.append(pool.stats().queued)
                await asyncio.sleep(0.001)

        async def get(session, size):
            async with session.get(f"{base}/resize", params={"size": str(size)}) as r:
                return r.status, (await r.json()) if r.status == 200 else await r.text()

        sampler = asyncio.ensure_future(sample())
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as s:
                calls = [asyncio.ensure_future(get(s, size)) for size in range(1, requests + 1)]
                # Everything beyond the busy workers and the queue is refused
                # while the workers are held.
                for _ in range(int(TIMEOUT / 0.005)):
                    if pool.stats().rejected == requests - workers - bound:
                        break
                    await asyncio.sleep(0.005)
                during = pool.stats()
                gate.set()
                answers = await asyncio.gather(*calls)
                async with s.get(f"{base}/metrics") as r:
                    assert r.status == 200
                    metrics_text = await r.text()
                after = pool.stats()
        finally:
            sampler.cancel()
            gate.set()
            await runner.cleanup()
        return answers, during, after, depths, metrics_text

    answers, during, after, depths, metrics_text = asyncio.run(
        asyncio.wait_for(scenario(), 3 * TIMEOUT))
    ok = [(size, body) for size, (status, body) in enumerate(answers, 1) if status == 200]
    shed = [body for status, body in answers if status == 503]
    assert len(ok) + len(shed) == requests                   # every request answered
    assert len(ok) == workers + bound and len(shed) == requests - workers - bound
    for size, body in ok:
        assert body == {"size": size,
                        "sha256": hashlib.sha256(bytes(size) * 1000).hexdigest()}
    assert all("overloaded" in body for body in shed)
    assert (during.queued, during.running) == (bound, workers)
    assert max(depths) <= bound
    assert after.submitted == after.completed == workers + bound     # each ran once
    assert after.rejected == len(shed)
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics_text)
               for s in f.samples if not s.labels.get("outcome") or
               s.labels["outcome"] == "completed"}
    assert samples["fastfutures_executor_calls_rejected_total"] == len(shed)
    assert samples["fastfutures_executor_calls_finished_total"] == workers + bound
    assert samples["fastfutures_executor_max_queue_size"] == bound
