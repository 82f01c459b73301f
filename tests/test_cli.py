"""`python -m fastfutures`: the side-by-side report runs and says what it measured."""
import json
import subprocess
import sys

import pytest


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "fastfutures", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_quick_json_report_has_both_columns():
    proc = run_cli("--quick", "--json", "--only", "future_cycle,memory")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    text = json.dumps(report)
    assert "future_cycle" in text and "pending_future" in text
    assert "stdlib" in text and "fastfutures" in text


def test_table_reports_compiled_core():
    proc = run_cli("--quick", "--only", "thread.round_trip")
    assert proc.returncode == 0, proc.stderr
    assert "compiled core loaded" in proc.stdout
    assert "thread.round_trip" in proc.stdout


def test_list_and_bad_option():
    proc = run_cli("--list")
    assert proc.returncode == 0 and "thread.map" in proc.stdout
    proc = run_cli("--only", "no-such-workload")
    assert proc.returncode != 0


@pytest.mark.skipif(sys.platform == "win32", reason="fork-based process workloads")
def test_quick_process_workload():
    proc = run_cli("--quick", "--only", "process.round_trip", "--impl", "stdlib,fastfutures")
    assert proc.returncode == 0, proc.stderr
    assert "process.round_trip" in proc.stdout


def test_table_takes_ratios_against_each_workloads_baseline():
    # The distributed group compares with dask's executor, not the stdlib;
    # columns of implementations that ran nothing are left out.
    from fastfutures.bench import report, workloads
    from fastfutures.bench.workloads import Measurement, Timed

    def result(workload, seconds):
        return {"workload": workload, "size": 10, "errors": {},
                "samples": {name: [Measurement(value, 10)] for name, value in seconds.items()}}
    thread = Timed("thread", "x", "", None, unit="op", size=10, quick_size=10, target=2)
    dask = Timed("distributed", "y", "", None, unit="item", size=10, quick_size=10, target=20,
                 baseline="dask.executor")
    impls = [workloads.implementation(name) for name in
             ("stdlib", "fastfutures", "loky", "dask.executor", "dask.client")]
    text = report.table([result(dask, {"fastfutures": 1.0, "dask.executor": 40.0,
                                       "dask.client": 10.0})], impls, "best")
    head, _, _, row = text.splitlines()
    assert "stdlib" not in head and "loky" not in head
    assert "vs dask.executor" in text
    assert "40.0" in row and "4.00" in row        # fastfutures 40x, dask.client 4x
    text = report.table([result(thread, {"stdlib": 3.0, "fastfutures": 1.0}),
                         result(dask, {"fastfutures": 1.0, "dask.executor": 40.0})],
                        impls, "best")
    assert "vs baseline" in text and "3.00" in text and "40.0" in text
