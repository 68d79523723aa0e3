"""The saturation study's headline comparison: architecture against architecture on repeated runs, each figure
the median of its repeats with their min-max and count, and the model curve's limit the same way.

The headline runs are the study's bench runs (:func:`bench.studies.saturation.experiments.headline`): raw
bodies, one image a request, at concurrency 1 and at the saturated concurrency, batching off and on, each
repeat a run folder of its own. Repeats are the runs of one set-up (architecture, runtime, batching mode,
concurrency, images) from one commit; when a set-up was measured again, the newest set counts. The model
curve's repeats are the complete curves with the newest one's settings and commit.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from bench.formats import number, significant
from bench.report import archs
from bench.report.runs import Run, dig
from bench.studies.saturation import measured
from bench.studies.saturation.measured import GOALS, is_python, limit_of

STUDY = "saturation"
MODES = ("off", "on")
CLIENT = "client"


@dataclass(frozen=True)
class Spread:
    """A figure measured in ``n`` repeats: its median and range."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)

    def text(self, show: Callable[[float], str] = significant, unit: str = "") -> str:
        """'X unit (median of N repeats, a–b)', or 'X unit (one run)'."""
        if self.n == 1:
            return f"{show(self.median)}{unit} (one run)"
        return f"{show(self.median)}{unit} (median of {self.n} repeats, {show(self.lo)}–{show(self.hi)})"

    def cell(self, show: Callable[[float], str] = significant) -> str:
        """'X (a–b)' for a table whose header states the count."""
        return show(self.median) if self.n == 1 else f"{show(self.median)} ({show(self.lo)}–{show(self.hi)})"


def spread(values) -> Spread | None:
    found = tuple(v for v in (number(x) for x in values) if v is not None)
    return Spread(found) if found else None


def repeats(spreads) -> str:
    """How many repeats these spreads rest on: '3', or '2-3' when they differ ('' for none)."""
    ns = sorted({s.n for s in spreads if s is not None})
    return "" if not ns else f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"


def medians_of(spreads) -> str:
    """What a figure computed from these spreads' medians rests on: 'the medians of 3 repeats each', or
    'one run each' when nothing was repeated."""
    many = repeats(spreads)
    return "one run each" if many in ("", "1") else f"the medians of {many} repeats each"


# --------------------------------------------------------------------------- which runs

def batching_mode(run: Run) -> str:
    size = number(run.get("stack", "knobs", "SB_BATCH_MAX_SIZE"))
    return "on" if size and size > 1 else "off"


def is_headline(run: Run) -> bool:
    return (run.kind == "bench" and not run.interrupted and run.arch is not None and run.get("study") == STUDY
            and run.codec == "raw" and run.batch == 1 and run.rate is None and run.call_path == "signature"
            and not run.get("settings", "loadgen"))


def headline_runs(runs: list[Run]) -> dict[tuple[str, str, int], list[Run]]:
    """(arch, batching mode, concurrency) -> the repeats of the newest set measured, in registry order."""
    sets: dict[tuple, dict[tuple, list[Run]]] = {}
    for run in runs:
        if is_headline(run):
            key = (run.arch, batching_mode(run), run.concurrency)
            origin = (run.runtime, run.n, run.record.provenance.git_commit)
            sets.setdefault(key, {}).setdefault(origin, []).append(run)
    out = {key: max(found.values(), key=lambda rs: max(r.newest_key for r in rs)) for key, found in sets.items()}
    return dict(sorted(out.items(), key=lambda kv: (archs.order(kv[0][0]), kv[0][1], kv[0][2])))


def curve_runs(runs: list[Run]) -> list[Run]:
    """The model curve's repeats: complete curves with the newest one's settings and commit."""
    done = [r for r in measured.on_study_machine(runs) if r.kind == "model-curve" and not r.interrupted]
    if not done:
        return []
    newest = max(done, key=lambda r: r.newest_key)
    return [r for r in done if r.settings == newest.settings
            and r.record.provenance.git_commit == newest.record.provenance.git_commit]


# --------------------------------------------------------------------------- per run

def server_cpu_ms(run: Run) -> float | None:
    """CPU ms per image of the server side (every service but the load generator)."""
    per = [number(dig(v, "cpu_seconds_per_image")) for k, v in (run.get("resources") or {}).items() if k != CLIENT]
    per = [p for p in per if p is not None]
    return sum(per) * 1000.0 if per else None


def client_cpu_ms(run: Run) -> float | None:
    per = number(run.get("resources", CLIENT, "cpu_seconds_per_image"))
    return per * 1000.0 if per is not None else None


def model_cpu_ms(run: Run, curves: list[Run]) -> float | None:
    """The model's own CPU ms per image, in process, at the mean batch the run's server ran (batching off: 1)
    and its intra/inter-op threads: the median over the curve's repeats. None with batching on when the
    server does not say its batch sizes (Triton): the batch that ran is not known."""
    from bench.reference import cpu_ms_per_image_at

    intra = int(number(run.get("stack", "knobs", "SB_INTRA_OP_THREADS")) or 1)
    inter = int(number(run.get("stack", "knobs", "SB_INTER_OP_THREADS")) or 1)
    batch = number(run.get("server_batch", "mean"))
    if batch is None and batching_mode(run) == "on":
        return None
    batch = batch or 1.0
    costs = []
    for curve in curves:
        for c in curve.get("curves", default=[]) or []:
            if c.get("intra_op_threads") == intra and c.get("inter_op_threads") == inter:
                costs.append(cpu_ms_per_image_at(c.get("points") or [], batch))
    costs = [c for c in costs if c is not None]
    return statistics.median(costs) if costs else None


# --------------------------------------------------------------------------- the figures

@dataclass
class Cell:
    """One set-up's repeats and their figures."""

    arch: str
    mode: str
    concurrency: int
    runs: list[Run]
    p50: Spread | None
    p99: Spread | None
    throughput: Spread | None
    server_cpu: Spread | None
    client_cpu: Spread | None
    efficiency: Spread | None

    @property
    def n(self) -> int:
        return len(self.runs)


def cells(runs: list[Run]) -> dict[tuple[str, str, int], Cell]:
    curves = curve_runs(runs)
    out = {}
    for (arch, mode, c), found in headline_runs(runs).items():
        server = [server_cpu_ms(r) for r in found]
        model = [model_cpu_ms(r, curves) for r in found]
        out[(arch, mode, c)] = Cell(
            arch, mode, c, found,
            p50=spread(r.get("latency_ms", "p50") for r in found),
            p99=spread(r.get("latency_ms", "p99") for r in found),
            throughput=spread(r.get("throughput_images_per_s") for r in found),
            server_cpu=spread(server), client_cpu=spread(client_cpu_ms(r) for r in found),
            efficiency=spread(m / s for m, s in zip(model, server) if m and s))
    return out


def saturated_concurrency(table: dict[tuple[str, str, int], Cell]) -> int | None:
    """The headline's saturated level: its highest concurrency."""
    levels = [c for (_, _, c) in table if c > 1]
    return max(levels) if levels else None


def arches_of(table: dict) -> list[str]:
    return list(dict.fromkeys(a for (a, _, _) in table))


def curve_figures(runs: list[Run]) -> dict | None:
    """The model curve over its repeats: the limit (images/s), its batch and threads, and batch 1 at one
    intra-op thread (images/s, CPU ms per image); None when no curve was measured."""
    curves = curve_runs(runs)
    limits = [r.get("limit") for r in curves if isinstance(r.get("limit"), dict)]
    limits = [lim for lim in limits if number(lim.get("images_per_s"))]
    if not limits:
        return None
    one = [p for r in curves for c in r.get("curves", default=[]) or [] if c.get("intra_op_threads") == 1
           for p in c.get("points", []) if p.get("batch") == 1]
    return {"runs": curves, "limit": spread(lim["images_per_s"] for lim in limits),
            "bound": spread(lim.get("cpu_bound_images_per_s") for lim in limits),
            "batch": sorted({lim.get("batch") for lim in limits}),
            "threads": sorted({lim.get("intra_op_threads") for lim in limits}),
            "b1_images_per_s": spread(p.get("images_per_s") for p in one),
            "b1_cpu_ms": spread(p.get("cpu_ms_per_image") for p in one)}


def limit_line(runs: list[Run], sweeps: dict[str, Run], curve: Run | None) -> tuple[float | None, float | None]:
    """(limit, CPU bound) images/s drawn on the plots: the medians of the curve's repeats, else one run's."""
    fig = curve_figures(runs)
    if fig:
        return fig["limit"].median, fig["bound"].median if fig["bound"] else None
    limit, bound, _ = limit_of(sweeps, curve)
    return limit, bound


def ratio_of_medians(a: Spread | None, b: Spread | None) -> float | None:
    return a.median / b.median if a and b and b.median else None


def fewest(*spreads) -> int:
    return min((s.n for s in spreads if s is not None), default=0)


# --------------------------------------------------------------------------- the goals, on the medians

def goal_rows(table: dict[tuple[str, str, int], Cell]) -> list[dict]:
    """Each goal of the issue judged on the medians of the headline repeats (rows as
    :func:`bench.studies.saturation.measured.goal_rows`); empty when there is no headline run."""
    top = saturated_concurrency(table)
    if top is None:
        return []
    names = arches_of(table)

    def at(arch, mode, c=top):
        return table.get((arch, mode, c))

    def n_of(*found) -> str:
        return medians_of([cell.throughput for cell in found if cell])

    out = []
    ratios = []
    for arch in names:
        off, on = at(arch, "off"), at(arch, "on")
        r = ratio_of_medians(on.throughput if on else None, off.throughput if off else None)
        if r:
            ratios.append((arch, r, on, off))
    best = max(ratios, key=lambda x: x[2].throughput.median) if ratios else None
    out.append({"goal": f"batching on ÷ off at {top} in flight, best architecture",
                "target": f"≥ {GOALS['batching_best']}×",
                "measured": f"{best[1]:.2f}× ({archs.title(best[0])}; ratio of {n_of(best[2], best[3])})"
                if best else None, "ok": best[1] >= GOALS["batching_best"] if best else None})
    python = [x for x in ratios if is_python(x[0])]
    worst = min(python, key=lambda x: x[1]) if python else None
    out.append({"goal": f"batching on ÷ off at {top} in flight, every Python architecture",
                "target": f"≥ {GOALS['batching_python']}×",
                "measured": f"lowest {worst[1]:.2f}× ({archs.title(worst[0])}; ratio of "
                            f"{n_of(worst[2], worst[3])})" if worst else None,
                "ok": worst[1] >= GOALS["batching_python"] if worst else None})

    eff = [(a, at(a, "on").efficiency) for a in names if at(a, "on") and at(a, "on").efficiency]
    best_e = max(eff, key=lambda x: x[1].median) if eff else None
    out.append({"goal": f"server efficiency with batching at {top} in flight (raw), best architecture",
                "target": f"≥ {GOALS['efficiency_best']:.0%}",
                "measured": f"{best_e[1].text(_pct)} ({archs.title(best_e[0])})" if best_e else None,
                "ok": best_e[1].median >= GOALS["efficiency_best"] if best_e else None})
    py_e = [x for x in eff if is_python(x[0])]
    worst_e = min(py_e, key=lambda x: x[1].median) if py_e else None
    out.append({"goal": f"server efficiency with batching at {top} in flight (raw), every Python architecture",
                "target": f"≥ {GOALS['efficiency_python']:.0%}",
                "measured": f"lowest {worst_e[1].text(_pct)} ({archs.title(worst_e[0])})" if worst_e else None,
                "ok": worst_e[1].median >= GOALS["efficiency_python"] if worst_e else None})

    diffs = []
    for arch in names:
        off, on = at(arch, "off", 1), at(arch, "on", 1)
        if off and on and off.p50 and on.p50:
            diffs.append((arch, on.p50.median - off.p50.median, medians_of([off.p50, on.p50])))
    worst_p = max(diffs, key=lambda x: x[1]) if diffs else None
    out.append({"goal": "p50 at concurrency 1, batching on − off (every architecture)",
                "target": f"≤ +{GOALS['p50_c1_ms']} ms",
                "measured": f"largest {worst_p[1]:+.2f} ms ({archs.title(worst_p[0])}; difference of "
                            f"{worst_p[2]})" if worst_p else None,
                "ok": worst_p[1] <= GOALS["p50_c1_ms"] if worst_p else None})

    tr = triton_rows(table)
    worst_t = min(tr, key=lambda r: r["ratio"]) if tr else None
    out.append({"goal": "best Python stack ÷ Triton throughput, at every concurrency measured",
                "target": f"≥ {GOALS['python_vs_triton']:.1f}×",
                "measured": (f"lowest {worst_t['ratio']:.2f}× (concurrency {worst_t['concurrency']}, batching "
                             f"{worst_t['mode']}, {archs.title(worst_t['arch'])}; ratio of "
                             f"{worst_t['n']})") if worst_t else None,
                "ok": worst_t["ratio"] >= GOALS["python_vs_triton"] if worst_t else None})
    return out


def triton_rows(table: dict[tuple[str, str, int], Cell]) -> list[dict]:
    """Per batching mode and concurrency: the best Python stack's median throughput over Triton's."""
    rows = []
    for (arch, mode, c), cell in table.items():
        if arch != "triton" or not cell.throughput:
            continue
        mine = [(a, table[(a, mode, c)].throughput) for a in arches_of(table)
                if is_python(a) and (a, mode, c) in table and table[(a, mode, c)].throughput]
        if mine:
            best = max(mine, key=lambda x: x[1].median)
            rows.append({"mode": mode, "concurrency": c, "arch": best[0], "python": best[1],
                         "triton": cell.throughput, "ratio": best[1].median / cell.throughput.median,
                         "n": medians_of([best[1], cell.throughput])})
    return rows


def _pct(x: float) -> str:
    return f"{x:.0%}"
