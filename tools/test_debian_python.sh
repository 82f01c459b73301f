#!/usr/bin/env bash
# Python 3.14 or 3.15 from a Debian root: the wheel check, the suite and
# CPython's own test.test_concurrent_futures, against the wheel built from
# this checkout's sdist.
#
#   tools/test_debian_python.sh VERSION          # 3.14 or 3.15
#
# pyenv here has neither: tools/debian-python-root builds a Debian unstable
# root with both, their headers and their `test` packages (needs root and
# Debian's package registry; ~2 minutes the first time, then reused).
# Inside it, with this checkout mounted at /ci/<checkout>-VERSION (so that
# checkouts, and the two versions, can share the root at the same time):
#   1. tools/test_wheels.sh with pythonVERSION: sdist -> wheel -> auditwheel ->
#      a fresh venv with the wheel and its test extra -> the suite;
#   2. tools/cpython_suite.py in that venv.
#
# Environment: FF_DEBIAN_ROOT, where the root lives (default /srv/py314);
# FF_WHEEL_EXTRA, passed on to tools/test_wheels.sh; CI, passed on.
set -uo pipefail
[[ $# == 1 && $1 =~ ^3\.1[0-9]+$ ]] || { sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2; }
VERSION=$1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${FF_DEBIAN_ROOT:-/srv/py314}"
KEY="$(basename "$REPO")-$(printf %s "$REPO" | cksum | cut -d' ' -f1)-$VERSION"
AT="/ci/$KEY"
cd "$REPO"
tools/debian-python-root "$ROOT" --at "$AT" --private-shm --run "
set -euo pipefail
${CI+export CI='$CI'}
export FF_WHEEL_EXTRA='${FF_WHEEL_EXTRA:-test}'
export FF_WHEEL_WORKDIR=/tmp/fastfutures-wheel-$KEY
cd '$AT'
tools/test_wheels.sh /usr/bin/python$VERSION
echo
echo '=== Python $VERSION: CPython'\''s test.test_concurrent_futures against the wheel'
cd /tmp && \"\$FF_WHEEL_WORKDIR/test-$VERSION/bin/python\" '$AT/tools/cpython_suite.py'
"
code=$?
umount "$ROOT$AT" 2>/dev/null && rmdir "$ROOT$AT" 2>/dev/null
exit $code
