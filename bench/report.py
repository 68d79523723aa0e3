"""The report: every run under ``results/`` in one table, plots, and one page.

    python -m bench.report [--results results]

Writes, inside the results folder:

- ``summary.csv``: one row per run (bench, load and reference runs alike);
- ``plots/*.png``: time per image at the study's Table 3 sizes, CPU and RAM per
  service (the study's Figure 11), the latency distribution, latency versus
  concurrency and rate, and where the time goes per hop;
- ``report.html``: the plots with the runs and settings behind them, the
  machine and versions, and our numbers beside the study's (``bench.studies``).

The comparison plots use, per (arch, runtime, codec), the newest complete bench
run with the default workload (batch 1, concurrency 1, no rate). Interrupted
runs are listed but never plotted; folders without a readable summary.json are
skipped with a printed note.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from bench import studies  # noqa: E402
from servebench.topology import ARCHES  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

PLOTS = {
    "table3": "table3_time_per_image.png",
    "resources": "resources_cpu_ram.png",
    "latency": "latency_distribution.png",
    "load": "latency_vs_load.png",
    "hops": "hops.png",
}
# The path of one request, in order; a hop an architecture does not have is absent or null.
HOPS = {
    "client_network_nginx": "client → nginx (network)",
    "gunicorn": "gunicorn",
    "django": "Django",
    "forward_network": "Django → backend (network)",
    "backend_framework": "backend framework",
    "decode": "decode",
    "model": "model",
}
SERVICES = ("nginx", "frontend", "backend", "client")  # backend: flask, fastapi or tfserving
SERVER_SERVICES = SERVICES[:3]  # the client is the load generator, not part of the architecture
SERVICE_COLORS = {"nginx": "#4c72b0", "frontend": "#dd8452", "backend": "#55a868", "client": "#bbbbbb"}
ARCH_COLORS = dict(zip(ARCHES, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
HOP_COLORS = dict(zip(HOPS, plt.get_cmap("Set2").colors))  # not the arch colours: a different legend
STUDY_COLOR = "#888888"
NOT_MEASURED = "not measured here"
NOT_IN_STUDY = "not measured in the study"
DPI = 120

COLUMNS = [
    "run_id", "kind", "arch", "runtime", "interrupted",
    "n", "batch", "codec", "concurrency", "rate", "arrivals", "repeats", "warmup", "seed",
    "users", "spawn_rate", "duration", "workers", "call_path",
    "requests", "ok", "errors", "errors_by_status", "accuracy",
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_max_ms",
    "throughput_images_per_s", "requests_per_s", "wall_s",
    "table3_n", "table3_mean_s", "time_per_image_ms",
    *[f"cpu_percent_{s}" for s in SERVICES],
    *[f"rss_mb_{s}" for s in SERVICES],
    *[f"pss_mb_{s}" for s in SERVICES],
    "backend_service",
    *[f"hop_{h}_ms" for h in HOPS],
    "harness_overhead_ms", "reference_p50_ms", "reference_ratio_p50",
    "git_commit", "created_utc", "cpu_model", "logical_cpus", "path",
]


# --------------------------------------------------------------------------- runs

def dig(doc, *keys, default=None):
    """doc[k1][k2]... or default when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(doc, dict) or doc.get(key) is None:
            return default
        doc = doc[key]
    return doc


def number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


@dataclass
class Run:
    run_id: str
    path: Path
    doc: dict

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind") or "unknown")

    @property
    def arch(self) -> str | None:
        return self.doc.get("arch")

    @property
    def runtime(self) -> str | None:
        return self.doc.get("runtime")

    @property
    def interrupted(self) -> bool:
        return bool(self.doc.get("interrupted"))

    @property
    def settings(self) -> dict:
        s = self.doc.get("settings")
        return s if isinstance(s, dict) else {}

    # Missing workload settings mean the harness defaults.
    @property
    def batch(self) -> int:
        return int(number(self.settings.get("batch")) or 1)

    @property
    def concurrency(self) -> int:
        return int(number(self.settings.get("concurrency")) or 1)

    @property
    def rate(self) -> float | None:
        return number(self.settings.get("rate"))

    @property
    def codec(self) -> str | None:
        return self.settings.get("codec")

    @property
    def created(self) -> str:
        return str(dig(self.doc, "provenance", "created_utc") or self.doc.get("created_utc") or "")

    @property
    def newest_key(self) -> tuple[str, str]:
        return (self.created, self.run_id)  # run ids start with a UTC time too

    @property
    def call_path(self) -> str:
        return str(dig(self.doc, "stack", "knobs", "SB_CALL_PATH") or "signature")

    @property
    def n(self) -> int:
        return int(number(self.settings.get("n")) or 0)

    @property
    def default_workload(self) -> bool:
        # keras-predict runs measure a pitfall; they never stand for an architecture.
        return self.batch == 1 and self.concurrency == 1 and self.rate is None and self.call_path == "signature"

    @property
    def complete_bench(self) -> bool:
        return self.kind == "bench" and not self.interrupted and self.arch is not None

    def provenance(self, key: str):
        return dig(self.doc, "provenance", key, default=self.doc.get(key))


def load_runs(results: Path) -> tuple[list[Run], list[str]]:
    """Every run folder under results, oldest first, and notes on what was skipped."""
    runs, notes = [], []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        if folder.is_symlink() or folder.name.startswith(".") or folder.name == "plots":
            continue  # results/latest points at a run listed anyway; plots/ is ours
        summary = folder / "summary.json"
        if not summary.is_file():
            notes.append(f"skipped {folder.name}: no summary.json")
            continue
        try:
            doc = json.loads(summary.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(f"skipped {folder.name}: unreadable summary.json ({exc})")
            continue
        if not isinstance(doc, dict):
            notes.append(f"skipped {folder.name}: summary.json is not an object")
            continue
        runs.append(Run(str(doc.get("run_id") or folder.name), folder, doc))
    runs.sort(key=lambda r: r.newest_key)
    return runs, notes


def load_reference(results: Path, runs: list[Run]) -> dict | None:
    """results/reference.json (the baseline the harness uses), else the newest complete reference run."""
    try:
        doc = json.loads((results / "reference.json").read_text())
        if isinstance(doc, dict):
            return doc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    done = [r for r in runs if r.kind == "reference" and not r.interrupted]
    return done[-1].doc if done else None


def reference_p50(reference: dict | None) -> float | None:
    return number(dig(reference, "latency_ms", "p50"))


def arch_order(run: Run) -> tuple:
    arch = run.arch or ""
    return (ARCHES.index(arch) if arch in ARCHES else len(ARCHES), arch,
            run.runtime or "", run.codec or "", run.batch)


def comparison_runs(runs: list[Run]) -> list[Run]:
    """Per (arch, runtime, codec): the complete default-workload bench run with the most images, newest first."""
    best: dict[tuple, Run] = {}
    for run in runs:
        if run.complete_bench and run.default_workload:
            key = (run.arch, run.runtime, run.codec)
            if key not in best or (run.n, run.newest_key) > (best[key].n, best[key].newest_key):
                best[key] = run
    return sorted(best.values(), key=arch_order)


def labels(runs: list[Run], fields=("runtime", "codec", "batch")) -> dict[str, str]:
    """run_id -> arch, plus whichever of runtime/codec/batch differ across these runs."""
    varying = [f for f in fields if len({getattr(r, f) for r in runs}) > 1]
    out = {}
    for r in runs:
        extra = [f"batch {r.batch}" if f == "batch" else str(getattr(r, f)) for f in varying]
        out[r.run_id] = (r.arch or "?") + (f" ({', '.join(extra)})" if extra else "")
    return out


def missing_archs(runs: list[Run]) -> list[str]:
    have = {r.arch for r in runs}
    return [a for a in ARCHES if a not in have]


# --------------------------------------------------------------------------- summary.csv

def service_role(name: str) -> str:
    if name in ("nginx", "client"):
        return name
    if name in ("frontend", "django", "gunicorn"):
        return "frontend"
    return "backend"


def resources_of(run: Run) -> dict[str, dict]:
    """role -> resource means; from summary.json, else averaged from resources.csv."""
    found: dict[str, dict] = {}
    res = run.doc.get("resources")
    if isinstance(res, dict) and res:
        for name, values in res.items():
            if isinstance(values, dict):
                found.setdefault(service_role(name), {**values, "service": name})
        return found
    path = run.path / "resources.csv"
    if not path.is_file():
        return found
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return found
    if "service" not in df:
        return found
    for name, g in df.groupby("service"):
        found.setdefault(service_role(str(name)), {
            "service": str(name),
            "cpu_percent_mean": number(pd.to_numeric(g.get("cpu_percent"), errors="coerce").mean())
            if "cpu_percent" in g else None,
            "rss_mb_mean": number(pd.to_numeric(g["rss_mb"], errors="coerce").mean()) if "rss_mb" in g else None,
            "pss_mb_mean": number(pd.to_numeric(g["pss_mb"], errors="coerce").mean()) if "pss_mb" in g else None,
        })
    return found


def table3_largest(run: Run) -> tuple[int, float] | None:
    """(N, mean seconds for N images) at the largest N measured."""
    sizes = table3_of(run)
    if not sizes:
        return None
    n = max(sizes)
    return n, sizes[n][0]


def table3_of(run: Run) -> dict[int, tuple[float, float | None]]:
    """N -> (mean s, stdev s) as recorded."""
    out = {}
    t3 = run.doc.get("table3")
    if isinstance(t3, dict):
        for key, entry in t3.items():
            n, mean = number(key), number(dig(entry, "mean_s"))
            if n and mean is not None:
                out[int(n)] = (mean, number(dig(entry, "stdev_s")))
    return out


def accuracy_of(doc: dict) -> float | None:
    acc = doc.get("accuracy")
    if isinstance(acc, dict):
        if acc.get("accuracy") is not None:
            return number(acc["accuracy"])
        correct, total = number(acc.get("correct")), number(acc.get("total"))
        return correct / total if correct is not None and total else None
    return number(acc)


def errors_of(doc: dict) -> tuple[int | None, str]:
    by_status = dig(doc, "requests", "errors_by_status")
    if isinstance(by_status, dict):
        count = sum(int(number(v) or 0) for v in by_status.values())
        return count, ";".join(f"{k}:{v}" for k, v in sorted(by_status.items()))
    failures = dig(doc, "requests", "errors", default=dig(doc, "locust", "failures"))
    return (None if failures is None else int(number(failures) or 0)), ""


def latency_of(doc: dict) -> dict:
    """p50/p90/p99/mean/max in ms: a bench run's latency_ms, else a load run's locust totals."""
    lat = dig(doc, "latency_ms", default=dig(doc, "locust", "latency_ms"))
    return {stat: number(dig(lat, stat)) for stat in ("p50", "p90", "p99", "mean", "max")}


def summary_row(run: Run) -> dict:
    doc, s = run.doc, run.settings
    row = {c: None for c in COLUMNS}
    row.update(run_id=run.run_id, kind=run.kind, arch=run.arch, runtime=run.runtime, interrupted=run.interrupted)
    for key in ("n", "batch", "codec", "concurrency", "rate", "arrivals", "repeats", "warmup", "seed",
                "users", "spawn_rate", "duration", "workers"):
        row[key] = s.get(key)
    row["call_path"] = run.call_path
    row["requests"] = dig(doc, "requests", "count", default=dig(doc, "locust", "requests"))
    row["ok"] = dig(doc, "requests", "ok")
    row["errors"], row["errors_by_status"] = errors_of(doc)
    row["accuracy"] = accuracy_of(doc)
    for stat, value in latency_of(doc).items():
        row[f"latency_{stat}_ms"] = value
    row["throughput_images_per_s"] = number(doc.get("throughput_images_per_s",
                                                    dig(doc, "locust", "images_per_s")))
    row["requests_per_s"] = number(doc.get("requests_per_s", dig(doc, "locust", "requests_per_s")))
    row["wall_s"] = number(doc.get("wall_s"))
    if run.kind == "reference":  # its one-image latency is the row's latency; batch-1 throughput
        row["batch"] = 1
        ones = [t for t in doc.get("throughput") or [] if isinstance(t, dict) and t.get("batch") == 1]
        row["throughput_images_per_s"] = number(ones[0].get("images_per_s")) if ones else None
    largest = table3_largest(run)
    if largest:
        row["table3_n"], row["table3_mean_s"] = largest
        row["time_per_image_ms"] = largest[1] / largest[0] * 1000.0
    for role, values in resources_of(run).items():
        row[f"cpu_percent_{role}"] = number(values.get("cpu_percent_mean"))
        row[f"rss_mb_{role}"] = number(values.get("rss_mb_mean"))
        row[f"pss_mb_{role}"] = number(values.get("pss_mb_mean"))
        if role == "backend":
            row["backend_service"] = values.get("service")
    hops = doc.get("hops_ms") if isinstance(doc.get("hops_ms"), dict) else {}
    for hop in HOPS:
        row[f"hop_{hop}_ms"] = number(hops.get(hop))
    row["harness_overhead_ms"] = number(doc.get("harness_overhead_ms"))
    row["reference_p50_ms"] = number(dig(doc, "reference", "p50_ms"))
    row["reference_ratio_p50"] = number(dig(doc, "reference", "ratio_p50"))
    row["git_commit"] = run.provenance("git_commit")
    row["created_utc"] = run.created or None
    row["cpu_model"] = dig(doc, "provenance", "machine", "cpu_model")
    row["logical_cpus"] = dig(doc, "provenance", "machine", "logical_cpus")
    row["path"] = run.path.name
    return row


def write_summary(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if v is None else v for k, v in row.items()})


# --------------------------------------------------------------------------- plots

def placeholder(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555555",
            wrap=True, bbox={"boxstyle": "round", "fc": "#f4f4f4", "ec": "#cccccc"})
    ax.set_xticks([])
    ax.set_yticks([])


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plain_log(axis) -> None:
    """Log-scale ticks as plain numbers (2, 5, 10, not 2x10^0), denser when the range is narrow."""
    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 3
    if decades < 0.5:
        subs = tuple(float(k) for k in range(1, 10))
    elif decades < 1.2:
        subs = (1.0, 2.0, 3.0, 5.0)
    else:
        subs = (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    axis.set_minor_formatter(NullFormatter())


def wrap_label(label: str) -> str:
    return label.replace(" (", "\n(")


def ms(x: float) -> str:
    return f"{x:.3g} ms" if x < 1000 else f"{x:,.0f} ms"


CODEC_LINES = {"json": "-", "b64": "-.", "raw": "--", "npy": ":"}  # one colour per arch, one line per codec


def plot_table3(selected: list[Run], path: Path) -> Path:
    """Ours per arch at the Table 3 sizes, theirs, and the ratios between architectures."""
    fig, (ours, theirs, ratios) = plt.subplots(1, 3, figsize=(17, 5.4), layout="constrained")
    names = labels(selected)
    drawn = False
    for run in selected:
        t3 = table3_of(run)
        if not t3:
            continue
        ns = sorted(t3)
        y = np.array([t3[n][0] / n * 1000 for n in ns])
        err = np.array([(t3[n][1] or 0.0) / n * 1000 for n in ns])
        ours.errorbar(ns, y, yerr=[np.minimum(err, 0.9 * y), err], marker="o", capsize=3,
                      color=ARCH_COLORS.get(run.arch), linestyle=CODEC_LINES.get(run.codec, "-"),
                      label=names[run.run_id])
        drawn = True
    if drawn:
        ours.set_xscale("log")
        ours.set_xticks(studies.TABLE3_SIZES, [f"{n:,}" for n in studies.TABLE3_SIZES])
        ours.set_xlabel("images sent (N), one per request, sequential")
        lo, hi = ours.get_ylim()
        if lo > 0 and hi / lo > 10:  # a log axis only when the archs are an order of magnitude apart
            ours.set_yscale("log")
            plain_log(ours.yaxis)
            ours.set_ylabel("time per image (ms, log scale)")
        else:
            ours.set_ylim(0, hi * 1.1)
            ours.set_ylabel("time per image (ms)")
        ours.legend(fontsize=9, title="architecture", title_fontsize=9)
        ours.grid(True, which="both", alpha=0.3)
        missing = missing_archs(selected)
        if missing:
            ours.text(0.98, 0.02, NOT_MEASURED + ": " + ", ".join(missing), transform=ours.transAxes,
                      ha="right", fontsize=8, color="#555555")
    else:
        placeholder(ours, "no complete bench run with Table 3 timings yet\n(make bench ARCH=...)")
    ours.set_title("Ours: mean time per image (error bars: stdev over repeats)", fontsize=11)

    for arch, table in studies.TABLE3_SECONDS.items():
        ns = sorted(table)
        theirs.plot(ns, [table[n] / n * 1000 for n in ns], marker="s", color=ARCH_COLORS[arch],
                    label=studies.NAMES[arch])
    theirs.set_xscale("log")
    theirs.set_yscale("log")
    theirs.set_xticks(studies.TABLE3_SIZES, [f"{n:,}" for n in studies.TABLE3_SIZES])
    theirs.set_xlabel("images sent (N)")
    theirs.set_ylabel("time per image (ms, log scale)")
    plain_log(theirs.yaxis)
    theirs.set_title("Study (Table 3; i7-9700K + RTX 2070 SUPER)", fontsize=11)
    theirs.legend(fontsize=9, title="architecture", title_fontsize=9)
    theirs.grid(True, which="both", alpha=0.3)

    rows = ratio_rows(selected)
    y = np.arange(len(rows))
    h = 0.38
    study_vals = [r["study"] for r in rows]
    our_vals = [r["ours"][0]["ratio"] if r["ours"] else None for r in rows]
    known = [v for v in study_vals + our_vals if v]
    left, right = min(known + [1.0]) / 2, max(known + [2.0]) * 4
    ratios.barh(y - h / 2, [v or 0 for v in study_vals], h, color=STUDY_COLOR, label="study (N = 10,000)")
    ratios.barh(y + h / 2, [v or 0 for v in our_vals], h, color="tab:blue", label="ours (largest N measured)")
    for i, (sv, ov) in enumerate(zip(study_vals, our_vals)):
        for offset, v, missing in ((-h / 2, sv, NOT_IN_STUDY), (h / 2, ov, NOT_MEASURED)):
            text, x = (f" {v:.2g}×", v) if v else (" " + missing, left)
            ratios.text(x, i + offset, text, va="center", fontsize=8, color="black" if v else "#555555")
    ratios.axvline(1.0, color="black", lw=0.8)
    ratios.set_xscale("log")
    ratios.set_xlim(left, right)
    plain_log(ratios.xaxis)
    ratios.set_yticks(y, [r["label"] for r in rows], fontsize=9)
    ratios.invert_yaxis()
    ratios.set_xlabel("time per image, slower ÷ faster architecture (×, log scale)")
    ratios.set_title("Ratios between architectures (comparable across hardware)", fontsize=11)
    ratios.legend(fontsize=9, loc="lower right")
    ratios.grid(True, axis="x", which="both", alpha=0.3)
    fig.suptitle("Time per image, sequential one-image requests (the study's Table 3)", fontsize=13)
    return save(fig, path)


def ratio_rows(selected: list[Run]) -> list[dict]:
    """Each study ratio: theirs at 10,000 images, ours per (runtime, codec) at the largest common N."""
    rows = []
    pairs = list(studies.RATIOS) + [("fastapi", "tfserving-grpc")]
    for slow, fast in pairs:
        study = None
        if slow in studies.TABLE3_SECONDS and fast in studies.TABLE3_SECONDS:
            study = studies.TABLE3_SECONDS[slow][10000] / studies.TABLE3_SECONDS[fast][10000]
        ours = []
        for a in (r for r in selected if r.arch == slow):
            for b in (r for r in selected if r.arch == fast and (r.runtime, r.codec) == (a.runtime, a.codec)):
                ta, tb = table3_of(a), table3_of(b)
                common = set(ta) & set(tb)
                if common:
                    n = max(common)
                    ours.append({"ratio": ta[n][0] / tb[n][0], "n": n, "runs": (a.run_id, b.run_id),
                                 "variant": f"{a.runtime}, {a.codec}"})
        rows.append({"slow": slow, "fast": fast, "label": f"{arch_title(slow)} / {arch_title(fast)}",
                     "study": study, "ours": ours})
    return rows


def arch_title(arch: str) -> str:
    return {"embedded": "Embedded", "flask": "Flask", "fastapi": "FastAPI",
            "tfserving-rest": "TF Serving REST", "tfserving-grpc": "TF Serving gRPC"}.get(arch, arch)


def ram_key(selected: list[Run]) -> str:
    """PSS (shared pages counted once) when every server service has it, else RSS."""
    values = [v for r in selected for role, v in resources_of(r).items() if role in SERVER_SERVICES]
    return "pss_mb_mean" if values and all(number(v.get("pss_mb_mean")) is not None for v in values) \
        else "rss_mb_mean"


def plot_resources(selected: list[Run], path: Path) -> Path:
    """Ours: CPU and RAM stacked per server service, the client beside; theirs below (Figure 11)."""
    fig = plt.figure(figsize=(15, 11), layout="constrained")
    ours_fig, study_fig = fig.subfigures(2, 1, height_ratios=(1.12, 1), hspace=0.04)
    cpu, ram = ours_fig.subplots(1, 2)
    s_cpu, s_ram = study_fig.subplots(1, 2)
    names = labels(selected)
    measured = [r for r in selected if resources_of(r)]
    cats = [(names[r.run_id], r) for r in measured] + [(a, None) for a in missing_archs(measured)]
    rkey = ram_key(measured)
    ram_name = "PSS" if rkey == "pss_mb_mean" else "RSS"
    x = np.arange(len(cats))
    width = 0.38
    for ax, key, unit in ((cpu, "cpu_percent_mean", "CPU (% of one core)"),
                          (ram, rkey, f"RAM ({ram_name}, MB)")):
        if not cats:
            placeholder(ax, "no runs yet")
            continue
        highest = 0.0
        for i, (_, run) in enumerate(cats):
            if run is None:
                ax.text(i, 0.03, NOT_MEASURED.replace(" ", "\n"), ha="center", va="bottom", fontsize=8,
                        color="#555555", transform=ax.get_xaxis_transform())
                continue
            res = resources_of(run)
            bottom = 0.0
            for role in SERVER_SERVICES:
                v = number(dig(res, role, key))
                if v:
                    ax.bar(i - width / 2, v, width, bottom=bottom, color=SERVICE_COLORS[role])
                    bottom += v
            ax.text(i - width / 2, bottom, f"{bottom:.0f}", ha="center", va="bottom", fontsize=9)
            client = number(dig(res, "client", key))
            if client:
                ax.bar(i + width / 2, client, width, color=SERVICE_COLORS["client"], hatch="//", edgecolor="white")
                ax.text(i + width / 2, client, f"{client:.0f}", ha="center", va="bottom", fontsize=8,
                        color="#555555")
            highest = max(highest, bottom, client or 0)
        ax.set_ylim(0, max(highest, 1) * 1.15)
        ax.set_xlim(-0.6, len(cats) - 0.4)
        # Long "arch (runtime, codec)" labels: one part per line, so neighbours never overlap.
        ax.set_xticks(x, [c[0].replace(" (", "\n(").replace(", ", ",\n").replace("-", "-\n") for c in cats], fontsize=8)
        ax.set_ylabel(unit)
        ax.set_xlabel("architecture (left bar: server services stacked, total on top; right: client)")
        ax.grid(True, axis="y", alpha=0.3)
    cpu.set_title("CPU, mean while serving (100 % = one core fully busy)", fontsize=11)
    ram.set_title(f"Memory, mean {ram_name} while serving", fontsize=11)
    handles = [Patch(color=SERVICE_COLORS[r], label=lbl) for r, lbl in (
        ("nginx", "nginx"), ("frontend", "front end (gunicorn + Django)"),
        ("backend", "model server (Flask / FastAPI / TF Serving)"))]
    handles.append(Patch(facecolor=SERVICE_COLORS["client"], hatch="//", edgecolor="white",
                         label="client (load generator; not in the total)"))
    ours_fig.legend(handles=handles, fontsize=10, loc="outside lower center", ncol=4)
    ours_fig.suptitle("Ours (this machine): CPU and RAM per service while serving one image per request",
                 fontsize=13)

    archs = list(studies.TABLE4)
    sx = np.arange(len(archs))
    s_vals = [studies.TABLE4[a]["cpu_percent"] for a in archs]
    s_cpu.bar(sx, s_vals, 0.6, color=[ARCH_COLORS[a] for a in archs])
    for i, v in enumerate(s_vals):
        s_cpu.text(i, v, f"{v:g} %\n(≈{v * studies.HARDWARE['cpu_cores']:.0f} % of one core)", ha="center",
                   va="bottom", fontsize=8)
    s_cpu.set_ylim(0, max(s_vals) * 1.35)
    s_cpu.set_ylabel("CPU (% of the whole 8-core machine)")
    cores = studies.HARDWARE["cpu_cores"]
    sec = s_cpu.secondary_yaxis("right", functions=(lambda v: v * cores, lambda v: v / cores))
    sec.set_ylabel("≈ % of one core (× 8)")
    s_cpu.set_title("CPU, % of their 8-core machine (right axis: × 8)", fontsize=11)
    s_ram_vals = [studies.TABLE4[a]["ram_mb"] for a in archs]
    s_ram.bar(sx, s_ram_vals, 0.6, color=[ARCH_COLORS[a] for a in archs])
    for i, v in enumerate(s_ram_vals):
        s_ram.text(i, v, f"{v:g}", ha="center", va="bottom", fontsize=9)
    s_ram.set_ylim(0, max(s_ram_vals) * 1.2)
    s_ram.set_ylabel("RAM (MB)")
    s_ram.set_title("RAM", fontsize=11)
    for ax in (s_cpu, s_ram):
        ax.set_xticks(sx, [studies.NAMES[a] for a in archs], fontsize=9)
        ax.set_xlabel("architecture (study's names; TF Serving over REST)")
        ax.grid(True, axis="y", alpha=0.3)
    study_fig.suptitle("The study (Table 4 / Figure 11): averages while processing 10,000 images",
                    fontsize=13)
    return save(fig, path)


def request_latencies(run: Run) -> np.ndarray | None:
    """Successful requests' latency (ms) from requests.csv, warm-up rows left out."""
    path = run.path / "requests.csv"
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if "latency_ms" not in df:
        return None
    if "status" in df:
        status = pd.to_numeric(df["status"], errors="coerce")
        if status.notna().any():
            df = df[(status >= 200) & (status < 300)]
    for flag in ("warmup", "is_warmup"):
        if flag in df:
            df = df[~df[flag].astype(str).str.lower().isin(("1", "true"))]
    lat = pd.to_numeric(df["latency_ms"], errors="coerce").dropna().to_numpy()
    return lat if lat.size else None


def plot_latency(selected: list[Run], reference: dict | None, path: Path, notes: list[str]) -> Path:
    fig, (cdf, tail) = plt.subplots(1, 2, figsize=(15, 5.4), layout="constrained")
    names = labels(selected)
    drawn = []
    for run in selected:
        lat = request_latencies(run)
        if lat is None:
            notes.append(f"{run.run_id}: no usable requests.csv, left out of the latency distribution")
            continue
        lat = np.sort(lat)
        share = np.arange(1, lat.size + 1) / lat.size * 100
        p50, p99 = np.percentile(lat, [50, 99])
        label = f"{names[run.run_id]}: p50 {ms(p50)}, p99 {ms(p99)}, n={lat.size:,}"
        color = ARCH_COLORS.get(run.arch)
        cdf.step(lat, share, where="post", color=color, label=label)
        tail.step(lat, 100 - share + 100 / lat.size, where="post", color=color, label=label)
        drawn.append(run)
    if not drawn:
        for ax in (cdf, tail):
            placeholder(ax, "no bench run with requests.csv yet\n(make bench ARCH=...)")
    else:
        ref = reference_p50(reference)
        for ax in (cdf, tail):
            if ref:
                ax.axvline(ref, color="black", ls="--", lw=1.2, label=f"in-process reference p50 {ms(ref)}")
            ax.set_xscale("log")
            plain_log(ax.xaxis)
            ax.set_xlabel("request latency (ms, log scale)")
            ax.grid(True, which="both", alpha=0.3)
        cdf.set_ylabel("requests at or below this latency (%)")
        cdf.set_ylim(0, 100)
        cdf.axhline(50, color="#999999", lw=0.6)
        cdf.set_title("Distribution (ECDF) of per-request latency", fontsize=11)
        tail.set_yscale("log")
        plain_log(tail.yaxis)
        tail.set_ylabel("requests at or above this latency (%, log scale)")
        tail.axhline(1, color="#999999", lw=0.6)
        tail.set_title("The slow tail (1 % line = p99)", fontsize=11)
        fig.legend(*cdf.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=9)
        missing = missing_archs(drawn)
        if missing:
            tail.text(0.98, 0.98, NOT_MEASURED + ":\n" + "\n".join(missing), transform=tail.transAxes,
                      ha="right", va="top", fontsize=8, color="#555555")
    fig.suptitle("Per-request latency, newest default-workload run per architecture (batch 1, concurrency 1)",
                 fontsize=13)
    return save(fig, path)


def load_points(runs: list[Run], by: str) -> dict[tuple, dict]:
    """(arch, runtime, codec, batch) -> {x: newest complete run}; by is 'concurrency' or 'rate'."""
    series: dict[tuple, dict] = {}
    for run in runs:
        if not run.complete_bench or run.call_path != "signature":
            continue
        if by == "concurrency" and run.rate is None:
            x = run.concurrency
        elif by == "rate" and run.rate is not None:
            x = run.rate
        else:
            continue
        pts = series.setdefault((run.arch, run.runtime, run.codec, run.batch), {})
        if x not in pts or run.newest_key > pts[x].newest_key:
            pts[x] = run
    return series


def plot_load(runs: list[Run], reference: dict | None, path: Path) -> tuple[Path, list[str]]:
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.4), layout="constrained")
    used: list[str] = []
    legend: dict[str, object] = {}  # one legend for both panels: label -> handle
    ref = reference_p50(reference)
    hints = {"concurrency": "make bench ARCH=fastapi CONCURRENCY=4", "rate": "make bench ARCH=fastapi RATE=100"}
    for ax, by, xlabel in ((axes[0], "concurrency", "concurrent requests in flight (closed loop)"),
                           (axes[1], "rate", "offered rate (requests/s, open loop)")):
        series = load_points(runs, by)
        if not series:
            placeholder(ax, f"no data yet: no run varies {by}\n(e.g. {hints[by]})")
            ax.set_title(f"Latency versus {by}", fontsize=11)
            continue
        first = {key: next(iter(pts.values())) for key, pts in series.items()}
        names = labels(list(first.values()))
        markers = iter("osD^vP*X" * 4)
        xs_all = []
        for key, pts in sorted(series.items(), key=lambda kv: arch_order(first[kv[0]])):
            xs = sorted(pts)
            xs_all += xs
            color = ARCH_COLORS.get(key[0])
            marker = next(markers)
            p50 = [number(dig(pts[x].doc, "latency_ms", "p50")) for x in xs]
            p99 = [number(dig(pts[x].doc, "latency_ms", "p99")) for x in xs]
            ax.plot(xs, [np.nan if v is None else v for v in p50], marker=marker, color=color, ls="-",
                    label=names[first[key].run_id])
            ax.plot(xs, [np.nan if v is None else v for v in p99], marker=marker, color=color, ls="--",
                    mfc="none")
            used += [pts[x].run_id for x in xs]
        if ref:
            ax.axhline(ref, color="black", ls=":", lw=1.2)
        ax.set_yscale("log")
        plain_log(ax.yaxis)
        if max(xs_all) / max(min(xs_all), 1e-9) >= 8:
            ax.set_xscale("log", base=2 if by == "concurrency" else 10)
            if by == "rate":
                plain_log(ax.xaxis)
        if by == "concurrency":
            ax.set_xticks(sorted(set(xs_all)), [f"{x:g}" for x in sorted(set(xs_all))])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_title(f"Latency versus {by}", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
        if len(set(xs_all)) == 1:
            ax.text(0.02, 0.98, f"only {by} {xs_all[0]:g} measured so far\n(e.g. {hints[by]})",
                    transform=ax.transAxes, ha="left", va="top", fontsize=9, color="#555555")
    if legend:
        style = [Line2D([], [], color="black", ls="-", marker="o", label="p50 (filled, solid)"),
                 Line2D([], [], color="black", ls="--", marker="o", mfc="none", label="p99 (hollow, dashed)")]
        if ref:
            style.append(Line2D([], [], color="black", ls=":", label=f"in-process reference p50 {ms(ref)}"))
        handles = list(legend.values()) + style
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), fontsize=9)
    fig.suptitle("Latency under load: newest complete run per architecture and load level", fontsize=13)
    return save(fig, path), used


def plot_hops(selected: list[Run], reference: dict | None, path: Path) -> Path:
    names = labels(selected)
    measured = [r for r in selected if isinstance(r.doc.get("hops_ms"), dict) and r.doc["hops_ms"]]
    rows = [(names[r.run_id], r) for r in measured] + [(a, None) for a in missing_archs(measured)]
    fig, ax = plt.subplots(figsize=(13, 1.2 + 0.75 * max(len(rows), 2)), layout="constrained")
    if not measured:
        placeholder(ax, "no bench run with hop timings yet (make bench ARCH=...)")
        ax.set_title("Where the time goes per hop", fontsize=11)
        return save(fig, path)
    ref = reference_p50(reference)
    right = 0.0
    for i, (_, run) in enumerate(rows):
        if run is None:
            ax.text(0, i, "  " + NOT_MEASURED, va="center", fontsize=9, color="#555555")
            continue
        left = 0.0
        for hop in HOPS:
            v = number(run.doc["hops_ms"].get(hop))
            if v:
                ax.barh(i, v, 0.6, left=left, color=HOP_COLORS[hop])
                left += v
        p50 = number(dig(run.doc, "latency_ms", "p50"))
        text = f"hops {left:.2f} ms"
        if p50:
            ax.plot([p50], [i], marker="D", color="black", ms=6, ls="none")
            text += f" · end-to-end p50 {p50:.2f} ms"
        ax.annotate(text, (max(left, p50 or 0), i), xytext=(6, 0), textcoords="offset points", va="center",
                    fontsize=9)
        right = max(right, left, p50 or 0)
    if ref:
        ax.axvline(ref, color="black", ls=":", lw=1.2)
    ax.set_xlim(0, (right or 1.0) * 1.45)
    ax.set_yticks(range(len(rows)), [wrap_label(r[0]) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first arch on top
    ax.set_xlabel("median time per request (ms)")
    ax.set_ylabel("architecture")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=HOP_COLORS[h], label=lbl) for h, lbl in HOPS.items()]
    handles.append(Line2D([], [], marker="D", color="black", ls="none", label="end-to-end p50 (client)"))
    if ref:
        handles.append(Line2D([], [], color="black", ls=":", label=f"in-process reference p50 {ms(ref)}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=9)
    ax.set_title("Where the time goes: median per hop, stacked (medians need not add up to the p50)",
                 fontsize=11)
    return save(fig, path)


# --------------------------------------------------------------------------- report.html

class Markup(str):
    """HTML that is already safe; everything else is escaped."""


def cell(value) -> str:
    if isinstance(value, Markup):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt(value)
    return html.escape(str(value))


def fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "–"
    if abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    elif abs(x) >= 1:
        text = f"{x:.2f}"
    else:
        text = f"{x:.3f}"
    return text + unit


def table(headers: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>\n" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>'


def published(x: float) -> Markup:
    """A number from the study as printed there, not rounded again."""
    return Markup(f"{x:,}")


def missing_cell(text: str = NOT_MEASURED) -> Markup:
    return Markup(f'<span class="missing">{html.escape(text)}</span>')


def per_image_table(selected: list[Run]) -> str:
    names = labels(selected)
    rows = []
    for arch in ARCHES:
        total = studies.TABLE3_SECONDS.get(arch, {}).get(10000)
        per = studies.seconds_per_image(arch)
        theirs = [published(total), per * 1000 if per else None] if total else [missing_cell(NOT_IN_STUDY), None]
        ours = [r for r in selected if r.arch == arch]
        if not ours:
            rows.append([arch_title(arch), *theirs, missing_cell(), missing_cell(), None, None, None])
            continue
        for run in ours:
            largest = table3_largest(run)
            n, mean = largest if largest else (None, None)
            rows.append([names[run.run_id].replace(run.arch, arch_title(arch), 1), *theirs, run.run_id, n, mean,
                         mean / n * 1000 if largest else None, number(dig(run.doc, "latency_ms", "p50"))])
    return table(["architecture", "study: 10,000 images (s)", "study: per image (ms)", "our run",
                  "our N", "ours: N images (s)", "ours: per image (ms)", "ours: p50 latency (ms)"], rows)


def ratio_table(selected: list[Run]) -> str:
    rows = []
    for r in ratio_rows(selected):
        study = Markup(f"{r['study']:.2f}×") if r["study"] else missing_cell(NOT_IN_STUDY)
        if not r["ours"]:
            missing = [a for a in (r["slow"], r["fast"]) if not any(x.arch == a for x in selected)]
            why = f"{NOT_MEASURED} ({', '.join(missing)})" if missing else "no common Table 3 size"
            rows.append([r["label"], study, missing_cell(why), None, None])
        for ours in r["ours"]:
            rows.append([r["label"], study, Markup(f"{ours['ratio']:.2f}×"), f"N = {ours['n']:,}; {ours['variant']}",
                         " / ".join(ours["runs"])])
    return table(["ratio of time per image", "study (10,000 images)", "ours", "ours measured at", "our runs"], rows)


def resources_table(selected: list[Run]) -> str:
    names = labels(selected)
    rkey = ram_key(selected)
    rows = []
    for arch in ARCHES:
        t4 = studies.TABLE4.get(arch)
        theirs = ([published(t4["cpu_percent"]), studies.cpu_percent_of_one_core(arch), published(t4["ram_mb"])] if t4
                  else [missing_cell(NOT_IN_STUDY), None, None])
        ours = [r for r in selected if r.arch == arch and resources_of(r)]
        if not ours:
            rows.append([arch_title(arch), *theirs, missing_cell(), missing_cell(), None, None])
            continue
        for run in ours:
            res = resources_of(run)
            cpu = [number(dig(res, s, "cpu_percent_mean")) for s in SERVER_SERVICES]
            ram = [number(dig(res, s, rkey)) for s in SERVER_SERVICES]
            parts = [f"{dig(res, s, 'service', default=s)} {fmt(c)} % / {fmt(m)} MB"
                     for s, c, m in zip(SERVER_SERVICES, cpu, ram) if c is not None or m is not None]
            client = res.get("client", {})
            if client:
                parts.append(f"client {fmt(number(client.get('cpu_percent_mean')))} % / "
                             f"{fmt(number(client.get(rkey)))} MB (not in total)")
            rows.append([names[run.run_id].replace(run.arch, arch_title(arch), 1), *theirs,
                         sum(c for c in cpu if c is not None), sum(m for m in ram if m is not None),
                         "; ".join(parts), run.run_id])
    ram_name = "PSS" if rkey == "pss_mb_mean" else "RSS"
    return table(["architecture", "study: CPU (% of 8-core machine)", "study: CPU × 8 (≈ % of one core)",
                  "study: RAM (MB)", "ours: CPU (% of one core, server services)",
                  f"ours: RAM ({ram_name} MB, server services)", "ours per service (CPU % / RAM MB)", "our run"],
                 rows)


RUN_TABLE = [("run_id", "run"), ("kind", "kind"), ("arch", "arch"), ("runtime", "runtime"),
             ("interrupted", "interrupted"), ("n", "N"), ("batch", "batch"), ("codec", "codec"),
             ("concurrency", "concurrency"), ("rate", "rate (req/s)"), ("arrivals", "arrivals"),
             ("repeats", "repeats"), ("warmup", "warm-up"), ("users", "users"), ("duration", "duration"),
             ("errors", "errors"), ("accuracy", "accuracy"), ("latency_p50_ms", "p50 (ms)"),
             ("latency_p99_ms", "p99 (ms)"), ("throughput_images_per_s", "images/s"),
             ("reference_ratio_p50", "p50 / reference"), ("git_commit", "commit"), ("created_utc", "created (UTC)")]


def runs_table(rows: list[dict], used: set[str]) -> str:
    out = []
    for row in rows:
        cells = []
        for key, _ in RUN_TABLE:
            v = row.get(key)
            if key == "interrupted":
                v = Markup('<span class="bad">INTERRUPTED</span>') if v else "no"
            elif key == "run_id":
                v = Markup(html.escape(str(v)) + (' <span class="used">plotted</span>' if v in used else ""))
            elif key == "git_commit" and v:
                v = str(v)[:12] + ("-dirty" if str(v).endswith("-dirty") else "")
            cells.append(v)
        out.append(cells)
    return table([h for _, h in RUN_TABLE], out, cls="runs")


def settings_table(selected: list[Run]) -> str:
    names = labels(selected)
    rows = []
    for run in selected:
        s = run.settings
        stack = run.doc.get("stack") if isinstance(run.doc.get("stack"), dict) else {}
        knobs = stack.get("knobs") if isinstance(stack.get("knobs"), dict) else {}
        knob_text = ", ".join(f"{k}={v}" for k, v in sorted(knobs.items()) if not isinstance(v, (dict, list)))
        rows.append([names[run.run_id], run.run_id, run.runtime, s.get("n"), s.get("codec"), s.get("repeats"),
                     s.get("warmup"), s.get("seed"), Markup(f'<span class="small">{html.escape(knob_text)}</span>')])
    if not rows:
        return "<p>No complete default-workload bench run yet.</p>"
    return table(["label", "run", "runtime", "N", "codec", "repeats", "warm-up", "seed", "stack knobs"], rows)


def run_list(ids: list[str]) -> Markup:
    return Markup(f"<details><summary>{len(ids)} run(s)</summary>{html.escape(', '.join(ids))}</details>")


def machines_section(runs: list[Run]) -> str:
    machines: dict[str, list[str]] = {}
    infos: dict[str, dict] = {}
    versions: dict[str, list[str]] = {}
    vinfos: dict[str, dict] = {}
    for run in runs:
        m = dig(run.doc, "provenance", "machine", default=run.doc.get("machine"))
        if isinstance(m, dict):
            stable = {k: v for k, v in m.items() if k != "load_average_1m"}  # varies run to run
            key = json.dumps(stable, sort_keys=True, default=str)
            machines.setdefault(key, []).append(run.run_id)
            infos[key] = stable
        v = dig(run.doc, "provenance", "versions", default=run.doc.get("versions"))
        if isinstance(v, dict):
            key = json.dumps(v, sort_keys=True, default=str)
            versions.setdefault(key, []).append(run.run_id)
            vinfos[key] = v
    parts = ["<h3>Machine</h3>"]
    if machines:
        fields = sorted({k for m in infos.values() for k in m})
        parts.append(table(["runs", *fields], [[run_list(ids), *[infos[k].get(f) for f in fields]]
                                              for k, ids in machines.items()]))
    else:
        parts.append("<p>No run recorded its machine.</p>")
    parts.append("<h3>Versions</h3>")
    if versions:
        keys = list(versions)
        packages = sorted({p for v in vinfos.values() for p in v}, key=str.lower)
        headers = ["package"] + [f"set {i + 1}: {len(versions[k])} run(s)" for i, k in enumerate(keys)]
        parts.append(table(headers, [[p, *[vinfos[k].get(p) for k in keys]] for p in packages]))
        if len(keys) > 1:
            parts.append("<ul>" + "".join(f"<li>set {i + 1}: {run_list(versions[k])}</li>"
                                          for i, k in enumerate(keys)) + "</ul>")
    else:
        parts.append("<p>No run recorded its versions.</p>")
    return "\n".join(parts)


def reference_section(reference: dict | None) -> str:
    if not reference:
        return ("<p>No reference yet (<code>make bench-model</code>): the in-process model call is the "
                "limit every architecture is compared against.</p>")
    lat = reference.get("latency_ms") if isinstance(reference.get("latency_ms"), dict) else {}
    rows = [["one image, in process", *[number(lat.get(k)) for k in ("p50", "p90", "p99", "mean", "max")]]]
    thr = [[t.get("batch"), number(t.get("images_per_s"))] for t in reference.get("throughput") or []
           if isinstance(t, dict)]
    model = reference.get("model") if isinstance(reference.get("model"), dict) else {}
    created = dig(reference, "provenance", "created_utc", default=reference.get("created_utc"))
    return "\n".join([
        f"<p>Run {html.escape(str(reference.get('run_id') or ''))} created {html.escape(str(created or '–'))}; "
        f"model {html.escape(str(model.get('name') or '–'))} v{html.escape(str(model.get('version') or '–'))}. "
        "Shown as a dashed/dotted black line on the latency plots.</p>",
        table(["", "p50 (ms)", "p90 (ms)", "p99 (ms)", "mean (ms)", "max (ms)"], rows),
        table(["batch", "images/s"], thr) if thr else "",
    ])


def figure(name: str, caption: str) -> str:
    return (f'<figure><img src="plots/{html.escape(name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;
     padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.missing{color:#888;font-style:italic}.bad{color:#b00;font-weight:bold}
.used{background:#e6f2e6;color:#262;border-radius:3px;padding:0 .3em;font-size:.8em}
.small{font-size:.85em;color:#444}.note{color:#555}.runs td{white-space:nowrap}
"""


def call_path_section(runs: list[Run], selected: list[Run]) -> str:
    """The same stack with model.predict per request: where the study's milliseconds come from."""
    slow: dict[tuple, Run] = {}
    for run in runs:
        if run.complete_bench and run.call_path != "signature" and run.batch == 1 and run.concurrency == 1 \
                and run.rate is None:
            slow[(run.arch, run.runtime)] = run  # runs are oldest first: the newest wins
    if not slow:
        return "<p>No <code>SB_CALL_PATH=keras-predict</code> runs yet (<code>make bench-study</code> makes them).</p>"
    fast = {(r.arch, r.runtime): r for r in selected if r.codec == "json"}
    rows = []
    for (arch, runtime), run in sorted(slow.items()):
        p50_slow = number(dig(run.doc, "latency_ms", "p50"))
        base = fast.get((arch, runtime))
        p50_fast = number(dig(base.doc, "latency_ms", "p50")) if base else None
        model_slow = number(dig(run.doc, "hops_ms", "model"))
        rows.append([arch, runtime, fmt(p50_fast, " ms"), fmt(p50_slow, " ms"), fmt(model_slow, " ms"),
                     fmt(p50_slow / p50_fast if p50_slow and p50_fast else None, "x"), run.run_id])
    return table(["arch", "runtime", "p50, signature (default)", "p50, keras-predict", "model hop, keras-predict",
                  "slowdown", "run"], rows)


def write_html(path: Path, runs: list[Run], rows: list[dict], selected: list[Run], load_used: list[str],
               reference: dict | None, notes: list[str]) -> None:
    names = labels(selected)
    used = {r.run_id for r in selected} | set(load_used)
    interrupted = [r.run_id for r in runs if r.interrupted]
    chosen = ("".join(f"<li>{html.escape(names[r.run_id])}: {html.escape(r.run_id)}</li>" for r in selected)
              or "<li>none yet</li>")
    not_here = ", ".join(missing_archs(selected)) or "none"
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>servebench report</title><style>{CSS}</style></head><body>
<h1>servebench report</h1>
<p class="note">Generated {html.escape(generated)} from {len(runs)} run(s) in this folder.
Every run is in <a href="summary.csv">summary.csv</a>.</p>

<h2>Runs behind the comparison plots</h2>
<p>Per (arch, runtime, codec): the complete bench run with the default workload
(batch 1, concurrency 1, no rate, the model called through its signature) and the most images,
the newest of those. Interrupted runs are never plotted.
Architectures {NOT_MEASURED}: {html.escape(not_here)}.</p>
<ul>{chosen}</ul>
{settings_table(selected)}
<p>Latency versus load uses: {html.escape(", ".join(load_used) or "no runs")}.</p>
{"<h3>Notes</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>" if notes else ""}
{("<p class='bad'>Interrupted (listed, not plotted): " + html.escape(", ".join(interrupted)) + "</p>")
 if interrupted else ""}

<h2>How the server calls the model</h2>
<p>The same stacks with <code>SB_CALL_PATH=keras-predict</code>: every request calls Keras's
<code>model.predict</code> (as tutorials, and by its numbers the study, do) instead of the SavedModel's
compiled signature. This is a measured pitfall, never one of the compared architectures.</p>
{call_path_section(runs, selected)}

<h2>Our numbers beside the study's</h2>
<p>Source: {html.escape(studies.SOURCE)}. Their machine: {html.escape(studies.HARDWARE["cpu"])},
{html.escape(studies.HARDWARE["ram"])} RAM, {html.escape(studies.HARDWARE["gpu"])};
{html.escape(studies.HARDWARE["software"])}. The hardware differs, so compare the ratios between
architectures; absolute times are shown for completeness. Where we have no run the table says
"{NOT_MEASURED}"; nothing is filled in.</p>
<p>Their conclusions: {html.escape("; ".join(studies.CONCLUSIONS))}.</p>
<h3>Time per image</h3>
<p>Study: the time for 10,000 images divided by 10,000. Ours: the mean over repeats of the time for the
largest N sent, divided by N (Table 3 protocol: one image per request, sequential).</p>
{per_image_table(selected)}
<h3>Ratios between architectures</h3>
{ratio_table(selected)}
<h3>CPU and RAM (Table 4 / Figure 11)</h3>
<p>The study's CPU % is {html.escape(studies.CPU_PERCENT_BASIS)}; ours is % of one core
(100 % = one core busy), summed over nginx, the front end and the model server. The ×8 column puts
theirs on our scale, approximately.</p>
{resources_table(selected)}

<h2>Plots</h2>
{figure(PLOTS["table3"], "Time per image at the study's Table 3 sizes: ours, theirs, and the ratios between "
        "architectures.")}
{figure(PLOTS["resources"], "CPU and RAM per service (ours, top; CPU as % of one core) and the study's "
        "Figure 11 (bottom; CPU as % of an 8-core machine).")}
{figure(PLOTS["latency"], "Per-request latency distribution of the comparison runs, with the in-process "
        "reference.")}
{figure(PLOTS["load"], "p50 and p99 latency versus concurrency and versus offered rate.")}
{figure(PLOTS["hops"], "Median time per hop of one request, per architecture.")}

<h2>In-process reference</h2>
{reference_section(reference)}

<h2>All runs</h2>
{runs_table(rows, used)}

<h2>Machine and versions</h2>
{machines_section(runs)}
</body></html>
"""
    path.write_text(body)


# --------------------------------------------------------------------------- main

def build(results: Path) -> dict[str, Path]:
    """Everything the report writes; returns what was written, by name."""
    runs, notes = load_runs(results)
    reference = load_reference(results, runs)
    rows = [summary_row(r) for r in runs]
    selected = comparison_runs(runs)
    plots_dir = results / "plots"
    plots_dir.mkdir(exist_ok=True)
    written = {"summary": results / "summary.csv"}
    write_summary(rows, written["summary"])
    written["table3"] = plot_table3(selected, plots_dir / PLOTS["table3"])
    written["resources"] = plot_resources(selected, plots_dir / PLOTS["resources"])
    written["latency"] = plot_latency(selected, reference, plots_dir / PLOTS["latency"], notes)
    written["load"], load_used = plot_load(runs, reference, plots_dir / PLOTS["load"])
    written["hops"] = plot_hops(selected, reference, plots_dir / PLOTS["hops"])
    written["html"] = results / "report.html"
    write_html(written["html"], runs, rows, selected, load_used, reference, notes)
    for note in notes:
        print(f"note: {note}")
    interrupted = sum(r.interrupted for r in runs)
    print(f"read {len(runs)} run(s) ({interrupted} interrupted, {len(notes)} note(s)); "
          f"comparison runs: {', '.join(r.run_id for r in selected) or 'none'}")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="folder of run folders")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: {args.results} is not a folder (run make bench first)", file=sys.stderr)
        return 2
    written = build(args.results)
    for path in written.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
