"""map(buffersize=...) — the Python 3.14 API.

On 3.10–3.13 both the stdlib and fastfutures reject the keyword; the
buffered iterator itself (used on 3.14+) is exercised directly here so it is
tested on every version.
"""
import concurrent.futures
import sys
import threading

import pytest

import fastfutures
from fastfutures._base import buffered_map, check_buffersize

TIMEOUT = 10


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14 accepts buffersize")
def test_buffersize_rejected_before_314(cf):
    with cf.ThreadPoolExecutor(2) as ex:
        with pytest.raises(TypeError, match="buffersize"):
            ex.map(abs, [1], buffersize=2)


@pytest.mark.parametrize("bad, exc", [("2", TypeError), (2.0, TypeError), (0, ValueError), (-1, ValueError)])
def test_check_buffersize(bad, exc):
    with pytest.raises(exc, match="buffersize must be"):
        check_buffersize(bad)


def test_buffered_map_keeps_order_and_bound():
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def task(x):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        with lock:
            in_flight -= 1
        return x * 2

    submitted = []

    class CountingExecutor(fastfutures.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(args)
            return super().submit(fn, *args, **kwargs)

    with CountingExecutor(4) as ex:
        it = buffered_map(ex, task, (range(20),), None, 3)
        assert len(submitted) == 3          # only buffersize calls up front
        first = next(it)
        assert first == 0
        assert len(submitted) == 4          # one more per result handed out
        assert [first] + list(it) == [x * 2 for x in range(20)]
    assert len(submitted) == 20


def test_buffered_map_close_cancels_rest():
    gate = threading.Event()
    with fastfutures.ThreadPoolExecutor(1) as ex:
        blocker = ex.submit(gate.wait, TIMEOUT)
        fs = []

        class Recording:
            def submit(self, fn, *args):
                f = ex.submit(fn, *args)
                fs.append(f)
                return f

        recorder = Recording()
        it = buffered_map(recorder, abs, ([1, 2, 3],), None, 2)
        gate.set()
        assert next(it) == 1
        it.close()
        blocker.result(TIMEOUT)
        for f in fs:
            assert f.done()


def test_buffered_map_timeout():
    gate = threading.Event()
    with fastfutures.ThreadPoolExecutor(1) as ex:
        it = buffered_map(ex, gate.wait, ([TIMEOUT, TIMEOUT],), 0.05, 2)
        with pytest.raises(concurrent.futures.TimeoutError):
            next(it)
        gate.set()
