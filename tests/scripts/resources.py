"""What a pool can leave behind in the process that used it: threads, child
processes, file descriptors and /dev/shm entries (Linux: /proc).

Shared by the scripts that test faults and leaks in a fresh interpreter::

    before = Snapshot.take()
    ...                                  # run something
    left = before.leftovers()            # {kind: [description, ...]}, bounded wait

A resource counts as left over when it exists after the run and did not
before (a file descriptor: its number now points somewhere else).  Pools wind
down asynchronously after ``shutdown(wait=False)`` or garbage collection, so
``leftovers()`` polls until nothing is left or its grace period is over.
"""
import os
import threading
import time

KINDS = ("threads", "children", "fds", "shm")


def open_fds():
    """{fd: what it points to} for this process."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:       # the descriptor listdir itself used
            pass
    return fds


def children():
    """Child processes of this process, including unreaped zombies."""
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found.update(int(pid) for pid in f.read().split())
        except OSError:       # the thread exited meanwhile
            pass
    return found


def multiprocessing_helpers():
    """{pid: name} of multiprocessing's own helper processes: the forkserver
    server and the resource tracker.  Each is started once, on first use,
    serves every later pool and exits with this process (Python 3.14's
    default start method on Linux, forkserver, starts both), so they are no
    pool's leftovers; the leak tests check that they do not multiply and
    that they end with the process."""
    import sys
    helpers = {}
    forkserver = sys.modules.get("multiprocessing.forkserver")
    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        helpers[pid] = "forkserver"
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    pid = getattr(getattr(tracker, "_resource_tracker", None), "_pid", None)
    if pid:
        helpers[pid] = "resource_tracker"
    return helpers


def start_multiprocessing_helpers():
    """Start the helpers that the default start method uses, as its first
    pool would: their descriptors and processes then exist before a
    snapshot and are not counted as a pool's leftovers."""
    import multiprocessing
    from multiprocessing import resource_tracker
    method = multiprocessing.get_start_method()
    if method in ("spawn", "forkserver"):
        resource_tracker.ensure_running()
    if method == "forkserver":
        from multiprocessing import forkserver
        forkserver.ensure_running()


def pool_children():
    """children() other than multiprocessing's helpers."""
    return children() - set(multiprocessing_helpers())


def shm_entries():
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def process_state(pid):
    """The one-letter state of a process ('Z': zombie), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def session_members(sid):
    """Processes (other than zombies) in session ``sid``: a script started
    with ``start_new_session=True`` and everything it started and did not
    move elsewhere."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(name))
    return members


class Snapshot:
    def __init__(self, threads, children, fds, shm):
        self.threads = threads
        self.children = children
        self.fds = fds
        self.shm = shm

    @classmethod
    def take(cls):
        return cls(set(threading.enumerate()), pool_children(), open_fds(), shm_entries())

    def new_since(self, ignore_threads=()):
        """What exists now and did not when the snapshot was taken."""
        now = Snapshot.take()
        return {
            "threads": sorted(t.name for t in now.threads
                              if t not in self.threads and t.is_alive()
                              and t not in ignore_threads),
            "children": sorted(now.children - self.children),
            "fds": sorted(f"{fd}->{target}" for fd, target in now.fds.items()
                          if self.fds.get(fd) != target),
            "shm": sorted(now.shm - self.shm),
        }

    def leftovers(self, grace=10.0, ignore_threads=()):
        """new_since(), after waiting up to ``grace`` seconds for it to empty."""
        deadline = time.monotonic() + grace
        while True:
            left = self.new_since(ignore_threads)
            if not any(left.values()) or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if left["shm"]:
            # /dev/shm is machine-wide: keep only entries that persist (other
            # programs create and remove their own meanwhile).
            time.sleep(0.5)
            left["shm"] = sorted(set(left["shm"]) & shm_entries())
        return left
