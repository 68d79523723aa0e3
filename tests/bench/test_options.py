"""bench.options: each command's options are one typed object, built once from argv and passed down."""
from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from bench import load, options as opts, reference, run, soak, study
from servebench import registry
from servebench.settings import Settings

pytestmark = pytest.mark.unit


def test_flags_are_derived_from_the_fields():
    o = opts.parse(opts.BenchOptions, ["--arch", "flask", "--n", "20", "--rate", "50", "--arrivals", "poisson",
                                       "--overhead-requests", "10", "--no-progress", "--run-dir", "/tmp/r"])
    assert (o.arch, o.n, o.rate, o.arrivals, o.overhead_requests) == ("flask", 20, 50.0, "poisson", 10)
    assert o.progress is False and o.run_dir == Path("/tmp/r") and o.runtime == "native"
    assert o.pool == opts.OPEN_LOOP_CONNECTIONS  # the open loop's default pool
    assert opts.parse(opts.BenchOptions, ["--arch", "all", "--concurrency", "3"]).pool == 3
    assert opts.parse(opts.StudyOptions, ["docker-serving", "--arch", "embedded", "--arch", "flask",
                                          "--quick", "--no-reference"]).arches == ("embedded", "flask")
    assert opts.parse(opts.ReferenceOptions, ["--batch-sizes", "1,4"]).batch_sizes == (1, 4)


def test_architecture_choices_come_from_the_registry():
    choices = next(a.choices for a in opts.parser(opts.BenchOptions)._actions if a.dest == "arch")
    assert tuple(choices) == (*registry.names(), "all")
    with pytest.raises(pydantic.ValidationError, match="unknown 'nope'"):
        opts.BenchOptions(arch="nope")
    with pytest.raises(pydantic.ValidationError):
        opts.LoadOptions(arch="all")  # only bench.run runs them all


@pytest.mark.parametrize("cls, argv, flag", [
    (opts.BenchOptions, ["--arch", "embedded", "--n", "0"], "--n:"),
    (opts.BenchOptions, ["--arch", "embedded", "--n", "10001"], "--n:"),
    (opts.BenchOptions, ["--arch", "embedded", "--rate", "-1"], "--rate:"),
    (opts.BenchOptions, ["--arch", "embedded", "--overhead-requests", "x"], "--overhead-requests:"),
    (opts.LoadOptions, ["--arch", "embedded", "--workers", "-1"], "--workers:"),
    (opts.LoadOptions, ["--arch", "embedded", "--duration", "soon"], "--duration:"),
    (opts.SoakOptions, ["--arch", "embedded", "--load", "2"], "--load:"),
    (opts.ReferenceOptions, ["--batch-sizes", "1,0"], "--batch-sizes:"),
    (opts.StudyOptions, ["docker-serving", "--slow-path-n", "0"], "--slow-path-n:"),
])
def test_a_bad_value_is_reported_under_its_flag(cls, argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        opts.parse(cls, argv)
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_options_are_frozen_and_strict():
    o = opts.BenchOptions(arch="embedded")
    with pytest.raises(pydantic.ValidationError):
        o.n = 5
    with pytest.raises(pydantic.ValidationError, match="no_such"):
        opts.BenchOptions(arch="embedded", no_such=1)


def test_recorded_settings_keep_the_report_s_keys():
    o = opts.BenchOptions(arch="embedded", n=20, rate=10.0)
    assert o.recorded() == {"n": 20, "batch": 1, "codec": "json", "concurrency": 1, "rate": 10.0,
                            "arrivals": "constant", "open_loop_connections": 16, "repeats": 1, "warmup": 50,
                            "seed": 0, "mode": "open", "sample_hz": o.sample_hz,
                            "protocol": None}  # as asked; the run's record says the one chosen (bench.workload)


@pytest.mark.parametrize("module, function, argv", [
    (run, "bench", ["--arch", "embedded", "--n", "5"]),
    (load, "load", ["--arch", "embedded", "--users", "2"]),
    (soak, "soak", ["--arch", "embedded", "--duration", "5s"]),
    (reference, "measure", ["--calls", "5"]),
    (study, "study", ["docker-serving", "--quick"]),
])
def test_main_builds_the_options_once_and_passes_them_down(module, function, argv, monkeypatch):
    built, called = [], []
    real_parse = opts.parse

    def parse(cls, argv=None, description=None):
        built.append(real_parse(cls, argv, description))
        return built[-1]

    class Done(Exception):
        pass

    def stop(options, settings, *args, **kw):
        called.append((options, settings))
        raise Done

    monkeypatch.setattr(opts, "parse", parse)
    monkeypatch.setattr(module, function, stop)
    with pytest.raises(Done):
        module.main(argv)
    assert len(built) == 1 and len(called) == 1
    options, settings = called[0]
    assert options is built[0]  # the very object built from argv, not a copy or a re-parse
    assert isinstance(settings, Settings)


def test_locust_settings_round_trip_through_the_environment(monkeypatch, tmp_path):
    from bench.knobs import LOCUST

    sent = Settings.given(load_codec="raw", load_batch=4, load_images=100, load_totals_file=tmp_path / "t.json")
    env = sent.env_for(LOCUST)
    assert env == {"SB_LOAD_CODEC": "raw", "SB_LOAD_BATCH": "4", "SB_LOAD_IMAGES": "100",
                   "SB_LOAD_TOTALS_FILE": str(tmp_path / "t.json")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert Settings().section("load") == sent.section("load")


def test_load_passes_its_options_to_locust_as_locust_settings(tmp_path):
    o = opts.LoadOptions(arch="embedded", codec="raw", batch=2, images=50, data_dir=tmp_path)
    env = load.locust_env(o, tmp_path)
    assert {k: env[k] for k in env if k.startswith("SB_LOAD_")} == {
        "SB_LOAD_CODEC": "raw", "SB_LOAD_BATCH": "2", "SB_LOAD_IMAGES": "50",
        "SB_LOAD_TOTALS_FILE": str(tmp_path / load.TOTALS_FILE), "SB_LOAD_DATA_DIR": str(tmp_path)}
