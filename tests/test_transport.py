"""fastfutures internals (no stdlib twin): the channel between the parent and a
worker (fastfutures._transport): messages in one record or with a buffer
segment, encode/decode round trips, segments given back and reused, and
their lifetime (no descriptor, mapping or /dev/shm entry left behind).

Both ends of a channel live in this process: the parent's endpoint and the
worker's, opened from the spec a worker would get.
"""
import gc
import os
import sys

import pytest
from hypothesis import given, settings, strategies as st

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shared memory")

transport = pytest.importorskip("fastfutures._transport")
from fastfutures import _shm_platform as platform  # noqa: E402


def _open_fds():
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


class Channel:
    """Both ends of a new channel, closed on exit."""

    def __init__(self):
        self.parent_channel = transport.ParentChannel()
        self.parent = self.parent_channel.endpoint
        spec = self.parent_channel.spec
        # The worker's end closes the segment's descriptor once mapped; the
        # parent's close() closes its own (and the worker-side pipe ends and
        # socket, which both ends share here).
        spec.ring_fd = transport.InheritedFd(os.dup(spec.ring_fd.fd))
        self.worker = transport.open_worker_endpoint(spec)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.worker.close()
        self.parent_channel.close()


@pytest.fixture
def channel():
    with Channel() as channel:
        yield channel


def one_record_limit(endpoint):
    """The largest payload that travels in the ring itself."""
    return endpoint.outbox.max_record - transport.RECORD_SLACK - transport.MESSAGE_HEADER_SIZE - 1


def receive(endpoint, zero_copy=False):
    """``(kind, flags, task_id, fn_len, payload, buffers)`` of the next
    record in ``endpoint``'s inbox, as the compiled readers see it."""
    record = endpoint.inbox.read()
    assert record is not None, "nothing was sent"
    kind, flags, nbuf, _seg_id, task_id, fn_len, _slot = transport.unpack_header(record)
    if nbuf == 0:
        return kind, flags, task_id, fn_len, record[transport.MESSAGE_HEADER_SIZE:], None
    return endpoint.decode(record, zero_copy)


# -- one record or a segment --------------------------------------------------------

def test_small_message_round_trip(channel):
    assert channel.parent.send(transport.CALL, 7, b"payload", fn_len=3, slot=5)
    record = channel.worker.inbox.read()
    assert transport.unpack_header(record) == (transport.CALL, 0, 0, 0, 7, 3, 5)
    assert record[transport.MESSAGE_HEADER_SIZE:] == b"payload"


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_payload_at_the_one_record_boundary(channel, extra):
    """The largest payload that fits stays in the ring; one byte more goes
    to a buffer segment, and arrives the same."""
    size = one_record_limit(channel.parent) + 1 + extra
    payload = bytes(i & 0xFF for i in range(size))
    assert channel.parent.send(transport.RESULT, 1, payload)
    record = channel.worker.inbox.read()
    _kind, flags, nbuf, _seg, _task, _fn, _slot = transport.unpack_header(record)
    in_segment = extra >= 0
    assert bool(flags & transport.PAYLOAD_IN_SEGMENT) == in_segment
    assert nbuf == (1 if in_segment else 0)
    if in_segment:
        kind, _flags, task_id, _fn_len, got, buffers = channel.worker.decode(record)
        assert (kind, task_id, buffers) == (transport.RESULT, 1, [])
        assert got == payload
    else:
        assert record[transport.MESSAGE_HEADER_SIZE:] == payload


sizes = st.integers(0, 3 * transport.OOB_THRESHOLD)


@settings(max_examples=25, deadline=None)
@given(payload=st.binary(max_size=2048), buffer_sizes=st.lists(sizes, min_size=1, max_size=4),
       zero_copy=st.booleans())
def test_buffers_round_trip(payload, buffer_sizes, zero_copy):
    """Out-of-band buffers travel in a segment, at aligned offsets, and
    decode to the same bytes (copies, or views of the segment)."""
    buffers = [bytes((i * 7 + k) & 0xFF for k in range(n)) for i, n in enumerate(buffer_sizes)]
    with Channel() as channel:
        assert channel.worker.send(transport.RESULT, 3, payload,
                                   [memoryview(b) for b in buffers], fn_len=0, slot=2)
        kind, _flags, task_id, _fn, got_payload, got_buffers = receive(channel.parent, zero_copy)
        assert (kind, task_id) == (transport.RESULT, 3)
        assert bytes(got_payload) == payload
        assert [bytes(b) for b in got_buffers] == buffers
        if zero_copy:
            assert all(isinstance(b, transport.SharedView) for b in got_buffers)
        else:
            assert all(type(b) is bytearray for b in got_buffers)
        del got_buffers, got_payload
        gc.collect()


def test_raw_result_round_trip(channel):
    data = os.urandom(transport.OOB_THRESHOLD * 2)
    assert channel.worker.send(transport.RAW_RESULT, 9, b"", [memoryview(data)])
    kind, _flags, task_id, _fn, value, buffers = receive(channel.parent)
    assert (kind, task_id, buffers) == (transport.RAW_RESULT, 9, None)
    assert type(value) is bytes and value == data


# -- segments given back and reused ------------------------------------------------------

@pytest.fixture
def created(monkeypatch):
    """The sizes of the segments created from now on."""
    sizes = []
    create = platform.create_segment

    def counting(size):
        sizes.append(size)
        return create(size)

    monkeypatch.setattr(platform, "create_segment", counting)
    return sizes


def test_a_copied_segment_is_reused_while_calls_wait_in_the_inbox(channel, created):
    """A result copied out gives its segment back through the return ring:
    the worker's next result reuses it although the worker never read its
    inbox (in a pool, calls queued ahead of a RELEASE message)."""
    data = memoryview(b"r" * (2 << 20))
    for task_id in range(5):
        assert channel.parent.send(transport.CALL, task_id, b"queued call")
        assert channel.worker.send(transport.RAW_RESULT, task_id, b"", [data])
        _kind, _flags, got_id, _fn, value, _ = receive(channel.parent)
        assert got_id == task_id and value == data
    assert len(created) == 1
    assert channel.parent.pending_releases == []


def test_a_zero_copy_segment_is_reused_once_its_views_are_gone(channel, created):
    data = memoryview(b"z" * (2 << 20))
    assert channel.worker.send(transport.RAW_RESULT, 1, b"", [data])
    value = receive(channel.parent, zero_copy=True)[4]
    assert channel.worker.send(transport.RAW_RESULT, 2, b"", [data])   # held: a new one
    assert len(created) == 2
    assert value == data
    second = receive(channel.parent, zero_copy=True)[4]
    del value, second
    gc.collect()
    for task_id in (3, 4):
        assert channel.worker.send(transport.RAW_RESULT, task_id, b"", [data])
        assert receive(channel.parent)[4] == data
    assert len(created) == 2


def test_releases_travel_as_messages_when_the_return_ring_is_full(channel, created):
    data = memoryview(b"f" * transport.OOB_THRESHOLD)
    assert channel.worker.send(transport.RAW_RESULT, 1, b"", [data])
    while channel.parent.returns_out.write(transport.pack_ids([12345]), b""):
        pass        # ids the owner does not know: ignored
    assert receive(channel.parent)[4] == data
    assert channel.parent.pending_releases       # the ring was full
    assert channel.parent.flush_releases()
    record = channel.worker.inbox.read()
    kind = transport.unpack_header(record)[0]
    assert kind == transport.RELEASE
    channel.worker.handle_control(kind, record[transport.MESSAGE_HEADER_SIZE:])
    assert channel.worker.send(transport.RAW_RESULT, 2, b"", [data])
    assert len(created) == 1                     # given back all the same


# -- lifetime -------------------------------------------------------------------------------

def _dev_shm():
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "shm_open"])
def test_channels_and_segments_leave_nothing_behind(monkeypatch, memfd):
    """Segments are anonymous (memfd, or shm_open unlinked at once): once
    both ends close, no descriptor and no /dev/shm entry is left."""
    if memfd and not platform._HAVE_MEMFD:
        pytest.skip("no memfd_create here")
    monkeypatch.setattr(platform, "_HAVE_MEMFD", memfd)
    gc.collect()
    fds, shm = _open_fds(), _dev_shm()
    with Channel() as channel:
        assert _dev_shm() == shm
        for task_id in range(3):
            data = memoryview(bytes(transport.OOB_THRESHOLD * (task_id + 1)))
            assert channel.worker.send(transport.RAW_RESULT, task_id, b"", [data])
            assert channel.parent.send(transport.CALL, task_id, b"", [data])
        assert receive(channel.parent, zero_copy=True)[4] == data[:transport.OOB_THRESHOLD]
        receive(channel.parent)
        receive(channel.worker)
        assert _dev_shm() == shm
    # The claim slots keep the channel's segment mapped until collected.
    del channel
    gc.collect()
    assert _dev_shm() == shm
    assert _open_fds() == fds
