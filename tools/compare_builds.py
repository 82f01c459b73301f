"""Two builds of fastfutures side by side: the report's rows, interleaved.

    python tools/compare_builds.py BEFORE_SRC AFTER_SRC [--rounds 5] [--only ROWS]

BEFORE_SRC and AFTER_SRC are ``src`` folders with the extensions built in
place (``python setup.py build_ext --inplace``), e.g. a ``git worktree`` of
the previous commit and this checkout.  Each round runs each build's own
``python -m fastfutures --json`` (stdlib and fastfutures, ``--repeat 3``),
before and after taking turns, so both see the same machine; a cell is the
best of every run.  Prints a Markdown table: the stdlib (best over both
builds' runs), each build's time per call and its speed-up over the stdlib.
"""
import argparse
import json
import os
import subprocess
import sys

ROWS = ("thread.submit_wait,thread.map,thread.as_completed,thread.round_trip,"
        "process.submit_results,process.map,process.round_trip")


def run(src, only, repeat):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
    out = subprocess.run(
        [sys.executable, "-m", "fastfutures", "--json", "--only", only,
         "--impl", "stdlib,fastfutures", "--repeat", str(repeat)],
        env=env, cwd="/", capture_output=True, text=True, check=True).stdout
    start = out.index("{")      # an older report prints progress first
    return json.loads(out[start:])["results"]


def seconds(value):
    return f"{value * 1e6:.3f} µs" if value < 1e-3 else f"{value * 1e3:.2f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=ROWS)
    args = parser.parse_args()
    best = {}           # (row, column) -> seconds per call

    def keep(key, value):
        best[key] = min(best.get(key, float("inf")), value)

    for round_ in range(args.rounds):
        for label, src in (("before", args.before), ("after", args.after)):
            print(f"round {round_ + 1}/{args.rounds}: {label}", file=sys.stderr, flush=True)
            for row in run(src, args.only, args.repeat):
                impls = row["implementations"]
                keep((row["id"], "stdlib"), impls["stdlib"]["best_per_op"])
                keep((row["id"], label), impls["fastfutures"]["best_per_op"])
    print(f"| workload (per call) | stdlib | before | after | vs stdlib, before | after |")
    print("|---|---|---|---|---|---|")
    for row in args.only.split(","):
        stdlib = best[(row, "stdlib")]
        before, after = best[(row, "before")], best[(row, "after")]
        print(f"| {row} | {seconds(stdlib)} | {seconds(before)} | {seconds(after)} "
              f"| {stdlib / before:.1f}x | {stdlib / after:.1f}x |")
    print(f"\n{sys.version.split()[0]}, {args.rounds} rounds x --repeat {args.repeat}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
