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
import select
from concurrent.futures import _base
from concurrent.futures.process import _ExceptionWithTraceback

from . import _shm_platform as platform
from . import _transport as transport

# Pause instructions to spin on an empty inbox before blocking in poll():
# a few microseconds, enough to catch the next request of a busy caller
# without burning a core when the pool is idle.
SPIN_ROUNDS = 2000


class _ParentGone(Exception):
    pass


def worker_main(spec, initializer, initargs, max_tasks):
    endpoint = transport.open_worker_endpoint(spec)
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException:
            _base.LOGGER.critical('Exception in initializer:', exc_info=True)
            # The parent notices that the process stopped and breaks the pool.
            return
    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    poller = select.poll()
    poller.register(endpoint.wake_read_fd, select.POLLIN)
    if sentinel is not None:
        poller.register(sentinel, select.POLLIN)
    try:
        _serve(endpoint, poller, sentinel, max_tasks)
    except _ParentGone:
        pass


def _sleep(endpoint, poller, sentinel):
    for fd, _events in poller.poll():
        if fd == sentinel:
            raise _ParentGone
    platform.drain(endpoint.wake_read_fd)


def _serve(endpoint, poller, sentinel, max_tasks):
    inbox = endpoint.inbox
    decode = endpoint.decode
    tasks_done = 0
    while True:
        records = inbox.read_batch(64)
        if not records:
            endpoint.flush_releases()
            if inbox.spin(SPIN_ROUNDS):
                continue
            if inbox.prepare_sleep():
                _sleep(endpoint, poller, sentinel)
            inbox.awake()
            continue
        for record in records:
            kind, flags, task_id, value = decode(record)
            if kind == transport.CALL:
                tasks_done += 1
                exiting = max_tasks is not None and tasks_done >= max_tasks
                _run(endpoint, poller, sentinel, task_id, value, exiting)
                value = None
                if exiting:
                    return
            elif kind == transport.EXIT:
                return
            else:
                endpoint.handle_control(kind, value)


def _run(endpoint, poller, sentinel, task_id, call, exiting):
    fn, args, kwargs = call
    call = None
    flags = transport.WORKER_EXITING if exiting else 0
    try:
        result = fn(*args, **kwargs) if kwargs else fn(*args)
    except BaseException as exc:
        _reply(endpoint, poller, sentinel, transport.EXCEPTION, task_id,
               _ExceptionWithTraceback(exc, exc.__traceback__), flags)
    else:
        _reply(endpoint, poller, sentinel, transport.RESULT, task_id, result, flags)


def _reply(endpoint, poller, sentinel, kind, task_id, value, flags):
    if type(value) is bytes and len(value) >= transport.OOB_THRESHOLD and kind == transport.RESULT:
        # The whole result is one big bytes: send it raw, as a buffer.
        kind, payload, buffers = transport.RAW_RESULT, b"", [memoryview(value)]
    else:
        try:
            payload, buffers = transport.dumps(value)
        except BaseException as exc:
            kind = transport.EXCEPTION
            payload, buffers = transport.dumps(_ExceptionWithTraceback(exc, exc.__traceback__))
    while not endpoint.send(kind, task_id, payload, buffers, flags):
        # The parent is behind: wait for room in the reply ring.
        needed = min(len(payload) + 256, endpoint.outbox.max_record)
        if endpoint.outbox.prepare_wait_room(needed):
            _sleep(endpoint, poller, sentinel)
