"""The same calls on a dask.distributed cluster: DaskExecutor is an Executor
whose futures are fastfutures futures.  This starts a LocalCluster of two
worker processes on 127.0.0.1; give DaskExecutor a scheduler address
("tcp://host:8786") or a distributed.Client to use a real cluster.

    pip install "fastfutures[dask]"
    python examples/dask_cluster.py [--items N]
"""
import argparse
import logging

import fastfutures as futures
from fastfutures.distributed import DaskExecutor


def score(x):
    return (x * 7919) % 104729


def fragile(x):
    if x == 3:
        raise ValueError("no threes")
    return x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args(argv)
    # silence_logs: the workers would log the failing task below as an error.
    with DaskExecutor(max_workers=2, host="127.0.0.1",
                      silence_logs=logging.CRITICAL) as executor:
        # One dask task per chunk of 1,000 items, results in order.
        total = sum(executor.map(score, range(args.items), chunksize=1000))
        print("sum of %d scores: %d" % (args.items, total))
        fs = {executor.submit(fragile, x): x for x in range(5)}
        for future in futures.as_completed(fs, timeout=60):
            try:
                future.result()
            except ValueError as exc:
                # The worker's traceback comes along as the __cause__.
                print("item %d failed: %r (remote traceback: %s)"
                      % (fs[future], exc, exc.__cause__ is not None))


if __name__ == "__main__":
    main()
