#!/usr/bin/env bash
# The suite, and CPython's own test.test_concurrent_futures, on Python 3.14.
#
#   tools/test_py314.sh [PYTEST ARGS...]
#
# pyenv here has no 3.14: tools/py314-chroot (a copy of the workplace's
# shared/tools/py314-chroot) builds a Debian unstable root with python3.14,
# its headers and its `test` package (needs root and Debian's package
# registry; ~2 minutes the first time, then reused).  Inside it, this
# checkout (mounted at /src) is installed with its `test` extra into a fresh
# venv, exactly as README's test command does, and both suites run.
#
# FF_PY314_ROOT: where the Debian root lives (default /srv/py314).  Two
# checkouts must not share one at the same time: each run mounts its own
# checkout at /src.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
args="${*:-}"
tools/py314-chroot "${FF_PY314_ROOT:-/srv/py314}" --run "
set -euo pipefail
cd /src
rm -rf /opt/ff314 && python3.14 -m venv /opt/ff314
/opt/ff314/bin/python -m pip install -q '.[test]'
/opt/ff314/bin/python -m pytest -p no:cacheprovider $args
/opt/ff314/bin/python tools/cpython_suite.py
"
