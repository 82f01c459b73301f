"""`python -m fastfutures --json PATH` and `--plot PATH`: a run saved to a
file says when, where and against what it ran; its speed-ups are drawn
right after the run, or later from the saved file."""
import json
import subprocess
import sys

import pytest


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "fastfutures", *args],
                          capture_output=True, text=True, timeout=timeout)


def saved_run(path):
    """A small run saved by --json (no matplotlib needed)."""
    proc = run_cli("--quick", "--only", "thread.future_cycle,memory", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "thread.future_cycle" in proc.stdout      # the table is still printed
    with open(path, encoding="utf-8") as saved:
        return json.load(saved)


def test_json_to_a_file_records_date_machine_and_versions(tmp_path):
    run = saved_run(tmp_path / "run.json")
    assert run["date"][:2] == "20" and "T" in run["date"]
    assert run["python"].startswith("CPython") and run["cpu_count"] >= 1
    assert "cpu" in run and "platform" in run and "load_average" in run
    assert set(run["libraries"]) >= {"loky", "anyio", "uvloop", "dask", "distributed"}
    ids = [entry["id"] for entry in run["results"]]
    assert ids == ["thread.future_cycle", "memory.pending_future", "memory.pending_task"]
    assert run["results"][0]["ratio_vs_stdlib"]["fastfutures"] > 0


def test_plot_after_a_run_and_from_a_saved_one(tmp_path):
    pytest.importorskip("matplotlib")
    proc = run_cli("--quick", "--only", "thread.future_cycle", "--plot",
                   str(tmp_path / "run.png"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run = saved_run(tmp_path / "run.json")
    proc = run_cli("--plot", str(tmp_path / "run.svg"), "--from-json", str(tmp_path / "run.json"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""                         # nothing ran
    svg = (tmp_path / "run.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    # Machine, Python and date are on the chart (text kept as text in the SVG).
    for text in (run["date"][:10], run["python"], "%s CPUs" % run["cpu_count"]):
        assert text in svg


def test_plot_arguments_are_checked_before_running(tmp_path):
    proc = run_cli("--plot", str(tmp_path / "chart.txt"))
    assert proc.returncode == 2 and ".png, .svg, .pdf" in proc.stderr
    proc = run_cli("--from-json", str(tmp_path / "run.json"))
    assert proc.returncode == 2 and "--from-json needs --plot" in proc.stderr


def test_plot_without_matplotlib_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None;"
            " from fastfutures.bench.report import main;"
            " sys.exit(main(['--quick', '--plot', %r]))" % str(tmp_path / "run.png"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "pip install 'fastfutures[plot]'" in proc.stderr
    assert not (tmp_path / "run.png").exists()
