"""An asyncio service that offloads blocking work to a pool, through
fastfutures' asyncio bridge: one install() call, the call sites unchanged
(loop.run_in_executor, asyncio.to_thread); on asyncio's loop and on uvloop.

The service answers each line a client sends with the SHA-256 of the line
hashed many times over (blocking CPU work that releases the GIL: hashlib
does for inputs of 2 KiB or more).  Server and clients are on 127.0.0.1:

    python examples/asyncio_service.py [--clients N] [--requests N]
"""
import argparse
import asyncio
import hashlib

import fastfutures.asyncio


def digest(line, rounds=20):
    """Blocking work: hash a 4 KiB block derived from the line, repeatedly."""
    block = line * (4096 // max(len(line), 1) + 1)
    for _ in range(rounds):
        block = hashlib.sha256(block).digest() * 128
    return hashlib.sha256(block).hexdigest()


async def handle(reader, writer):
    loop = asyncio.get_running_loop()
    try:
        while line := await reader.readline():
            # The loop's default executor: the pool install() set.
            answer = await loop.run_in_executor(None, digest, line.rstrip(b"\n"))
            writer.write(answer.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def client(port, name, requests):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for i in range(requests):
        writer.write(b"%s-%d\n" % (name.encode(), i))
        await writer.drain()
        answers.append((await reader.readline()).decode().strip())
    writer.close()
    await writer.wait_closed()
    return answers


async def serve_and_query(clients, requests):
    executor = fastfutures.asyncio.install()        # a fastfutures ThreadPoolExecutor
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        answers = await asyncio.gather(*(client(port, "client%d" % c, requests)
                                         for c in range(clients)))
        # asyncio.to_thread works the same way, through the bridge.
        check = await asyncio.to_thread(digest, b"client0-0")
    assert answers[0][0] == check
    return type(executor).__module__, sum(len(a) for a in answers)


def loops():
    """asyncio's own loop, and uvloop's where it is installed."""
    yield "asyncio", asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        return
    yield "uvloop", uvloop.new_event_loop


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args(argv)
    for name, new_loop in loops():
        # asyncio.run() on the loop of our choice (its loop_factory is 3.12+).
        loop = new_loop()
        try:
            pool, answered = loop.run_until_complete(serve_and_query(args.clients,
                                                                     args.requests))
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
        print("%s: %d requests answered, default executor from %s"
              % (name, answered, pool))


if __name__ == "__main__":
    main()
