"""Future: state transitions, errors, repr, result/exception, callbacks."""
import gc
import logging
import re
import sys
import threading
import time
import weakref

import pytest

from conftest import TIMEOUT, join_all, start_thread

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

STATE_ERRORS = ("CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED")


class CustomBaseException(BaseException):
    pass


# -- helpers ---------------------------------------------------------------

def make(cf, state, value=None):
    """A future driven into ``state`` through the public API only."""
    f = cf.Future()
    if state == "PENDING":
        pass
    elif state == "RUNNING":
        assert f.set_running_or_notify_cancel() is True
    elif state == "CANCELLED":
        assert f.cancel() is True
    elif state == "CANCELLED_AND_NOTIFIED":
        assert f.cancel() is True
        assert f.set_running_or_notify_cancel() is False
    elif state == "FINISHED":
        f.set_result(value)
    elif state == "RAISED":
        f.set_exception(value if value is not None else ValueError("boom"))
    else:
        raise AssertionError(state)
    return f


def later(delay, fn, *args):
    """Call fn(*args) from another thread after ``delay`` seconds."""
    def run():
        time.sleep(delay)
        fn(*args)
    return start_thread(run)


# -- initial state and simple transitions -----------------------------------

def test_new_future_is_pending(cf):
    f = cf.Future()
    assert not f.done()
    assert not f.running()
    assert not f.cancelled()


def test_pending_to_running(cf):
    f = cf.Future()
    assert f.set_running_or_notify_cancel() is True
    assert f.running()
    assert not f.done()
    assert not f.cancelled()


@pytest.mark.parametrize("start", ["PENDING", "RUNNING"])
def test_set_result(cf, start):
    f = make(cf, start)
    f.set_result(42)
    assert f.done()
    assert not f.running()
    assert not f.cancelled()
    assert f.result(timeout=0) == 42
    assert f.exception(timeout=0) is None


@pytest.mark.parametrize("start", ["PENDING", "RUNNING"])
def test_set_exception(cf, start):
    f = make(cf, start)
    exc = ValueError("boom")
    f.set_exception(exc)
    assert f.done()
    assert not f.running()
    assert not f.cancelled()
    assert f.exception(timeout=0) is exc
    with pytest.raises(ValueError) as info:
        f.result(timeout=0)
    assert info.value is exc


def test_result_none(cf):
    f = make(cf, "FINISHED", None)
    assert f.result(timeout=0) is None
    assert f.exception(timeout=0) is None


def test_result_reraises_same_object_each_time(cf):
    exc = KeyError("k")
    f = make(cf, "RAISED", exc)
    for _ in range(3):
        with pytest.raises(KeyError) as info:
            f.result()
        assert info.value is exc


def test_result_reraises_base_exception_subclass(cf):
    f = make(cf, "RAISED", CustomBaseException("x"))
    with pytest.raises(CustomBaseException):
        f.result(timeout=0)
    assert isinstance(f.exception(timeout=0), CustomBaseException)


def test_result_does_not_leave_a_reference_cycle(cf):
    # result() raises self._exception; the stdlib clears ``self`` in the
    # raising frame so that exception -> traceback -> frame -> future ->
    # exception is not a cycle.  The future must die by refcount alone.
    gc.collect()
    gc.disable()
    try:
        f = make(cf, "RAISED", ValueError("boom"))
        try:
            f.result()
        except ValueError:
            pass
        ref = weakref.ref(f)
        del f
        assert ref() is None
    finally:
        gc.enable()


def test_set_exception_with_exception_class_instance_kept(cf):
    class MyError(Exception):
        pass
    err = MyError(1, 2)
    f = make(cf, "RAISED", err)
    assert f.exception() is err
    assert f.exception().args == (1, 2)


# -- invalid transitions -----------------------------------------------------

@pytest.mark.parametrize("state", STATE_ERRORS)
@pytest.mark.parametrize("method", ["set_result", "set_exception"])
def test_set_in_terminal_state_raises_invalid_state(cf, state, method):
    f = make(cf, state, 1)
    expected = f"{state}: {f!r}"
    arg = 2 if method == "set_result" else ValueError("late")
    with pytest.raises(cf.InvalidStateError) as info:
        getattr(f, method)(arg)
    assert str(info.value) == expected
    # The future is unchanged.
    if state == "FINISHED":
        assert f.result(timeout=0) == 1
    else:
        assert f.cancelled()


@pytest.mark.parametrize("state", ["RUNNING", "CANCELLED_AND_NOTIFIED",
                                   "FINISHED", "RAISED"])
def test_set_running_in_unexpected_state(cf, state, caplog):
    f = make(cf, state)
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        with pytest.raises(RuntimeError, match=r"^Future in unexpected state$"):
            f.set_running_or_notify_cancel()
    records = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert len(records) == 1
    assert records[0].levelno == logging.CRITICAL
    assert records[0].getMessage().startswith(f"Future {id(f)} in unexpected state")


def test_cancelled_then_set_running_returns_false_once(cf, caplog):
    f = make(cf, "CANCELLED")
    assert f.set_running_or_notify_cancel() is False
    assert f.cancelled()
    assert f.done()
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        with pytest.raises(RuntimeError, match="Future in unexpected state"):
            f.set_running_or_notify_cancel()


# -- cancel -----------------------------------------------------------------

def test_cancel_pending(cf):
    f = cf.Future()
    assert f.cancel() is True
    assert f.cancelled()
    assert f.done()
    assert not f.running()


@pytest.mark.parametrize("state", ["CANCELLED", "CANCELLED_AND_NOTIFIED"])
def test_cancel_already_cancelled_returns_true(cf, state):
    f = make(cf, state)
    assert f.cancel() is True
    assert f.cancelled()


@pytest.mark.parametrize("state", ["RUNNING", "FINISHED", "RAISED"])
def test_cancel_running_or_finished_returns_false(cf, state):
    f = make(cf, state)
    assert f.cancel() is False
    assert not f.cancelled()


@pytest.mark.parametrize("state", ["CANCELLED", "CANCELLED_AND_NOTIFIED"])
def test_result_and_exception_of_cancelled(cf, state):
    f = make(cf, state)
    with pytest.raises(cf.CancelledError):
        f.result(timeout=0)
    with pytest.raises(cf.CancelledError):
        f.exception(timeout=0)
    with pytest.raises(cf.CancelledError):
        f.result()


def test_cancel_wakes_result_waiter(cf):
    f = cf.Future()
    t = later(0.05, f.cancel)
    with pytest.raises(cf.CancelledError):
        f.result(timeout=TIMEOUT)
    join_all([t])


def test_cancel_wakes_exception_waiter(cf):
    f = cf.Future()
    t = later(0.05, f.cancel)
    with pytest.raises(cf.CancelledError):
        f.exception(timeout=TIMEOUT)
    join_all([t])


# -- repr --------------------------------------------------------------------

REPR_RE = r"<{name} at 0x[0-9a-f]+ state={state}>"


@pytest.mark.parametrize("state, text", [
    ("PENDING", "pending"),
    ("RUNNING", "running"),
    ("CANCELLED", "cancelled"),
    ("CANCELLED_AND_NOTIFIED", "cancelled"),
])
def test_repr_unfinished(cf, state, text):
    f = make(cf, state)
    assert re.fullmatch(REPR_RE.format(name="Future", state=text), repr(f))
    assert f"{id(f):#x}" in repr(f)


def test_repr_finished_returned(cf):
    f = make(cf, "FINISHED", 42)
    assert re.fullmatch(r"<Future at 0x[0-9a-f]+ state=finished returned int>", repr(f))
    g = make(cf, "FINISHED", None)
    assert re.fullmatch(r"<Future at 0x[0-9a-f]+ state=finished returned NoneType>", repr(g))


def test_repr_finished_raised(cf):
    f = make(cf, "RAISED", OSError("x"))
    assert re.fullmatch(r"<Future at 0x[0-9a-f]+ state=finished raised OSError>", repr(f))


def test_repr_of_subclass_uses_subclass_name(cf):
    class MyFuture(cf.Future):
        pass
    f = MyFuture()
    assert re.fullmatch(REPR_RE.format(name="MyFuture", state="pending"), repr(f))
    f.set_result("s")
    assert re.fullmatch(r"<MyFuture at 0x[0-9a-f]+ state=finished returned str>", repr(f))


def test_subclass_behaves_like_future(cf):
    class MyFuture(cf.Future):
        def __init__(self):
            super().__init__()
            self.extra = 1
    f = MyFuture()
    seen = []
    f.add_done_callback(seen.append)
    f.set_result(5)
    assert f.result(timeout=0) == 5
    assert seen == [f]
    assert f.extra == 1
    assert cf.wait([f], timeout=0).done == {f}


# -- result()/exception() timeouts and cross-thread completion ------------------

@pytest.mark.parametrize("state", ["PENDING", "RUNNING", "CANCELLED"])
@pytest.mark.parametrize("timeout", [0, 0.01])
def test_result_timeout(cf, state, timeout):
    f = make(cf, state)
    if state == "CANCELLED":
        with pytest.raises(cf.CancelledError):
            f.result(timeout=timeout)
        return
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=timeout)
    with pytest.raises(cf.TimeoutError):
        f.exception(timeout)
    assert not f.done()


def test_timeout_error_is_builtin(cf):
    f = cf.Future()
    if sys.version_info >= (3, 11):
        with pytest.raises(TimeoutError):
            f.result(timeout=0)
    else:
        with pytest.raises(cf.TimeoutError):
            f.result(timeout=0)


def test_negative_timeout_is_like_zero(cf):
    f = cf.Future()
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=-1)
    f.set_result(1)
    assert f.result(timeout=-1) == 1


def test_result_positional_timeout(cf):
    f = make(cf, "FINISHED", "x")
    assert f.result(0) == "x"
    assert f.exception(0) is None


def test_set_result_from_other_thread_wakes_result(cf):
    f = cf.Future()
    t = later(0.05, f.set_result, "value")
    assert f.result(timeout=TIMEOUT) == "value"
    join_all([t])


def test_set_exception_from_other_thread_wakes_result(cf):
    f = cf.Future()
    exc = ZeroDivisionError()
    t = later(0.05, f.set_exception, exc)
    with pytest.raises(ZeroDivisionError):
        f.result(timeout=TIMEOUT)
    assert f.exception(timeout=0) is exc
    join_all([t])


def test_set_exception_from_other_thread_wakes_exception(cf):
    f = cf.Future()
    exc = ZeroDivisionError()
    t = later(0.05, f.set_exception, exc)
    assert f.exception(timeout=TIMEOUT) is exc
    join_all([t])


def test_many_result_waiters_all_woken(cf):
    f = cf.Future()
    got = []
    lock = threading.Lock()

    def waiter():
        r = f.result(timeout=TIMEOUT)
        with lock:
            got.append(r)

    threads = [start_thread(waiter) for _ in range(8)]
    time.sleep(0.02)
    f.set_result(7)
    join_all(threads)
    assert got == [7] * 8


def test_running_future_waiter_woken_by_result(cf):
    f = make(cf, "RUNNING")
    t = later(0.05, f.set_result, 3)
    assert f.exception(timeout=TIMEOUT) is None
    assert f.result(timeout=0) == 3
    join_all([t])


# -- callbacks ---------------------------------------------------------------

def test_callback_called_on_set_result_in_setter_thread(cf):
    f = cf.Future()
    calls = []
    f.add_done_callback(lambda fut: calls.append((fut, fut.result(timeout=0),
                                                  threading.get_ident())))
    assert calls == []

    setter_ident = []

    def setter():
        setter_ident.append(threading.get_ident())
        f.set_result(10)

    t = start_thread(setter)
    join_all([t])
    assert calls == [(f, 10, setter_ident[0])]


def test_callback_called_on_set_exception(cf):
    f = cf.Future()
    calls = []
    f.add_done_callback(lambda fut: calls.append(fut.exception(timeout=0)))
    exc = ValueError()
    f.set_exception(exc)
    assert calls == [exc]


def test_callback_called_on_cancel(cf):
    f = cf.Future()
    calls = []
    f.add_done_callback(lambda fut: calls.append((fut, fut.cancelled(),
                                                  threading.get_ident())))
    assert f.cancel() is True
    assert calls == [(f, True, threading.get_ident())]
    # Neither a second cancel nor the notification runs callbacks again.
    assert f.cancel() is True
    assert f.set_running_or_notify_cancel() is False
    assert len(calls) == 1


def test_callback_not_called_on_failed_cancel_or_running(cf):
    f = cf.Future()
    calls = []
    f.add_done_callback(calls.append)
    f.set_running_or_notify_cancel()
    assert calls == []
    assert f.cancel() is False
    assert calls == []
    f.set_result(1)
    assert calls == [f]


@pytest.mark.parametrize("state", ["CANCELLED", "CANCELLED_AND_NOTIFIED",
                                   "FINISHED", "RAISED"])
def test_callback_on_done_future_runs_immediately_in_caller(cf, state):
    f = make(cf, state)
    calls = []
    f.add_done_callback(lambda fut: calls.append((fut, threading.get_ident())))
    assert calls == [(f, threading.get_ident())]


def test_callbacks_called_in_registration_order(cf):
    f = cf.Future()
    order = []
    for i in range(10):
        f.add_done_callback(lambda fut, i=i: order.append(i))
    f.set_result(None)
    assert order == list(range(10))


def test_same_callback_twice_runs_twice(cf):
    f = cf.Future()
    calls = []
    f.add_done_callback(calls.append)
    f.add_done_callback(calls.append)
    f.set_result(None)
    assert calls == [f, f]


def test_callback_adding_callback_runs_it_once(cf):
    f = cf.Future()
    calls = []

    def inner(fut):
        calls.append("inner")

    def outer(fut):
        calls.append("outer")
        fut.add_done_callback(inner)

    f.add_done_callback(outer)
    f.set_result(1)
    assert calls == ["outer", "inner"]


def test_callback_sees_done_state(cf):
    f = cf.Future()
    seen = []
    f.add_done_callback(lambda fut: seen.append((fut.done(), fut.running(),
                                                 fut.result(timeout=0))))
    f.set_running_or_notify_cancel()
    f.set_result("r")
    assert seen == [(True, False, "r")]


def _callback_records(caplog):
    return [r for r in caplog.records
            if r.name == "concurrent.futures"
            and r.getMessage().startswith("exception calling callback for")]


@pytest.mark.parametrize("path", ["set_result", "set_exception", "cancel", "already_done"])
def test_callback_exception_logged_and_swallowed(cf, caplog, path):
    f = cf.Future()
    calls = []

    def bad(fut):
        calls.append("bad")
        raise ZeroDivisionError("in callback")

    def good(fut):
        calls.append("good")

    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        if path == "already_done":
            f.set_result(1)
            f.add_done_callback(bad)
            f.add_done_callback(good)
        else:
            f.add_done_callback(bad)
            f.add_done_callback(good)
            if path == "set_result":
                f.set_result(1)
            elif path == "set_exception":
                f.set_exception(ValueError())
            else:
                assert f.cancel() is True
    assert calls == ["bad", "good"]
    records = _callback_records(caplog)
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"exception calling callback for {f!r}"
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_callback_exception_from_worker_thread_logged(cf, caplog):
    f = cf.Future()
    f.add_done_callback(lambda fut: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        join_all([start_thread(f.set_result, 1)])
    assert len(_callback_records(caplog)) == 1
    assert f.result(timeout=0) == 1


def test_callback_base_exception_propagates_from_set_result(cf):
    f = cf.Future()

    def cb(fut):
        raise CustomBaseException()

    f.add_done_callback(cb)
    with pytest.raises(CustomBaseException):
        f.set_result(1)
    # The state change happened before callbacks ran.
    assert f.done()
    assert f.result(timeout=0) == 1


def test_callback_base_exception_propagates_from_cancel(cf):
    f = cf.Future()
    def cb(fut):
        raise CustomBaseException()

    f.add_done_callback(cb)
    with pytest.raises(CustomBaseException):
        f.cancel()
    assert f.cancelled()


def test_callback_base_exception_propagates_when_already_done(cf):
    f = make(cf, "FINISHED", 1)

    def cb(fut):
        raise CustomBaseException()

    with pytest.raises(CustomBaseException):
        f.add_done_callback(cb)


def test_callbacks_released_after_completion(cf):
    # Once the future is gone, nothing else may keep its callbacks alive.
    f = cf.Future()

    class Callback:
        def __call__(self, fut):
            pass

    cb = Callback()
    ref = weakref.ref(cb)
    f.add_done_callback(cb)
    del cb
    f.set_result(None)
    del f
    gc.collect()
    assert ref() is None


def test_future_is_garbage_collected(cf):
    f = cf.Future()
    f.add_done_callback(lambda fut: None)
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None


def test_class_getitem(cf):
    alias = cf.Future[int]
    assert alias.__origin__ is cf.Future
    assert alias.__args__ == (int,)


# -- unusual but legal inputs -----------------------------------------------------

def test_set_exception_with_exception_class(cf):
    # The stdlib stores whatever it is given; raising a class instantiates it.
    f = cf.Future()
    f.set_exception(ValueError)
    assert f.exception(timeout=0) is ValueError
    with pytest.raises(ValueError):
        f.result(timeout=0)


def test_set_exception_cancelled_error_is_not_cancellation(cf):
    f = cf.Future()
    f.set_exception(cf.CancelledError())
    assert f.done()
    assert not f.cancelled()
    assert isinstance(f.exception(timeout=0), cf.CancelledError)
    with pytest.raises(cf.CancelledError):
        f.result(timeout=0)
    assert cf.wait([f], timeout=0).done == {f}


def test_non_callable_callback_is_logged_not_raised(cf, caplog):
    f = cf.Future()
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        f.add_done_callback(42)   # accepted: the stdlib does not check
        f.set_result(1)
        f.add_done_callback("also not callable")
    records = _callback_records(caplog)
    assert len(records) == 2
    assert all(r.exc_info[0] is TypeError for r in records)


def test_futures_hash_and_compare_by_identity(cf):
    a, b = cf.Future(), cf.Future()
    assert a != b
    assert a == a
    assert len({a, b, a}) == 2
    h = hash(a)
    a.set_result(1)
    assert hash(a) == h


# -- _get_snapshot() (3.15: how asyncio copies a concurrent future) -----------

# Before 3.15 the stdlib's Future has no _get_snapshot().
snapshot_differs = (pytest.mark.stdlib_differs if sys.version_info < (3, 15)
                    else (lambda test: test))


@snapshot_differs
@pytest.mark.parametrize("state, snapshot", [
    ("PENDING", (False, False, None, None)),
    ("RUNNING", (False, False, None, None)),
    ("CANCELLED", (True, True, None, None)),
    ("CANCELLED_AND_NOTIFIED", (True, True, None, None)),
    ("FINISHED", (True, False, 42, None)),
])
def test_get_snapshot(cf, state, snapshot):
    assert make(cf, state, 42)._get_snapshot() == snapshot


@snapshot_differs
def test_get_snapshot_of_a_raised_future(cf):
    error = ValueError("boom")
    done, cancelled, result, exception = make(cf, "RAISED", error)._get_snapshot()
    assert (done, cancelled, result) == (True, False, None)
    assert exception is error


@snapshot_differs
def test_get_snapshot_is_never_half_done(cf):
    """Taken while another thread completes the future: either not done or
    the whole outcome, never done without its result."""
    for _ in range(50):
        f = cf.Future()
        seen = []

        def watch():
            while True:
                snapshot = f._get_snapshot()
                seen.append(snapshot)
                if snapshot[0]:
                    return
        thread = start_thread(watch)
        f.set_result("value")
        join_all([thread])
        assert set(seen) <= {(False, False, None, None), (True, False, "value", None)}
        assert seen[-1] == (True, False, "value", None)
