"""Each study run writes its record through a run session (bench.session): the header says ``running`` from
the start, Ctrl-C leaves a record marked interrupted, and the study's own CSV holds exactly the rows counted.
Test doubles stand in for stacks, links, clients and functions: nothing starts here."""
from __future__ import annotations

import csv
import importlib
import json
import queue
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench import records
from bench.options import StudyOptions
from servebench.settings import Settings

pytestmark = pytest.mark.unit

ensemble = importlib.import_module("bench.studies.ensemble.experiments")
offloading = importlib.import_module("bench.studies.offloading.experiments")
streaming = importlib.import_module("bench.studies.streaming.experiments")
serverless = importlib.import_module("bench.studies.serverless.experiments")


def on_disk(options: StudyOptions, kind: str = "") -> dict:
    """The one run folder's summary.json as it stands now."""
    folder, = [p for p in options.out.iterdir() if p.is_dir() and p.name.endswith(kind)]
    return json.loads((folder / records.FILE).read_text())


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def quiet(*a) -> None:
    pass


# ------------------------------------------------------------------ ensemble
def test_ensemble_records_say_running_until_measured(tmp_path):
    options = StudyOptions(study="ensemble", out=tmp_path)
    seen = {}

    def measure() -> dict:
        seen.update(on_disk(options, "ensemble-functions"))
        return {"label": "serial", "functions": {"ensemble-cnn": {"cold_start_s": 1.5}}}

    record = ensemble.measured(options, "ensemble-functions", measure, arch="ensemble-serial")
    assert seen["running"] is True and seen["interrupted"] is True and seen["kind"] == "ensemble-functions"
    doc = on_disk(options, "ensemble-functions")
    assert "running" not in doc and doc["interrupted"] is False and record == records.read(options.out / record.run_id)
    assert (doc["study"], doc["arch"], doc["runtime"], doc["label"]) == ("ensemble", "ensemble-serial", "native", "serial")
    assert doc["functions"] == {"ensemble-cnn": {"cold_start_s": 1.5}}


def test_ensemble_stops_after_an_interrupted_in_process_run(tmp_path, monkeypatch):
    from bench import reference, target

    options = StudyOptions(study="ensemble", out=tmp_path)

    def interrupted(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(reference, "_isolated", interrupted)
    monkeypatch.setattr(target, "running", lambda *a: None)
    monkeypatch.setattr(ensemble, "configs", lambda o: pytest.fail("no stack after an interrupted run"))
    done = ensemble.run(options, Settings(), log=quiet)
    assert len(done) == 1 and done[0].interrupted and done[0].kind == "ensemble-inprocess"
    doc = on_disk(options, "ensemble-inprocess")
    assert doc["interrupted"] is True and "running" not in doc and "accuracy" not in doc


# ------------------------------------------------------------------ offloading
class FakeClient:
    """The edge client's stdin/stdout protocol: 'ready', then one JSON answer per 'run' line."""

    cgroup = None

    def __init__(self, queries: int):
        self.queries = queries
        self.lines: queue.Queue = queue.Queue()
        self.lines.put("ready\n")
        self.stdin = self
        self.stdout = iter(self.lines.get, None)
        self.stopped = False

    def write(self, line: str) -> None:
        if line.startswith("run"):
            q = {"start_s": 0.1, "duration_s": 0.01, "server_pieces": 2, "remote_s": 0.005, "server_s": 0.004,
                 "local_s": 0.001, "after_upload": True}
            self.lines.put(json.dumps({"upload_s": 1.0, "sent_bytes": 1000, "piece_bytes": [500, 500], "drops": [],
                                       "server": {"build_s_total": 0.5, "units": 2, "units_pieces": [1, 1]},
                                       "queries": [q] * self.queries}) + "\n")

    def flush(self) -> None:
        pass

    def poll(self):
        return 0 if self.stopped else None

    def wait(self, timeout=None) -> int:
        return 0

    def stop(self) -> None:
        self.stopped = True
        self.lines.put(None)


class FakeLink:
    server_addr = "169.254.7.2"

    def __init__(self, on_measure):
        self.on_measure = on_measure
        self.measured = 0

    def recorded(self) -> dict:
        return {"rate_mbit": 80.0, "netem": "not in this kernel"}

    def measure_mbit(self, mb: float) -> float:
        self.measured += 1
        self.on_measure(self.measured)
        return 80.0

    def namespace(self, end: str) -> str:
        return f"ns-{end}"


def offload_info(tmp_path) -> dict:
    return {"model": "cifar10_cnn", "title": "Table 1 CNN", "timing_only": False, "label": "trained weights",
            "pieces_study": 4, "pieces": 4, "cut_points": 5, "operations": 9, "parameters": 100, "piece_bytes": [1],
            "size_bytes": 1000, "input_shape": [32, 32, 3], "prepare_s": 0.1,
            "path": tmp_path / "run" / "cifar10_cnn.pieces", "input": tmp_path / "run" / "cifar10_cnn.input.npy"}


def test_offloading_record_counts_the_uploads_written_and_says_interrupted_after_ctrl_c(tmp_path, monkeypatch):
    from servebench import processes

    options = StudyOptions(study="offloading", out=tmp_path / "results")
    k = offloading.knobs(options, Settings(offload_repeats=2, offload_queries_after=3))
    client = FakeClient(queries=3)
    monkeypatch.setattr(processes, "launch", lambda *a, **kw: client)
    seen = {}

    def on_measure(n: int) -> None:
        if n == 1:
            seen.update(on_disk(options, "offloading-cifar10_cnn"))
        if n == 4:  # before the second repeat's proposed upload
            raise KeyboardInterrupt

    record = offloading.measure_model(offload_info(tmp_path), FakeLink(on_measure), k, options, quiet)
    assert seen["running"] is True and seen["interrupted"] is True and seen["kind"] == "offloading"
    assert record.interrupted and client.stopped
    doc = on_disk(options, "offloading-cifar10_cnn")
    assert doc["interrupted"] is True and "running" not in doc and doc["model"] == "cifar10_cnn"
    folder = options.out / record.run_id
    uploads = csv_rows(folder / "uploads.csv")
    assert len(doc["uploads"]) == len(uploads) == 3
    assert [u["mode"] for u in uploads] == [u["mode"] for u in doc["uploads"]] == ["baseline", "proposed", "baseline"]
    assert len(csv_rows(folder / "queries.csv")) == 3 * 3
    assert doc["summary"]["baseline"]["repeats"] == 2 and doc["settings"]["repeats"] == 2


def test_offloading_stops_after_an_interrupted_model(tmp_path, monkeypatch):
    from servebench import netns

    options = StudyOptions(study="offloading", out=tmp_path / "results", run_dir=tmp_path / "run")
    measured = []

    class Link:
        server_addr, client_addr = "169.254.7.2", "169.254.7.1"

        def __init__(self, *a, **kw):
            self.closed = False

        def recorded(self):
            return {"netem": "not in this kernel"}

        def namespace(self, end):
            return end

        def close(self):
            self.closed = True

    def measure_model(info, link, k, options, log):
        measured.append(info["model"])
        return records.RunRecord(kind="offloading", run_id=info["model"], interrupted=True)

    server = SimpleNamespace(up=lambda *a: None, down=lambda: None)  # the edge server's stack
    monkeypatch.setattr(offloading, "unavailable", lambda: None)
    monkeypatch.setattr(offloading, "experiments", lambda o, s: [])  # the model names' check loads keras
    monkeypatch.setattr(netns, "ShapedLink", Link)
    monkeypatch.setattr(offloading, "EdgeServerStack", lambda folder: server)
    monkeypatch.setattr(offloading, "prepare", lambda name, folder, log: {"model": name, "path": folder / name})
    monkeypatch.setattr(offloading, "measure_model", measure_model)
    done = offloading.run(options, Settings(offload_models=("mobilenet", "cifar10_cnn")), log=quiet)
    assert measured == ["mobilenet"] and [r.interrupted for r in done] == [True]


# ------------------------------------------------------------------ streaming
def test_streaming_record_says_running_then_interrupted_with_the_timeline_written(tmp_path, monkeypatch):
    from bench.studies.streaming import client as sc
    from bench import target
    from servebench import runtime as runtimes

    options = StudyOptions(study="streaming", out=tmp_path / "results", run_dir=tmp_path / "run")
    where = {"out": options.out, "data_dir": None, "progress": False, "study": "streaming"}
    plan = [streaming._exp("stream-tcp", "tcp", "loopback", rate=30, frames=3, where=where) for _ in range(3)]
    monkeypatch.setattr(streaming, "experiments", lambda o, s=None: plan)
    monkeypatch.setattr(target, "running", lambda *a: None)
    monkeypatch.setattr(target, "runnable_arches", lambda runtime, arches: (arches, {}))
    monkeypatch.setattr(target, "stack_record", lambda st: {})
    monkeypatch.setattr(sc, "load_camera", lambda *a: SimpleNamespace(images=[0] * 1000))
    stack = SimpleNamespace(downs=0)
    monkeypatch.setattr(runtimes, "get", lambda name: SimpleNamespace(
        up=lambda *a, **kw: stack, down=lambda **kw: setattr(stack, "downs", stack.downs + 1)))
    seen = {}

    def measure(exp, camera, st, serving, settings, sample, *, timeline, **kw):
        if not seen:
            seen.update(on_disk(options, "streaming"))
        elif len(timeline) == 4:
            raise KeyboardInterrupt
        timeline += [[0, 1, 2]] * 2
        return [{"title": exp.title, "answered": 3, "frames": 3, "p50_ms": 1.0, "p99_ms": 2.0, "fps": 30.0,
                 "dropped": 0, "errors": 0, "bytes_up_per_frame": 3072}]  # one row per pass

    monkeypatch.setattr(streaming, "_measure", measure)
    record, = streaming.run(options, Settings(), log=quiet)
    assert seen["running"] is True and seen["interrupted"] is True and seen["kind"] == "streaming"
    assert record.interrupted and stack.downs == 1
    doc = on_disk(options, "streaming")
    assert doc["interrupted"] is True and "running" not in doc and len(doc["rows"]) == 2
    assert doc["settings"]["rates"] == list(streaming.RATES) and doc["study"] == "streaming"
    timeline = (options.out / record.run_id / "timeline.csv").read_text().splitlines()
    assert timeline[0].split(",")[0] == "run" and len(timeline) == 1 + 4


# ------------------------------------------------------------------ serverless
class FakeOrchestrator:
    """Each run: one invocation per stage of each record; the third run is interrupted."""

    runs = 0

    def __init__(self, invoker, store, parallelism=1, retries=0, log=None, **kw):
        pass

    def run(self, pipeline, recs):
        from models.splits import STAGES

        type(self).runs += 1
        if type(self).runs == 3:
            raise KeyboardInterrupt
        rows = [{"record": r.name, "stage": s, "duration_s": 0.5, "billed_ms": 500, "peak_memory_mb": 100.0,
                 "cold": True, "init_s": 0.1, "bytes_read": 1, "bytes_written": 1, "cost_usd": 1e-6,
                 "memory_mb": 1769, "ok": True, "kind": "ok"} for r in recs for s in STAGES]
        return serverless.orch.Outcome(invocations=rows)


class FakeInvoker:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_serverless_record_says_running_then_interrupted_with_every_invocation_written(tmp_path, monkeypatch):
    options = StudyOptions(study="serverless", out=tmp_path / "results", run_dir=tmp_path / "run", n=4)
    settings = Settings(serverless_store_endpoint="http://127.0.0.1:1", serverless_record_sizes=(2, 3),
                        serverless_table_sizes=(2,), serverless_fig5_record_size=2, serverless_fig5_records=2)
    seen = {}

    class Store:
        def __init__(self, config):
            self.config = config

        def ensure_bucket(self):
            seen.update(on_disk(options, "serverless"))

    images = np.zeros((8, 32, 32, 3), np.uint8)
    monkeypatch.setattr(serverless.objectstore, "Store", Store)
    monkeypatch.setattr(serverless, "build_models", lambda: {
        "alexnet": SimpleNamespace(inputs=[SimpleNamespace(shape=(None, 227))]), "cifar10_cnn": None})
    monkeypatch.setattr(serverless.stages, "split", lambda model, split: [])
    monkeypatch.setattr(serverless.stages, "run", lambda model, x: np.zeros((len(x), 10)))
    monkeypatch.setattr(serverless.orch, "deploy", lambda store, name, parts: {})
    monkeypatch.setattr(serverless.data, "load_test", lambda data_dir: SimpleNamespace(images=images,
                                                                                        labels=np.zeros(8, int)))
    monkeypatch.setattr(serverless.records, "resize", lambda imgs, side: imgs)
    monkeypatch.setattr(serverless.orch, "upload_records", lambda store, prefix, imgs, labels, size: [
        SimpleNamespace(name=f"{prefix}/{i}", images=size) for i in range(0, len(imgs), size)])
    monkeypatch.setattr(serverless.invokers, "make", lambda *a, **kw: FakeInvoker())
    monkeypatch.setattr(serverless.orch, "Orchestrator", FakeOrchestrator)
    monkeypatch.setattr(FakeOrchestrator, "runs", 0)
    record, = serverless.run(options, settings, log=quiet)
    assert seen["running"] is True and seen["interrupted"] is True and seen["kind"] == "serverless"
    assert record.interrupted and FakeOrchestrator.runs == 3
    doc = on_disk(options, "serverless")
    assert doc["interrupted"] is True and "running" not in doc and "wall_s" in doc and "fig3" not in doc
    assert doc["settings"]["record_sizes"] == [2, 3] and doc["store"]["endpoint_url"] == "http://127.0.0.1:1"
    rows = csv_rows(options.out / record.run_id / "invocations.csv")
    assert len(rows) == 4 + 4  # check: one record through four stages; fig3: the cold pass of the first size
    assert [r["experiment"] for r in rows] == ["check"] * 4 + ["fig3"] * 4


def test_a_stream_is_sampled_by_the_session_s_sampler_and_no_resources_csv_is_written(tmp_path, monkeypatch):
    from bench.studies.streaming import client as sc
    from bench.session import RunSession

    options = StudyOptions(study="streaming", out=tmp_path)
    where = {"out": tmp_path, "data_dir": None, "progress": False, "study": "streaming"}
    exp = streaming._exp("stream-tcp", "tcp", "loopback", rate=5, frames=3, where=where)
    monkeypatch.setattr(streaming.sc, "transport_for", lambda *a: None)
    monkeypatch.setattr(streaming.sc, "stream", lambda transport, n, rate, window: ([], 0.0, 1.0))
    monkeypatch.setattr(streaming.sc, "summarize", lambda *a: {
        "latency_ms": {"p50": 1.0, "p99": 2.0}, "answered": 3, "fps": 5.0})
    monkeypatch.setattr(streaming.sc, "frame_rows", lambda rs, start: [[0, 1]])
    monkeypatch.setattr(streaming, "model_counters", lambda st, transport: None)  # the stand-in stack has no /v1/info
    stack = SimpleNamespace(processes=lambda: {})
    with RunSession(label="streaming", root=options.out, header={"kind": "streaming"}) as session:
        rows = streaming._measure(exp, sc.Camera, stack, Settings(), Settings(), session.sample)
        assert len(rows) == exp.repeats and len(session.samplers) == exp.repeats  # a sampler per pass
        assert not any(s._thread.is_alive() for s in session.samplers)  # each stopped with its stream
    for row, sampler in zip(rows, session.samplers):
        assert row["resources"] == sampler.summary(3) and "client" in row["resources"]
    assert not (session.run_dir / "resources.csv").exists()
