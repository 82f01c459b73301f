"""The worker process: read requests from the channel, run them, reply.

Mirrors ``concurrent.futures.process._process_worker``: the initializer
runs first (a failure is logged and the worker exits, which breaks the
pool); an exception travels back wrapped in the stdlib's
``_ExceptionWithTraceback`` so it arrives with its ``_RemoteTraceback``
cause; a result that cannot be pickled is replaced by the pickling error; an
argument that cannot be unpickled kills the worker (as in the stdlib, the
pool breaks).  The worker leaves when told to, after ``max_tasks`` tasks, or
as soon as its parent process is gone.
"""
import multiprocessing
import os
import select
from concurrent.futures import _base

from . import _shm_platform as platform
from . import _transport as transport
from ._process_core import WorkerLoop


class _ParentGone(Exception):
    pass


def worker_main(spec, initializer, initargs, max_tasks, go_ahead=None):
    """``go_ahead``: with fork, the pipe on which the parent says that it
    knows this worker (closed without a word: it does not); else None."""
    if go_ahead is not None:
        read_end, write_end = go_ahead
        os.close(write_end)             # the parent's copy alone decides
        told = os.read(read_end, 1)
        os.close(read_end)
        if not told:
            return
    endpoint = transport.open_worker_endpoint(spec)
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException:
            _base.LOGGER.critical('Exception in initializer:', exc_info=True)
            # The parent notices that the process stopped and breaks the pool.
            return
    endpoint.claims.mark_ready()
    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    poller = select.poll()
    poller.register(endpoint.wake_read_fd, select.POLLIN)
    if sentinel is not None:
        poller.register(sentinel, select.POLLIN)

    def sleep():
        for fd, _events in poller.poll():
            if fd == sentinel:
                raise _ParentGone
        platform.drain(endpoint.wake_read_fd)

    try:
        WorkerLoop(endpoint, sleep, max_tasks).serve()
    except _ParentGone:
        pass
