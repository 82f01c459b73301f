"""``python -m fastfutures --plot PATH``: a run's speed-ups as a chart.

Draws from the data ``--json`` saves (report.saved_run), so a chart can be
drawn right after a run or later from a saved one; the docs' Performance
page draws its charts from a committed run with ``draw()``.  Each chart
says what machine, Python and date it comes from.  matplotlib is an
optional dependency (``pip install "fastfutures[plot]"``); it is imported
only here, and only pyplot-free (a Figure of its own, no global backend).
"""
import datetime

FORMATS = ("png", "svg", "pdf")
GROUP_TITLES = {
    "thread": "Thread pool",
    "process": "Process pool",
    "memory": "Memory per pending future / task",
    "asyncio": "asyncio offload",
    "distributed": "dask.distributed",
}
# One colour per implementation, the same on every chart.
COLOURS = {
    "fastfutures": "#1f6feb",
    "loky": "#8250df",
    "anyio": "#bf8700",
    "uvloop": "#57606a",
    "fastfutures+uvloop": "#0a9396",
    "dask.client": "#cf222e",
}
OTHER_COLOUR = "#6e7781"


def check(path):
    """Fail early (before a run of minutes) when ``path`` cannot be drawn."""
    suffix = str(path).rpartition(".")[2].lower()
    if suffix not in FORMATS:
        raise ValueError("--plot: %r: the file name must end in %s"
                         % (str(path), ", ".join("." + f for f in FORMATS)))
    try:
        import matplotlib          # noqa: F401
    except ImportError:
        raise ImportError("--plot needs matplotlib: python -m pip install 'fastfutures[plot]'"
                          ) from None


def groups_of(run):
    """The workload groups of a saved run, in the report's order."""
    return list(dict.fromkeys(entry["group"] for entry in run["results"]))


def describe(run):
    """Machine, Python and date of a saved run, as one line."""
    date = run.get("date")
    if date:
        date = datetime.datetime.fromisoformat(date).strftime("%Y-%m-%d")
    machine = "%s CPUs" % run.get("cpu_count")
    if run.get("cpu"):
        machine = "%s, %s" % (run["cpu"], machine)
    if run.get("load_average"):
        machine += ", load %.1f" % run["load_average"][0]
    parts = ["fastfutures %s" % run.get("fastfutures"), run.get("python"),
             machine, run.get("platform"), date or "date not recorded"]
    if run.get("quick"):
        parts.append("--quick sizes")
    return " · ".join(str(part) for part in parts if part)


def versions_line(run, names):
    """The versions of the compared libraries that appear on a chart."""
    libraries = run.get("libraries") or {}
    modules = {"loky": "loky", "anyio": "anyio", "uvloop": "uvloop",
               "fastfutures+uvloop": "uvloop", "dask.executor": "distributed",
               "dask.client": "distributed"}
    shown = dict.fromkeys(modules[n] for n in names if n in modules)
    return ", ".join("%s %s" % (lib, libraries[lib]) for lib in shown if libraries.get(lib))


def _rows(run, group):
    """(workload id, baseline, {implementation: ratio}, target, metric) per workload."""
    rows = []
    for entry in run["results"]:
        if entry["group"] == group and entry.get("ratio_vs_baseline"):
            rows.append((entry["id"], entry["baseline"], entry["ratio_vs_baseline"],
                         entry.get("target"), entry["metric"]))
    return rows


def draw(run, path, groups=None):
    """Draw the speed-ups of ``run`` (report.saved_run's data) into ``path``
    (.png, .svg or .pdf): one panel per group (all of the run's by default),
    a bar per workload and implementation, the baseline at 1×, the
    target as a tick."""
    check(path)
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    groups = [g for g in (groups or groups_of(run)) if _rows(run, g)]
    if not groups:
        raise ValueError("the run has no ratios to draw (did only one implementation run?)")
    panels = [(g, _rows(run, g)) for g in groups]
    names_per_panel = [list(dict.fromkeys(n for row in rows for n in row[2]))
                       for _, rows in panels]
    heights = [0.9 + 0.32 * len(rows) * max(1, len(names)) + 0.25 * len(rows)
               for (_, rows), names in zip(panels, names_per_panel)]
    # svg.hashsalt: the same run draws the same SVG (a stable docs build).
    with rc_context({"svg.hashsalt": "fastfutures", "font.size": 9}):
        fig = Figure(figsize=(8.5, sum(heights) + 0.9), layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False,
                            gridspec_kw={"height_ratios": heights})[:, 0]
        for ax, (group, rows), names in zip(axes, panels, names_per_panel):
            _panel(ax, run, group, rows, names)
        fig.suptitle("fastfutures speed-up per workload (higher is better)\n%s"
                     % describe(run), fontsize=9)
        metadata = {"Date": None} if str(path).lower().endswith(".svg") else None
        fig.savefig(path, dpi=120, metadata=metadata)


def _panel(ax, run, group, rows, names):
    from matplotlib.ticker import FuncFormatter

    bar = 0.8 / max(1, len(names))
    labels = [row[0].partition(".")[2] or row[0] for row in rows]
    for i, name in enumerate(names):
        ys = [r - 0.4 + bar * (i + 0.5) for r in range(len(rows))]
        ratios = [row[2].get(name, 0) for row in rows]
        bars = ax.barh(ys, ratios, height=bar * 0.9, label=name,
                       color=COLOURS.get(name, OTHER_COLOUR))
        ax.bar_label(bars, labels=["%.3g×" % r if r else "" for r in ratios],
                     padding=2, fontsize=7)
    for r, row in enumerate(rows):
        if row[3] and row[4] != "bytes":        # a bytes target is absolute, not a ratio
            ax.plot([row[3], row[3]], [r - 0.45, r + 0.45], color="black", lw=1, ls=":")
    ax.axvline(1, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: "%g×" % x))
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    baselines = sorted({row[1] for row in rows})
    memory = all(row[4] == "bytes" for row in rows)
    ax.set_xlabel("%s ÷ implementation (%s; 1× = %s; dotted: target)"
                  % (" / ".join(baselines), "bytes" if memory else "time per operation",
                     " / ".join(baselines)))
    title = GROUP_TITLES.get(group, group)
    versions = versions_line(run, names)
    ax.set_title(title + ("  (%s)" % versions if versions else ""), loc="left", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xlim(left=0.1, right=max(max(row[2].values()) for row in rows) * 4)
