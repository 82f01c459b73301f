"""CPU work on a process pool: map() with chunksize, zero-copy numpy
results, time limits, killing a running call on cancel(), and workers that
die without breaking the pool.

    python examples/process_pool.py [--quick]
"""
import argparse
import math
import os
import signal
import time

import numpy as np

import fastfutures as futures
from fastfutures.process import TaskTimeout, WorkerDied


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def count_primes(limit):
    """map() with chunksize: one message per 1,000 numbers, not one per number."""
    with futures.ProcessPoolExecutor(max_workers=2) as executor:
        return sum(executor.map(is_prime, range(limit), chunksize=1000))


def noise(seed, n):
    """A large result: n float64 numbers (8 * n bytes)."""
    return np.random.default_rng(seed).standard_normal(n)


def column_means(rows, n):
    """Large numpy results without a copy in the parent: each array comes
    back as a view of the shared memory its worker wrote it into."""
    with futures.ProcessPoolExecutor(max_workers=2, zero_copy_results=True) as executor:
        means = []
        for array in executor.map(noise, range(rows), [n] * rows):
            means.append(float(array.mean()))
            del array                   # hands the segment back to its worker
        return means


def slow_square(x, seconds):
    time.sleep(seconds)
    return x * x


def with_time_limits():
    """A call that runs past its limit fails with TaskTimeout; its worker is
    killed and replaced, and every other call goes on."""
    with futures.ProcessPoolExecutor(max_workers=2, task_timeout=5) as executor:
        quick = executor.submit(slow_square, 3, 0)
        stuck = executor.with_options(timeout=0.2).submit(slow_square, 4, 60)
        try:
            stuck.result(timeout=30)
        except TaskTimeout as exc:      # a concurrent.futures.TimeoutError
            print("time limit:", exc)
        after = executor.submit(slow_square, 5, 0)
        return quick.result(timeout=30), after.result(timeout=30)


def cancel_running_call():
    """cancel_running=True: cancel() stops a call that already runs (its
    worker is killed, a new one starts)."""
    with futures.ProcessPoolExecutor(max_workers=1, cancel_running=True) as executor:
        long_call = executor.submit(slow_square, 6, 60)
        while not long_call.running():
            time.sleep(0.01)
        print("cancelled while running:", long_call.cancel())
        return executor.submit(slow_square, 7, 0).result(timeout=30)


def crash(how):
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)


def survive_worker_deaths():
    """on_worker_death="replace": a worker that dies fails only its own
    call, with WorkerDied (a BrokenProcessPool); the pool stays usable."""
    with futures.ProcessPoolExecutor(max_workers=2,
                                     on_worker_death="replace") as executor:
        for how in ("exit", "kill"):
            try:
                executor.submit(crash, how).result(timeout=30)
            except WorkerDied as exc:
                print("worker %d died: exit code %s, signal %s"
                      % (exc.pid, exc.exitcode, exc.signal))
        return list(executor.map(slow_square, range(4), [0] * 4))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs")
    args = parser.parse_args(argv)
    limit, rows, n = (20_000, 4, 1 << 16) if args.quick else (2_000_000, 32, 1 << 21)
    print("primes below %d: %d" % (limit, count_primes(limit)))
    means = column_means(rows, n)
    print("%d arrays of %d numbers, largest mean %.4f" % (rows, n, max(means)))
    print("results around the time limit:", with_time_limits())
    print("next call after the cancel:", cancel_running_call())
    print("after two deaths:", survive_worker_deaths())


if __name__ == "__main__":
    main()
