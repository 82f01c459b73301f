"""The channel between the parent and one worker process.

A channel is one shared segment holding two rings (``_shm.Ring``): requests
(parent -> worker) and replies (worker -> parent), plus one wake-up pipe per
direction and a Unix socket that carries the descriptors of *buffer
segments*.

Messages are pickled with protocol 5 (multiprocessing's ForkingPickler, so
everything the stdlib pool can send, this can send too).  Small messages go
into the ring as one record.  Large out-of-band buffers (numpy arrays,
bytearrays, memoryviews, and a ``bytes`` that *is* the result) are copied
once into a buffer segment owned by the sender; the record carries only the
segment id and offsets.  The receiver hands the segment back (RELEASE) as
soon as it has copied the data out -- or, for zero-copy results, when the
user drops the last view -- and the owner reuses it, so steady traffic
touches only warm pages.  A segment's descriptor crosses the socket once,
the first time the peer sees it.

Record layout: the message header (ffm_header in _shm_ring.h: kind, flags,
number of buffers, segment id, task id, function length, claim slot), then one BUFFER (offset, length) per out-of-band buffer,
then the payload.  The hot paths that write and read records are compiled
(_process_core.pyx); this module does the rest: segments, control messages
and the pickler.

A call's payload starts with the pickle of the function alone when that
function pickles by reference (a module-level function): those bytes are the
same for every call, so the parent pickles them once and the worker unpickles
them once (each side keeps a small cache).  Other callables are pickled
together with their arguments, as the stdlib does, so that objects shared
between the callable and the arguments stay shared.
"""
import io
import os
import pickle
import struct
import types
from multiprocessing import reduction
from multiprocessing.reduction import ForkingPickler

from . import _shm_platform as platform
from ._shm import RING_HEADER_SIZE, Claims, Ring, SharedView, copy_out

# The message kinds and flags are _shm_ring.h's (the one definition of the
# wire protocol), re-exported here for the Python side.
from ._shm import (CALL, CHUNK, EXCEPTION, EXIT, FORGET, NO_ARGS, NONE_RESULT,  # noqa: E402,F401
                   PAYLOAD_IN_SEGMENT, RAW_RESULT, RELEASE, RESULT, SKIPPED, STAR,
                   WITH_KWARGS, WORKER_EXITING, MESSAGE_HEADER_SIZE, pack_header,
                   unpack_header)

_SEGMENT_ID = struct.Struct("<I")
BUFFER = struct.Struct("<QQ")
SEGMENT_HELLO = struct.Struct("<IQ")

_RELEASE_HEADER = pack_header(RELEASE, 0, 0, 0, 0, 0, 0)

RING_CAPACITY = 1 << 18
CLAIM_SLOTS = 64                    # >= the calls a worker is handed ahead of time
CLAIM_SLOT_SIZE = 16                # ffc_slot in _shm_ring.h
OOB_THRESHOLD = 64 * 1024          # smaller buffers stay in the pickle
SEGMENT_GRANULE = 1 << 20
SEGMENT_CACHE_BYTES = 256 << 20    # free segments kept warm per direction
ALIGN = 64


# -- pickling ---------------------------------------------------------------

def _rebuild_memoryview(buffer, fmt, shape, readonly):
    view = memoryview(buffer)
    if fmt != "B" or len(shape) != 1:
        view = view.cast("B").cast(fmt, shape)
    return view.toreadonly() if readonly else view


def _rebuild_bytearray(buffer):
    # Copying receiver: ``buffer`` is already a private bytearray.
    # Zero-copy receiver: a SharedView, exposed as a memoryview.
    return buffer if type(buffer) is bytearray else memoryview(buffer)


class _Pickler(pickle.Pickler):
    """multiprocessing's ForkingPickler reducers (connections, sockets, ...),
    without its per-instance dispatch-table copy, plus out-of-band large
    bytearrays and (contiguous) memoryviews."""

    dispatch_table = None       # set by _refresh_dispatch_table()

    def reducer_override(self, obj):
        tp = type(obj)
        if tp is bytearray:
            if len(obj) >= OOB_THRESHOLD:
                return _rebuild_bytearray, (pickle.PickleBuffer(obj),)
        elif tp is memoryview and obj.c_contiguous:
            return _rebuild_memoryview, (pickle.PickleBuffer(obj), obj.format,
                                         obj.shape, obj.readonly)
        return NotImplemented


_known_reducers = -1


def _refresh_dispatch_table():
    # ForkingPickler.register() may add reducers at any time; rebuild the
    # shared table when their number changes.
    global _known_reducers
    extra = ForkingPickler._extra_reducers
    if len(extra) != _known_reducers:
        table = ForkingPickler._copyreg_dispatch_table.copy()
        table.update(extra)
        _Pickler.dispatch_table = table
        _known_reducers = len(extra)


class _OutOfBand:
    """The pickler's buffer_callback: keeps large buffers out of band.  A
    separate object, so that the pickler holding it and the ReusablePickler
    holding both form no reference cycle."""

    __slots__ = ("buffers",)

    def __init__(self):
        self.buffers = None

    def __call__(self, pickle_buffer):
        raw = pickle_buffer.raw()
        if raw.nbytes < OOB_THRESHOLD:
            return True         # in band
        if self.buffers is None:
            self.buffers = []
        self.buffers.append(raw)
        return False


class ReusablePickler:
    """A pickler kept for many dumps (building one costs more than a small
    dump).  Not thread-safe: each user takes one from a pool."""

    __slots__ = ("_file", "_pickler", "_out_of_band", "_table")

    def __init__(self):
        if len(ForkingPickler._extra_reducers) != _known_reducers:
            _refresh_dispatch_table()
        self._file = io.BytesIO()
        self._out_of_band = _OutOfBand()
        self._table = _Pickler.dispatch_table
        self._pickler = _Pickler(self._file, 5, buffer_callback=self._out_of_band)

    def dumps(self, obj):
        """``(payload, buffers)`` as dumps(); buffers is None when there are none."""
        file = self._file
        out_of_band = self._out_of_band
        file.seek(0)
        file.truncate()
        self._pickler.clear_memo()
        out_of_band.buffers = None
        try:
            self._pickler.dump(obj)
            return file.getvalue(), out_of_band.buffers
        finally:
            out_of_band.buffers = None
            self._pickler.clear_memo()      # drop references to obj's parts

    def reusable(self):
        # A changed reducer table needs a new pickler; a huge dump leaves a
        # huge buffer behind.
        return (self._table is _Pickler.dispatch_table
                and len(ForkingPickler._extra_reducers) == _known_reducers
                and self._file.tell() <= SEGMENT_GRANULE)


def function_pickle(fn):
    """The pickle of ``fn`` when it pickles by reference (a module-level
    function, not a closure or a bound method), else None."""
    tp = type(fn)
    if tp is types.FunctionType:
        pass
    elif tp is types.BuiltinFunctionType:
        if not isinstance(getattr(fn, "__self__", None), (types.ModuleType, type(None))):
            return None     # a bound builtin method carries its object
    else:
        return None
    if len(ForkingPickler._extra_reducers) != _known_reducers:
        _refresh_dispatch_table()
    if tp in _Pickler.dispatch_table:
        return None
    try:
        return pickle.dumps(fn, 5)
    except Exception:
        return None     # pickled with the arguments, where the error is reported




# -- descriptors that travel to a spawned worker ----------------------------

class InheritedFd:
    """A file descriptor handed to a worker: inherited as-is by a forked
    worker, duplicated into a spawned or forkserver one."""

    def __init__(self, fd):
        self.fd = fd

    def __reduce__(self):
        return _rebuild_fd, (reduction.DupFd(self.fd),)


def _rebuild_fd(dup):
    return InheritedFd(dup.detach())


class WorkerSpec:
    """Everything a worker needs to open its end of a channel."""

    def __init__(self, ring_fd, ring_size, capacity, wake_read_fd, peer_wake_fd, fd_socket):
        self.ring_fd = InheritedFd(ring_fd)
        self.ring_size = ring_size
        self.capacity = capacity
        self.wake_read_fd = InheritedFd(wake_read_fd)
        self.peer_wake_fd = InheritedFd(peer_wake_fd)
        self.fd_socket = fd_socket


# -- segments ---------------------------------------------------------------

class _Segment:
    __slots__ = ("id", "size", "map")

    def __init__(self, seg_id, size, mapping):
        self.id = seg_id
        self.size = size
        self.map = mapping


def _close_map(mapping):
    try:
        mapping.close()
    except BufferError:
        pass        # a zero-copy view still uses it: unmapped when that goes


class _OwnSegments:
    """Buffer segments this process writes and lends to the peer."""

    def __init__(self, sock):
        self._sock = sock
        self._all = {}
        self._free = []
        self._free_bytes = 0
        self._next_id = 1

    def acquire(self, size):
        best = None
        for seg in self._free:
            if seg.size >= size and (best is None or seg.size < best.size):
                best = seg
        if best is not None and best.size <= 2 * size + SEGMENT_GRANULE:
            self._free.remove(best)
            self._free_bytes -= best.size
            return best
        size = -(-size // SEGMENT_GRANULE) * SEGMENT_GRANULE
        fd, mapping = platform.create_segment(size)
        try:
            seg = _Segment(self._next_id, size, mapping)
            platform.send_fd(self._sock, SEGMENT_HELLO.pack(seg.id, size), fd)
        except BaseException:
            mapping.close()
            raise
        finally:
            os.close(fd)
        self._next_id += 1
        self._all[seg.id] = seg
        return seg

    def give_back(self, seg):
        """A segment we acquired but did not send after all."""
        self._free.append(seg)
        self._free_bytes += seg.size

    def release(self, seg_ids):
        """The peer is done with these; returns ids to FORGET (cache trimmed)."""
        forget = []
        for seg_id in seg_ids:
            seg = self._all.get(seg_id)
            if seg is None:
                continue
            if self._free_bytes + seg.size > SEGMENT_CACHE_BYTES:
                del self._all[seg_id]
                _close_map(seg.map)
                forget.append(seg_id)
            else:
                self._free.append(seg)
                self._free_bytes += seg.size
        return forget

    def close(self):
        for seg in self._all.values():
            _close_map(seg.map)
        self._all.clear()
        self._free.clear()


class _PeerSegments:
    """Buffer segments the peer lent us, mapped on first sight."""

    def __init__(self, sock):
        self._sock = sock
        self._maps = {}

    def get(self, seg_id):
        mapping = self._maps.get(seg_id)
        while mapping is None:
            hello, fd = platform.recv_fd(self._sock)
            try:
                got_id, size = SEGMENT_HELLO.unpack(hello)
                self._maps[got_id] = platform.map_segment(fd, size)
            finally:
                os.close(fd)
            mapping = self._maps.get(seg_id)
        return mapping

    def forget(self, seg_ids):
        for seg_id in seg_ids:
            mapping = self._maps.pop(seg_id, None)
            if mapping is not None:
                _close_map(mapping)

    def close(self):
        for mapping in self._maps.values():
            _close_map(mapping)
        self._maps.clear()


class _Lease:
    """Returns a peer segment when the last zero-copy view of it is gone."""
    __slots__ = ("_endpoint", "_seg_id")

    def __init__(self, endpoint, seg_id):
        self._endpoint = endpoint
        self._seg_id = seg_id

    def __del__(self):
        # May run in any thread (whoever drops the last view).
        self._endpoint.release_now(self._seg_id)


# -- an endpoint ------------------------------------------------------------

class Endpoint:
    """One process's end of a channel: an outbox ring, an inbox ring, the
    wake-up pipe it sleeps on, and its segments.  Not thread-safe: the
    owner serialises sends (the parent holds its pool lock)."""

    def __init__(self, segment, out_offset, in_offset, claims_offset, capacity,
                 wake_read_fd, peer_wake_fd, fd_socket):
        self.segment = segment
        self.outbox = Ring(segment, out_offset, capacity, peer_wake_fd)
        self.inbox = Ring(segment, in_offset, capacity, peer_wake_fd)
        self.claims = Claims(segment, claims_offset, CLAIM_SLOTS)
        self.wake_read_fd = wake_read_fd
        self.peer_wake_fd = peer_wake_fd
        self.fd_socket = fd_socket
        self.own_segments = _OwnSegments(fd_socket)
        self.peer_segments = _PeerSegments(fd_socket)
        self.pending_releases = []      # peer segment ids to hand back

    # sending

    def send(self, kind, task_id, payload, buffers=(), flags=0, fn_len=0, slot=0):
        """Write one message; False (nothing sent) when the outbox is full."""
        if buffers or not self.outbox.fits(len(payload)):
            return self._send_with_segment(kind, task_id, payload, buffers or (), flags,
                                           fn_len, slot)
        return self.outbox.write(pack_header(kind, flags, 0, 0, task_id, fn_len, slot), payload)

    def _send_with_segment(self, kind, task_id, payload, buffers, flags, fn_len, slot):
        parts = list(buffers)
        if not self.outbox.fits(BUFFER.size * len(parts) + len(payload)):
            parts.append(memoryview(payload))
            payload = b""
            flags |= PAYLOAD_IN_SEGMENT
        offsets = []
        total = 0
        for part in parts:
            offsets.append(total)
            total += -(-part.nbytes // ALIGN) * ALIGN
        seg = self.own_segments.acquire(total)
        with memoryview(seg.map) as dest:
            for part, offset in zip(parts, offsets):
                dest[offset:offset + part.nbytes] = part
        header = [pack_header(kind, flags, len(parts), seg.id, task_id, fn_len, slot)]
        header.extend(BUFFER.pack(offset, part.nbytes)
                      for part, offset in zip(parts, offsets))
        if not self.outbox.write(b"".join(header), payload):
            self.own_segments.give_back(seg)
            return False
        return True

    def flush_releases(self):
        """Hand back peer segments we are done with.  False if the outbox is full."""
        if not self.pending_releases:
            return True
        # Swap, not copy-and-clear: a lease released (by the GC) while the
        # new list is allocated appends to the old one, which we send.
        ids = self.pending_releases
        self.pending_releases = []
        if self.send(RELEASE, 0, struct.pack(f"<{len(ids)}I", *ids)):
            return True
        self.pending_releases.extend(ids)
        return False

    def release_now(self, seg_id):
        """Hand back a peer segment at once, from any thread (a zero-copy
        view dropped): the RELEASE then reaches the peer before any call
        submitted afterwards, so a caller that drops its results and asks
        for more gets the same, warm, segments again.  A ring write is one
        compiled call under the GIL, so it cannot interleave with another
        sender's; when it cannot be written now, the owner sends it later."""
        if not self.pending_releases:
            try:
                if self.outbox.write(_RELEASE_HEADER, _SEGMENT_ID.pack(seg_id)):
                    return
            except ValueError:
                pass        # the channel is closed
        self.pending_releases.append(seg_id)

    def handle_control(self, kind, payload):
        """RELEASE / FORGET from the peer."""
        ids = struct.unpack(f"<{len(payload) // 4}I", payload)
        if kind == RELEASE:
            forget = self.own_segments.release(ids)
            if forget:
                self.send(FORGET, 0, struct.pack(f"<{len(forget)}I", *forget))
        else:
            self.peer_segments.forget(ids)

    # receiving

    def decode(self, record, zero_copy=False):
        """``(kind, flags, task_id, fn_len, payload, buffers)`` of one record
        that carries out-of-band buffers (the compiled reader handles the
        others itself).  For RAW_RESULT ``payload`` is the result (bytes, or
        a memoryview of the segment when ``zero_copy``) and buffers is None.
        """
        kind, flags, nbuf, seg_id, task_id, fn_len, _slot = unpack_header(record)
        start = MESSAGE_HEADER_SIZE + BUFFER.size * nbuf
        mapping = self.peer_segments.get(seg_id)
        spans = [BUFFER.unpack_from(record, MESSAGE_HEADER_SIZE + BUFFER.size * i)
                 for i in range(nbuf)]
        if flags & PAYLOAD_IN_SEGMENT:
            offset, length = spans.pop()
            payload = copy_out(mapping, offset, length)
        else:
            payload = memoryview(record)[start:]
        lease = None
        try:
            if zero_copy:
                lease = _Lease(self, seg_id)
                buffers = [SharedView(mapping, offset, length, lease, kind == RAW_RESULT)
                           for offset, length in spans]
            elif kind == RAW_RESULT:
                offset, length = spans[0]
                return kind, flags, task_id, fn_len, copy_out(mapping, offset, length), None
            else:
                buffers = [copy_out(mapping, offset, length, True) for offset, length in spans]
            if kind == RAW_RESULT:
                return kind, flags, task_id, fn_len, memoryview(buffers[0]), None
            return kind, flags, task_id, fn_len, payload, buffers
        finally:
            if lease is None:
                self.pending_releases.append(seg_id)

    def close(self):
        self.outbox.close()
        self.inbox.close()
        self.own_segments.close()
        self.peer_segments.close()
        _close_map(self.segment)


# -- opening both ends -------------------------------------------------------

def _layout(capacity):
    """Offsets of the request ring, the reply ring, the claim slots, and the
    segment's size."""
    ring_bytes = RING_HEADER_SIZE + capacity
    ring_bytes = -(-ring_bytes // 4096) * 4096
    return 0, ring_bytes, 2 * ring_bytes, 2 * ring_bytes + 4096


# The wake-up pipe ends of every open ParentChannel in this process: plain
# descriptors, which a forked copy of a channel never closes (its socket and
# mappings go with the objects); see close_inherited_pipes().
_parent_pipe_fds = set()


def close_inherited_pipes():
    """In a process forked from a pool's owner that will never use the
    owner's channels (the zygote, _zygote.py): close their pipe ends, so
    that what it forks does not hold them either."""
    for fd in list(_parent_pipe_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _parent_pipe_fds.clear()


class ParentChannel:
    """The parent's end of a new channel plus the spec for its worker."""

    def __init__(self, capacity=RING_CAPACITY):
        req_off, rep_off, claims_off, size = _layout(capacity)
        self._fds = []
        ring_fd, segment = platform.create_segment(size)
        parent_wake_r, parent_wake_w = platform.wake_pipe()
        worker_wake_r, worker_wake_w = platform.wake_pipe()
        parent_sock, worker_sock = platform.fd_socketpair()
        self.endpoint = Endpoint(segment, req_off, rep_off, claims_off, capacity,
                                 parent_wake_r, worker_wake_w, parent_sock)
        self.spec = WorkerSpec(ring_fd, size, capacity, worker_wake_r, parent_wake_w, worker_sock)
        self.capacity = capacity
        # Worker-side descriptors: closed here once the worker has them.
        self._worker_side = [ring_fd, worker_wake_r, parent_wake_w]
        self._worker_sock = worker_sock
        self._parent_fds = [parent_wake_r, worker_wake_w]
        _parent_pipe_fds.update(self._parent_fds)
        self._parent_sock = parent_sock

    def worker_started(self):
        """The worker holds its descriptors now (inherited or duplicated)."""
        for fd in self._worker_side:
            os.close(fd)
        self._worker_side = []
        self._worker_sock.close()
        self.spec = None

    def close(self):
        self.endpoint.close()
        _parent_pipe_fds.difference_update(self._parent_fds)
        for fd in self._worker_side + self._parent_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._worker_side = self._parent_fds = []
        self._worker_sock.close()
        self._parent_sock.close()


def open_worker_endpoint(spec):
    """The worker's end of the channel described by ``spec``."""
    segment = platform.map_segment(spec.ring_fd.fd, spec.ring_size)
    os.close(spec.ring_fd.fd)
    req_off, rep_off, claims_off, _ = _layout(spec.capacity)
    return Endpoint(segment, rep_off, req_off, claims_off, spec.capacity,
                    spec.wake_read_fd.fd, spec.peer_wake_fd.fd, spec.fd_socket)
