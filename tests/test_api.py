"""The public surface: names, exception identity, isinstance compatibility."""
import concurrent.futures
import concurrent.futures.process
import concurrent.futures.thread
import importlib
import inspect
import sys
import types

import pytest

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

PUBLIC_NAMES = [
    "Future", "Executor", "ThreadPoolExecutor", "ProcessPoolExecutor",
    "wait", "as_completed",
    "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED",
    "CancelledError", "TimeoutError", "InvalidStateError", "BrokenExecutor",
]
EXCEPTIONS = ["CancelledError", "TimeoutError", "InvalidStateError", "BrokenExecutor"]


def fastfutures():
    return importlib.import_module("fastfutures")


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_exists(cf, name):
    assert hasattr(cf, name)


def test_submodules(cf):
    thread = importlib.import_module(cf.__name__ + ".thread")
    process = importlib.import_module(cf.__name__ + ".process")
    assert thread.ThreadPoolExecutor is cf.ThreadPoolExecutor
    assert process.ProcessPoolExecutor is cf.ProcessPoolExecutor
    assert issubclass(thread.BrokenThreadPool, cf.BrokenExecutor)
    assert issubclass(process.BrokenProcessPool, cf.BrokenExecutor)


def test_return_when_constants(cf):
    assert cf.FIRST_COMPLETED == "FIRST_COMPLETED"
    assert cf.FIRST_EXCEPTION == "FIRST_EXCEPTION"
    assert cf.ALL_COMPLETED == "ALL_COMPLETED"


def test_timeout_error_is_builtin_on_311(cf):
    if sys.version_info >= (3, 11):
        assert cf.TimeoutError is TimeoutError
    else:
        assert issubclass(cf.TimeoutError, Exception)


def test_exception_hierarchy(cf):
    assert issubclass(cf.BrokenExecutor, RuntimeError)
    assert issubclass(cf.InvalidStateError, Exception)
    assert issubclass(cf.CancelledError, Exception)


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_fastfutures_exceptions_are_the_stdlib_classes(name):
    assert getattr(fastfutures(), name) is getattr(concurrent.futures, name)


def test_fastfutures_broken_pool_exceptions_are_the_stdlib_classes():
    thread = importlib.import_module("fastfutures.thread")
    process = importlib.import_module("fastfutures.process")
    assert thread.BrokenThreadPool is concurrent.futures.thread.BrokenThreadPool
    assert process.BrokenProcessPool is concurrent.futures.process.BrokenProcessPool


def test_fastfutures_return_when_constants_equal_stdlib():
    ff = fastfutures()
    for name in ("FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"):
        assert getattr(ff, name) == getattr(concurrent.futures, name)


def test_fastfutures_future_isinstance_of_stdlib_future():
    f = fastfutures().Future()
    assert isinstance(f, concurrent.futures.Future)


def test_fastfutures_thread_pool_isinstance_of_stdlib():
    ff = fastfutures()
    ex = ff.ThreadPoolExecutor(max_workers=1)
    try:
        assert isinstance(ex, concurrent.futures.ThreadPoolExecutor)
        assert isinstance(ex, concurrent.futures.Executor)
        assert isinstance(ex, ff.Executor)
    finally:
        ex.shutdown()


def test_submitted_future_isinstance(cf):
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        f = ex.submit(abs, -1)
        assert isinstance(f, cf.Future)
        assert isinstance(f, concurrent.futures.Future)
        assert f.result(timeout=10) == 1


def test_fastfutures_all_matches_stdlib():
    ff = fastfutures()
    assert list(ff.__all__) == list(concurrent.futures.__all__)
    for name in ff.__all__:
        assert hasattr(ff, name), name


def test_star_import(cf):
    namespace = {}
    exec(f"from {cf.__name__} import *", namespace)
    for name in ("Future", "wait", "as_completed", "ThreadPoolExecutor",
                 "ProcessPoolExecutor", "CancelledError", "TimeoutError"):
        assert name in namespace


def test_future_generic_alias(cf):
    alias = cf.Future[int]
    assert isinstance(alias, types.GenericAlias)
    assert alias.__origin__ is cf.Future
    assert alias.__args__ == (int,)
    assert repr(alias).endswith("Future[int]")


def test_future_subclassable(cf):
    class MyFuture(cf.Future):
        pass

    f = MyFuture()
    f.set_result(1)
    assert f.result(timeout=0) == 1
    assert isinstance(f, concurrent.futures.Future)


def test_future_public_methods(cf):
    f = cf.Future()
    for name in ("cancel", "cancelled", "running", "done", "result", "exception",
                 "add_done_callback", "set_running_or_notify_cancel",
                 "set_result", "set_exception"):
        assert callable(getattr(f, name)), name


def test_future_keyword_arguments(cf):
    f = cf.Future()
    f.set_result(result=3)
    assert f.result(timeout=0) == 3
    assert f.exception(timeout=0) is None
    g = cf.Future()
    g.set_exception(exception=ValueError())
    assert isinstance(g.exception(timeout=None), ValueError)
    h = cf.Future()
    h.add_done_callback(fn=lambda fut: None)


def test_future_not_an_asyncio_future(cf):
    # asyncio treats anything with _asyncio_future_blocking as its own future.
    assert not hasattr(cf.Future(), "_asyncio_future_blocking")


def test_wait_signature(cf):
    f = cf.Future()
    f.set_result(1)
    done, _ = cf.wait(fs=[f], timeout=None, return_when=cf.ALL_COMPLETED)
    assert done == {f}
    assert list(cf.as_completed(fs=[f], timeout=None)) == [f]


def test_executor_base_class(cf):
    ex = cf.Executor()
    with pytest.raises(NotImplementedError):
        ex.submit(abs, 1)
    with pytest.raises(NotImplementedError):
        ex.map(abs, [1])
    assert list(ex.map(abs, [])) == []
    ex.shutdown()
    ex.shutdown(wait=False, cancel_futures=True)
    with ex as entered:
        assert entered is ex


def test_executor_subclass_gets_map(cf):
    # A user executor that only implements submit() inherits map().
    class Inline(cf.Executor):
        def submit(self, fn, /, *args, **kwargs):
            f = cf.Future()
            try:
                f.set_result(fn(*args, **kwargs))
            except BaseException as e:
                f.set_exception(e)
            return f

    with Inline() as ex:
        assert list(ex.map(pow, [2, 3], [2, 2])) == [4, 9]
        assert list(ex.map(abs, [-1, -2], timeout=10)) == [1, 2]
        it = ex.map(lambda x: 1 // x, [1, 0])
        assert next(it) == 1
        with pytest.raises(ZeroDivisionError):
            next(it)


def test_thread_pool_submit_signature(cf):
    sig = inspect.signature(cf.ThreadPoolExecutor.submit)
    params = list(sig.parameters.values())
    assert [p.name for p in params[:2]] == ["self", "fn"]
    assert params[1].kind is inspect.Parameter.POSITIONAL_ONLY


def test_thread_pool_constructor_signature(cf):
    sig = inspect.signature(cf.ThreadPoolExecutor)
    expected = ["max_workers", "thread_name_prefix", "initializer", "initargs"]
    if cf is not concurrent.futures:
        # fastfutures only, keyword-only: they change no stdlib call.
        expected += ["max_queue_size", "on_queue_full", "queue_full_timeout", "idle_timeout"]
    if sys.version_info >= (3, 14):
        expected.append("ctxkwargs")        # for cls.prepare_context()
    assert list(sig.parameters) == expected
    stdlib = inspect.signature(concurrent.futures.ThreadPoolExecutor)
    assert [p for p in sig.parameters.values() if p.name in stdlib.parameters] == \
        list(stdlib.parameters.values())
    for name in set(sig.parameters) - set(stdlib.parameters):
        assert sig.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert sig.parameters[name].default is None
