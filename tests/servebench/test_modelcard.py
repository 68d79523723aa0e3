"""The model card: read from SavedModels, Keras and ONNX files (+ card.json), and the inputs it checks and makes.

The ONNX models are built here with onnx.helper (no TensorFlow); the SavedModel readers run on the
committed CIFAR-10 CNN and MobileNetV2; the Keras file and the bad SavedModels are built by the tests.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from servebench import modelcard
from servebench.modelcard import CardError, InputError, ModelCard, TensorSpec, read_card, synthetic_inputs, \
    validate_inputs
from servebench.settings import REPO_ROOT
from servebench.types import CLASS_NAMES

pytestmark = pytest.mark.unit

CNN = REPO_ROOT / "models" / "cifar10_cnn"
MOBILENET = REPO_ROOT / "models" / "cifar10_mobilenetv2"
IMAGES = TensorSpec("images", "uint8", (None, 32, 32, 3))
IMAGE_CARD = ModelCard("img", 1, "savedmodel", "m/1", (IMAGES,),
                       (TensorSpec("probabilities", "float32", (None, 10)),), CLASS_NAMES, "cifar10")
# Several dtypes and ranks at once: what a protocol meets beyond images.
MIXED_CARD = ModelCard("mixed", 1, "onnx", "m.onnx", (
    TensorSpec("features", "float32", (None, 4)),
    TensorSpec("tokens", "int64", (None, None), low=0, high=99),
    TensorSpec("mask", "bool", (None, None)),
    TensorSpec("pixels", "uint8", (None, 2, 2)),
), (TensorSpec("score", "float32", (None, 3)),))


# ------------------------------------------------------------------ a tiny ONNX model, built here
def tiny_onnx(path, inputs=None, outputs=None, sidecar=None, value_info=None):
    """features float32 [N, 4] @ W (an initializer, listed as a graph input too) -> softmax -> probabilities
    [N, 3]; counts int32 [N, 2] -> identity -> counts_out. ``inputs``/``outputs`` replace the value infos."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((4, 3), 0.1, np.float32), "W")
    nodes = [helper.make_node("MatMul", ["features", "W"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
             helper.make_node("Identity", ["counts"], ["counts_out"])]
    inputs = inputs or [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4]),
                        helper.make_tensor_value_info("counts", TensorProto.INT32, ["N", 2]),
                        helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3])]
    outputs = outputs or [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
                          helper.make_tensor_value_info("counts_out", TensorProto.INT32, ["N", 2])]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    if sidecar is not None:
        path.with_name(path.name + ".card.json").write_text(json.dumps(sidecar))
    return path


def info(name, elem, shape):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, shape)


def test_an_onnx_file_gives_its_graph_inputs_without_the_weights(tmp_path):
    card = read_card(tiny_onnx(tmp_path / "tiny.onnx"))
    assert (card.name, card.version, card.format, card.data) == ("tiny", 1, "onnx", "synthetic")
    assert card.inputs == (TensorSpec("features", "float32", (None, 4)), TensorSpec("counts", "int32", (None, 2)))
    assert [o.name for o in card.outputs] == ["probabilities", "counts_out"]
    assert card.is_classifier and not card.is_image and card.class_names is None


def test_the_sidecar_gives_name_version_classes_data_and_ranges(tmp_path):
    side = {"name": "tiny-v", "version": 7, "class_names": ["a", "b", "c"], "data": "npz:rows.npz",
            "ranges": {"counts": [0, 9]}, "notes": "kept"}
    card = read_card(tiny_onnx(tmp_path / "tiny.onnx", sidecar=side))
    assert (card.name, card.version, card.class_names, card.data) == ("tiny-v", 7, ("a", "b", "c"), "npz:rows.npz")
    assert card.input("counts").value_range() == (0, 9) and card.input("features").value_range() is None
    assert card.extra["notes"] == "kept" and card.extra["home"] == str(tmp_path)
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
    assert modelcard.model_name_for(tmp_path / "tiny.onnx") == "tiny-v"


@pytest.mark.parametrize("side, words", [
    ({"class_names": ["a", "b"]}, "2 class_names, but the model has 3 classes"),
    ({"class_names": "abc"}, "non-empty list of strings"),
    ({"ranges": {"features": [0, 1]}}, "not an integer input"),
    ({"ranges": {"counts": [-1, 2 ** 31]}}, "low <= high"),
    ({"ranges": {"counts": [5, 1]}}, "low <= high"),
    ({"ranges": {"counts": [0.5, 1]}}, "whole numbers"),
    ({"data": "sklearn:iris"}, "one of cifar10, synthetic, npz:"),
    ({"name": "has space"}, "goes into URLs"),
    ({"version": -1}, "whole number >= 0"),
])
def test_a_bad_sidecar_is_named_with_its_problem(tmp_path, side, words):
    model = tiny_onnx(tmp_path / "tiny.onnx", sidecar=side)
    with pytest.raises(CardError, match="tiny.onnx.card.json") as exc:
        read_card(model)
    assert words in str(exc.value)


def test_a_sidecar_that_is_not_a_json_object_is_refused(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    side = tmp_path / "tiny.onnx.card.json"
    for text, words in (("{nope", "not a readable JSON card"), ("[1]", "a card is a JSON object")):
        side.write_text(text)
        with pytest.raises(CardError, match=words):
            read_card(model)


def test_tensors_the_suite_cannot_serve_are_refused_by_name(tmp_path):
    from onnx import TensorProto

    w = info("W", TensorProto.FLOAT, [4, 3])
    out = [info("probabilities", TensorProto.FLOAT, ["N", 3]), info("counts_out", TensorProto.INT32, ["N", 2])]
    cases = [
        ([info("features", TensorProto.FLOAT, [1, 4]), info("counts", TensorProto.INT32, ["N", 2]), w], out,
         "'features' has no batch dimension .*fixed at 1"),
        ([info("features", TensorProto.STRING, ["N", 4]), info("counts", TensorProto.INT32, ["N", 2]), w], out,
         "'features' is string, which the protocols cannot carry"),
        ([info("features", TensorProto.FLOAT, ["N", 4]), info("counts", TensorProto.COMPLEX64, ["N", 2]), w], out,
         "'counts' is complex64"),
        (None, [info("probabilities", TensorProto.BFLOAT16, ["N", 3]), out[1]], "output 'probabilities' is bfloat16"),
        (None, [info("probabilities", TensorProto.FLOAT, []), out[1]], "a scalar"),
        (None, [info("probabilities", TensorProto.FLOAT, None), out[1]], "no known rank"),
    ]
    for i, (inputs, outputs, words) in enumerate(cases):
        path = tiny_onnx(tmp_path / f"bad{i}.onnx", inputs=inputs, outputs=outputs)
        with pytest.raises(CardError, match=words) as exc:
            read_card(path)
        assert str(path) in str(exc.value)


def test_a_sequence_output_is_not_a_tensor(tmp_path):
    from onnx import TensorProto, helper

    seq = helper.make_tensor_sequence_value_info("probabilities", TensorProto.FLOAT, ["N", 3])
    path = tiny_onnx(tmp_path / "seq.onnx", outputs=[seq])
    with pytest.raises(CardError, match="'probabilities' is a sequence_type, not a tensor"):
        read_card(path)


def test_paths_that_are_not_models(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "broken.onnx").write_bytes(b"\x00not onnx at all\xff" * 3)
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    for path, words in [(tmp_path / "missing", "no such file or folder"),
                        (tmp_path / "empty", "not a model: no versioned SavedModel under"),
                        (tmp_path / "notes.txt", "not a model: expected a SavedModel folder"),
                        (tmp_path / "broken.onnx", "not a readable ONNX model"),
                        (tmp_path / "broken.keras", "not a readable Keras model")]:
        with pytest.raises(CardError, match=words) as exc:
            read_card(path)
        assert str(path) in str(exc.value)


def test_the_command_prints_the_card_or_one_error(tmp_path, capsys):
    assert modelcard.main([str(tiny_onnx(tmp_path / "tiny.onnx"))]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"][0]["name"] == "features"
    assert modelcard.main([str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert modelcard.main([]) == 2


# ------------------------------------------------------------------ validate_inputs
def image_batch(n=2):
    return np.zeros((n, 32, 32, 3), np.uint8)


def mixed(n=2, t=5):
    return {"features": np.ones((n, 4), np.float32), "tokens": np.arange(n * t).reshape(n, t) % 100,
            "mask": np.ones((n, t), bool), "pixels": np.full((n, 2, 2), 255, np.uint8)}


def test_valid_inputs_pass_without_a_copy():
    images = image_batch()
    assert validate_inputs(IMAGE_CARD, {"images": images}, 8)["images"] is images
    out = validate_inputs(MIXED_CARD, mixed(), 8)
    assert list(out) == ["features", "tokens", "mask", "pixels"] and out["tokens"].dtype == np.int64


def test_json_lists_convert_when_every_value_fits():
    out = validate_inputs(IMAGE_CARD, {"images": image_batch(1).tolist()}, 8)["images"]
    assert out.dtype == np.uint8 and out.shape == (1, 32, 32, 3) and out.flags.c_contiguous
    doc = json.loads(json.dumps({k: v.tolist() for k, v in mixed().items()}))
    out = validate_inputs(MIXED_CARD, {**doc, "features": [[1, 2, 3, 4], [0.5, 0, 0, 0]]}, 8)
    assert out["features"].dtype == np.float32 and out["mask"].dtype == bool
    transposed = np.asfortranarray(mixed()["features"])
    assert validate_inputs(MIXED_CARD, {**mixed(), "features": transposed}, 8)["features"].flags.c_contiguous


@pytest.mark.parametrize("change, tensor, words, status", [
    ({"images": None}, "images", "missing input tensor 'images'", 400),
    ({"other": image_batch()}, "other", "unknown input tensor 'other'", 400),
    ({"images": np.full((1, 32, 32, 3), 256)}, "images", "holds 256, outside its range 0..255", 400),
    ({"images": np.full((1, 32, 32, 3), -1)}, "images", "holds -1", 400),
    ({"images": np.zeros((1, 32, 32, 3), np.float32)}, "images", "is uint8, got floats", 400),
    ({"images": [["a"]]}, "images", "got strings", 400),
    ({"images": [[1, 2], [3]]}, "images", "not a rectangular array", 400),
    ({"images": [1, None]}, "images", "non-numeric", 400),
    ({"images": np.zeros((32, 32, 3), np.uint8)}, "images", "rank 3 .* expected rank 4", 400),
    ({"images": np.zeros((1, 32, 32, 1), np.uint8)}, "images", r"dimension 3 is 3", 400),
    ({"images": np.zeros((0, 32, 32, 3), np.uint8)}, "images", "empty batch", 400),
    ({"images": image_batch(9)}, "images", "batch too large: 9 rows, the limit is 8", 413),
])
def test_image_inputs_that_do_not_match_name_the_tensor(change, tensor, words, status):
    inputs = {"images": image_batch(), **change}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    with pytest.raises(InputError, match=words) as exc:
        validate_inputs(IMAGE_CARD, inputs, 8)
    assert (exc.value.tensor, exc.value.status) == (tensor, status)


@pytest.mark.parametrize("change, tensor, words", [
    ({"tokens": np.full((2, 5), 100)}, "tokens", "holds 100, outside its range 0..99"),
    ({"tokens": np.zeros((2, 5), np.uint64) + 2 ** 63}, "tokens", "outside its range"),
    ({"features": np.full((2, 4), np.nan, np.float32)}, "features", "NaN, infinity"),
    ({"features": np.full((2, 4), 1e300)}, "features", "too large for float32"),
    ({"features": np.ones((2, 4), np.complex64)}, "features", "complex numbers"),
    ({"mask": np.ones((2, 5), np.uint8)}, "mask", "is bool, got integers"),
    ({"mask": np.ones((3, 5), bool)}, "mask", "batch of 3, tensor 'features' one of 2"),
    ({"pixels": np.zeros((2, 2, 3), np.uint8)}, "pixels", "dimension 2 is 2"),
])
def test_any_tensor_that_does_not_match_is_named(change, tensor, words):
    with pytest.raises(InputError, match=words) as exc:
        validate_inputs(MIXED_CARD, {**mixed(), **change}, 8)
    assert exc.value.tensor == tensor and exc.value.status == 400


def test_inputs_that_are_not_a_mapping_are_refused():
    with pytest.raises(InputError, match="tensors by name"):
        validate_inputs(IMAGE_CARD, [image_batch()], 8)


FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = st.sampled_from(["bool", "uint8", "int8", "int32", "int64", "uint64", "float16", "float32", "float64"])
ANY_ARRAY = DTYPES.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, max_side=6)))
ANY_VALUE = st.one_of(ANY_ARRAY, ANY_ARRAY.map(lambda a: a.tolist()), st.none(), st.text(max_size=5),
                      st.recursive(st.integers() | st.floats(), lambda c: st.lists(c, max_size=4), max_leaves=12))


@FUZZ
@given(st.dictionaries(st.sampled_from(["features", "tokens", "mask", "pixels", "x"]), ANY_VALUE, max_size=5),
       st.sampled_from([1, 2, 6]))
def test_hostile_inputs_are_accepted_as_specified_or_refused_with_a_4xx(inputs, max_batch):
    try:
        out = validate_inputs(MIXED_CARD, inputs, max_batch)
    except InputError as exc:
        assert exc.status in (400, 413) and exc.tensor and str(exc)
        return
    rows = {len(a) for a in out.values()}
    assert len(rows) == 1 and 1 <= rows.pop() <= max_batch
    for spec in MIXED_CARD.inputs:
        arr = out[spec.name]
        assert arr.dtype == spec.np_dtype and arr.ndim == len(spec.shape) and arr.flags.c_contiguous
        assert all(w is None or g == w for g, w in zip(arr.shape, spec.shape))
    assert np.isfinite(out["features"]).all()
    assert out["tokens"].size == 0 or (out["tokens"].min() >= 0 and out["tokens"].max() <= 99)


# ------------------------------------------------------------------ synthetic_inputs
def test_synthetic_inputs_follow_the_specs_and_the_seed():
    a, b, c = (synthetic_inputs(MIXED_CARD, 5, seed) for seed in (3, 3, 4))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["features"], c["features"])
    assert validate_inputs(MIXED_CARD, a, 5).keys() == a.keys()  # what it makes, the checks accept
    assert a["tokens"].shape == (5, modelcard.VARIABLE_DIM) and a["tokens"].max() <= 99
    assert a["pixels"].dtype == np.uint8 and a["mask"].dtype == bool
    assert synthetic_inputs(IMAGE_CARD, 2)["images"].shape == (2, 32, 32, 3)
    with pytest.raises(ValueError):
        synthetic_inputs(IMAGE_CARD, 0)


def test_synthetic_inputs_cover_every_dtype():
    card = ModelCard("all", 1, "onnx", "x", tuple(TensorSpec(dt, dt, (None, 3)) for dt in modelcard.DATATYPES),
                     (TensorSpec("y", "float32", (None,)),))
    out = synthetic_inputs(card, 4, seed=1)
    assert {k: str(v.dtype) for k, v in out.items()} == {dt: dt for dt in modelcard.DATATYPES}
    validate_inputs(card, out, 4)


# ------------------------------------------------------------------ TensorFlow: SavedModels and Keras
def test_the_cnn_card_reads_its_signature_and_sidecar():
    card = read_card(CNN)
    assert (card.name, card.version, card.format, card.source) == ("cifar10_cnn", 1, "savedmodel", str(CNN / "1"))
    assert card.inputs == (IMAGES,)
    assert card.outputs == (TensorSpec("classes", "int64", (None,)), TensorSpec("probabilities", "float32", (None, 10)))
    assert card.class_names == CLASS_NAMES and card.data == "cifar10" and card.is_image
    from servebench.codecs import CIFAR10_CARD  # the protocols' constant card agrees with the model's

    assert (card.inputs, set(card.outputs), card.class_names) == (CIFAR10_CARD.inputs, set(CIFAR10_CARD.outputs),
                                                                   CIFAR10_CARD.class_names)
    for path in (CNN / "1", CNN / "1" / "saved_model.pb"):  # one version, named directly
        assert read_card(path) == card
    assert read_card(CNN, version=1) == card
    with pytest.raises(modelcard.ModelNotFound, match="no SavedModel at .*version 2"):
        read_card(CNN, version=2)
    with pytest.raises(CardError, match="is version 1, not the version 3"):
        read_card(CNN / "1", version=3)


def test_the_mobilenet_card():
    card = read_card(MOBILENET)
    assert card.name == "cifar10_mobilenetv2" and card.image_shape == (32, 32, 3)
    assert card.probabilities.shape == (None, 10) and card.class_names == CLASS_NAMES


def test_a_versioned_folder_serves_its_highest_version(tmp_path):
    import shutil

    for v in (2, 10):
        shutil.copytree(CNN / "1", tmp_path / "m" / str(v))
    (tmp_path / "m" / "junk").mkdir()
    card = read_card(tmp_path / "m")
    assert (card.name, card.version, card.data) == ("m", 10, "synthetic")  # no sidecar: synthetic inputs


@pytest.mark.slow
def test_a_keras_file_gives_its_named_tensors(tmp_path):
    import keras

    counts = keras.Input((3,), dtype="int32", name="counts")
    x = keras.layers.Dense(2, activation="softmax", name="probabilities")(keras.ops.cast(counts, "float32"))
    keras.Model(counts, x).save(tmp_path / "small.keras")
    (tmp_path / "small.keras.card.json").write_text(json.dumps({"ranges": {"counts": [0, 5]}}))
    card = read_card(tmp_path / "small.keras")
    assert (card.name, card.format, card.version) == ("small", "keras", 1)
    assert card.inputs == (TensorSpec("counts", "int32", (None, 3), 0, 5),)
    assert card.outputs == (TensorSpec("probabilities", "float32", (None, 2)),)
    # A Sequential model's output is named by its last layer, the same in every process.
    cnn = read_card(REPO_ROOT / "models" / "cifar10_cnn.keras")
    assert (cnn.inputs[0].name, [o.name for o in cnn.outputs]) == ("images", ["probabilities"])


@pytest.mark.slow
def test_savedmodels_the_suite_cannot_serve(tmp_path):
    import tensorflow as tf

    def save(name, spec):
        module = tf.Module()
        module.f = tf.function(lambda x: {"y": tf.identity(x)}, input_signature=[spec])
        tf.saved_model.save(module, str(tmp_path / name / "1"), signatures={"serving_default": module.f})
        return tmp_path / name

    with pytest.raises(CardError, match="input 'x' has no batch dimension"):
        read_card(save("fixed", tf.TensorSpec([1, 4], tf.float32, name="x")))
    with pytest.raises(CardError, match="input 'x' is string, which the protocols cannot carry"):
        read_card(save("text", tf.TensorSpec([None], tf.string, name="x")))
    with pytest.raises(CardError, match="no known rank"):
        read_card(save("anyrank", tf.TensorSpec(None, tf.float32, name="x")))
    module = tf.Module()
    module.f = tf.function(lambda x: x, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "nosig" / "1"), signatures={"other": module.f})
    with pytest.raises(CardError, match="no 'serving_default' signature .*other"):
        read_card(tmp_path / "nosig")
