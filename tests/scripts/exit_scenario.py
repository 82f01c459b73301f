"""Interpreter exit with work pending, run in a fresh interpreter by
tests/test_exit.py under both implementations.

usage: python exit_scenario.py MODULE POOL SCENARIO METHOD RELEASE

MODULE is ``fastfutures`` or ``concurrent.futures``; POOL ``thread`` or
``process``; METHOD the process pool's start method (``default`` for the
platform's); RELEASE a path that does not exist yet: tasks that must block
until the main thread lets them go wait for it to appear.

What the script prints (stdout, one line per event, written in one call so
that threads cannot interleave), its exit status and the non-indented lines
of its stderr are what the test compares between the implementations.
"""
import gc
import importlib
import multiprocessing
import os
import signal
import sys
import time


def say(line):
    # One write(2) per line: pool threads (callbacks) and the main thread say
    # things at the same moment, and concurrent writes to sys.stdout (a
    # TextIOWrapper) can drop one of them.
    os.write(1, (line + "\n").encode())


# -- tasks and callbacks (module level: picklable for 'spawn') -----------------

def task(i, delay=0.05):
    time.sleep(delay)
    return i


def wait_for_release(path, limit=30.0):
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return "never released"
        time.sleep(0.005)
    return "released"


def release(path):
    with open(path, "w"):
        pass


def outcome(future):
    if future.cancelled():
        return "cancelled"
    if not future.done():
        return "pending"
    exc = future.exception(timeout=0)
    return repr(future.result(timeout=0)) if exc is None else type(exc).__name__


def report_done(label):
    return lambda future: say(f"{label}: {outcome(future)}")


def exit_from_callback(future):
    say("callback raises SystemExit(3)")
    sys.exit(3)


# -- scenarios --------------------------------------------------------------------

def queue_work(pool, n=6):
    futures = [pool.submit(task, i) for i in range(n)]
    for i, future in enumerate(futures):
        future.add_done_callback(report_done(f"task {i}"))
    return futures


def queued_work(cf, make_pool, path):
    """Leave with queued work: it runs before the interpreter exits."""
    pool = make_pool()
    queue_work(pool)
    say("main exits")


def gc_pending(cf, make_pool, path):
    """The executor is dropped (and collected) with work pending; then the
    main thread leaves."""
    pool = make_pool()
    queue_work(pool)
    del pool
    gc.collect()
    say("main exits")


def gc_pending_wait(cf, make_pool, path):
    """The executor is dropped with work pending; its futures still finish."""
    pool = make_pool()
    futures = queue_work(pool)
    del pool
    gc.collect()
    done, not_done = cf.wait(futures, timeout=30)
    say(f"after wait: {len(done)} done, {len(not_done)} not done")


def callback_sys_exit(cf, make_pool, path):
    """sys.exit() in a done-callback that runs in a pool's thread (the worker
    of a thread pool, the result-handling thread of a process pool)."""
    pool = make_pool(1)
    first = pool.submit(wait_for_release, path)
    first.add_done_callback(exit_from_callback)     # registered while it runs
    second = pool.submit(task, 2)
    second.add_done_callback(report_done("second"))
    release(path)
    say(f"first: {first.result(timeout=30)}")
    cf.wait([second], timeout=2)
    say(f"second after wait: {outcome(second)}")
    say("main exits")


def raise_keyboard_interrupt(cf, make_pool, path):
    """KeyboardInterrupt raised in the main thread with work queued."""
    pool = make_pool()
    queue_work(pool, n=4)
    say("raising KeyboardInterrupt")
    raise KeyboardInterrupt


def _interrupted_while(name, waiting):
    def scenario(cf, make_pool, path, workers=1):
        """SIGINT (sent by the test) while the main thread waits."""
        pool = make_pool(workers)
        if workers > 1:     # every worker started (and one of them idle)
            for future in [pool.submit(task, 0, 0) for _ in range(4 * workers)]:
                future.result(timeout=30)
        blocked = pool.submit(wait_for_release, path)
        blocked.add_done_callback(report_done("blocked task"))
        try:
            say("waiting")
            waiting(cf, blocked)
            say("wait returned")
        except KeyboardInterrupt:
            say("KeyboardInterrupt in the main thread")
            release(path)
            raise
    scenario.__name__ = name
    return scenario


sigint_in_result = _interrupted_while("sigint_in_result", lambda cf, f: f.result())
sigint_in_result_timeout = _interrupted_while("sigint_in_result_timeout",
                                              lambda cf, f: f.result(timeout=60))
sigint_in_wait = _interrupted_while("sigint_in_wait", lambda cf, f: cf.wait([f]))
sigint_in_as_completed = _interrupted_while("sigint_in_as_completed",
                                            lambda cf, f: list(cf.as_completed([f])))


def sigint_to_group(cf, make_pool, path):
    """Ctrl-C: SIGINT to the whole process group, workers included, while
    one worker runs a task and the other is idle."""
    sigint_in_result(cf, make_pool, path, workers=2)


SCENARIOS = {fn.__name__: fn for fn in (
    queued_work, gc_pending, gc_pending_wait, callback_sys_exit,
    raise_keyboard_interrupt, sigint_in_result, sigint_in_result_timeout,
    sigint_in_wait, sigint_in_as_completed, sigint_to_group)}


def main():
    module_name, pool_kind, scenario, method, path = sys.argv[1:6]
    # Started from a background job of a non-interactive shell, the test run
    # (and so this script) inherits SIGINT ignored, and Python then installs
    # no handler: Ctrl-C must act here as it does in a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cf = importlib.import_module(module_name)

    def make_pool(workers=2):
        if pool_kind == "thread":
            return cf.ThreadPoolExecutor(workers)
        context = None if method == "default" else multiprocessing.get_context(method)
        return cf.ProcessPoolExecutor(workers, mp_context=context)
    SCENARIOS[scenario](cf, make_pool, path)


if __name__ == "__main__":
    main()
