"""wait() and as_completed() semantics."""
import concurrent.futures
import gc
import threading
import time
import weakref

import pytest

from conftest import TIMEOUT, join_all, start_thread

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def make(cf, state, value=None):
    f = cf.Future()
    if state == "PENDING":
        pass
    elif state == "RUNNING":
        f.set_running_or_notify_cancel()
    elif state == "CANCELLED":
        f.cancel()
    elif state == "CANCELLED_AND_NOTIFIED":
        f.cancel()
        f.set_running_or_notify_cancel()
    elif state == "FINISHED":
        f.set_result(value)
    elif state == "RAISED":
        f.set_exception(value if value is not None else ValueError("boom"))
    else:
        raise AssertionError(state)
    return f


def later(delay, fn, *args):
    def run():
        time.sleep(delay)
        fn(*args)
    return start_thread(run)


def cancel_and_notify(f):
    assert f.cancel()
    assert f.set_running_or_notify_cancel() is False


# -- wait() -------------------------------------------------------------------

def test_wait_returns_named_tuple_of_sets(cf):
    f = make(cf, "FINISHED", 1)
    g = make(cf, "PENDING")
    result = cf.wait([f, g], timeout=0)
    assert isinstance(result, tuple)
    assert result._fields == ("done", "not_done")
    done, not_done = result
    assert result.done is done and result.not_done is not_done
    assert isinstance(done, set) and isinstance(not_done, set)
    assert done == {f}
    assert not_done == {g}


def test_wait_empty(cf):
    for return_when in (cf.ALL_COMPLETED, cf.FIRST_COMPLETED, cf.FIRST_EXCEPTION):
        done, not_done = cf.wait([], return_when=return_when)
        assert done == set() and not_done == set()


@pytest.mark.parametrize("return_when", ["FIRST_COMPLETED", "FIRST_EXCEPTION",
                                         "ALL_COMPLETED"])
def test_wait_all_already_done(cf, return_when):
    fs = [make(cf, "FINISHED", 1), make(cf, "RAISED"), make(cf, "CANCELLED_AND_NOTIFIED")]
    done, not_done = cf.wait(fs, return_when=getattr(cf, return_when))
    assert done == set(fs)
    assert not_done == set()


@pytest.mark.parametrize("return_when", ["FIRST_COMPLETED", "FIRST_EXCEPTION",
                                         "ALL_COMPLETED"])
def test_wait_timeout_zero_with_pending(cf, return_when):
    pending = make(cf, "PENDING")
    running = make(cf, "RUNNING")
    finished = make(cf, "FINISHED", 1)
    done, not_done = cf.wait([pending, running, finished], timeout=0,
                             return_when=getattr(cf, return_when))
    assert done == {finished}
    assert not_done == {pending, running}


@pytest.mark.parametrize("timeout", [0, 0.05])
def test_wait_cancelled_not_notified_is_not_done(cf, timeout):
    f = cf.Future()
    assert f.cancel()
    done, not_done = cf.wait([f], timeout=timeout)
    assert done == set()
    assert not_done == {f}
    assert f.done()  # done() is True even though wait() does not count it
    f.set_running_or_notify_cancel()
    done, not_done = cf.wait([f], timeout=timeout)
    assert done == {f}
    assert not_done == set()


def test_wait_first_completed_returns_early_when_one_done(cf):
    finished = make(cf, "FINISHED", 1)
    pending = make(cf, "PENDING")
    done, not_done = cf.wait([finished, pending], return_when=cf.FIRST_COMPLETED)
    assert done == {finished}
    assert not_done == {pending}


def test_wait_first_completed_woken_by_result(cf):
    a, b, c = cf.Future(), cf.Future(), cf.Future()
    t = later(0.05, b.set_result, 2)
    done, not_done = cf.wait([a, b, c], timeout=TIMEOUT, return_when=cf.FIRST_COMPLETED)
    assert done == {b}
    assert not_done == {a, c}
    join_all([t])


def test_wait_first_completed_woken_by_exception(cf):
    a, b = cf.Future(), cf.Future()
    t = later(0.05, a.set_exception, ValueError())
    done, not_done = cf.wait([a, b], timeout=TIMEOUT, return_when=cf.FIRST_COMPLETED)
    assert done == {a}
    assert not_done == {b}
    join_all([t])


def test_wait_first_completed_woken_by_cancel_notification(cf):
    a, b = cf.Future(), cf.Future()
    t = later(0.05, cancel_and_notify, a)
    done, not_done = cf.wait([a, b], timeout=TIMEOUT, return_when=cf.FIRST_COMPLETED)
    assert done == {a}
    assert not_done == {b}
    join_all([t])


def test_wait_first_completed_not_woken_by_plain_cancel(cf):
    a = cf.Future()
    t = later(0.01, a.cancel)
    done, not_done = cf.wait([a], timeout=0.2, return_when=cf.FIRST_COMPLETED)
    join_all([t])
    assert a.cancelled()
    assert done == set()
    assert not_done == {a}


def test_wait_first_exception_returns_early_on_existing_exception(cf):
    raised = make(cf, "RAISED")
    finished = make(cf, "FINISHED", 1)
    pending = make(cf, "PENDING")
    done, not_done = cf.wait([raised, finished, pending],
                             return_when=cf.FIRST_EXCEPTION)
    assert done == {raised, finished}
    assert not_done == {pending}


def test_wait_first_exception_ignores_results(cf):
    a, b, c = cf.Future(), cf.Future(), cf.Future()

    def complete():
        time.sleep(0.02)
        a.set_result(1)
        time.sleep(0.02)
        b.set_exception(OSError())

    t = start_thread(complete)
    done, not_done = cf.wait([a, b, c], timeout=TIMEOUT, return_when=cf.FIRST_EXCEPTION)
    join_all([t])
    assert done == {a, b}
    assert not_done == {c}


def test_wait_first_exception_all_succeed_acts_like_all_completed(cf):
    fs = [cf.Future() for _ in range(4)]

    def complete():
        for i, f in enumerate(fs):
            time.sleep(0.01)
            f.set_result(i)

    t = start_thread(complete)
    done, not_done = cf.wait(fs, timeout=TIMEOUT, return_when=cf.FIRST_EXCEPTION)
    join_all([t])
    assert done == set(fs)
    assert not_done == set()


def test_wait_first_exception_not_stopped_by_cancellation(cf):
    # A cancellation is not an exception: FIRST_EXCEPTION keeps waiting.
    a, b = cf.Future(), cf.Future()
    t1 = later(0.02, cancel_and_notify, a)
    t2 = later(0.15, b.set_result, 1)
    done, not_done = cf.wait([a, b], timeout=TIMEOUT, return_when=cf.FIRST_EXCEPTION)
    join_all([t1, t2])
    assert done == {a, b}
    assert not_done == set()


def test_wait_first_exception_with_only_cancelled_done_does_not_return_early(cf):
    cancelled = make(cf, "CANCELLED_AND_NOTIFIED")
    pending = make(cf, "PENDING")
    t = later(0.05, pending.set_result, 1)
    done, not_done = cf.wait([cancelled, pending], timeout=TIMEOUT,
                             return_when=cf.FIRST_EXCEPTION)
    join_all([t])
    assert done == {cancelled, pending}
    assert not_done == set()


def test_wait_all_completed(cf):
    fs = [cf.Future() for _ in range(5)]

    def complete():
        for i, f in enumerate(fs):
            time.sleep(0.005)
            if i == 1:
                f.set_exception(ValueError())
            elif i == 2:
                cancel_and_notify(f)
            else:
                f.set_result(i)

    t = start_thread(complete)
    done, not_done = cf.wait(fs, timeout=TIMEOUT, return_when=cf.ALL_COMPLETED)
    join_all([t])
    assert done == set(fs)
    assert not_done == set()


def test_wait_default_is_all_completed(cf):
    a, b = cf.Future(), cf.Future()
    t1 = later(0.01, a.set_result, 1)
    t2 = later(0.05, b.set_result, 2)
    done, not_done = cf.wait([a, b], timeout=TIMEOUT)
    join_all([t1, t2])
    assert done == {a, b}
    assert not_done == set()


def test_wait_timeout_expires(cf):
    a, b = cf.Future(), cf.Future()
    t = later(0.01, a.set_result, 1)
    done, not_done = cf.wait([a, b], timeout=0.2)
    join_all([t])
    assert done == {a}
    assert not_done == {b}


def test_wait_deduplicates(cf):
    f = make(cf, "FINISHED", 1)
    g = make(cf, "PENDING")
    done, not_done = cf.wait([f, f, g, g, f], timeout=0)
    assert done == {f}
    assert not_done == {g}
    t = later(0.02, g.set_result, 2)
    done, not_done = cf.wait([f, g, g], timeout=TIMEOUT)
    join_all([t])
    assert done == {f, g}


def test_wait_accepts_any_iterable(cf):
    fs = [make(cf, "FINISHED", i) for i in range(3)]
    done, not_done = cf.wait(iter(fs))
    assert done == set(fs)
    done, not_done = cf.wait(f for f in fs)
    assert done == set(fs)
    done, not_done = cf.wait(frozenset(fs), timeout=0)
    assert done == set(fs)


def test_wait_invalid_return_when_raises_when_waiting(cf):
    pending = cf.Future()
    with pytest.raises(ValueError, match="Invalid return condition"):
        cf.wait([pending], timeout=0, return_when="NOT_A_CONDITION")
    # No waiter was left behind: the future still completes normally.
    pending.set_result(1)
    assert cf.wait([pending], timeout=0).done == {pending}


def test_wait_invalid_return_when_ignored_when_all_done(cf):
    # The stdlib only validates return_when when it must install a waiter.
    f = make(cf, "FINISHED", 1)
    done, not_done = cf.wait([f], return_when="NOT_A_CONDITION")
    assert done == {f}
    done, not_done = cf.wait([], return_when="NOT_A_CONDITION")
    assert done == set()


def test_wait_from_many_threads_on_same_future(cf):
    f = cf.Future()
    results = []
    lock = threading.Lock()

    def waiter(return_when):
        r = cf.wait([f], timeout=TIMEOUT, return_when=return_when)
        with lock:
            results.append(r.done)

    threads = [start_thread(waiter, rw) for rw in
               (cf.FIRST_COMPLETED, cf.FIRST_EXCEPTION, cf.ALL_COMPLETED) * 3]
    time.sleep(0.05)
    f.set_result(1)
    join_all(threads)
    assert results == [{f}] * 9


def test_wait_does_not_keep_futures_alive(cf):
    fs = [cf.Future() for _ in range(3)]
    cf.wait(fs, timeout=0)
    refs = [weakref.ref(f) for f in fs]
    del fs
    gc.collect()
    assert all(r() is None for r in refs)


# -- as_completed() -----------------------------------------------------------

def test_as_completed_empty(cf):
    assert list(cf.as_completed([])) == []
    assert list(cf.as_completed([], timeout=0)) == []


def test_as_completed_all_done(cf):
    fs = [make(cf, "FINISHED", 1), make(cf, "RAISED"), make(cf, "CANCELLED_AND_NOTIFIED")]
    got = list(cf.as_completed(fs, timeout=TIMEOUT))
    assert len(got) == 3
    assert set(got) == set(fs)


def test_as_completed_finished_first_then_completion_order(cf):
    done1 = make(cf, "FINISHED", "d1")
    done2 = make(cf, "RAISED")
    done3 = make(cf, "CANCELLED_AND_NOTIFIED")
    p = [cf.Future() for _ in range(4)]
    completion_order = [p[2], p[0], p[3], p[1]]
    how = [lambda f: f.set_result(1), lambda f: f.set_exception(KeyError()),
           cancel_and_notify, lambda f: f.set_result(2)]

    it = cf.as_completed(p[:2] + [done1, done2] + p[2:] + [done3], timeout=TIMEOUT)
    first = [next(it) for _ in range(3)]
    assert set(first) == {done1, done2, done3}
    yielded = []
    for f, complete in zip(completion_order, how):
        complete(f)
        yielded.append(next(it))
    assert yielded == completion_order
    with pytest.raises(StopIteration):
        next(it)


def test_as_completed_woken_by_other_thread(cf):
    fs = [cf.Future() for _ in range(5)]

    def complete():
        for i, f in enumerate(reversed(fs)):
            time.sleep(0.01)
            f.set_result(i)

    t = start_thread(complete)
    got = list(cf.as_completed(fs, timeout=TIMEOUT))
    join_all([t])
    assert got == list(reversed(fs))


def test_as_completed_timeout_message(cf):
    done = make(cf, "FINISHED", 1)
    a, b = cf.Future(), cf.Future()
    it = cf.as_completed([a, done, b], timeout=0.05)
    assert next(it) is done
    with pytest.raises(cf.TimeoutError) as info:
        next(it)
    assert str(info.value) == "2 (of 3) futures unfinished"


def test_as_completed_timeout_counts_pending_left(cf):
    a, b, c = cf.Future(), cf.Future(), cf.Future()
    it = cf.as_completed([a, b, c], timeout=0.3)
    b.set_result(1)
    assert next(it) is b
    with pytest.raises(cf.TimeoutError, match=r"^2 \(of 3\) futures unfinished$"):
        next(it)


def test_as_completed_timeout_zero(cf):
    f = cf.Future()
    with pytest.raises(cf.TimeoutError, match=r"^1 \(of 1\) futures unfinished$"):
        list(cf.as_completed([f], timeout=0))


def test_as_completed_cancelled_not_notified_is_unfinished(cf):
    f = cf.Future()
    f.cancel()
    with pytest.raises(cf.TimeoutError, match=r"^1 \(of 1\) futures unfinished$"):
        list(cf.as_completed([f], timeout=0.05))
    f.set_running_or_notify_cancel()
    assert list(cf.as_completed([f], timeout=0)) == [f]


def test_as_completed_woken_by_cancel_notification(cf):
    f = cf.Future()
    t = later(0.02, cancel_and_notify, f)
    assert list(cf.as_completed([f], timeout=TIMEOUT)) == [f]
    join_all([t])


def test_as_completed_deduplicates(cf):
    f = make(cf, "FINISHED", 1)
    g = cf.Future()
    it = cf.as_completed([f, f, g, g], timeout=TIMEOUT)
    assert next(it) is f
    g.set_result(2)
    assert next(it) is g
    with pytest.raises(StopIteration):
        next(it)


def test_as_completed_accepts_iterator(cf):
    fs = [make(cf, "FINISHED", i) for i in range(3)]
    assert set(cf.as_completed(iter(fs))) == set(fs)
    assert set(cf.as_completed(f for f in fs)) == set(fs)


def test_as_completed_is_lazy_generator(cf):
    # Nothing is raised until iteration starts; closing it early is fine and
    # the futures keep working afterwards.
    fs = [cf.Future() for _ in range(3)]
    fs[0].set_result(0)
    it = cf.as_completed(fs, timeout=TIMEOUT)
    assert next(it) is fs[0]
    it.close()
    fs[1].set_result(1)
    fs[2].set_exception(ValueError())
    assert cf.wait(fs, timeout=0).done == set(fs)
    assert set(cf.as_completed(fs, timeout=0)) == set(fs)


def test_as_completed_does_not_keep_yielded_futures(cf):
    # bpo-14406: the generator must not keep references to the futures it
    # has yielded.
    futures_list = [cf.Future() for _ in range(8)]
    futures_list.append(make(cf, "CANCELLED_AND_NOTIFIED"))
    futures_list.append(make(cf, "FINISHED", 42))

    with pytest.raises(cf.TimeoutError):
        for future in cf.as_completed(futures_list, timeout=0):
            futures_list.remove(future)
            ref = weakref.ref(future)
            del future
            gc.collect()
            assert ref() is None

    futures_list[0].set_result("test")
    for future in cf.as_completed(futures_list, timeout=TIMEOUT):
        futures_list.remove(future)
        ref = weakref.ref(future)
        del future
        gc.collect()
        assert ref() is None
        if futures_list:
            futures_list[0].set_result("test")
    assert futures_list == []


def test_as_completed_from_many_threads(cf):
    fs = [cf.Future() for _ in range(20)]
    results = []
    lock = threading.Lock()

    def consumer():
        got = list(cf.as_completed(fs, timeout=TIMEOUT))
        with lock:
            results.append(got)

    threads = [start_thread(consumer) for _ in range(4)]
    for i, f in enumerate(fs):
        f.set_result(i)
    join_all(threads)
    assert len(results) == 4
    for got in results:
        assert len(got) == 20 and set(got) == set(fs)


@pytest.mark.parametrize("return_when", ["FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"])
def test_wait_looks_at_a_bad_timeout_only_when_it_waits(cf, return_when):
    done = make(cf, "FINISHED", 1)
    got = cf.wait([done], timeout="soon", return_when=getattr(cf, return_when))
    assert got.done == {done} and got.not_done == set()
    with pytest.raises(TypeError):
        cf.wait([cf.Future()], timeout="soon", return_when=getattr(cf, return_when))


@pytest.mark.stdlib_differs(reason="the stdlib leaves its waiter on the futures when its "
                                  "timeout is bad")
def test_wait_with_a_bad_timeout_leaves_no_waiter_behind(cf):
    theirs = concurrent.futures.Future()
    ours = cf.Future()
    for return_when in (cf.FIRST_COMPLETED, cf.ALL_COMPLETED):
        with pytest.raises(TypeError):
            cf.wait([theirs, ours], timeout="soon", return_when=return_when)
    assert theirs._waiters == []
    ours.set_result(1)              # no waiter left to notify
    theirs.set_result(2)


def test_wait_all_returns_fresh_sets(cf):
    fs = [make(cf, "FINISHED", i) for i in range(3)]
    given = set(fs)
    first, second = cf.wait(given), cf.wait(given)
    assert first.done == given and first.done is not given
    assert first.done is not second.done
    first.done.clear()
    assert second.done == given and first.not_done == set()


# -- mixing implementations ---------------------------------------------------
# With cf=stdlib these are trivially stdlib-only; with cf=fastfutures they mix
# stdlib concurrent.futures.Future objects and fastfutures futures.

def test_wait_mixed_with_concurrent_futures_futures(cf):
    ours = [cf.Future() for _ in range(2)]
    theirs = [concurrent.futures.Future() for _ in range(2)]
    ours[0].set_result(1)
    theirs[0].set_result(2)
    done, not_done = cf.wait(ours + theirs, timeout=0)
    assert done == {ours[0], theirs[0]}
    assert not_done == {ours[1], theirs[1]}

    t = later(0.05, theirs[1].set_result, 3)
    done, not_done = cf.wait(ours + theirs, timeout=TIMEOUT,
                             return_when=cf.FIRST_COMPLETED)
    join_all([t])
    # Done futures are reported at once: only the already-done ones here
    # (the first check returns early), or the new one as well.
    assert {ours[0], theirs[0]} <= done
    t = later(0.05, ours[1].set_exception, ValueError())
    done, not_done = cf.wait(ours + theirs, timeout=TIMEOUT)
    join_all([t])
    assert done == set(ours + theirs)


def test_wait_all_mixed_after_waiting_for_some(cf):
    # ALL_COMPLETED waits for fastfutures futures one by one until it meets
    # a stdlib one, then installs a waiter on what is left.
    ours = [cf.Future() for _ in range(20)]
    theirs = [concurrent.futures.Future() for _ in range(3)]
    threads = [later(0.02, f.set_result, i) for i, f in enumerate(ours + theirs)]
    done, not_done = cf.wait(theirs + ours, timeout=TIMEOUT)
    join_all(threads)
    assert done == set(ours + theirs) and not_done == set()


def test_wait_mixed_woken_by_concurrent_futures_future(cf):
    ours = cf.Future()
    theirs = concurrent.futures.Future()
    t = later(0.05, theirs.set_result, 1)
    done, not_done = cf.wait([ours, theirs], timeout=TIMEOUT,
                             return_when=cf.FIRST_COMPLETED)
    join_all([t])
    assert done == {theirs}
    assert not_done == {ours}


def test_as_completed_mixed_with_concurrent_futures_futures(cf):
    ours = cf.Future()
    theirs = concurrent.futures.Future()
    done = concurrent.futures.Future()
    done.set_result(0)
    it = cf.as_completed([ours, theirs, done], timeout=TIMEOUT)
    assert next(it) is done
    theirs.set_result(1)
    assert next(it) is theirs
    ours.set_result(2)
    assert next(it) is ours
    with pytest.raises(StopIteration):
        next(it)


# -- the stdlib's own wait()/as_completed() given cf futures --------------------
# COMPAT: concurrent.futures.wait()/as_completed() read private attributes of
# each future (_condition, _waiters, _state).  fastfutures futures support
# being passed to them.

def test_compat_concurrent_futures_wait_accepts_cf_futures(cf):
    a, b, c = cf.Future(), cf.Future(), cf.Future()
    a.set_result(1)
    done, not_done = concurrent.futures.wait([a, b, c], timeout=0)
    assert done == {a}
    assert not_done == {b, c}

    t = later(0.05, b.set_exception, ValueError())
    done, not_done = concurrent.futures.wait(
        [b, c], timeout=TIMEOUT, return_when=concurrent.futures.FIRST_EXCEPTION)
    join_all([t])
    assert done == {b}

    c.cancel()
    assert concurrent.futures.wait([c], timeout=0).not_done == {c}
    t = later(0.05, c.set_running_or_notify_cancel)
    done, not_done = concurrent.futures.wait([c], timeout=TIMEOUT)
    join_all([t])
    assert done == {c}


def test_compat_concurrent_futures_as_completed_accepts_cf_futures(cf):
    done = cf.Future()
    done.set_result(0)
    a, b = cf.Future(), cf.Future()
    it = concurrent.futures.as_completed([a, b, done], timeout=TIMEOUT)
    assert next(it) is done
    b.set_result(1)
    assert next(it) is b
    t = later(0.02, a.set_result, 2)
    assert next(it) is a
    join_all([t])
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(concurrent.futures.TimeoutError):
        list(concurrent.futures.as_completed([cf.Future()], timeout=0))


@pytest.mark.parametrize("timeout", [0, -1])
def test_as_completed_yields_finished_before_timing_out(cf, timeout):
    done = make(cf, "FINISHED", 1)
    pending = cf.Future()
    it = cf.as_completed([pending, done], timeout=timeout)
    assert next(it) is done
    with pytest.raises(cf.TimeoutError, match=r"^1 \(of 2\) futures unfinished$"):
        next(it)


def test_wait_negative_timeout(cf):
    done = make(cf, "FINISHED", 1)
    pending = cf.Future()
    result = cf.wait([pending, done], timeout=-1)
    assert result.done == {done}
    assert result.not_done == {pending}


def _allocated_growth(fn, rounds):
    import tracemalloc
    fn()  # warm up caches and free lists
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(rounds):
            fn()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return end - start


def test_repeated_wait_on_pending_future_does_not_leak_waiters(cf):
    # Each wait() that times out must remove the waiter it installed.
    pending = [cf.Future() for _ in range(3)]
    done = make(cf, "FINISHED", 1)

    def once():
        cf.wait(pending + [done], timeout=0)
        cf.wait(pending, timeout=0, return_when=cf.FIRST_COMPLETED)
        cf.wait(pending, timeout=0, return_when=cf.FIRST_EXCEPTION)

    growth = _allocated_growth(once, 3000)
    assert growth < 100_000, growth
    for f in pending:
        f.set_result(None)


def test_repeated_as_completed_does_not_leak_waiters(cf):
    pending = [cf.Future() for _ in range(3)]
    done = make(cf, "FINISHED", 1)

    def once():
        it = cf.as_completed(pending + [done], timeout=0)
        next(it)
        it.close()
        with pytest.raises(cf.TimeoutError):
            list(cf.as_completed(pending, timeout=0))

    growth = _allocated_growth(once, 3000)
    assert growth < 100_000, growth
