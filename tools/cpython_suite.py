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
known failure that passes is reported (some depend on timing), so the list
does not go stale unnoticed.

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
    "test_process_pool.*.test_saturation":
        "counts executor._processes (the stdlib's dict of worker processes)",
    "test_process_pool.*.test_python_finalization_error":
        "patches threading._start_joinable_thread to fail the stdlib's second "
        "thread (its queue feeder); fastfutures starts no such thread",
    "test_shutdown.ProcessPool*ShutdownTest.test_processes_terminate":
        "reads executor._processes",
    "test_shutdown.ProcessPool*ShutdownTest.test_del_shutdown":
        "reads executor._executor_manager_thread, _processes and _call_queue",
    "test_shutdown.ProcessPool*ShutdownTest.test_shutdown_no_wait":
        "reads executor._executor_manager_thread, _processes and _call_queue",
    "test_deadlock.*.test_shutdown_deadlock_pickle":
        "reads executor._executor_manager_thread",
    # 3.14
    "test_process_pool.*.test_broken_process_pool_traceback":
        "terminates a worker found in executor._processes (tests/test_dropin.py "
        "covers the behaviour: one BrokenProcessPool per future)",
    "test_process_pool.*.test_terminate_workers":
        "replaces executor._force_shutdown with a mock, expects process._TERMINATE",
    "test_process_pool.*.test_kill_workers":
        "replaces executor._force_shutdown with a mock, expects process._KILL",
    "test_process_pool.*.test_force_shutdown_workers_invalid_op":
        "calls the private executor._force_shutdown(operation=...)",
    "test_process_pool.*.test_force_shutdown_during_max_tasks_worker_exit":
        "sets executor._force_shutting_down under executor._shutdown_lock",
    "test_process_pool.*.test_failed_worker_replacement_breaks_pool":
        "patches concurrent.futures.process._spawn_worker",
}

# Public tests fastfutures fails today, with the issue that covers them.
KNOWN_FAILURES = {}

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
        print("  known failure passed this time (timing, or fixed: check KNOWN_FAILURES): %s"
              % test_id)
    for test_id, kind in unexpected:
        print("  %s: %s" % (kind, test_id))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(counts, unexpected=unexpected, known=known, fixed=fixed,
                           set_aside=aside), f, indent=1)
    return 0 if not unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
