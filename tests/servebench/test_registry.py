"""Registering an architecture is all it takes: a dummy one reaches every place that lists architectures.

The dummy (a test double, registered here only) runs one service, Python's
``http.server`` on the Flask port, in front of nothing: it exercises the
registry's reach, not serving. No other module is edited for it.
"""
from __future__ import annotations

import http.client

import pytest

from bench import options as opts
from bench import records, report
from servebench import compose, registry, runtime, stack, topology
from servebench.registry import Architecture, Service
from servebench.settings import HarnessSettings
from tests.stacks import stack_settings

DUMMY = "sb-registry-dummy"
ECHO = "sb-registry-echo"


@pytest.fixture
def dummy():
    registry.register_service(Service(
        name=ECHO, port_field="flask_port", health_path="/",
        command=("python", "-m", "http.server", "--bind", "127.0.0.1", registry.ref("flask_port"))))
    arch = registry.register(Architecture(
        name=DUMMY, title="Registry Dummy", color="tab:olive", services=(ECHO,), profile=DUMMY,
        backend="services.frontend.backends:EmbeddedBackend", description="a test double"))
    yield arch
    registry.unregister(DUMMY)
    assert DUMMY not in registry.names() and ECHO not in registry.services()


@pytest.mark.unit
def test_a_dummy_architecture_reaches_the_cli_choices(dummy):
    for cls in (opts.BenchOptions, opts.LoadOptions, opts.SoakOptions):
        assert opts.parse(cls, ["--arch", DUMMY]).arch == DUMMY
    with pytest.raises(SystemExit):
        opts.parse(opts.BenchOptions, ["--arch", "sb-not-registered"])
    assert DUMMY in runtime.build_parser().parse_args(["up", DUMMY]).arch


@pytest.mark.unit
def test_a_dummy_architecture_reaches_the_compose_file_and_the_docker_runtime(dummy):
    doc = topology.compose_document()["services"]
    assert doc[ECHO]["profiles"] == [DUMMY]
    assert doc[ECHO]["command"][-1] == registry.ref("flask_port")
    assert DUMMY in registry.profiles() and ECHO not in compose.built()
    # What the docker runtime starts for it, and what compose substitutes.
    assert [s.name for s in registry.services_for(DUMMY)] == [ECHO]
    subst = topology.compose_substitutions(DUMMY, stack_settings(flask_port=5123))
    assert topology.resolve(doc[ECHO]["command"][-1], subst) == "5123" and subst["ARCH"] == DUMMY


@pytest.mark.integration
def test_a_dummy_architecture_runs_on_the_native_runtime(dummy, tmp_path):
    rt = stack.NativeRuntime(HarnessSettings(run_dir=tmp_path))
    settings = stack_settings()
    st = rt.up(DUMMY, settings, log=lambda *_: None)
    try:
        assert list(st.doc["services"]) == [ECHO] and st.arch == DUMMY
        assert all(procs for procs in st.processes().values())
        conn = http.client.HTTPConnection("127.0.0.1", settings.flask_port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        assert rt.down(log=lambda *_: None)
    assert rt.state() is None


@pytest.mark.unit
def test_a_dummy_architecture_reaches_the_report(dummy, tmp_path):
    results = tmp_path / "results"
    run = results / "20260101T000000Z-bench-dummy"
    run.mkdir(parents=True)
    records.write(run, {"kind": "bench", "run_id": run.name, "arch": DUMMY, "runtime": "native",
                        "settings": {"n": 10, "batch": 1, "codec": "json", "concurrency": 1},
                        "requests": {"ok": 10, "errors": 0}, "accuracy": 0.8,
                        "latency_ms": {"p50": 5.0, "p90": 6.0, "p99": 7.0, "max": 8.0, "mean": 5.5},
                        "throughput_images_per_s": 180.0})
    assert report.main(["--results", str(results)]) == 0
    assert f"{DUMMY}: {run.name}" in (results / "report.html").read_text()  # a comparison run
    assert DUMMY in (results / "summary.csv").read_text()
