#!/usr/bin/env bash
# Build fastfutures' extensions with AddressSanitizer + UndefinedBehaviorSanitizer
# (FASTFUTURES_SANITIZE=1, see setup.py) and run the test suite against them.
#
# usage: tools/sanitize.sh [--in-place] [--tree DIR] [--rev REV] [--python PY] [-- PYTEST-ARGS...]
#
#   (default)    copy the working tree (tracked and untracked, not ignored,
#                files) to a fresh directory and build there, so the in-place
#                .so files of the checkout are left alone
#   --tree DIR   build in DIR instead of a temporary directory (kept afterwards)
#   --rev REV    copy the committed tree REV (git archive) instead of the working tree
#   --in-place   build in the checkout itself (CI: the checkout is throw-away)
#   --python PY  interpreter to use (default: python3)
#   PYTEST-ARGS  passed to pytest (default: the default run, tests/ -m 'not slow',
#                in two steps: see "Leak tests" below)
#
# The interpreter is not instrumented, so the ASan runtime is preloaded
# (LD_PRELOAD of gcc's libasan.so), PYTHONMALLOC=malloc routes every Python
# object allocation through ASan's malloc (use-after-free / overflow of
# objects become visible), and leak detection is off: CPython itself
# "leaks" interned objects at exit.  UBSan stops at the first report.
# Child processes (the process pool, the subprocess-based tests) inherit the
# environment, so they run instrumented too.
#
# Leak tests: tests/test_leaks.py bounds the RSS growth of scenarios run in
# fresh interpreters.  Under ASan every free()d block first sits in the
# quarantine (256 MiB by default) so that a use after free is caught; RSS then
# grows by up to that much whatever the code does, and every scenario "leaks"
# tens of MiB.  The default run therefore runs those tests in a second pytest
# with quarantine_size_mb=0 appended to ASAN_OPTIONS (the scenarios still run
# instrumented; only use-after-free detection is weaker there).  When you pass
# PYTEST-ARGS that include tests/test_leaks.py, append it yourself:
#   ASAN_OPTIONS=<the default below>:quarantine_size_mb=0 tools/sanitize.sh -- tests/test_leaks.py
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=python3
MODE=copy
TREE=
REV=
while [ $# -gt 0 ]; do
    case "$1" in
        --in-place) MODE=in-place; shift ;;
        --tree) TREE=$2; shift 2 ;;
        --rev) REV=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,/^set -euo pipefail/{/^set /d;p}' "$0"; exit 0 ;;
        *) break ;;
    esac
done
DEFAULT_RUN=0
LEAK_TESTS=tests/test_leaks.py
if [ $# -eq 0 ]; then
    DEFAULT_RUN=1
    set -- tests -m "not slow" --deselect "$LEAK_TESTS::test_no_leak"
fi

CC=${CC:-gcc}
LIBASAN=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
    echo "sanitize.sh: libasan.so not found ($CC -print-file-name=libasan.so)" >&2
    exit 2
fi

if [ "$MODE" = in-place ]; then
    WORK=$ROOT
else
    if [ -z "$TREE" ]; then
        TREE=$(mktemp -d "${TMPDIR:-/tmp}/fastfutures-asan.XXXXXX")
    fi
    mkdir -p "$TREE"
    if [ -n "$REV" ]; then
        git -C "$ROOT" archive "$REV" | tar -x -C "$TREE"
    else
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
            | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
            | tar --null -T - -cf -) | tar -x -C "$TREE"
    fi
    WORK=$TREE
fi
echo "sanitize.sh: building in $WORK with $PYTHON" >&2

cd "$WORK"
# force=True in setup.py for sanitizer builds: every module is recompiled.
CC="$CC" FASTFUTURES_SANITIZE=1 "$PYTHON" setup.py build_ext --inplace -q

export PYTHONPATH="$WORK/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONMALLOC=malloc
export LD_PRELOAD="$LIBASAN${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Sanitizer reports go to stderr of the process that hit them; pytest shows
# a crashed test's output (and faulthandler's) in its report.
if [ "$DEFAULT_RUN" = 0 ]; then
    exec "$PYTHON" -X faulthandler -m pytest -p no:cacheprovider "$@"
fi
status=0
"$PYTHON" -X faulthandler -m pytest -p no:cacheprovider "$@" || status=$?
if [ -e "$LEAK_TESTS" ]; then
    echo "sanitize.sh: $LEAK_TESTS with quarantine_size_mb=0 (RSS bounds; see the header)" >&2
    leak_status=0
    ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=0" \
        "$PYTHON" -X faulthandler -m pytest -p no:cacheprovider "$LEAK_TESTS" -m "not slow" \
        || leak_status=$?
    if [ "$status" = 0 ]; then
        status=$leak_status
    fi
fi
exit "$status"
