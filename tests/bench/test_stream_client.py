"""The streaming client's summary, the streaming study's plan and report section (no server started)."""
from __future__ import annotations

import numpy as np
import pytest

from bench.studies.streaming import client as sc
from bench.options import BenchOptions, StudyOptions
from bench.studies.streaming import experiments as streaming
from servebench import registry

pytestmark = pytest.mark.unit


def result(i, capture, latency_ms, kind="answer", cls=1, label=1):
    r = sc.FrameResult(i, capture, sent=capture, label=label, bytes_up=3104, bytes_down=90)
    if kind != "lost":
        r.end, r.kind, r.cls = capture + latency_ms / 1000.0, kind, cls
    return r


def test_summary_counts_misses_drops_and_jitter_from_capture_time():
    rs = [result(0, 0.001, 10), result(1, 0.1, 30), result(2, 0.2, 150), result(3, 0.3, 5, kind="dropped"),
          result(4, 0.4, 0, kind="lost"), result(5, 0.5, 20, cls=2)]
    s = sc.summarize(rs, 0.0, 1.0, rate=10.0, deadline_ms=100.0)
    assert (s["answered"], s["dropped"], s["lost"], s["errors"]) == (4, 1, 1, 0)
    assert s["missed_interval"] == 1 and s["missed_deadline"] == 1  # 150 ms > 100 ms interval and deadline
    assert s["jitter_ms"] == pytest.approx(np.mean([20, 120, 130]))
    assert s["accuracy"] == 0.75 and s["bytes_up_per_frame"] == 3104
    assert s["latency_ms"]["p50"] == pytest.approx(25.0)


def test_as_fast_as_possible_has_no_interval_misses():
    s = sc.summarize([result(0, 1.0, 10), result(1, 1.01, 10)], 1.0, 1.05, rate=None, deadline_ms=5.0)
    assert s["missed_interval"] is None and s["missed_deadline"] == 2 and s["fps"] == pytest.approx(2 / 0.02)


def test_streaming_architectures_are_registered_and_dispatched_by_the_harness():
    for arch, transport in sc.ARCH_TRANSPORT.items():
        a = registry.get(arch)
        assert a.study == "streaming" and "stream" in a.services and "nginx" in a.services
        assert a.driver == "bench.studies.streaming.client:bench_arch"  # bench.run finds it by name
    from bench import run

    assert run._driver("stream-tcp") is sc.bench_arch and run._driver("embedded") is None
    assert registry.study("streaming").load() is streaming
    assert BenchOptions(arch="stream-tcp", rate=30, n=10).deadline_ms == 100.0


def test_the_study_plan_is_pure_and_covers_the_issue(tmp_path):
    plan = streaming.experiments(StudyOptions(study="streaming", out=tmp_path))
    transports = {e.transport for e in plan}
    assert transports == {"inprocess", "tcp", "ws", "grpc", "http", "http-new"}
    assert {e.rate for e in plan if e.transport == "tcp" and e.group == "loopback"} >= {None, 5, 15, 30, 60}
    assert {e.settings.get("stream_model_cpus") for e in plan if e.group == "quota"} == {0.5, 1.0, 2.0}
    assert any(e.link_mbit == 20 and e.encoding == "jpeg" and e.model == "yolo-tiny" for e in plan)
    assert not list(tmp_path.iterdir())  # planning wrote nothing
    quick = streaming.experiments(StudyOptions(study="streaming", out=tmp_path, quick=True))
    assert len(quick) < len(plan)


def test_report_section_from_a_record(tmp_path):
    from bench import records
    from bench.report.sections import Context
    from bench.studies.streaming import report

    rows = [
        {"title": "ip", "group": "inprocess", "transport": "inprocess", "model": "cifar", "encoding": "raw",
         "rate": None, "fps": 400.0, "p50_ms": 2.4, "p99_ms": 3.0, "answered": 10, "frames": 10,
         "latency_ms": {"p50": 2.4, "p99": 3.0}, "time_per_image_s": 0.0025, "server_ms": {"model": 2.3}},
        {"title": "ip30", "group": "inprocess", "transport": "inprocess", "model": "cifar", "encoding": "raw",
         "rate": 30, "fps": 30.0, "p50_ms": 2.5, "p99_ms": 3.2, "answered": 10, "frames": 10,
         "latency_ms": {"p50": 2.5, "p99": 3.2}, "server_ms": {"model": 2.3}},
        {"title": "tcp", "group": "loopback", "transport": "tcp", "model": "cifar", "encoding": "raw",
         "rate": None, "fps": 380.0, "p50_ms": 5, "p99_ms": 9, "answered": 10, "frames": 10,
         "latency_ms": {"p50": 5, "p99": 9}, "time_per_image_s": 0.0026, "server_ms": {"model": 2.3}},
        {"title": "tcp30", "group": "loopback", "transport": "tcp", "model": "cifar", "encoding": "raw",
         "rate": 30, "fps": 30.0, "p50_ms": 3.1, "p99_ms": 4.0, "answered": 10, "frames": 10,
         "latency_ms": {"p50": 3.1, "p99": 4.0}, "server_ms": {"model": 2.3}},
        {"title": "yolo", "group": "quota", "transport": "tcp", "model": "yolo-tiny", "timing_only": True,
         "encoding": "jpeg", "rate": None, "cpus": 0.5, "fps": 2.0, "p50_ms": 500, "p99_ms": 600, "answered": 4,
         "frames": 4, "latency_ms": {"p50": 500}, "time_per_image_s": 0.5, "server_ms": {"model": 480}},
    ]
    run_dir = tmp_path / "20260101T000000Z-streaming"
    run_dir.mkdir()
    records.write(run_dir, {"kind": "streaming", "run_id": run_dir.name, "study": "streaming", "rows": rows,
                            "settings": {"window": 8, "drop": "keep", "jpeg_quality": 90}})
    section = report.section(Context.read(tmp_path))
    texts = " ".join(getattr(b, "text", "") for b in section.blocks)
    assert "Goal met (judged on the medians)." in texts  # throughput ratio 0.95, p99 +1.0 ms
    goal_rows, verdict = report.goal(report.latest(Context.read(tmp_path)))
    assert verdict == "met" and [r[-1] for r in goal_rows] == ["met", "met"]
    cells = [[c.text for c in row] for b in section.blocks if hasattr(b, "rows") for row in b.rows]
    assert any("t2.micro (published)" in r[0] for r in cells)
    assert any("timing only" in " ".join(r) for r in cells)
    for fig in section.figures:
        assert fig.draw(tmp_path / fig.file).is_file()


class EchoTransport(sc.Transport):
    """Answers every frame with its label at once: the stream and its shape without a server."""

    def __init__(self, camera):
        super().__init__(camera)
        import queue

        self.replies = queue.SimpleQueue()

    def send(self, i, capture_ns):
        from services.stream import frames

        label = int(self.camera.labels[i % len(self.camera.labels)])
        self.replies.put(frames.Reply(frames.ANSWER, i, capture_ns, label))
        return 100

    def recv(self):
        reply = self.replies.get()
        return None if reply is None else (reply, 20)

    def done_sending(self):
        self.replies.put(None)


def test_a_frame_stream_shape_runs_warm_up_then_its_passes_through_one_runner():
    from bench import shapes

    camera = sc.Camera(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 3]))
    made, warmed = [], []

    def make():
        made.append(EchoTransport(camera))
        return made[-1]

    def on_pass(level, rs, start, end):
        return sc.summarize(rs, start, end, level.rate, 100.0)

    outcomes = shapes.drive(shapes.FrameStream(10, window=4, warmup=3, repeats=2),
                            sc.run_frames(make, on_warmup=warmed.append, on_pass=on_pass))
    assert len(made) == 3 and [lv.count for lv in warmed] == [3]
    assert outcomes[0] == {"warmup": 3}
    for s in outcomes[1:]:
        assert (s["frames"], s["answered"], s["accuracy"], s["bytes_up_per_frame"]) == (10, 10, 1.0, 100)
    raw = shapes.drive(shapes.FrameStream(5, window=2), sc.run_frames(make))
    assert [r.kind for r in raw[0]["results"]] == ["answer"] * 5
