"""asyncio offload at thread-pool speed.

``install()`` makes asyncio complete its futures from fastfutures futures in
batches (one loop wake-up per batch of completions, not one per call) and
gives the loop a fastfutures thread pool as its default executor::

    import asyncio
    import fastfutures.asyncio

    async def main():
        fastfutures.asyncio.install()
        await asyncio.to_thread(work)                        # unchanged call sites
        await asyncio.get_running_loop().run_in_executor(None, work)

How it engages: every asyncio path from a concurrent future to an asyncio
future -- ``loop.run_in_executor`` (stdlib loop and uvloop),
``asyncio.to_thread``, ``asyncio.wrap_future`` -- ends in
``asyncio.futures._chain_future(source, destination)``.  ``install()`` (and
the first call of this module's ``to_thread``/``run_in_executor``) replaces
that function, process-wide, by the compiled bridge, which handles a
fastfutures source with an asyncio destination and hands every other pair
(stdlib futures, ``run_coroutine_threadsafe``) to asyncio's own; and
``asyncio.wrap_future`` by a compiled one that does the same without
asyncio's Python-level steps when given a fastfutures future and its loop.  The loop's
own ``run_in_executor`` still runs, so its checks and errors are unchanged.
``uninstall()`` restores asyncio's function.
"""
import asyncio
import weakref
from asyncio import futures as _asyncio_futures

from .thread import ThreadPoolExecutor

try:
    from . import _asyncio_bridge
except (ImportError, AttributeError):   # an asyncio without the helpers it needs
    _asyncio_bridge = None

__all__ = ["install", "uninstall", "installed", "to_thread", "run_in_executor"]

# asyncio's own functions, and where the bridge puts its versions:
# _chain_future is what every path reaches (uvloop holds on to wrap_future
# from its import time); wrap_future, which loop.run_in_executor looks up on
# asyncio.futures at each call, is replaced too to skip its Python steps.
_ASYNCIO_FUNCTIONS = (
    (_asyncio_futures, "_chain_future", _asyncio_futures._chain_future),
    (_asyncio_futures, "wrap_future", _asyncio_futures.wrap_future),
    (asyncio, "wrap_future", asyncio.wrap_future),
)


def _engage():
    if _asyncio_bridge is None or installed():
        return
    for module, name, original in _ASYNCIO_FUNCTIONS:
        if getattr(module, name) is original:
            setattr(module, name, getattr(_asyncio_bridge, name.lstrip("_")))


def installed():
    """True when asyncio chains fastfutures futures through the bridge."""
    return _asyncio_bridge is not None \
        and _asyncio_futures._chain_future is _asyncio_bridge.chain_future


def uninstall():
    """Give asyncio its own ``_chain_future`` back (futures already chained
    through the bridge still complete through it)."""
    if installed():
        for module, name, original in _ASYNCIO_FUNCTIONS:
            if getattr(module, name) is getattr(_asyncio_bridge, name.lstrip("_")):
                setattr(module, name, original)


# The executor install() made for a loop: a second install() reuses it
# rather than leave it running unreferenced (loop.close() shuts down only the
# current default executor).
_made_for_loop = weakref.WeakKeyDictionary()


def install(loop=None, executor=None):
    """Route asyncio's completions of fastfutures futures through the bridge
    and make ``executor`` (a new ``fastfutures.ThreadPoolExecutor`` when None)
    the default executor of ``loop`` (the running loop when None).

    Returns the executor.  The loop shuts its default executor down when it
    closes (``asyncio.run`` does), as it does its own.  Calling it again for
    the same loop without an executor keeps the one it made.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    if executor is None:
        executor = _made_for_loop.get(loop)
        if executor is None or executor._shutdown:
            # The name asyncio gives its own default pool's threads.
            executor = ThreadPoolExecutor(thread_name_prefix="asyncio")
            _made_for_loop[loop] = executor
    loop.set_default_executor(executor)
    _engage()
    if _asyncio_bridge is not None:
        _asyncio_bridge.spin_before_select(loop)
        _asyncio_bridge.bridge_run_in_executor(loop)
    return executor


def run_in_executor(executor, func, *args):
    """``asyncio.get_running_loop().run_in_executor(executor, func, *args)``,
    through the bridge."""
    loop = asyncio.get_running_loop()
    _engage()
    return loop.run_in_executor(executor, func, *args)


async def to_thread(func, /, *args, **kwargs):
    """``asyncio.to_thread(func, *args, **kwargs)`` through the bridge: runs
    ``func`` in the loop's default executor with a copy of the current
    context (contextvars)."""
    asyncio.get_running_loop()      # asyncio's error, before anything changes
    _engage()
    return await asyncio.to_thread(func, *args, **kwargs)
