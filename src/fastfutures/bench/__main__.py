"""``python -m fastfutures.bench``: the same report as ``python -m fastfutures``."""
import sys

from .report import main

# The guard matters: process pools that spawn their workers re-import the
# main module, and must not start a report of their own.
if __name__ == "__main__":
    sys.exit(main())
