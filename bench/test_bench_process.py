"""Process pool benchmarks: stdlib vs fastfutures (vs loky when installed).

Run: ``PYTHONPATH=src python -m pytest bench/test_bench_process.py --benchmark-only``
(pytest-benchmark).  2 workers, 'fork', the same workloads as the
``python -m fastfutures`` report:

* 10k no-op submits, then every result;
* map() over 200k items with chunksize=256;
* one submit -> result round trip;
* 32 results of 16 MiB each (bytes; and the zero-copy variant returning views).
"""
import concurrent.futures
import multiprocessing

import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")

MiB = 1 << 20


def noop():
    return None


def identity(x):
    return x


def make_bytes(n):
    return b"\0" * n


def _pool_factories():
    import fastfutures.process
    ctx = multiprocessing.get_context("fork")
    factories = {
        "stdlib": lambda: concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx),
        "fastfutures": lambda: fastfutures.process.ProcessPoolExecutor(2, mp_context=ctx),
        "fastfutures-zero-copy": lambda: fastfutures.process.ProcessPoolExecutor(
            2, mp_context=ctx, zero_copy_results=True),
    }
    try:
        import loky
    except ImportError:
        pass
    else:
        factories["loky"] = lambda: loky.ProcessPoolExecutor(2)
    return factories


FACTORIES = _pool_factories()


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def pool(request):
    executor = FACTORIES[request.param]()
    list(executor.map(identity, range(64)))         # workers up and warm
    executor.name = request.param
    yield executor
    executor.shutdown(wait=True)


def test_noop_submits_10k(benchmark, pool):
    def run():
        futures = [pool.submit(noop) for _ in range(10_000)]
        for future in futures:
            future.result()
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


def test_map_200k_chunksize_256(benchmark, pool):
    items = range(200_000)
    benchmark.pedantic(lambda: list(pool.map(identity, items, chunksize=256)),
                       rounds=3, iterations=1, warmup_rounds=1)


def test_round_trip(benchmark, pool):
    benchmark.pedantic(lambda: pool.submit(noop).result(), rounds=2000, iterations=1,
                       warmup_rounds=50)


def test_results_32_x_16mib(benchmark, pool):
    def run():
        results = [f.result() for f in [pool.submit(make_bytes, 16 * MiB) for _ in range(32)]]
        assert len(results[-1]) == 16 * MiB
    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=1)
