"""Studies as plug-ins: the docker-serving study's plan, its published numbers, and how a plan is executed.

The executor runs against test doubles (a runtime that records up/down, bench
and reference functions that record their calls): no server, no TensorFlow.
"""
from __future__ import annotations

import importlib
import os

import pytest

from bench import options as opts, reference, run, study, target
from bench.records import RunRecord
from bench.studies.docker_serving import published
from servebench import registry
from servebench import runtime as runtimes
from servebench.settings import Settings

pytestmark = pytest.mark.unit

STUDY = "docker-serving"
# The module, not the package's experiments() that shadows it as an attribute.
plan_mod = importlib.import_module("bench.studies.docker_serving.experiments")


def quick(**kw) -> opts.StudyOptions:
    return opts.StudyOptions(study=STUDY, quick=True, **kw)


# ------------------------------------------------------------------ the plug-in API
def test_the_registry_finds_the_study_package():
    plugin = study.load(STUDY)
    assert isinstance(plugin, study.StudyPlugin)
    assert plugin.__name__ == registry.study(STUDY).module + ".experiments"


def test_quick_plan():
    arches = [a.name for a in registry.architectures() if a.study == STUDY]
    plan = study.load(STUDY).experiments(quick(n=20))
    # reference, 9 workloads, slow path, the Table 3 protocol under docker
    per_arch = 1 + 3 + len(plan_mod.CONCURRENCY) + len(plan_mod.RATES) + 1 + 1
    assert len(plan) == per_arch * len(arches)
    assert list(dict.fromkeys(e.arch for e in plan)) == arches
    for arch in arches:
        mine = [e for e in plan if e.arch == arch]
        assert [e.kind for e in mine] == ["reference"] + ["bench"] * (per_arch - 1)  # a fresh baseline first
        assert [e.settings["call_path"] for e in mine] == ["signature"] * (per_arch - 2) + ["keras-predict",
                                                                                          "signature"]
        assert [e.options.runtime for e in mine[1:]] == ["native"] * (per_arch - 2) + ["docker"]
        benches = [e.options for e in mine if e.kind == "bench" and e.options.runtime == "native"]
        assert all(o.arch == arch and o.n <= 20 and o.overhead_requests == plan_mod.QUICK_OVERHEAD_REQUESTS
                   and not o.progress for o in benches)
        assert [o.repeats for o in benches][:2] == [1, 3]
        assert {o.codec for o in benches} == {"json", "raw"}
        assert [o.concurrency for o in benches if o.concurrency > 1] == list(plan_mod.CONCURRENCY)
        assert [(o.rate, o.arrivals) for o in benches if o.rate] == [(r, "poisson") for r in plan_mod.RATES]
        assert benches[-1].warmup == plan_mod.SLOW_PATH_WARMUP
        ref = mine[0].options
        assert isinstance(ref, opts.ReferenceOptions) and ref.calls == plan_mod.QUICK_REFERENCE["calls"]
    assert all(e.options.study == STUDY for e in plan)  # every record it writes says whose it is


def test_plan_follows_the_options(tmp_path):
    plan = study.load(STUDY).experiments(quick(arches=("flask",), reference=False, out=tmp_path,
                                                 runtime="docker", slow_path_n=7))
    assert {e.arch for e in plan} == {"flask"} and all(e.kind == "bench" for e in plan)
    assert all(e.options.out == tmp_path for e in plan)
    # the study's runtime first, then the protocol on the other one
    assert [e.options.runtime for e in plan] == ["docker"] * (len(plan) - 1) + ["native"]
    assert plan[-2].options.n == 7 and plan[-1].options.repeats == 3
    full = study.load(STUDY).experiments(opts.StudyOptions(study=STUDY, arches=("embedded",)))
    assert [e.options.n for e in full if e.kind == "bench"][:3] == [10000, plan_mod.PROTOCOL_N, 2000]


def test_an_experiment_is_checked_when_planned():
    with pytest.raises(ValueError, match="no serving setting"):
        study.Experiment("embedded", opts.BenchOptions(arch="embedded"), {"no_such_knob": 1})
    with pytest.raises(ValueError, match="measure flask"):
        study.Experiment("embedded", opts.BenchOptions(arch="flask"))
    with pytest.raises(ValueError, match="unknown ARCH"):
        study.Experiment("nope", opts.ReferenceOptions())


# ------------------------------------------------------------------ published numbers, by the study's names
def test_published_tables_are_keyed_by_the_study_s_labels():
    assert set(published.TABLE3_SECONDS) == set(published.TABLE4) == set(published.LABELS)
    for row in published.TABLE3_SECONDS.values():
        assert tuple(row) == published.TABLE3_SIZES
    assert {x for pair in published.RATIOS for x in pair} <= set(published.LABELS)


def test_our_architectures_map_through_the_registry():
    measured = published.measured()
    assert len(measured) == len(published.LABELS)  # every architecture they measured is registered
    for arch in measured:
        assert published.arch_of(published.label(arch)) == arch
        assert published.table3_seconds(arch) == published.TABLE3_SECONDS[published.label(arch)]
    unmeasured = [a.name for a in registry.in_study(STUDY) if a.name not in measured]
    assert unmeasured and all(published.table3_seconds(a) is None for a in unmeasured)
    assert all(published.seconds_per_image(a) is None and published.table4(a) is None for a in unmeasured)
    assert len(published.ratios()) == len(published.RATIOS)
    first = measured[0]
    label = published.label(first)
    assert published.seconds_per_image(first) == published.TABLE3_SECONDS[label][10000] / 10000
    assert published.cpu_percent_of_one_core(first) == published.TABLE4[label]["cpu_percent"] * 8


# ------------------------------------------------------------------ execution, with test doubles
class FakeRuntime:
    def __init__(self):
        self.calls: list[tuple] = []
        self.up_arch = None
        self.name = "native"  # which runtime the study asked for last (runtimes.get)

    def named(self, name: str) -> "FakeRuntime":
        self.name = name
        return self

    def up(self, arch, settings=None, run_dir=None, log=print):
        assert self.up_arch is None, "one stack at a time"
        self.up_arch = arch
        self.calls.append(("up", arch, settings.call_path) if self.name == "native" else
                          ("up", arch, settings.call_path, self.name))

    def down(self, run_dir=None, log=print):
        self.calls.append(("down", self.up_arch))
        self.up_arch = None
        return True


def record(kind: str, options, interrupted=False) -> RunRecord:
    return RunRecord(kind=kind, run_id=f"{kind}-{len(str(options))}", study=options.study,
                     arch=getattr(options, "arch", None), interrupted=interrupted)


@pytest.fixture
def doubles(monkeypatch):
    rt = FakeRuntime()
    seen: list[tuple] = []

    def bench(options, settings, log=print):
        assert rt.up_arch == options.arch, "a bench run needs its stack up"
        seen.append(("bench", options.arch, settings.call_path))
        return [record("bench", options)]

    def measure_isolated(options, settings):
        assert rt.up_arch is None, "the reference runs with no stack up"
        seen.append(("reference", settings.call_path))
        return record("reference", options)

    monkeypatch.setattr(runtimes, "get", lambda name, *a: rt.named(name))
    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: None)
    monkeypatch.setattr(target, "runnable_arches", lambda runtime, arches: (list(arches), {}))
    monkeypatch.setattr(run, "bench", bench)
    monkeypatch.setattr(reference, "measure_isolated", measure_isolated)
    return rt, seen


def test_execute_runs_the_plan_in_order_in_the_stacks_it_needs(doubles):
    rt, seen = doubles
    options = quick(arches=("embedded", "flask"))
    settings = Settings().model_copy(update={"call_path": "keras-predict"})  # the study's own win
    done = study.load(STUDY).run(options, settings, log=lambda *a: None)
    plan = study.load(STUDY).experiments(options)
    assert len(done) == len(plan) and all(r.study == STUDY for r in done)
    n = len(plan) // 2 - 2  # signature runs per arch (the docker protocol among them)
    for arch in ("embedded", "flask"):
        assert rt.calls.count(("up", arch, "signature")) == 1
        assert rt.calls.count(("up", arch, "keras-predict")) == 1
        assert seen.count(("bench", arch, "signature")) == n and seen.count(("bench", arch, "keras-predict")) == 1
    assert rt.calls == [("up", "embedded", "signature"), ("down", "embedded"),
                        ("up", "embedded", "keras-predict"), ("down", "embedded"),
                        ("up", "embedded", "signature", "docker"), ("down", "embedded"),
                        ("up", "flask", "signature"), ("down", "flask"),
                        ("up", "flask", "keras-predict"), ("down", "flask"),
                        ("up", "flask", "signature", "docker"), ("down", "flask")]
    assert seen[0] == ("reference", "signature")


def test_the_study_never_touches_the_environment(doubles, monkeypatch):
    """Settings reach the stacks as objects; os.environ is neither read for them nor written."""
    before = dict(os.environ)
    reads: list[str] = []
    real_get = os.environ.get

    def get(key, default=None):
        if key.startswith("SB_"):
            reads.append(key)
        return real_get(key, default)

    monkeypatch.setattr(os.environ, "get", get)
    study.load(STUDY).run(quick(), Settings(), log=lambda *a: None)
    assert dict(os.environ) == before
    assert reads == []


def test_execute_stops_at_an_interrupted_run_and_brings_the_stack_down(doubles, monkeypatch):
    rt, seen = doubles

    def interrupted(options, settings, log=print):
        return [record("bench", options, interrupted=True)]

    monkeypatch.setattr(run, "bench", interrupted)
    done = study.load(STUDY).run(quick(arches=("embedded",)), Settings(), log=lambda *a: None)
    assert [r.kind for r in done] == ["reference", "bench"] and done[-1].interrupted
    assert rt.calls == [("up", "embedded", "signature"), ("down", "embedded")]


def test_execute_skips_what_cannot_run_here_and_refuses_a_running_stack(doubles, monkeypatch):
    rt, seen = doubles
    said = []
    monkeypatch.setattr(target, "runnable_arches", lambda runtime, arches: ([], {a: "no binary" for a in arches}))
    assert study.load(STUDY).run(quick(arches=("flask",)), Settings(), log=said.append) == []
    assert said == ["skipping flask: no binary"] * 2 and rt.calls == [] and seen == []  # native, then docker

    class Running:
        arch = "flask"

    monkeypatch.setattr(target, "running", lambda runtime, run_dir=None: Running())
    with pytest.raises(runtimes.StackError, match="make down"):
        study.load(STUDY).run(quick(), Settings(), log=said.append)
