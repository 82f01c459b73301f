"""An asyncio web service that offloads blocking work to a bounded pool.

    pip install fastfutures[prometheus] aiohttp
    python examples/service.py --port 8080
    curl 'http://127.0.0.1:8080/resize?size=300'    # 200, or 503 when overloaded
    curl http://127.0.0.1:8080/metrics              # Prometheus text format

The pool queues at most ``--queue`` calls; when they are all taken, a request
is answered 503 (with Retry-After) at once instead of piling up -- the
service sheds load rather than growing latency and memory without limit.
``/metrics`` exposes the pool's stats() (queue depth, busy workers, wait and
run time histograms) for Prometheus.
"""
import argparse
import asyncio
import hashlib
import threading

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

import fastfutures
from fastfutures.metrics.prometheus import register

POOL_KEY = web.AppKey("pool", fastfutures.ThreadPoolExecutor)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
GATE_KEY = web.AppKey("gate", threading.Event)


def resize(size, gate=None):
    """The blocking work (a stand-in for image processing: hashing releases
    the GIL).  ``gate``: a threading.Event to wait for first (tests)."""
    if gate is not None:
        gate.wait(30)
    data = bytes(size) * 1000
    return hashlib.sha256(data).hexdigest()


async def handle_resize(request):
    try:
        size = int(request.query.get("size", "100"))
    except ValueError:
        raise web.HTTPBadRequest(text="size must be an integer")
    if not 0 < size <= 10_000:
        raise web.HTTPBadRequest(text="size must be in 1..10000")
    loop = asyncio.get_running_loop()
    try:
        digest = await loop.run_in_executor(
            request.app[POOL_KEY], resize, size, request.app.get(GATE_KEY))
    except fastfutures.QueueFull:
        # Shed load: the client retries later; nothing was queued.
        raise web.HTTPServiceUnavailable(text="overloaded, retry later",
                                         headers={"Retry-After": "1"})
    return web.json_response({"size": size, "sha256": digest})


async def handle_metrics(request):
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(max_workers=4, max_queue_size=16, gate=None):
    """The web application and its pool (shut down with the app)."""
    pool = fastfutures.ThreadPoolExecutor(
        max_workers, thread_name_prefix="resize",
        max_queue_size=max_queue_size, on_queue_full="raise")
    registry = CollectorRegistry()
    register(pool, name="resize", registry=registry)
    app = web.Application()
    app[POOL_KEY] = pool
    app[REGISTRY_KEY] = registry
    if gate is not None:
        app[GATE_KEY] = gate
    app.router.add_get("/resize", handle_resize)
    app.router.add_get("/metrics", handle_metrics)

    async def shut_pool_down(app):
        # Off the loop thread: shutdown(wait=True) joins the workers.
        await asyncio.to_thread(pool.shutdown)
    app.on_cleanup.append(shut_pool_down)
    return app


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--queue", type=int, default=16, help="max_queue_size")
    args = parser.parse_args(argv)
    web.run_app(create_app(args.workers, args.queue), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
