"""``python -m fastfutures``: compare with concurrent.futures on this machine
(the report is fastfutures/bench/report.py)."""
import sys

from .bench.report import main

# The guard matters: process pools that spawn their workers re-import the
# main module, and must not start a report of their own.
if __name__ == "__main__":
    sys.exit(main())
