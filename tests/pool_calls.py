"""Functions the process-pool tests run in workers, and a pool factory for
their fixtures: module level, so that every start method can pickle them."""
import multiprocessing
import os
import signal
import time

from conftest import TIMEOUT


def square(x):
    return x * x


def get_pid(_=None):
    return os.getpid()


def exit_now(code):
    os._exit(code)


def wait_for_file(path, bound=TIMEOUT):
    """Runs until ``path`` exists (a gate), at most ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return "gate never opened"
        time.sleep(0.002)
    return "opened"


def mark(directory, name):
    """Leaves ``directory/name``; a second run of the same call fails."""
    open(os.path.join(directory, str(name)), "x").close()
    return name


def meet(directory, me, other, bound=TIMEOUT):
    """Leaves ``directory/me`` and waits for ``directory/other``: two calls
    meet only if they run at the same time, on two workers."""
    open(os.path.join(directory, me), "x").close()
    if wait_for_file(os.path.join(directory, other), bound) == "opened":
        return "met"
    return "alone"


def ignore_sigterm_and_wait(path, bound):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return wait_for_file(path, bound)


class PoolFactory:
    """Makes process pools of ``module`` with one start method for a test;
    close() shuts every one down (cancelling what is queued)."""

    def __init__(self, module, method, max_workers=1):
        self.module = module
        self.method = method
        self.max_workers = max_workers
        self.pools = []

    def __call__(self, max_workers=None, **kwargs):
        pool = self.module.ProcessPoolExecutor(
            max_workers or self.max_workers,
            mp_context=multiprocessing.get_context(self.method), **kwargs)
        self.pools.append(pool)
        return pool

    def close(self):
        for pool in self.pools:
            pool.shutdown(wait=True, cancel_futures=True)
