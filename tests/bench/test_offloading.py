"""The offloading study's plan, its summary arithmetic and its report section (no link, no server)."""
from __future__ import annotations

import csv
import importlib

import pytest

from bench import options as opts, study
from bench.records import RunRecord, write
from bench.report.sections import Context
from servebench import registry

pytestmark = pytest.mark.unit

STUDY = "offloading"
plan_mod = importlib.import_module("bench.studies.offloading.experiments")
report_mod = importlib.import_module("bench.studies.offloading.report")


def test_the_registry_finds_the_study_package():
    plugin = study.load(STUDY)
    assert isinstance(plugin, study.StudyPlugin)
    assert plugin.__name__ == registry.study(STUDY).module + ".experiments"


def test_default_plan_is_the_study_s_four_models_two_repeats_modes_alternating(monkeypatch):
    for var in ("SB_OFFLOAD_MODELS", "SB_OFFLOAD_REPEATS"):
        monkeypatch.delenv(var, raising=False)
    plan = study.load(STUDY).experiments(opts.StudyOptions(study=STUDY))
    assert list(dict.fromkeys(u.model for u in plan)) == ["resnet152", "resnet50", "mobilenet", "alexnet"]
    assert [(u.mode, u.repeat) for u in plan[:4]] == [("baseline", 1), ("proposed", 1), ("baseline", 2),
                                                      ("proposed", 2)]
    assert len(plan) == 16


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
    ups = [{"mode": m, "upload_s": u, "expected_s": 1.0, "build_s_total": b, "rate_mbit_measured": 78.0}
           for m, u, b in (("baseline", 3.0, 1.5), ("baseline", 3.4, 1.6), ("proposed", 2.0, 0.9),
                           ("proposed", 2.2, 1.0))]
    s = plan_mod.summarise(ups)
    assert s["baseline"]["upload_s"] == pytest.approx(3.2) and s["baseline"]["spread_s"] == pytest.approx(0.4)
    assert s["saving_s"] == pytest.approx(1.1) and s["saving_pct"] == pytest.approx(34.4)


def fake_run(root, model="mobilenet"):
    run_dir = root / f"20260101T000000Z-offloading-{model}"
    run_dir.mkdir(parents=True)
    uploads = [{"mode": m, "upload_s": u, "expected_s": 1.75, "build_s_total": 1.0, "rate_mbit_measured": 78.0}
               for m, u in (("baseline", 3.1), ("proposed", 2.0))]
    write(run_dir, RunRecord(kind="offloading", run_id=run_dir.name, study=STUDY, model=model, title="MobileNet",
                             timing_only=True, label=plan_mod.TIMING_ONLY, uploads=uploads,
                             summary=plan_mod.summarise(uploads),
                             partition={"pieces": 17, "pieces_study": 17, "size_bytes": 17_100_000},
                             link={"rate_mbit_set": 80, "rate_mbit_measured": 78.0,
                                   "netem": "not in this kernel: no added delay or loss"},
                             client_limits={"cpus": 0.5}))
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
    table = next(b for b in section.blocks if getattr(b, "kind", "") == "table")
    row = [c.text for c in table.rows[0]]
    assert row[0] == "MobileNet (timing only)"
    assert "+1.10 s" in row and "+35.5%" in row and "0.9" in row and "30.0%" in row  # ours, then the study's
    figure = section.figures[0]
    assert "netem not in this kernel" in figure.caption
    path = figure.draw(tmp_path / figure.file)
    assert path.exists() and path.stat().st_size > 1000


def test_report_section_without_runs_says_how_to_make_them(tmp_path):
    section = report_mod.section(Context.read(tmp_path))
    assert "make study STUDY=offloading" in section.blocks[0].text and not section.figures
