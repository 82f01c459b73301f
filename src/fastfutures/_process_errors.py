"""What a process pool's calls fail with: its exceptions and messages (the
stdlib's where the stdlib has the case).  Public through fastfutures.process."""
import signal
from concurrent.futures import _base as _stdlib_base
from concurrent.futures.process import BrokenProcessPool

__all__ = ["TaskTimeout", "WorkerDied"]


class TaskTimeout(_stdlib_base.TimeoutError):
    """A call ran past its time limit (``task_timeout=`` or
    ``with_options(timeout=...)``): its worker was killed and replaced."""

    def __init__(self, message, limit=None):
        super().__init__(message)
        self.limit = limit


class WorkerDied(BrokenProcessPool):
    """The worker running this call died (a signal, ``os._exit()``, the OOM
    killer, or killed by the pool while it ran another call).  Raised with
    ``on_worker_death="replace"``; the pool stays usable."""

    def __init__(self, message, pid=None, exitcode=None):
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode      # negative: -signal number

    @property
    def signal(self):
        """The signal number that killed the worker, or None."""
        return -self.exitcode if self.exitcode is not None and self.exitcode < 0 else None


# Pickled and shown by their public path.
TaskTimeout.__module__ = WorkerDied.__module__ = "fastfutures.process"


def task_timeout(fn, limit):
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return TaskTimeout(f"{name}() exceeded its time limit of {limit:g} s", limit)


def abrupt_exits(processes):
    """The cause of a pool broken by a worker's exit, as 3.15's stdlib gives
    it: a line per process that ended with a nonzero exit code (negative: a
    signal), as traceback lines for PoolCore.break_pool(); None if none did."""
    lines = [f"Process {p.pid} terminated abruptly with exit code {p.exitcode}"
             for p in processes if p.exitcode is not None and p.exitcode != 0]
    return ["\n".join(lines)] if lines else None


def worker_died(pid, exitcode):
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    else:
        how = f"exit code {exitcode}"
    return WorkerDied(f"The worker process (pid {pid}) running this call died ({how})",
                      pid, exitcode)


# The stdlib's words.
BROKEN_MESSAGE = ('A child process terminated abruptly, the process pool '
                  'is not usable anymore')
FUTURE_BROKEN_MESSAGE = ('A process in the process pool was terminated '
                         'abruptly while the future was running or pending.')
# gh-152967 (in the stdlib of Debian's 3.14.10): the executor was dropped
# while its last worker retired (max_tasks_per_child) with work queued; the
# stdlib cannot start a replacement then, and fails the queued work.
STRANDED_MESSAGE = ("The ProcessPoolExecutor was garbage collected with "
                    "work pending after its last worker process exited "
                    "upon reaching max_tasks_per_child; the pending work "
                    "can never be run.")
# fastfutures only: a pool used by the parent of a forked process.
INHERITED_MESSAGE = ('The process pool was started by the parent of this process '
                     '(os.fork()): it is not usable here')
