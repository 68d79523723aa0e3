"""Triton's perf_analyzer as a second opinion: a C++ load generator nobody here wrote.

perf_analyzer comes inside the ``tritonclient==2.51.0`` wheel, in its own venv
(``.venv-perf``, ``make setup-perf``; see requirements-perf.txt for why). It
speaks KServe v2 over HTTP: before sending anything it asks the server for
``GET /v2/models/cifar10_cnn`` (model metadata: inputs, outputs, shapes),
``GET /v2/models/cifar10_cnn/config`` (Triton's model config: max_batch_size,
decoupled, sequence batching) and ``GET /v2`` (server metadata); it asks for
``GET /v2/models/cifar10_cnn/stats`` only when ``GET /v2`` lists the
``statistics`` extension. Every request is then ``POST
/v2/models/cifar10_cnn/infer`` with the binary tensor extension: a JSON header
(``Inference-Header-Content-Length``) naming the input ``images`` UINT8
[1, 32, 32, 3] (3072 bytes after it) and asking for both outputs as binary.

:func:`run` sends real CIFAR-10 test images (its ``--input-data`` JSON file,
:func:`write_input_data`) at one concurrency or one request rate, measures in
time windows until three in a row agree within ``--stability-percentage``
(at most ``--max-trials`` windows), and returns perf_analyzer's own figures
from its CSV (``-f``) and its verbose console output. When no window is stable,
one more measurement of a fixed request count (``--request-count``) gives the
figures, marked ``stable: False``.
"""
from __future__ import annotations

import base64
import csv
import http.client
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

import numpy as np

from bench import results

VENV = results.REPO_ROOT / ".venv-perf"
MODEL = "cifar10_cnn"
INPUT = "images"
MISSING = "no .venv-perf: create it with `make setup-perf`"
# A run past its expected length is stopped: windows x trials, plus start-up.
STARTUP_S = 30.0
# Open loop: perf_analyzer's threads each hold one synchronous request, so they bound the requests in
# flight (its default is 4); as many as the harness's open-loop pool (bench.options.OPEN_LOOP_CONNECTIONS).
RATE_THREADS = 16


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer could not run, or ended without figures."""


# ------------------------------------------------------------------ where it is
def binary(venv: Path = VENV) -> Path:
    return venv / "bin" / "perf_analyzer"


def missing(venv: Path = VENV) -> str | None:
    """Why perf_analyzer cannot run here, or None when it can."""
    if not binary(venv).is_file():
        return MISSING
    if cuda_runtime_lib(venv) is None:
        return f"no libcudart in {venv} (nvidia-cuda-runtime-cu12): `make setup-perf`"
    return None


def cuda_runtime_lib(venv: Path = VENV) -> Path | None:
    """The folder of the nvidia-cuda-runtime-cu12 wheel's libcudart.so.12 (the binary links it, GPU or not)."""
    for lib in sorted(venv.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib")):
        if any(lib.glob("libcudart.so*")):
            return lib
    return None


def environment(venv: Path = VENV, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment perf_analyzer runs in: the wheel's libcudart first on LD_LIBRARY_PATH."""
    env = dict(os.environ if base is None else base)
    lib = cuda_runtime_lib(venv)
    if lib is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(lib), env.get("LD_LIBRARY_PATH", "")) if p)
    return env


def version(venv: Path = VENV) -> str | None:
    try:
        out = subprocess.run([str(binary(venv)), "--version"], env=environment(venv), capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Version\s+(\S+)", out.stdout + out.stderr)
    return match.group(1) if match else None


# ------------------------------------------------------------------ input data
def model_config(url: str, model: str = MODEL, timeout_s: float = 5.0) -> dict:
    """What the server answers to ``GET /v2/models/<model>/config`` (perf_analyzer reads the same)."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
    try:
        conn.request("GET", f"/v2/models/{model}/config")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise PerfAnalyzerError(f"GET /v2/models/{model}/config answered {resp.status}: "
                                    f"{body[:200].decode('utf-8', 'replace')}")
        return json.loads(body)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise PerfAnalyzerError(f"GET /v2/models/{model}/config failed: {exc}") from None
    finally:
        conn.close()


def request_shape(config: dict, batch: int = 1) -> list[int]:
    """The shape of one request's ``images`` as the input-data file gives it.

    With ``max_batch_size`` > 0 the batch dimension is perf_analyzer's (``-b``)
    and the file gives one image's dims; without batching it gives the whole
    tensor, batch dimension included.
    """
    if int(config.get("max_batch_size", 0) or 0) > 0:
        return [32, 32, 3]
    return [batch, 32, 32, 3]


def write_input_data(path: Path, images: np.ndarray, shape: Sequence[int] = (32, 32, 3)) -> Path:
    """perf_analyzer's ``--input-data`` JSON: one entry per image, its raw bytes in base64, sent round-robin."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    per_entry = int(np.prod(shape))
    flat = images.reshape(-1)
    if flat.size % per_entry:
        raise ValueError(f"{images.shape} images do not cut into entries of shape {list(shape)}")
    entries = [{INPUT: {"content": {"b64": base64.b64encode(flat[i:i + per_entry].tobytes()).decode("ascii")},
                        "shape": list(shape)}}
               for i in range(0, flat.size, per_entry)]
    path = Path(path)
    path.write_text(json.dumps({"data": entries}))
    return path


# ------------------------------------------------------------------ the command
@dataclass(frozen=True)
class Measurement:
    """One perf_analyzer measurement: a closed loop at ``concurrency`` or an open loop at ``rate``."""

    concurrency: int | None = None
    rate: float | None = None  # requests/s
    distribution: str = "constant"  # rate only: constant or poisson
    measurement_interval_ms: int = 5000
    stability_pct: float = 10.0
    max_trials: int = 10
    request_count: int | None = None  # a fixed count instead of stable time windows
    percentile: int | None = None  # stabilise on this latency percentile instead of the mean
    batch: int = 1
    max_threads: int | None = None

    def __post_init__(self):
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("give exactly one of concurrency and rate")
        if self.distribution not in ("constant", "poisson"):
            raise ValueError(f"unknown distribution {self.distribution!r}: constant or poisson")

    def expected_s(self) -> float:
        """How long perf_analyzer may take: every trial's window, plus start-up."""
        if self.request_count:
            return STARTUP_S + 60.0
        return STARTUP_S + self.measurement_interval_ms / 1000.0 * (self.max_trials + 1) * 1.5


def command(host_port: str, m: Measurement, *, input_data: Path | None, csv_path: Path,
            model: str = MODEL, venv: Path = VENV) -> list[str]:
    """perf_analyzer's command line for ``m`` against ``host_port`` (``127.0.0.1:8080``, no scheme)."""
    cmd = [str(binary(venv)), "-v", "-m", model, "-u", host_port, "-i", "http", "-b", str(m.batch),
           "--input-data", str(input_data) if input_data is not None else "random", "-f", str(csv_path)]
    if m.concurrency is not None:
        cmd += ["--concurrency-range", f"{m.concurrency}:{m.concurrency}"]
    else:
        cmd += ["--request-rate-range", f"{m.rate:g}:{m.rate:g}", "--request-distribution", m.distribution]
    if m.request_count:
        cmd += ["--request-count", str(m.request_count)]
    else:
        cmd += ["--measurement-interval", str(m.measurement_interval_ms),
                "--stability-percentage", f"{m.stability_pct:g}", "--max-trials", str(m.max_trials)]
    if m.percentile is not None:
        cmd += ["--percentile", str(m.percentile)]
    if m.max_threads is not None:
        cmd += ["--max-threads", str(m.max_threads)]
    return cmd


# ------------------------------------------------------------------ its output
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def parse_csv(text: str) -> list[dict]:
    """perf_analyzer's ``-f`` CSV: one dict per row, numbers as floats (latencies in usec, as written)."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        parsed = {}
        for key, value in row.items():
            if key is None:
                continue
            value = (value or "").strip()
            parsed[key.strip()] = float(value) if _NUMBER.fullmatch(value) else (value or None)
        rows.append(parsed)
    return rows


def parse_console(text: str) -> dict:
    """What the verbose console output adds to the CSV: every window, the final count, stability."""
    # "Avg latency" by default; "p50 latency" when --percentile 50 is the stabilising figure.
    passes = [{"throughput": float(t), "latency_us": float(lat), "latency": what.lower()}
              for t, what, lat in re.findall(r"Pass \[\d+\] throughput: ([\d.eE+-]+) infer/sec\. "
                                             r"(Avg|p\d+) latency: ([\d.eE+-]+) usec", text)]
    count = re.findall(r"Request count: (\d+)", text)
    overhead = re.findall(r"Avg client overhead: ([\d.]+)%", text)
    avg = re.findall(r"Avg latency: (\d+) usec \(standard deviation", text)
    return {
        "passes": passes,
        "request_count": int(count[-1]) if count else None,
        "client_overhead_pct": float(overhead[-1]) if overhead else None,
        "avg_latency_us": float(avg[-1]) if avg else None,
        "unstable": "Failed to obtain stable measurement" in text,
        "errors": [line.strip() for line in text.splitlines()
                   if line.lstrip().startswith(("error", "Error", "Thread ", "Failed"))][:10],
    }


def figures(row: dict, console: dict) -> dict:
    """The figures every caller reads, in ms and images/s, from one CSV row and the console."""
    def ms(key: str) -> float | None:
        value = row.get(key)
        return results.rounded(value / 1000.0, 3) if isinstance(value, float) else None

    throughput = row.get("Inferences/Second")
    return {
        "throughput": results.rounded(throughput, 2) if isinstance(throughput, float) else None,
        "p50_ms": ms("p50 latency"), "p90_ms": ms("p90 latency"), "p95_ms": ms("p95 latency"),
        "p99_ms": ms("p99 latency"), "avg_ms": ms("Avg latency") or (
            results.rounded(console["avg_latency_us"] / 1000.0, 3) if console.get("avg_latency_us") else None),
        "client_send_us": row.get("Client Send"), "client_recv_us": row.get("Client Recv"),
        "requests": console.get("request_count"),
    }


# ------------------------------------------------------------------ one run
@dataclass
class Outcome:
    """What one perf_analyzer process did: its exit, output, CSV and CPU."""

    command: list[str]
    returncode: int | None
    stdout: str
    csv_rows: list[dict]
    cpu_s: float | None
    wall_s: float
    timed_out: bool = False
    console: dict = field(default_factory=dict)


def _execute(cmd: list[str], csv_path: Path, timeout_s: float, venv: Path) -> Outcome:
    """Run perf_analyzer to its end or ``timeout_s``; its CPU time comes from its rusage when reaped."""
    start = time.monotonic()
    csv_path.unlink(missing_ok=True)  # a CSV left by an earlier run is not this one's figures
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environment(venv),
                                start_new_session=True)  # Ctrl-C reaches it through us, not the terminal
        cpu_s, timed_out = None, False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    cpu_s = usage.ru_utime + usage.ru_stime
                    break
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                    proc.kill()
                    proc.wait()
                    break
                time.sleep(0.05)
        except BaseException:  # Ctrl-C: stop it and go on being interrupted
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        stdout = out.read()
    text = csv_path.read_text() if csv_path.is_file() else ""
    return Outcome(cmd, proc.returncode, stdout, parse_csv(text) if text else [], cpu_s,
                   time.monotonic() - start, timed_out, parse_console(stdout))


def _cpu_ms_per_request(outcome: Outcome, m: Measurement) -> float | None:
    """perf_analyzer's CPU time per request it sent (its windows' throughput x length; else wall x rate)."""
    if outcome.cpu_s is None:
        return None
    passes = outcome.console.get("passes") or []
    if m.request_count:
        sent = m.request_count
    elif passes:
        sent = sum(p["throughput"] for p in passes) * m.measurement_interval_ms / 1000.0
    else:
        rows = outcome.csv_rows
        sent = (rows[-1].get("Inferences/Second") or 0.0) * outcome.wall_s if rows else 0.0
    return results.rounded(outcome.cpu_s * 1000.0 / sent, 4) if sent > 0 else None


def run(url: str, *, concurrency: int | None = None, rate: float | None = None, images: np.ndarray | None = None,
        measurement_interval_ms: int = 5000, stability_pct: float = 10.0, max_trials: int = 10,
        distribution: str = "constant", percentile: int | None = None, request_count: int | None = None,
        fallback_count: int | None = 500, batch: int = 1, max_threads: int | None = None,
        timeout_s: float | None = None,
        work_dir: Path | None = None, model: str = MODEL, venv: Path = VENV) -> dict:
    """Measure the server at ``url`` with perf_analyzer; its figures as a dict.

    ``images`` (uint8 [N, 32, 32, 3]) are sent round-robin, as real input data;
    without them perf_analyzer sends random bytes. ``work_dir`` keeps the
    input-data file, the CSV and the console output (a temporary folder
    otherwise). Returns ``throughput`` (images/s), ``p50_ms``, ``p90_ms``,
    ``p95_ms``, ``p99_ms``, ``avg_ms``, ``requests`` (in the measured windows),
    ``stable``, ``client_cpu_ms_per_request``, ``settings``, ``command``,
    ``note`` and ``raw`` (the CSV rows and console details). Raises
    :class:`PerfAnalyzerError` when perf_analyzer is missing or gives no figures.
    """
    why = missing(venv)
    if why:
        raise PerfAnalyzerError(why)
    if rate is not None and max_threads is None:
        max_threads = RATE_THREADS
    m = Measurement(concurrency=concurrency, rate=rate, distribution=distribution,
                    measurement_interval_ms=measurement_interval_ms, stability_pct=stability_pct,
                    max_trials=max_trials, request_count=request_count, percentile=percentile, batch=batch,
                    max_threads=max_threads)
    parts = urlsplit(url if "//" in url else f"http://{url}")
    host_port = f"{parts.hostname}:{parts.port or 80}"
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        input_data = None
        if images is not None:
            shape = request_shape(model_config(url, model), batch)
            input_data = write_input_data(folder / "input-data.json", images, shape)
        label = f"c{concurrency}" if concurrency is not None else f"r{rate:g}"
        csv_path = folder / f"perf_analyzer-{label}.csv"
        cmd = command(host_port, m, input_data=input_data, csv_path=csv_path, model=model, venv=venv)
        outcome = _execute(cmd, csv_path, timeout_s or m.expected_s(), venv)
        (folder / f"perf_analyzer-{label}.log").write_text(outcome.stdout)
        stable, note = True, ""
        if not outcome.csv_rows and outcome.console.get("unstable") and fallback_count and not request_count:
            # No three windows agreed: one fixed-count measurement still says where the server stands.
            stable = False
            note = (f"no stable measurement in {max_trials} windows of {measurement_interval_ms} ms "
                    f"(within {stability_pct:g}%): figures from one window of {fallback_count} requests")
            m_count = Measurement(concurrency=concurrency, rate=rate, distribution=distribution,
                                  request_count=fallback_count, percentile=percentile, batch=batch,
                                  max_threads=max_threads)
            cmd = command(host_port, m_count, input_data=input_data, csv_path=csv_path, model=model, venv=venv)
            first, outcome = outcome, _execute(cmd, csv_path, timeout_s or m_count.expected_s(), venv)
            (folder / f"perf_analyzer-{label}-count.log").write_text(outcome.stdout)
            outcome.console["unstable_windows"] = first.console.get("passes")
            m = m_count
        elif outcome.console.get("unstable"):
            stable = False
    if not outcome.csv_rows:
        tail = "\n".join(outcome.stdout.strip().splitlines()[-8:])
        what = "timed out" if outcome.timed_out else f"exited {outcome.returncode}"
        raise PerfAnalyzerError(f"perf_analyzer {what} without figures: {tail}")
    row = outcome.csv_rows[-1]
    return {
        **figures(row, outcome.console),
        "stable": stable,
        "client_cpu_ms_per_request": _cpu_ms_per_request(outcome, m),
        "note": note,
        "settings": {"concurrency": concurrency, "rate": rate, "distribution": distribution if rate else None,
                     "measurement_interval_ms": measurement_interval_ms, "stability_pct": stability_pct,
                     "max_trials": max_trials, "request_count": request_count, "percentile": percentile,
                     "batch": batch, "max_threads": max_threads, "input_data": "CIFAR-10 test images" if images is not None else "random",
                     "images": None if images is None else int(len(images))},
        "command": [Path(cmd[0]).name, *cmd[1:]],
        "raw": {"csv": outcome.csv_rows, "passes": outcome.console.get("passes"),
                "client_overhead_pct": outcome.console.get("client_overhead_pct"),
                "unstable_windows": outcome.console.get("unstable_windows"),
                "returncode": outcome.returncode, "cpu_s": results.rounded(outcome.cpu_s, 3),
                "wall_s": results.rounded(outcome.wall_s, 3)},
    }


def main(argv=None) -> int:
    """``python -m bench.perf_analyzer URL CONCURRENCY``: one quick measurement with 1,000 test images, printed."""
    from servebench import data

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m bench.perf_analyzer URL CONCURRENCY", file=sys.stderr)
        return 2
    try:
        images = data.load_test(limit=1000).images
        out = run(args[0], concurrency=int(args[1]), images=images, measurement_interval_ms=2000)
    except (PerfAnalyzerError, data.DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in out.items() if k != "raw"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
