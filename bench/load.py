"""`make load`: a locust load test through a stack's nginx (``bench/locustfile.py``).

    python -m bench.load --arch fastapi [--runtime native] [--users 4] [--spawn-rate 4]
        [--duration 30s] [--workers 0] [--codec json] [--batch 1] [--ui]

Headless by default: locust's CSVs (``locust_stats.csv``, ``locust_failures.csv``,
...) and HTML report go to ``results/<run-id>/``, beside ``resources.csv``
(the services and locust's own processes, as in ``bench.run``),
``locust_totals.json`` (the final totals and accuracy counts, written by the
locustfile as locust quits) and a ``summary.json`` with those numbers. ``--ui`` serves locust's
web UI on 127.0.0.1:8089 instead, until Ctrl-C. ``--workers n`` runs locust
distributed on this machine: one master plus n worker processes, the way load
generation is spread over several machines.

The stack is brought up and down as in ``bench.run`` (:mod:`bench.target`).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench import provenance, resources, results, target
from servebench import codecs, runtime as runtimes, topology

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
TOTALS_FILE = "locust_totals.json"
SIGINT_GRACE_S = 5.0
SIGTERM_GRACE_S = 10.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=topology.ARCHES)
    p.add_argument("--runtime", default="native", choices=runtimes.RUNTIMES)
    p.add_argument("--users", type=int, default=4, help="simulated users (each one request at a time)")
    p.add_argument("--spawn-rate", type=float, default=4, help="users started per second")
    p.add_argument("--duration", default="30s", help="run time, locust's format: 30s, 5m, 1h30m")
    p.add_argument("--workers", type=int, default=0, help="0: one locust process; n: a master and n workers")
    p.add_argument("--codec", default="json", choices=codecs.CODECS)
    p.add_argument("--batch", type=int, default=1, help="images per request")
    p.add_argument("--images", type=int, default=1000, help="test images each locust process encodes and cycles")
    p.add_argument("--ui", action="store_true", help="locust's web UI on 127.0.0.1 instead of a headless run")
    p.add_argument("--web-port", type=int, default=8089)
    p.add_argument("--sample-hz", type=float, default=resources.DEFAULT_HZ)
    p.add_argument("--out", type=Path, default=results.DEFAULT_ROOT)
    p.add_argument("--run-dir", default=None, help="the stack's state folder (default: SB_RUN_DIR or run/)")
    args = p.parse_args(argv)
    if args.users < 1 or args.batch < 1 or args.workers < 0 or not 1 <= args.images <= 10000:
        p.error("--users and --batch must be at least 1, --workers at least 0, --images 1..10000")
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def locust_commands(args, url: str, run_dir: Path) -> list[list[str]]:
    """The master (or only) locust process first, then the workers."""
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", url]
    main = [*base, "--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust.html"),
            "-u", str(args.users), "-r", str(args.spawn_rate)]
    if args.ui:
        main += ["--web-host", "127.0.0.1", "--web-port", str(args.web_port)]
    else:
        main += ["--headless", "-t", args.duration, "--only-summary"]
    if not args.workers:
        return [main]
    port = _free_port()
    main += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", str(args.workers)]
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    return [main] + [worker] * args.workers


def locust_env(args, run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SB_LOAD_CODEC": args.codec,
        "SB_LOAD_BATCH": str(args.batch),
        "SB_LOAD_IMAGES": str(args.images),
        "SB_LOAD_TOTALS_FILE": str(run_dir / TOTALS_FILE),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(results.REPO_ROOT), env.get("PYTHONPATH")])),
    })
    return env


def _tree(procs: list[subprocess.Popen]) -> list[psutil.Process]:
    found = []
    for p in procs:
        try:
            leader = psutil.Process(p.pid)
            found += [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return found


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGINT first (locust then writes its HTML report too), SIGTERM, SIGKILL as a last resort.

    SIGTERM follows because a process started with SIGINT ignored (a background
    job of a script) passes that on to locust, which then never sees the SIGINT.
    """
    for sig, grace_s in ((signal.SIGINT, SIGINT_GRACE_S), (signal.SIGTERM, SIGTERM_GRACE_S), (signal.SIGKILL, 5.0)):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for p in alive:
            p.send_signal(sig)
        deadline = time.monotonic() + grace_s
        for p in alive:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


def locust_numbers(run_dir: Path, batch: int) -> dict | None:
    """Locust's final totals (written by the locustfile), with images/s added."""
    try:
        doc = json.loads((run_dir / TOTALS_FILE).read_text())
    except (OSError, ValueError):
        return None
    rps = doc.get("requests_per_s")
    doc["images_per_s"] = results.rounded(rps * batch, 2) if rps is not None else None
    return doc


def run(args, st, run_dir: Path) -> dict:
    stack = target.stack_record(st)
    header = {"kind": "load", "run_id": run_dir.name, "arch": args.arch, "runtime": args.runtime,
              "settings": {"users": args.users, "spawn_rate": args.spawn_rate, "duration": None if args.ui else args.duration,
                           "workers": args.workers, "codec": args.codec, "batch": args.batch, "images": args.images,
                           "ui": args.ui, "sample_hz": args.sample_hz},
              "stack": stack, "provenance": provenance.record()}
    results.write_json(run_dir / "summary.json", {**header, "interrupted": True, "running": True})
    env = locust_env(args, run_dir)
    procs: list[subprocess.Popen] = []
    interrupted = False
    origin = time.perf_counter()
    res_log = results.CsvLog(run_dir / "resources.csv", resources.COLUMNS)
    sampler = resources.Sampler(lambda: {**st.processes(), "client": _tree(procs)}, res_log,
                                hz=args.sample_hz, origin=origin)
    started = time.perf_counter()
    try:
        with sampler:
            for cmd in locust_commands(args, st.url, run_dir):
                # Their own session: a terminal's Ctrl-C reaches only us, and we pass on one SIGINT.
                procs.append(subprocess.Popen(cmd, cwd=results.REPO_ROOT, env=env, start_new_session=True))
            if args.ui:
                print(f"locust web UI: http://127.0.0.1:{args.web_port}  (Ctrl-C to stop)", flush=True)
            while procs[0].poll() is None:
                time.sleep(0.2)  # short sleeps: Ctrl-C and SIGTERM are handled here
    except KeyboardInterrupt:
        interrupted = not args.ui  # Ctrl-C is how a web-UI session ends
    finally:
        _stop(procs)  # the master has ended (or is told to); the workers follow it
        res_log.close()
    wall = time.perf_counter() - started
    numbers = locust_numbers(run_dir, args.batch) or {}
    checked = numbers.pop("images_checked", None)
    correct = numbers.pop("images_correct", None)
    images = numbers.get("requests", 0) * args.batch
    doc = {
        **header,
        "interrupted": interrupted,
        "locust_exit_code": procs[0].returncode if procs else None,
        "wall_s": results.rounded(wall, 3),
        "locust": numbers or None,
        "accuracy": results.rounded(correct / checked, 6) if checked else None,
        "images_checked": checked,
        "resources": sampler.summary(images),
        "sampler_cpu_seconds": results.rounded(sampler.cpu_seconds, 3),
    }
    results.write_json(run_dir / "summary.json", doc)
    return doc


def print_table(doc: dict, run_dir: Path) -> None:
    s, n = doc["settings"], doc["locust"]
    print(f"\nload {doc['arch']} ({doc['runtime']}): {s['users']} users, {s['workers']} workers, batch {s['batch']}, "
          f"{s['codec']}" + ("  INTERRUPTED" if doc["interrupted"] else ""))
    if n:
        lat = n["latency_ms"]
        print(f"  {n['requests']} requests, {n['failures']} failures, {n['requests_per_s']} req/s "
              f"({n['images_per_s']} images/s), accuracy {doc['accuracy']}")
        print(f"  latency ms  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
    for name, r in doc["resources"].items():
        print(f"  {name:<10} cpu {r['cpu_percent_mean']}%  RSS {r['rss_mb_mean']} MB  PSS {r['pss_mb_mean']} MB")
    print(f"  results in {run_dir}")


def main(argv=None) -> int:
    args = parse_args(argv)
    with target.sigterm_as_interrupt():
        try:
            with target.stack_for(args.arch, args.runtime, args.run_dir) as (st, _started):
                run_dir = results.new_run_dir(f"load-{args.arch}", args.out)
                doc = run(args, st, run_dir)
                print_table(doc, run_dir)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        except runtimes.get(args.runtime).StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if doc["interrupted"]:
        return 130
    if doc["locust"] is None:
        print("error: locust wrote no statistics (see its output above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
