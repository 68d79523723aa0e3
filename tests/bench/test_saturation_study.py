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


def test_the_plan_is_the_curve_repeats_the_headline_then_one_sweep_per_architecture(tmp_path):
    plan = studies.load(STUDY).experiments(study(out=tmp_path), Settings())
    arches = [a for a in plan_mod.ARCHES if a in registry.names()]
    curves = [e for e in plan if isinstance(e.options, opts.ModelCurveOptions)]
    bench = [e for e in plan if isinstance(e.options, opts.BenchOptions)]
    sweeps = [e for e in plan if isinstance(e.options, opts.SweepOptions)]
    assert plan == curves + bench + sweeps and len(curves) == 3
    assert [e.arch for e in sweeps] == arches and arches[:3] == ["embedded", "flask", "fastapi"]
    for e in sweeps:
        o = e.options
        assert o.arch == e.arch and o.concurrency == (1, 2, 4, 8, 16, 32, 64) and o.batching == ("off", "on")
        assert o.codec == "raw" and o.model_curve == "latest" and o.window_s == 2.0 and o.windows_limit == 10
    assert all(e.options.study == STUDY and e.options.out == tmp_path for e in plan)
    assert all(e.settings["call_path"] == "signature" for e in plan)
    assert curves[0].options.batch_sizes == (1, 2, 4, 8, 16, 32, 64)


def test_the_headline_alternates_three_repeats_in_one_stack_per_batching_mode(tmp_path):
    plan = studies.load(STUDY).experiments(study(out=tmp_path, arches=("flask",)), Settings())
    bench = [e for e in plan if isinstance(e.options, opts.BenchOptions)]
    assert len(bench) == 2 * 3 * 2  # batching modes x repeats x (concurrency 1, saturated)
    assert [e.options.concurrency for e in bench[:4]] == [1, 16, 1, 16]
    assert [(e.options.n, e.options.codec, e.options.batch) for e in bench[:2]] == [(1000, "raw", 1), (3000, "raw", 1)]
    off, on = bench[:6], bench[6:]
    sweep_off, sweep_on = (opts.SweepOptions(arch="flask").serving(m) for m in ("off", "on"))
    assert all(e.settings == {"call_path": "signature", **sweep_off} for e in off)
    assert all(e.settings == {"call_path": "signature", **sweep_on} for e in on)


def test_the_knobs_choose_the_parts_and_the_repeats(tmp_path):
    settings = Settings().model_copy(update={"saturation_parts": ("curve", "headline"), "saturation_repeats": 5,
                                             "saturation_concurrency": 32})
    plan = studies.load(STUDY).experiments(study(out=tmp_path, arches=("embedded",)), settings)
    assert not [e for e in plan if isinstance(e.options, opts.SweepOptions)]
    assert len([e for e in plan if isinstance(e.options, opts.ModelCurveOptions)]) == 5
    assert {e.options.concurrency for e in plan if isinstance(e.options, opts.BenchOptions)} == {1, 32}
    with pytest.raises(ValueError):
        Settings(saturation_parts="curve,everything")


def test_quick_shrinks_everything_and_the_options_are_followed(tmp_path):
    plan = studies.load(STUDY).experiments(study(quick=True, arches=("flask",), runtime="docker", n=50,
                                                 run_dir=tmp_path), Settings())
    curve, sw = plan[0].options, plan[-1].options
    assert {e.arch for e in plan} == {"flask"}
    assert curve.batch_sizes == plan_mod.QUICK_CURVE["batch_sizes"] and curve.seconds == plan_mod.QUICK_CURVE["seconds"]
    assert sw.concurrency == plan_mod.QUICK_SWEEP["concurrency"] and sw.windows_limit == 4 and sw.n == 50
    assert sw.runtime == "docker" and sw.run_dir == tmp_path
    bench = [e.options for e in plan if isinstance(e.options, opts.BenchOptions)]
    assert {o.n for o in bench} == {50} and {o.runtime for o in bench} == {"docker"}
    # A smoke run's worst case per stack: every level to its window limit.
    levels = len(sw.concurrency) + len(sw.rate_fractions)
    assert levels * (sw.warmup_s + sw.windows_limit * sw.window_s) * len(sw.batching) < 60
    no_curve = studies.load(STUDY).experiments(study(reference=False, arches=("embedded",)), Settings())
    assert not [e for e in no_curve if isinstance(e.options, opts.ModelCurveOptions)]


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


SWEEPS_ONLY = Settings().model_copy(update={"saturation_parts": ("curve", "sweeps"), "saturation_repeats": 1})


def test_run_measures_the_curve_first_and_skips_what_cannot_run(doubles):
    said = []
    settings = SWEEPS_ONLY.model_copy(update={"call_path": "keras-predict"})  # the study's own wins
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
    done = studies.load(STUDY).run(study(arches=("embedded", "flask")), SWEEPS_ONLY, log=lambda *a: None)
    assert [r.kind for r in done] == ["model-curve", "sweep"] and done[-1].interrupted
    assert doubles == [("curve", "signature"), ("sweep", "embedded")]


def test_run_hands_the_headline_to_the_shared_stack_runner_once(doubles, monkeypatch):
    handed = []

    def execute(plan, options, settings, log=print):
        handed.append([(e.arch, e.options.concurrency) for e in plan])
        return [RunRecord(kind="bench", run_id=f"b{i}", arch=e.arch) for i, e in enumerate(plan)]

    monkeypatch.setattr(studies, "execute", execute)
    settings = Settings().model_copy(update={"saturation_repeats": 1})
    done = studies.load(STUDY).run(study(arches=("embedded", "triton")), settings, log=lambda *a: None)
    assert handed == [[("embedded", 1), ("embedded", 16)] * 2]  # triton skipped: cannot run (the double)
    assert [r.kind for r in done] == ["model-curve"] + ["bench"] * 4 + ["sweep"]


def test_run_refuses_a_running_stack(doubles, monkeypatch):
    class Running:
        arch = "flask"

    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: Running())
    with pytest.raises(runtimes.StackError, match="make down"):
        studies.load(STUDY).run(study(), Settings(), log=lambda *a: None)
    assert doubles == []
