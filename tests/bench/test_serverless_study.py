"""The serverless study's plan and report section (no store, no functions)."""
from pathlib import Path

import pytest

from bench import options as opts
from bench import study
from bench.report.sections import Context, Figure
from bench.studies.serverless import published, report
from servebench import registry

pytestmark = pytest.mark.unit


def test_the_study_is_registered_and_its_plan_is_pure(tmp_path):
    assert registry.study("serverless").module == "bench.studies.serverless"
    plan = study.load("serverless").experiments(opts.StudyOptions(study="serverless", out=tmp_path))
    assert [s.name for s in plan] == ["setup", "check", "fig3", "fig5", "tables", "baseline"]
    assert not any(tmp_path.iterdir())


def test_the_object_store_is_a_registry_service_with_its_own_compose_profile():
    svc = registry.service("objectstore")
    assert registry.profiles_of("objectstore") == ("serverless",)
    assert "-ip.bind=127.0.0.1" in svc.command and "-s3" in svc.command


class _Run:
    def __init__(self, doc):
        self.doc, self.run_id, self.kind = doc, "r1", "serverless"

    def get(self, *keys, default=None):
        v = self.doc
        for k in keys:
            if not isinstance(v, dict) or k not in v:
                return default
            v = v[k]
        return v


DOC = {
    "settings": {"memory_mb": 3008}, "cpu_count": 2, "prices": {"name": "study-2019", "date": "2019-06-01"},
    "check": {"images": 1000, "classes_equal": True, "max_abs_prob_diff": 0.0, "accuracy": 0.8},
    "fig3": [{"record_size": s, "stage": st, "start": t, "duration_s": 1.0, "init_s": 0.5 if t == "cold" else 0,
              "peak_memory_mb": 500.0} for s in (100, 250) for st in published.STAGES for t in ("cold", "warm")],
    "fig5": [{"parallelism": p, "wall_s": 10.0 / p, "cost_usd": 0.01, "done": 4, "failed": 0, "vcpus_asked": 1.7 * p,
              "cores_exhausted": 1.7 * p > 2} for p in (1, 2, 4)],
    "tables": [{"setting": "memMax-100", "record_size": 100, "memory_mb": dict.fromkeys(published.STAGES, 3008),
                "time_s": 5.0, "cost_usd": 0.001, "cost_per_1000_images": 0.01}],
    "baseline": [{"record_size": 100, "seconds": 1.5}],
}


def test_the_section_draws_its_figures_and_labels_alexnet_timing_only(tmp_path):
    ctx = Context(Path(tmp_path), [_Run(DOC)], [])
    sec = report.section(ctx)
    figures = [b for b in sec.blocks if isinstance(b, Figure)]
    assert {f.name for f in figures} == {"serverless-fig3", "serverless-fig5"}
    for f in figures:
        assert f.draw(tmp_path / f.file).stat().st_size > 0
        assert "timing and memory only" in f.caption
    assert any(getattr(b, "headers", None) and "Conv_1" in b.headers for b in sec.blocks)


def test_the_section_without_runs_says_how_to_make_one(tmp_path):
    sec = report.section(Context(Path(tmp_path), [], []))
    assert "make study STUDY=serverless" in sec.blocks[-1].text
