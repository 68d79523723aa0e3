"""The runs under a results folder, read through ``bench.records``, and the ones the comparisons use.

Every ``<run>/summary.json`` is read with :func:`bench.records.read`, which
upgrades documents of any schema version (those written before the schema had
one included); a folder whose summary cannot be read is skipped with a note.
The measurements differ by kind (a bench run's ``latency_ms``, a load run's
``locust`` totals), so they are looked up with :meth:`Run.get`, which treats a
missing or null field alike.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench import provenance, records
from bench.report import archs
from bench.formats import number
from servebench.types import MODEL_NAME

REFERENCE = "reference.json"  # the baseline the harness compares with, a copy of a reference run's summary

# The path of one request, in order; a hop an architecture does not have is absent or null.
HOPS = {
    "client_network_nginx": "client → nginx (network)",
    "gunicorn": "gunicorn",
    "django": "Django",
    "forward_network": "Django → backend (network)",
    "backend_framework": "backend framework",
    "decode": "decode",
    "queue": "batching queue",
    "model": "model",
}
SERVICES = ("nginx", "frontend", "backend", "client")  # roles: backend is whichever model server runs
SERVER_SERVICES = SERVICES[:3]  # the client is the load generator, not part of the architecture
NOT_MEASURED = "not measured here"  # only for an architecture no committed run measured (see absent_label)
NO_HDR = "no latency distribution committed for this run (older than latency.hdr)"
STREAM_PROTOCOLS = ("tcp-stream", "websocket", "grpc-stream")  # frames on one connection, not requests
ENSEMBLE_SERVICE = "ensemble"  # the coordinator: its SB_ENSEMBLE_MEMBERS says which members answer


def dig(doc, *keys, default=None):
    """doc[k1][k2]... or default when any level is missing, null or not a mapping."""
    for key in keys:
        if not isinstance(doc, dict) or doc.get(key) is None:
            return default
        doc = doc[key]
    return doc


class Run:
    """One run folder: its record (current schema) and where it lies."""

    def __init__(self, record: records.RunRecord, path: Path):
        self.record = record
        self.path = path
        self.run_id = record.run_id
        self.doc = record.doc()  # plain data, read many times below

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"

    def get(self, *keys, default=None):
        return dig(self.doc, *keys, default=default)

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def arch(self) -> str | None:
        return self.record.arch

    @property
    def runtime(self) -> str | None:
        return self.record.runtime

    @property
    def interrupted(self) -> bool:
        return self.record.interrupted

    @property
    def settings(self) -> dict:
        return self.record.settings

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
    def n(self) -> int:
        return int(number(self.settings.get("n")) or 0)

    @property
    def created(self) -> str:
        return self.record.provenance.created_utc or ""

    @property
    def newest_key(self) -> tuple[str, str]:
        return (self.created, self.run_id)  # run ids start with a UTC time too

    @property
    def call_path(self) -> str:
        return str(self.get("stack", "knobs", "SB_CALL_PATH") or "signature")

    @property
    def member_alone(self) -> str | None:
        """The one member an ensemble run asked (SB_ENSEMBLE_MEMBERS of one name): that member's latency
        through the ensemble's hops, not the ensemble's; else None."""
        record = archs.record(self.arch)
        members = self.get("stack", "knobs", "SB_ENSEMBLE_MEMBERS")
        if record is None or ENSEMBLE_SERVICE not in record.services or members is None:
            return None
        names = [m.strip() for m in str(members).split(",") if m.strip()]
        return names[0] if len(names) == 1 else None

    @property
    def shown_arch(self) -> str | None:
        """The architecture as the page names the run: a single-member ensemble run names its member."""
        member = self.member_alone
        return f"ensemble member {member} (alone)" if member else self.arch

    @property
    def server_batching(self) -> bool:
        """Server-side batching was on in its stack (SB_BATCH_MAX_SIZE above 1; older records: off)."""
        size = number(self.get("stack", "knobs", "SB_BATCH_MAX_SIZE"))
        return bool(size and size > 1)

    @property
    def engine(self) -> str:
        return str((self.get("stack", "knobs") or {}).get("SB_ENGINE") or "tensorflow")

    @property
    def model(self) -> str:
        return str(self.get("model_card", "name") or MODEL_NAME)  # records before model cards: the CNN

    @property
    def stands_for_arch(self) -> bool:
        # keras-predict runs measure a pitfall, a member alone is not the ensemble, batching on is a variant
        # the saturation study compares, another engine or model is another axis: none of them stands for
        # its arch in the comparison plots.
        return (self.call_path == "signature" and self.member_alone is None and not self.server_batching
                and self.engine == "tensorflow" and self.model == MODEL_NAME)

    @property
    def has_distribution(self) -> bool:
        """It holds its requests' latencies: latency.hdr (committed), or requests.csv (a local run's rows)."""
        from bench import distributions

        return any((self.path / f).is_file() for f in (distributions.FILE, distributions.REQUESTS_FILE))

    @property
    def setup(self) -> tuple:
        """What repeats of one measurement share: kind, architecture, runtime, workload, knobs, study, commit."""
        knobs = self.get("stack", "knobs") or {}
        return (self.kind, self.arch, self.runtime, self.codec, self.batch, self.concurrency, self.rate, self.n,
                self.get("study"), tuple(sorted((k, str(v)) for k, v in knobs.items())),
                self.record.provenance.git_commit)

    @property
    def default_workload(self) -> bool:
        return self.batch == 1 and self.concurrency == 1 and self.rate is None and self.stands_for_arch

    @property
    def complete_bench(self) -> bool:
        return self.kind == "bench" and not self.interrupted and self.arch is not None


def load_runs(results: Path) -> tuple[list[Run], list[str]]:
    """Every run folder under results, oldest first, and notes on what was skipped."""
    runs, notes, not_runs = scan(results)
    return runs, not_runs + notes


ADVICE_PREFIX = "advice-"


def scan(results: Path) -> tuple[list[Run], list[str], list[str]]:
    """(runs oldest first, notes on unreadable runs, notes on folders that hold no run).

    A folder without summary.json is no run (one still running, or one killed before its record): the
    page never cites it, since a clone does not have it; the report prints it."""
    runs, notes, not_runs = [], [], []
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        if folder.is_symlink() or folder.name.startswith(".") or folder.name == "plots":
            continue  # results/latest points at a run listed anyway; plots/ is ours
        if folder.name.startswith(ADVICE_PREFIX):
            continue  # the advisor's answers (bench/advise): they cite runs, they are none
        if not (folder / records.FILE).is_file():
            not_runs.append(f"skipped {folder.name}: no {records.FILE}")
            continue
        try:
            record = records.read(folder)
        except records.SchemaError as exc:
            notes.append(f"skipped {folder.name}: {exc}")
            continue
        runs.append(Run(record, folder))
    runs.sort(key=lambda r: r.newest_key)
    return runs, notes, not_runs


def load_reference(results: Path, runs: list[Run]) -> Run | None:
    """results/reference.json (the harness's baseline), else the newest complete reference run."""
    done = [r for r in runs if r.kind == "reference" and not r.interrupted]
    try:
        record = records.parse(json.loads((results / REFERENCE).read_text()))
    except (OSError, ValueError):  # missing, not JSON, or not a record
        return done[-1] if done else None
    # The copy names no run when written before the schema; the run it copies does.
    same = [r for r in runs if r.kind == "reference" and r.created and r.created == record.provenance.created_utc]
    return same[-1] if same else Run(record, results)


def reference_p50(reference: Run | None) -> float | None:
    return number(reference.get("latency_ms", "p50")) if reference else None


def run_order(run: Run) -> tuple:
    return (*archs.order(run.arch), run.runtime or "", run.codec or "", run.batch)


def comparison_runs(runs: list[Run]) -> list[Run]:
    """Per (arch, runtime, codec): the complete default-workload bench run with the most images, newest first."""
    best: dict[tuple, Run] = {}
    for run in runs:
        if run.complete_bench and run.default_workload:
            key = (run.arch, run.runtime, run.codec)
            if key not in best or (run.n, run.newest_key) > (best[key].n, best[key].newest_key):
                best[key] = run
    return sorted(best.values(), key=run_order)


def distribution_runs(runs: list[Run]) -> list[Run]:
    """The latency distribution's runs: as :func:`comparison_runs`, among the runs that hold their latencies
    (a committed latency.hdr: a clone redraws the same plot)."""
    return comparison_runs([r for r in runs if r.has_distribution])


def repeats_of(run: Run, runs: list[Run]) -> list[Run]:
    """The complete runs that repeat ``run``'s measurement (its own included), oldest first."""
    return [r for r in runs if not r.interrupted and r.setup == run.setup]


def labels(runs: list[Run], fields=("runtime", "codec", "batch"), titled: bool = False) -> dict[str, str]:
    """run_id -> arch (or its title), plus whichever of runtime/codec/batch differ across these runs."""
    varying = [f for f in fields if len({getattr(r, f) for r in runs}) > 1]
    out = {}
    for r in runs:
        extra = [f"batch {r.batch}" if f == "batch" else str(getattr(r, f)) for f in varying]
        name = archs.title(r.arch) if titled else (r.arch or "?")
        out[r.run_id] = name + (f" ({', '.join(extra)})" if extra else "")
    return out


def missing_archs(runs: list[Run], among: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """The architectures (registered ones, or those given) that none of these runs measured."""
    have = {r.arch for r in runs}
    return [a for a in (archs.known() if among is None else among) if a not in have]


def archs_of(run: Run) -> set[str]:
    """The architectures a run measured: its own, and those of its rows (a study run names one per row)."""
    found = {run.arch} if run.arch else set()
    rows = run.get("rows")
    if isinstance(rows, list):
        found |= {row["arch"] for row in rows if isinstance(row, dict) and isinstance(row.get("arch"), str)}
    return found


def measured_by(runs: list[Run]) -> dict[str, list[Run]]:
    """arch -> the complete runs of any kind (bench, sweep, stream study, crosscheck...) that measured it."""
    found: dict[str, list[Run]] = {}
    for run in runs:
        if not run.interrupted:
            for arch in archs_of(run):
                found.setdefault(arch, []).append(run)
    return found


def section_of(arch: str) -> str:
    record = archs.record(arch)
    study = record.study if record else None
    return f"the {study.replace('-', ' ').capitalize()} section" if study else "another section"


def absent_label(arch: str, runs: list[Run], lacking: str = "no default-workload bench run") -> str:
    """Why a plot has no data for ``arch``: where the committed runs measured it instead, or
    NOT_MEASURED when none did. ``lacking``: what the plot needed and the arch's runs do not have."""
    by = measured_by(runs).get(arch)
    if not by:
        return NOT_MEASURED
    record = archs.record(arch)
    if record is not None and record.protocol in STREAM_PROTOCOLS:
        return f"measured in {section_of(arch)}: frames, not requests"
    kinds = ", ".join(sorted({r.kind for r in by}))
    return f"measured in {section_of(arch)} ({kinds} runs): {lacking}"


def absent_labels(drawn: list[Run], runs: list[Run], lacking: str = "no default-workload bench run"
                  ) -> list[tuple[str, str]]:
    """(arch, why) for each registered architecture none of ``drawn`` stands for, in registry order."""
    return [(a, absent_label(a, runs, lacking)) for a in missing_archs(drawn)]


# --------------------------------------------------------------------------- measurements

def service_role(name: str) -> str:
    if name in ("nginx", "client"):
        return name
    if name in ("frontend", "django", "gunicorn"):
        return "frontend"
    return "backend"


def resources_of(run: Run) -> dict[str, dict]:
    """role -> resource means; from the record, else averaged from resources.csv."""
    found: dict[str, dict] = {}
    res = run.get("resources")
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

    def mean(g, column):
        return number(pd.to_numeric(g[column], errors="coerce").mean()) if column in g else None

    for name, g in df.groupby("service"):
        found.setdefault(service_role(str(name)), {
            "service": str(name),
            "cpu_percent_mean": mean(g, "cpu_percent"),
            "rss_mb_mean": mean(g, "rss_mb"),
            "pss_mb_mean": mean(g, "pss_mb"),
        })
    return found


def table3_of(run: Run) -> dict[int, tuple[float, float | None]]:
    """N -> (mean s, stdev s) of the sequential one-image passes, as recorded."""
    out = {}
    t3 = run.get("table3")
    if isinstance(t3, dict):
        for key, entry in t3.items():
            n, mean = number(key), number(dig(entry, "mean_s"))
            if n and mean is not None:
                out[int(n)] = (mean, number(dig(entry, "stdev_s")))
    return out


def table3_largest(run: Run) -> tuple[int, float] | None:
    """(N, mean seconds for N images) at the largest N measured."""
    sizes = table3_of(run)
    if not sizes:
        return None
    n = max(sizes)
    return n, sizes[n][0]


def request_latencies(run: Run) -> np.ndarray | None:
    """Successful requests' latency (ms): from the committed latency.hdr (what a clone has), else from
    requests.csv, warm-up rows left out."""
    from bench import distributions

    try:
        lat = distributions.latencies(run.path)
    except ValueError:  # a damaged file: the rows, if any, still tell
        lat = None
    if lat is not None and lat.size:
        return np.asarray(lat)
    try:
        df = pd.read_csv(run.path / "requests.csv")
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


def load_series(runs: list[Run], by: str, batch: int | None = 1) -> dict[tuple, dict]:
    """(arch, runtime, codec, batch) -> {x: newest complete run}; by is 'concurrency' or 'rate'; only runs of
    ``batch`` images a request (None: any), so the x axis is the only thing that varies, and only runs of the
    machine the newest of them ran on."""
    series: dict[tuple, dict] = {}
    found = [r for r in runs if r.complete_bench and r.stands_for_arch and (batch is None or r.batch == batch)]
    # One machine per plot: the newest run's (a point measured elsewhere is another machine's latency).
    newest = max(found, key=lambda r: r.newest_key, default=None)
    if newest is not None:
        key = provenance.same_machine_key(newest.record.provenance.machine or {})
        found = [r for r in found if provenance.same_machine_key(r.record.provenance.machine or {}) == key]
    for run in found:
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


def load_sweep_runs(runs: list[Run]) -> list[str]:
    """The runs the latency-versus-load plot draws, in its order."""
    used = []
    for by in ("concurrency", "rate"):
        series = load_series(runs, by)
        first = {key: next(iter(pts.values())) for key, pts in series.items()}
        for key, pts in sorted(series.items(), key=lambda kv: run_order(first[kv[0]])):
            used += [pts[x].run_id for x in sorted(pts)]
    return used
