"""`make bench-study`: the set of runs behind the committed results, in one command.

    python -m bench.campaign [--runtime native] [--n 10000] [--quick]

So that another machine can repeat exactly what we measured: for every
architecture that can run here, first a fresh in-process reference, then, with
one stack per architecture kept up across its runs:

1. the study's workload: N images, one per request, sequentially, JSON;
2. Table 3 with spread: the first 1,000 images, 3 passes;
3. the raw codec, to separate payload encoding from serving;
4. closed-loop concurrency 2, 4 and 8;
5. open-loop Poisson arrivals at three rates;
6. ``SB_CALL_PATH=keras-predict`` (``model.predict`` per request, as tutorials
   and, by its numbers, the study do) on a small N, in a stack of its own;

then ``make report``. ``--quick`` shrinks every count for a smoke run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bench import report, run, target
from servebench import runtime as runtimes

RATES = (50, 100, 150)
CONCURRENCY = (2, 4, 8)


def workloads(n: int, quick: bool) -> list[list[str]]:
    small = 100 if quick else 2000
    table3 = 100 if quick else 1000
    plan = [
        ["--n", str(n)],
        ["--n", str(table3), "--repeats", "3"],
        ["--n", str(small), "--codec", "raw"],
    ]
    plan += [["--n", str(small), "--concurrency", str(c)] for c in CONCURRENCY]
    plan += [["--n", str(small), "--rate", str(r), "--arrivals", "poisson"] for r in RATES]
    return plan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runtime", default="native", choices=runtimes.RUNTIMES)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--arch", action="append", help="only these architectures (repeatable); default: all that run here")
    p.add_argument("--no-reference", action="store_true", help="keep results/reference.json as it is")
    p.add_argument("--slow-path-n", type=int, default=300, help="images for the keras-predict runs")
    args = p.parse_args(argv)
    n = min(args.n, 200) if args.quick else args.n
    rt = runtimes.get(args.runtime)
    if target.running(args.runtime, None) is not None:
        print(f"error: a stack is running; `make down RUNTIME={args.runtime}` first", file=sys.stderr)
        return 1

    ref_args = ["--calls", "200", "--codec-calls", "50", "--batch-images", "256"] if args.quick else []
    arches, skipped = target.runnable_arches(args.runtime)
    if args.arch:
        arches = [a for a in arches if a in args.arch]
    for arch, why in skipped.items():
        print(f"skipping {arch}: {why}")
    common = ["--runtime", args.runtime, "--no-progress"] + (["--overhead-requests", "200"] if args.quick else [])
    for arch in arches:
        # A fresh reference right before each architecture, so that its ratios compare
        # numbers taken minutes apart, not half an hour (shared machines drift).
        # Its own process: TensorFlow loaded here would count as the client's memory.
        os.environ.pop("SB_CALL_PATH", None)  # the reference is always the signature path
        if not args.no_reference and subprocess.run(
                [sys.executable, "-m", "bench.reference", "--no-progress", *ref_args]).returncode != 0:
            return 1
        for call_path in ("signature", "keras-predict"):
            os.environ["SB_CALL_PATH"] = call_path
            rt.up(arch)
            try:
                plan = workloads(n, args.quick) if call_path == "signature" else [
                    ["--n", str(min(args.slow_path_n, n)), "--warmup", "5"]]
                for extra in plan:
                    print(f"\n== {arch} ({call_path}): {' '.join(extra)}", flush=True)
                    if run.main(["--arch", arch, *common, *extra]) != 0:
                        return 1
            finally:
                rt.down()
    os.environ.pop("SB_CALL_PATH", None)
    return report.main([])


if __name__ == "__main__":
    sys.exit(main())
