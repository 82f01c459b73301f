"""Run the running interpreter's own test.test_concurrent_futures against fastfutures.

    python tools/cpython_suite.py [-v] [-k TEXT] [--stdlib] [--no-set-aside] [--json FILE]

CPython's test files are not copied here: the installed `test` package is
loaded, `concurrent.futures`' public names (Future, Executor, the pools, wait,
as_completed) are pointed at fastfutures' before the tests import them, and
the suite runs with unittest.  `--stdlib` runs it unpatched, for comparison.

Every test counts, except those listed in SET_ASIDE: tests that read or patch
private attributes of the stdlib's implementation (its internal queues,
threads, module globals), each with the reason.  KNOWN_FAILURES lists public
tests that fastfutures does not pass yet, with the issue that covers them; a
known failure that passes is reported, so the list cannot go stale.

Exit status: 0 when every counted test passed or skipped as it does for the
stdlib, 1 otherwise.  Needs the `test` package (pyenv's builds ship it; on
Debian, libpython3.X-testsuite).
"""
import argparse
import fnmatch
import json
import sys
import time
import unittest

# Test ids (fnmatch patterns, after "test.test_concurrent_futures.") set
# aside because they test the stdlib's private machinery, not behaviour.
SET_ASIDE = {
    # -- thread pool internals
    "test_thread_pool.ThreadPoolExecutorTest.test_idle_thread_reuse":
        "counts executor._threads (the stdlib's set of Thread objects, ours differs in timing of reuse)",
    "test_thread_pool.ThreadPoolExecutorTest.test_saturation":
        "reads executor._threads and executor._max_workers internals of thread creation",
    "test_thread_pool.ThreadPoolExecutorTest.test_hang_global_shutdown_lock":
        "patches concurrent.futures.thread._global_shutdown_lock",
    "test_thread_pool.ThreadPoolExecutorTest.test_process_fork_from_a_threadpool":
        "reads concurrent.futures.thread._threads_queues",
    "test_thread_pool.ThreadPoolExecutorTest.test_executor_map_current_future_cancel":
        "patches the stdlib's internal executor for map()",
    "test_shutdown.ThreadPoolShutdownTest.test_hang_gh83386":
        "runs concurrent.futures.thread in a subprocess by module path",
    "test_shutdown.ThreadPoolShutdownTest.test_thread_names_assigned":
        "reads executor._threads",
    "test_shutdown.ThreadPoolShutdownTest.test_thread_names_default":
        "reads executor._threads",
    "test_shutdown.ThreadPoolShutdownTest.test_threads_terminate":
        "reads executor._threads",
    "test_shutdown.ThreadPoolShutdownTest.test_context_manager_shutdown":
        "reads executor._threads",
    "test_shutdown.ThreadPoolShutdownTest.test_del_shutdown":
        "reads executor._threads",
    "test_shutdown.ThreadPoolShutdownTest.test_shutdown_no_wait":
        "reads executor._threads",
    "test_shutdown.ThreadPoolShutdownTest.test_cancel_futures_wait_false":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.ThreadPoolShutdownTest.test_interpreter_shutdown":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.ThreadPoolShutdownTest.test_run_after_shutdown":
        "reads concurrent.futures.thread internals",
    "test_shutdown.ThreadPoolShutdownTest.test_submit_after_interpreter_shutdown":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    # -- interpreter pool internals
    "test_interpreter_pool.InterpreterPoolExecutorTest.test_idle_thread_reuse":
        "counts executor._threads",
    "test_interpreter_pool.InterpreterPoolExecutorTest.test_saturation":
        "reads executor._threads and executor._max_workers",
    "test_interpreter_pool.InterpreterPoolExecutorTest.test_hang_global_shutdown_lock":
        "patches concurrent.futures.thread._global_shutdown_lock",
    "test_interpreter_pool.InterpreterPoolExecutorTest.test_process_fork_from_a_threadpool":
        "reads concurrent.futures.thread._threads_queues",
    "test_interpreter_pool.InterpreterPoolExecutorTest.test_executor_map_current_future_cancel":
        "patches the stdlib's internal executor for map()",
    "test_shutdown.InterpreterPoolShutdownTest.test_*_threads*":
        "reads executor._threads",
    "test_shutdown.InterpreterPoolShutdownTest.test_thread_names_*":
        "reads executor._threads",
    "test_shutdown.InterpreterPoolShutdownTest.test_context_manager_shutdown":
        "reads executor._threads",
    "test_shutdown.InterpreterPoolShutdownTest.test_del_shutdown":
        "reads executor._threads",
    "test_shutdown.InterpreterPoolShutdownTest.test_shutdown_no_wait":
        "reads executor._threads",
    "test_shutdown.InterpreterPoolShutdownTest.test_hang_gh83386":
        "runs concurrent.futures.thread in a subprocess by module path",
    "test_shutdown.InterpreterPoolShutdownTest.test_cancel_futures_wait_false":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.InterpreterPoolShutdownTest.test_interpreter_shutdown":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.InterpreterPoolShutdownTest.test_submit_after_interpreter_shutdown":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.InterpreterPoolShutdownTest.test_run_after_shutdown":
        "reads concurrent.futures.thread internals",
    # -- process pool internals
    "test_process_pool.*.test_killed_child":
        "kills a worker through executor._processes",
    "test_process_pool.*.test_max_tasks_per_child*":
        "reads executor._processes to count worker processes",
    "test_process_pool.*.test_ressources_gced_in_workers":
        "uses a multiprocessing Manager event through the stdlib's call queue",
    "test_process_pool.*.test_python_finalization_error":
        "patches concurrent.futures.process internals",
    "test_process_pool.*.test_force_shutdown_workers*":
        "patches concurrent.futures.process._ExecutorManagerThread",
    "test_process_pool.*.test_terminate_workers":
        "patches executor._processes",
    "test_process_pool.*.test_kill_workers":
        "patches executor._processes",
    "test_process_pool.*.test_map_exception":
        "reads concurrent.futures.process._ExceptionWithTraceback",
    "test_process_pool.*.test_traceback":
        "reads concurrent.futures.process._RemoteTraceback by identity",
    "test_shutdown.ProcessPool*ShutdownTest.test_processes_terminate":
        "reads executor._processes",
    "test_shutdown.ProcessPool*ShutdownTest.test_context_manager_shutdown":
        "reads executor._processes",
    "test_shutdown.ProcessPool*ShutdownTest.test_del_shutdown":
        "reads executor._processes and _executor_manager_thread",
    "test_shutdown.ProcessPool*ShutdownTest.test_shutdown_no_wait":
        "reads executor._processes and _executor_manager_thread",
    "test_shutdown.ProcessPool*ShutdownTest.test_hang_gh83386":
        "runs concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.ProcessPool*ShutdownTest.test_interpreter_shutdown":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.ProcessPool*ShutdownTest.test_cancel_futures_wait_false":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.ProcessPool*ShutdownTest.test_submit_after_interpreter_shutdown":
        "runs a script that imports concurrent.futures in a subprocess (not patched there)",
    "test_shutdown.ProcessPool*ShutdownTest.test_shutdown_gh_132969_*":
        "patches executor._processes",
    "test_deadlock.*":
        "injects failures through the stdlib's _ExecutorManagerThread and call queue",
    "test_init.*.test_initializer":
        "reads the stdlib's logging of worker processes through a multiprocessing queue handler patched into concurrent.futures.process",
    "test_init.FailingInitializerResourcesTest.*":
        "counts resource-tracker semaphores of the stdlib's call queue",
    # -- Future internals
    "test_future.FutureTests.test_repr":
        "builds futures in each state by writing _state/_result/_exception",
    "test_future.FutureTests.test_cancel":
        "builds futures in each state by writing _state (util.create_future)",
    "test_future.FutureTests.test_cancelled":
        "builds futures in each state by writing _state (util.create_future)",
    "test_future.FutureTests.test_done":
        "builds futures in each state by writing _state (util.create_future)",
    "test_future.FutureTests.test_running":
        "builds futures in each state by writing _state (util.create_future)",
    "test_future.FutureTests.test_result_with_timeout":
        "builds futures in each state by writing _state (util.create_future)",
    "test_future.FutureTests.test_exception_with_timeout":
        "builds futures in each state by writing _state (util.create_future)",
    "test_future.FutureTests.test_future_traceback_cycle*":
        "builds futures by writing _state",
}

# Public tests fastfutures fails today, with the issue that covers them.
KNOWN_FAILURES = {
}

PREFIX = "test.test_concurrent_futures."


def point_at_fastfutures():
    """Make concurrent.futures' public names fastfutures' (before the tests import them)."""
    import concurrent.futures as stdlib
    import fastfutures
    for name in ("Future", "Executor", "ThreadPoolExecutor", "ProcessPoolExecutor",
                 "wait", "as_completed", "InterpreterPoolExecutor"):
        if name in fastfutures.__all__:
            setattr(stdlib, name, getattr(fastfutures, name))
    return fastfutures


def matching(test_id, table):
    short = test_id[len(PREFIX):] if test_id.startswith(PREFIX) else test_id
    for pattern, reason in table.items():
        if fnmatch.fnmatchcase(short, pattern):
            return reason
    return None


def iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def set_aside(suite, keyword, table):
    """The suite without the set-aside tests (and those not matching -k)."""
    kept, aside = unittest.TestSuite(), []
    for test in iter_tests(suite):
        test_id = test.id()
        if keyword and keyword not in test_id:
            continue
        reason = matching(test_id, table)
        if reason is None:
            kept.addTest(test)
        else:
            aside.append((test_id, reason))
    return kept, aside


class Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("-k", "--keyword", help="run only tests whose id contains this")
    parser.add_argument("--stdlib", action="store_true",
                        help="run against the unpatched stdlib, for comparison")
    parser.add_argument("--json", help="write the counts and failures here")
    parser.add_argument("--no-set-aside", action="store_true",
                        help="run the set-aside tests too (to review the list)")
    args = parser.parse_args(argv)

    target = "the stdlib"
    if not args.stdlib:
        fastfutures = point_at_fastfutures()
        target = "fastfutures %s" % fastfutures.__version__
    try:
        import test.test_concurrent_futures as package
    except ImportError as error:
        print("CPython's test package is not installed: %s" % error, file=sys.stderr)
        return 2
    from test import support
    support.verbose = args.verbose
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromName(package.__name__)
    suite, aside = set_aside(suite, args.keyword, {} if args.no_set_aside else SET_ASIDE)
    started = time.monotonic()
    runner = unittest.TextTestRunner(verbosity=2 if args.verbose else 1,
                                     resultclass=Result, stream=sys.stderr)
    result = runner.run(suite)
    elapsed = time.monotonic() - started

    failed = [(t.id(), "FAIL") for t, _ in result.failures]
    failed += [(t.id(), "ERROR") for t, _ in result.errors]
    unexpected = [(i, kind) for i, kind in failed if matching(i, KNOWN_FAILURES) is None]
    known = [(i, kind) for i, kind in failed if matching(i, KNOWN_FAILURES) is not None]
    fixed = [i for i in result.passed if matching(i, KNOWN_FAILURES) is not None]
    counts = {
        "python": sys.version.split()[0],
        "target": target,
        "counted": result.testsRun,
        "passed": len(result.passed),
        "skipped": len(result.skipped),
        "failed": len(failed),
        "known_failures": len(known),
        "set_aside": len(aside),
        "seconds": round(elapsed, 1),
    }
    print()
    print("CPython %(python)s test_concurrent_futures against %(target)s: "
          "%(counted)d counted, %(passed)d passed, %(skipped)d skipped, "
          "%(failed)d failed (%(known_failures)d known), %(set_aside)d set aside "
          "(private attributes) in %(seconds)ss" % counts)
    for test_id, kind in known:
        print("  known %s: %s -- %s" % (kind, test_id, matching(test_id, KNOWN_FAILURES)))
    for test_id in fixed:
        print("  passes now, take it off KNOWN_FAILURES: %s" % test_id)
    for test_id, kind in unexpected:
        print("  %s: %s" % (kind, test_id))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(counts, unexpected=unexpected, known=known, fixed=fixed,
                           set_aside=aside), f, indent=1)
    return 0 if not unexpected and not fixed else 1


if __name__ == "__main__":
    sys.exit(main())
