"""The ensemble's members (models/resnet.py, models/mobilenet.py): their builders, their committed
SavedModels (the uint8 signature every server calls), their accuracy, and the in-process ensemble."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models import families, mobilenet, resnet
from servebench.inference import find_version
from servebench.settings import REPO_ROOT
from services.ensemble.accuracy import GAIN_MIN_POINTS, MEMBER_MIN
from services.ensemble.combine import average
from services.ensemble.members import MEMBERS

pytestmark = pytest.mark.unit
MODELS_DIR = REPO_ROOT / "models"


# Depends on `core`: it sets TensorFlow's thread counts, which only the first TF op may do.
@pytest.fixture(scope="module")
def cores(core):
    from services.ensemble.inprocess import load_cores

    return load_cores()


@pytest.mark.parametrize("module,params", [(resnet, (250_000, 300_000)), (mobilenet, (200_000, 300_000))])
def test_the_members_take_raw_pixels_and_give_ten_probabilities(core, module, params):
    model = module.build()
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert model.layers[1].name == "scale"  # scaling in the graph: callers send 0-255 pixels
    assert params[0] <= model.count_params() <= params[1]
    assert module.NAME in families.BUILDERS


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_each_member_is_a_committed_versioned_savedmodel_with_the_uint8_signature(cores, name):
    path = find_version(MODELS_DIR / MEMBERS[name])
    assert path.name == "1"
    size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    assert size_mb < 25  # small enough to commit
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    pred = cores[name].predict(images)
    assert pred.probabilities.shape == (3, 10) and pred.probabilities.dtype == np.float32
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(pred.classes, pred.probabilities.argmax(axis=1))


def test_the_accuracy_bars_hold_in_the_committed_metrics():
    doc = json.loads((MODELS_DIR / "ensemble.metrics.json").read_text())
    assert doc["test_images"] == 10_000
    for m in doc["members"].values():
        assert m["test_accuracy"] >= MEMBER_MIN, m
    best = max(m["test_accuracy"] for m in doc["members"].values())
    assert doc["ensemble"]["test_accuracy"] >= best + GAIN_MIN_POINTS / 100 - 1e-9
    assert doc["gain_points_over_best"] >= GAIN_MIN_POINTS


def test_in_process_variants_give_the_average_of_the_members(cores, test_split):
    from services.ensemble.inprocess import ensemble

    images = test_split.images[:16]
    want = average([c.predict(images) for c in cores.values()])
    for variant in ("inprocess-serial", "inprocess-threads"):
        ens = ensemble(cores, variant)
        try:
            got = ens(images)
        finally:
            ens.close()
        np.testing.assert_allclose(got.prediction.probabilities, want.probabilities, rtol=1e-6, atol=1e-7)
        assert got.used == list(MEMBERS)


def test_training_picks_the_model_by_name(tmp_path):
    from models import train

    args = train.parse_args(["--model", resnet.NAME])
    assert args.out == MODELS_DIR / resnet.NAME and args.work_dir == MODELS_DIR / ".train" / resnet.NAME
    assert train.parse_args([]).work_dir == MODELS_DIR / ".train"  # the Table 1 CNN keeps its folder
