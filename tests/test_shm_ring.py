"""fastfutures internals (no stdlib twin): the shared-memory ring, the claim
slots and the wire format's encoders (fastfutures._shm over _shm_ring.h).

Two ``Ring`` objects over one mapping play the writer and the reader, as the
parent and a worker do over a channel's segment; the claim races run in two
threads and in two processes.
"""
import mmap
import multiprocessing
import os
import sys
import threading
from collections import deque

import pytest
from hypothesis import given, settings, strategies as st

from conftest import TIMEOUT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shared memory")

_shm = pytest.importorskip("fastfutures._shm")

CAPACITY = 256


def ring_pair(capacity=CAPACITY, wake_fd=-1, reader_wake_fd=-1):
    """(writer, reader, mapping): both ends of one ring at offset 0."""
    mapping = mmap.mmap(-1, _shm.RING_HEADER_SIZE + capacity)
    writer = Ring(mapping, capacity, wake_fd)
    reader = Ring(mapping, capacity, reader_wake_fd)
    return writer, reader, mapping


def Ring(mapping, capacity, wake_fd):
    return _shm.Ring(mapping, 0, capacity, wake_fd)


def record(i, size):
    """A recognisable record of ``size`` bytes."""
    return bytes((i + k) & 0xFF for k in range(size))


# -- the ring ---------------------------------------------------------------------

def test_records_wrap_around_in_order():
    writer, reader, _ = ring_pair()
    # Sizes that are not multiples of 8 move the head through every
    # alignment, so records meet the end of the data area at every offset.
    sizes = [1, 7, 13, 29, 40, 3, 61, 0, 17] * 30
    for i, size in enumerate(sizes):
        assert writer.write(record(i, size), b"")
        assert reader.read() == record(i, size)
    assert reader.read() is None


def test_a_full_ring_refuses_then_takes_the_record_once_read():
    writer, reader, _ = ring_pair()
    written = 0
    while writer.write(record(written, 20), b""):
        written += 1
    # 24-byte records (4-byte length + 20, padded to 8) in 256 bytes.
    assert written == CAPACITY // 24
    assert reader.read() == record(0, 20)
    assert writer.write(record(written, 20), b"")
    for i in range(1, written + 1):
        assert reader.read() == record(i, 20)
    assert reader.read() is None


@pytest.mark.parametrize("shift", range(0, 64, 4))
def test_a_record_of_max_record_bytes_always_fits_an_empty_ring(shift):
    """Wherever the head is, an empty ring takes its largest record (after a
    WRAP filler when it does not fit before the end)."""
    writer, reader, _ = ring_pair()
    for _ in range(3):          # move the head on, 3 records of `shift` bytes
        assert writer.write(b"x" * shift, b"")
        assert reader.read() == b"x" * shift
    big = record(shift, writer.max_record)
    assert writer.write(big, b"")
    assert reader.read() == big
    assert writer.max_record == CAPACITY // 2 - 16


def test_write_joins_header_and_payload_into_one_record():
    writer, reader, _ = ring_pair()
    assert writer.write(b"head", b"payload")
    assert reader.read() == b"headpayload"


def test_fits_boundary():
    """fits(size): the header and `size` more bytes make one record; one
    byte more goes to a buffer segment (the rule both sides apply)."""
    writer, _, _ = ring_pair(1 << 12)
    limit = writer.max_record - _shm.RECORD_SLACK - _shm.MESSAGE_HEADER_SIZE
    assert writer.fits(limit - 1)
    assert not writer.fits(limit)
    assert writer.fits(0)


def test_bad_ring_geometry_is_refused():
    mapping = mmap.mmap(-1, 4096)
    with pytest.raises(ValueError, match="power of two"):
        _shm.Ring(mapping, 0, 100, -1)
    with pytest.raises(ValueError, match="power of two"):
        _shm.Ring(mapping, 0, 32, -1)
    with pytest.raises(ValueError, match="does not fit"):
        _shm.Ring(mapping, 0, 4096, -1)          # no room for the control block
    with pytest.raises(ValueError, match="does not fit"):
        _shm.Ring(mapping, 8, 256, -1)           # not on a cache line


def test_a_closed_ring_refuses_use():
    writer, _, _ = ring_pair()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x", b"")
    with pytest.raises(ValueError, match="closed"):
        writer.read()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(0, CAPACITY // 2 - 16), st.just(-1)), max_size=200))
def test_ring_matches_a_queue(ops):
    """Any sequence of writes (a size) and reads (-1) behaves as a FIFO
    queue that refuses a write only when it would overflow the ring."""
    writer, reader, _ = ring_pair()
    model = deque()
    for i, op in enumerate(ops):
        if op < 0:
            assert reader.read() == (model.popleft() if model else None)
        elif writer.write(record(i, op), b""):
            model.append(record(i, op))
        else:
            assert model, "an empty ring refused a record of at most max_record bytes"
    while model:
        assert reader.read() == model.popleft()
    assert reader.read() is None


# -- wake-ups -------------------------------------------------------------------------

def _pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def _bytes_in(fd):
    try:
        return len(os.read(fd, 64))
    except BlockingIOError:
        return 0


def test_writer_wakes_a_sleeping_reader_once():
    r, w = _pipe()
    try:
        writer, reader, _ = ring_pair(wake_fd=w)
        assert writer.write(b"a", b"")
        assert _bytes_in(r) == 0                    # the reader is awake
        assert not reader.prepare_sleep()           # data is there: no sleep
        assert reader.read() == b"a"
        assert reader.prepare_sleep()               # empty: it may sleep
        assert writer.write(b"b", b"")
        assert _bytes_in(r) == 1                    # woken
        assert writer.write(b"c", b"")
        assert _bytes_in(r) == 0                    # once per sleep
    finally:
        os.close(r)
        os.close(w)


def test_reader_wakes_a_writer_waiting_for_room():
    r, w = _pipe()
    try:
        writer, reader, _ = ring_pair(reader_wake_fd=w)
        while writer.write(b"x" * 20, b""):
            pass
        assert writer.prepare_wait(20)              # full: it may wait
        assert reader.read() == b"x" * 20
        assert _bytes_in(r) == 1                    # woken
        assert not writer.prepare_wait(20)          # room now
        assert _bytes_in(r) == 0
    finally:
        os.close(r)
        os.close(w)


# -- the wire format's encoders ---------------------------------------------------------

def test_wire_constants():
    assert _shm.MESSAGE_HEADER_SIZE == 24
    assert _shm.SPAN_SIZE == 16
    assert _shm.CLAIM_SLOT_SIZE == 16
    assert _shm.RING_HEADER_SIZE == 192
    assert _shm.SEGMENT_HELLO_SIZE == 16
    kinds = [_shm.CALL, _shm.EXIT, _shm.RESULT, _shm.RAW_RESULT, _shm.EXCEPTION,
             _shm.RELEASE, _shm.FORGET, _shm.CHUNK, _shm.SKIPPED]
    assert len(set(kinds)) == len(kinds)
    flags = [_shm.PAYLOAD_IN_SEGMENT, _shm.WORKER_EXITING, _shm.NO_ARGS,
             _shm.WITH_KWARGS, _shm.STAR, _shm.NONE_RESULT]
    assert all(f and f & (f - 1) == 0 for f in flags)
    assert len(set(flags)) == len(flags)


def test_channel_layout():
    for capacity in (64, 4096, 1 << 18):
        parts = _shm.channel_layout(capacity)
        *offsets, size = parts
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        assert all(offset % 4096 == 0 for offset in offsets)
        requests, replies, claims, to_parent, to_worker = offsets
        assert replies - requests >= _shm.RING_HEADER_SIZE + capacity
        assert claims - replies >= _shm.RING_HEADER_SIZE + capacity
        assert to_parent - claims >= _shm.CLAIM_SLOTS * _shm.CLAIM_SLOT_SIZE + 8
        assert size - to_worker >= _shm.RING_HEADER_SIZE + _shm.RETURNS_CAPACITY


u8 = st.integers(0, 255)
u16 = st.integers(0, (1 << 16) - 1)
u32 = st.integers(0, (1 << 32) - 1)
u64 = st.integers(0, (1 << 64) - 1)
i64 = st.integers(-(1 << 63), (1 << 63) - 1)


@given(u8, u8, u16, u32, i64, u32, u32)
def test_header_round_trip(kind, flags, nbuf, seg_id, task_id, fn_len, slot):
    packed = _shm.pack_header(kind, flags, nbuf, seg_id, task_id, fn_len, slot)
    assert len(packed) == _shm.MESSAGE_HEADER_SIZE
    assert _shm.unpack_header(packed + b"payload") == (kind, flags, nbuf, seg_id, task_id,
                                                       fn_len, slot)


@given(st.lists(st.tuples(u64, u64), max_size=20), st.binary(max_size=40))
def test_spans_round_trip(spans, payload):
    record = _shm.pack_header(_shm.RESULT, 0, len(spans), 1, 2, 0, 0) + _shm.pack_spans(spans)
    assert _shm.unpack_spans(record + payload, len(spans)) == spans


def test_short_records_are_refused():
    with pytest.raises(ValueError, match="header"):
        _shm.unpack_header(b"\0" * (_shm.MESSAGE_HEADER_SIZE - 1))
    header = _shm.pack_header(_shm.RESULT, 0, 2, 1, 2, 0, 0)
    with pytest.raises(ValueError, match="spans"):
        _shm.unpack_spans(header + _shm.pack_spans([(0, 1)]), 2)
    with pytest.raises(ValueError, match="segment id"):
        _shm.unpack_ids(b"\0" * 6)
    with pytest.raises(ValueError, match="hello"):
        _shm.unpack_hello(b"\0" * 12)


@given(st.lists(u32, max_size=100))
def test_segment_ids_round_trip(ids):
    packed = _shm.pack_ids(ids)
    assert len(packed) == 4 * len(ids)
    assert _shm.unpack_ids(packed) == ids


@given(u32, u64)
def test_segment_hello_round_trip(seg_id, size):
    assert _shm.unpack_hello(_shm.pack_hello(seg_id, size)) == (seg_id, size)


# -- claim slots --------------------------------------------------------------------------

def claims_over(mapping, count=_shm.CLAIM_SLOTS):
    return _shm.Claims(mapping, 0, count)


def test_claim_slot_transitions():
    mapping = mmap.mmap(-1, 4096)
    claims = claims_over(mapping)
    claims.offer_call(0)
    assert not claims.is_claimed(0)
    assert claims.claim_call(0)
    assert claims.is_claimed(0)
    assert not claims.cancel_call(0)            # claimed: too late to cancel
    assert not claims.claim_call(0)             # and claimed once only
    claims.offer_call(1)
    assert claims.cancel_call(1)
    assert not claims.claim_call(1)             # cancelled: never runs
    assert not claims.cancel_call(1)
    assert not claims.claim_call(2)             # never offered
    with pytest.raises(IndexError):
        claims.claim_call(claims.count)
    assert not claims.ready
    claims.mark_ready()
    assert claims.ready


def test_claims_that_do_not_fit_are_refused():
    mapping = mmap.mmap(-1, 4096)
    with pytest.raises(ValueError, match="do not fit"):
        _shm.Claims(mapping, 0, 4096 // _shm.CLAIM_SLOT_SIZE)
    with pytest.raises(ValueError, match="do not fit"):
        _shm.Claims(mapping, 8, 4)


ROUNDS = 200


def _race(claims, go, side, wins, rounds):
    """Take part in `rounds` races over every slot: claim them from the
    first slot up, or cancel them from the last slot down (so the two sides
    meet in the middle, each round somewhere else)."""
    order = range(claims.count) if side == "claim" else range(claims.count - 1, -1, -1)
    attempt = claims.claim_call if side == "claim" else claims.cancel_call
    for r in range(rounds):
        go(r)
        wins.append([slot for slot in order if attempt(slot)])


def _check(rounds_claimed, rounds_cancelled, count):
    assert len(rounds_claimed) == len(rounds_cancelled) == ROUNDS
    for claimed, cancelled in zip(rounds_claimed, rounds_cancelled):
        assert not set(claimed) & set(cancelled)
        assert sorted(claimed + cancelled) == list(range(count))


def test_claim_and_cancel_race_between_threads():
    """Exactly one of claim and cancel wins each offered slot."""
    mapping = mmap.mmap(-1, 4096)
    claims = claims_over(mapping)
    start = threading.Barrier(3, timeout=TIMEOUT)
    claimed, cancelled = [], []

    def go(_round):
        start.wait()

    def side(name, wins):
        _race(claims, go, name, wins, ROUNDS)

    threads = [threading.Thread(target=side, args=("claim", claimed)),
               threading.Thread(target=side, args=("cancel", cancelled))]
    for t in threads:
        t.start()
    try:
        for r in range(ROUNDS):
            for slot in range(claims.count):
                claims.offer_call(slot)
            start.wait()            # both sides go
            # The next round's offers wait until both sides are done.
            while len(claimed) <= r or len(cancelled) <= r:
                threading.Event().wait(0.0005)
    finally:
        for t in threads:
            t.join(TIMEOUT)
    _check(claimed, cancelled, claims.count)


def _claiming_child(fd, conn):
    # A forked child: maps the same segment, claims each round's slots when
    # the parent raises words[0] to the round, raises words[1] when done,
    # and finally reports what it won.
    mapping = mmap.mmap(fd, 4096 * 2)
    claims = claims_over(mapping)
    words = memoryview(mapping)[4096:4112].cast("Q")
    wins = []

    def go(r):
        if r:
            words[1] = r            # the previous round is over
        while words[0] != r + 1:
            pass

    _race(claims, go, "claim", wins, ROUNDS)
    words[1] = ROUNDS
    words.release()
    conn.send(wins)
    conn.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs fork (the child maps the parent's descriptor)")
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_claim_and_cancel_race_between_processes():
    """The worker claims while the parent cancels, in two processes:
    exactly one of them wins each slot."""
    if not hasattr(os, "memfd_create"):
        pytest.skip("memfd_create")
    fd = os.memfd_create("test", 0)
    try:
        os.ftruncate(fd, 4096 * 2)
        mapping = mmap.mmap(fd, 4096 * 2)
        claims = claims_over(mapping)
        words = memoryview(mapping)[4096:4112].cast("Q")
        ctx = multiprocessing.get_context("fork")
        parent_conn, child_conn = ctx.Pipe()
        child = ctx.Process(target=_claiming_child, args=(fd, child_conn))
        child.start()
        cancelled = []
        try:
            for r in range(ROUNDS):
                for slot in range(claims.count):
                    claims.offer_call(slot)
                words[0] = r + 1            # go
                cancelled.append([slot for slot in range(claims.count - 1, -1, -1)
                                  if claims.cancel_call(slot)])
                # The next round's offers wait until the child is done
                # with this one (bounded: a dead child fails the test).
                while words[1] != r + 1 and child.is_alive():
                    pass
            assert parent_conn.poll(TIMEOUT)
            claimed = parent_conn.recv()
        finally:
            child.join(TIMEOUT)
            if child.is_alive():
                child.kill()
                child.join(TIMEOUT)
            words.release()
            parent_conn.close()
        assert child.exitcode == 0
        _check(claimed, cancelled, claims.count)
    finally:
        os.close(fd)
