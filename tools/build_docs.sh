#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, as CI does: warnings
# are errors, every reference must resolve (-n), and nothing is fetched from
# the network (the stdlib's objects.inv is a local copy, the diagrams are
# drawn by the local Graphviz, the charts from a committed run).
#
#   tools/build_docs.sh              # build in place, install the docs' requirements, build
#   FASTFUTURES_PYTHON_INV=path/objects.inv tools/build_docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

die() { echo "tools/build_docs.sh: $*" >&2; exit 1; }

# What the build needs from the system, checked first: it fails here rather
# than falling back to the network.
inventory=${FASTFUTURES_PYTHON_INV:-$(ls -1 /usr/share/doc/python3*/html/objects.inv \
    /srv/py314/usr/share/doc/python3*/html/objects.inv 2>/dev/null | sort -r | head -n1 || true)}
[ -n "$inventory" ] && [ -f "$inventory" ] || die "no local copy of Python's objects.inv:" \
    "install Debian's python3-doc (apt-get install python3-doc), or set" \
    "FASTFUTURES_PYTHON_INV to one; the docs build does not download it"
export FASTFUTURES_PYTHON_INV=$inventory
command -v dot >/dev/null || die "Graphviz's dot is missing (apt-get install graphviz)"

# The API reference documents the compiled modules: build them in place,
# with the build requirements of pyproject.toml's [build-system] (a fresh
# environment has neither Cython nor a setuptools that reads PEP 639).
"$PYTHON" -m pip install --quiet "setuptools>=77" "Cython>=3.1" -r docs/requirements.txt
"$PYTHON" setup.py build_ext --inplace -j 2 >/dev/null

rm -rf docs/_build/html docs/_build/doctrees docs/_generated
start=$(date +%s)
PYTHONPATH=src "$PYTHON" -m sphinx -W -n --keep-going -b html docs docs/_build/html
echo "tools/build_docs.sh: built docs/_build/html in $(( $(date +%s) - start )) s"
