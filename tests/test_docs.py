"""Every code block of the documentation runs, or says why it cannot.

The how-to guides include the programs of examples/ (tests/test_examples.py
runs those); the pages' own blocks are checked here: a Python block runs in
a fresh interpreter, and any block may instead be preceded by a comment line
``% not run: <reason>`` (a shell command that installs packages, a benchmark
of minutes, a fragment that needs a cluster).  A block of another language
without that comment fails the test, so no block is left unchecked.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
NOT_RUN = re.compile(r"^\s*% not run: \S")


def code_blocks(path):
    """(line number, language, code, reason it is not run or None) of each
    fenced block of a MyST page; directives ({toctree}, {literalinclude},
    {eval-rst}, ...) are not code."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info, indent = match["fence"], match["info"].strip(), len(match["indent"])
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][indent:])
            i += 1
        i += 1
        if info.startswith("{"):
            continue
        before = lines[start - 1] if start else ""
        reason = before if NOT_RUN.match(before) else None
        yield start + 1, info or "text", "\n".join(body) + "\n", reason


def all_blocks():
    for path in sorted(DOCS.rglob("*.md")):
        if "_build" in path.parts:
            continue
        for line, language, code, reason in code_blocks(path):
            yield "%s:%d" % (path.relative_to(DOCS), line), language, code, reason


BLOCKS = list(all_blocks())
RUNNABLE = [pytest.param(code, id=where)
            for where, language, code, reason in BLOCKS if reason is None]


def test_every_block_runs_or_says_why_not():
    assert len(RUNNABLE) >= 5
    unchecked = [where for where, language, code, reason in BLOCKS
                 if reason is None and language != "python"]
    assert not unchecked, "blocks neither run nor marked '% not run: <reason>'"


@pytest.mark.parametrize("code", RUNNABLE)
def test_python_block_runs(code):
    proc = subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
