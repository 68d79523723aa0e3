"""The inputs of a run: a DATA .npz checked against the card, the card's own data, synthetic rows, and
the settings (SB_MODEL, SB_DATA) checked together before any server starts."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from servebench import data as cifar10
from servebench import model_data
from servebench.model_data import ModelInputs, check_model, load_inputs
from servebench.modelcard import CardError, ModelCard, TensorSpec, read_card
from servebench.settings import REPO_ROOT, Settings
from tests.servebench.test_modelcard import IMAGE_CARD, MIXED_CARD, tiny_onnx

pytestmark = pytest.mark.unit

ROWS = 6


@pytest.fixture
def tiny(tmp_path):
    """A tiny ONNX classifier (features float32 [N, 4], counts int32 [N, 2] in 0..9; 3 classes) and its card."""
    path = tiny_onnx(tmp_path / "tiny.onnx", sidecar={"class_names": ["a", "b", "c"], "ranges": {"counts": [0, 9]}})
    return path, read_card(path)


def rows(n=ROWS, **change):
    rng = np.random.default_rng(0)
    arrays = {"features": rng.standard_normal((n, 4)).astype(np.float32),
              "counts": rng.integers(0, 10, (n, 2)).astype(np.int32), "labels": np.arange(n) % 3}
    return {k: v for k, v in {**arrays, **change}.items() if v is not None}


def npz(tmp_path, name="rows.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------ ModelInputs
def test_rows_wrap_around_and_keep_their_labels():
    inputs = ModelInputs({"x": np.arange(5)[:, None], "y": np.arange(5) * 10}, np.arange(5), False, "f.npz")
    assert len(inputs) == 5 and inputs.note == ""
    assert inputs.rows(1, 3)["y"].tolist() == [10, 20]
    assert inputs.rows(4, 7)["x"].ravel().tolist() == [4, 0, 1] and inputs.label_rows(4, 7).tolist() == [4, 0, 1]
    assert len(inputs.take(12)) == 12 and inputs.take(2).labels.tolist() == [0, 1]
    assert inputs.record() == {"source": "f.npz", "rows": 5, "labels": True, "synthetic": False}


# ------------------------------------------------------------------ DATA=.npz
def test_a_matching_npz_gives_its_inputs_and_labels(tmp_path, tiny):
    _, card = tiny
    found = load_inputs(card, npz(tmp_path, **rows()))
    assert len(found) == ROWS and not found.synthetic and found.source == str(tmp_path / "rows.npz")
    assert list(found.arrays) == ["features", "counts"] and found.labels.dtype == np.int64
    assert len(load_inputs(card, npz(tmp_path, **rows()), n=4)) == 4
    assert load_inputs(card, npz(tmp_path, **rows(labels=None))).labels is None


@pytest.mark.parametrize("change, words", [
    ({"counts": None}, "no array 'counts' for the input tensor counts int32 \\[-1, 2\\]"),
    ({"extra": np.zeros(ROWS)}, "array\\(s\\) 'extra' match no input of tiny"),
    ({"counts": np.zeros((ROWS, 2), np.int64)}, "array 'counts' is int64, the input tensor is counts int32"),
    ({"features": np.zeros((ROWS, 5), np.float32)}, "array 'features': .*dimension 1 is 4"),
    ({"features": np.zeros((ROWS, 4, 1), np.float32)}, "array 'features': .*rank 3"),
    ({"features": np.zeros((ROWS + 1, 4), np.float32)}, "array 'counts': .*batch of 6, tensor 'features' one of 7"),
    ({"features": np.zeros((0, 4), np.float32), "counts": np.zeros((0, 2), np.int32)}, "empty batch"),
    ({"counts": np.full((ROWS, 2), 10, np.int32)}, "array 'counts': .*holds 10, outside its range 0..9"),
    ({"features": np.full((ROWS, 4), np.inf, np.float32)}, "array 'features': .*NaN, infinity"),
    ({"labels": np.arange(ROWS + 1)}, "array 'labels' has 7 labels for 6 rows"),
    ({"labels": np.zeros(ROWS, np.float32)}, "array 'labels' is float32 .*whole class numbers"),
    ({"labels": np.full(ROWS, 3)}, "array 'labels' holds 3..3; the model's classes are 0..2"),
])
def test_an_npz_that_does_not_match_names_the_file_and_the_array(tmp_path, tiny, change, words):
    path = npz(tmp_path, **rows(**change))
    with pytest.raises(CardError, match=words) as exc:
        load_inputs(tiny[1], path)
    assert str(path) in str(exc.value)


def test_files_that_are_not_an_npz(tmp_path, tiny):
    card = tiny[1]
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("hello")
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"features": 1}))
    np.savez(tmp_path / "objects.npz", features=np.array([{"a": 1}], dtype=object), counts=np.zeros((1, 2), np.int32))
    for name, words in [("missing.npz", "no such data file"), ("one.npy", "a .npy holds one unnamed array"),
                        ("text.npz", "not a readable .npz"), ("pickled.npz", "not a readable .npz"),
                        ("objects.npz", "unreadable")]:
        with pytest.raises(CardError, match=words) as exc:
            load_inputs(card, tmp_path / name)
        assert name in str(exc.value)


def test_labels_for_a_model_that_is_not_a_classifier_are_refused(tmp_path):
    card = ModelCard("reg", 1, "onnx", str(tmp_path / "reg.onnx"), (TensorSpec("x", "float32", (None, 2)),),
                     (TensorSpec("y", "float32", (None,)),))
    with pytest.raises(CardError, match="reg is not a classifier"):
        load_inputs(card, npz(tmp_path, x=np.zeros((2, 2), np.float32), labels=np.zeros(2, np.int64)))


# ------------------------------------------------------------------ the card's own data
def test_the_card_data_npz_is_relative_to_the_model(tmp_path):
    path = tiny_onnx(tmp_path / "tiny.onnx", sidecar={"data": "npz:data/test.npz", "ranges": {"counts": [0, 9]}})
    (tmp_path / "data").mkdir()
    npz(tmp_path / "data", "test.npz", **rows(labels=None))
    found = load_inputs(read_card(path))
    assert found.source == str(tmp_path / "data" / "test.npz") and len(found) == ROWS and found.labels is None


def test_synthetic_inputs_say_so_and_follow_the_seed():
    card = MIXED_CARD
    a, b = load_inputs(card, n=7, seed=2), load_inputs(card, n=7, seed=2)
    assert a.synthetic and a.note == "synthetic inputs" and a.source == "synthetic inputs (seed 2)"
    assert len(a) == 7 and a.labels is None and np.array_equal(a.arrays["tokens"], b.arrays["tokens"])
    assert len(load_inputs(card)) == model_data.SYNTHETIC_ROWS


def test_cifar10_is_the_default_models_data(monkeypatch):
    images, labels = np.zeros((4, 32, 32, 3), np.uint8), np.arange(4)
    monkeypatch.setattr(cifar10, "load_test", lambda limit=None: cifar10.Split(images[:limit], labels[:limit], "t"))
    found = load_inputs(IMAGE_CARD, n=3)
    assert list(found.arrays) == ["images"] and len(found) == 3 and found.labels.tolist() == [0, 1, 2]
    with pytest.raises(CardError, match="data 'cifar10' is uint8 images .* features float32"):
        load_inputs(ModelCard("x", 1, "onnx", "x.onnx", MIXED_CARD.inputs, MIXED_CARD.outputs, data="cifar10"))


# ------------------------------------------------------------------ SB_MODEL, SB_DATA, check_model
def test_sb_model_sets_the_model_base_and_the_name(tmp_path, tiny, monkeypatch):
    path, _ = tiny
    s = Settings.given(model=str(path))
    assert s.model_base == path and s.model_name == "tiny" and s.data is None
    assert "model" not in s.recorded() and "data" not in s.recorded() and s.recorded()["model_name"] == "tiny"
    assert Settings.given(model=str(path), model_base=str(REPO_ROOT / "models" / "cifar10_cnn")).model_name == \
        "cifar10_cnn"  # the runtime's SB_MODEL_BASE for one service wins
    assert Settings.given(model="", data="").model_name == "cifar10_cnn"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SB_MODEL", "tiny.onnx")
    monkeypatch.setenv("SB_DATA", "rows.npz")
    s = Settings()
    assert s.model_base == path and s.data.name == "rows.npz"
    (tmp_path / "tiny.onnx.card.json").write_text(json.dumps({"name": "renamed"}))
    assert Settings().model_name == "renamed"


def test_the_settings_name_a_model_as_its_card_does(tmp_path, tiny):
    from servebench import modelcard, settings

    (tmp_path / "base" / "4").mkdir(parents=True)
    (tmp_path / "base" / "4" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "named").mkdir()
    (tmp_path / "named" / "card.json").write_text(json.dumps({"name": "given"}))
    (tmp_path / "bad.onnx.card.json").write_text("[")
    for path in (tiny[0], tmp_path / "base", tmp_path / "base" / "4", tmp_path / "base" / "4" / "saved_model.pb",
                 tmp_path / "named", tmp_path / "bad.onnx", tmp_path / "missing", REPO_ROOT / "models" / "cifar10_cnn"):
        assert settings.model_name_for(path) == modelcard.model_name_for(path), path
    assert settings.model_name_for(tmp_path / "base" / "4") == "base"
    assert settings.model_name_for(tmp_path / "named") == "given"


def test_check_model_reads_the_card_and_its_inputs_before_anything_starts(tmp_path, tiny):
    path, _ = tiny
    data = npz(tmp_path, **rows())
    card, inputs = check_model(Settings.given(model=str(path), data=str(data)))
    assert card.name == "tiny" and len(inputs) == ROWS and inputs.labels is not None
    with pytest.raises(CardError, match="no such data file"):
        check_model(Settings.given(model=str(path), data=str(tmp_path / "nope.npz")))
    with pytest.raises(CardError, match="no such file or folder"):
        check_model(Settings.given(model=str(tmp_path / "nope")))
    with pytest.raises(CardError, match="its card names it 'tiny', but the settings serve 'other'"):
        check_model(Settings.given(model=str(path), model_name="other"))
