"""Load shapes: what load a command offers, level by level, apart from what generates it.

As locust's ``LoadTestShape.tick()`` says the next (users, spawn rate) and the
runner does the rest, a :class:`Shape` here says the next :class:`Level` and
:func:`drive` hands it to the command's runner (bench.client's closed or open
loop, LoadGen, a frame stream, perf_analyzer), whose answers go to the one
recorder the command gave it. A shape never sends a request; a runner never
decides what comes next.

The interface, in full::

    level = shape.tick(outcomes)   # the next Level, or None when the shape is done;
                                   # outcomes: the records of the levels run so far, in order
    outcomes = drive(shape, run)   # run(level) -> that level's record (a dict); a record with
                                   # "interrupted": true ends the shape

Shapes: :class:`ClosedLoop`, :class:`OpenLoop` (constant or Poisson
arrivals), :class:`SoakShape` (a capacity probe, then constant arrivals at a
share of it), :class:`Stepped` (closed-loop levels, then open-loop levels at
fractions of the saturated throughput, each level measured in windows until
:class:`StabilityRule` says it is stable or has run out of windows),
:class:`LoadGenScenario` (MLPerf LoadGen's SingleStream and Server: LoadGen is
the runner), :class:`FrameStream` (a camera's frames, warm-up first) and
:class:`Scripted` (a generator's levels, each yield answered with its outcome).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generator, Mapping, Sequence

import numpy as np

from bench import results

STABILITY_METRICS = ("throughput_images_per_s", "p50_ms")  # p50, not perf_analyzer's mean: one GC pause moves a mean

CLOSED, OPEN, FRAMES = "closed", "open", "frames"
SINGLESTREAM, SERVER = "singlestream", "server"  # LoadGen's scenarios


# ------------------------------------------------------------------ the stability rule
def agree(values: list[float | None], tolerance: float) -> bool:
    """Every value positive and the largest at most ``1 + tolerance`` times the smallest."""
    if not values or any(v is None or v <= 0 for v in values):
        return False
    return max(values) / min(values) <= 1.0 + tolerance


def stable_run(windows: list[dict], needed: int = 3, tolerance: float = 0.10,
               metrics: tuple[str, ...] = STABILITY_METRICS) -> int | None:
    """The index of the first window of the first ``needed`` consecutive windows that agree, or None."""
    for i in range(len(windows) - needed + 1):
        run = windows[i:i + needed]
        if all(agree([w.get(m) for w in run], tolerance) for m in metrics):
            return i
    return None


def chosen_windows(windows: list[dict], needed: int = 3, tolerance: float = 0.10) -> tuple[list[int], bool]:
    """The windows a level's figures come from, and whether they agree: the first agreeing run, else the
    last ``needed`` (an unstable level)."""
    first = stable_run(windows, needed, tolerance)
    if first is not None:
        return list(range(first, first + needed)), True
    return list(range(max(0, len(windows) - needed), len(windows))), False


def median_of(windows: list[dict], key: str) -> float | None:
    values = [w[key] for w in windows if w.get(key) is not None]
    return results.rounded(float(np.median(values)), 3) if values else None


@dataclass(frozen=True)
class StabilityRule:
    """perf_analyzer's rule on p50: ``needed`` consecutive windows agree within ``tolerance`` in throughput and
    p50, measured up to ``limit`` windows, else the level is unstable (its figures from the last ``needed``)."""

    needed: int = 3
    tolerance: float = 0.10
    limit: int = 10

    def chosen(self, windows: list[dict]) -> tuple[list[int], bool]:
        return chosen_windows(windows, self.needed, self.tolerance)

    def settled(self, windows: list[dict]) -> bool:
        """Measure no more windows: they agree, or the limit is reached."""
        return self.chosen(windows)[1] or len(windows) >= self.limit


# ------------------------------------------------------------------ levels and shapes
@dataclass(frozen=True)
class Level:
    """One load level, as a runner needs it and a record keeps it.

    ``kind``: closed (``concurrency`` requests in flight), open (``rate`` per
    second, ``arrivals`` constant or poisson, on ``connections``), frames
    (``rate`` frames/s, None: as fast as a window of ``concurrency`` allows),
    singlestream or server (LoadGen's scenarios). It ends after ``seconds`` or
    ``count`` requests/frames (whichever the runner reads), or, with a
    ``rule``, when the rule settles its windows of ``window_s`` after
    ``warmup_s`` unmeasured. ``measured`` False: a warm-up, not recorded.
    """

    kind: str
    concurrency: int | None = None
    rate: float | None = None
    arrivals: str = "constant"
    connections: int | None = None
    seconds: float | None = None
    count: int | None = None
    warmup_s: float = 0.0
    window_s: float | None = None
    rule: StabilityRule | None = None
    label: str = ""
    measured: bool = True
    extra: Mapping = field(default_factory=dict)  # recorded with the level (a rate fraction, LoadGen's bounds)

    @property
    def longest_s(self) -> float | None:
        """How long the level can last: its seconds, or its warm-up and every window the rule allows."""
        if self.rule is not None and self.window_s:
            return self.warmup_s + self.rule.limit * self.window_s
        return self.seconds

    def spec(self) -> dict:
        """The level as its record starts: ``mode`` and what sets its load."""
        doc: dict = {"mode": self.kind}
        if self.kind == OPEN:
            doc.update({"rate": self.rate, **self.extra, "arrivals": self.arrivals, "connections": self.connections})
        elif self.kind == FRAMES:
            doc.update({"rate": self.rate, "window": self.concurrency, "count": self.count, **self.extra})
        elif self.kind in (SINGLESTREAM, SERVER):
            doc.update({"scenario": self.kind, "rate": self.rate, "connections": self.concurrency, **self.extra})
        else:
            doc.update({"concurrency": self.concurrency, **self.extra})
        return doc


Outcome = dict  # a level's record, as its runner returned it


class Shape:
    """A load shape: :meth:`tick` says the next level (or None: done) from the outcomes so far."""

    def tick(self, outcomes: Sequence[Outcome]) -> Level | None:
        raise NotImplementedError


class Fixed(Shape):
    """Levels known in advance, one after the other."""

    def __init__(self, levels: Sequence[Level]):
        self.levels = list(levels)

    def tick(self, outcomes: Sequence[Outcome]) -> Level | None:
        return self.levels[len(outcomes)] if len(outcomes) < len(self.levels) else None


class ClosedLoop(Fixed):
    """``concurrency`` requests in flight, each sent when the last one's answer is in; ``repeats`` passes."""

    def __init__(self, concurrency: int, *, seconds: float | None = None, count: int | None = None,
                 measured: bool = True, label: str = "", repeats: int = 1):
        super().__init__([Level(CLOSED, concurrency=concurrency, seconds=seconds, count=count, measured=measured,
                                label=label)] * repeats)


class OpenLoop(Fixed):
    """Requests at ``rate`` per second whatever the answers do (constant or Poisson arrivals); ``repeats``
    passes (the runner draws each pass's Poisson arrivals from its own seed)."""

    def __init__(self, rate: float, *, arrivals: str = "constant", connections: int = 64,
                 seconds: float | None = None, count: int | None = None, label: str = "", repeats: int = 1):
        if arrivals not in ("constant", "poisson"):
            raise ValueError(f"unknown arrivals {arrivals!r}: constant or poisson")
        super().__init__([Level(OPEN, rate=rate, arrivals=arrivals, connections=connections, seconds=seconds,
                                count=count, label=label)] * repeats)


def soak_rate(capacity_images_per_s: float, load: float, batch: int) -> float:
    """Requests/s that put ``load`` x capacity (images/s) on the stack."""
    if capacity_images_per_s <= 0:
        raise ValueError("capacity must be positive")
    return load * capacity_images_per_s / batch


class SoakShape(Shape):
    """``warmup`` unmeasured requests, a closed-loop capacity probe (unless ``rate`` is given), then constant
    arrivals at ``load`` x the capacity (the probe's outcome's ``images_per_s``) for ``seconds``."""

    def __init__(self, *, seconds: float, load: float, batch: int = 1, rate: float | None = None,
                 probe_concurrency: int = 8, probe_s: float = 15.0, warmup: int = 0, connections: int = 64):
        self.seconds, self.load, self.batch, self.rate = seconds, load, batch, rate
        self.probe_concurrency, self.probe_s, self.warmup, self.connections = (probe_concurrency, probe_s,
                                                                               warmup, connections)

    def tick(self, outcomes: Sequence[Outcome]) -> Level | None:
        plan = []
        if self.warmup:
            plan.append(Level(CLOSED, concurrency=max(1, min(self.probe_concurrency, self.warmup)),
                              count=self.warmup, measured=False, label="warm-up"))
        if self.rate is None:
            plan.append(Level(CLOSED, concurrency=self.probe_concurrency, seconds=self.probe_s, label="capacity"))
        if len(outcomes) < len(plan):
            return plan[len(outcomes)]
        if len(outcomes) > len(plan):
            return None
        rate = self.rate if self.rate is not None else soak_rate(outcomes[-1]["images_per_s"], self.load, self.batch)
        return Level(OPEN, rate=rate, arrivals="constant", connections=self.connections, seconds=self.seconds,
                     label="soak")


def saturation(levels: list[dict]) -> dict | None:
    """The closed-loop level with the highest throughput, among the stable ones when there are any."""
    closed = [(i, lv) for i, lv in enumerate(levels) if lv["mode"] == CLOSED and lv.get("throughput_images_per_s")]
    pool = [(i, lv) for i, lv in closed if lv.get("stable")] or closed
    if not pool:
        return None
    i, lv = max(pool, key=lambda x: x[1]["throughput_images_per_s"])
    keep = ("concurrency", "throughput_images_per_s", "p50_ms", "p99_ms", "batch_size", "cpu_ms_per_image",
            "server_cpu_ms_per_image", "client_cpu_ms_per_image", "model_cpu_ms_per_image", "server_efficiency",
            "served_fraction")
    return {"level": i, "stable": bool(lv.get("stable")), **{k: lv.get(k) for k in keep}}


def open_rates(rates: Sequence[float], fractions: Sequence[float], batch: int,
               saturated_images_per_s: float | None) -> list[tuple[float, float | None]]:
    """(requests/s, fraction of the saturated throughput or None) of the open-loop levels: ``rates`` when
    given, else ``fractions`` of the saturated throughput (none when nothing saturated)."""
    if rates:
        return [(float(r), None) for r in rates]
    if not saturated_images_per_s:
        return []
    per_request = saturated_images_per_s / batch
    return [(round(f * per_request, 2), f) for f in fractions]


class Stepped(Shape):
    """The sweep's levels: closed loops at each of ``concurrency``, then open loops at ``rates`` (or at
    ``fractions`` of the saturated closed-loop throughput, :func:`saturation` of the outcomes), each level
    measured in windows under ``rule``."""

    def __init__(self, concurrency: Sequence[int], *, rule: StabilityRule, window_s: float, warmup_s: float = 0.0,
                 rates: Sequence[float] = (), fractions: Sequence[float] = (), batch: int = 1,
                 arrivals: str = "poisson", connections: int = 64):
        self.concurrency, self.rule, self.window_s, self.warmup_s = list(concurrency), rule, window_s, warmup_s
        self.rates, self.fractions, self.batch = list(rates), list(fractions), batch
        self.arrivals, self.connections = arrivals, connections
        self._open: list[tuple[float, float | None]] | None = None

    def _level(self, kind: str, **load) -> Level:
        return Level(kind, warmup_s=self.warmup_s, window_s=self.window_s, rule=self.rule, **load)

    def tick(self, outcomes: Sequence[Outcome]) -> Level | None:
        k = len(outcomes)
        if k < len(self.concurrency):
            return self._level(CLOSED, concurrency=self.concurrency[k])
        if self._open is None:  # the closed loops are done: the open-loop rates follow from them
            sat = saturation(list(outcomes))
            self._open = open_rates(self.rates, self.fractions, self.batch,
                                    (sat or {}).get("throughput_images_per_s"))
        k -= len(self.concurrency)
        if k >= len(self._open):
            return None
        rate, fraction = self._open[k]
        return self._level(OPEN, rate=rate, arrivals=self.arrivals, connections=self.connections,
                           extra={"rate_fraction": fraction})


class LoadGenScenario(Fixed):
    """One MLPerf LoadGen test: SingleStream (one query at a time) or Server (Poisson arrivals at
    ``target_qps`` on ``connections``). LoadGen is the runner: it schedules and judges; ``count`` and
    ``seconds`` are its minimum query count and duration, ``extra`` the rest of its settings."""

    def __init__(self, scenario: str, *, target_qps: float | None = None, connections: int = 16,
                 min_queries: int = 1024, min_duration_s: float = 10.0, **settings):
        if scenario not in (SINGLESTREAM, SERVER):
            raise ValueError(f"unknown scenario {scenario!r}: {SINGLESTREAM} or {SERVER}")
        if scenario == SERVER and not target_qps:
            raise ValueError("the server scenario needs a target QPS")
        server = scenario == SERVER
        super().__init__([Level(scenario, concurrency=connections if server else 1,
                                rate=target_qps if server else None, arrivals="poisson" if server else "constant",
                                count=min_queries, seconds=min_duration_s, label=f"LoadGen {scenario}",
                                extra=settings)])


class FrameStream(Shape):
    """A camera's stream: ``warmup`` frames as fast as the window allows (not measured), then ``repeats``
    passes of ``n`` frames at ``rate`` frames/s (None: as fast as possible), ``window`` frames in flight."""

    def __init__(self, n: int, *, rate: float | None = None, window: int = 8, warmup: int = 0, repeats: int = 1):
        plan = [Level(FRAMES, concurrency=window, count=warmup, measured=False, label="warm-up")] if warmup else []
        plan += [Level(FRAMES, concurrency=window, rate=rate, count=n, label=f"pass {k + 1}") for k in range(repeats)]
        self.plan = plan

    def tick(self, outcomes: Sequence[Outcome]) -> Level | None:
        return self.plan[len(outcomes)] if len(outcomes) < len(self.plan) else None


class Scripted(Shape):
    """Levels from a script: a generator function whose ``outcome = yield level`` gets each level's outcome
    back, for a plan that reads like the steps it takes (crosscheck's tools in turn, one rate set by an
    earlier level's throughput). A script decides; it never sends a request."""

    def __init__(self, script: Callable[[], Generator[Level, Outcome, None]]):
        self.script = script
        self._steps: Generator[Level, Outcome, None] | None = None

    def tick(self, outcomes: Sequence[Outcome]) -> Level | None:
        try:
            if self._steps is None:
                self._steps = self.script()
                return next(self._steps)
            return self._steps.send(outcomes[-1])
        except StopIteration:
            return None


# ------------------------------------------------------------------ the driver
def drive(shape: Shape, run: Callable[[Level], Outcome]) -> list[Outcome]:
    """Run each level the shape says with ``run`` (the command's runner, which feeds its recorder), until the
    shape is done or a level's outcome says ``interrupted``; every outcome, warm-ups included, in order."""
    outcomes: list[Outcome] = []
    while (level := shape.tick(outcomes)) is not None:
        outcome = run(level)
        outcomes.append(outcome)
        if outcome.get("interrupted"):
            break
    return outcomes

