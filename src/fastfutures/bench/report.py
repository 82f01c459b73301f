"""``python -m fastfutures``: the stdlib and fastfutures side by side, on this machine.

Runs the workloads of workloads.py (the same ones the repository's bench/
runs) for every available implementation in one process, interleaved --
stdlib, fastfutures, stdlib, fastfutures, ... -- so that a slow phase of a
shared machine hits both columns alike, and reports the best (or median)
run of each.
"""
import argparse
import contextlib
import datetime
import faulthandler
import importlib.machinery
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import traceback

from . import plot, workloads
from .workloads import IMPLEMENTATIONS, STDLIB

DEFAULT_REPEAT = 3
DEFAULT_TIMEOUT = 120       # seconds for one measurement; a few at most when healthy


# -- what is running -----------------------------------------------------------

# The distributions behind the compared columns, whose versions a saved run
# records (a chart of an old run must say what it was measured against).
COMPARED_DISTRIBUTIONS = ("loky", "anyio", "uvloop", "dask", "distributed", "numpy")


def library_versions():
    """Installed version of each compared library; None where it is absent."""
    versions = {}
    for name in COMPARED_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model():
    """The processor's model name (Linux's /proc/cpuinfo; elsewhere what
    platform knows, possibly empty)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def environment():
    """When, Python, platform, CPUs, the compared libraries' versions, and
    which fastfutures (compiled or not)."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        # How busy the machine was when the run started (a shared machine
        # inflates every column): the 1-, 5- and 15-minute load averages.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "libraries": library_versions(),
        "fastfutures": None,
        "compiled": None,
        "core_module": None,
    }
    try:
        import fastfutures
        from fastfutures import _future
    except ImportError as exc:
        info["fastfutures"] = "not importable (%s)" % exc
        return info
    info["fastfutures"] = fastfutures.__version__
    info["core_module"] = _future.__file__
    info["compiled"] = _future.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    return info


# -- running ---------------------------------------------------------------------

class Progress:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self, total, stream=sys.stderr):
        self.total = total
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty()

    def step(self, text):
        self.done += 1
        line = "[%*d/%d] %s" % (len(str(self.total)), self.done, self.total, text)
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def run(selected, impls, *, repeat, quick, timeout=None, progress=None):
    """Measure every (workload, implementation) pair ``repeat`` times,
    interleaving implementations within each repetition.  A measurement
    that takes over ``timeout`` seconds dumps all stacks and exits.

    Returns one dict per workload: its description, and per implementation
    the list of Measurements (or the error that stopped it).
    """
    plan = []
    for workload in selected:
        runs_it = [impl for impl in impls if impl.runs(workload)]
        if runs_it:
            # Traced byte counts do not vary from run to run: measure once.
            times = 1 if workload.metric == "bytes" else repeat
            plan.append((workload, runs_it, times))
    if progress is None:
        progress = Progress(sum(len(i) * t for _, i, t in plan))

    results = []
    try:
        for workload, runs_it, times in plan:
            size = workload.size_for(quick)
            samples = {impl.name: [] for impl in runs_it}
            errors = {}
            # One session (a warm pool) per implementation serves every
            # repetition; all are closed before the next workload starts.
            with contextlib.ExitStack() as sessions:
                measurers = {}
                for rep in range(times):
                    for impl in runs_it:
                        progress.step("%s  %s  (run %d/%d)" % (workload.id, impl.name,
                                                                rep + 1, times))
                        if impl.name in errors:
                            continue
                        if timeout:
                            # A hung pool must not hang the report (or a CI
                            # job): print every thread's stack and exit.
                            faulthandler.dump_traceback_later(timeout, exit=True)
                        try:
                            if impl.name not in measurers:
                                measurers[impl.name] = sessions.enter_context(
                                    workload.session(impl, size))
                            samples[impl.name].append(measurers[impl.name]())
                        except Exception as exc:            # report it, go on
                            progress.close()
                            traceback.print_exc()
                            errors[impl.name] = "%s: %s" % (type(exc).__name__, exc)
                        finally:
                            if timeout:
                                faulthandler.cancel_dump_traceback_later()
            results.append({"workload": workload, "size": size,
                            "samples": samples, "errors": errors})
    finally:
        progress.close()
    return results


def per_op(samples, stat):
    values = [m.per_op for m in samples]
    return min(values) if stat == "best" else statistics.median(values)


# -- output ------------------------------------------------------------------------

class Glyphs:
    """Unicode where the output stream can encode it, ASCII otherwise."""

    def __init__(self, stream):
        try:
            "µ×≥≤✓✗".encode(stream.encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            self.micro, self.times, self.ge, self.le, self.yes, self.no = (
                "u", "x", ">=", "<=", "ok", "NO")
        else:
            self.micro, self.times, self.ge, self.le, self.yes, self.no = (
                "µ", "×", "≥", "≤", "✓", "✗")


def _sig3(value):
    if value >= 100:
        return "%.0f" % value
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


def _scaled(value, units):
    """``value`` in the largest of ``units`` ((scale, suffix), ascending) that
    it reaches, 3 significant digits (999.7k is shown as 1.00M)."""
    i = 0
    while i + 1 < len(units) and value >= units[i + 1][0]:
        i += 1
    if _sig3(value / units[i][0]) == "1000" and i + 1 < len(units):
        i += 1
    return _sig3(value / units[i][0]) + units[i][1]


def format_seconds(seconds, g):
    return _scaled(seconds, ((1e-9, " ns"), (1e-6, " %ss" % g.micro), (1e-3, " ms"),
                             (1, " s")))


def format_rate(per_second):
    return _scaled(per_second, ((1, "/s"), (1e3, "k/s"), (1e6, "M/s"), (1e9, "G/s")))


def format_ratio(ratio, g):
    return "%s%s" % (_sig3(ratio), g.times)


def _target(workload, g):
    if workload.target is None:
        return ""
    if workload.metric == "bytes":
        return "%s %d B" % (g.le, workload.target)
    return "%s %d%s" % (g.ge, workload.target, g.times)


def _met(workload, baseline, fastfutures):
    """Whether fastfutures meets the issue's target; None where unknown."""
    if workload.target is None or fastfutures is None:
        return None
    if workload.metric == "bytes":
        return fastfutures <= workload.target
    if baseline is None:
        return None
    return baseline / fastfutures >= workload.target


def table(results, impls, stat, stream=sys.stdout):
    """The results as aligned text: a row per workload, per implementation
    its time per operation (or bytes) and rate, then each ratio against the
    workload's baseline (the stdlib; dask's executor for the distributed
    group) and the issue's target for fastfutures.  Implementations that
    ran none of the workloads get no column."""
    g = Glyphs(stream)
    ran = {name for result in results for name in result["samples"]}
    names = [impl.name for impl in impls if impl.name in ran]
    baselines = list(dict.fromkeys(result["workload"].baseline for result in results))
    challengers = [n for n in names if n not in baselines]
    against = baselines[0] if len(baselines) == 1 else "baseline"
    head1 = ["workload", "per"]
    head2 = ["", ""]
    for name in names:
        head1 += [name, ""]
        head2 += ["time", "rate"]
    for name in challengers:
        head1.append(name if len(challengers) > 1 else "speed-up")
        head2.append("vs %s" % against)
    head1 += ["target", ""]
    head2 += ["", ""]

    rows = []
    for result in results:
        workload = result["workload"]
        row = [workload.id, workload.unit]
        values = {}
        for name in names:
            samples = result["samples"].get(name)
            if name in result["errors"]:
                row += ["error", ""]
            elif not samples:
                row += ["", ""]
            elif workload.metric == "bytes":
                values[name] = per_op(samples, stat)
                row += ["%.0f B" % values[name], ""]
            else:
                values[name] = per_op(samples, stat)
                row += [format_seconds(values[name], g), format_rate(1 / values[name])]
        baseline = workload.baseline
        for name in challengers:
            if name in values and baseline in values and values[name] > 0:
                ratio = values[baseline] / values[name]
                text = format_ratio(ratio, g)
                row.append(text + (" less" if workload.metric == "bytes" else ""))
            else:
                row.append("")
        row.append(_target(workload, g))
        met = _met(workload, values.get(baseline), values.get("fastfutures"))
        row.append("" if met is None else g.yes if met else g.no)
        rows.append(row)

    widths = [max(len(r[i]) for r in [head1, head2] + rows) for i in range(len(head1))]
    # Name columns flush left, numbers flush right, so digits line up.
    left = {0, 1}

    def line(cells):
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.ljust(widths[i]) if i in left else cell.rjust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [line(head1), line(head2)]
    lines.append("-" * max(len(text) for text in lines))
    group = None
    for result, row in zip(results, rows):
        if group is not None and result["workload"].group != group:
            lines.append("")
        group = result["workload"].group
        lines.append(line(row))
    return "\n".join(lines)


def header(env, *, repeat, quick, stat):
    if env["compiled"] is None:
        ff = "fastfutures: %s" % env["fastfutures"]
    else:
        ff = "fastfutures %s, compiled core %s (%s)" % (
            env["fastfutures"], "loaded" if env["compiled"] else "NOT loaded (pure Python)",
            env["core_module"])
    how = ("%s of %d runs" % (stat, repeat)) if repeat > 1 else "1 run"
    return "\n".join([
        "%s on %s, %s CPUs" % (env["python"], env["platform"], env["cpu_count"]),
        ff,
        "%s%s each, implementations interleaved; time and rate are per operation"
        % (how, " (--quick sizes)" if quick else ""),
    ])


def saved_run(env, results, *, repeat, quick):
    """The run as plain data: the environment, then per workload its samples,
    best and median time per operation of each implementation, and the
    ratios against the stdlib and against the workload's baseline (what
    ``--plot`` draws, from this run or a saved one)."""
    out = dict(env, repeat=repeat, quick=quick, results=[])
    for result in results:
        workload = result["workload"]
        entry = {
            "id": workload.id, "group": workload.group, "name": workload.name,
            "description": workload.description, "metric": workload.metric,
            "unit": workload.unit, "ops": result["size"], "target": workload.target,
            "baseline": workload.baseline, "implementations": {},
        }
        for name, samples in result["samples"].items():
            if name in result["errors"]:
                entry["implementations"][name] = {"error": result["errors"][name]}
                continue
            if not samples:
                continue
            entry["implementations"][name] = {
                "samples": [m.value for m in samples],
                "best_per_op": per_op(samples, "best"),
                "median_per_op": per_op(samples, "median"),
            }
        impls = entry["implementations"]
        for key, baseline in (("ratio_vs_stdlib", STDLIB),
                              ("ratio_vs_baseline", workload.baseline)):
            base = impls.get(baseline, {}).get("best_per_op")
            entry[key] = {
                name: base / data["best_per_op"]
                for name, data in impls.items()
                if name != baseline and base and data.get("best_per_op")
            }
        out["results"].append(entry)
    return out


# -- command line ------------------------------------------------------------------

def _split(values):
    return [part for value in values or () for part in value.split(",") if part]


def build_parser():
    """The command line's parser (the docs print its --help)."""
    parser = argparse.ArgumentParser(
        prog="python -m fastfutures",
        description="Compare fastfutures with concurrent.futures on this machine.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one run each: a smoke test in seconds")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write machine-readable results to PATH (no PATH or -:"
                             " print them instead of the table)")
    parser.add_argument("--plot", metavar="PATH",
                        help="draw the speed-ups as a chart (PNG, SVG or PDF, by PATH's"
                             " suffix; needs matplotlib: pip install 'fastfutures[plot]')")
    parser.add_argument("--from-json", metavar="RUN", dest="from_json",
                        help="with --plot: draw a run saved by --json instead of running")
    parser.add_argument("--only", action="append", metavar="WHAT",
                        help="workloads to run: a group (%s), an id (thread.map) or a name"
                             " (map); comma-separated or repeated" % ", ".join(workloads.GROUPS))
    parser.add_argument("--impl", action="append", metavar="NAME",
                        help="implementations to compare (%s); default: every importable one"
                             % ", ".join(i.name for i in IMPLEMENTATIONS))
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="runs per workload and implementation (default %d, 1 with --quick)"
                             % DEFAULT_REPEAT)
    parser.add_argument("--stat", choices=("best", "median"), default="best",
                        help="which run the table shows (default: best)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help="give up (print every thread's stack, exit 1) when one"
                             " measurement takes longer (default %d; 0: never)" % DEFAULT_TIMEOUT)
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else DEFAULT_REPEAT
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.from_json and not args.plot:
        parser.error("--from-json needs --plot")
    if args.plot:
        try:
            plot.check(args.plot)
        except (ImportError, ValueError) as exc:
            parser.error(str(exc))
    try:
        args.workloads = workloads.select(_split(args.only))
        names = _split(args.impl)
        args.impls = [workloads.implementation(n) for n in names] if names else None
    except KeyError as exc:
        parser.error(exc.args[0])
    return args


def list_workloads(stream=sys.stdout):
    for workload in workloads.WORKLOADS:
        print("%-38s %8d /%6d %-7s %s" % (workload.id, workload.size, workload.quick_size,
                                         workload.unit, workload.description), file=stream)
    for impl in IMPLEMENTATIONS:
        state = "available" if impl.available() else "not installed"
        print("implementation %-12s %-20s %s (%s)"
              % (impl.name, impl.module_name, state, ", ".join(sorted(impl.groups))),
              file=stream)


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        list_workloads()
        return 0
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as saved:
            plot.draw(json.load(saved), args.plot)
        return 0
    if args.impls is None:
        impls = [impl for impl in IMPLEMENTATIONS if impl.available()]
    else:
        impls = args.impls
        for impl in impls:
            if not impl.available():
                print("%s is not importable: %s" % (impl.name, impl.import_error),
                      file=sys.stderr)
                return 2
    env = environment()
    to_stdout = args.json == "-"
    if not to_stdout:
        print(header(env, repeat=args.repeat, quick=args.quick, stat=args.stat), flush=True)
    results = run(args.workloads, impls, repeat=args.repeat, quick=args.quick,
                  timeout=args.timeout)
    data = saved_run(env, results, repeat=args.repeat, quick=args.quick)
    if args.json:
        text = json.dumps(data, indent=2)
        if to_stdout:
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as out:
                out.write(text + "\n")
    if args.plot:
        plot.draw(data, args.plot)
    if not to_stdout:
        print()
        print(table(results, impls, args.stat))
        print()
        print("speed-up = %s time / fastfutures time (memory: %s bytes / fastfutures bytes);"
              " rates are operations per second" % (STDLIB, STDLIB))
        if any(result["workload"].baseline != STDLIB for result in results):
            print("distributed.*: ratios against dask.executor (dask's client.get_executor());"
                  " dask.client is client.map(batch_size=...) / client.submit")
    return 1 if any(result["errors"] for result in results) else 0
