"""The streaming study's repeats and round trips: the plan, the knobs, passes gathered into cells, and the
section and README blocks drawn from a record with repeated passes (no server started)."""
from __future__ import annotations

import pytest

from bench.options import StudyOptions
from bench.studies.streaming import experiments as streaming
from servebench.settings import Settings

pytestmark = pytest.mark.unit


def test_the_plan_repeats_the_headline_streams_and_measures_four_round_trips(tmp_path):
    plan = streaming.experiments(StudyOptions(study="streaming", out=tmp_path), Settings())
    rtt = [e for e in plan if e.group == "rtt"]
    assert {e.rtt_ms for e in rtt} == {0, 20, 50, 80}
    assert {(e.arch, e.transport) for e in rtt} == {("stream-tcp", "tcp"), ("fastapi", "http"),
                                                    ("fastapi", "http-new")}
    assert {e.rate for e in rtt} == {None, 30} and all(e.repeats == 3 and e.link_mbit == 20 for e in rtt)
    headline = [e for e in plan if e.transport in ("inprocess", "tcp") and e.group in ("inprocess", "loopback")
                and e.encoding == "raw" and e.rate in (None, 30)]
    assert len(headline) == 4 and all(e.repeats == 3 for e in headline)
    # the HTTP baselines: one pass per round, alternating which goes first
    firsts = [e.transport for e in plan if e.group == "loopback" and e.arch == "fastapi" and e.rate is None]
    assert firsts == ["http", "http-new", "http-new", "http", "http", "http-new", "http-new", "http", "http",
                      "http-new"]  # five rounds of the saturated passes
    assert {e.repeat for e in plan if e.transport == "http" and e.rate == 30} == {0, 1, 2}
    # one run each: the other transports and rates
    assert all(e.repeats == 1 for e in plan if e.transport in ("ws", "grpc") or e.rate in (5, 15, 60))
    # stacks: one per delayed link, apart from the same stack on loopback and on the rate-only link
    keys = {e.stack_key for e in plan if e.arch == "stream-tcp" and e.settings == {"stream_model": "cifar"}}
    assert len(keys) == 3


def test_the_plan_measures_stream_tcp_batched_beside_batching_off_on_a_stack_of_its_own(tmp_path):
    s = Settings(streaming_batch_size=4, streaming_batch_timeout_ms=1.5)
    plan = streaming.experiments(StudyOptions(study="streaming", out=tmp_path), s)
    on = [e for e in plan if e.group == "batched"]
    assert [(e.arch, e.transport, e.rate, e.repeats) for e in on] == [("stream-tcp", "tcp", None, 3),
                                                                     ("stream-tcp", "tcp", 30, 3)]
    assert all(e.settings["batch_max_size"] == 4 and e.settings["batch_timeout_ms"] == 1.5 for e in on)
    off = {e.stack_key for e in plan if e.group == "loopback" and e.arch == "stream-tcp"}
    assert on[0].stack_key == on[1].stack_key and on[0].stack_key not in off
    quick = streaming.experiments(StudyOptions(study="streaming", out=tmp_path, quick=True), Settings())
    assert [e.settings["batch_max_size"] for e in quick if e.group == "batched"] == [8, 8]
    assert streaming.mean_batch((10, 10), (14, 42)) == 8.0 and streaming.mean_batch(None, (1, 1)) is None
    with pytest.raises(ValueError):
        Settings(streaming_batch_size=1)


def test_the_knobs_shape_the_round_trips_and_refuse_bad_ones(tmp_path):
    s = Settings(streaming_repeats=5, streaming_rtts_ms="0 150", streaming_rtt_frames=60)
    plan = streaming.experiments(StudyOptions(study="streaming", out=tmp_path), s)
    assert {e.rtt_ms for e in plan if e.group == "rtt"} == {0, 150}
    assert all(e.repeats == 5 for e in plan if e.group == "rtt")
    assert {e.frames for e in plan if e.group == "rtt" and e.rate is None} == {60}
    quick = streaming.experiments(StudyOptions(study="streaming", out=tmp_path, quick=True), Settings())
    assert {e.rtt_ms for e in quick if e.group == "rtt"} == {0, 50}
    with pytest.raises(ValueError, match="0-1000 ms"):
        Settings(streaming_rtts_ms="20,-5")
    with pytest.raises(ValueError):
        Settings(streaming_repeats=0)


def _row(group, transport, rate, fps, p50, repeat=0, rtt=None, **extra):
    return {"title": f"{transport} {rate}", "group": group, "transport": transport, "model": "cifar",
            "encoding": "raw", "rate": rate, "fps": fps, "p50_ms": p50, "p99_ms": p50 * 2, "answered": 10,
            "frames": 10, "latency_ms": {"p50": p50, "p99": p50 * 2}, "server_ms": {"model": 2.0}, "repeat": repeat,
            "rtt_ms": rtt, "link_mbit": 20.0 if rtt is not None else None,
            "time_per_image_s": 1 / fps if rate is None else None, **extra}


def _spread(share):
    return {"fastapi": {"cpu_s": [2.8, 0.0, 0.0, 0.0], "busiest_share": share, "connections": [5, 0, 0, 0]},
            "frontend": {"cpu_s": [0.8, 0.3, 0.0], "busiest_share": 0.73, "connections": [11, 2, 0]}}


def _record(tmp_path):
    from bench import records

    rows = []
    for k, (ip, tcp) in enumerate(((400, 380), (410, 390), (390, 370))):
        rows += [_row("inprocess", "inprocess", None, ip, 2.4, k), _row("inprocess", "inprocess", 30, 30.0, 2.5, k),
                 _row("loopback", "tcp", None, tcp, 5.0, k), _row("loopback", "tcp", 30, 30.0, 3.1, k)]
        for transport, fps in (("http", 300 + 20 * k), ("http-new", 310 - 10 * k)):
            res = {svc: {"cpu_seconds_per_image": v} for svc, v in
                   (("fastapi", 0.003), ("frontend", 0.001), ("nginx", 0.0002), ("client", 0.0008))}
            rows += [_row("loopback", transport, None, fps, 20.0, k, cpu_by_process=_spread(0.99), resources=res),
                     _row("loopback", transport, 30, 30.0, 6.0 + (transport == "http-new") * 0.2, k,
                          cpu_by_process=_spread(1.0))]
        on = {"batch_max_size": 8, "batch_timeout_ms": 0.0}
        rows += [_row("batched", "tcp", None, 420 + 5 * k, 4.0, k, mean_batch=3.5 + k, **on),
                 _row("batched", "tcp", 30, 30.0, 2.9, k, mean_batch=1.0, **on)]
    link = {"rtt_ms_measured": {"median": 51.0, "min": 50.5, "max": 53.0, "n": 20}}
    for rtt, measured in ((0, 0.4), (50, 51.0)):
        doc = {"link": {"rtt_ms_measured": {**link["rtt_ms_measured"], "median": measured}}}
        for k in range(3):
            for transport, fps in (("tcp", 150 - rtt), ("http", 140 - 2 * rtt), ("http-new", 130 - 2.4 * rtt)):
                rows += [_row("rtt", transport, None, fps + k, 5.0 + rtt, k, rtt=rtt, **doc),
                         _row("rtt", transport, 30, 30.0, 5.0 + rtt * (2 if transport == "http-new" else 1), k,
                              rtt=rtt, **doc)]
    run_dir = tmp_path / "20260101T000000Z-streaming"
    run_dir.mkdir()
    records.write(run_dir, {"kind": "streaming", "run_id": run_dir.name, "study": "streaming", "rows": rows,
                            "settings": {"window": 8, "drop": "keep", "jpeg_quality": 90, "repeats": 3},
                            "stacks": [{"arch": "stream-tcp", "group": "loopback",
                                        "stack": {"info_source": "GET /v1/info of the stream server (no front end)"}}]})


def test_cells_gather_passes_into_medians_with_their_spread(tmp_path):
    from bench.report.sections import Context
    from bench.studies.streaming import passes, report

    _record(tmp_path)
    run = report.latest(Context.read(tmp_path))
    c = passes.cell(run, group="loopback", transport="tcp", rate=None)
    assert c.n == 3 and c.median("fps") == 380 and c.shown("fps") == "380 (370–390, n=3)"
    assert passes.cell(run, group="rtt", transport="http", rtt_ms=50, rate=None).n == 3
    single = passes.Cell([{"fps": 12.0}])
    assert single.shown("fps") == "12.0 (one run)" and passes.sample_note(single) == "one run"
    assert passes.value({"a": {"b": 2}}, "a.b") == 2 and passes.value({}, "a.b") is None


def test_the_section_and_readme_quote_medians_with_n_and_the_round_trips(tmp_path):
    from bench.report.sections import Context
    from bench.studies.streaming import report, round_trips

    _record(tmp_path)
    ctx = Context.read(tmp_path)
    section = report.section(ctx)
    texts = " ".join(getattr(b, "text", "") for b in section.blocks)
    assert "Goal met (judged on the medians)." in texts
    assert "Goal with batching met (judged on the medians" in texts
    assert "Keep-alive against a new connection" in texts and "The ranges overlap" in texts
    assert "did 99% of its work" in texts and "on one process" in texts and "stream server" in texts
    assert "5.00 (5.00–5.00) ms of CPU with keep-alive" in texts and "1.60 and 1.50 cores" in texts
    assert "not in the work done" in texts
    cells = [[c.text for c in row] for b in section.blocks if hasattr(b, "rows") for row in b.rows]
    assert ["50", "51.0 (50.5–53.0, n=20)", "stream-tcp", "101 (100–102, n=3)", "55.0 (55.0–55.0, n=3)",
            "110 (110–110, n=3)"] in cells
    for fig in section.figures:
        assert fig.draw(tmp_path / fig.file).is_file()
    assert "streaming-rtt" in [f.name for f in section.figures]
    frags = report.readme(ctx)
    assert set(frags) == set(report.BLOCKS)
    assert "380 (370–390)" in frags["streaming-table"] and "| passes | 3 | 3 |" in frags["streaming-table"]
    assert "median of 3 passes" in frags["streaming-goal"]
    assert ("**Goal with batching** (stream-tcp, batch 8, timeout 0 ms (mean 4.5), median of 3 passes of each): it "
            "sustains 425 frames/s, 1.062x the in-process batch-1 rate: **met**" in frags["streaming-goal"])
    assert "At 30 frames/s its p99 is +0.8 ms against the in-process p99: **met**" in frags["streaming-goal"]
    acc = round_trips.accuracy(report.latest(ctx))  # 51.0 measured at 50; the 0 ms row apart
    assert "lay +2.0% from the settings" in acc and "at 0 ms the element itself gave 0.40 ms" in acc
    assert "| 50 | 51.0 (50.5–53.0, n=20) | HTTP, new connection per frame |" in frags["streaming-rtt"]
    assert "frames/s" in frags["streaming-keepalive"]
    answer = report.answer(ctx)
    assert "streaming leads: over a link with 50 ms round trip" in answer.text
    assert "medians of 3 passes" in answer.text
    assert "Batching its window (batch 8, timeout 0 ms (mean 4.5)), stream-tcp serves 425 frames/s (1.062x" in \
        answer.text


def test_an_old_record_without_repeats_says_one_run(tmp_path):
    from bench import records
    from bench.report.sections import Context
    from bench.studies.streaming import report

    rows = [_row("inprocess", "inprocess", None, 400, 2.4), _row("loopback", "tcp", None, 380, 5.0)]
    for r in rows:
        r.pop("repeat")
    run_dir = tmp_path / "20250101T000000Z-streaming"
    run_dir.mkdir()
    records.write(run_dir, {"kind": "streaming", "run_id": run_dir.name, "study": "streaming", "rows": rows,
                            "settings": {"window": 8}})
    ctx = Context.read(tmp_path)
    frags = report.readme(ctx)
    assert "380 (one run)" in frags["streaming-table"]
    assert "not measured" in frags["streaming-rtt"]
    texts = " ".join(getattr(b, "text", "") for b in report.section(ctx).blocks)
    assert "Every stream ran once (one run)." in texts
    assert "Goal with batching not measured" in texts
    assert "Goal with batching**: not measured" in frags["streaming-goal"]
