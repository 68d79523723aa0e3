"""The engines (servebench/engines/): each one on the CNN agrees with TensorFlow; conversion, cache and errors."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from servebench import engines, modelcard
from servebench.engines import EngineError, Threads, cache, tensors
from servebench.modelcard import ModelCard, TensorSpec
from servebench.settings import REPO_ROOT

pytestmark = pytest.mark.unit

MODEL_BASE = REPO_ROOT / "models" / "cifar10_cnn"
CONVERTING = ("onnxruntime", "openvino", "litert")
F32_TOLERANCE = 1e-3
BF16_TOLERANCE = 2e-2


def cnn_card(source=None) -> ModelCard:
    """The CNN's card, its source moved to ``source`` (a copy)."""
    card = modelcard.read_card(MODEL_BASE)
    return card if source is None else dataclasses.replace(card, source=str(source))


# ------------------------------------------------------------------ declarations (no runtime imported)
def test_every_engine_folder_declares_itself():
    assert set(engines.ENGINES) == {"tensorflow", "xla", "onnxruntime", "openvino", "litert"}
    for name, module in engines.engines().items():
        assert module.NAME == name
        assert module.PRECISIONS and module.PRECISIONS[0] == "f32"
        assert set(module.RUNS) | set(module.CONVERTS) <= {"savedmodel", "keras", "onnx"}
        assert callable(module.version) and callable(module.convert) and callable(module.load)
        assert module.version()  # installed: the version every result records


def test_engine_error_is_one_line_naming_the_engine():
    exc = EngineError("litert", "cannot convert x:\n  Traceback ...\n  op Lu")
    assert str(exc) == "engine litert: cannot convert x: Traceback ... op Lu"
    with pytest.raises(EngineError, match="no such engine: choose one of"):
        engines.get("tensorrt")


@pytest.mark.parametrize("engine", ["tensorflow", "xla", "litert"])
def test_an_onnx_model_on_an_engine_that_cannot_run_it_is_refused(engine, tmp_path):
    card = dataclasses.replace(cnn_card(), format="onnx", source=str(tmp_path / "m.onnx"))
    with pytest.raises(EngineError, match=rf"engine {engine}: cannot run a onnx model .*m\.onnx"):
        engines.open_engine(card, engine)


def test_a_precision_the_engine_lacks_is_refused():
    with pytest.raises(EngineError, match="precision 'bf16' is not one of f32"):
        engines.open_engine(cnn_card(), "onnxruntime", precision="bf16")


def test_tensors_match_by_name_then_by_position():
    specs = (TensorSpec("classes", "int64", (None,)), TensorSpec("probabilities", "float32", (None, 10)))
    assert tensors.match("x", "output", specs, ["probabilities:0", "classes:0"]) == [1, 0]
    assert tensors.match("x", "output", specs, [{"Identity", "probabilities"}, {"classes"}]) == [1, 0]
    assert tensors.match("x", "input", specs[:1], ["serving_default_classes:0"]) == [0]
    assert tensors.match("x", "output", specs, ["output_0", "output_1"]) == [0, 1]
    with pytest.raises(EngineError, match="engine x: the converted model has 1 outputs, the card 2"):
        tensors.match("x", "output", specs, ["output_0"])
    assert tensors.as_card(np.array([1, 2], np.int32), specs[0]).dtype == np.int64


def test_the_cache_sits_beside_the_model_under_a_hash_of_its_files(tmp_path):
    model = tmp_path / "m" / "1"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"one")
    card = dataclasses.replace(cnn_card(), source=str(model))
    first = cache.cache_dir(card, "onnxruntime")
    assert first.parent == tmp_path / "m" / ".engines" / "onnxruntime"
    assert cache.cache_dir(card, "onnxruntime") == first
    assert cache.cache_dir(card, "litert").name != first.name  # the engine and its version are hashed in
    (model / "saved_model.pb").write_bytes(b"two")
    assert cache.cache_dir(card, "onnxruntime") != first  # retrained: converted again


def test_a_read_only_model_folder_caches_under_the_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(cache.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    target = tmp_path / "file" / ".engines" / "litert"
    (tmp_path / "file").write_text("a file where the model's folder would be: nothing is written there")
    assert cache._writable(target) == tmp_path / "tmp" / "servebench-engines" / "litert"


# ------------------------------------------------------------------ every engine on the CNN
@pytest.fixture(scope="module")
def model_copy(tmp_path_factory):
    """The CNN copied, so the first load here converts and the repository's cache is left alone."""
    base = tmp_path_factory.mktemp("engines") / "cifar10_cnn"
    shutil.copytree(MODEL_BASE / "1", base / "1")
    return base


@pytest.fixture(scope="module")
def card(model_copy):
    return cnn_card(model_copy / "1")


@pytest.fixture(scope="module")
def images(cifar_dir):
    from servebench import data

    return data.load_test(cifar_dir, limit=200).images


@pytest.fixture(scope="module")
def runners(card):
    """engine[:precision] -> its runner, loaded once (the converting ones convert here, once)."""
    loaded = {}

    def get(key):
        if key not in loaded:
            name, _, precision = key.partition(":")
            loaded[key] = engines.open_engine(card, name, Threads(1, 1), precision or None)
        return loaded[key]
    return get


ALL = ["xla", "onnxruntime", "openvino", "openvino:bf16", "litert"]


@pytest.mark.slow
@pytest.mark.dataset
@pytest.mark.parametrize("key", ALL)
def test_each_engine_answers_like_tensorflow(key, runners, card, images):
    reference = runners("tensorflow")
    runner = runners(key)
    tolerance = BF16_TOLERANCE if key.endswith("bf16") else F32_TOLERANCE
    assert runner.precision == (key.partition(":")[2] or "f32")
    for batch in (1, 37, 200):
        x = {"images": images[:batch]}
        want, got = reference.run(x), runner.run(x)
        assert set(got) == {s.name for s in card.outputs}
        for spec in card.outputs:
            assert got[spec.name].dtype == spec.np_dtype and got[spec.name].shape == want[spec.name].shape
        assert np.abs(got["probabilities"] - want["probabilities"]).max() < tolerance
        if tolerance == F32_TOLERANCE:
            np.testing.assert_array_equal(got["classes"], want["classes"])
        else:  # bf16 may flip a near tie
            assert (got["classes"] != want["classes"]).mean() <= 0.02


@pytest.mark.slow
@pytest.mark.parametrize("engine", CONVERTING)
def test_the_second_load_reuses_the_conversion(engine, runners, card):
    runners(engine)  # converted (or found converted) by now
    folder, fresh = cache.ensure_converted(card, engine)
    assert not fresh and (folder / cache.DONE).is_file()
    assert folder.parent.parent == cache.cache_root(card)


@pytest.mark.slow
def test_threads_are_what_was_asked(runners):
    for key in ("onnxruntime", "openvino", "litert"):
        assert runners(key).threads == Threads(1, 1)


def _unconvertible_model(folder):
    """A SavedModel whose one op (a matrix's LU decomposition) no converter here takes."""
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(lambda x: {"lu": tf.linalg.lu(x)[0]},
                           input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="x")])
    tf.saved_model.save(module, str(folder / "1"), signatures={"serving_default": module.f})
    return ModelCard("lu", 1, "savedmodel", str(folder / "1"), (TensorSpec("x", "float32", (None, 3, 3)),),
                     (TensorSpec("lu", "float32", (None, 3, 3)),))


@pytest.mark.slow
@pytest.mark.parametrize("engine", CONVERTING)
def test_a_model_the_engine_cannot_convert_gets_one_clear_error(engine, tmp_path, card):
    lu = _unconvertible_model(tmp_path / "lu")
    with pytest.raises(EngineError) as caught:
        engines.open_engine(lu, engine)
    message = str(caught.value)
    print(message)
    assert message.startswith(f"engine {engine}: cannot convert {lu.source}: ") and "\n" not in message
    assert not any(p.name.endswith(".tmp") or ".tmp-" in p.name for p in (tmp_path / "lu" / ".engines").rglob("*"))


@pytest.mark.slow
@pytest.mark.dataset
@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_an_onnx_source_runs_as_it_is(engine, runners, card, images, tmp_path):
    converted, _ = cache.ensure_converted(card, "onnxruntime")
    onnx_file = tmp_path / "cnn.onnx"
    shutil.copy(converted / "model.onnx", onnx_file)
    onnx_card = dataclasses.replace(card, format="onnx", source=str(onnx_file))
    runner = engines.open_engine(onnx_card, engine, Threads(1, 1))
    assert runner.artifact == onnx_file and not (tmp_path / ".engines").exists()  # nothing converted
    want, got = runners("tensorflow").run({"images": images}), runner.run({"images": images})
    assert np.abs(got["probabilities"] - want["probabilities"]).max() < F32_TOLERANCE
    np.testing.assert_array_equal(got["classes"], want["classes"])


def test_litert_and_openvino_keep_one_interpreter_per_thread(monkeypatch):
    """An interpreter (an infer request) is not thread-safe: each calling thread gets its own (a test double here)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from servebench.engines import litert

    made = []
    monkeypatch.setattr(litert, "_Interpreter", lambda *args: made.append(threading.get_ident()) or object())
    runner = object.__new__(litert.LiteRtRunner)
    runner.artifact, runner.threads, runner._card, runner._local = None, Threads(), None, threading.local()
    barrier = threading.Barrier(3)

    def call(_):
        barrier.wait()
        return runner._interpreter() is runner._interpreter()

    with ThreadPoolExecutor(3) as pool:
        assert all(pool.map(call, range(3)))
    assert len(made) == 3 == len(set(made))


@pytest.mark.slow
@pytest.mark.dataset
@pytest.mark.parametrize("engine", engines.ENGINES)
def test_a_keras_file_runs_on_every_engine(engine, runners, images, tmp_path_factory):
    """TensorFlow and XLA wrap the model in a tf.function; the converters start from its exported SavedModel."""
    folder = tmp_path_factory.mktemp("keras")
    shutil.copy(REPO_ROOT / "models" / "cifar10_cnn.keras", folder / "cnn.keras")
    keras_card = modelcard.read_card(folder / "cnn.keras")
    (x_spec,), (y_spec,) = keras_card.inputs, keras_card.outputs
    runner = engines.open_engine(keras_card, engine, Threads(1, 1))
    got = runner.run({x_spec.name: images[:37].astype(x_spec.np_dtype)})
    want = runners("tensorflow").run({"images": images[:37]})
    assert list(got) == [y_spec.name] and got[y_spec.name].shape == (37, 10)
    assert np.abs(got[y_spec.name] - want["probabilities"]).max() < F32_TOLERANCE


@pytest.mark.slow
@pytest.mark.dataset
@pytest.mark.parametrize("engine", ["tensorflow", *CONVERTING])
def test_concurrent_calls_get_their_own_answers(engine, runners, images):
    """Servers call one runner from many threads (OpenVINO: a request per thread, LiteRT: an interpreter)."""
    from concurrent.futures import ThreadPoolExecutor

    runner = runners(engine)
    slices = [images[i * 20:(i + 1) * 20 - i] for i in range(8)]  # batch sizes differ: resizes race too
    alone = [runner.run({"images": x})["probabilities"] for x in slices]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda x: runner.run({"images": x})["probabilities"], slices * 3))
    for i, got in enumerate(together):
        np.testing.assert_allclose(got, alone[i % 8], atol=1e-6)


# ------------------------------------------------------------------ make engines (python -m servebench.engines)
@pytest.mark.slow
def test_make_engines_converts_once_then_finds_the_cache(tmp_path, capsys):
    from servebench.engines.__main__ import main

    model = tmp_path / "breast_cancer_mlp"
    shutil.copytree(REPO_ROOT / "models" / "breast_cancer_mlp", model, ignore=shutil.ignore_patterns(".engines"))
    assert main(["--model", str(model), "--engine", "onnxruntime"]) == 0
    assert "converted into" in capsys.readouterr().out
    assert main(["--model", str(model), "--engine", "onnxruntime"]) == 0
    assert "already converted in" in capsys.readouterr().out
    assert main(["--model", str(tmp_path / "nothing-here")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing-here" in err[0]
