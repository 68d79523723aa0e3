"""The scale-out study's figures as measured: each set-up's repeats as medians with their min-max
(:class:`bench.studies.saturation.headline.Spread`), Ray's CPU and memory per process group, the faults, the
load generators' link, and the issue's goals judged on the medians (None where something was not measured).

A set-up is (architecture, batching mode, Ray replicas, Ray nodes, concurrency); its repeats are the study's
bench runs from one commit, runtime and image count, the newest set when it was measured again. Only the runs
of the machine the newest study run used count: one section never puts two machines side by side.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench import provenance
from bench.formats import number
from bench.report import archs
from bench.report.runs import Run
from bench.studies.saturation.headline import Spread, batching_mode, server_cpu_ms, spread

STUDY = "scale-out"
RAY = "rayserve"
MODES = ("off", "on")
PYTHON_STACKS = ("embedded", "flask", "fastapi")  # ours, in Python: the goal's "best Python stack"
BATCHING_GOAL = 1.3  # Ray Serve, batching on / off at saturation
PEER_GOAL = 1.0  # our best Python stack / Ray Serve, at every concurrency
MET, NOT_MET = "met", "not met"
CLIENT = "client"


def machine_key(run: Run) -> tuple:
    return provenance.same_machine_key(run.record.provenance.machine or {})


def own(runs: list[Run]) -> list[Run]:
    """The study's runs on the machine of its newest one."""
    mine = [r for r in runs if r.get("study") == STUDY and not r.interrupted]
    if not mine:
        return []
    key = machine_key(max(mine, key=lambda r: r.newest_key))
    return [r for r in mine if machine_key(r) == key]


def ray_shape(run: Run) -> tuple[int, int]:
    """(replicas, nodes) of a Ray Serve run's stack; (1, 1) for any other architecture."""
    if run.arch != RAY:
        return (1, 1)
    knobs = run.get("stack", "knobs") or {}
    return (int(number(knobs.get("SB_RAY_REPLICAS")) or 1), int(number(knobs.get("SB_RAY_NODES")) or 1))


def is_study_bench(run: Run) -> bool:
    return (run.kind == "bench" and run.arch is not None and run.codec == "raw" and run.batch == 1
            and run.rate is None and not run.get("settings", "loadgen"))


@dataclass
class Cell:
    """One set-up's repeats and their figures."""

    arch: str
    mode: str
    shape: tuple[int, int]
    concurrency: int
    runs: list[Run]
    p50: Spread | None
    p99: Spread | None
    throughput: Spread | None
    server_cpu: Spread | None  # ms per image, every service but the load generator
    server_pss: Spread | None  # MB, every service's mean PSS summed
    batch: Spread | None

    @property
    def n(self) -> int:
        return len(self.runs)


def _pss(run: Run) -> float | None:
    found = [number(v.get("pss_mb_mean")) for k, v in (run.get("resources") or {}).items() if k != CLIENT]
    found = [f for f in found if f is not None]
    return sum(found) if found else None


def cells(runs: list[Run]) -> dict[tuple, Cell]:
    """(arch, mode, (replicas, nodes), concurrency) -> its cell, in registry order."""
    sets: dict[tuple, dict[tuple, list[Run]]] = {}
    for run in own(runs):
        if is_study_bench(run):
            key = (run.arch, batching_mode(run), ray_shape(run), run.concurrency)
            origin = (run.runtime, run.n, run.record.provenance.git_commit)
            sets.setdefault(key, {}).setdefault(origin, []).append(run)
    out = {}
    for key, found in sorted(sets.items(), key=lambda kv: (archs.order(kv[0][0]), kv[0][1], kv[0][2], kv[0][3])):
        rs = max(found.values(), key=lambda group: max(r.newest_key for r in group))
        out[key] = Cell(*key, rs, p50=spread(r.get("latency_ms", "p50") for r in rs),
                        p99=spread(r.get("latency_ms", "p99") for r in rs),
                        throughput=spread(r.get("throughput_images_per_s") for r in rs),
                        server_cpu=spread(server_cpu_ms(r) for r in rs), server_pss=spread(_pss(r) for r in rs),
                        batch=spread(r.get("server_batch", "mean") for r in rs))
    return out


def ladder(table: dict, arch: str, mode: str) -> dict[int, Cell]:
    """concurrency -> cell, of one architecture's single-replica stack in one batching mode."""
    return {k[3]: c for k, c in table.items() if k[0] == arch and k[1] == mode and k[2] == (1, 1)}


def arches_of(table: dict) -> list[str]:
    return list(dict.fromkeys(k[0] for k in table))


def saturated(table: dict, arch: str, mode: str) -> Cell | None:
    """The level of the ladder whose median throughput is highest."""
    found = [c for c in ladder(table, arch, mode).values() if c.throughput]
    return max(found, key=lambda c: c.throughput.median, default=None)


@dataclass
class Derived:
    value: float
    basis: str  # what it rests on


def ratio(a: Spread | None, b: Spread | None) -> Derived | None:
    if not a or not b or not b.median:
        return None
    return Derived(a.median / b.median, f"{a.n}/{b.n} repeats")


def batching_gain(table: dict, arch: str = RAY) -> Derived | None:
    """Saturated throughput, batching on / off (each mode at its own best level)."""
    on, off = saturated(table, arch, "on"), saturated(table, arch, "off")
    return ratio(on.throughput, off.throughput) if on and off else None


def best_python(table: dict, mode: str, c: int) -> Cell | None:
    found = [ladder(table, a, mode).get(c) for a in PYTHON_STACKS if a in arches_of(table)]
    return max((x for x in found if x and x.throughput), key=lambda x: x.throughput.median, default=None)


def peer_ratios(table: dict, mode: str) -> dict[int, tuple[Cell, Derived]]:
    """concurrency -> (our best Python stack's cell, its images/s ÷ Ray Serve's), batching ``mode`` on both."""
    out = {}
    for c, ray in ladder(table, RAY, mode).items():
        best = best_python(table, mode, c)
        r = ratio(best.throughput, ray.throughput) if best else None
        if r:
            out[c] = (best, r)
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- Ray's process groups

def parts(cell: Cell) -> dict[str, tuple[Spread | None, Spread | None]]:
    """Ray Serve's process groups: part -> (CPU ms per image, mean PSS MB), over the cell's repeats."""
    names = list(dict.fromkeys(p for r in cell.runs for p in (r.get("resources", RAY, "parts") or {})))
    return {p: (spread(1000.0 * (number(r.get("resources", RAY, "parts", p, "cpu_seconds_per_image")) or 0.0)
                       for r in cell.runs),
                spread(r.get("resources", RAY, "parts", p, "pss_mb_mean") for r in cell.runs)) for p in names}


def services(cell: Cell) -> dict[str, tuple[Spread | None, Spread | None]]:
    """Every service but the load generator: service -> (CPU ms per image, mean PSS MB)."""
    names = list(dict.fromkeys(k for r in cell.runs for k in (r.get("resources") or {}) if k != CLIENT))
    return {s: (spread(1000.0 * (number(r.get("resources", s, "cpu_seconds_per_image")) or 0.0) for r in cell.runs),
                spread(r.get("resources", s, "pss_mb_mean") for r in cell.runs)) for s in names}


@dataclass
class CpuSplit:
    """Where a cell's server CPU per image went (medians of its repeats, ms per image)."""

    replicas: float  # the Serve replicas (the model and @serve.batch)
    rest_of_ray: float  # GCS, raylets, proxy, controller, agents, supervisor
    front: float  # nginx and the Django front end
    total: float


def cpu_split(cell: Cell) -> CpuSplit | None:
    """A Ray Serve cell's CPU per image split into what batching can shrink (the replicas) and what it cannot."""
    found = parts(cell)
    ray = services(cell).get(RAY, (None, None))[0]
    if not found or not ray or not cell.server_cpu or "replicas" not in found or not found["replicas"][0]:
        return None
    replicas = found["replicas"][0].median
    return CpuSplit(replicas, ray.median - replicas, cell.server_cpu.median - ray.median, cell.server_cpu.median)


def batching_ceiling(off: CpuSplit, on: CpuSplit) -> float | None:
    """The gain batching on would give were the replicas' CPU free and CPU the only limit: off's total ÷ on's
    total without its replicas. What batching cannot shrink bounds it."""
    rest = on.total - on.replicas
    return off.total / rest if rest > 0 else None


# --------------------------------------------------------------------------- faults and load

def faults(runs: list[Run]) -> dict[str, list[Run]]:
    """fault -> its runs (the newest commit's), replica kills first."""
    done = [r for r in own(runs) if r.kind == "fault"]
    out: dict[str, list[Run]] = {}
    for fault in ("replica", "node"):
        mine = [r for r in done if r.get("settings", "fault") == fault]
        if mine:
            commit = max(mine, key=lambda r: r.newest_key).record.provenance.git_commit
            out[fault] = sorted((r for r in mine if r.record.provenance.git_commit == commit),
                                key=lambda r: r.newest_key)
    return out


def loads(runs: list[Run]) -> dict[str, list[Run]]:
    """"local" / "netns" -> the study's locust runs from the newest commit."""
    done = [r for r in own(runs) if r.kind == "load" and r.get("locust")]
    if not done:
        return {}
    commit = max(done, key=lambda r: r.newest_key).record.provenance.git_commit
    out: dict[str, list[Run]] = {}
    for r in done:
        if r.record.provenance.git_commit == commit:
            out.setdefault(r.get("settings", "load_hosts") or "local", []).append(r)
    return {k: out[k] for k in ("local", "netns") if k in out}


def load_figures(rs: list[Run]) -> dict[str, Spread | None]:
    def client_ms(r: Run) -> float | None:
        cpu = number(r.get("resources", CLIENT, "cpu_seconds"))
        n = number(r.get("locust", "requests"))
        return 1000.0 * cpu / n if cpu is not None and n else None

    return {"rps": spread(r.get("locust", "requests_per_s") for r in rs),
            "p50": spread(r.get("locust", "latency_ms", "p50") for r in rs),
            "p99": spread(r.get("locust", "latency_ms", "p99") for r in rs),
            "failures": spread(r.get("locust", "failures") for r in rs),
            "client_cpu": spread(client_ms(r) for r in rs)}


# --------------------------------------------------------------------------- the projection

def cores_of(cell: Cell) -> int | None:
    found = [number(r.record.provenance.machine.get("logical_cpus")) for r in cell.runs
             if r.record.provenance.machine]
    found = [f for f in found if f]
    return int(found[0]) if found else None


def busy_cores(cell: Cell) -> float | None:
    """Cores the server processes kept busy: CPU per image times images/s (medians)."""
    if not cell.server_cpu or not cell.throughput:
        return None
    return cell.server_cpu.median * cell.throughput.median / 1000.0


def nodes_needed(rate: float, cpu_ms: float, cores: int, utilisation: float) -> int:
    """Nodes of ``cores`` each at ``utilisation``, for ``rate`` images/s at ``cpu_ms`` CPU per image."""
    import math

    return max(1, math.ceil(rate * cpu_ms / 1000.0 / (cores * utilisation)))
