"""Ctrl-C while an asyncio service has thousands of offloaded calls in flight,
run in a fresh interpreter by tests/test_asyncio_bridge.py for both
implementations.

usage: python asyncio_interrupt.py MODULE LOOP

MODULE is ``fastfutures`` (with fastfutures.asyncio.install()) or
``concurrent.futures``; LOOP ``asyncio`` or ``uvloop``.  SIGINT arrives while
the calls run; the script must end with KeyboardInterrupt (exit status 130 or
the traceback's 1), having printed "interrupted" and nothing else on stderr
but the KeyboardInterrupt traceback.
"""
import asyncio
import importlib
import os
import signal
import sys
import threading
import time


def main(module_name, loop_name):
    cf = importlib.import_module(module_name)
    started = threading.Event()

    def call(i):
        started.set()
        time.sleep(0.0005)
        return i

    async def serve():
        loop = asyncio.get_running_loop()
        executor = cf.ThreadPoolExecutor(4)
        if module_name == "fastfutures":
            import fastfutures.asyncio
            fastfutures.asyncio.install(loop, executor)
        else:
            loop.set_default_executor(executor)

        async def handler(n):
            for i in range(1000):
                assert await asyncio.to_thread(call, i) == i
        await asyncio.gather(*[handler(n) for n in range(100)])

    def interrupt():
        started.wait(30)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    if loop_name == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve())
    except KeyboardInterrupt:
        os.write(1, b"interrupted\n")
        # What asyncio.run does on the way out: cancel what is left, let it
        # finish, wait for the default executor, close.
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        os.write(1, b"closed\n")
        raise


if __name__ == "__main__":
    # Started in the background (nohup, `&`), this process inherits SIGINT
    # ignored and Python installs no KeyboardInterrupt handler: restore it,
    # as CPython's own tests do.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main(*sys.argv[1:])
