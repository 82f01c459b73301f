#!/usr/bin/env bash
# Python 3.14: the wheel check, the suite and CPython's own
# test.test_concurrent_futures, against the wheel built from this checkout.
#
#   tools/test_py314.sh
#
# pyenv here has no 3.14: tools/py314-chroot (a copy of the workplace's
# shared/tools/py314-chroot) builds a Debian unstable root with python3.14,
# its headers and its `test` package (needs root and Debian's package
# registry; ~2 minutes the first time, then reused).  Inside it, with this
# checkout mounted at /src:
#   1. tools/test_wheels.sh with python3.14: sdist -> wheel -> auditwheel ->
#      a fresh venv with the wheel and its `test` extra -> the suite;
#   2. tools/cpython_suite.py in that venv.
#
# FF_PY314_ROOT: where the Debian root lives (default /srv/py314).  Two
# checkouts must not share one at the same time: each run mounts its own
# checkout at /src.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
tools/py314-chroot "${FF_PY314_ROOT:-/srv/py314}" --run '
set -euo pipefail
cd /src
export FF_WHEEL_WORKDIR=/tmp/fastfutures-wheel-3.14
tools/test_wheels.sh /usr/bin/python3.14
cd /tmp && "$FF_WHEEL_WORKDIR/test-3.14/bin/python" /src/tools/cpython_suite.py
'
