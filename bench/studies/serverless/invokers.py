"""How a function is invoked: one interface (:class:`Invoker`), three runtimes.

- :class:`LocalInvoker`: each function instance is a worker process
  (:mod:`bench.studies.serverless.worker`) in a cgroup of its own with the
  function's memory as a hard limit and CPU in proportion to it, as on Lambda
  (``Limits.lambda_like``: 1,769 MB = one vCPU). A cold invocation starts a
  fresh worker (it imports TensorFlow and reads the weights from the store); a
  warm one reuses an idle worker of the same function and memory. Over its
  memory the kernel kills the worker: reported as ``out_of_memory``. Past the
  timeout the invoker kills it: ``timeout``. Peak memory is the cgroup's.
- :class:`DockerInvoker`: the same worker in a container, ``docker run -i
  --memory --cpus`` (RUNTIME=docker); peak memory from the container's cgroup.
- :class:`LambdaInvoker`: AWS Lambda through boto3 (``invoke`` with the log
  tail, whose REPORT line gives duration, billed duration and max memory).
  Written for users with an account; checked here only against botocore's Stubber.

Every invoker returns an :class:`Invocation` (failures too: ``ok`` false, with
the kind and why); billing follows the price table (:mod:`bench.studies.serverless.cost`).
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from bench.studies.serverless.cost import PriceTable
from servebench import cgroups, processes
from servebench.settings import REPO_ROOT

# One count for the process: two invokers in it never name a cgroup or container the same.
_WORKER_IDS = itertools.count()


@dataclass(frozen=True)
class FunctionSpec:
    """A deployed function: which stage, its memory (MB) and timeout."""

    name: str  # e.g. "alexnet-Conv_1"
    memory_mb: int
    timeout_s: float = 900.0


@dataclass
class Invocation:
    function: str
    memory_mb: int
    cold: bool
    ok: bool
    duration_s: float  # what Lambda would bill: the invocation, plus init when the table bills it
    billed_ms: int
    init_s: float = 0.0  # the cold start's imports (0 warm)
    peak_memory_mb: float | None = None
    bytes_read: int = 0
    bytes_written: int = 0
    images: int = 0
    kind: str | None = None  # why it failed
    error: str | None = None
    cost_usd: float = 0.0
    started_s: float = 0.0  # time.monotonic() at the start (the orchestrator makes it relative)
    detail: dict = field(default_factory=dict)  # the handler's own timings

    def row(self) -> dict:
        d = asdict(self)
        d.update(d.pop("detail"))
        return d


class Invoker(Protocol):
    prices: PriceTable

    def invoke(self, spec: FunctionSpec, event: dict) -> Invocation: ...

    def close(self) -> None: ...


def _billing(prices: PriceTable, spec: FunctionSpec, run_s: float, init_s: float) -> tuple[float, int, float]:
    duration = run_s + (init_s if prices.bills_init else 0.0)
    billed = prices.billed_ms(duration)
    return duration, billed, prices.invocation_cost(spec.memory_mb, billed / 1000)


def _from_result(spec, prices, result: dict, cold: bool, run_s: float, init_s: float, started: float,
                 peak_mb: float | None) -> Invocation:
    duration, billed, cost = _billing(prices, spec, run_s, init_s)
    detail = {k: result[k] for k in ("load_s", "read_s", "compute_s", "write_s", "weights_loaded") if k in result}
    return Invocation(function=spec.name, memory_mb=spec.memory_mb, cold=cold, ok=bool(result.get("ok")),
                      duration_s=round(duration, 6), billed_ms=billed, init_s=round(init_s, 6),
                      peak_memory_mb=peak_mb, bytes_read=int(result.get("bytes_read", 0)),
                      bytes_written=int(result.get("bytes_written", 0)), images=int(result.get("images", 0)),
                      kind=result.get("kind"), error=result.get("error"), cost_usd=cost, started_s=started,
                      detail=detail)


# ------------------------------------------------------------------ local workers
class _Worker:
    """One function instance: a launched worker process, in its cgroup (or its container's client)."""

    def __init__(self, proc: processes.Process, container: str = ""):
        self.proc = proc
        self.started = proc.started  # just before the fork: the cold start's clock
        self.container = container
        self.used = False

    @property
    def group(self) -> cgroups.CGroup | None:
        return self.proc.cgroup

    def peak_mb(self) -> float | None:
        try:
            if self.group is not None:
                return self.group.peak_memory_bytes() / 2**20
            if self.container:
                return _container_peak(self.container) / 2**20
        except (OSError, ValueError):
            return None
        return None

    def reset_peak(self) -> None:
        try:
            if self.group is not None:
                self.group.reset_peak()
        except OSError:
            pass

    def oom_killed(self) -> bool:
        try:
            if self.group is not None:
                return self.group.oom_kills() > 0
        except OSError:
            pass
        return False

    def stop(self) -> None:
        """Close its stdin (a worker then exits), SIGKILL after 5 s; its cgroup removed."""
        stop_workers([self])


def stop_workers(workers: list[_Worker]) -> None:
    """Close their stdins (a worker then exits), SIGKILL what is left after 5 s, all at once: a worker with a
    small CPU share takes seconds to exit, and one after another that adds up."""
    for w in workers:
        try:
            if w.proc.stdin:
                w.proc.stdin.close()
        except OSError:
            pass
    processes.stop_all([w.proc for w in workers], [(None, 5.0)])


def _readline(proc: processes.Process, deadline: float) -> bytes | None:
    """One line of the worker's answers, or None at the deadline (b'' when it died)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if sel.select(timeout=min(left, 1.0)):
                return proc.stdout.readline()
    finally:
        sel.close()


class LocalInvoker:
    """Functions as worker processes in cgroups on this machine (see the module's doc)."""

    runtime = "local"

    def __init__(self, prices: PriceTable, *, max_idle: int = 8, log_dir: Path | None = None,
                 python: str | None = None,
                 limits: Callable[[int], cgroups.Limits] = cgroups.Limits.lambda_like):
        self.prices = prices
        self.limits = limits  # a function's memory (MB) -> its cgroup's limits: Lambda's CPU share by default
        self.max_idle = max_idle  # idle workers kept warm, all functions together (oldest go first)
        self.log_dir = log_dir
        self.python = python or sys.executable
        self._idle: list[tuple[tuple[str, int], _Worker]] = []
        self._lock = threading.Lock()
        self._closed = False

    def unavailable(self) -> str | None:
        return cgroups.unavailable()

    # -------------------------------------------------------------- workers
    def _env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update({"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
        return env

    def _log_path(self, spec: FunctionSpec) -> Path:
        return Path(os.devnull) if self.log_dir is None else self.log_dir / f"{spec.name}.log"

    def _spawn(self, spec: FunctionSpec) -> _Worker:
        why = cgroups.unavailable()
        if why:
            raise RuntimeError(f"local functions need cgroups for their memory limits: {why}")
        limits = self.limits(spec.memory_mb)
        cpus = f"{limits.cpus or 0:.4f}"  # 0: no quota, TensorFlow's own thread count
        proc = processes.launch([self.python, "-m", "bench.studies.serverless.worker", "--cpus", cpus],
                                env=self._env(), cwd=REPO_ROOT, log_path=self._log_path(spec),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, limits=limits,
                                cgroup=f"serverless-{os.getpid()}-{next(_WORKER_IDS)}")
        return _Worker(proc)

    def _take(self, spec: FunctionSpec) -> tuple[_Worker, bool]:
        key = (spec.name, spec.memory_mb)
        with self._lock:
            for i, (k, w) in enumerate(self._idle):
                if k == key and w.proc.poll() is None:
                    del self._idle[i]
                    return w, False
        return self._spawn(spec), True

    def _give_back(self, spec: FunctionSpec, worker: _Worker) -> None:
        evicted = []
        with self._lock:
            if self._closed:
                evicted.append(worker)
            else:
                self._idle.append(((spec.name, spec.memory_mb), worker))
                while len(self._idle) > self.max_idle:
                    evicted.append(self._idle.pop(0)[1])
        stop_workers(evicted)

    # -------------------------------------------------------------- the interface
    def invoke(self, spec: FunctionSpec, event: dict) -> Invocation:
        worker, cold = self._take(spec)
        started = worker.started if cold else time.monotonic()
        if not cold:
            worker.reset_peak()
        deadline = started + spec.timeout_s
        try:
            worker.proc.stdin.write((json.dumps(event) + "\n").encode())
            worker.proc.stdin.flush()
            line = _readline(worker.proc, deadline)
        except BrokenPipeError:
            line = b""
        elapsed = time.monotonic() - started
        if line:
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                result = {"ok": False, "kind": "crashed", "error": f"unreadable answer {line[:200]!r}"}
            init_s = float(result.get("init_s", 0.0))
            inv = _from_result(spec, self.prices, result, cold, elapsed - init_s, init_s, started, worker.peak_mb())
            if inv.ok or inv.kind not in ("crashed",):
                self._give_back(spec, worker)
            else:
                worker.stop()
            return inv
        # No answer: killed over its memory, died, or still running at the deadline.
        peak = worker.peak_mb()
        if line is None:
            kind, error = "timeout", f"{spec.name}: no answer within its timeout of {spec.timeout_s:g} s; killed"
            if worker.group is not None:
                worker.group.kill()
            else:
                worker.proc.kill()
        else:
            code = worker.proc.wait(timeout=10)
            if worker.oom_killed() or code in (-9, 137):
                kind = "out_of_memory"
                error = (f"{spec.name}: killed over its memory limit of {spec.memory_mb} MB "
                         f"(peak {peak or 0:.0f} MB, exit {code})")
            else:
                kind, error = "crashed", f"{spec.name}: the worker exited with code {code}"
        worker.stop()
        result = {"ok": False, "kind": kind, "error": error}
        return _from_result(spec, self.prices, result, cold, elapsed, 0.0, started, peak)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        stop_workers([w for _, w in idle])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------ containers
def _container_peak(container: str) -> int:
    """A container's peak memory, from its cgroup (v1, Docker's cgroupfs layout)."""
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", container], capture_output=True, text=True,
                         timeout=10).stdout.strip()
    return int((Path("/sys/fs/cgroup/memory/docker") / cid / "memory.max_usage_in_bytes").read_text())


class DockerInvoker(LocalInvoker):
    """The same workers as containers: ``docker run -i --rm --network host --memory --cpus IMAGE``.

    RUNTIME=docker. The image is the Python services' (docker/python-service.Dockerfile),
    which holds servebench and TensorFlow. Docker kills a container over its memory with
    exit 137 and sets State.OOMKilled; the invoker reports it as out of memory.
    """

    runtime = "docker"

    def __init__(self, prices: PriceTable, *, image: str = "servebench/frontend:latest", **kw):
        super().__init__(prices, **kw)
        self.image = image

    def unavailable(self) -> str | None:
        from servebench import compose

        return None if compose.engine_answers() else "no Docker engine answers (RUNTIME=docker needs one)"

    def argv(self, spec: FunctionSpec, name: str) -> list[str]:
        limits = self.limits(spec.memory_mb)
        return ["docker", "run", "-i", "--rm", "--name", name, "--network", "host", *limits.docker_args(),
                "-e", "TF_CPP_MIN_LOG_LEVEL=2", self.image,
                "python", "-m", "bench.studies.serverless.worker", "--cpus", f"{limits.cpus or 0:.4f}"]

    def _spawn(self, spec: FunctionSpec) -> _Worker:
        name = f"servebench-fn-{os.getpid()}-{next(_WORKER_IDS)}"
        proc = processes.launch(self.argv(spec, name), env=dict(os.environ), log_path=self._log_path(spec),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return _Worker(proc, container=name)


# ------------------------------------------------------------------ AWS Lambda
REPORT = re.compile(r"REPORT RequestId:.*?Duration: (?P<duration>[\d.]+) ms\s+Billed Duration: (?P<billed>\d+) ms"
                    r"\s+Memory Size: (?P<size>\d+) MB\s+Max Memory Used: (?P<used>\d+) MB"
                    r"(?:\s+Init Duration: (?P<init>[\d.]+) ms)?")


class LambdaInvoker:
    """Functions on AWS Lambda, one per stage, named ``<prefix><spec.name>`` (deploy them yourself:
    handler ``bench.studies.serverless.handler.lambda_handler``). Never run or reported here."""

    runtime = "lambda"

    def __init__(self, prices: PriceTable, *, prefix: str = "servebench-", client=None, region: str = "us-east-1"):
        import boto3

        self.prices = prices
        self.prefix = prefix
        self.client = client or boto3.client("lambda", region_name=region)
        self._memory: dict[str, tuple[int, float]] = {}

    def unavailable(self) -> str | None:
        return None

    def configure(self, spec: FunctionSpec) -> None:
        """Set the function's memory and timeout (Lambda caps the timeout at 900 s)."""
        name = self.prefix + spec.name
        want = (spec.memory_mb, spec.timeout_s)
        if self._memory.get(name) == want:
            return
        self.client.update_function_configuration(FunctionName=name, MemorySize=spec.memory_mb,
                                                  Timeout=int(min(900, max(1, round(spec.timeout_s)))))
        self.client.get_waiter("function_updated_v2").wait(FunctionName=name)
        self._memory[name] = want

    def invoke(self, spec: FunctionSpec, event: dict) -> Invocation:
        self.configure(spec)
        started = time.monotonic()
        resp = self.client.invoke(FunctionName=self.prefix + spec.name, InvocationType="RequestResponse",
                                  LogType="Tail", Payload=json.dumps(event).encode())
        elapsed = time.monotonic() - started
        payload = resp["Payload"].read()
        log = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
        m = REPORT.search(log)
        try:
            result = json.loads(payload) if payload else {}
        except json.JSONDecodeError:
            result = {}
        if resp.get("FunctionError"):
            text = json.dumps(result) + log
            if "Task timed out" in text:
                kind = "timeout"
            elif "Runtime.OutOfMemory" in text or "signal: killed" in text or "MemoryError" in text:
                kind = "out_of_memory"
            else:
                kind = "crashed"
            result = {"ok": False, "kind": kind, "error": f"{spec.name}: {result.get('errorMessage', kind)}"}
        init_s = float(m["init"]) / 1000 if m and m["init"] else 0.0
        run_s = float(m["duration"]) / 1000 if m else elapsed
        inv = _from_result(spec, self.prices, result, init_s > 0, run_s, init_s, started,
                           float(m["used"]) if m else None)
        if m:  # Lambda's own bill wins over our rounding
            inv.billed_ms = int(m["billed"])
            inv.cost_usd = self.prices.invocation_cost(spec.memory_mb, inv.billed_ms / 1000)
        return inv

    def close(self) -> None:
        pass


def make(runtime: str, prices: PriceTable, **kw) -> Invoker:
    """The invoker for RUNTIME (native -> local cgroup workers, docker, lambda)."""
    if runtime in ("native", "local"):
        return LocalInvoker(prices, **kw)
    if runtime == "docker":
        return DockerInvoker(prices, **kw)
    if runtime == "lambda":
        return LambdaInvoker(prices, **{k: v for k, v in kw.items() if k in ("prefix", "client", "region")})
    raise ValueError(f"unknown function runtime {runtime!r}: native, docker or lambda")
