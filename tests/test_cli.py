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
