"""Platform-specific pieces of the shared-memory transport, and nothing else.

* Segments are anonymous: ``memfd_create`` on Linux; elsewhere a POSIX
  ``shm_open`` object with a random name and mode 0600 that is unlinked right
  after creation.  Either way a segment is only ever reachable through a file
  descriptor, which travels to the peer process over a Unix socket
  (SCM_RIGHTS) or is inherited at start-up, so nothing is left in /dev/shm
  even when a process is SIGKILLed: the kernel frees the memory when the last
  descriptor and mapping go.
* Wake-ups are a byte written into a non-blocking pipe; sleepers block in
  poll() on the read end.

``SUPPORTED`` is False where these are unavailable (Windows): the process
pool then falls back to the stdlib implementation.
"""
import mmap
import os
import secrets
import socket
import sys

__all__ = ["SUPPORTED", "create_segment", "map_segment", "wake_pipe", "drain",
           "fd_socketpair", "send_fd", "recv_fd"]

SUPPORTED = (sys.platform != "win32" and hasattr(socket, "send_fds")
             and hasattr(socket, "AF_UNIX"))

_HAVE_MEMFD = hasattr(os, "memfd_create")


def _shm_open_anonymous():
    import _posixshmem
    for _ in range(100):
        name = "/ff-" + secrets.token_hex(12)
        try:
            fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        except FileExistsError:
            continue
        _posixshmem.shm_unlink(name)    # from now on reachable only through fd
        return fd
    raise FileExistsError("could not find a free shared-memory name")


def create_segment(size):
    """A new anonymous shared segment of ``size`` bytes: ``(fd, mmap)``."""
    if _HAVE_MEMFD:
        fd = os.memfd_create("fastfutures", os.MFD_CLOEXEC)
    else:
        fd = _shm_open_anonymous()
    try:
        os.ftruncate(fd, size)
        return fd, mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise


def map_segment(fd, size):
    return mmap.mmap(fd, size)


def wake_pipe():
    """``(read_fd, write_fd)``, both non-blocking."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def drain(fd):
    """Empty a wake-up pipe; False when its write end is closed."""
    try:
        while True:
            data = os.read(fd, 4096)
            if not data:
                return False
            if len(data) < 4096:
                return True
    except BlockingIOError:
        return True


def fd_socketpair():
    """Two connected sockets that carry segment descriptors (datagrams keep
    one segment per message)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


def send_fd(sock, header, fd):
    socket.send_fds(sock, [header], [fd])


def recv_fd(sock, maxlen=64):
    """Block for the next ``(header, fd)``."""
    data, fds, _flags, _addr = socket.recv_fds(sock, maxlen, 1)
    if not fds:
        raise EOFError("peer closed the segment socket")
    return data, fds[0]
