"""Any model, every architecture: `make bench MODEL=path` gives a result without editing code.

Three models go through every architecture that runs here, each by its path alone:

- one the suite has never seen, built and exported here: two inputs of other
  dtypes and ranks than an image (int32 ``tokens [-1, 16]`` with values 0..99
  from its card's ranges, float32 ``weights [-1, 3]``) and two outputs (float32
  ``scores [-1, 5]``, int64 ``top [-1]``); random weights, so timing only, on
  synthetic inputs generated from its specs;
- the bundled tabular model (models/breast_cancer_mlp) with ``DATA=`` its test
  split, whose accuracy must be what its metrics file says;
- the ensemble's MobileNetV2 (an image model, but not the default one) on
  CIFAR-10, frame streams included: every answer must be its own class.

The architectures come from the registry (tests/conformance.py). One that
cannot run here is a skip naming its unmet need; the ensembles (their own three
member models), and the frame streams for a model that is not an image model,
are skips that say so. Every run goes through make, as a user types it, on free
ports in its own run dir.
"""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from servebench import data, registry
from servebench.settings import REPO_ROOT
from tests import conformance
from tests.stacks import stack_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNSEEN = "unseen_mixed"
TABULAR = REPO_ROOT / "models" / "breast_cancer_mlp"
N_SYNTHETIC = 16
TABULAR_ROWS = 114
MOBILENET = REPO_ROOT / "models" / "cifar10_mobilenetv2"
N_IMAGES = 60
RUN_TIMEOUT_S = conformance.START_TIMEOUT_S + 300
# The venvs are set up already: a requirements file edited since must not reinstall them mid-test (-o: "old").
MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed", "-o", ".venv-triton/.installed"]


def not_for_any_model(arch: registry.Architecture) -> str | None:
    if conformance.members_of(arch.name):
        return "serves the ensemble's own member models, not MODEL="
    return None


def not_for_non_image_models(arch: registry.Architecture) -> str | None:
    if arch.protocol in conformance.STREAM_TRANSPORTS:
        return "carries image frames; this model is not an image model"
    return not_for_any_model(arch)


ARCHS = conformance.params(registry.architectures(), why_not=not_for_non_image_models)
IMAGE_ARCHS = conformance.params(registry.architectures(), why_not=not_for_any_model)


def export_unseen_model(base: Path) -> Path:
    """A versioned SavedModel the suite has never seen, with a sidecar giving the tokens' range."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    tokens = keras.Input(shape=(16,), dtype="int32", name="tokens")
    weights = keras.Input(shape=(3,), dtype="float32", name="weights")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(100, 8)(tokens))
    scores = keras.layers.Dense(5, activation="softmax")(keras.layers.Concatenate()([pooled, weights]))
    model = keras.Model([tokens, weights], scores, name=UNSEEN)

    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.int32, name="tokens"),
                                  tf.TensorSpec([None, 3], tf.float32, name="weights")])
    def serve(tokens, weights):
        out = model([tokens, weights], training=False)
        return {"scores": out, "top": tf.argmax(out, axis=1)}

    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(base / "1"), verbose=False)
    # An embedding lookup outside 0..99 fails: the generated inputs must follow the card's range.
    (base / "card.json").write_text(json.dumps({"ranges": {"tokens": [0, 99]}}))
    return base


@pytest.fixture(scope="module")
def unseen_model(tmp_path_factory):
    return export_unseen_model(tmp_path_factory.mktemp("models") / UNSEEN)


def make_bench(arch: str, tmp_path: Path, **variables: str) -> dict:
    """`make bench ARCH=arch VAR=...` in a subprocess; the run's summary."""
    results = tmp_path / "results"
    env = stack_env(SB_RUN_DIR=str(tmp_path / "run"))
    for name in ("SB_MODEL", "SB_DATA", "MODEL", "DATA"):  # only what this test says
        env.pop(name, None)
    cmd = [*MAKE, "bench", f"ARCH={arch}", f"RESULTS={results}", "WARMUP=2", "CONCURRENCY=1", "BATCH=1",
           *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads((results / "latest" / "summary.json").read_text())


def check_every_request_answered(doc: dict, arch: str, n: int, protocol: str = "v2") -> None:
    """Every request answered; a model that is not an image model goes over KServe v2 by default."""
    assert doc["arch"] == arch and doc["interrupted"] is False
    req = doc["requests"]
    assert req["count"] == n and req["ok"] == n and req["errors_by_status"] == {}, req
    assert req["invalid_answers"] == 0 and req["images"] == n
    assert doc["latency_ms"]["p50"] > 0 and doc["throughput_images_per_s"] > 0
    assert doc["protocol"]["name"] == protocol


@pytest.mark.parametrize("arch", ARCHS)
def test_a_model_never_seen_gets_a_result_on_every_architecture(arch, unseen_model, tmp_path):
    doc = make_bench(arch, tmp_path, MODEL=str(unseen_model), N=str(N_SYNTHETIC))
    check_every_request_answered(doc, arch, N_SYNTHETIC)
    card = doc["model_card"]
    assert card["name"] == UNSEEN and card["format"] == "savedmodel"
    assert "tokens int32 [-1, 16]" in card["inputs"] and "weights float32 [-1, 3]" in card["inputs"]
    assert doc["synthetic_inputs"] is True  # random weights on generated inputs: timing only
    assert doc["accuracy"] is None  # no labels: not checked, never a made-up figure


@pytest.mark.parametrize("arch", ARCHS)
def test_the_bundled_tabular_model_scores_its_accuracy_on_every_architecture(arch, tmp_path):
    metrics = json.loads((TABULAR.parent / f"{TABULAR.name}.metrics.json").read_text())
    doc = make_bench(arch, tmp_path, MODEL=str(TABULAR), DATA=str(TABULAR / "test.npz"), N=str(TABULAR_ROWS))
    check_every_request_answered(doc, arch, TABULAR_ROWS)
    assert doc["model_card"]["name"] == TABULAR.name and doc["synthetic_inputs"] is False
    assert doc["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-4)


@pytest.fixture(scope="module")
def mobilenet_classes(cifar_dir):
    """MobileNetV2's own classes for the first test images, in process, one image a call as the runs send them."""
    from servebench.inference import InferenceCore

    core = InferenceCore(MOBILENET)
    images = data.load_test(cifar_dir, limit=N_IMAGES).images
    return [int(core.predict(images[i:i + 1]).classes[0]) for i in range(N_IMAGES)]


@pytest.mark.parametrize("arch", IMAGE_ARCHS)
def test_the_ensembles_mobilenetv2_serves_on_every_architecture(arch, mobilenet_classes, tmp_path):
    doc = make_bench(arch, tmp_path, MODEL=str(MOBILENET), N=str(N_IMAGES))
    if doc["kind"] == "stream":  # frames on one connection: the stream server reports the model it loaded
        assert doc["stream"]["answered"] == N_IMAGES and doc["stream"]["errors"] == 0, doc["stream"]
        assert doc["stack"]["info"]["model"]["name"] == MOBILENET.name
        return
    check_every_request_answered(doc, arch, N_IMAGES, protocol="v1")  # an image model: /v1/predict
    assert doc["model_card"]["name"] == MOBILENET.name and doc["synthetic_inputs"] is False
    # The CNN and MobileNetV2 disagree on about a fifth of the images: the answers say which model served.
    with (tmp_path / "results" / "latest" / "requests.csv").open(newline="") as f:
        served = [int(row["predicted"]) for row in sorted(csv.DictReader(f), key=lambda r: int(r["index"]))]
    assert served == mobilenet_classes
