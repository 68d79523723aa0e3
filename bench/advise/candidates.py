"""The measured configurations under a results folder, each with its levels: what the advisor chooses from.

A configuration is one stack as it was measured: architecture, runtime, request
body (codec, images per request) and the serving knobs its services received
(batching, threads, workers, engine, ...), read from the knobs each run
recorded. Its levels come from

- saturation sweeps (``*-sweep-<arch>/``, kind ``sweep``): one configuration
  per batching mode, every row of ``levels.csv`` a level (closed loops at a
  concurrency, open loops at an offered rate); CPU per image is the sweep's
  server-side figure (nginx + front end + backend, read at window edges);
  memory is the largest RSS of each service in ``resources.csv``, summed;
- bench runs (``*-bench-<arch>/``, kind ``bench``, the engines study's among
  them): one level per run, repeats of the same level merged (throughput and
  CPU their median, p99 the worst); CPU per image from the run's sampler
  (its services' CPU seconds per image), memory their largest RSS.

Model curves (kind ``model-curve``) are no configuration: they give the
machine's in-process limit, drawn beside the front.
"""
from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench import provenance, records
from bench.report import runs
from bench.formats import number
from servebench import registry
from servebench import settings as settings_mod
from servebench.settings import env_name

CLIENT = "client"  # the load generator's row in resources: not part of the stack
SHOWN_ALWAYS = ("frontend_workers", "frontend_threads", "backend_workers", "backend_threads", "batch_max_size",
                "batch_timeout_ms", "engine")  # in a configuration's label and its `make up` line


@dataclass
class Level:
    """One measured load on one configuration."""

    mode: str  # closed or open
    throughput: float  # images/s answered
    p50_ms: float | None
    p99_ms: float
    cpu_ms_per_image: float | None  # server side
    run_id: str
    concurrency: int | None = None  # closed loop: requests in flight
    offered: float | None = None  # open loop: images/s offered
    stable: bool = True
    repeats: int = 1

    @property
    def load(self) -> float:
        """Images/s this level stands for: the offered rate of an open loop, the throughput of a closed one."""
        return self.offered if self.mode == "open" and self.offered else self.throughput

    @property
    def served(self) -> bool:
        """An open loop that kept up (answered at least 95% of what it was offered); a closed loop always."""
        return self.mode == "closed" or not self.offered or self.throughput >= 0.95 * self.offered

    def describe(self) -> str:
        return f"concurrency {self.concurrency}" if self.mode == "closed" else f"open loop {self.offered:g} images/s"

    def as_dict(self) -> dict:
        return {"mode": self.mode, "concurrency": self.concurrency, "offered_images_per_s": self.offered,
                "throughput_images_per_s": self.throughput, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
                "cpu_ms_per_image": self.cpu_ms_per_image, "stable": self.stable, "repeats": self.repeats,
                "run_id": self.run_id}


@dataclass
class Configuration:
    arch: str
    runtime: str
    codec: str
    batch: int  # images per request
    knobs: dict[str, str]  # SB_* -> value: the serving knobs its services received
    source: str  # sweep or bench
    model: str = "?"  # what the stack said it serves (an ensemble: its members' models)
    levels: list[Level] = field(default_factory=list)
    memory_mb: float | None = None  # the stack's RSS
    run_ids: list[str] = field(default_factory=list)
    machine: tuple = ()  # provenance.same_machine_key of the runs

    @property
    def key(self) -> tuple:
        return (self.arch, self.model, self.runtime, self.codec, self.batch, self.source,
                tuple(sorted(self.knobs.items())), self.machine)

    def knob(self, name: str) -> str | None:
        return self.knobs.get(env_name(name))

    @property
    def batching(self) -> str:
        return "on" if (number(self.knob("batch_max_size")) or 1) > 1 else "off"

    @property
    def label(self) -> str:
        k = self.knob
        parts = [self.arch, f"batching {self.batching}"]
        if self.batching == "on":
            parts[-1] += f" (size {k('batch_max_size')}, timeout {k('batch_timeout_ms')} ms)"
        if k("frontend_threads"):
            parts.append(f"front end {k('frontend_workers')}x{k('frontend_threads')}")
        if k("backend_threads"):
            parts.append(f"backend {k('backend_workers')}x{k('backend_threads')}")
        if k("engine"):
            parts.append(k("engine") + (f" {k('openvino_precision')}" if k("engine") == "openvino" else ""))
        parts.append(f"{self.codec} x{self.batch}, {self.runtime}")
        return ", ".join(parts)

    def max_throughput(self) -> float:
        return max((lv.throughput for lv in self.levels if lv.served), default=0.0)

    def as_dict(self) -> dict:
        return {"label": self.label, "arch": self.arch, "model": self.model, "runtime": self.runtime, "codec": self.codec,
                "batch": self.batch, "batching": self.batching, "source": self.source, "knobs": self.knobs,
                "memory_mb": self.memory_mb, "run_ids": self.run_ids,
                "levels": [lv.as_dict() for lv in self.levels]}


@dataclass
class Measurements:
    configurations: list[Configuration]
    limit: dict | None  # the newest model curve's in-process limit: images_per_s, run_id
    notes: list[str]


# ------------------------------------------------------------------ which knobs make a configuration
def config_fields(arch: str) -> list[str]:
    """Settings fields that are serving knobs of ``arch``'s services: recorded, not a study's or tool's."""
    try:
        a = registry.get(arch)
        receivers = set(a.services)
        for name in a.services:
            receivers |= set(registry.service(name).groups)
    except (ValueError, KeyError):
        receivers = None  # no longer registered: every serving knob
    sectioned = {f for fields in settings_mod.Settings.__sections__.values() for f in fields}
    out = []
    for name, f in settings_mod.knob_fields().items():
        if name in settings_mod.NOT_RECORDED or name in sectioned:
            continue
        if receivers is None or receivers & set(f.json_schema_extra.get("to", ())):
            out.append(name)
    return out


def config_knobs(arch: str, recorded: dict | None) -> dict[str, str]:
    """The configuration's knobs from a stack's recorded ones (a knob it did not record: today's default)."""
    recorded = recorded or {}
    defaults = settings_mod.knob_defaults()
    return {env_name(f): str(recorded.get(env_name(f), defaults[env_name(f)])) for f in config_fields(arch)}


def served_model(stack: dict | None, doc: dict) -> str:
    """The model a stack said it serves (/v1/info), an ensemble's members joined; else the record's card."""
    info = (stack or {}).get("info") or {}
    backend = info.get("backend") or {}
    members = backend.get("members")
    if isinstance(members, dict) and members:
        return "+".join(sorted(str((m or {}).get("model") or name) for name, m in members.items()))
    for model in (backend.get("model"), info.get("model")):
        if isinstance(model, dict) and model.get("name"):
            return str(model["name"])
    card = doc.get("model_card")
    if isinstance(card, dict) and card.get("name"):
        return str(card["name"])
    return str((info.get("settings") or {}).get("model_name") or "?")


# ------------------------------------------------------------------ reading the runs
def _rows(path: Path) -> list[dict]:
    try:
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def stack_memory(rows: list[dict], mode: str | None = None) -> float | None:
    """Sum over the stack's services of each one's largest RSS (MB) in resources.csv rows."""
    peak: dict[str, float] = {}
    for row in rows:
        if mode is not None and row.get("batching") != mode:
            continue
        name, rss = row.get("service"), number(row.get("rss_mb"))
        if name and name != CLIENT and rss is not None:
            peak[name] = max(peak.get(name, 0.0), rss)
    return round(sum(peak.values()), 1) if peak else None


def _truthy(value) -> bool:
    return str(value).strip().lower() == "true"


def sweep_configurations(record: records.RunRecord, folder: Path) -> list[Configuration]:
    doc = record.doc()
    settings = doc.get("settings") or {}
    stacks = doc.get("stacks") or {}
    levels = _rows(folder / "levels.csv")
    resources = _rows(folder / "resources.csv")
    out = []
    for mode in dict.fromkeys(r.get("batching") for r in levels):
        knobs = (stacks.get(mode) or {}).get("knobs")
        if mode is None or knobs is None:
            continue
        cfg = Configuration(record.arch, record.runtime or "native", settings.get("codec") or "raw",
                            int(settings.get("batch") or 1), config_knobs(record.arch, knobs), "sweep",
                            served_model(stacks.get(mode), doc), memory_mb=stack_memory(resources, mode), run_ids=[record.run_id],
                            machine=provenance.same_machine_key(record.provenance.machine or {}))
        for row in levels:
            if row.get("batching") != mode or _truthy(row.get("interrupted")):
                continue
            thr, p99 = number(row.get("throughput_images_per_s")), number(row.get("p99_ms"))
            if thr is None or p99 is None:
                continue
            is_open = row.get("mode") == "open"
            rate = number(row.get("rate"))
            cfg.levels.append(Level(
                "open" if is_open else "closed", thr, number(row.get("p50_ms")), p99,
                number(row.get("server_cpu_ms_per_image")), record.run_id,
                concurrency=None if is_open else int(number(row.get("concurrency")) or 0),
                offered=rate * cfg.batch if is_open and rate else None, stable=_truthy(row.get("stable"))))
        if cfg.levels:
            out.append(cfg)
    return out


def bench_configuration(record: records.RunRecord) -> tuple[Configuration, Level] | None:
    doc = record.doc()
    s = doc.get("settings") or {}
    if s.get("mode") not in ("closed", "open") or not (doc.get("stack") or {}).get("knobs"):
        return None  # LoadGen runs and frame streams are judged otherwise
    thr = number(doc.get("throughput_images_per_s"))
    p99 = number((doc.get("latency_ms") or {}).get("p99"))
    if thr is None or p99 is None:
        return None
    res = doc.get("resources") or {}
    services = {k: v for k, v in res.items() if k != CLIENT and isinstance(v, dict)}
    per_image = [number(v.get("cpu_seconds_per_image")) for v in services.values()]
    cpu = round(sum(per_image) * 1000, 4) if per_image and None not in per_image else None
    rss = [number(v.get("rss_mb_max")) for v in services.values()]
    batch = int(s.get("batch") or 1)
    cfg = Configuration(record.arch, record.runtime or "native", s.get("codec") or "json", batch,
                        config_knobs(record.arch, doc["stack"]["knobs"]), "bench",
                        served_model(doc["stack"], doc), memory_mb=round(sum(rss), 1) if rss and None not in rss else None,
                        machine=provenance.same_machine_key(record.provenance.machine or {}))
    is_open = s.get("mode") == "open"
    level = Level("open" if is_open else "closed", thr, number((doc.get("latency_ms") or {}).get("p50")), p99, cpu,
                  record.run_id, concurrency=None if is_open else s.get("concurrency"),
                  offered=number(s.get("rate")) * batch if is_open and s.get("rate") else None)
    return cfg, level


def merge_repeats(levels: list[Level]) -> Level:
    """Repeats of one level: throughput and CPU their median, p99 the worst (the SLO's side)."""
    if len(levels) == 1:
        return levels[0]
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    cpus = [lv.cpu_ms_per_image for lv in levels if lv.cpu_ms_per_image is not None]
    p50s = [lv.p50_ms for lv in levels if lv.p50_ms is not None]
    first = levels[0]
    return Level(first.mode, med([lv.throughput for lv in levels]), med(p50s), max(lv.p99_ms for lv in levels),
                 med(cpus), ",".join(lv.run_id for lv in levels), concurrency=first.concurrency,
                 offered=first.offered, stable=all(lv.stable for lv in levels), repeats=len(levels))


def _newest_limit(curves: list[records.RunRecord]) -> dict | None:
    for rec in sorted(curves, key=lambda r: r.run_id, reverse=True):
        limit = rec.get("limit") or {}
        if number(limit.get("images_per_s")):
            return {"images_per_s": number(limit["images_per_s"]), "run_id": rec.run_id}
    return None


def load(results: Path, archs: tuple[str, ...] = (), model: str | None = None, batch: int | None = None,
         machine: tuple | None = None) -> Measurements:
    """Every measured configuration under ``results`` (of ``archs`` only, when given; serving ``model`` with
    ``batch`` images per request, when given; measured on ``machine``, a provenance.same_machine_key, when
    given and any was)."""
    configs: dict[tuple, Configuration] = {}
    bench_levels: dict[tuple, dict[tuple, list[Level]]] = {}
    curves, notes = [], []
    found, unreadable, _ = runs.scan(results)  # the report's reading of a results folder, notes and all
    notes += unreadable
    for run in found:
        record, folder = run.record, run.path
        if record.kind == "model-curve":
            curves.append(record)
            continue
        if record.interrupted or not record.arch or (archs and record.arch not in archs):
            continue
        if record.kind == "sweep":
            for cfg in sweep_configurations(record, folder):
                configs[cfg.key + (record.run_id,)] = cfg  # each sweep stands alone: its levels are one session
        elif record.kind == "bench":
            found = bench_configuration(record)
            if found is None:
                continue
            cfg, level = found
            held = configs.setdefault(cfg.key, cfg)
            if record.run_id not in held.run_ids:
                held.run_ids.append(record.run_id)
            if cfg.memory_mb is not None:
                held.memory_mb = max(held.memory_mb or 0.0, cfg.memory_mb)
            bench_levels.setdefault(cfg.key, {}).setdefault((level.mode, level.concurrency, level.offered),
                                                            []).append(level)
    for key, by_level in bench_levels.items():
        configs[key].levels = [merge_repeats(lvs) for lvs in by_level.values()]
    kept = [cfg for cfg in configs.values()
            if (model is None or cfg.model == model) and (batch is None or cfg.batch == batch)]
    left = len(configs) - len(kept)
    if left:
        notes.append(f"left out {left} configuration(s) serving another model than {model} or another number of "
                     f"images per request than {batch}")
    if machine is not None:
        # CPU per image and latency are the machine's: another CPU's measurements predict nothing here.
        here = [cfg for cfg in kept if cfg.machine == machine]
        if here:
            if len(here) < len(kept):
                notes.append(f"left out {len(kept) - len(here)} configuration(s) measured on another machine than "
                             f"this one ({machine[0]}, {machine[1]} CPUs)")
            kept = here
        elif kept:
            notes.append(f"no configuration was measured on this machine ({machine[0]}, {machine[1]} CPUs): "
                         "the ranking rests on other machines' runs and its predictions may not hold here")
    if machine is not None:
        curves = [r for r in curves if provenance.same_machine_key(r.provenance.machine or {}) == machine] or curves
    return Measurements(kept, _newest_limit(curves), notes)
