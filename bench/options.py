"""The harness's options: one typed object per command, built once from the command line and passed down.

Each option is a field, declared once with its type, default, constraints and
help; :func:`parse` derives the command line from the fields (``n`` is
``--n``, ``run_dir`` is ``--run-dir``, a boolean that defaults to true is
``--no-<name>``), validates what was given and reports a bad value under the
flag that carried it. The same classes are built directly by code (a study's
experiments), where a bad value raises pydantic's ``ValidationError``.

Locust runs the locustfile in its own processes, so ``bench.load`` hands the
load options to them as knobs (``SB_LOAD_*``, declared in :mod:`bench.knobs`).
"""
from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench import resources, results
from bench.formats import parse_duration
from servebench import codecs, registry

OPEN_LOOP_CONNECTIONS = 16  # the most requests in flight at once in the open loop, at least
TEST_SET_IMAGES = 10000  # CIFAR-10's test set


def option(default: Any, doc: str, *, flag: str | None = None, positional: bool = False, cli: bool = True,
           append: bool = False, **constraints) -> Any:
    """A field that is also a command-line option (``cli=False``: set by code only)."""
    extra: dict[str, Any] = {"cli": cli}
    if flag:
        extra["flag"] = flag
    if positional:
        extra["positional"] = True
    if append:
        extra["append"] = True
    return Field(default, description=doc, json_schema_extra=extra, **constraints)


def seconds_of(duration_option: str) -> property:
    """A property: the option ``duration_option`` (a duration such as 20s, 1m) in seconds."""
    return property(lambda self: parse_duration(getattr(self, duration_option)))


class Options(BaseModel):
    """What every harness command shares: where results and data are, and whether to draw progress bars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path = option(results.DEFAULT_ROOT, "results folder")
    data_dir: Path | None = option(None, "cifar-10-batches-py folder (default: SB_CIFAR10_DIR or the shared copy)")
    progress: bool = option(True, "progress bars")
    study: str | None = option(None, "the study whose experiment this run is", cli=False)

    @classmethod
    def choices(cls) -> dict[str, tuple]:
        """Allowed values of the string fields that are looked up (not Literal types)."""
        return {"runtime": registry.RUNTIMES, "codec": codecs.CODECS, "arch": registry.names(),
                "arches": registry.names(), "study": tuple(s.name for s in registry.studies())}

    @field_validator("*")
    @classmethod
    def _one_of(cls, value, info):
        allowed = cls.choices().get(info.field_name)
        if allowed is None or value is None:
            return value
        for v in value if isinstance(value, tuple) else (value,):
            if v not in allowed:
                raise ValueError(f"unknown {v!r}: choose from {', '.join(allowed)}")
        return value

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line spelling of field ``name``."""
        f = cls.model_fields[name]
        extra = f.json_schema_extra or {}
        if extra.get("positional"):
            return name.upper()
        if extra.get("flag"):
            return extra["flag"]
        dashed = name.replace("_", "-")
        if f.annotation is bool and f.default is True:
            return f"--no-{dashed}"
        return f"--{dashed}"


class StackOptions(Options):
    """A command that sends work through a stack's nginx (started here when none runs)."""

    arch: str = option(..., "architecture")
    runtime: str = option("native", "where the stack runs")
    run_dir: Path | None = option(None, "the stack's state folder (default: SB_RUN_DIR or run/)")
    codec: str = option("json", "request body format")
    batch: int = option(1, "images per request", ge=1)
    sample_hz: float = option(resources.DEFAULT_HZ, "resource samples per second", gt=0)


class BenchOptions(StackOptions):
    """``python -m bench.run``: N test images through a stack, closed or open loop."""

    n: int = option(TEST_SET_IMAGES, "input rows (images) to send per pass, at most 10000 (the CIFAR-10 test set)",
                    ge=1, le=TEST_SET_IMAGES)
    protocol: str | None = option(None, "v1 (/v1/predict with --codec: image models), v2 (KServe v2; --codec json "
                                        "or raw) or tfserving (REST, json); default: v1 for an image model, v2 "
                                        "for any other")
    concurrency: int = option(1, "closed loop: requests in flight (1: sequential)", ge=1)
    rate: float | None = option(None, "open loop: requests per second", gt=0)
    arrivals: Literal["constant", "poisson"] = option("constant", "open-loop inter-arrival times")
    connections: int | None = option(
        None, f"open loop: connection pool (default: max(concurrency, {OPEN_LOOP_CONNECTIONS}))", ge=1)
    repeats: int = option(1, "passes over the N images", ge=1)
    warmup: int = option(50, "requests sent first and not counted", ge=0)
    seed: int = option(0, "seed of the Poisson arrivals")
    overhead_requests: int = option(1000, "requests for the harness-overhead measurement", ge=1)
    # MLPerf LoadGen (bench.loadgen) schedules the requests instead, and judges the run.
    loadgen: str | None = option(None, "MLPerf LoadGen's scenario instead of the closed/open loop: singlestream "
                                       "(one query at a time) or server (Poisson arrivals at --loadgen-qps); "
                                       "its minimum query count is --n")
    loadgen_qps: float | None = option(None, "--loadgen server: target queries per second", gt=0)
    loadgen_min_duration: float = option(10.0, "--loadgen: LoadGen's minimum run length (s)", ge=0)
    loadgen_max_duration: float = option(600.0, "--loadgen: LoadGen stops issuing after this long (s; 0: no limit)",
                                         ge=0)
    loadgen_latency_ms: float = option(50.0, "--loadgen server: the p99 latency bound of a VALID run (ms)", gt=0)
    deadline_ms: float = option(100.0, "architectures driven by frames: a frame answered later than this counts "
                                       "as a deadline miss (besides one frame interval at --rate)", gt=0)

    @classmethod
    def choices(cls) -> dict[str, tuple]:
        return {**super().choices(), "arch": (*registry.names(), "all"), "loadgen": ("singlestream", "server"),
                "protocol": ("v1", "v2", "tfserving")}

    @model_validator(mode="after")
    def _loadgen(self):
        if self.loadgen is None:
            return self
        if self.rate is not None:
            raise ValueError("--loadgen schedules the requests itself: leave out --rate")
        if self.repeats != 1:
            raise ValueError("--loadgen runs one LoadGen test: --repeats must be 1")
        if self.loadgen == "server" and self.loadgen_qps is None:
            raise ValueError("--loadgen server needs --loadgen-qps (make: LOADGEN_QPS)")
        if self.loadgen == "singlestream" and self.concurrency != 1:
            raise ValueError("--loadgen singlestream sends one query at a time: leave --concurrency at 1")
        return self

    @property
    def pool(self) -> int:
        """Connections the run keeps open: the open loop's pool, else one per request in flight."""
        if self.connections is not None:
            return self.connections
        open_loop = self.rate or self.loadgen == "server"
        return max(self.concurrency, OPEN_LOOP_CONNECTIONS) if open_loop else self.concurrency

    def recorded(self) -> dict:
        """What a bench record says it was asked to do (its ``settings``)."""
        doc = {
            "n": self.n, "batch": self.batch, "codec": self.codec, "protocol": self.protocol,
            "concurrency": self.concurrency,
            "rate": self.rate, "arrivals": self.arrivals if self.rate else None,
            "open_loop_connections": self.pool if self.rate else None,
            "repeats": self.repeats, "warmup": self.warmup, "seed": self.seed,
            "mode": ("open" if self.rate else "closed"), "sample_hz": self.sample_hz,
        }
        if self.loadgen:
            doc.update({
                "mode": f"loadgen-{self.loadgen}", "loadgen": self.loadgen,
                "loadgen_qps": self.loadgen_qps if self.loadgen == "server" else None,
                "loadgen_min_duration_s": self.loadgen_min_duration, "loadgen_max_duration_s": self.loadgen_max_duration,
                "loadgen_latency_ms": self.loadgen_latency_ms if self.loadgen == "server" else None,
                "open_loop_connections": self.pool if self.loadgen == "server" else None,
            })
        return doc


class LoadOptions(StackOptions):
    """``python -m bench.load``: a locust load test."""

    users: int = option(4, "simulated users (each one request at a time)", ge=1)
    spawn_rate: float = option(4.0, "users started per second", gt=0)
    duration: str = option("30s", "run time, locust's format: 30s, 5m, 1h30m")
    workers: int = option(0, "0: one locust process; n: a master and n workers", ge=0)
    images: int = option(1000, "test images each locust process encodes and cycles", ge=1, le=TEST_SET_IMAGES)
    ui: bool = option(False, "locust's web UI on 127.0.0.1 instead of a headless run")
    web_port: int = option(8089, "the web UI's port", ge=1, le=65535)

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class SoakOptions(StackOptions):
    """``python -m bench.soak``: a steady share of capacity for a long time, watching memory."""

    duration: str = option("10m", "soak length: 30s, 10m, 1h, 1h30m or seconds")
    load: float = option(0.70, "share of the measured capacity to send", gt=0, le=1.5)
    rate: float | None = option(None, "requests/s; skips the capacity measurement", gt=0)
    probe: str = option("15s", "capacity measurement length (closed loop)")
    probe_concurrency: int = option(8, "connections of the capacity measurement", ge=1)
    n: int = option(TEST_SET_IMAGES, "test images cycled through (at most 10000)", ge=1, le=TEST_SET_IMAGES)
    connections: int = option(16, "open-loop connection pool", ge=1)
    warmup: int = option(50, "requests sent first and not counted", ge=0)
    # PSS walks every page table; once a second is cheap enough for hours.
    sample_hz: float = option(1.0, "resource samples per second", gt=0)
    window: str = option("20s", "median window of the growth figures")
    goal: float = option(5.0, "memory growth goal, %", gt=0)
    bin: str = option("1m", "latency/throughput bins")

    @field_validator("duration", "probe", "window", "bin")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    duration_s = seconds_of("duration")
    probe_s = seconds_of("probe")
    window_s = seconds_of("window")
    bin_s = seconds_of("bin")


class ReferenceOptions(Options):
    """``python -m bench.reference``: the model's own cost, in process."""

    calls: int = option(1000, "timed one-image calls", ge=1)
    warmup: int = option(50, "untimed one-image calls first", ge=0)
    batch_sizes: tuple[int, ...] = option((1, 8, 32, 128), "batch sizes, comma-separated", min_length=1)
    batch_images: int = option(2048, "images per batch size (throughput)", ge=1)
    batch_seconds: float | None = option(
        None, "run each batch size this long instead of a fixed number of images", gt=0)
    codec_calls: int = option(300, "timed one-image calls per codec", ge=0)
    codecs: tuple[str, ...] = option(("json", "raw"), f"codecs, comma-separated, from {','.join(codecs.CODECS)}")

    @field_validator("batch_sizes", "codecs", mode="before")
    @classmethod
    def _comma_list(cls, v):
        return tuple(x.strip() for x in v.split(",") if x.strip()) if isinstance(v, str) else v

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(b < 1 for b in v):
            raise ValueError("batch sizes must be at least 1")
        return v

    @field_validator("codecs")
    @classmethod
    def _known_codecs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(codecs.CODECS))
        if unknown:
            raise ValueError(f"unknown codec(s) {', '.join(unknown)}: choose from {', '.join(codecs.CODECS)}")
        return v


class StudyOptions(Options):
    """``python -m bench.study NAME``: a study's experiments, then its report section."""

    study: str = option(..., "the study to run (servebench.registry)", positional=True)
    runtime: str = option("native", "where the stacks run")
    n: int = option(TEST_SET_IMAGES, "images of the main workload", ge=1, le=TEST_SET_IMAGES)
    quick: bool = option(False, "shrink every count for a smoke run")
    arches: tuple[str, ...] = option((), "only these architectures (repeatable); default: the study's that run here",
                                     flag="--arch", append=True)
    reference: bool = option(True, "the fresh in-process reference before each architecture "
                                   "(results/reference.json is kept as it is)")
    slow_path_n: int = option(300, "images for the keras-predict runs", ge=1, le=TEST_SET_IMAGES)
    run_dir: Path | None = option(None, "the stacks' state folder (default: SB_RUN_DIR or run/)")
    report: bool = option(True, "rewriting the report afterwards")
    progress: bool = option(False, "progress bars (off: a study runs unattended)")


# ------------------------------------------------------------------ the command line
def parser(cls: type[Options], description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser derived from ``cls``'s fields; it leaves out what was not given."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    choices = cls.choices()
    for name, f in cls.model_fields.items():
        extra = f.json_schema_extra or {}
        if not extra.get("cli", True):
            continue
        doc = f.description or ""
        if f.annotation is bool:
            p.add_argument(cls.flag(name), dest=name, action="store_false" if f.default else "store_true",
                           help=f"turn off {doc}" if f.default else doc)
            continue
        kw: dict[str, Any] = {"help": doc + ("" if f.is_required() or f.default in (None, ()) else
                                             f" (default: {_shown(f.default)})")}
        if name in choices:
            kw["choices"] = choices[name]
        elif typing.get_origin(f.annotation) is Literal:
            kw["choices"] = typing.get_args(f.annotation)
        if extra.get("positional"):
            p.add_argument(name, metavar=name.upper(), **kw)
            continue
        if extra.get("append"):
            kw["action"] = "append"
        p.add_argument(cls.flag(name), dest=name, required=f.is_required(), **kw)
    return p


def parse(cls: type[Options], argv=None, description: str | None = None):
    """``cls`` built from ``argv``; a bad value exits with usage and the flag that carried it."""
    p = parser(cls, description)
    given = vars(p.parse_args(argv))
    try:
        return cls.model_validate(given)
    except ValidationError as exc:
        p.error(explain(exc, cls))


def explain(exc: ValidationError, cls: type[Options]) -> str:
    """A validation error as the command line spells it: ``--n: Input should be ...``."""
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = err["loc"]
        parts.append(f"{cls.flag(loc[0])}: {msg}" if loc and loc[0] in cls.model_fields else msg)
    return "; ".join(parts)


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, Path):
        try:
            return str(value.relative_to(results.REPO_ROOT))
        except ValueError:
            return str(value)
    return str(value)


# ------------------------------------------------------------------ saturation (bench.sweep, bench.reference curve)
def _number_list(v):
    """``"1 2 4"``, ``"1,2,4"`` (make variables, flags) or a sequence, as a tuple of strings or values."""
    if isinstance(v, str):
        return tuple(x for x in v.replace(",", " ").split() if x)
    return v


class ModelCurveOptions(Options):
    """``python -m bench.reference curve``: the model alone at each batch size, images/s and CPU per image."""

    batch_sizes: tuple[int, ...] = option((1, 2, 4, 8, 16, 32, 64), "batch sizes, comma-separated", min_length=1)
    seconds: float = option(2.0, "timed calls at each batch size for this long", gt=0)
    warmup_calls: int = option(3, "untimed calls first at each batch size", ge=0)
    threads: tuple[int, ...] = option(
        (), "intra-op thread counts, each measured in a process of its own (default: the serving settings' "
            "intra_op_threads, and the machine's logical CPUs for its limit)")

    @field_validator("batch_sizes", "threads", mode="before")
    @classmethod
    def _lists(cls, v):
        return _number_list(v)

    @field_validator("batch_sizes", "threads")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(x < 1 for x in v):
            raise ValueError("every value must be at least 1")
        return v


class SweepOptions(StackOptions):
    """``python -m bench.sweep``: one architecture under rising load until it saturates, batching off and on."""

    study: str | None = option("saturation", "the study whose experiment this run is", cli=False)
    codec: str = option("raw", "request body format (raw: no JSON decoding in the saturation figures)")
    sample_hz: float = option(1.0, "resource samples per second (resources.csv; CPU per level is read at "
                                   "window edges)", gt=0)
    concurrency: tuple[int, ...] = option((1, 2, 4, 8, 16, 32, 64), "closed-loop levels (requests in flight)")
    rates: tuple[float, ...] = option((), "open-loop levels in requests/s (default: RATE_FRACTIONS x the "
                                          "saturated closed-loop throughput just measured)")
    rate_fractions: tuple[float, ...] = option((0.25, 0.5, 0.75, 0.9, 1.0, 1.1),
                                               "open-loop levels as fractions of the saturated throughput")
    arrivals: Literal["constant", "poisson"] = option("poisson", "open-loop inter-arrival times")
    connections: int = option(64, "open loop: connection pool (the most requests in flight)", ge=1)
    window_s: float = option(2.0, "length of one measurement window (s)", gt=0)
    windows_limit: int = option(10, "most windows per level before it is marked unstable", ge=3)
    stable_windows: int = option(3, "consecutive windows that must agree", ge=2)
    tolerance: float = option(0.10, "how far they may disagree: max/min <= 1 + tolerance", gt=0, lt=1)
    warmup_s: float = option(1.0, "load at each level before its first window, not measured (s)", ge=0)
    warmup: int = option(100, "requests sent to each new stack first and not counted", ge=0)
    n: int = option(1000, "test images cycled through", ge=1, le=TEST_SET_IMAGES)
    batching: tuple[Literal["off", "on"], ...] = option(("off", "on"), "server-side batching modes, each its "
                                                                       "own stack", min_length=1)
    batch_max_size: int = option(16, "batching on: SB_BATCH_MAX_SIZE of its stack", ge=2)
    batch_timeout_ms: float = option(0.0, "batching on: SB_BATCH_TIMEOUT_MS of its stack (0: batch what waits)", ge=0)
    # Both modes: up to 64 requests in flight need threads to wait in, or nginx queues them and
    # no batch forms; the same in both, so that only batching differs.
    threads: int = option(16, "SB_FRONTEND_THREADS and SB_BACKEND_THREADS of both stacks", ge=1)
    client: Literal["servebench", "perf_analyzer"] = option(
        "servebench", "load generator: ours (bench.client) or Triton's perf_analyzer (bench.perf_analyzer)")
    model_curve: Literal["latest", "fresh", "none"] = option(
        "latest", "the in-process model curve: the newest matching one in the results folder (measured when "
                  "none matches), a fresh one, or none (no limit, no efficiency)")
    curve_seconds: float = option(2.0, "a curve measured here: seconds per batch size", gt=0)
    seed: int = option(0, "seed of the Poisson arrivals")

    @field_validator("concurrency", "rates", "rate_fractions", "batching", mode="before")
    @classmethod
    def _lists(cls, v):
        return _number_list(v)

    @field_validator("concurrency", "rates", "rate_fractions")
    @classmethod
    def _positive(cls, v: tuple) -> tuple:
        if any(x <= 0 for x in v):
            raise ValueError("every value must be positive")
        return v

    @field_validator("batching")
    @classmethod
    def _distinct(cls, v: tuple) -> tuple:
        return tuple(dict.fromkeys(v))

    def serving(self, mode: str) -> dict:
        """The serving settings of the stack of batching ``mode`` (over the caller's)."""
        threads = {"frontend_threads": self.threads, "backend_threads": self.threads}
        if mode == "off":  # no timeout either: one without batching is refused
            return {**threads, "batch_max_size": 1, "batch_timeout_ms": 0.0}
        return {**threads, "batch_max_size": self.batch_max_size, "batch_timeout_ms": self.batch_timeout_ms}

    def recorded(self) -> dict:
        """What a sweep record says it was asked to do (its ``settings``)."""
        return {
            "n": self.n, "batch": self.batch, "codec": self.codec, "client": self.client,
            "concurrency_levels": list(self.concurrency), "rates": list(self.rates) or None,
            "rate_fractions": None if self.rates else list(self.rate_fractions), "arrivals": self.arrivals,
            "open_loop_connections": self.connections, "window_s": self.window_s,
            "windows_limit": self.windows_limit, "stable_windows": self.stable_windows,
            "tolerance": self.tolerance, "warmup_s": self.warmup_s, "warmup": self.warmup,
            "batching": list(self.batching), "batch_max_size": self.batch_max_size,
            "batch_timeout_ms": self.batch_timeout_ms, "threads": self.threads, "model_curve": self.model_curve,
            "seed": self.seed, "sample_hz": self.sample_hz, "mode": "sweep",
        }
