"""The site's own Sphinx directives: what they show is computed from the
project at build time, so that it cannot drift from the code.

* ``reference-run-chart GROUP``: the speed-ups of one workload group of the
  committed reference run (_data/reference-run.json, written by
  ``python -m fastfutures --json``), drawn by fastfutures' own ``--plot``
  code (fastfutures.bench.plot) into _generated/; the build never runs a
  benchmark.
* ``reference-run-table GROUP``: the same numbers as a table.
* ``reference-run-info``: when, where and against what that run was made.
* ``cli-help``: ``python -m fastfutures --help``, from the parser itself.
"""
import argparse
import json
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

from fastfutures.bench import plot, report

DOCS = Path(__file__).resolve().parent.parent
REFERENCE_RUN = DOCS / "_data" / "reference-run.json"
GENERATED = DOCS / "_generated"


def load_run():
    with open(REFERENCE_RUN, encoding="utf-8") as saved:
        return json.load(saved)


def _table(header, rows):
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body
    for target, cells in ((head, [header]), (body, rows)):
        for cells_of_row in cells:
            row = nodes.row()
            for cell in cells_of_row:
                entry = nodes.entry()
                entry += nodes.paragraph(text=str(cell))
                row += entry
            target += row
    return table


class ReferenceRunChart(SphinxDirective):
    required_arguments = 1
    option_spec = {"alt": directives.unchanged}

    def run(self):
        group = self.arguments[0]
        self.env.note_dependency(str(REFERENCE_RUN))
        GENERATED.mkdir(exist_ok=True)
        path = GENERATED / ("performance-%s.svg" % group)
        try:
            plot.draw(load_run(), path, groups=[group])
        except ValueError as exc:
            raise self.error("%s: group %r: %s" % (REFERENCE_RUN.name, group, exc)) from None
        uri = "/" + str(path.relative_to(DOCS))
        alt = self.options.get("alt", "speed-ups of the %s workloads" % group)
        # A leading "/": Sphinx takes the path from the source directory.
        return [nodes.image(uri=uri, alt=alt)]


class ReferenceRunTable(SphinxDirective):
    required_arguments = 1

    def run(self):
        group = self.arguments[0]
        self.env.note_dependency(str(REFERENCE_RUN))
        entries = [e for e in load_run()["results"] if e["group"] == group]
        if not entries:
            raise self.error("%s has no %r results" % (REFERENCE_RUN.name, group))
        names = list(dict.fromkeys(n for e in entries for n in e["implementations"]))
        glyphs = report.Glyphs(type("Stream", (), {"encoding": "utf-8"})())
        rows = []
        for entry in entries:
            row = [entry["id"], entry["unit"]]
            for name in names:
                data = entry["implementations"].get(name, {})
                value = data.get("best_per_op")
                if value is None:
                    row.append(data.get("error", ""))
                elif entry["metric"] == "bytes":
                    row.append("%.0f B" % value)
                else:
                    row.append(report.format_seconds(value, glyphs))
            ratio = entry["ratio_vs_baseline"].get("fastfutures")
            row.append(report.format_ratio(ratio, glyphs) if ratio else "")
            rows.append(row)
        header = ["workload", "per"] + names + [
            "fastfutures vs %s" % entries[0]["baseline"]]
        return [_table(header, rows)]


class ReferenceRunInfo(SphinxDirective):
    def run(self):
        self.env.note_dependency(str(REFERENCE_RUN))
        run = load_run()
        libraries = ", ".join("%s %s" % (k, v) for k, v in sorted(run["libraries"].items())
                              if v)
        rows = [
            ("date", run.get("date")), ("fastfutures", run.get("fastfutures")),
            ("Python", run.get("python")), ("platform", run.get("platform")),
            ("CPU", "%s (%s CPUs)" % (run.get("cpu"), run.get("cpu_count"))),
            ("load average at the start", " / ".join("%.1f" % x for x in run["load_average"])
             if run.get("load_average") else "not recorded"),
            ("compared libraries", libraries),
            ("runs", "best of %s, implementations interleaved" % run.get("repeat")),
        ]
        return [_table(["", "reference run"], rows)]


class CliHelp(SphinxDirective):
    def run(self):
        parser = report.build_parser()
        parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=88)
        text = parser.format_help()
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


# Calls written out in docstrings, such as fn(*args, **kwargs): literals, so
# that their stars are not read as reST emphasis.
_CALL_WITH_STARS = re.compile(r"(?<![`\w])(\w[\w.]*\([^()`]*\*[^()`]*\))")


def docstrings_for_sphinx(app, what, name, obj, options, lines):
    """Make the docstrings written for help() -- many of them the stdlib's
    own, Google style -- read as reST without changing their text:
    calls become literals, and napoleon must not take a version note or a
    "equivalent to:" sentence for a type."""
    for i, line in enumerate(lines):
        line = _CALL_WITH_STARS.sub(r"``\1``", line)
        line = re.sub(r"^(\s*)(\w+) \((Python [\d.]+\+)\):", r"\1\2: (\3)", line)
        lines[i] = line.replace("equivalent to: ", "equivalent to ")


def setup(app):
    # Before napoleon (priority 500) turns the Google sections into fields.
    app.connect("autodoc-process-docstring", docstrings_for_sphinx, priority=400)
    app.add_directive("reference-run-chart", ReferenceRunChart)
    app.add_directive("reference-run-table", ReferenceRunTable)
    app.add_directive("reference-run-info", ReferenceRunInfo)
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
