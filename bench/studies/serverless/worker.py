"""A local function's process: ``python -m bench.studies.serverless.worker --cpus X``.

Started by :class:`~bench.studies.serverless.invokers.LocalInvoker` inside its
cgroup (memory limit, CPU quota). It imports TensorFlow (the cold start's
init), then answers invocations one at a time: one JSON event per line on
stdin, one JSON result per line on the original stdout (anything else written
to stdout goes to stderr, so the answers stay parseable). It exits when stdin
closes. Out of memory, the kernel kills it; the invoker tells.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def main(argv=None) -> int:
    t0 = time.perf_counter()
    p = argparse.ArgumentParser()
    p.add_argument("--cpus", type=float, default=0.0, help="the CPU quota: TensorFlow gets ceil(cpus) threads")
    args = p.parse_args(argv)
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (TensorFlow, Keras) must not corrupt the answers
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bench.studies.serverless import handler
    from servebench import inference

    threads = min(os.cpu_count() or 1, max(1, math.ceil(args.cpus))) if args.cpus else 0
    inference.configure_threads(threads, 1 if threads else 0)
    init_s = time.perf_counter() - t0
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            result = {"ok": False, "kind": "bad_event", "error": f"not JSON: {exc}"}
        else:
            result = handler.handle(event)
        result["init_s"] = round(init_s, 6)
        init_s = 0.0  # only the first invocation carries the start-up
        answers.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
