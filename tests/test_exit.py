"""Interpreter exit with work pending: fastfutures ends a script the way the
stdlib does.

Each scenario of tests/scripts/exit_scenario.py runs in a fresh interpreter
(bounded: 60 s), once with concurrent.futures and once with fastfutures; the
outcome compared is the exit status, the lines printed (as a multiset:
callbacks run in pool threads) and the non-indented lines of stderr (the
shape of tracebacks and log records, not their frames).  Afterwards no
process the script started may be left (its session is scanned).

Already covered elsewhere, not repeated here: a thread pool left with queued
work or after shutdown(wait=False) runs it at exit, and submit from an atexit
handler fails (test_thread_pool.py); a process pool's workers exit when the
executor is collected or the parent is SIGKILLed (test_process.py).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import fastfutures

from conftest import load_test_script, src_path_of, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="POSIX signals, /proc")

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "scripts", "exit_scenario.py")
SCRIPT_TIMEOUT = 60


resources = load_test_script("resources")


class Outcome:
    def __init__(self, returncode, stdout, stderr, leftover):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.leftover = leftover        # processes of its session still alive

    @property
    def lines(self):
        return sorted(self.stdout.splitlines())

    @property
    def stderr_shape(self):
        return sorted(line for line in self.stderr.splitlines()
                      if line.strip() and not line.startswith(" "))

    def comparable(self):
        return self.returncode, self.lines, self.stderr_shape

    def __repr__(self):
        return (f"<exit {self.returncode}, stdout {self.stdout!r}, "
                f"stderr {self.stderr[-3000:]!r}, leftover processes {self.leftover}>")


def run(module, pool, scenario, method="default", signal_when_waiting=None):
    """Run one scenario; with signal_when_waiting ('process' or 'group'),
    send SIGINT once the script says it is waiting."""
    release = os.path.join(tempfile.mkdtemp(prefix="ff-exit-"), "release")
    env = {**os.environ,
           "PYTHONPATH": src_path_of(fastfutures) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("PYTHONWARNINGS", None)
    # Output goes to files: orphaned workers of a hung pool would keep pipes open.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, SCRIPT, module, pool, scenario, method, release],
            stdout=out, stderr=err, text=True, env=env, start_new_session=True)
        try:
            if signal_when_waiting:
                def said_waiting():
                    out.seek(0)
                    return "waiting\n" in out.read() or proc.poll() is not None
                assert wait_until(said_waiting, timeout=SCRIPT_TIMEOUT)
                time.sleep(0.2)     # let it block in the wait
                if signal_when_waiting == "group":
                    os.killpg(proc.pid, signal.SIGINT)
                else:
                    proc.send_signal(signal.SIGINT)
            proc.wait(SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        finally:
            hung = proc.poll() is None
            if hung:
                proc.kill()
                proc.wait()
            # Workers exit when their parent does; give them a moment.
            wait_until(lambda: not resources.session_members(proc.pid), timeout=10)
            leftover = resources.session_members(proc.pid)
            for pid in leftover:
                os.kill(pid, signal.SIGKILL)
            if os.path.exists(release):
                os.unlink(release)
            os.rmdir(os.path.dirname(release))
        out.seek(0)
        err.seek(0)
        outcome = Outcome(proc.returncode, out.read(), err.read(), leftover)
    assert not hung, f"{module} {pool} {scenario}: still running after {SCRIPT_TIMEOUT} s: {outcome}"
    return outcome


# The stdlib's own exit-hook race (its wake-up pipe closed by a collected
# executor's manager thread before _python_exit writes to it): printed now and
# then, never by fastfutures; not part of the behaviour compared.
_STDLIB_EXIT_RACE = re.compile(
    r"Exception ignored in: <module 'threading'.*?\n(?:  .*\n)*?"
    r"OSError: \[Errno 9\] Bad file descriptor\n", re.S)


def run_both(pool, scenario, **kwargs):
    stdlib = run("concurrent.futures", pool, scenario, **kwargs)
    if "thread_wakeup.wakeup()" in stdlib.stderr:
        stdlib.stderr = _STDLIB_EXIT_RACE.sub("", stdlib.stderr)
    ours = run("fastfutures", pool, scenario, **kwargs)
    assert not stdlib.leftover, stdlib
    assert not ours.leftover, ours
    assert ours.comparable() == stdlib.comparable(), f"\nstdlib: {stdlib}\nfastfutures: {ours}"
    return stdlib


def done_lines(n):
    return [f"task {i}: {i!r}" for i in range(n)]


# -- normal exit ----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["default", "spawn"])
def test_process_pool_runs_queued_work_at_exit(method):
    # The stdlib's exit hook lets a process pool finish its pending work
    # (nothing is cancelled), then joins it: so does fastfutures.
    stdlib = run_both("process", "queued_work", method=method)
    assert stdlib.returncode == 0
    assert stdlib.lines == sorted(done_lines(6) + ["main exits"])
    assert stdlib.stderr == ""


@pytest.mark.parametrize("pool,method", [("thread", "default"), ("process", "default"),
                                         ("process", "spawn")])
def test_collected_executor_runs_pending_work_at_exit(pool, method):
    stdlib = run_both(pool, "gc_pending", method=method)
    assert stdlib.returncode == 0
    assert stdlib.lines == sorted(done_lines(6) + ["main exits"])
    assert stdlib.stderr == ""


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_collected_executor_finishes_its_futures(pool):
    stdlib = run_both(pool, "gc_pending_wait")
    assert stdlib.returncode == 0
    assert stdlib.lines == sorted(done_lines(6) + ["after wait: 6 done, 0 not done"])


# -- sys.exit from a done-callback ------------------------------------------------------

def test_sys_exit_in_callback_in_thread_pool_worker():
    # SystemExit escapes the worker's loop: the stdlib logs 'Exception in
    # worker' and that worker thread ends; the process does not exit.  With
    # one worker, the queued task never runs, and the exit does not wait for it.
    stdlib = run_both("thread", "callback_sys_exit")
    assert stdlib.returncode == 0
    assert stdlib.lines == sorted(["callback raises SystemExit(3)", "first: released",
                                   "second after wait: pending", "main exits"])
    assert "Exception in worker" in stdlib.stderr_shape
    assert "SystemExit: 3" in stdlib.stderr_shape


@pytest.mark.stdlib_differs
def test_sys_exit_in_callback_in_process_pool_result_thread():
    """The stdlib's queue-management thread dies of the SystemExit, and the
    interpreter then hangs at exit: multiprocessing joins the workers, which
    wait for work forever.  fastfutures' result thread breaks the pool
    instead: the other futures fail with BrokenProcessPool, the workers are
    stopped, and the script exits normally."""
    ours = run("fastfutures", "process", "callback_sys_exit")
    assert not ours.leftover, ours
    assert ours.returncode == 0, ours
    assert ours.lines == sorted(["callback raises SystemExit(3)", "first: released",
                                 "second: BrokenProcessPool",
                                 "second after wait: BrokenProcessPool", "main exits"])
    assert ours.stderr == "", ours


# -- KeyboardInterrupt ----------------------------------------------------------------------

@pytest.mark.parametrize("pool,method", [("thread", "default"), ("process", "default"),
                                         ("process", "spawn")])
def test_keyboard_interrupt_raised_in_main_thread(pool, method):
    # The traceback is printed, the pending work still runs at exit, and the
    # process ends by SIGINT (as CPython does for an unhandled KeyboardInterrupt).
    stdlib = run_both(pool, "raise_keyboard_interrupt", method=method)
    assert stdlib.returncode == -signal.SIGINT
    assert stdlib.lines == sorted(done_lines(4) + ["raising KeyboardInterrupt"])
    assert stdlib.stderr_shape == sorted(["Traceback (most recent call last):",
                                          "KeyboardInterrupt"])


@pytest.mark.parametrize("waiting", ["result", "result_timeout", "wait", "as_completed"])
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_sigint_while_main_thread_waits(pool, waiting):
    # SIGINT interrupts result()/wait()/as_completed(); the handler lets the
    # blocked task finish, which still completes at exit.
    stdlib = run_both(pool, f"sigint_in_{waiting}", signal_when_waiting="process")
    assert stdlib.returncode == -signal.SIGINT
    assert stdlib.lines == sorted(["waiting", "KeyboardInterrupt in the main thread",
                                   "blocked task: 'released'"])
    assert stdlib.stderr_shape == sorted(["Traceback (most recent call last):",
                                          "KeyboardInterrupt"])


def test_sigint_to_process_group():
    """Ctrl-C in a terminal: every process of the group gets SIGINT.  The
    busy worker's task fails with KeyboardInterrupt; the idle worker dies of
    it (multiprocessing prints its traceback), which may break the pool
    before the task's own failure arrives."""
    for module in ("concurrent.futures", "fastfutures"):
        outcome = run(module, "process", "sigint_to_group", signal_when_waiting="group")
        assert not outcome.leftover, outcome
        assert outcome.returncode == -signal.SIGINT, outcome
        assert outcome.lines in [
            sorted(["waiting", "KeyboardInterrupt in the main thread", failure])
            for failure in ("blocked task: KeyboardInterrupt",
                            "blocked task: BrokenProcessPool")], outcome
        # The main thread's traceback and the idle worker's.  Counted in the
        # raw text: two processes write to the same stderr at the same
        # moment, and their lines can interleave mid-line.
        assert outcome.stderr.count("KeyboardInterrupt") >= 2, outcome
        assert "Process " in outcome.stderr, outcome
