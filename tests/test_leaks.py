"""Leak tests, aio-libs style: every scenario runs in a fresh interpreter.

tests/scripts/leak_scenario.py runs a scenario's step ROUNDS times as a
warm-up, then twice more, measuring RSS (/proc/self/statm, after
gc.collect()) after each phase.  Growth between the end of the warm-up and
the end of the last phase must stay under a few MiB -- far less than one
leaked Future (or frame, traceback, waiter, work item) per operation would
cost at these counts -- and nothing may be left over: threads, child
processes, file descriptors (shared-memory segments are memfds) or
/dev/shm entries.

The default run uses reduced counts (about half a minute on two cores); the
full-size versions (millions of futures, 1M thread-pool tasks, 100k
process-pool tasks with large results) are marked slow:

    python -m pytest -m slow tests/test_leaks.py
"""
import json
import os
import subprocess
import sys
import time

import pytest

import fastfutures
import fastfutures.process

from conftest import load_test_script

resources = load_test_script("resources")


def wait_until(predicate, timeout):
    """Poll until ``predicate()`` returns a falsy value; return its last value."""
    deadline = time.monotonic() + timeout
    while (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "scripts", "leak_scenario.py")
SRC = os.path.dirname(os.path.dirname(os.path.abspath(fastfutures.__file__)))

MiB = 1024 * 1024

PROCESS_POOL_LANDED = fastfutures.process.ProcessPoolExecutor.__module__ == "fastfutures.process"
needs_process_pool = pytest.mark.skipif(
    not PROCESS_POOL_LANDED,
    reason="fastfutures.process.ProcessPoolExecutor is still the stdlib pool "
           "(the shared-memory pool has not landed)")

# scenario: (default (rounds, batch), slow (rounds, batch), RSS bound)
SCENARIOS = {
    # 3 phases x rounds x batch futures; slow: 3 x 1M each
    "future_result": ((5, 10_000), (10, 100_000), 4 * MiB),
    "future_exception": ((5, 10_000), (10, 100_000), 4 * MiB),
    "future_cancel": ((5, 10_000), (10, 100_000), 4 * MiB),
    "future_callbacks": ((5, 10_000), (10, 100_000), 4 * MiB),
    "callbacks_raise": ((5, 2_000), (10, 20_000), 4 * MiB),
    "wait": ((5, 800), (10, 20_000), 4 * MiB),
    "as_completed": ((5, 4_000), (10, 100_000), 4 * MiB),
    "wait_threaded": ((5, 800), (10, 10_000), 4 * MiB),
    # slow: 1M tasks per phase
    "thread_pool_tasks": ((5, 4_000), (10, 100_000), 6 * MiB),
    "thread_pool_lifecycle": ((5, 40), (10, 500), 4 * MiB),
    # slow: 100k tasks with 256 KiB results per phase
    "process_pool_tasks": ((5, 200), (10, 10_000), 16 * MiB),
    "process_pool_lifecycle": ((3, 3), (10, 20), 8 * MiB),
}


def run_scenario(module, scenario, rounds, batch, timeout):
    proc = subprocess.run(
        [sys.executable, SCRIPT, module, scenario, str(rounds), str(batch)],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert proc.returncode == 0, f"scenario failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    helpers = [int(pid) for pid in report["helpers"]]
    alive = wait_until(lambda: [pid for pid in helpers
                                if resources.process_state(pid) not in (None, "Z")] or None,
                       timeout=10)
    assert not alive, f"multiprocessing helpers outlived their process: {report['helpers']}"
    return report


def check(report, bound):
    rss = report["rss"]
    growth = rss[2] - rss[0]
    print(f"{report['module']} {report['scenario']}: {report['operations_per_phase']} ops/phase, "
          f"RSS {rss[0] / MiB:.1f} -> {rss[1] / MiB:.1f} -> {rss[2] / MiB:.1f} MiB "
          f"(growth {growth / 1024:+.0f} KiB)")
    assert growth <= bound, f"RSS grew by {growth / MiB:.2f} MiB after warm-up: {report}"
    assert report["threads_left"] == [], report
    assert report["children_left"] == [], report
    # multiprocessing's forkserver and resource tracker (3.14's default
    # start method uses both; the scenario starts them first): the same
    # processes throughout, gone with the scenario's process (run_scenario).
    assert report["helpers"] == report["helpers_before"], report
    assert report["fds_left"] == [], report
    assert report["shm_left"] == [], report


def params(slow):
    out = []
    for name, (default, full, bound) in SCENARIOS.items():
        marks = [needs_process_pool] if name.startswith("process") else []
        if slow:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, full if slow else default, bound, marks=marks, id=name))
    return out


@pytest.mark.parametrize("scenario,counts,bound", params(slow=False))
def test_no_leak(scenario, counts, bound):
    check(run_scenario("fastfutures", scenario, *counts, timeout=100), bound)


@pytest.mark.timeout(3700)
@pytest.mark.parametrize("module", ["fastfutures", "concurrent.futures"])
@pytest.mark.parametrize("scenario,counts,bound", params(slow=True))
def test_no_leak_full_size(module, scenario, counts, bound):
    # The stdlib runs the same scenarios as a reference for the bounds.
    check(run_scenario(module, scenario, *counts, timeout=3600), bound)
