"""Calls of mixed lengths on a warm 2-worker pool (fastfutures.bench.workloads,
group "mixed"): one long call then short ones (sleeps, and busy loops), and a
shuffled heavy-tailed batch of busy loops; the time of the whole batch against
the ideal schedule's, median of the rounds.  stdlib vs fastfutures vs loky
(when installed).  About a minute; --bench-quick scales every call to 1/10."""
import pytest

pytestmark = pytest.mark.workloads("mixed")


def test_mixed(run_timed):
    run_timed()
