"""The offloading study's runs (issue 14): each model uploaded piece by piece over a shaped link, baseline
and proposed build modes, while the client's query loop runs.

For each model (``SB_OFFLOAD_MODELS``):

1. Partition it (:mod:`bench.studies.offloading.partition`) into the study's piece count and
   write the encoded pieces to ``run/offloading/<model>.pieces``.
2. One link for the study (:class:`servebench.netns.ShapedLink`, two
   namespaces, ``tc tbf`` at ``SB_OFFLOAD_LINK_MBIT`` each way) and one edge
   server in the server's namespace (:mod:`bench.studies.offloading.edge_server`,
   the registry's ``edge-server`` service), brought up by the native runtime:
   healthy once its port accepts inside the namespace, rolled back on any failure.
3. The client (:mod:`bench.studies.offloading.edge_client`) in the client's namespace, under
   a CPU quota (a cgroup, ``SB_OFFLOAD_CLIENT_CPUS``); it builds its own copy
   of the model once, then runs ``repeats`` x (baseline, proposed), alternating
   so drift hits both modes alike. Before each upload the link's rate is
   measured with a real TCP transfer; the "expected from size" time is the
   bytes sent at that rate.

One run folder per model: ``summary.json`` (kind ``offloading``), ``uploads.csv``
(one row per upload) and ``queries.csv`` (one row per query). The namespaces,
veths, qdiscs, cgroup and processes are removed after every run, a failed or
interrupted one too. Random-weight models are labelled "timing only".

Each upload row also has its timeline (:mod:`bench.studies.offloading.timeline`): the transfer's and the
builds' start and end on one clock, and how much of the building overlapped the transfer.

Scale: the default (four models, five repeats, the client at 0.2 core) takes about 20 minutes on 2 cores,
most of it ResNet-152's and AlexNet's uploads (about 30 s each at 80 Mbit/s) and the client building its
own copies under its quota; ``SB_OFFLOAD_QUERIES_AFTER`` shortens each upload's tail of queries.
``--quick`` uploads only MobileNet and the Table 1 CNN once per mode.
"""
from __future__ import annotations

import gc
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench import results
from bench.options import StudyOptions
from bench.records import RunRecord
from bench.session import RunSession
from bench.studies.offloading import timeline
from bench.studies.offloading.knobs import EDGE_SERVER
from servebench import interrupts, processes, registry
from servebench import runtime as runtimes
from servebench.knobs import SectionValues
from servebench.settings import REPO_ROOT, Settings

STUDY = "offloading"
MODES = ("baseline", "proposed")
TIMING_ONLY = "timing only (random weights)"
QUICK = {"models": ("mobilenet", "cifar10_cnn"), "repeats": 1, "queries_after": 3}  # models: unless set
START_TIMEOUT_S = 180  # TensorFlow's import and the client's own copy of the model, on a busy machine
UPLOAD_TIMEOUT_S = 600
UPLOAD_COLUMNS = ["model", "mode", "repeat", "upload_s", "expected_s", "rate_mbit_measured", "sent_bytes",
                  "piece_bytes", "build_s_total", "units", "queries", "drops", *timeline.COLUMNS]
# Per mode in the summary: the median of the repeats with its min and max.
SPREAD = ("upload_s", "build_s", "overlap_s", "overlap_frac", "stall_s", "tail_s", "build_s_total")
QUERY_COLUMNS = ["model", "mode", "repeat", "index", "start_s", "duration_s", "server_pieces", "remote_s",
                 "server_s", "local_s", "after_upload", "upload_done_s"]


@dataclass(frozen=True)
class Upload:
    """One planned upload: a model, a build mode, a repeat."""

    model: str
    mode: str
    repeat: int

    @property
    def title(self) -> str:
        return f"{self.model}: {self.mode}, repeat {self.repeat}"


def knobs(options: StudyOptions, settings: Settings | None = None) -> SectionValues:
    """The study's knobs in force (``settings``, default the environment's); a quick run shrinks those that
    were not set."""
    settings = settings if settings is not None else Settings()
    if options.quick:
        settings = settings.model_copy(update={f"offload_{k}": v for k, v in QUICK.items()
                                               if f"offload_{k}" not in settings.model_fields_set})
    return settings.section("offload")


def experiments(options: StudyOptions, settings: Settings | None = None) -> list[Upload]:
    """Every upload in order: per model, repeats x (baseline, proposed). Pure: starts nothing."""
    from models import offload_models

    k = knobs(options, settings)
    for name in k.models:
        offload_models.get(name)  # an unknown name fails when the plan is made
    return [Upload(m, mode, r) for m in k.models for r in range(1, k.repeats + 1) for mode in MODES]


def unavailable() -> str | None:
    """Why the study cannot run here (None when it can): it needs namespaces, tc and cgroups (root)."""
    from servebench import cgroups, netns

    why = netns.unavailable()
    if why:
        return f"the shaped link cannot be made: {why}"
    return cgroups.unavailable()


# ------------------------------------------------------------------ pieces
def prepare(model_name: str, folder: Path, log: Callable = print) -> dict:
    """Partition ``model_name`` and write its pieces to ``folder/<model>.pieces``; what it made."""
    import keras

    from bench.studies.offloading import partition
    from bench.studies.offloading import pieces as wire
    from models import offload_models

    spec = offload_models.get(model_name)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = spec.make()
    cuts = partition.cut_points(model)
    blobs = partition.encode(spec.name, partition.pieces(model, spec.pieces))
    path = folder / f"{spec.name}.pieces"
    wire.write_bundle(path, blobs)
    # An image's pixels as uint8, as a camera gives them: a query's input crosses the link at a quarter of
    # float32's bytes (the first piece's input is the image; the server casts it).
    x = np.random.default_rng(0).integers(0, 256, (1, *spec.input_shape), dtype=np.uint8)
    np.save(folder / f"{spec.name}.input.npy", x)
    info = {"model": spec.name, "title": spec.title, "timing_only": spec.timing_only,
            "label": TIMING_ONLY if spec.timing_only else "trained weights",
            "pieces_study": spec.pieces, "pieces": len(blobs), "cut_points": len(cuts),
            "operations": len(model.operations), "parameters": int(model.count_params()),
            "piece_bytes": [len(b) for b in blobs], "size_bytes": sum(map(len, blobs)),
            "input_shape": list(spec.input_shape), "prepare_s": round(time.perf_counter() - start, 2)}
    del model, blobs
    keras.backend.clear_session()
    gc.collect()
    log(f"{spec.title}: {info['pieces']} pieces ({info['cut_points']} cut points), "
        f"{info['size_bytes'] / 1e6:.1f} MB in {info['prepare_s']} s")
    return {**info, "path": path, "input": folder / f"{spec.name}.input.npy"}


# ------------------------------------------------------------------ processes
class Lines:
    """A child's stdout read line by line on a thread, so reads can time out."""

    def __init__(self, proc: processes.Process):
        self.proc = proc
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def next(self, timeout: float, what: str) -> str:
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            raise runtimes.StackError(f"{what}: nothing after {timeout:.0f} s") from None
        if line is None:
            raise runtimes.StackError(f"{what}: the process exited ({self.proc.wait()})")
        return line.strip()


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


class EdgeServerStack:
    """The registry's edge server as a stack of its own in ``<folder>/edge-server``, started by the native
    runtime in a namespace (its existing-state and stray checks, health wait inside the namespace, rollback).
    A killed run's server: ``SB_RUN_DIR=<that dir> python -m servebench.runtime down``."""

    def __init__(self, folder: Path):
        from servebench.stack import NativeRuntime

        self.dir = Path(folder).resolve() / registry.service(EDGE_SERVER).name
        self.runtime = NativeRuntime(down_hint=f"SB_RUN_DIR={self.dir} python -m servebench.runtime down")

    def up(self, settings: Settings, link, log: Callable = print) -> runtimes.StackState:
        """Start it on the link's server address, in the server's namespace (the link: a ShapedLink)."""
        settings = settings.model_copy(update={"offload_host": link.server_addr})
        return self.runtime.up_services([registry.service(EDGE_SERVER)], settings, self.dir, name=STUDY, log=log,
                                        timeout_s=START_TIMEOUT_S, netns=link.namespace("server"),
                                        netns_host=link.server_addr)

    def down(self) -> None:
        self.runtime.down(self.dir, log=lambda *_: None)


# ------------------------------------------------------------------ one model
def measure_model(info: dict, link, k: SectionValues, options: StudyOptions, log: Callable) -> RunRecord:
    """Every upload of one model (repeats x modes) with the client under its quota; its run record (marked
    interrupted after Ctrl-C or a failure, with the uploads measured so far: each in the record and its CSV)."""
    from servebench import cgroups

    limits = cgroups.Limits.of(None, k.client_cpus)
    extra = {"model": info["model"], "title": info["title"], "timing_only": info["timing_only"],
             "label": info["label"], "partition": {key: info[key] for key in (
                 "pieces_study", "pieces", "cut_points", "operations", "parameters", "piece_bytes", "size_bytes",
                 "input_shape", "prepare_s")},
             "client_limits": (limits or cgroups.Limits()).recorded(), "link": link.recorded(), "uploads": []}
    uploads: list[dict] = []
    began = time.perf_counter()

    def measured(interrupted: bool) -> dict:
        # the link with the rate measured before the last upload; the wall time so far (the client's start,
        # every upload and its queries)
        return {**extra, "uploads": uploads, "summary": summarise(uploads), "link": link.recorded(),
                "wall_s": round(time.perf_counter() - began, 1)}

    session = RunSession(label=f"offloading-{info['model']}", root=options.out, summary=measured,
                         header={"kind": "offloading", "study": STUDY,
                                 "settings": {**k.recorded(), "quick": options.quick}}, record_errors=True)
    with session:
        up_csv = results.CsvLog(session.run_dir / "uploads.csv", UPLOAD_COLUMNS)
        session.on_close(up_csv.close)
        q_csv = results.CsvLog(session.run_dir / "queries.csv", QUERY_COLUMNS)
        session.on_close(q_csv.close)
        # Always in a group of its own (unlimited without a quota): its CPU time and peak memory are read back.
        client = processes.launch([sys.executable, "-m", "bench.studies.offloading.edge_client",
                                   "--server", f"{link.server_addr}:{k.port}", "--pieces", str(info["path"]),
                                   "--input", str(info["input"])],
                                  env=child_env(), netns=link.namespace("client"), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, limits=limits or cgroups.Limits(),
                                  cgroup=f"offload-client-{os.getpid()}", marker=info["path"].parent)
        session.on_close(lambda: stop_client(client, extra))  # before the record: it reads the client's group
        lines = Lines(client)
        started = time.perf_counter()
        lines.next(START_TIMEOUT_S * (1 + info["size_bytes"] / 1e8), f"{info['title']} client start")
        extra["client_ready_s"] = round(time.perf_counter() - started, 2)
        log(f"client ready in {extra['client_ready_s']} s (its own copy built under "
            f"{k.client_cpus or 'no'} CPU quota)")
        for repeat in range(1, k.repeats + 1):
            for mode in MODES:
                rate = link.measure_mbit(k.rate_measure_mb)
                name = f"{info['model']}-{mode}-{repeat}-{os.getpid()}"
                client.stdin.write(f"run {mode} {name} {k.queries_after}\n")
                client.stdin.flush()
                doc = json.loads(lines.next(UPLOAD_TIMEOUT_S, f"{info['title']} {mode} upload"))
                if "error" in doc:
                    raise runtimes.StackError(f"{info['title']} {mode} upload failed: {doc['error']}")
                row = summarise_upload(info, mode, repeat, rate, doc)
                with interrupts.shielded():  # an upload is in the record and both CSVs, or in none
                    uploads.append(row)
                    up_csv.row([row[c] for c in UPLOAD_COLUMNS])
                    for i, q in enumerate(doc["queries"]):
                        q_csv.row([info["model"], mode, repeat, i, q["start_s"], q["duration_s"], q["server_pieces"],
                                   q["remote_s"], q["server_s"], q["local_s"], q["after_upload"], row["upload_s"]])
                log(f"{info['title']} {mode} #{repeat}: upload {row['upload_s']:.2f} s (expected "
                    f"{row['expected_s']:.2f} s at {rate:.1f} Mbit/s), build {row['build_s_total']:.2f} s in "
                    f"{row['units']} units, {row['queries']} queries; overlapping the transfer "
                    f"{row['overlap_s']} s, transfer stood still {row['stall_s']} s, after the last byte "
                    f"{row['tail_s']} s")
    return session.record


def stop_client(client: processes.Process, extra: dict) -> None:
    """Ask the client to quit, read its group's CPU time and peak memory into ``extra``, then stop it."""
    if client.poll() is None:
        try:
            client.stdin.write("quit\n")
            client.stdin.flush()
            client.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if client.cgroup is not None:  # read before the stop removes the group
        extra["client_cpu_s"] = round(client.cgroup.cpu_seconds(), 2)
        extra["client_peak_memory_mb"] = round(client.cgroup.peak_memory_bytes() / 2**20, 1)
    client.stop()


def summarise_upload(info: dict, mode: str, repeat: int, rate: float, doc: dict) -> dict:
    server = doc["server"]
    return {"model": info["model"], "mode": mode, "repeat": repeat, "upload_s": round(doc["upload_s"], 4),
            "expected_s": round(doc["sent_bytes"] * 8 / (rate * 1e6), 4), "rate_mbit_measured": round(rate, 2),
            "sent_bytes": doc["sent_bytes"], "piece_bytes": doc["piece_bytes"],
            "build_s_total": server.get("build_s_total"), "units": server.get("units"),
            "queries": len(doc["queries"]), "drops": len(doc["drops"]), "units_pieces": server.get("units_pieces"),
            **timeline.of_upload(doc, rate)}


def _min_max_key(key: str, end: str) -> str:
    # upload_s -> upload_min_s; overlap_frac -> overlap_frac_min
    return key[:-2] + f"_{end}_s" if key.endswith("_s") else f"{key}_{end}"


def summarise(uploads: list[dict]) -> dict:
    """Per mode: the median of the repeats of the upload, build, overlap, stall and tail times with their min
    and max, the expected time and the link's rate; the proposed mode's saving (of the medians, and the range of
    each repeat's saving: a repeat's two uploads ran one after the other)."""
    out: dict = {}
    for mode in MODES:
        mine = [u for u in uploads if u["mode"] == mode]
        if not mine:
            continue
        ups = [u["upload_s"] for u in mine]
        out[mode] = {"spread_s": round(max(ups) - min(ups), 3),
                     "expected_s": round(statistics.median(u["expected_s"] for u in mine), 3),
                     "rate_mbit_measured": round(statistics.median(u["rate_mbit_measured"] for u in mine), 2),
                     "repeats": len(mine)}
        for key in SPREAD:
            values = [u[key] for u in mine if u.get(key) is not None]
            if values:
                out[mode].update({key: round(statistics.median(values), 4), _min_max_key(key, "min"): min(values),
                                  _min_max_key(key, "max"): max(values)})
    if "baseline" in out and "proposed" in out:
        saving = out["baseline"]["upload_s"] - out["proposed"]["upload_s"]
        out["saving_s"] = round(saving, 3)
        out["saving_pct"] = round(100 * saving / out["baseline"]["upload_s"], 1)
        by_repeat = {(u["mode"], u.get("repeat")): u["upload_s"] for u in uploads}
        paired = [by_repeat[("baseline", r)] - by_repeat[("proposed", r)]
                  for (mode, r) in by_repeat if mode == "baseline" and ("proposed", r) in by_repeat]
        if paired and None not in {u.get("repeat") for u in uploads}:
            out["saving_min_s"], out["saving_max_s"] = round(min(paired), 4), round(max(paired), 4)
        if "stall_s" in out["baseline"] and "stall_s" in out["proposed"]:
            # what the build thread can save: the time the baseline's transfer stood still for building
            out["stall_saved_s"] = round(out["baseline"]["stall_s"] - out["proposed"]["stall_s"], 4)
    return out


# ------------------------------------------------------------------ the study
def run(options: StudyOptions, settings: Settings, log: Callable = print) -> list[RunRecord]:
    """Every model's uploads over one shaped link; the records written (one per model)."""
    from servebench import netns

    why = unavailable()
    if why:
        raise runtimes.StackError(f"the offloading study needs root for network namespaces, tc and cgroups: {why}")
    settings = settings if settings is not None else Settings()
    k = knobs(options, settings)
    experiments(options, settings)  # names checked before anything starts
    folder = (options.run_dir or REPO_ROOT / "run") / "offloading"
    records: list[RunRecord] = []
    link = server = None
    try:
        # Named per process: a second run (a test beside a study) never takes over the other's namespaces.
        link = netns.ShapedLink(f"off{os.getpid()}", k.link_mbit, server_ns=True)
        log(f"link: {k.link_mbit:g} Mbit/s set, {link.server_addr} (server) <-> {link.client_addr} (client); "
            f"{link.recorded()['netem']}")
        server = EdgeServerStack(folder)
        server.up(settings, link, log)
        for name in k.models:
            log(f"\n== {name}")
            info = prepare(name, folder, log)
            try:
                records.append(measure_model(info, link, k, options, log))
            finally:
                info["path"].unlink(missing_ok=True)  # up to 250 MB each; made again in seconds
            if records[-1].interrupted:
                log("interrupted: what was measured is kept")
                break
    except KeyboardInterrupt:  # outside a model's run session: preparing, starting the server
        log("interrupted: what was measured is kept")
        if records:
            records[-1] = records[-1].model_copy(update={"interrupted": True})
        else:
            records.append(RunRecord(kind="offloading", run_id="interrupted", study=STUDY, interrupted=True))
    finally:
        with interrupts.shielded():
            if server is not None:
                server.down()
            if link is not None:
                link.close()
    return records
