"""An architecture is a folder: a dummy one, with its own knob and backend class, reaches every place that
lists architectures, and nothing else is edited for it.

The dummy lives in tests/servebench/fixtures/dummy_arch/ (knobs.py, declaration.py, backend.py and a test
double server). Its parent folder is added as a plug-in root (``registry.add_plugin_root``), which rebuilds
the settings model with its knob, so each check runs in a fresh interpreter that adds the root before
anything else imports the settings. The declared architectures are checked here too.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

from servebench import registry, settings
from servebench.settings import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "servebench" / "fixtures"
DUMMY = "sb-dummy"

PRELUDE = f"""
from servebench import registry
registry.add_plugin_root({str(FIXTURES)!r})
"""


def _fresh(code: str, *args: str) -> str:
    """Run ``code`` after the dummy's root is added, in a new interpreter; its stdout."""
    res = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("SB_")},
                              "PYTHONPATH": str(REPO_ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


@pytest.mark.unit
def test_a_dummy_folder_reaches_the_cli_the_knobs_the_compose_file_and_the_front_end(tmp_path):
    out = _fresh("""
        import contextlib, io, sys
        from pathlib import Path
        from bench import options as opts, records, report
        from servebench import runtime, topology
        from servebench.settings import NOT_RECORDED, Settings
        from services.frontend import backends
        DUMMY = "sb-dummy"

        # Its knob is a field of the one settings model, read from SB_DUMMY_PORT, never recorded.
        assert Settings().dummy_port == 8097 and Settings.from_env({"SB_DUMMY_PORT": "9"}).dummy_port == 9
        assert "dummy_port" in NOT_RECORDED and "dummy_port" not in Settings().recorded()
        # What it adds to nginx (its nginx.py), with its knob's value.
        from servebench import nginx_conf
        assert "location = /dummy { proxy_pass http://127.0.0.1:9;" in nginx_conf.render(
            Path("/tmp/x"), Settings.from_env({"SB_DUMMY_PORT": "9"}))
        # The CLI choices.
        for cls in (opts.BenchOptions, opts.LoadOptions, opts.SoakOptions):
            assert opts.parse(cls, ["--arch", DUMMY]).arch == DUMMY
        assert DUMMY in runtime.build_parser().parse_args(["up", DUMMY]).arch
        # `python -m servebench.topology knobs`.
        with contextlib.redirect_stdout(io.StringIO()) as listed:
            assert topology.main(["knobs"]) == 0
        assert "SB_DUMMY_PORT" in listed.getvalue()
        # The compose file and what compose substitutes.
        svc = topology.compose_document()["services"][DUMMY]
        assert svc["profiles"] == [DUMMY] and svc["command"][-1] == "${SB_DUMMY_PORT:-8097}"
        assert svc["environment"]["SB_DUMMY_PORT"] == "${SB_DUMMY_PORT:-8097}"
        subst = topology.compose_substitutions(DUMMY, Settings(dummy_port=5123))
        assert topology.resolve(svc["command"][-1], subst) == "5123" and subst["ARCH"] == DUMMY
        # The front end builds its own backend class, pointed at its own port.
        backend = backends.build(Settings(arch=DUMMY))
        assert type(backend).__name__ == "DummyBackend" and backend.address == "127.0.0.1:8097"
        backend.close()
        # The report.
        results = Path(sys.argv[1])
        run = results / "20260101T000000Z-bench-dummy"
        run.mkdir(parents=True)
        records.write(run, {"kind": "bench", "run_id": run.name, "arch": DUMMY, "runtime": "native",
                            "settings": {"n": 10, "batch": 1, "codec": "json", "concurrency": 1},
                            "requests": {"ok": 10, "errors": 0}, "accuracy": 0.8,
                            "latency_ms": {"p50": 5.0, "p90": 6.0, "p99": 7.0, "max": 8.0, "mean": 5.5},
                            "throughput_images_per_s": 180.0})
        assert report.main(["--results", str(results)]) == 0
        assert f"{DUMMY}: {run.name}" in (results / "report.html").read_text()
        assert DUMMY in (results / "summary.csv").read_text()
        print("checked")
    """, str(tmp_path / "results"))
    assert out.strip().endswith("checked")


@pytest.mark.integration
def test_a_dummy_folder_runs_on_the_native_runtime(tmp_path):
    out = _fresh("""
        import http.client, sys
        from servebench import stack
        from servebench.settings import HarnessSettings, Settings
        from services.frontend import backends
        rt = stack.NativeRuntime(HarnessSettings(run_dir=sys.argv[1]))
        settings = Settings(arch="sb-dummy")
        st = rt.up("sb-dummy", settings, log=lambda *_: None)
        try:
            assert list(st.doc["services"]) == ["sb-dummy"] and st.arch == "sb-dummy"
            assert all(procs for procs in st.processes().values())
            backend = backends.build(settings)
            assert backend.health()
            backend.close()
        finally:
            assert rt.down(log=lambda *_: None)
        assert rt.state() is None
        print("ran")
    """, str(tmp_path))
    assert out.strip().endswith("ran")


@pytest.mark.unit
def test_every_folder_is_discovered_once_in_its_declared_order():
    registry.discover()
    registry.discover()
    assert registry.names()[:3] == ("embedded", "flask", "fastapi")
    assert list(registry.services())[:2] == ["nginx", "frontend"]
    assert [s.name for s in registry.studies()] == ["docker-serving", "saturation", "serverless", "batching", "scale-out", "ensemble",
                                                    "streaming", "offloading", "engines"]
    assert "objectstore" in registry.services() and registry.profiles_of("objectstore") == ("serverless",)


@pytest.mark.unit
def test_every_architecture_names_a_backend_class_of_its_folder():
    import importlib

    for arch in registry.architectures():
        if arch.backend:  # the streaming architectures have no front end
            module, _, cls = arch.backend.partition(":")
            assert isinstance(getattr(importlib.import_module(module), cls), type), arch.name


@pytest.mark.unit
def test_every_folder_knob_is_a_field_of_the_one_settings_model():
    folders = {dotted.rsplit(".", 2)[-2] for dotted, _ in settings.plugin_modules("knobs")}
    assert {"flask_backend", "fastapi_backend", "tfserving", "triton", "stream", "ensemble", "serverless"} <= folders
    fields = settings.Settings.model_fields
    for name in ("flask_port", "fastapi_port", "tfserving_rest_port", "triton_http_port", "stream_window",
                 "ensemble_members", "objectstore_port", "listen", "max_batch"):
        assert name in fields and settings.receivers(name), name
    assert list(fields)[:2] == ["arch", "listen"]  # the core's first


def _servebench_imports(module: str) -> set[str]:
    tree = ast.parse((REPO_ROOT / "servebench" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("servebench"):
            found |= {node.module} if node.module != "servebench" else {f"servebench.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("servebench")}
    return found


@pytest.mark.unit
def test_settings_and_registry_import_one_way():
    # The engine knob's choices are the engine folders' names (servebench/engines/, below settings).
    assert _servebench_imports("settings") <= {"servebench.knobs", "servebench.engines"}
    assert _servebench_imports("registry") <= {"servebench.settings", "servebench.knobs", "servebench.cgroups",
                                               "servebench.docker_engine"}
    assert _servebench_imports("docker_engine") <= {"servebench.settings"}
