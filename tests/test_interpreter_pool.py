"""Python 3.14: InterpreterPoolExecutor, worker contexts (prepare_context,
**ctxkwargs), and fastfutures imported inside a subinterpreter."""
import os
import sys
import threading

import pytest

from conftest import TIMEOUT, check_adds_up

pytestmark = [
    pytest.mark.usefixtures("no_leaked_threads"),
    pytest.mark.skipif(sys.version_info < (3, 14), reason="Python 3.14+ API"),
]


def interpreters_or_skip():
    return pytest.importorskip("concurrent.interpreters")


TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def interpreter_pool(cf, max_workers=1, **kwargs):
    """An InterpreterPoolExecutor whose interpreters can import this module.

    Functions are sent to a worker interpreter by reference; its sys.path
    comes from the process's start-up configuration, without the directory
    pytest added.
    """
    interpreters_or_skip()
    kwargs.setdefault("initializer", exec)
    kwargs.setdefault("initargs", (f"import sys; sys.path.insert(0, {TESTS_DIR!r})",))
    return cf.InterpreterPoolExecutor(max_workers=max_workers, **kwargs)


def square(x):
    return x * x


def fail(message):
    raise ValueError(message)


# -- worker contexts (ThreadPoolExecutor.prepare_context, **ctxkwargs) -----

class CountingContext:
    """A worker context that runs calls itself and counts them."""

    def __init__(self, log, tag):
        self.log = log
        self.tag = tag

    def initialize(self):
        self.log.append(("initialize", self.tag))

    def finalize(self):
        self.log.append(("finalize", self.tag))

    def run(self, task):
        fn, args, kwargs = task
        self.log.append(("run", self.tag))
        return fn(*args, **kwargs)


def counting_pool(cf):
    class CountingPool(cf.ThreadPoolExecutor):
        @classmethod
        def prepare_context(cls, initializer, initargs, *, log, tag="ctx"):
            def create_context():
                return CountingContext(log, tag)

            def resolve_task(fn, args, kwargs):
                if not callable(fn):
                    raise TypeError("not a callable: %r" % (fn,))
                return fn, args, kwargs
            return create_context, resolve_task
    return CountingPool


def test_prepare_context_runs_every_call_through_the_context(cf):
    log = []
    with counting_pool(cf)(max_workers=1, log=log, tag="t") as ex:
        assert ex.submit(square, 3).result(timeout=TIMEOUT) == 9
        assert list(ex.map(square, [1, 2], timeout=TIMEOUT)) == [1, 4]
    assert log[0] == ("initialize", "t")
    assert log.count(("run", "t")) == 3
    assert log[-1] == ("finalize", "t")


def test_ctxkwargs_go_to_prepare_context(cf):
    with pytest.raises(TypeError):
        cf.ThreadPoolExecutor(max_workers=1, no_such_option=1)
    with pytest.raises(TypeError):
        counting_pool(cf)(max_workers=1)            # log= is required


def test_resolve_task_errors_reach_submit(cf):
    with counting_pool(cf)(max_workers=1, log=[]) as ex:
        with pytest.raises(TypeError, match="not a callable"):
            ex.submit(42)


def test_default_prepare_context_is_the_stdlib_one(cf):
    import concurrent.futures.thread
    create_context, resolve_task = cf.ThreadPoolExecutor.prepare_context(None, ())
    assert resolve_task(square, (2,), {}) == (square, (2,), {})
    assert isinstance(create_context(), concurrent.futures.thread.WorkerContext)


# -- InterpreterPoolExecutor -----------------------------------------------

def test_interpreter_pool_is_the_stdlib_class(cf):
    import concurrent.futures
    import concurrent.futures.interpreter
    with interpreter_pool(cf) as ex:
        assert "InterpreterPoolExecutor" in cf.__all__
        assert isinstance(ex, concurrent.futures.InterpreterPoolExecutor)
        assert isinstance(ex, concurrent.futures.ThreadPoolExecutor)
        future = ex.submit(square, 4)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(timeout=TIMEOUT) == 16
    interpreter = __import__(cf.__name__ + ".interpreter", fromlist=["x"])
    assert interpreter.BrokenInterpreterPool is \
        concurrent.futures.interpreter.BrokenInterpreterPool


def test_interpreter_pool_runs_calls_in_other_interpreters(cf):
    interpreters = interpreters_or_skip()
    main_id = interpreters.get_current().id
    with interpreter_pool(cf, max_workers=2) as ex:
        ids = set(ex.map(_current_interpreter_id, range(6), timeout=TIMEOUT))
        assert main_id not in ids
        assert 1 <= len(ids) <= 2


def _current_interpreter_id(_):
    from concurrent import interpreters
    return interpreters.get_current().id


def test_interpreter_pool_exceptions_and_names(cf):
    with interpreter_pool(cf) as ex:
        future = ex.submit(fail, "boom")
        with pytest.raises(ValueError, match="boom"):
            future.result(timeout=TIMEOUT)
        names = [t.name for t in threading.enumerate()
                 if t.name.startswith("InterpreterPoolExecutor-")]
        assert len(names) == 1 and names[0].endswith("_0")
    with interpreter_pool(cf, thread_name_prefix="ipe") as ex:
        ex.submit(square, 1).result(timeout=TIMEOUT)
        assert any(t.name == "ipe_0" for t in threading.enumerate())


def test_interpreter_pool_rejects_scripts(cf):
    interpreters_or_skip()
    with cf.InterpreterPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError, match="scripts not supported"):
            ex.submit("print(1)")


def test_interpreter_pool_initializer_failure_breaks_the_pool(cf):
    interpreters_or_skip()
    import concurrent.futures.interpreter
    broken = concurrent.futures.interpreter.BrokenInterpreterPool
    ex = interpreter_pool(cf, initargs=("raise ValueError('init')",))
    try:
        future = ex.submit(square, 2)
        with pytest.raises(broken):
            future.result(timeout=TIMEOUT)
        with pytest.raises(broken):
            ex.submit(square, 2)
    finally:
        ex.shutdown(wait=True)


@pytest.mark.stdlib_differs(reason="stats() is fastfutures only")
def test_interpreter_pool_stats(cf):
    # The interpreter pool's calls run through its worker context
    # (resolve_task, context.run): counted as the thread pool's are.
    with interpreter_pool(cf, max_workers=2) as ex:
        assert ex.submit(square, 3).result(timeout=TIMEOUT) == 9
        with pytest.raises(ValueError):
            ex.submit(fail, "boom").result(timeout=TIMEOUT)
        assert list(ex.map(square, range(5), timeout=TIMEOUT)) == [0, 1, 4, 9, 16]
        s = ex.stats()
    check_adds_up(s)
    assert (s.submitted, s.completed, s.failed, s.queued, s.running) == (7, 6, 1, 0, 0)
    assert s.run_time.count == s.queue_wait.count == 7
    assert 1 <= s.workers <= s.max_workers == 2


def test_interpreter_pool_after_shutdown(cf):
    interpreters_or_skip()
    ex = cf.InterpreterPoolExecutor(max_workers=1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(square, 1)


# -- fastfutures inside a subinterpreter -----------------------------------

SUBINTERPRETER_SCRIPT = """
import fastfutures, concurrent.futures
assert fastfutures.COMPILED is False
assert fastfutures.ThreadPoolExecutor is concurrent.futures.ThreadPoolExecutor
import fastfutures.thread, fastfutures.process
assert fastfutures.thread.BrokenThreadPool is concurrent.futures.thread.BrokenThreadPool
with fastfutures.ThreadPoolExecutor(2) as ex:
    assert list(ex.map(abs, [-1, -2])) == [1, 2]
    done, _ = fastfutures.wait([ex.submit(abs, -3)], timeout=10)
    assert [f.result() for f in done] == [3]
"""


def test_fastfutures_imports_in_a_subinterpreter():
    # The compiled modules cannot be loaded in a subinterpreter (they keep
    # state in C globals); there fastfutures is the stdlib itself.
    interpreters = interpreters_or_skip()
    import fastfutures
    assert fastfutures.COMPILED is True
    interp = interpreters.create()
    try:
        interp.exec(SUBINTERPRETER_SCRIPT)
    finally:
        interp.close()


def test_fastfutures_in_interpreter_pool_workers(cf):
    # What users run in InterpreterPoolExecutor may itself import fastfutures.
    with interpreter_pool(cf) as ex:
        assert ex.submit(_use_fastfutures_inside, 5).result(timeout=TIMEOUT) == (False, 25)


def _use_fastfutures_inside(x):
    import fastfutures
    with fastfutures.ThreadPoolExecutor(1) as ex:
        return fastfutures.COMPILED, ex.submit(square, x).result()
