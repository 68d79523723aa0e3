"""wrk as a fourth witness: the load generator many users reach for first (Debian's ``wrk`` 4.1).

:func:`run` posts the crosscheck's own pre-encoded requests (KServe v2 binary,
one image each) with ``bench/wrk_post.lua``, in turn, over ``concurrency``
keep-alive connections on one wrk thread (one event loop, as light as wrk
gets), for ``duration_s``, and reads wrk's own figures from the script's
``done`` callback.

Where it differs from the others: wrk is a closed loop timed from its side of
the socket (request written to answer read, per connection), over a fixed
duration, with no stability windows (perf_analyzer measures in windows until
three agree) and no answer check (ours compares every class with its label).
Like ours and perf_analyzer, it does not correct for coordinated omission
(wrk2 does, for open loops). Its CPU time comes from its rusage when reaped.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

from bench import results

SCRIPT = Path(__file__).with_name("wrk_post.lua")
MARKER = "WRK_SUMMARY "
TIMEOUT_S = 30  # wrk's per-request timeout (its default, 2 s, would count a slow answer as an error)
MISSING = "wrk is not installed (Debian: apt-get install wrk; `make setup` installs it as root)"


class WrkError(RuntimeError):
    """wrk could not run, or ended without its figures."""


def binary() -> str | None:
    return shutil.which("wrk")


def missing() -> str | None:
    """Why wrk cannot run here, or None when it can."""
    return None if binary() else MISSING


def version() -> str | None:
    if missing():
        return None
    out = subprocess.run([binary(), "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout + out.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].strip() if first else None


def write_requests(requests: Sequence, work_dir: Path) -> tuple[Path, Path]:
    """The bodies, one file, and an index of (offset, length, JSON header length) lines, for the Lua script."""
    work_dir.mkdir(parents=True, exist_ok=True)
    bodies, index = work_dir / "bodies.bin", work_dir / "index.txt"
    offset, lines = 0, []
    with bodies.open("wb") as out:
        for req in requests:
            out.write(req.body)
            header = dict(req.headers).get("Inference-Header-Content-Length", "-")
            lines.append(f"{offset} {len(req.body)} {header}")
            offset += len(req.body)
    index.write_text("\n".join(lines) + "\n")
    return bodies, index


def command(url: str, path: str, content_type: str, bodies: Path, index: Path, *, concurrency: int,
            duration_s: float) -> list[str]:
    parts = urlsplit(url)
    base = f"{parts.scheme or 'http'}://{parts.hostname}:{parts.port or 80}"
    return [binary() or "wrk", "-t", "1", "-c", str(concurrency), "-d", f"{max(1, round(duration_s))}s",
            "--timeout", f"{TIMEOUT_S}s", "-s", str(SCRIPT), base, "--", path, content_type, str(bodies), str(index)]


def parse(stdout: str) -> dict:
    """The script's summary line (raises WrkError without one)."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise WrkError(f"wrk printed no summary: {stdout.strip()[-300:] or 'no output'}")


def figures(summary: dict, cpu_s: float | None) -> dict:
    """Its rows' fields: requests, throughput, p50/p90/p99 ms, errors, CPU per request."""
    n, seconds = summary["requests"], summary["duration_us"] / 1e6
    errors = sum(summary["errors"].values())
    lat = summary["latency_us"]
    return {"requests": n, "errors": errors, "errors_by_kind": {k: v for k, v in summary["errors"].items() if v},
            "throughput": results.rounded((n - summary["errors"]["status"]) / seconds, 2) if seconds > 0 else None,
            "p50_ms": results.rounded(lat["p50"] / 1000.0, 3), "p90_ms": results.rounded(lat["p90"] / 1000.0, 3),
            "p99_ms": results.rounded(lat["p99"] / 1000.0, 3), "duration_s": results.rounded(seconds, 3),
            "client_cpu_ms_per_request": results.rounded(cpu_s * 1000.0 / n, 4) if cpu_s is not None and n else None}


def run(url: str, requests: Sequence, *, concurrency: int, duration_s: float, work_dir: Path) -> dict:
    """wrk at ``concurrency`` for ``duration_s`` against ``url`` (the same path and bodies as ``requests``)."""
    why = missing()
    if why:
        raise WrkError(why)
    if not requests:
        raise WrkError("no requests to send")
    first = requests[0]
    bodies, index = write_requests(requests, work_dir)
    cmd = command(url, first.path or "/", first.content_type, bodies, index, concurrency=concurrency,
                  duration_s=duration_s)
    out_path = work_dir / f"wrk-c{concurrency}-{time.time_ns()}.txt"
    with out_path.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + duration_s + TIMEOUT_S + 30
        usage = None
        try:
            while usage is None:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    usage, proc.returncode = ru, os.waitstatus_to_exitcode(status)
                elif time.monotonic() > deadline:
                    raise WrkError(f"wrk ran past {duration_s + TIMEOUT_S + 30:.0f} s")
                else:
                    time.sleep(0.05)
        finally:
            if proc.returncode is None:  # interrupted or overdue: stop it by its PID
                proc.kill()
                proc.wait()
    text = out_path.read_text()
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}: {text.strip()[-300:]}")
    out = figures(parse(text), usage.ru_utime + usage.ru_stime)
    return {**out, "command": cmd, "output": out_path.name, "threads": 1, "connections": concurrency}
