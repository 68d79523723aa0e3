"""The saturation study's plan (pure) and how it is run, against test doubles: no server, no TensorFlow."""
from __future__ import annotations

import importlib

import pytest

from bench import options as opts, reference, sweep, target
from bench import study as studies
from bench.records import RunRecord
from servebench import registry
from servebench import runtime as runtimes
from servebench.settings import Settings

pytestmark = pytest.mark.unit

STUDY = "saturation"
plan_mod = importlib.import_module("bench.studies.saturation.experiments")


def study(**kw) -> opts.StudyOptions:
    return opts.StudyOptions(study=STUDY, **kw)


def test_the_registry_finds_the_study_package():
    plugin = studies.load(STUDY)
    assert isinstance(plugin, studies.StudyPlugin)
    assert plugin.__name__ == registry.study(STUDY).module + ".experiments"


def test_the_plan_is_the_curve_then_one_sweep_per_architecture(tmp_path):
    plan = studies.load(STUDY).experiments(study(out=tmp_path))
    arches = [a for a in plan_mod.ARCHES if a in registry.names()]
    assert isinstance(plan[0].options, opts.ModelCurveOptions)
    assert [e.arch for e in plan[1:]] == arches and arches[:3] == ["embedded", "flask", "fastapi"]
    for e in plan[1:]:
        o = e.options
        assert isinstance(o, opts.SweepOptions) and o.arch == e.arch
        assert o.concurrency == (1, 2, 4, 8, 16, 32, 64) and o.batching == ("off", "on") and o.codec == "raw"
        assert o.model_curve == "latest" and o.window_s == 2.0 and o.windows_limit == 10
    assert all(e.options.study == STUDY and e.options.out == tmp_path for e in plan)
    assert all(e.settings == {"call_path": "signature"} for e in plan)
    assert plan[0].options.batch_sizes == (1, 2, 4, 8, 16, 32, 64)


def test_quick_shrinks_everything_and_the_options_are_followed(tmp_path):
    plan = studies.load(STUDY).experiments(study(quick=True, arches=("flask",), runtime="docker", n=50,
                                                 run_dir=tmp_path))
    curve, sw = plan[0].options, plan[1].options
    assert [e.arch for e in plan] == ["flask", "flask"]
    assert curve.batch_sizes == plan_mod.QUICK_CURVE["batch_sizes"] and curve.seconds == plan_mod.QUICK_CURVE["seconds"]
    assert sw.concurrency == plan_mod.QUICK_SWEEP["concurrency"] and sw.windows_limit == 4 and sw.n == 50
    assert sw.runtime == "docker" and sw.run_dir == tmp_path
    # A smoke run's worst case per stack: every level to its window limit.
    levels = len(sw.concurrency) + len(sw.rate_fractions)
    assert levels * (sw.warmup_s + sw.windows_limit * sw.window_s) * len(sw.batching) < 60
    no_curve = studies.load(STUDY).experiments(study(reference=False, arches=("embedded",)))
    assert [type(e.options) for e in no_curve] == [opts.SweepOptions]


@pytest.fixture
def doubles(monkeypatch):
    seen: list[tuple] = []

    def measure_curve(options, settings, log=print):
        seen.append(("curve", settings.call_path))
        return RunRecord(kind="model-curve", run_id="curve", study=options.study)

    def fake_sweep(options, settings, log=print):
        seen.append(("sweep", options.arch, settings.call_path))
        return RunRecord(kind="sweep", run_id=f"sweep-{options.arch}", study=options.study, arch=options.arch)

    monkeypatch.setattr(reference, "measure_curve", measure_curve)
    monkeypatch.setattr(sweep, "sweep", fake_sweep)
    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: None)
    monkeypatch.setattr(target, "runnable_arches", lambda runtime, arches: (
        [a for a in arches if a != "triton"], {a: "no .venv-triton" for a in arches if a == "triton"}))
    return seen


def test_run_measures_the_curve_first_and_skips_what_cannot_run(doubles):
    said = []
    settings = Settings().model_copy(update={"call_path": "keras-predict"})  # the study's own wins
    done = studies.load(STUDY).run(study(), settings, log=said.append)
    arches = [a for a in plan_mod.ARCHES if a in registry.names() and a != "triton"]
    assert doubles == [("curve", "signature")] + [("sweep", a, "signature") for a in arches]
    assert [r.kind for r in done] == ["model-curve"] + ["sweep"] * len(arches)
    if "triton" in registry.names():
        assert "skipping triton: no .venv-triton" in said


def test_run_stops_after_an_interrupted_sweep(doubles, monkeypatch):
    def interrupted(options, settings, log=print):
        doubles.append(("sweep", options.arch))
        return RunRecord(kind="sweep", run_id="x", arch=options.arch, interrupted=True)

    monkeypatch.setattr(sweep, "sweep", interrupted)
    done = studies.load(STUDY).run(study(arches=("embedded", "flask")), Settings(), log=lambda *a: None)
    assert [r.kind for r in done] == ["model-curve", "sweep"] and done[-1].interrupted
    assert doubles == [("curve", "signature"), ("sweep", "embedded")]


def test_run_refuses_a_running_stack(doubles, monkeypatch):
    class Running:
        arch = "flask"

    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: Running())
    with pytest.raises(runtimes.StackError, match="make down"):
        studies.load(STUDY).run(study(), Settings(), log=lambda *a: None)
    assert doubles == []
