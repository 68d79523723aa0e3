"""summary.csv (one row per run) and the tables of the page, as data the templates render.

A table is a :class:`Table` of :class:`Cell` values; :func:`cell` turns plain
values into cells the way the page has always shown them (numbers to about
three digits, '–' for nothing, yes/no), so callers pass numbers, not text.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import archs
from bench.formats import number, significant
from bench.records import synthetic_label
from bench.report.runs import HOPS, NOT_MEASURED, SERVICES, Run, dig, labels, resources_of, table3_largest
from servebench.settings import env_value, knob_defaults

COLUMNS = [
    "run_id", "kind", "arch", "runtime", "interrupted",
    "n", "batch", "codec", "concurrency", "rate", "arrivals", "repeats", "warmup", "seed",
    "users", "spawn_rate", "duration", "workers", "call_path",
    "model", "data_source", "synthetic_inputs",
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
SETTING_COLUMNS = ("n", "batch", "codec", "concurrency", "rate", "arrivals", "repeats", "warmup", "seed",
                   "users", "spawn_rate", "duration", "workers")


# --------------------------------------------------------------------------- summary.csv

def errors_of(run: Run) -> tuple[int | None, str]:
    by_status = run.get("requests", "errors_by_status")
    if isinstance(by_status, dict):
        count = sum(int(number(v) or 0) for v in by_status.values())
        return count, ";".join(f"{k}:{v}" for k, v in sorted(by_status.items()))
    failures = run.get("requests", "errors", default=run.get("locust", "failures"))  # a load run's locust totals
    return (None if failures is None else int(number(failures) or 0)), ""


def latency_of(run: Run) -> dict:
    """p50/p90/p99/mean/max in ms: a bench run's latency_ms, else a load run's locust totals."""
    lat = run.get("latency_ms", default=run.get("locust", "latency_ms"))
    return {stat: number(dig(lat, stat)) for stat in ("p50", "p90", "p99", "mean", "max")}


def summary_row(run: Run) -> dict:
    row = {c: None for c in COLUMNS}
    row.update(run_id=run.run_id, kind=run.kind, arch=run.arch, runtime=run.runtime, interrupted=run.interrupted)
    row["shown_arch"] = run.shown_arch  # the page's name for it; not a column of summary.csv
    for key in SETTING_COLUMNS:
        row[key] = run.settings.get(key)
    row["call_path"] = run.call_path
    # Which model on which inputs; a run on generated inputs says so wherever its numbers are shown.
    row["model"] = run.get("model_card", "name", default=run.get("model", "name"))
    row["data_source"] = run.get("data", "source")
    row["synthetic_inputs"] = run.get("synthetic_inputs")
    row["requests"] = run.get("requests", "count", default=run.get("locust", "requests"))
    row["ok"] = run.get("requests", "ok")
    row["errors"], row["errors_by_status"] = errors_of(run)
    row["accuracy"] = number(run.get("accuracy"))
    for stat, value in latency_of(run).items():
        row[f"latency_{stat}_ms"] = value
    row["throughput_images_per_s"] = number(run.get("throughput_images_per_s",
                                                    default=run.get("locust", "images_per_s")))
    row["requests_per_s"] = number(run.get("requests_per_s", default=run.get("locust", "requests_per_s")))
    row["wall_s"] = number(run.get("wall_s"))
    if run.kind == "reference":  # its one-image latency is the row's latency; batch-1 throughput
        row["batch"] = 1
        thr = run.get("throughput")
        ones = [t for t in thr if isinstance(t, dict) and t.get("batch") == 1] if isinstance(thr, list) else []
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
    for hop in HOPS:
        row[f"hop_{hop}_ms"] = number(run.get("hops_ms", hop))
    row["harness_overhead_ms"] = number(run.get("harness_overhead_ms"))
    row["reference_p50_ms"] = number(run.get("reference", "p50_ms"))
    row["reference_ratio_p50"] = number(run.get("reference", "ratio_p50"))
    prov = run.record.provenance
    row["git_commit"] = prov.git_commit
    row["created_utc"] = run.created or None
    row["cpu_model"] = prov.machine.get("cpu_model")
    row["logical_cpus"] = prov.machine.get("logical_cpus")
    row["path"] = run.path.name
    return row


def write_summary(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


# --------------------------------------------------------------------------- table data

@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""  # CSS class of the text: missing, bad, small
    badge: str = ""  # a short tag after the text (a plotted run)
    details: str = ""  # folded under the text, shown on click


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    cls: str = ""
    caption: str = ""  # above the table: what every row shares
    kind = "table"  # a block of a section (bench.report.sections)

    def add(self, *values) -> None:
        self.rows.append([cell(v) for v in values])


def cell(value) -> Cell:
    if isinstance(value, Cell):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("–")
    if isinstance(value, bool):
        return Cell("yes" if value else "no")
    if isinstance(value, float):
        return Cell(significant(value))
    return Cell(str(value))


def table(headers: list[str], rows: list[list], cls: str = "") -> Table:
    t = Table(list(headers), cls=cls)
    for row in rows:
        t.add(*row)
    return t


def published(x: float) -> Cell:
    """A number from a study as printed there, not rounded again."""
    return Cell(f"{x:,}")


def missing(text: str = NOT_MEASURED) -> Cell:
    return Cell(text, cls="missing")


def run_list(ids: list[str]) -> Cell:
    return Cell(f"{len(ids)} run(s)", details=", ".join(ids))


# --------------------------------------------------------------------------- the page's own tables

RUN_TABLE = [("run_id", "run"), ("kind", "kind"), ("arch", "arch"), ("model", "model"), ("runtime", "runtime"),
             ("interrupted", "interrupted"), ("n", "N"), ("batch", "batch"), ("codec", "codec"),
             ("concurrency", "concurrency"), ("rate", "rate (req/s)"), ("arrivals", "arrivals"),
             ("repeats", "repeats"), ("warmup", "warm-up"), ("users", "users"), ("duration", "duration"),
             ("errors", "errors"), ("accuracy", "accuracy"), ("latency_p50_ms", "p50 (ms)"),
             ("latency_p99_ms", "p99 (ms)"), ("throughput_images_per_s", "images/s"),
             ("reference_ratio_p50", "p50 / reference"), ("git_commit", "commit"), ("created_utc", "created (UTC)")]


def runs_table(rows: list[dict], used: set[str]) -> Table:
    out = []
    for row in rows:
        cells = []
        for key, _ in RUN_TABLE:
            v = row.get(key)
            if key == "interrupted":
                v = Cell("INTERRUPTED", cls="bad") if v else "no"
            elif key == "run_id":
                v = Cell(str(v), badge="plotted" if v in used else "")
            elif key == "arch":
                v = row.get("shown_arch", v)
            elif key == "model":
                v = Cell("–" if v is None else str(v), badge=synthetic_label(row))
            elif key == "git_commit" and v:
                v = str(v)[:12] + ("-dirty" if str(v).endswith("-dirty") else "")
            cells.append(v)
        out.append(cells)
    return table([h for _, h in RUN_TABLE], out, cls="runs")


AT_DEFAULTS = "all at their defaults"


def knob_cell(knobs) -> Cell:
    """The stack's knobs that differ from the defaults (servebench.settings), the full list folded under them."""
    knobs = knobs if isinstance(knobs, dict) else {}
    plain = {k: v for k, v in sorted(knobs.items()) if not isinstance(v, (dict, list))}
    defaults = knob_defaults()
    differ = [f"{k}={v}" for k, v in plain.items() if defaults.get(k) != env_value(v)]
    return Cell(", ".join(differ) or AT_DEFAULTS, cls="small",
                details=", ".join(f"{k}={v}" for k, v in plain.items()))


def without_common(t: Table, keep: int) -> Table:
    """The columns after the first ``keep`` whose text is the same in every row, said once in the caption."""
    if len(t.rows) < 2:
        return t
    common = [i for i in range(keep, len(t.headers)) if len({(r[i].text, r[i].details) for r in t.rows}) == 1]
    t.caption = "; ".join(f"{t.headers[i]}: {t.rows[0][i].text}" for i in common)
    t.caption = f"Same in every run: {t.caption}." if t.caption else ""
    kept = [i for i in range(len(t.headers)) if i not in common]
    t.headers = [t.headers[i] for i in kept]
    t.rows = [[r[i] for i in kept] for r in t.rows]
    return t


def settings_table(selected: list[Run]) -> Table | None:
    """One row per comparison run; its knobs as their difference from the defaults, shared settings once."""
    names = labels(selected)
    rows = []
    for run in selected:
        s = run.settings
        rows.append([Cell(names[run.run_id], badge=synthetic_label(run)), run.run_id, run.runtime, s.get("n"),
                     s.get("codec"), s.get("repeats"),
                     s.get("warmup"), s.get("seed"), knob_cell(run.get("stack", "knobs"))])
    if not rows:
        return None
    return without_common(table(["label", "run", "runtime", "N", "codec", "repeats", "warm-up", "seed",
                                 "stack knobs (differences from the defaults; click for all)"], rows), keep=2)


def call_path_table(runs: list[Run], selected: list[Run]) -> Table | None:
    """The same stack with model.predict per request: where the study's milliseconds come from."""
    slow: dict[tuple, Run] = {}
    for run in runs:
        if run.complete_bench and run.call_path != "signature" and run.batch == 1 and run.concurrency == 1 \
                and run.rate is None:
            slow[(run.arch, run.runtime)] = run  # runs are oldest first: the newest wins
    if not slow:
        return None
    fast = {(r.arch, r.runtime): r for r in selected if r.codec == "json"}
    rows = []
    for (arch, runtime), run in sorted(slow.items(), key=lambda kv: (archs.order(kv[0][0]), kv[0][1] or "")):
        p50_slow = number(run.get("latency_ms", "p50"))
        base = fast.get((arch, runtime))
        p50_fast = number(base.get("latency_ms", "p50")) if base else None
        model_slow = number(run.get("hops_ms", "model"))
        rows.append([arch, runtime, significant(p50_fast, " ms"), significant(p50_slow, " ms"), significant(model_slow, " ms"),
                     significant(p50_slow / p50_fast if p50_slow and p50_fast else None, "x"), run.run_id])
    return table(["arch", "runtime", "p50, signature (default)", "p50, keras-predict", "model hop, keras-predict",
                  "slowdown", "run"], rows)


def machine_tables(runs: list[Run]) -> dict:
    """The machines and the package versions the runs recorded, each set with its runs."""
    machines: dict[str, list[str]] = {}
    infos: dict[str, dict] = {}
    versions: dict[str, list[str]] = {}
    vinfos: dict[str, dict] = {}
    for run in runs:
        m = run.record.provenance.machine
        if m:
            stable = {k: v for k, v in m.items() if k != "load_average_1m"}  # varies run to run
            key = json.dumps(stable, sort_keys=True, default=str)
            machines.setdefault(key, []).append(run.run_id)
            infos[key] = stable
        v = run.record.provenance.versions
        if v:
            key = json.dumps(v, sort_keys=True, default=str)
            versions.setdefault(key, []).append(run.run_id)
            vinfos[key] = v
    out: dict = {"machines": None, "versions": None, "version_sets": []}
    if machines:
        fields = sorted({k for m in infos.values() for k in m})
        out["machines"] = table(["runs", *fields], [[run_list(ids), *[infos[k].get(f) for f in fields]]
                                                    for k, ids in machines.items()])
    if versions:
        keys = list(versions)
        packages = sorted({p for v in vinfos.values() for p in v}, key=str.lower)
        headers = ["package"] + [f"set {i + 1}: {len(versions[k])} run(s)" for i, k in enumerate(keys)]
        out["versions"] = table(headers, [[p, *[vinfos[k].get(p) for k in keys]] for p in packages])
        if len(keys) > 1:
            out["version_sets"] = [(f"set {i + 1}", run_list(versions[k])) for i, k in enumerate(keys)]
    return out


def reference_tables(reference: Run | None) -> dict | None:
    if reference is None:
        return None
    lat = [number(reference.get("latency_ms", k)) for k in ("p50", "p90", "p99", "mean", "max")]
    thr = reference.get("throughput", default=[])
    thr = [[t.get("batch"), number(t.get("images_per_s"))] for t in thr if isinstance(t, dict)] \
        if isinstance(thr, list) else []
    return {
        "run_id": reference.run_id,
        "created": reference.created or "–",
        "model": str(reference.get("model", "name") or "–"),
        "version": str(reference.get("model", "version") or "–"),
        "label": synthetic_label(reference),
        "latency": table(["", "p50 (ms)", "p90 (ms)", "p99 (ms)", "mean (ms)", "max (ms)"],
                         [[Cell("one image, in process", badge=synthetic_label(reference)), *lat]]),
        "throughput": table(["batch", "images/s"], thr) if thr else None,
    }
