"""Every program in examples/ runs, with short inputs, so that the docs that
include them cannot rot (docs/ shows these files, not copies of them).

The examples are fastfutures programs, not behaviour tests: each runs as
its users would run it (a fresh interpreter, `python examples/x.py`), on
127.0.0.1 only.
"""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, timeout=180):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_every_example_has_a_test():
    tested = {"crawler.py", "process_pool.py", "asyncio_service.py", "dask_cluster.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_crawler():
    out = run_example("crawler.py", "--pages", "6")
    assert "6 pages, 2100 bytes in all" in out
    assert "/missing' generated an exception: HTTP Error 404" in out
    assert "first answer:" in out and "page 5 within 1 ms:" in out


@pytest.mark.skipif(sys.platform == "win32", reason="signals and os._exit in workers")
def test_process_pool():
    pytest.importorskip("numpy")
    out = run_example("process_pool.py", "--quick")
    assert "primes below 20000: 2262" in out
    assert "exceeded its time limit of 0.2 s" in out
    assert "results around the time limit: (9, 25)" in out
    assert "cancelled while running: True" in out and "after the cancel: 49" in out
    assert "exit code 3" in out and "signal 9" in out
    assert "after two deaths: [0, 1, 4, 9]" in out


def test_asyncio_service():
    out = run_example("asyncio_service.py", "--clients", "3", "--requests", "4")
    assert "asyncio: 12 requests answered, default executor from fastfutures" in out
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return
    assert "uvloop: 12 requests answered" in out


def test_dask_cluster():
    pytest.importorskip("distributed", reason="DaskExecutor needs dask[distributed]")
    out = run_example("dask_cluster.py", "--items", "5000")
    assert "sum of 5000 scores: 262086206" in out
    assert "item 3 failed: ValueError('no threes') (remote traceback: True)" in out
