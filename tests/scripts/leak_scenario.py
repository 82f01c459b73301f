"""One leak scenario, run in a fresh interpreter by tests/test_leaks.py.

usage: python leak_scenario.py MODULE SCENARIO ROUNDS BATCH

MODULE is ``fastfutures`` or ``concurrent.futures``.  The scenario's step
runs BATCH operations; it runs ROUNDS times as a warm-up, then ROUNDS times
more twice, with an RSS checkpoint after each phase (after gc.collect()).
Prints one JSON object: the three RSS checkpoints (bytes) and what was
left over afterwards (threads, child processes, fds, /dev/shm entries)
compared with before the scenario.
"""
import gc
import importlib
import json
import logging
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resources import (multiprocessing_helpers, open_fds, pool_children,  # noqa: E402
                       shm_entries, start_multiprocessing_helpers)

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def silence_callback_logging():
    # Callbacks that raise are logged by 'concurrent.futures'; the record is
    # still built (with its traceback) but goes nowhere.
    logger = logging.getLogger("concurrent.futures")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


# -- scenarios: each returns a step(batch) callable and a cleanup() ------------

def s_future_result(cf):
    Future = cf.Future

    def step(n):
        for i in range(n):
            f = Future()
            f.set_running_or_notify_cancel()
            f.set_result(i)
            f.result()
            f.result(timeout=0)
    return step, None


def s_future_exception(cf):
    Future = cf.Future

    def step(n):
        for i in range(n):
            f = Future()
            f.set_exception(ValueError(i))
            try:
                f.result()
            except ValueError:
                pass
            f.exception()
    return step, None


def s_future_cancel(cf):
    Future = cf.Future
    CancelledError = cf.CancelledError

    def step(n):
        for _ in range(n):
            f = Future()
            f.cancel()
            f.set_running_or_notify_cancel()
            try:
                f.result(timeout=0)
            except CancelledError:
                pass
            g = Future()
            try:
                g.result(timeout=0)
            except cf.TimeoutError:
                pass
    return step, None


def s_future_callbacks(cf):
    Future = cf.Future
    seen = []

    def callback(f):
        seen.append(f.result())

    def step(n):
        for i in range(n):
            f = Future()
            f.add_done_callback(callback)
            f.add_done_callback(callback)
            f.add_done_callback(lambda fut: fut.add_done_callback(callback))
            f.set_result(i)
            f.add_done_callback(callback)
        seen.clear()
    return step, None


def s_callbacks_raise(cf):
    silence_callback_logging()
    Future = cf.Future

    def bad(f):
        raise RuntimeError("callback failed")

    def step(n):
        for i in range(n):
            f = Future()
            f.add_done_callback(bad)
            f.add_done_callback(bad)
            f.set_result(i)
            f.add_done_callback(bad)
            g = Future()
            g.add_done_callback(bad)
            g.cancel()
    return step, None


def s_wait(cf):
    Future = cf.Future
    modes = (cf.FIRST_COMPLETED, cf.FIRST_EXCEPTION, cf.ALL_COMPLETED)

    def step(n):
        for _ in range(max(1, n // 8)):
            fs = [Future() for _ in range(8)]
            for mode in modes:
                cf.wait(fs, timeout=0, return_when=mode)   # installs and removes waiters
            fs[0].set_result(0)
            fs[1].set_exception(ValueError())
            fs[2].cancel()
            for mode in modes:
                cf.wait(fs, timeout=0, return_when=mode)
            for f in fs[3:]:
                f.set_result(1)
            fs[2].set_running_or_notify_cancel()
            done, not_done = cf.wait(fs, timeout=1)
            assert not not_done
    return step, None


def s_as_completed(cf):
    Future = cf.Future

    def step(n):
        for _ in range(max(1, n // 8)):
            fs = [Future() for _ in range(8)]
            fs[0].set_result(0)
            it = cf.as_completed(fs, timeout=0)
            next(it)
            try:
                next(it)
            except cf.TimeoutError:
                pass
            for f in fs[1:]:
                f.set_result(1)
            assert len(list(cf.as_completed(fs, timeout=1))) == 8
            it = cf.as_completed(fs)
            next(it)
            it.close()          # abandoned iterator: its waiters must go
    return step, None


def s_wait_threaded(cf):
    # Waiters that really block and are woken by another thread.
    pool = cf.ThreadPoolExecutor(2)

    def step(n):
        for _ in range(max(1, n // 16)):
            fs = [pool.submit(pow, 2, i) for i in range(16)]
            cf.wait(fs, timeout=30, return_when=cf.FIRST_COMPLETED)
            for f in cf.as_completed(fs, timeout=30):
                f.result()
            cf.wait(fs, timeout=30)
    return step, lambda: pool.shutdown(wait=True)


def s_thread_pool_tasks(cf):
    pool = cf.ThreadPoolExecutor(4)

    def fail():
        raise ValueError("task failed")

    def step(n):
        fs = [pool.submit(abs, -i) for i in range(n)]
        for f in fs:
            f.result(timeout=60)
        del fs
        bad = [pool.submit(fail) for _ in range(max(1, n // 10))]
        for f in bad:
            assert isinstance(f.exception(timeout=60), ValueError)
        del bad
        assert sum(pool.map(abs, range(n // 2), timeout=60)) >= 0
    return step, lambda: pool.shutdown(wait=True)


def s_thread_pool_lifecycle(cf):
    def step(n):
        for i in range(n):
            pool = cf.ThreadPoolExecutor(2)
            fs = [pool.submit(abs, -j) for j in range(4)]
            if i % 3 == 0:
                pool.shutdown(wait=True, cancel_futures=True)
            elif i % 3 == 1:
                with pool:
                    pass
            else:
                pool.shutdown(wait=True)
            for f in fs:
                assert f.done()
            del pool, fs
    return step, None


def make_result(size):
    return b"x" * size


def s_process_pool_tasks(cf, size=256 * 1024):
    pool = cf.ProcessPoolExecutor(2)

    def step(n):
        fs = [pool.submit(make_result, size) for _ in range(n)]
        for f in fs:
            assert len(f.result(timeout=120)) == size
        del fs
        for r in pool.map(make_result, [1024] * n, chunksize=8, timeout=120):
            pass
    return step, lambda: pool.shutdown(wait=True)


def s_process_pool_lifecycle(cf):
    def step(n):
        for _ in range(n):
            pool = cf.ProcessPoolExecutor(2)
            fs = [pool.submit(make_result, 100) for _ in range(4)]
            pool.shutdown(wait=True)
            for f in fs:
                assert f.result(timeout=0) == b"x" * 100
            del pool, fs
    return step, None


SCENARIOS = {name[2:]: fn for name, fn in globals().items() if name.startswith("s_")}


def main():
    module_name, scenario, rounds, batch = sys.argv[1:5]
    rounds, batch = int(rounds), int(batch)
    cf = importlib.import_module(module_name)
    if scenario.startswith("process"):
        # With 'fork', the pool's own result thread makes later forks warn
        # (3.12+); this scenario is about memory, not that warning.
        import warnings
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        start_multiprocessing_helpers()
    gc.collect()
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = open_fds()
    shm_before = shm_entries()
    helpers_before = multiprocessing_helpers()

    step, cleanup = SCENARIOS[scenario](cf)
    checkpoints = []
    for _phase in range(3):
        for _ in range(rounds):
            step(batch)
        gc.collect()
        checkpoints.append(rss())
    if cleanup is not None:
        cleanup()
    del step, cleanup
    gc.collect()

    # Pool threads and processes wind down asynchronously after shutdown.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        extra_threads = [t.name for t in threading.enumerate()
                         if t.ident not in threads_before]
        if not extra_threads and not pool_children():
            break
        time.sleep(0.05)
    fds_after = open_fds()
    shm_new = sorted(shm_entries() - shm_before)
    if shm_new:     # ignore entries other programs create and remove meanwhile
        time.sleep(0.5)
        shm_new = sorted(set(shm_new) & shm_entries())
    print(json.dumps({
        "scenario": scenario,
        "module": module_name,
        "operations_per_phase": rounds * batch,
        "rss": checkpoints,
        "threads_left": [t.name for t in threading.enumerate()
                         if t.ident not in threads_before],
        "children_left": sorted(pool_children()),
        # {pid: name}: the same ones before and after
        "helpers_before": {str(k): v for k, v in helpers_before.items()},
        "helpers": {str(k): v for k, v in multiprocessing_helpers().items()},
        "fds_left": sorted(f"{fd}->{target}" for fd, target in fds_after.items()
                           if fds_before.get(fd) != target),
        "shm_left": shm_new,
    }))


if __name__ == "__main__":
    main()
