"""A thread pool inherited through os.fork() (fastfutures behaviour).

The stdlib's inherited pool never runs anything in the child (its worker
threads are gone and no new ones start), so a submit there blocks forever.
fastfutures starts fresh workers in the child for the child's own work, and
drops the work the parent had queued: that is the parent's to run.
"""
import os
import threading
import time
import warnings

import pytest

import fastfutures

TIMEOUT = 10

# 3.12+: the pools below fork their first worker while pytest's faulthandler
# watchdog thread runs; on 3.15 that warning is raised (an error here).
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")


def fork_and_wait(child):
    with warnings.catch_warnings():
        # 3.12+: forking a multi-threaded process warns; expected here.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
        pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = child()
        finally:
            os._exit(code)
    return wait_for_exit(pid)


def wait_for_exit(pid):
    """The exit code of child process ``pid``, once it has exited."""
    deadline = time.monotonic() + 30
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("forked child hung")
        time.sleep(0.01)


@pytest.mark.stdlib_differs
@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_inherited_pool_works_in_child_and_leaves_parent_work_alone(tmp_path):
    marker = tmp_path / "ran-in"
    release = threading.Event()

    def record():
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")

    ex = fastfutures.ThreadPoolExecutor(max_workers=1)
    try:
        busy = ex.submit(release.wait, TIMEOUT)
        queued = ex.submit(record)          # waits behind `busy` in the queue

        def child():
            f = ex.submit(pow, 3, 3)
            return 0 if f.result(timeout=TIMEOUT) == 27 else 1

        assert fork_and_wait(child) == 0
        release.set()
        assert busy.result(timeout=TIMEOUT) is True
        queued.result(timeout=TIMEOUT)
        # The queued call ran once, in the parent only.
        assert marker.read_text().split() == [str(os.getpid())]
    finally:
        release.set()
        ex.shutdown(wait=True)


# -- process pools ----------------------------------------------------------------

def _square(x):
    return x * x


@pytest.mark.stdlib_differs
@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_started_process_pool_refuses_work_in_child():
    """A process pool started before the fork belongs to the parent: in the
    child, submit() raises BrokenProcessPool (the stdlib's copy may hang or
    feed the parent's workers), shutdown() returns at once, and the parent's
    pool and workers are untouched."""
    import multiprocessing
    ex = fastfutures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    try:
        assert ex.submit(_square, 3).result(timeout=TIMEOUT) == 9
        pids = set(ex._processes)

        def child():
            try:
                ex.submit(_square, 4)
            except fastfutures.process.BrokenProcessPool as exc:
                ok = "os.fork()" in str(exc)
            else:
                ok = False
            ex.shutdown(wait=True)
            return 0 if ok else 1

        assert fork_and_wait(child) == 0
        assert set(ex._processes) == pids
        assert ex.submit(_square, 5).result(timeout=TIMEOUT) == 25
    finally:
        ex.shutdown(wait=True)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_unused_process_pool_works_in_child():
    """A process pool never used before the fork is the child's own (as
    with the stdlib), and the parent can still use its copy."""
    import multiprocessing
    ex = fastfutures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    try:
        def child():
            ok = ex.submit(_square, 4).result(timeout=TIMEOUT) == 16
            ex.shutdown(wait=True)
            return 0 if ok else 1

        assert fork_and_wait(child) == 0
        assert ex.submit(_square, 5).result(timeout=TIMEOUT) == 25
    finally:
        ex.shutdown(wait=True)


@pytest.mark.stdlib_differs
@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_fork_that_raises_after_the_child_exists_leaves_no_worker(monkeypatch):
    """3.15 raises fork()'s "multi-threaded" DeprecationWarning in the parent
    after the child exists, when warnings are errors: submit() raises it, and
    the child, unknown to the pool, leaves instead of serving it forever (the
    stdlib's stays).  The pool goes on working."""
    import multiprocessing
    children = []
    real_fork = os.fork

    def fork_then_raise():
        pid = real_fork()
        if pid:
            children.append(pid)
            raise DeprecationWarning("This process is multi-threaded, use of fork() may lead "
                                     "to deadlocks in the child.")
        return pid

    ex = fastfutures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    try:
        monkeypatch.setattr(os, "fork", fork_then_raise)
        with pytest.raises(DeprecationWarning):
            ex.submit(_square, 2)
        monkeypatch.undo()
        assert len(children) == 1
        assert wait_for_exit(children[0]) == 0
        assert ex.submit(_square, 3).result(timeout=TIMEOUT) == 9
    finally:
        ex.shutdown(wait=True)
