"""The offloading study's plan, its summary arithmetic, the upload timeline (how much of the building
overlaps the transfer, issue 20 audit item 8) and its report section (no link, no server); and the committed
runs' overlap columns, so that a run without them, or with inconsistent ones, cannot come back."""
from __future__ import annotations

import csv
import importlib

import pytest

from bench import options as opts, study
from bench.records import RunRecord, write
from bench.report.sections import Context
from bench.studies.offloading import timeline
from servebench import registry
from servebench.settings import REPO_ROOT

pytestmark = pytest.mark.unit

STUDY = "offloading"
plan_mod = importlib.import_module("bench.studies.offloading.experiments")
report_mod = importlib.import_module("bench.studies.offloading.report")


def test_the_registry_finds_the_study_package():
    plugin = study.load(STUDY)
    assert isinstance(plugin, study.StudyPlugin)
    assert plugin.__name__ == registry.study(STUDY).module + ".experiments"


def test_default_plan_is_the_study_s_four_models_five_repeats_modes_alternating(monkeypatch):
    for var in ("SB_OFFLOAD_MODELS", "SB_OFFLOAD_REPEATS", "SB_OFFLOAD_CLIENT_CPUS"):
        monkeypatch.delenv(var, raising=False)
    plan = study.load(STUDY).experiments(opts.StudyOptions(study=STUDY))
    assert list(dict.fromkeys(u.model for u in plan)) == ["resnet152", "resnet50", "mobilenet", "alexnet"]
    assert [(u.mode, u.repeat) for u in plan[:4]] == [("baseline", 1), ("proposed", 1), ("baseline", 2),
                                                      ("proposed", 2)]
    assert len(plan) == 4 * 5 * 2
    recorded = plan_mod.knobs(opts.StudyOptions(study=STUDY)).recorded()
    assert recorded["client_cpus"] == 0.2 and recorded["repeats"] == 5  # nearer the study's Odroid, recorded


def test_quick_plan_and_knobs_from_the_environment(monkeypatch):
    monkeypatch.delenv("SB_OFFLOAD_MODELS", raising=False)
    quick = study.load(STUDY).experiments(opts.StudyOptions(study=STUDY, quick=True))
    assert [u.model for u in quick] == ["mobilenet", "mobilenet", "cifar10_cnn", "cifar10_cnn"]
    monkeypatch.setenv("SB_OFFLOAD_MODELS", "cifar10_cnn")
    monkeypatch.setenv("SB_OFFLOAD_REPEATS", "3")
    plan = study.load(STUDY).experiments(opts.StudyOptions(study=STUDY, quick=True))
    assert {u.model for u in plan} == {"cifar10_cnn"} and len(plan) == 6  # what the environment sets wins
    monkeypatch.setenv("SB_OFFLOAD_MODELS", "vgg")
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        study.load(STUDY).experiments(opts.StudyOptions(study=STUDY))


def test_summary_medians_spread_and_saving():
    ups = [{"mode": m, "repeat": r, "upload_s": u, "expected_s": 1.0, "build_s_total": b, "rate_mbit_measured": 78.0,
            "overlap_s": o, "overlap_frac": o / b, "stall_s": b - o, "tail_s": 0.0}
           for m, r, u, b, o in (("baseline", 1, 3.0, 1.5, 1.0), ("baseline", 2, 3.4, 1.6, 1.2),
                                 ("proposed", 1, 2.0, 0.9, 0.9), ("proposed", 2, 2.2, 1.0, 1.0))]
    s = plan_mod.summarise(ups)
    assert s["baseline"]["upload_s"] == pytest.approx(3.2) and s["baseline"]["spread_s"] == pytest.approx(0.4)
    assert s["baseline"]["upload_min_s"] == 3.0 and s["baseline"]["upload_max_s"] == 3.4
    assert s["saving_s"] == pytest.approx(1.1) and s["saving_pct"] == pytest.approx(34.4)
    assert (s["saving_min_s"], s["saving_max_s"]) == (pytest.approx(1.0), pytest.approx(1.2))  # per repeat
    assert s["baseline"]["overlap_s"] == pytest.approx(1.1) and s["baseline"]["overlap_min_s"] == 1.0
    assert s["baseline"]["overlap_frac_min"] == pytest.approx(1.0 / 1.5)
    assert s["stall_saved_s"] == pytest.approx(0.45)  # stood still: baseline 0.45 (median), proposed 0


# ------------------------------------------------------------------ the timeline: overlap, stall, tail
def upload_doc(builds, transfer_end, clock_start=100.0, origin=100.01, first_send=0.02):
    """A client's answer to ``run``: builds (start, end, bytes arrived meanwhile) on the server's clock."""
    events = [{"event": "built", "start_s": a, "end_s": b, "bytes_in": n} for a, b, n in builds]
    events.append({"event": "transfer_end", "at_s": transfer_end})
    return {"clock_start": clock_start, "first_send_s": first_send, "sent_end_s": transfer_end - 0.1,
            "server": {"clock_origin": origin, "events": events}}


def test_timeline_splits_each_build_into_overlap_stall_and_tail():
    rate = 80.0  # Mbit/s: 1 MB is 0.1 s
    # Build 1 (0.5 s): 1 MB arrives (0.1 s of transfer), then the buffers are full: 0.4 s stood still.
    # Build 2 (0.3 s): 3 MB arrive, the transfer never stops. Build 3 (0.2 s) starts 0.1 s before the end.
    doc = upload_doc([(0.1, 0.6, 1_000_000), (0.7, 1.0, 3_000_000), (1.9, 2.1, 0)], transfer_end=2.0)
    row = timeline.of_upload(doc, rate)
    shift = 0.01  # the server's time 0 is 10 ms after the client's
    assert row["transfer_end_s"] == pytest.approx(2.0 + shift) and row["transfer_start_s"] == 0.02
    assert row["build_start_s"] == pytest.approx(0.1 + shift) and row["build_end_s"] == pytest.approx(2.1 + shift)
    assert row["build_s"] == pytest.approx(1.0)
    assert row["overlap_s"] == pytest.approx(0.1 + 0.3)
    assert row["stall_s"] == pytest.approx(0.4 + 0.1)  # build 3 stood still until the last byte
    assert row["tail_s"] == pytest.approx(0.1)
    assert row["overlap_frac"] == pytest.approx(0.4) and row["build_bytes_in"] == 4_000_000
    assert timeline.consistent(row) == []


def test_timeline_without_the_server_s_part_is_empty_and_inconsistent_rows_are_named():
    assert set(timeline.of_upload({"server": {"events": []}}, 80.0).values()) == {None}
    assert timeline.consistent(dict.fromkeys(timeline.COLUMNS)) == ["no overlap recorded"]
    row = timeline.of_upload(upload_doc([(0.1, 0.6, 1_000_000)], transfer_end=2.0), 80.0)
    assert timeline.consistent(row) == []
    bad = {**row, "overlap_s": row["build_s"] + 1, "overlap_frac": 3.0}
    assert any("outside [0, min(build" in w for w in timeline.consistent(bad))
    assert any("fraction" in w for w in timeline.consistent(bad))
    assert any("is not the build's" in w for w in timeline.consistent({**row, "tail_s": row["tail_s"] + 1}))


def test_the_server_s_overlap_counts_the_bytes_that_arrived_during_a_build():
    from bench.studies.offloading.edge_server import overlap_of

    # 1,000 bytes more, the last 0.3 s before the build's end: bytes kept arriving for 0.2 of its 0.5 s
    assert overlap_of(10.0, 10.5, (5_000, 0.0), (6_000, 0.3)) == {"bytes_in": 1000, "arriving_s": 0.2}
    assert overlap_of(10.0, 10.5, (5_000, 0.0), (5_000, 0.8)) == {"bytes_in": 0, "arriving_s": 0.0}
    assert overlap_of(10.0, 10.5, None, (5_000, 0.0)) == {}



def fake_run(root, model="mobilenet", build=1.0, share=0.3, title="MobileNet", times=(3.1, 2.0)):
    run_dir = root / f"20260101T000000Z-offloading-{model}"
    run_dir.mkdir(parents=True)
    uploads = [{"mode": m, "repeat": 1, "upload_s": u, "expected_s": 1.75, "build_s_total": build, "build_s": build,
                "rate_mbit_measured": 78.0, "overlap_s": o * build, "overlap_frac": o,
                "stall_s": build * (0.9 - o), "tail_s": build * 0.1}
               for m, u, o in (("baseline", times[0], share), ("proposed", times[1], 0.9))]
    write(run_dir, RunRecord(kind="offloading", run_id=run_dir.name, study=STUDY, model=model, title=title,
                             timing_only=True, label=plan_mod.TIMING_ONLY, uploads=uploads,
                             summary=plan_mod.summarise(uploads),
                             partition={"pieces": 17, "pieces_study": 17, "size_bytes": 17_100_000},
                             link={"rate_mbit_set": 80, "rate_mbit_measured": 78.0,
                                   "netem": "not in this kernel: no added delay or loss"},
                             client_limits={"cpus": 0.2}, settings={"queries_after": 10}))
    with (run_dir / "queries.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(plan_mod.QUERY_COLUMNS)
        for mode, done in (("baseline", 3.1), ("proposed", 2.0)):
            for i, t in enumerate((0.0, 0.5, 1.0, done + 0.1)):
                w.writerow([model, mode, 1, i, t, 0.2, 0 if t < 0.4 else 5, 0.1, 0.05, 0.1, t > done, done])
    return run_dir


def test_report_section_table_and_plot(tmp_path):
    fake_run(tmp_path)
    ctx = Context.read(tmp_path)
    section = report_mod.section(ctx)
    assert section is not None
    table = next(b for b in section.blocks if getattr(b, "kind", "") == "table")
    row = [c.text for c in table.rows[0]]
    assert row[0] == "MobileNet (timing only)"
    assert "+1.10 s" in row and "+35.5%" in row and "0.9" in row and "30.0%" in row  # ours, then the study's
    assert "median of 1 repeats" not in table.headers[5] and "one run each" in table.headers[5]
    overlap = [b for b in section.blocks if getattr(b, "kind", "") == "table"][1]
    assert [c.text for c in overlap.rows[0]][3:6] == ["0.300 s", "30%", "0.600 s"]
    findings = report_mod.overlap_findings(report_mod.model_runs(ctx.runs))
    assert "MobileNet 30%" in findings[0] and "MobileNet 0.600 s against 1.10 s saved" in findings[1]
    assert "0.2 core" in section.blocks[0].text
    for figure in section.figures:
        path = figure.draw(tmp_path / figure.file)
        assert path.exists() and path.stat().st_size > 1000
    queries = next(f for f in section.figures if f.name == "offloading_mobilenet")
    assert "netem not in this kernel" in queries.caption and "after it, 10 more queries" in queries.caption
    answer = report_mod.answer(ctx)
    assert "0.2 core" in answer.text and "one run each" in answer.text and answer.figure == "offloading_overlap.png"


@pytest.mark.parametrize("build, share, says", [
    (5.8, 0.7, "about as long as the study's 5.2 s on its Caffe server: our builds are not faster than Caffe's"),
    (10.4, 0.1, "2.0x as long as the study's 5.2 s on its Caffe server."),  # too little overlap to be the cause
    (2.6, 0.7, "0.50x (shorter than) the study's 5.2 s on its Caffe server."),  # faster builds: no such claim
])
def test_the_cause_of_the_smaller_saving_is_stated_only_where_the_numbers_show_it(tmp_path, build, share, says):
    fake_run(tmp_path, "resnet152", build=build, share=share, title="ResNet-152", times=(30.0, 29.0))
    text = ". ".join(report_mod.overlap_findings(report_mod.model_runs(Context.read(tmp_path).runs))) + "."
    assert says in text
    assert ("because the transfer overlapped 70% of the building" in text) is (says.endswith("Caffe's"))
    assert "faster than Caffe's ..." not in text and "are faster than" not in text


def test_build_totals_are_compared_with_the_study_s_in_words_the_numbers_decide():
    assert report_mod.as_long_as(5.8, 5.2) == "about as long as"
    assert report_mod.as_long_as(7.8, 5.2) == "1.5x as long as"
    assert report_mod.as_long_as(2.6, 5.2).startswith("0.50x (shorter")


def test_report_section_without_runs_says_how_to_make_them(tmp_path):
    section = report_mod.section(Context.read(tmp_path))
    assert "make study STUDY=offloading" in section.blocks[0].text and not section.figures


# ------------------------------------------------------------------ the committed runs: the overlap recorded
def test_the_committed_runs_record_a_consistent_overlap_per_upload_at_0_2_core_with_5_repeats():
    runs = report_mod.model_runs(Context.read(REPO_ROOT / "results").runs)
    assert set(runs) >= {"resnet152", "resnet50", "mobilenet", "alexnet"}
    for model, run in runs.items():
        assert run.get("client_limits", "cpus") == pytest.approx(0.2), model
        assert run.get("settings", "repeats") >= 5, model
        with (REPO_ROOT / "results" / run.run_id / "uploads.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 2 * run.get("settings", "repeats"), model
        for r in rows:
            row = {k: None if r[k] == "" else float(r[k]) for k in timeline.COLUMNS}
            assert timeline.consistent(row) == [], (model, r["mode"], r["repeat"])
        summary = run.get("summary")
        for mode in ("baseline", "proposed"):
            assert summary[mode]["repeats"] >= 5 and 0 <= summary[mode]["overlap_frac"] <= 1
