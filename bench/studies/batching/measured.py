"""The batching study's figures as measured: which runs count, each set-up's repeats as medians with their
min-max (:class:`bench.studies.saturation.headline.Spread`), and each goal of the issue judged on the medians
(None where something was not measured).

Repeats are the bench runs of one set-up (architecture, stack, codec, concurrency) from one commit, runtime
and image count; when a set-up was measured again, the newest set counts. The in-process reference and
model curve are the study's own runs with the newest one's commit. A run's stack is "one-knob" when its
stack reports ``SB_BATCH_MAX_SIZE`` above 1, else "defaults". The model curve is the study's own, else the
newest set in the results (:func:`curves_of`).
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.formats import number
from bench.report import archs
from bench.report.runs import Run
from bench.studies.saturation.headline import Spread, curve_runs, medians_of, model_cpu_ms, server_cpu_ms, spread

STUDY = "batching"
STACKS = ("defaults", "one-knob")
GOAL_CONCURRENCY = 32  # the saturated level
EMBEDDED = "embedded"
# The issue's goals (benchmarks, not timed tests): embedded's bar, then the other architectures'.
GOALS = {"ratio_at_32": (1.3, 1.2), "ratio_every": 1.0, "p50_c1_ms": 0.3, "efficiency": (0.60, 0.40),
         "json_overhead_ms": (1.0, 2.0)}
MET, NOT_MET = "met", "not met"


def bar(goal: str, arch: str) -> float:
    """The goal's bar for ``arch``: embedded's own, or Flask's and FastAPI's."""
    found = GOALS[goal]
    return found if not isinstance(found, tuple) else found[0] if arch == EMBEDDED else found[1]


# --------------------------------------------------------------------------- which runs

def stack_of(run: Run) -> str:
    size = number(run.get("stack", "knobs", "SB_BATCH_MAX_SIZE"))
    return "one-knob" if size and size > 1 else "defaults"


def threads_of(run: Run) -> str:
    """The threads in force as the stack reported them: 'front end/backend' threads per worker."""
    knobs = run.get("stack", "knobs") or {}
    return f"{knobs.get('SB_FRONTEND_THREADS', '?')}/{knobs.get('SB_BACKEND_THREADS', '?')}"


def is_study_bench(run: Run) -> bool:
    return (run.kind == "bench" and not run.interrupted and run.arch is not None and run.get("study") == STUDY
            and run.codec in ("raw", "json") and run.batch == 1 and run.rate is None
            and run.call_path == "signature" and not run.get("settings", "loadgen"))


def newest_sets(runs: list[Run]) -> dict[tuple[str, str, str, int], list[Run]]:
    """(arch, stack, codec, concurrency) -> the repeats of the newest set measured, in registry order."""
    sets: dict[tuple, dict[tuple, list[Run]]] = {}
    for run in runs:
        if is_study_bench(run):
            key = (run.arch, stack_of(run), run.codec, run.concurrency)
            origin = (run.runtime, run.n, run.record.provenance.git_commit)
            sets.setdefault(key, {}).setdefault(origin, []).append(run)
    out = {key: max(found.values(), key=lambda rs: max(r.newest_key for r in rs)) for key, found in sets.items()}
    return dict(sorted(out.items(), key=lambda kv: (archs.order(kv[0][0]), STACKS.index(kv[0][1]), kv[0][2],
                                                    kv[0][3])))


def own_runs(runs: list[Run], kind: str) -> list[Run]:
    """The study's complete runs of ``kind`` with the newest one's commit (its repeats)."""
    done = [r for r in runs if r.kind == kind and not r.interrupted and r.get("study") == STUDY]
    if not done:
        return []
    newest = max(done, key=lambda r: r.newest_key)
    return [r for r in done if r.record.provenance.git_commit == newest.record.provenance.git_commit]


def reference_p50(runs: list[Run]) -> Spread | None:
    """The model's own p50 at batch 1, in process, over the study's reference repeats."""
    return spread(r.get("latency_ms", "p50") for r in own_runs(runs, "reference"))


# --------------------------------------------------------------------------- the figures

@dataclass
class Cell:
    """One set-up's repeats and their figures."""

    arch: str
    stack: str
    codec: str
    concurrency: int
    runs: list[Run]
    p50: Spread | None
    p99: Spread | None
    throughput: Spread | None
    server_cpu: Spread | None
    efficiency: Spread | None
    batch: Spread | None  # the mean batch the server ran
    threads: str  # as the stacks reported them

    @property
    def n(self) -> int:
        return len(self.runs)


def curves_of(runs: list[Run]) -> list[Run]:
    """The model curves the efficiency reads: the study's own, else the newest set any study measured."""
    return own_runs(runs, "model-curve") or curve_runs(runs)


def cells(runs: list[Run]) -> dict[tuple[str, str, str, int], Cell]:
    curves = curves_of(runs)
    out = {}
    for (arch, stack, codec, c), found in newest_sets(runs).items():
        server = [server_cpu_ms(r) for r in found]
        model = [model_cpu_ms(r, curves) for r in found]
        out[(arch, stack, codec, c)] = Cell(
            arch, stack, codec, c, found,
            p50=spread(r.get("latency_ms", "p50") for r in found),
            p99=spread(r.get("latency_ms", "p99") for r in found),
            throughput=spread(r.get("throughput_images_per_s") for r in found),
            server_cpu=spread(server),
            efficiency=spread(m / s for m, s in zip(model, server) if m and s),
            batch=spread(r.get("server_batch", "mean") for r in found),
            threads=", ".join(sorted({threads_of(r) for r in found})))
    return out


def batch_size(table: dict) -> str:
    """The one-knob stacks' SB_BATCH_MAX_SIZE as they reported it ('32'; '16/32' if the sets differ)."""
    sizes = sorted({str(r.get("stack", "knobs", "SB_BATCH_MAX_SIZE")) for c in table.values()
                    if c.stack == "one-knob" for r in c.runs}, key=lambda x: number(x) or 0)
    return "/".join(sizes) or "?"


def arches_of(table: dict) -> list[str]:
    return list(dict.fromkeys(key[0] for key in table))


def levels(table: dict, arch: str) -> list[int]:
    """The raw-body levels measured in both stacks of ``arch``."""
    found = [{c for (a, s, codec, c) in table if a == arch and s == stack and codec == "raw"} for stack in STACKS]
    return sorted(found[0] & found[1])


def goal_level(table: dict, arch: str) -> int | None:
    """The issue's level (32 in flight) where measured, else the highest level of both stacks."""
    found = levels(table, arch)
    return GOAL_CONCURRENCY if GOAL_CONCURRENCY in found else (found[-1] if found else None)


@dataclass(frozen=True)
class Derived:
    """A figure computed from two spreads' medians, with the range their extremes allow."""

    value: float
    lo: float
    hi: float
    basis: str  # 'the medians of 3 repeats each'


def ratio(on: Spread | None, off: Spread | None) -> Derived | None:
    if not on or not off or not off.median or not off.lo:
        return None
    return Derived(on.median / off.median, on.lo / off.hi, on.hi / off.lo, medians_of([on, off]))


def difference(a: Spread | None, b: Spread | None) -> Derived | None:
    if not a or not b:
        return None
    return Derived(a.median - b.median, a.lo - b.hi, a.hi - b.lo, medians_of([a, b]))


def ratios(table: dict, arch: str) -> dict[int, Derived]:
    """Per raw-body level: the one-knob stack's images/s over the defaults'."""
    out = {}
    for c in levels(table, arch):
        r = ratio(table[(arch, "one-knob", "raw", c)].throughput, table[(arch, "defaults", "raw", c)].throughput)
        if r:
            out[c] = r
    return out


# --------------------------------------------------------------------------- the goals

def _row(key: str, goal: str, arch: str, target: str, measured: str | None, ok: bool | None, sample: str) -> dict:
    return {"key": key, "goal": goal, "arch": arch, "target": target, "measured": measured, "ok": ok,
            "sample": sample}


def _times(d: Derived) -> str:
    return f"{d.value:.2f}× ({d.lo:.2f}–{d.hi:.2f})"


def _ms(d: Derived) -> str:
    return f"{d.value:+.2f} ms ({d.lo:+.2f} to {d.hi:+.2f})"


def _pct(s: Spread) -> str:
    return s.cell(lambda x: f"{x:.0%}")


def _sample(*spreads) -> str:
    """'median of 3 repeats' (or '2-3'), or 'one run'."""
    ns = sorted({s.n for s in spreads if s is not None})
    if not ns or ns == [1]:
        return "one run"
    return f"median of {ns[0]} repeats" if len(ns) == 1 else f"median of {ns[0]}-{ns[-1]} repeats"


def goal_rows(runs: list[Run], table: dict | None = None) -> list[dict]:
    """Each goal of the issue per architecture, judged on the medians: key (ratio, every, p50, efficiency,
    json), goal, arch, target, measured (median and min-max), ok (None: not measured) and sample ('median of N
    repeats' or 'one run')."""
    table = cells(runs) if table is None else table
    ref = reference_p50(runs)
    knob = f"SB_BATCH_MAX_SIZE={batch_size(table)} alone"
    out = []
    for arch in arches_of(table):
        top = goal_level(table, arch)
        by_level = ratios(table, arch)
        at_top = by_level.get(top)

        def cell(stack: str, codec: str, c: int | None) -> Cell | None:
            return table.get((arch, stack, codec, c))

        sample = _sample(*(x.throughput for x in (cell("defaults", "raw", top), cell("one-knob", "raw", top)) if x))
        want = bar("ratio_at_32", arch)
        out.append(_row("ratio", f"{knob} ÷ defaults, images/s at {top or GOAL_CONCURRENCY} in flight",
                        arch, f"≥ {want}×", _times(at_top) if at_top else None,
                        at_top.value >= want if at_top else None, sample))
        worst = min(by_level.items(), key=lambda kv: kv[1].value, default=None)
        floor = GOALS["ratio_every"]
        span = f"{min(by_level)}–{max(by_level)}" if by_level else ""
        out.append(_row("every", f"{knob} ÷ defaults at every concurrency {span}".rstrip(), arch,
                        f"≥ {floor}× at each",
                        f"lowest {_times(worst[1])} at {worst[0]} in flight" if worst else None,
                        worst[1].value >= floor if worst else None,
                        _sample(*(x.throughput for x in table.values() if x.arch == arch and x.codec == "raw"))))
        one, base = cell("one-knob", "raw", 1), cell("defaults", "raw", 1)
        d = difference(one.p50 if one else None, base.p50 if base else None)
        out.append(_row("p50", f"p50 at concurrency 1 (raw), {knob} − defaults", arch,
                        f"≤ +{GOALS['p50_c1_ms']} ms", _ms(d) if d else None,
                        d.value <= GOALS["p50_c1_ms"] if d else None,
                        _sample(one.p50 if one else None, base.p50 if base else None)))
        batched = cell("one-knob", "raw", top)
        eff = batched.efficiency if batched else None
        want = bar("efficiency", arch)
        out.append(_row("efficiency", f"server efficiency, {knob}, {top or GOAL_CONCURRENCY} in flight (raw)",
                        arch, f"≥ {want:.0%}", _pct(eff) if eff else None, eff.median >= want if eff else None,
                        _sample(eff)))
        js = cell("defaults", "json", 1)
        d = difference(js.p50 if js else None, ref)
        want = bar("json_overhead_ms", arch)
        out.append(_row("json", "p50 at concurrency 1 with JSON bodies − in-process p50 (defaults)", arch,
                        f"≤ +{want} ms", _ms(d) if d else None, d.value <= want if d else None,
                        _sample(js.p50 if js else None, ref)))
    return out


def verdict_text(ok: bool | None) -> str:
    return "not measured" if ok is None else MET if ok else NOT_MET
