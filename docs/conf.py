"""Sphinx configuration of the fastfutures site (built by tools/build_docs.sh).

The build is offline: cross-references to the stdlib resolve through a local
copy of Python's objects.inv (Debian's python3.x-doc), never the network; the
charts are drawn from a committed run (_data/reference-run.json) and the
diagrams by the local Graphviz.
"""
import glob
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The API reference documents the compiled modules built in place
# (python setup.py build_ext --inplace), as users import them.
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE / "_ext"))

import fastfutures  # noqa: E402

project = "fastfutures"
author = "fastfutures developers"
copyright = "fastfutures developers"
release = version = fastfutures.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.graphviz",
    "fastfutures_docs",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "_data", "_ext", "requirements.txt"]
nitpicky = True

html_theme = "furo"
html_title = "fastfutures %s" % release
html_static_path = []

autodoc_member_order = "bysource"
autodoc_typehints = "none"          # signatures come from the docstrings (embedsignature)
napoleon_google_docstring = True     # the stdlib-style "Args:" sections
napoleon_numpy_docstring = False

graphviz_output_format = "svg"


def python_inventory():
    """Python's objects.inv from a local copy; the build never downloads it."""
    explicit = os.environ.get("FASTFUTURES_PYTHON_INV")
    candidates = [explicit] if explicit else sorted(
        glob.glob("/usr/share/doc/python3*/html/objects.inv")
        + glob.glob("/srv/py314/usr/share/doc/python3*/html/objects.inv"), reverse=True)
    for path in candidates:
        if path and os.path.exists(path):
            return path
    raise RuntimeError(
        "no local copy of Python's objects.inv (install Debian's python3-doc, or set"
        " FASTFUTURES_PYTHON_INV to one); the docs build does not reach the network")


intersphinx_mapping = {"python": ("https://docs.python.org/3", python_inventory())}
intersphinx_timeout = 1
