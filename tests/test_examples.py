"""Every program in examples/ runs, with short inputs, so that the docs that
include them cannot rot (docs/ shows these files, not copies of them).

The examples are fastfutures programs, not behaviour tests: each runs as
its users would run it (a fresh interpreter, `python examples/x.py`), on
127.0.0.1 only.
"""
import asyncio
import hashlib
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import TIMEOUT

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, timeout=180):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_every_example_has_a_test():
    tested = {"crawler.py", "process_pool.py", "asyncio_service.py", "dask_cluster.py",
              "service.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_crawler():
    out = run_example("crawler.py", "--pages", "6")
    assert "6 pages, 2100 bytes in all" in out
    assert "/missing' generated an exception: HTTP Error 404" in out
    assert "first answer:" in out and "page 5 within 1 ms:" in out


@pytest.mark.skipif(sys.platform == "win32", reason="signals and os._exit in workers")
def test_process_pool():
    pytest.importorskip("numpy")
    out = run_example("process_pool.py", "--quick")
    assert "primes below 20000: 2262" in out
    assert "exceeded its time limit of 0.2 s" in out
    assert "results around the time limit: (9, 25)" in out
    assert "cancelled while running: True" in out and "after the cancel: 49" in out
    assert "exit code 3" in out and "signal 9" in out
    assert "after two deaths: [0, 1, 4, 9]" in out


def test_asyncio_service():
    out = run_example("asyncio_service.py", "--clients", "3", "--requests", "4")
    assert "asyncio: 12 requests answered, default executor from fastfutures" in out
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return
    assert "uvloop: 12 requests answered" in out


def test_dask_cluster():
    pytest.importorskip("distributed", reason="DaskExecutor needs dask[distributed]")
    out = run_example("dask_cluster.py", "--items", "5000")
    assert "sum of 5000 scores: 262086206" in out
    assert "item 3 failed: ValueError('no threes') (remote traceback: True)" in out


SERVICE = EXAMPLES / "service.py"


def load_service_example():
    pytest.importorskip("aiohttp")
    pytest.importorskip("prometheus_client")
    spec = importlib.util.spec_from_file_location("_fastfutures_service_example", SERVICE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_service():
    """examples/service.py, driven in this process: an aiohttp server on
    127.0.0.1 in front of a bounded pool; concurrent requests over loopback:
    every one is answered (200 with the right result, or 503 when the queue
    is full), each accepted call runs once, the queue never passes its bound."""
    service = load_service_example()
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
