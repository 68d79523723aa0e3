"""Each configuration's operating point at the asked rate, the constraints it meets, and the ranking.

The operating point at RATE (images/s) rests on a measured level at or above it:

- an open loop offered at least RATE that kept up (answered >= 95% of what it
  was offered): its p99 is the p99 at that offered rate;
- else a closed loop whose throughput is at least RATE, with its p99 (a closed
  loop paces itself, so its tail is a weaker witness: the answer says which
  kind of level it rests on).

The level nearest above RATE is used (open loops first). p99 is never
interpolated: it rises steeply near saturation, so between two levels it is
not a straight line; the level above RATE bounds it.

CPU per image at RATE comes from the two measured levels nearest to RATE in
throughput (one on each side when there are; else the two nearest above) that
kept up: the server's busy cores are fitted as ``idle + per_image x
throughput`` (what a process costs while it waits, plus what each image
costs), so CPU per image at RATE is ``idle / RATE + per_image``. That is how
CPU per image falls with load in the sweeps, and it lets a level measured at
a higher rate speak for RATE. Where the fit is not sound (the two levels are
too close in throughput, or it gives a negative term: CPU per image rising
with load, as contention does near saturation) the nearest level's own figure
is used. The answer says which.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.advise.candidates import Configuration, Level
from servebench.settings import env_name, knob_defaults

SATURATION_SWEEPS = "make study STUDY=saturation SB_SATURATION_PARTS=sweeps"


@dataclass
class Constraints:
    slo_p99_ms: float
    rate: float  # images/s
    max_cpu: float | None = None  # cores
    max_mem_mb: float | None = None


@dataclass
class Point:
    """A configuration at RATE: what it would do, and which constraints fail by how much."""

    config: Configuration
    level: Level | None  # the level it rests on (None: nothing measured at or above RATE)
    cpu_ms_per_image: float | None
    cpu_from: list[Level] = field(default_factory=list)  # the levels CPU per image at RATE was fitted from
    failures: dict[str, dict] = field(default_factory=dict)  # constraint -> {"limit", "value", "over", "over_pct"}

    @property
    def meets(self) -> bool:
        return self.level is not None and not self.failures

    def cores(self, rate: float) -> float | None:
        return None if self.cpu_ms_per_image is None else self.cpu_ms_per_image * rate / 1000.0

    def shortfall(self) -> float:
        """How far off it is: the largest relative excess over a constraint (0 when it meets them all)."""
        return max((f["over_pct"] if f["over_pct"] is not None else float("inf") for f in self.failures.values()),
                   default=0.0)

    def basis(self, rate: float) -> str:
        if self.level is None:
            return "no level at or above the rate"
        lv = self.level
        text = (f"{lv.describe()}: {lv.throughput:g} images/s, p99 {lv.p99_ms:g} ms "
                f"({'measured at an offered rate >= RATE' if lv.mode == 'open' else 'closed loop, throughput >= RATE'})")
        if len(self.cpu_from) == 2:
            a, b = self.cpu_from
            text += (f"; CPU/image fitted at {rate:g} images/s from {a.describe()} ({a.throughput:g} images/s) "
                     f"and {b.describe()} ({b.throughput:g} images/s)")
        elif self.cpu_from:
            text += f"; CPU/image that of {self.cpu_from[0].describe()} ({self.cpu_from[0].throughput:g} images/s)"
        return text

    def as_dict(self, rate: float) -> dict:
        cores = self.cores(rate)
        return {"configuration": self.config.label, "arch": self.config.arch, "meets": self.meets,
                "level": None if self.level is None else self.level.as_dict(),
                "cpu_ms_per_image": _r(self.cpu_ms_per_image, 4), "cores_at_rate": _r(cores, 3),
                "memory_mb": self.config.memory_mb, "basis": self.basis(rate),
                "cpu_fitted": len(self.cpu_from) == 2, "cpu_from": [lv.as_dict() for lv in self.cpu_from],
                "failures": self.failures, "run_ids": self.config.run_ids}


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def _failure(limit: float, value: float) -> dict:
    over = value - limit
    return {"limit": limit, "value": round(value, 4), "over": round(over, 4),
            "over_pct": round(100.0 * over / limit, 1) if limit else None}


# A closed loop never queues more than its concurrency, where Poisson arrivals at RATE do: its p99 stands for
# RATE only with headroom (RATE at most this share of what it sustained). Measured here: embedded's closed loop
# at concurrency 1 sustained 205 images/s at p99 8 ms, and an open loop at 172/s (84% of it) had p99 29 ms.
CLOSED_LOOP_HEADROOM = 0.7


def _at_or_above(levels: list[Level], rate: float) -> list[Level]:
    """Levels that stand for RATE: the open loop offered at or nearest above RATE that kept up (what Poisson
    arrivals at RATE get; a closed loop never says more), else closed loops that sustained RATE with headroom
    (CLOSED_LOOP_HEADROOM), nearest first."""
    open_ = sorted((lv for lv in levels if lv.mode == "open" and lv.offered and lv.offered >= rate and lv.served),
                   key=lambda lv: lv.offered)
    if open_:
        return open_[:1]
    return sorted((lv for lv in levels if lv.mode == "closed" and lv.throughput * CLOSED_LOOP_HEADROOM >= rate),
                  key=lambda lv: lv.throughput)


MIN_SPREAD = 1.05  # two levels this close in throughput say nothing about how CPU changes with it


def cpu_at(levels: list[Level], rate: float) -> tuple[float | None, list[Level]]:
    """CPU per image at RATE and the levels it came from (see the module docstring)."""
    usable = [lv for lv in levels if lv.served and lv.cpu_ms_per_image is not None and lv.throughput > 0]
    if not usable:
        return None, []
    below = sorted((lv for lv in usable if lv.throughput < rate), key=lambda lv: rate - lv.throughput)
    above = sorted((lv for lv in usable if lv.throughput >= rate), key=lambda lv: lv.throughput - rate)
    nearest = min(usable, key=lambda lv: abs(lv.throughput - rate))
    pairs = [(below[0], above[0])] if below and above else []
    if len(above) > 1:
        pairs.append((above[0], next((lv for lv in above[1:] if lv.throughput > above[0].throughput * MIN_SPREAD),
                                     above[-1])))
    for lo, hi in pairs:
        t1, t2 = sorted((lo.throughput, hi.throughput))
        if t2 < t1 * MIN_SPREAD:
            continue
        c1, c2 = (lo.cpu_ms_per_image, hi.cpu_ms_per_image) if lo.throughput <= hi.throughput else \
            (hi.cpu_ms_per_image, lo.cpu_ms_per_image)
        idle = (c1 - c2) / (1.0 / t1 - 1.0 / t2)  # ms of CPU per second while idle
        per_image = c1 - idle / t1
        if idle >= 0 and per_image >= 0:
            return idle / rate + per_image, sorted((lo, hi), key=lambda lv: lv.throughput)
    return nearest.cpu_ms_per_image, [nearest]


def operating_point(cfg: Configuration, c: Constraints) -> Point:
    above = _at_or_above(cfg.levels, c.rate)
    if not above:
        best = max(cfg.levels, key=lambda lv: lv.throughput if lv.served else 0.0, default=None)
        point = Point(cfg, None, None)
        point.failures["rate"] = _failure(c.rate, cfg.max_throughput()) | {
            "over": round(c.rate - cfg.max_throughput(), 2),
            "over_pct": round(100.0 * (c.rate - cfg.max_throughput()) / c.rate, 1),
            "note": (f"sustains at most {cfg.max_throughput():g} images/s" if cfg.max_throughput() < c.rate else
                     f"its closed loops reached {cfg.max_throughput():g} images/s, short of the "
                     f"{CLOSED_LOOP_HEADROOM:.0%} headroom a closed loop needs to stand for an open rate; an open "
                     f"loop at RATE would say")
                    + (f" ({best.describe()})" if best else "")}
        return point
    fitting = [lv for lv in above if lv.p99_ms <= c.slo_p99_ms]
    level = fitting[0] if fitting else min(above, key=lambda lv: lv.p99_ms)
    cpu, cpu_from = cpu_at(cfg.levels, c.rate)
    point = Point(cfg, level, cpu, cpu_from)
    if level.p99_ms > c.slo_p99_ms:
        point.failures["p99_ms"] = _failure(c.slo_p99_ms, level.p99_ms)
    cores = point.cores(c.rate)
    if c.max_cpu is not None and (cores is None or cores > c.max_cpu):
        point.failures["cpu_cores"] = _failure(c.max_cpu, cores) if cores is not None else \
            {"limit": c.max_cpu, "value": None, "over": None, "over_pct": None, "note": "CPU not measured"}
    if c.max_mem_mb is not None and (cfg.memory_mb is None or cfg.memory_mb > c.max_mem_mb):
        point.failures["memory_mb"] = _failure(c.max_mem_mb, cfg.memory_mb) if cfg.memory_mb is not None else \
            {"limit": c.max_mem_mb, "value": None, "over": None, "over_pct": None,
             "note": "memory not measured"}
    return point


def rank(points: list[Point]) -> list[Point]:
    """Those that meet every constraint, by CPU per image, then memory (unmeasured last)."""
    inf = float("inf")
    meeting = [p for p in points if p.meets]
    return sorted(meeting, key=lambda p: (p.cpu_ms_per_image if p.cpu_ms_per_image is not None else inf,
                                          p.config.memory_mb if p.config.memory_mb is not None else inf))


def closest(points: list[Point], n: int = 3) -> list[Point]:
    """The configurations nearest to meeting the constraints (smallest largest relative excess), those that
    sustain RATE first."""
    return sorted((p for p in points if not p.meets),
                  key=lambda p: (p.level is None, p.shortfall(), p.cpu_ms_per_image or 0))[:n]


def describe_failures(p: Point, c: Constraints) -> str:
    texts = []
    for name, f in p.failures.items():
        if name == "rate":
            texts.append(f"RATE {c.rate:g} images/s is {f['over']:g} above what it sustains ({f['note']})")
        elif name == "p99_ms":
            texts.append(f"p99 {f['value']:g} ms is {f['over']:g} ms ({f['over_pct']:g}%) over the SLO "
                         f"{f['limit']:g} ms ({p.level.describe()})")
        elif name == "cpu_cores":
            texts.append(f"needs {f['value']:.2f} cores, {f['over']:.2f} ({f['over_pct']:g}%) over MAX_CPU "
                         f"{f['limit']:g}" if f.get("value") is not None else f"{f['note']} (MAX_CPU)")
        elif name == "memory_mb":
            texts.append(f"memory {f['value']:g} MB is {f['over']:g} MB ({f['over_pct']:g}%) over MAX_MEM_MB "
                         f"{f['limit']:g}" if f.get("value") is not None else f"{f['note']} (MAX_MEM_MB)")
    return "; ".join(texts)


def next_sweep(p: Point | None, c: Constraints) -> str:
    """The sweep that would find out: the closest configuration measured again around RATE."""
    if p is None:
        return SATURATION_SWEEPS
    cfg = p.config
    batching = "on" if cfg.batching == "on" else "off"
    size = cfg.knob("batch_max_size") if batching == "on" else None
    threads = cfg.knob("frontend_threads") or cfg.knob("backend_threads")
    rate = c.rate / cfg.batch
    # The sweep sets threads and batching itself; any other knob that differs from today's default is passed.
    set_by_sweep = {env_name(f) for f in ("frontend_threads", "backend_threads", "batch_max_size", "batch_timeout_ms")}
    defaults = knob_defaults()
    extra = [f"{k}={v}" for k, v in cfg.knobs.items() if k not in set_by_sweep and defaults.get(k) != v]
    return " ".join([f"make sweep ARCH={cfg.arch} BATCHING={batching}",
                     f"SWEEP_RATES=\"{rate * 0.75:g} {rate:g} {rate * 1.1:g}\"",
                     *([f"SWEEP_BATCH_MAX_SIZE={size}"] if size else []), *([f"SWEEP_THREADS={threads}"] if threads else []),
                     *extra])
