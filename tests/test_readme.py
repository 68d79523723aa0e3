"""Every command the README shows is run here or by CI (.ci/run runs `make setup` and `make test`).

The commands run as a user types them, through make, on free ports, with their
own results and run folders. A command added to the README without a test here
fails :func:`test_every_readme_command_is_covered`.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from servebench import registry
from servebench.types import CLASS_NAMES
from tests.stacks import stack_env

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

# make target -> where it is exercised. Targets that rewrite committed files or
# take hours say so, and what exercises their code instead.
COVERED = {
    "setup": "CI: .ci/run",
    "setup-triton": "CI: .ci/run (then tests/services/test_triton.py and test_protocols.py run Triton)",
    "setup-perf": "CI: .ci/run (then tests/bench/test_perf_analyzer.py runs perf_analyzer)",
    "sweep": "tests/bench/test_sweep_stacks.py (bench.sweep, both batching modes, at a tiny scale)",
    "advise": "tests/bench/test_advise.py::test_make_advise_verifies_its_pick_on_a_real_fastapi_stack",
    "model-curve": "tests/bench/test_model_curve.py (bench.reference curve at a tiny scale)",
    "crosscheck": "tests/bench/test_crosscheck_stacks.py::test_crosscheck_end_to_end; the Makefile's flags: "
                  "tests/bench/test_crosscheck.py::test_make_bench_loadgen_and_make_crosscheck_reach_the_options",
    "test": "CI: .ci/run",
    "test-unit": "test_make_test_unit_selects_only_unit_tests",
    "test-integration": "CI: make test runs the same tests",
    "lint": "tests/test_codebase.py (the same lint-imports contracts, and pyflakes on the code folders)",
    "up": "test_up_status_snippet_down",
    "down": "test_up_status_snippet_down",
    "status": "test_up_status_snippet_down",
    "bench": "test_bench_all_on_a_small_n (bench-all runs bench for each architecture)",
    "bench-all": "test_bench_all_on_a_small_n",
    "study": "test_study_on_a_tiny_scale",
    "bench-study": "test_study_on_a_tiny_scale (an alias)",
    "load": "tests/bench/test_load.py (bench.load, headless)",
    "load-ui": "test_load_ui_starts_and_stops",
    "soak": "tests/bench/test_soak_stacks.py (bench.soak on a short duration)",
    "report": "test_study_on_a_tiny_scale (the study rewrites the report)",
    "docs": "tests/bench/test_docs.py (the README's generated blocks equal what results/ gives)",
    "bench-model": "tests/bench/test_reference.py (bench.reference on few calls)",
    "compose-file": "tests/servebench/test_topology.py (the committed file equals the generated one)",
    "images": "tests/servebench/test_compose.py (docker-marked: builds and runs the images)",
    "base-image": "not run by tests: needs Debian's package mirror; docker/base-image.sh",
    "train": "not run by tests: hours on 2 cores; models/train.py's parts by tests/models/test_model.py",
    "export": "not run by tests: rewrites the committed SavedModel; tests/models/test_model.py checks it",
    "evaluate": "tests/models/test_model.py (the same accuracy check on the full test set); with MODEL and ENGINE: "
                "tests/models/test_evaluate.py",
    "card": "tests/servebench/test_modelcard.py::test_the_command_prints_the_card_or_one_error",
    "engines": "tests/servebench/test_engines.py::test_make_engines_converts_once_then_finds_the_cache",
    "train-tabular": "tests/models/test_tabular.py (checks its outputs; the target rewrites the committed files)",
    # --- ensemble (issue 12) ---
    "train-ensemble": "not run by tests: about half an hour on 2 cores; tests/models/test_ensemble_models.py checks "
                      "its outputs (the SavedModels, the accuracy bars in models/ensemble.metrics.json)",
    "evaluate-ensemble": "tests/models/test_ensemble_models.py (the bars it checks, from its metrics file)",
    # --- end ensemble (issue 12) ---
    "stream-proto": "tests/services/test_stream_proto.py (its command regenerates exactly the committed code)",
}
# Shell commands the README shows that are not make targets.
OTHER_COMMANDS = {
    ".venv/bin/python -m servebench.topology knobs": "test_topology_knobs_lists_every_knob",
    ".venv/bin/python - <<'PY'": "test_up_status_snippet_down (the README's Python snippet)",
    "bash .ci/docker-engine.sh": "CI: .ci/run starts and stops the engine",
}


def readme_make_targets() -> set[str]:
    """Words after `make` in the README (prose included; callers keep those that are targets)."""
    found = set()
    for m in re.finditer(r"(?<![\w-])make ((?:[a-z][\w|-]*)(?: [a-z][\w|-]*)*)", README):
        for word in m.group(1).split():
            found.update(word.split("|"))
    return found


def python_snippets() -> list[str]:
    return re.findall(r"\.venv/bin/python - <<'PY'\n(.*?)\nPY\n", README, re.S)


@pytest.mark.unit
def test_every_readme_command_is_covered():
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    shown = {t for t in readme_make_targets() if t in targets}
    assert shown, "no make target found in the README"
    assert not shown - set(COVERED), f"README commands without a test: {sorted(shown - set(COVERED))}"
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    for block in blocks:
        block = re.sub(r"<<'PY'\n.*?\nPY\n", "<<'PY'\n", block, flags=re.S)  # a heredoc is Python, run below
        for line in block.splitlines():
            cmd = line.split("#")[0].strip()
            if not cmd or cmd.startswith(("make ", "import", "img", "req", "data", "with", "PY")):
                continue
            assert any(cmd.startswith(k) for k in OTHER_COMMANDS), f"README command without a test: {cmd}"
    assert len(python_snippets()) == 1


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = stack_env(**extra)
    env.update(SB_RUN_DIR=str(tmp_path / "run"), RESULTS=str(tmp_path / "results"))
    return env


def _make(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout)


def _nothing_running(run_dir: Path) -> list[str]:
    left = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SERVEBENCH_STACK_DIR") == str(run_dir) or str(run_dir) in " ".join(proc.cmdline()):
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:80]}")
        except (psutil.Error, OSError):
            continue
    return left


@pytest.mark.integration
def test_up_status_snippet_down(tmp_path):
    env = _env(tmp_path, SB_FRONTEND_WORKERS="1")
    try:
        up = _make("up", "ARCH=embedded", env=env, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        status = _make("status", env=env)
        assert status.returncode == 0 and "nginx" in status.stdout and "up" in status.stdout, status.stdout
        # The README's snippet as written, pointed at this test's port.
        snippet = python_snippets()[0].replace("127.0.0.1:8080", f"127.0.0.1:{env['SB_PORT']}")
        out = subprocess.run([str(REPO / ".venv/bin/python"), "-"], input=snippet, text=True,
                             capture_output=True, timeout=60, cwd=REPO)
        assert out.returncode == 0, out.stderr
        timing, name, outputs = out.stdout.strip().splitlines()[-3:]
        assert "model" in timing and name in CLASS_NAMES
        assert outputs == "['classes', 'probabilities']"  # the KServe v2 call: the card's order (by name)
    finally:
        down = _make("down", env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert _make("status", env=env).returncode != 0  # nothing running any more (make says 2)
    assert not _nothing_running(tmp_path / "run")


@pytest.mark.integration
def test_topology_knobs_lists_every_knob():
    from servebench import settings

    out = subprocess.run([sys.executable, "-m", "servebench.topology", "knobs"], cwd=REPO, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0
    for var in settings.knob_defaults():
        assert re.search(rf"^{var}\s", out.stdout, re.M), var


@pytest.mark.unit
def test_make_test_unit_selects_only_unit_tests():
    text = (REPO / "Makefile").read_text()
    assert re.search(r"^test-unit:.*\n\t.*pytest (-n \d+ )?-m \"unit and not slow\"", text, re.M)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("cifar_dir")
def test_bench_all_on_a_small_n(tmp_path):
    env = _env(tmp_path, SB_FRONTEND_WORKERS="1", SB_BACKEND_WORKERS="1")
    res = _make("bench-all", "N=20", "WARMUP=2", env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    runnable = [a.name for a in registry.architectures() if not a.unmet("native")]
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*/summary.json")
            if p.parent.name != "latest"]
    # The streaming architectures' runs are frames over one connection (kind "stream"), the rest requests.
    assert sorted(r["arch"] for r in runs if r["kind"] in ("bench", "stream")) == sorted(runnable)
    for r in runs:
        answered = r["stream"]["answered"] if r["kind"] == "stream" else r["requests"]["ok"]
        assert r["schema_version"] >= 2 and answered == 20, r["run_id"]
    assert not _nothing_running(tmp_path / "run")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("cifar_dir")
def test_study_on_a_tiny_scale(tmp_path):
    env = _env(tmp_path, SB_FRONTEND_WORKERS="1", SB_BACKEND_WORKERS="1")
    res = _make("study", "STUDY=docker-serving", "QUICK=1", "N=20", "STUDY_ARCHS=embedded", env=env, timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    results = tmp_path / "results"
    assert (results / "report.html").is_file() and (results / "summary.csv").is_file()
    kinds = [json.loads(p.read_text())["kind"] for p in results.glob("*/summary.json") if p.parent.name != "latest"]
    assert "reference" in kinds and kinds.count("bench") >= 2
    assert "Embedded" in (results / "report.html").read_text()
    assert not _nothing_running(tmp_path / "run")


@pytest.mark.integration
@pytest.mark.usefixtures("cifar_dir")
def test_load_ui_starts_and_stops(tmp_path):
    env = _env(tmp_path, SB_FRONTEND_WORKERS="1")
    web = stack_env()["SB_PORT"]  # any free port
    proc = subprocess.Popen(["make", "--no-print-directory", "load-ui", "ARCH=embedded", f"WEB_PORT={web}"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=2) as r:
                    if r.status == 200 and b"locust" in r.read().lower():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "locust's web UI did not answer"
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole group
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert not _nothing_running(tmp_path / "run")
