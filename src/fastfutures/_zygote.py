"""Replacement workers for 'fork' pools, forked by a single-threaded zygote.

A pool that replaces workers (``task_timeout``, ``with_options(timeout=)``,
``cancel_running``, ``on_worker_death="replace"``) starts replacements from
its result thread.  Forking the parent there would copy it at whatever
moment its other threads are in: the child inherits every descriptor open
at that instant -- the pipe a concurrent ``subprocess.run()`` is reading, a
socket the main thread is about to close -- and keeps it open for its whole
life (``Popen`` then waits forever for an EOF), and it copies locks other
threads hold.  So a 'fork' pool never forks its parent from that thread.

Instead, when such a pool starts (its first ``submit()``/``map()``, in the
caller's thread, before the first worker's channel exists and before the
result thread starts), it forks one more process: the *zygote*.  It is
single-threaded, holds what the parent had open when the pool started and
nothing the pool opened since, and forks every replacement on request:

* fork semantics are kept: the replacement is a fork of the parent as it
  was at the pool's start (the initializer, its arguments and ``__main__``
  functions are never pickled, as for the first workers);
* nothing the parent opened later reaches a replacement: the new worker's
  channel (its ring segment, wake-up pipes, descriptor socket) travels to
  the zygote by SCM_RIGHTS over a Unix socket, as a forkserver's would;
* a replacement needs no ``submit()``: the result thread asks, the zygote
  forks (with ``multiprocessing``'s own 'fork' launcher, so the child runs
  the usual bootstrap: ``current_process()``, finalizers, ``atexit``) and
  answers with the pid.

Why not the alternatives: replacing through multiprocessing's forkserver
would pickle the initializer and its arguments (which fork pools exist to
avoid) and start from a fresh interpreter; starting replacements from the
next ``submit()`` would leave a pool without workers until the caller
submits again (a call queued behind a killed one would wait for nobody).

The parent sees a replacement through ``ReplacementProcess``, which offers
what the pool uses of ``multiprocessing.Process`` (pid, sentinel, exitcode,
join(timeout), is_alive(), terminate(), kill(), close()).  As with
multiprocessing.forkserver, a per-child pipe carries the pid, then the exit
code once the zygote has reaped the child; its read end is the sentinel,
readable once the child is gone.  Signals go to the pid directly.

Lifetime.  The zygote exits when the parent's end of its socket closes: the
pool's result thread closes it once every worker is gone (shutdown, a
broken pool, the executor collected), and the kernel does when the parent
dies (SIGKILL included).  The parent's end is never inherited for good: a
process forked from the parent (its other workers, a user's ``os.fork()``)
closes its copy at once (process.py's at-fork hook).  The zygote kills
nothing: a replacement whose zygote is gone sees its parent sentinel close
and leaves once idle, as a first worker does when the pool's process dies.
It ignores SIGINT (a terminal's Ctrl-C reaches the whole process group; the
pool, not the zygote, decides when it ends); its children get the handler
back.  It is no worker: it is not in ``executor._processes``.

What the zygote inherits: what the parent had open at the pool's start (as
every first worker does).  Its own pool's descriptors and other pools' are
dropped (their channels' pipes, see ``_transport.close_inherited_pipes()``;
a started pool's copy breaks and lets go of its workers, process.py).  A
pool that gets its first time limit from ``with_options()`` after it has
started forks its zygote then, from that caller's thread (never from the
result thread): that zygote holds what the parent has open at that moment,
the parent has other threads then (Python 3.12+ warns about such a fork),
and replacements inherit what it holds.  Pass ``task_timeout=`` (or
``cancel_running``/``on_worker_death="replace"``) to the constructor to have
the zygote forked at the pool's start.

'spawn' and 'forkserver' pools need none of this: a spawned replacement is
started by ``_posixsubprocess.fork_exec`` (fork or vfork, then exec at once,
``close_fds=True``: the new interpreter holds only the descriptors passed to
it), and a forkserver one is forked by multiprocessing's forkserver process;
neither forks the parent from the result thread into a running child.
"""
import multiprocessing
import os
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
from multiprocessing import connection

from . import _transport as transport
from ._process_worker import worker_main

# A request: the channel's ring size and capacity; its descriptors (ring
# segment, the worker's wake-up read end, the parent's wake-up write end,
# the worker's descriptor socket) and the write end of the child's status
# pipe travel with it.
_REQUEST = struct.Struct("<QQ")
_REQUEST_FDS = 5
# On the status pipe: the pid (> 0), or -errno when the fork failed; then,
# once the child is reaped, its exit code as multiprocessing gives it.
_STATUS = struct.Struct("<q")
# The first messages: from the zygote its pid; to it, the inode of the pipe
# whose write end it holds for as long as it lives (multiprocessing's
# sentinel of it).
_PID = struct.Struct("<q")
_INODE = struct.Struct("<Q")
# The exit code reported when the zygote vanished before reporting one (the
# value multiprocessing's forkserver uses when it loses track of a child).
LOST_EXIT_CODE = 255
# How long the parent waits for the zygote to answer a request.
ANSWER_SECONDS = 60.0
# How long close() waits for the zygote to exit before killing it.
EXIT_SECONDS = 5.0


class ZygoteGone(OSError):
    """The zygote is no longer there to fork replacements."""


# -- the parent's side ---------------------------------------------------------

class Zygote:
    """The parent's handle on a zygote: start() it, fork() workers, close()."""

    def __init__(self, mp_context, worker_args):
        parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = mp_context.Process(
                target=_zygote_main, name="fastfutures-zygote",
                args=(zygote_end, parent_end, mp_context, worker_args))
            try:
                self.process.start()
            except Warning:
                # os.fork() warns after the child exists (Python 3.12+, a
                # multi-threaded process), and the warning may be an error.
                _reap_lost_zygote(parent_end)
                raise
            # Which pipe tells us that the zygote ended: it closes its end in
            # what it forks (a worker holding it would keep join() waiting).
            parent_end.sendall(_INODE.pack(os.fstat(self.process.sentinel).st_ino))
            if _recv_exactly(parent_end, _PID.size) is None:
                raise ZygoteGone("the pool's zygote ended as it started")
        except BaseException:
            parent_end.close()
            raise
        finally:
            zygote_end.close()
        self.socket = parent_end

    @property
    def pid(self):
        return self.process.pid

    def fork_worker(self, spec):
        """A ReplacementProcess running ``worker_main(spec, ...)`` (the worker
        arguments are the zygote's: those of the pool's start).  The caller
        closes its copies of the spec's descriptors afterwards."""
        if self.socket is None:
            raise ZygoteGone("the pool's zygote is closed")
        status_r, status_w = os.pipe()
        try:
            try:
                socket.send_fds(self.socket, [_REQUEST.pack(spec.ring_size, spec.capacity)],
                                [spec.ring_fd.fd, spec.wake_read_fd.fd, spec.peer_wake_fd.fd,
                                 spec.fd_socket.fileno(), status_w])
            except OSError as exc:
                raise ZygoteGone(f"the pool's zygote is gone ({exc})") from None
            finally:
                os.close(status_w)
            if not connection.wait([status_r], ANSWER_SECONDS):
                raise ZygoteGone("the pool's zygote did not answer")
            answer = os.read(status_r, _STATUS.size)
            if len(answer) != _STATUS.size:
                raise ZygoteGone("the pool's zygote is gone")
            pid, = _STATUS.unpack(answer)
            if pid <= 0:
                errno = -pid
                raise OSError(errno, os.strerror(errno) if errno else "the zygote could not fork")
        except BaseException:
            os.close(status_r)
            raise
        return ReplacementProcess(pid, status_r)

    def close(self, timeout=EXIT_SECONDS):
        """Let the zygote go (it exits on EOF) and reap it; kill it if it is
        still there after ``timeout`` seconds (a child it waits for hangs)."""
        if self.socket is None:
            return
        self.socket.close()
        self.socket = None
        process = self.process
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
        process.close()

    def forget(self):
        """In a process forked from the parent: drop this copy of the
        parent's end (the zygote belongs to the parent) without a word."""
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        # The parent joins and closes the zygote; this copy must not.
        self.process = None


def _reap_lost_zygote(parent_end):
    """A zygote whose start raised in the parent: it exits when ``parent_end``
    closes; wait for that (its pid is its first message)."""
    pid = None
    if connection.wait([parent_end], EXIT_SECONDS):
        data = _recv_exactly(parent_end, _PID.size)
        pid = _PID.unpack(data)[0] if data else None
    parent_end.close()
    if pid is None:
        return
    deadline = time.monotonic() + EXIT_SECONDS
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.005)


class ReplacementProcess:
    """A worker the zygote forked, with what the pool uses of
    multiprocessing.Process.  ``sentinel`` is readable once it has ended."""

    def __init__(self, pid, status_fd):
        self.pid = pid
        self.sentinel = status_fd
        self._exitcode = None
        self._reading = threading.Lock()   # the result thread and a user's may both look
        self.name = f"fastfutures-worker-{pid}"

    @property
    def ident(self):
        return self.pid

    def __repr__(self):
        code = self.exitcode if self.sentinel is not None else self._exitcode
        state = "started" if code is None else f"stopped exitcode={code}"
        return f"<{type(self).__name__} pid={self.pid} {state}>"

    def _wait(self, timeout):
        if self._exitcode is None:
            if self.sentinel is None:
                raise ValueError("process object is closed")
            if not connection.wait([self.sentinel], timeout):
                return None
            with self._reading:
                if self._exitcode is None:
                    answer = os.read(self.sentinel, _STATUS.size)
                    # Nothing read: the zygote vanished without reaping it.
                    self._exitcode = (_STATUS.unpack(answer)[0]
                                      if len(answer) == _STATUS.size else LOST_EXIT_CODE)
        return self._exitcode

    @property
    def exitcode(self):
        return self._wait(0)

    def join(self, timeout=None):
        self._wait(timeout)

    def is_alive(self):
        return self._wait(0) is None

    def _send_signal(self, sig):
        if self._wait(0) is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass        # ended; its status is on the way

    def terminate(self):
        self._send_signal(signal.SIGTERM)

    def kill(self):
        self._send_signal(signal.SIGKILL)

    def close(self):
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass


# -- the zygote ----------------------------------------------------------------

class _Child:
    """A worker forked here: its Process, the write end of its status pipe,
    and the descriptors the launcher keeps for it (its sentinel, the pipe
    whose closing tells it that its parent is gone)."""

    __slots__ = ("process", "status_w", "kept")

    def __init__(self, process, status_w, kept):
        self.process = process
        self.status_w = status_w
        self.kept = kept


class _Zygote:
    """The zygote's loop: fork a worker per request, report its pid and,
    once reaped, its exit code; return when the parent's end closes."""

    def __init__(self, sock, mp_context, worker_args):
        self.sock = sock
        self.mp_context = mp_context
        self.worker_args = worker_args
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        self.children = {}          # sentinel -> _Child, running
        self.exiting = {}           # sentinel -> _Child, sentinel closed, not reaped yet
        self.fds = {sock.fileno()}  # held here only: every child closes them

    def serve(self):
        while True:
            # A sentinel closes as its child exits, a moment before the child
            # can be reaped: look again soon.
            for fd, _events in self.poller.poll(1 if self.exiting else None):
                if fd == self.sock.fileno():
                    if not self.serve_request():
                        return
                else:
                    self.poller.unregister(fd)
                    self.exiting[fd] = self.children.pop(fd)
            for fd, child in list(self.exiting.items()):
                if child.process.exitcode is not None:
                    del self.exiting[fd]
                    self.report_exit(child)

    def serve_request(self):
        """Fork the worker of one request.  False at EOF (the parent is gone)."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, _REQUEST.size, _REQUEST_FDS)
            if data and len(data) < _REQUEST.size:      # a stream: the rest may come apart
                data += _recv_exactly(self.sock, _REQUEST.size - len(data)) or b""
        except ConnectionResetError:
            return False
        if len(data) != _REQUEST.size or len(fds) != _REQUEST_FDS:
            for fd in fds:
                os.close(fd)
            return False
        ring_size, capacity = _REQUEST.unpack(data)
        ring_fd, wake_r, peer_wake_w, sock_fd, status_w = fds
        for fd in fds:
            os.set_inheritable(fd, False)   # as the parent made them: not across exec
        self.fds.add(status_w)
        spec = transport.WorkerSpec(ring_fd, ring_size, capacity, wake_r, peer_wake_w,
                                    socket.socket(fileno=sock_fd))
        try:
            process = self.mp_context.Process(target=worker_main,
                                              args=(spec, *self.worker_args))
            opened = _open_fds()
            process.start()
            kept = _open_fds() - opened
        except Exception as exc:
            traceback.print_exc()
            _answer(status_w, -(exc.errno or 0) if isinstance(exc, OSError) else 0)
            self.fds.discard(status_w)
            os.close(status_w)
            return True
        finally:
            spec.fd_socket.close()
            for fd in (ring_fd, wake_r, peer_wake_w):
                os.close(fd)
        self.fds |= kept
        self.children[process.sentinel] = _Child(process, status_w, kept)
        self.poller.register(process.sentinel, select.POLLIN)
        _answer(status_w, process.pid)
        return True

    def report_exit(self, child):
        _answer(child.status_w, child.process.exitcode)
        child.process.close()
        os.close(child.status_w)
        self.fds -= child.kept
        self.fds.discard(child.status_w)

    def in_child(self):
        """In a worker just forked from here: close what the zygote holds."""
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = set()


def _answer(status_w, value):
    try:
        os.write(status_w, _STATUS.pack(value))
    except BrokenPipeError:
        pass        # the parent is gone; so will this zygote be


def _open_fds():
    """This process's descriptors (the zygote is single-threaded: nothing
    opens or closes one while this looks)."""
    for where in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        fds = set()
        for name in names:
            fd = int(name)
            try:
                os.fstat(fd)
            except OSError:
                continue        # the directory listdir read
            fds.add(fd)
        return fds
    raise OSError("cannot list this process's file descriptors")


_serving = None     # the zygote, in the zygote process; None in what it forks


def _after_fork_in_child(sigint_handler):
    global _serving
    zygote = _serving
    if zygote is None:
        return
    _serving = None         # this child's own forks have nothing to close
    zygote.in_child()
    if sigint_handler is not None:
        try:
            signal.signal(signal.SIGINT, sigint_handler)
        except (ValueError, OSError):
            pass


def _recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            return None
        data += more
    return data


def _launcher_fds(sock):
    """The descriptors multiprocessing's launcher gave this zygote: the write
    end of the pipe the parent watches (its inode comes first on ``sock``)
    and the read end of the one that closes when the parent goes."""
    data = _recv_exactly(sock, _INODE.size)
    if data is None:
        return None
    inode, = _INODE.unpack(data)
    fds = set()
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        fds.add(parent.sentinel)
    for fd in _open_fds():
        st = os.fstat(fd)
        if stat.S_ISFIFO(st.st_mode) and st.st_ino == inode:
            fds.add(fd)
    return fds


def _zygote_main(sock, parent_end, mp_context, worker_args):
    global _serving
    parent_end.close()
    try:
        sock.sendall(_PID.pack(os.getpid()))
    except OSError:
        return          # the parent is gone already
    transport.close_inherited_pipes()
    launcher_fds = _launcher_fds(sock)
    if launcher_fds is None:
        return          # the parent is gone already
    try:
        sigint_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):
        sigint_handler = None
    zygote = _Zygote(sock, mp_context, worker_args)
    zygote.fds |= launcher_fds
    _serving = zygote
    os.register_at_fork(after_in_child=lambda: _after_fork_in_child(sigint_handler))
    zygote.serve()
    if zygote.children or zygote.exiting:
        # The parent died with workers from here still running: leave at
        # once, without waiting for them (multiprocessing's exit would join
        # them while this process keeps them from seeing their parent go).
        # They see it now and leave once idle.
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        os._exit(0)
    sock.close()
