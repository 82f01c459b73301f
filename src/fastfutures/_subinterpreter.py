"""fastfutures inside an interpreter other than the main one.

The compiled modules keep Python objects and tuning in C globals (the Future
type and its allocator on the hot path, the interpreter-shutdown flag), so
they are built without per-interpreter module state, and CPython refuses to
load them in a subinterpreter.  There fastfutures falls back to the stdlib
itself (``fastfutures.COMPILED`` is False): same API, same semantics, the
stdlib's speed.
"""
import sys


def in_subinterpreter():
    try:
        import _interpreters                    # 3.13+
    except ImportError:
        try:
            import _xxsubinterpreters as _interpreters  # 3.12
        except ImportError:
            return False
    current, main = _interpreters.get_current(), _interpreters.get_main()
    # 3.14 returns (id, whence) pairs, earlier versions the id.
    if isinstance(current, tuple):
        current, main = current[0], main[0]
    return current != main


def use_stdlib(package):
    """Make package.thread/.process/.interpreter the stdlib's modules."""
    import importlib
    for name in ("thread", "process", "interpreter"):
        try:
            module = importlib.import_module("concurrent.futures." + name)
        except ImportError:         # interpreter: 3.14+ only
            continue
        sys.modules[package + "." + name] = module
        setattr(sys.modules[package], name, module)
