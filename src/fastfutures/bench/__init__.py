"""The benchmark workloads (workloads.py) and the side-by-side report
(report.py) that ``python -m fastfutures`` prints and the repository's bench/
times with pytest-benchmark.  Not part of the runtime API: ``import
fastfutures`` does not import this subpackage.
"""
