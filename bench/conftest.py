"""pytest-benchmark over the workloads of ``fastfutures.bench.workloads``.

Run: ``python -m pytest bench/ --benchmark-group-by=group`` (add
``--bench-quick`` for the smoke sizes of ``python -m fastfutures --quick``).

A test module marked ``pytest.mark.workloads(GROUP)`` is run once per
(workload of that group, implementation) pair: every workload is a benchmark
group, so each group lists stdlib, fastfutures (and loky for the process pool,
when installed) side by side.  pytest-benchmark's times are per round, a round
being the workload's whole size (100k submits, ...); the table printed at the
end of the session divides by the size and shows the ratios and the issue's
targets, formatted by the same code as ``python -m fastfutures``.

bench/ is outside the default test run (pyproject: testpaths = ["tests"]).
"""
import pytest

from fastfutures.bench import report, workloads
from fastfutures.bench.workloads import IMPLEMENTATIONS

# workload id -> the result record report.table() reads
_RESULTS = {}


def pytest_addoption(parser):
    parser.addoption("--bench-quick", action="store_true",
                     help="use the workloads' quick (smoke-run) sizes")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "workloads(group): run the test for every workload of the group"
                   " and every installed implementation")


def pytest_report_header(config):
    env = report.environment()
    missing = [impl.name for impl in IMPLEMENTATIONS if not impl.available()]
    return [report.header(env, repeat=1, quick=config.getoption("bench_quick"),
                          stat="best").splitlines()[1],
            "not installed (column left out): %s" % (", ".join(missing) or "none")]


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("workloads")
    if marker is None:
        return
    params = [
        pytest.param(workload, impl, id="%s-%s" % (workload.name, impl.name),
                     marks=pytest.mark.benchmark(group=workload.id))
        for workload in workloads.select(marker.args)
        for impl in IMPLEMENTATIONS
        if impl.runs(workload) and impl.available()
    ]
    metafunc.parametrize(("workload", "impl"), params)


@pytest.fixture
def size(request, workload):
    return workload.size_for(request.config.getoption("bench_quick"))


@pytest.fixture
def record(workload, size):
    """record(impl, measurements): keep them for the end-of-session table."""
    def record(impl, measurements):
        result = _RESULTS.setdefault(workload.id, {
            "workload": workload, "size": size, "samples": {}, "errors": {}})
        result["samples"].setdefault(impl.name, []).extend(measurements)
    return record


@pytest.fixture
def run_timed(benchmark, workload, impl, size, record):
    """Time the workload's run with pytest-benchmark, set up as the report does."""
    def run_timed():
        ops = workload.impl_size(impl, size)
        with workload.prepare(impl, ops) as run:
            benchmark.extra_info.update(ops=ops, unit=workload.unit)
            benchmark.pedantic(run, setup=workloads.settle, rounds=workload.rounds,
                               warmup_rounds=1, iterations=1)
        if benchmark.stats is not None:         # None under --benchmark-disable
            record(impl, [workloads.Measurement(seconds, workload.ops_for(ops))
                          for seconds in benchmark.stats.stats.data])
    return run_timed


@pytest.hookimpl(trylast=True)      # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    order = {workload.id: i for i, workload in enumerate(workloads.WORKLOADS)}
    results = sorted(_RESULTS.values(), key=lambda r: order[r["workload"].id])
    names = {name for result in results for name in result["samples"]}
    impls = [impl for impl in IMPLEMENTATIONS if impl.name in names]
    terminalreporter.write_sep("-", "per operation, best round (fastfutures.bench.report)")
    for line in report.table(results, impls, "best").splitlines():
        terminalreporter.write_line(line)
