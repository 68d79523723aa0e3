"""Pick the runtime: ``native`` (local processes, :mod:`servebench.stack`) or
``docker`` (compose, :mod:`servebench.compose`). Both expose the same
``up(arch, env, path) / down(path) / state(path)`` and return a state with
``arch``, ``url``, ``doc`` and ``processes()`` (per service, its process tree).

    python -m servebench.runtime up ARCH [--runtime native|docker]
    python -m servebench.runtime down|status [--runtime ...]
"""
from __future__ import annotations

import argparse
import importlib
import sys

from servebench import topology

RUNTIMES = ("native", "docker")


def get(runtime: str):
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown RUNTIME {runtime!r}: choose native or docker")
    return importlib.import_module("servebench.stack" if runtime == "native" else "servebench.compose")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=("up", "down", "status"))
    p.add_argument("arch", nargs="?", choices=topology.ARCHES)
    p.add_argument("--runtime", default="native", choices=RUNTIMES)
    args = p.parse_args(argv)
    rt = get(args.runtime)
    try:
        if args.cmd == "up":
            if not args.arch:
                p.error("up needs an ARCH")
            print(f"starting {args.arch} ({args.runtime}) ...", flush=True)
            st = rt.up(args.arch)
            print(f"{args.arch} is up ({args.runtime}): POST {st.url}/v1/predict   stop with `make down RUNTIME={args.runtime}`")
        elif args.cmd == "down":
            rt.down()
        else:
            st = rt.state()
            if st is None:
                print(f"no {args.runtime} stack is running")
                return 1
            healthy = True
            for name, (health, procs) in st.health().items():
                pids = [p.pid for p in procs]
                if health == "up":
                    print(f"{name:<10} up        pids {pids}")
                elif health == "degraded":
                    healthy = False
                    print(f"{name:<10} DEGRADED  master gone, {len(procs)} orphaned process(es) still running "
                          f"{pids}: `make down RUNTIME={args.runtime}` stops them")
                else:
                    healthy = False
                    print(f"{name:<10} DEAD")
            if not healthy:
                return 1
    except rt.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
