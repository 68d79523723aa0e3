"""Triton serves a model that is not an image model, on the engine SB_ENGINE names.

The bundled tabular model (models/breast_cancer_mlp: float32 ``features [batch, 30]``) is
served by ``services.triton.server`` started directly from .venv-triton (no front end), with
batching on; its KServe v2 answers, one request and several concurrent ones batched together,
equal the in-process core's, and Triton's configuration is the one generated from the card.
Each engine is started once (TensorFlow and Triton take several seconds). Without .venv-triton
or the bundled model everything here skips.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from servebench.modelcard import read_card
from servebench.settings import REPO_ROOT, Settings
from services.triton.config import model_config
from services.triton.declaration import TRITON_VENV, python_libdir
from tests.stacks import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRITON_PYTHON = REPO_ROOT / TRITON_VENV / "bin" / "python"
MODEL = REPO_ROOT / "models" / "breast_cancer_mlp"
NAME = "breast_cancer_mlp"
START_TIMEOUT_S = 300
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
# Batching on with a long delay, so that concurrent requests surely meet in one batch.
KNOBS = {"SB_BATCH_MAX_SIZE": "8", "SB_BATCH_TIMEOUT_MS": "200", "SB_TRITON_INSTANCES": "1"}


@pytest.fixture(scope="module", params=["tensorflow", "onnxruntime"])
def triton(request, tmp_path_factory):
    if not TRITON_PYTHON.exists():
        pytest.skip("no .venv-triton: create it with `make setup-triton`")
    if not MODEL.is_dir():
        pytest.skip(f"no bundled tabular model at {MODEL} (make train-tabular)")
    http, grpc = free_ports(2)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "PYTHONPATH": str(REPO_ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2", "LD_LIBRARY_PATH": python_libdir(str(TRITON_PYTHON)),
           "SB_MODEL": str(MODEL), "SB_ENGINE": request.param, "SB_TRITON_GRPC_PORT": str(grpc), **KNOBS}
    log = tmp_path_factory.mktemp(f"triton-{request.param}") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(TRITON_PYTHON), "-m", "services.triton.server", "--host", "127.0.0.1",
                                 "--port", str(http)], env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"triton exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                with _OPENER.open(f"http://127.0.0.1:{http}/v2/models/{NAME}/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"triton did not load {NAME}: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"port": http, "engine": request.param, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def card():
    return read_card(MODEL)


@pytest.fixture(scope="module")
def rows(card):
    with np.load(MODEL / "test.npz") as npz:
        return npz["features"][:8].astype(np.float32)


@pytest.fixture(scope="module")
def reference(triton, rows):
    from servebench.inference import InferenceCore

    core = InferenceCore(MODEL, engine=triton["engine"])
    return core.run({"features": rows})


def _get(triton, path: str) -> dict:
    with _OPENER.open(f"http://127.0.0.1:{triton['port']}{path}", timeout=30) as resp:
        return json.load(resp)


def infer(triton, features: np.ndarray) -> dict[str, np.ndarray]:
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": list(features.shape),
                        "data": features.ravel().tolist()}]}
    req = urllib.request.Request(f"http://127.0.0.1:{triton['port']}/v2/models/{NAME}/infer",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=60) as resp:
            doc = json.load(resp)
    except urllib.error.HTTPError as exc:
        pytest.fail(f"HTTP {exc.code}: {exc.read()[:500]!r}; server log: {triton['log'].read_text()[-3000:]}")
    assert doc["model_name"] == NAME
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in doc["outputs"]}


def test_triton_loads_the_configuration_generated_from_the_card(triton, card):
    settings = Settings(batch_max_size=8, batch_timeout_ms=200, triton_instances=1)
    want = model_config(card, settings, name=NAME)
    got = _get(triton, f"/v2/models/{NAME}/config")
    assert got["max_batch_size"] == want["max_batch_size"]
    tensors = lambda entries: [(e["name"], e["data_type"], [int(d) for d in e["dims"]]) for e in entries]  # noqa: E731
    assert tensors(got["input"]) == tensors(want["input"]) == [("features", "TYPE_FP32", [30])]
    assert tensors(got["output"]) == tensors(want["output"])
    assert [int(n) for n in got["dynamic_batching"]["preferred_batch_size"]] == [8]


def test_answers_equal_the_in_process_core_on_the_same_engine(triton, rows, reference):
    got = infer(triton, rows)
    np.testing.assert_allclose(got["probabilities"], reference["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(got["classes"].reshape(-1), reference["classes"])


def test_concurrent_requests_are_batched_and_get_their_own_rows(triton, rows, reference):
    with ThreadPoolExecutor(len(rows)) as pool:
        answers = list(pool.map(lambda i: infer(triton, rows[i:i + 1]), range(len(rows))))
    for i, got in enumerate(answers):
        np.testing.assert_allclose(got["probabilities"], reference["probabilities"][i:i + 1], atol=1e-5)
    (stats,) = _get(triton, f"/v2/models/{NAME}/stats")["model_stats"]
    assert int(stats["execution_count"]) < 1 + len(rows)  # the dynamic batcher combined some
