"""The Table 3 protocol's runs: the study's headline numbers, native against docker per architecture.

A protocol run sends the first 1,000 test images one per request, sequentially
(JSON, the signature path), in several passes (``settings.repeats``); each
pass gives one time per image (its wall time over its requests). Per
(architecture, runtime) the newest such run counts; its passes are the
repeats of every figure here, shown as median with min-max and n. A ratio
between two of them is the ratio of their medians, its range the ratio of
the extreme passes (the slowest against the fastest, and back).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from bench.formats import significant
from bench.report import archs, plots
from bench.report.runs import Run
from bench.report.tables import NOT_MEASURED, Cell, Table, missing, table
from bench.studies.docker_serving import published
from servebench import registry

RUNTIMES = ("native", "docker")
CANNOT_RUN = "cannot run here"
MIN_REPEATS = 2  # a run of one pass is not the protocol (the main workload is, at N images)


@dataclass(frozen=True)
class Protocol:
    """One architecture's protocol run on one runtime."""

    arch: str
    runtime: str
    run: Run
    per_image_ms: tuple[float, ...]  # one per complete pass

    @property
    def n(self) -> int:
        return len(self.per_image_ms)

    @property
    def images(self) -> int:
        return self.run.n

    @property
    def median(self) -> float:
        return statistics.median(self.per_image_ms)

    def shown(self) -> str:
        """'5.16 ms (5.01–5.21, n = 3)', or '5.16 ms (one run)' for a single pass."""
        if self.n == 1:
            return f"{self.median:.2f} ms (one run)"
        return f"{self.median:.2f} ms ({min(self.per_image_ms):.2f}–{max(self.per_image_ms):.2f}, n = {self.n})"


@dataclass(frozen=True)
class Ratio:
    """slow ÷ fast: the ratio of the medians, and its range from the extreme passes."""

    median: float
    low: float
    high: float
    n: int  # the fewer passes of the two

    @classmethod
    def of(cls, slow: Protocol, fast: Protocol) -> "Ratio":
        return cls(slow.median / fast.median, min(slow.per_image_ms) / max(fast.per_image_ms),
                   max(slow.per_image_ms) / min(fast.per_image_ms), min(slow.n, fast.n))

    def shown(self) -> str:
        return f"{self.median:.2f}x ({self.low:.2f}–{self.high:.2f}, n = {self.n})"


def study_archs() -> list[str]:
    return [a.name for a in registry.in_study(published.STUDY)]


def absent(arch: str) -> str:
    """Why an architecture has no number: it cannot run here (TF Serving: no binary, no image), or no run."""
    return CANNOT_RUN if registry.get(arch).unmet("native") else NOT_MEASURED


def passes_ms(run: Run) -> tuple[float, ...]:
    """Time per image (ms) of each complete pass of a run."""
    return tuple(p["wall_s"] / p["requests"] * 1000 for p in run.get("passes", default=[]) or []
                 if isinstance(p, dict) and p.get("complete") and p.get("requests") and p.get("wall_s"))


def is_protocol(run: Run) -> bool:
    return (run.complete_bench and run.default_workload and run.codec == "json"
            and int(run.settings.get("repeats") or 1) >= MIN_REPEATS and len(passes_ms(run)) >= MIN_REPEATS)


def protocol_runs(runs: list[Run]) -> dict[tuple[str, str], Protocol]:
    """(arch, runtime) -> the newest protocol run of each of the study's architectures, in registry order."""
    mine = set(study_archs())
    found: dict[tuple[str, str], Run] = {}
    for run in runs:
        if run.arch in mine and run.get("study") in (None, published.STUDY) and is_protocol(run):
            key = (run.arch, run.runtime or "native")
            if key not in found or run.newest_key > found[key].newest_key:
                found[key] = run
    order = {a: i for i, a in enumerate(study_archs())}
    return {key: Protocol(key[0], key[1], run, passes_ms(run))
            for key, run in sorted(found.items(), key=lambda kv: (order[kv[0][0]], RUNTIMES.index(kv[0][1])
                                                                  if kv[0][1] in RUNTIMES else 9))}


def study_ratio(slow: str, fast: str, n: int) -> float | None:
    """The study's slow ÷ fast at its Table 3 row of ``n`` images (None when it has no such row)."""
    ts, tf = published.table3_seconds(slow) or {}, published.table3_seconds(fast) or {}
    return ts[n] / tf[n] if n in ts and n in tf else None


def ratios(found: dict[tuple[str, str], Protocol]) -> list[dict]:
    """Each of the study's ratios, per runtime where both architectures have a protocol run."""
    rows = []
    for slow, fast in published.ratios():
        for runtime in RUNTIMES:
            a, b = found.get((slow, runtime)), found.get((fast, runtime))
            if a and b:
                rows.append({"slow": slow, "fast": fast, "runtime": runtime, "ours": Ratio.of(a, b),
                             "images": a.images, "study": study_ratio(slow, fast, a.images),
                             "label": f"{archs.title(slow)} / {archs.title(fast)}"})
    return rows


# --------------------------------------------------------------------------- the section's table and plot

def native_docker_table(found: dict[tuple[str, str], Protocol]) -> Table:
    rows = []
    for arch in study_archs():
        native, docker = found.get((arch, "native")), found.get((arch, "docker"))
        if not native and not docker:
            rows.append([archs.title(arch), missing(absent(arch)), missing(absent(arch)), None, None, None])
            continue
        cells = [Cell(p.shown()) if p else missing() for p in (native, docker)]
        ratio = Cell(Ratio.of(docker, native).shown()) if native and docker else None
        p50 = " / ".join(significant(p.run.get("latency_ms", "p50"), " ms") if p else "–" for p in (native, docker))
        rows.append([archs.title(arch), *cells, ratio, p50,
                     " / ".join(p.run.run_id for p in (native, docker) if p)])
    return table(["architecture", "native: time per image, median (min–max, n passes)",
                  "docker compose: time per image, median (min–max, n passes)",
                  "docker ÷ native (ratio of medians; range from the extreme passes)",
                  "p50 latency, native / docker (all passes)", "runs"], rows)


def plot(found: dict[tuple[str, str], Protocol], path: Path) -> Path:
    """Left: time per image per architecture, native and docker (median, min-max bars, n). Right: the ratios
    between architectures per runtime, beside the study's at the same size."""
    fig, (bars, rat) = plt.subplots(1, 2, figsize=(15, 5.4), layout="constrained")
    names = study_archs()
    x = np.arange(len(names))
    width = 0.38
    hatch = {"native": "", "docker": "//"}
    drawn = False
    for i, runtime in enumerate(RUNTIMES):
        for j, arch in enumerate(names):
            p = found.get((arch, runtime))
            at = x[j] + (i - 0.5) * width
            if p is None:
                alone = not any(a == arch for a, _ in found)
                if not alone or i == 0:  # an architecture with no run at all: one label, centred
                    bars.text(x[j] if alone else at, 0.02, absent(arch).replace(" ", "\n"), ha="center",
                              va="bottom", fontsize=7, color=plots.GREY_TEXT, transform=bars.get_xaxis_transform())
                continue
            lo, hi = min(p.per_image_ms), max(p.per_image_ms)
            bars.bar(at, p.median, width, color=archs.color(arch), hatch=hatch[runtime], edgecolor="white",
                     yerr=[[p.median - lo], [hi - p.median]], capsize=4)
            bars.text(at, hi, f"{p.median:.2f}\nn = {p.n}", ha="center", va="bottom", fontsize=8)
            drawn = True
    if not drawn:
        plots.placeholder(bars, "no Table 3 protocol runs yet\n(make study STUDY=docker-serving)")
    bars.set_xticks(x, [archs.title(a) for a in names], fontsize=9)
    bars.set_xlim(-0.6, len(names) - 0.4)
    bars.set_ylabel("time per image (ms)")
    bars.set_ylim(0, max([max(p.per_image_ms) for p in found.values()] + [1]) * 1.25)
    bars.legend(handles=[Patch(facecolor="grey", hatch=hatch[r], edgecolor="white", label=r) for r in RUNTIMES],
                fontsize=9, title="runtime", title_fontsize=9, loc="upper left")
    bars.set_title("Table 3 protocol: median time per image (bars: min–max over the passes)", fontsize=11)
    bars.grid(True, axis="y", alpha=0.3)

    rows = ratios(found)
    y = np.arange(len(rows))
    h = 0.38
    for i, r in enumerate(rows):
        ours = r["ours"]
        rat.barh(y[i] + h / 2, ours.median, h, color="tab:blue" if r["runtime"] == "native" else "tab:cyan",
                 xerr=[[ours.median - ours.low], [ours.high - ours.median]], capsize=3)
        rat.text(ours.high, y[i] + h / 2, f" {ours.median:.2f}× (n = {ours.n})", va="center", fontsize=8)
        if r["study"]:
            rat.barh(y[i] - h / 2, r["study"], h, color=plots.STUDY_COLOR)
            rat.text(r["study"], y[i] - h / 2, f" {r['study']:.2f}×", va="center", fontsize=8)
    if rows:
        rat.set_xscale("log")
        plots.plain_log(rat.xaxis)
        rat.set_xlim(0.5, max([r["study"] or 1 for r in rows] + [2]) * 4)
        rat.axvline(1.0, color="black", lw=0.8)
        rat.set_yticks(y, [f"{r['label']} ({r['runtime']})" for r in rows], fontsize=9)
        rat.invert_yaxis()
        rat.legend(handles=[Patch(color=plots.STUDY_COLOR, label="study (Table 3, same N)"),
                            Patch(color="tab:blue", label="ours, native"), Patch(color="tab:cyan", label="ours, docker")],
                   fontsize=9, loc="lower right")
    else:
        plots.placeholder(rat, "no two architectures with protocol runs")
    rat.set_xlabel("time per image, slower ÷ faster (×, log scale; bars: range from the extreme passes)")
    rat.set_title("Ratios between architectures, ours beside the study's", fontsize=11)
    rat.grid(True, axis="x", which="both", alpha=0.3)
    images = sorted({p.images for p in found.values()})
    fig.suptitle("Native against docker compose: " + (f"{images[0]:,}" if len(images) == 1 else "N")
                 + " images one per request, sequential, JSON", fontsize=13)
    return plots.save(fig, path)
