"""Triton's model configuration generated from a model card (services/triton/config.py), and the infer
callable over any card: no tritonserver started.

The document is checked against the structure Triton's model-config JSON uses (model_config.proto's
field names, as ``GET /v2/models/<name>/config`` answers); with .venv-triton present, it is also parsed
by the official proto (tritonclient's model_config_pb2) and compared with what PyTriton itself generates
from the bindings the server makes, in a subprocess of that venv.
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from servebench.modelcard import DATATYPES, CardError, ModelCard, TensorSpec
from servebench.settings import REPO_ROOT, Settings
from services.triton import config
from services.triton.declaration import TRITON_VENV

pytestmark = pytest.mark.unit

TRITON_PYTHON = REPO_ROOT / TRITON_VENV / "bin" / "python"
# model_config.proto's DataType names (TYPE_STRING aside, which no card tensor is).
TRITON_TYPES = {"TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16",
                "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64"}
CNN = ModelCard(name="cifar10_cnn", version=1, format="savedmodel", source="models/cifar10_cnn/1",
                inputs=(TensorSpec("images", "uint8", (None, 32, 32, 3)),),
                outputs=(TensorSpec("probabilities", "float32", (None, 10)), TensorSpec("classes", "int64", (None,))))
# Not an image model: two inputs of other dtypes and ranks, one of them batch-only, one variable dimension.
TABULAR = ModelCard(name="tabular", version=3, format="keras", source="tabular.keras",
                    inputs=(TensorSpec("features", "float64", (None, 30)), TensorSpec("flag", "bool", (None,)),
                            TensorSpec("tokens", "int32", (None, None), low=0, high=99)),
                    outputs=(TensorSpec("score", "float32", (None,)), TensorSpec("embedding", "float16", (None, 4, 2))))


def _settings(**knobs) -> Settings:
    return Settings(arch="triton", **knobs)


def test_the_cnn_config_is_the_one_triton_served_before():
    doc = config.model_config(CNN, _settings())
    assert doc["name"] == "cifar10_cnn" and doc["backend"] == "python"
    assert doc["max_batch_size"] == 256
    assert doc["input"] == [{"name": "images", "data_type": "TYPE_UINT8", "dims": [32, 32, 3]}]
    assert doc["output"] == [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10]},
                             {"name": "classes", "data_type": "TYPE_INT64", "dims": [1]}]
    assert "dynamic_batching" not in doc  # batching off: each request runs as it came
    assert doc["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]


def test_every_card_tensor_becomes_a_triton_tensor_without_the_batch():
    doc = config.model_config(TABULAR, _settings(batch_max_size=8, batch_timeout_ms=1.5), name="served")
    assert doc["name"] == "served"
    assert doc["input"] == [{"name": "features", "data_type": "TYPE_FP64", "dims": [30]},
                            {"name": "flag", "data_type": "TYPE_BOOL", "dims": [1]},
                            {"name": "tokens", "data_type": "TYPE_INT32", "dims": [-1]}]
    assert doc["output"] == [{"name": "score", "data_type": "TYPE_FP32", "dims": [1]},
                             {"name": "embedding", "data_type": "TYPE_FP16", "dims": [4, 2]}]
    assert doc["dynamic_batching"] == {"preferred_batch_size": [8], "max_queue_delay_microseconds": 1500}


def test_the_document_has_the_structure_of_triton_model_config_json():
    for card in (CNN, TABULAR):
        doc = config.model_config(card, _settings(batch_max_size=4))
        assert set(doc) <= {"name", "backend", "max_batch_size", "input", "output", "instance_group",
                            "dynamic_batching"}
        assert isinstance(doc["max_batch_size"], int) and doc["max_batch_size"] >= 1
        for entry in doc["input"] + doc["output"]:
            assert set(entry) == {"name", "data_type", "dims"}
            assert entry["data_type"] in TRITON_TYPES
            assert entry["dims"] and all(isinstance(d, int) and (d == -1 or d > 0) for d in entry["dims"])
        assert set(doc["dynamic_batching"]) == {"preferred_batch_size", "max_queue_delay_microseconds"}
        json.dumps(doc)  # what Triton's API answers is JSON


def test_every_card_dtype_has_a_triton_type():
    for dtype in DATATYPES:
        assert config.data_type(TensorSpec("x", dtype, (None, 2))) in TRITON_TYPES


def test_max_batch_size_holds_the_preferred_batch():
    assert config.model_config(CNN, _settings(max_batch=16, batch_max_size=16))["max_batch_size"] == 16


def test_a_tensor_without_a_batch_dimension_is_refused_naming_it():
    card = ModelCard(name="nobatch", version=1, format="onnx", source="m.onnx",
                     inputs=(TensorSpec("x", "float32", (3, 4)),), outputs=(TensorSpec("y", "float32", (None,)),))
    with pytest.raises(CardError, match="tensor x .*batch"):
        config.model_config(card, _settings())


def test_batch_only_tensors_gain_and_lose_their_column():
    request = {"features": np.zeros((2, 30)), "flag": np.array([[True], [False]]),
               "tokens": np.zeros((2, 5), np.int32)}
    inputs = config.from_triton(TABULAR, request)
    assert inputs["flag"].shape == (2,) and inputs["features"].shape == (2, 30)
    outputs = config.to_triton(TABULAR, {"score": np.arange(2, dtype=np.float64),
                                         "embedding": np.zeros((2, 4, 2), np.float32)})
    assert outputs["score"].shape == (2, 1) and outputs["score"].dtype == np.float32
    assert outputs["embedding"].dtype == np.float16
    # ONNX Runtime's int64 outputs are C long long: the same dtype, another numpy type; Triton gets numpy's.
    longlong = config.to_triton(CNN, {"probabilities": np.zeros((1, 10), np.float32),
                                      "classes": np.zeros(1, np.longlong)})["classes"]
    assert longlong.dtype.type is np.dtype("int64").type and np.issubdtype(longlong.dtype, np.int64)


class RecordingCoreDouble:
    """A test double of InferenceCore: its card, and run() answering from the inputs (rows stay traceable)."""

    def __init__(self, card):
        self.card = card
        self.calls = []

    def run(self, inputs):
        self.calls.append({k: v.shape for k, v in inputs.items()})
        n = len(inputs["features"])
        return {"score": inputs["features"][:, 0].astype(np.float32),
                "embedding": np.repeat(inputs["features"][:, :1, None], 8, axis=1).reshape(n, 4, 2)}


def test_the_infer_callable_batches_any_card_and_answers_each_request_its_rows():
    from services.triton.server import infer_function  # plain Python: PyTriton is imported only to serve

    core = RecordingCoreDouble(TABULAR)
    infer = infer_function(core, max_size=4)

    def request(first, n, width=5):
        return {"features": np.arange(first, first + n, dtype=np.float64)[:, None].repeat(30, axis=1),
                "flag": np.ones((n, 1), bool), "tokens": np.zeros((n, width), np.int32)}

    answers = infer([request(0, 1), request(1, 2), request(3, 1, width=7), request(4, 3)])
    # Equal shapes share a call up to 4 items; the 7-wide tokens run alone; nothing is split.
    assert [c["features"][0] for c in core.calls] == [3, 1, 3]
    assert [c["flag"] for c in core.calls] == [(3,), (1,), (3,)]
    for answer, (first, n) in zip(answers, [(0, 1), (1, 2), (3, 1), (4, 3)]):
        np.testing.assert_array_equal(answer["score"][:, 0], np.arange(first, first + n, dtype=np.float32))
        assert answer["score"].shape == (n, 1) and answer["embedding"].shape == (n, 4, 2)


_PYTRITON_CHECK = r"""
import json, sys
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2
from pytriton.model_config.generator import ModelConfigGenerator
from pytriton.model_config.triton_model_config import TensorSpec, TritonModelConfig
from services.triton.server import pytriton_config, pytriton_tensors

doc = json.loads(sys.stdin.read())
ours = json_format.ParseDict(doc, model_config_pb2.ModelConfig())  # strict: an unknown field fails
cfg = pytriton_config(doc)
spec = lambda t: TensorSpec(name=t.name, dtype=t.dtype, shape=t.shape)
generated = ModelConfigGenerator(TritonModelConfig(
    model_name=doc["name"], batching=cfg.batching, max_batch_size=cfg.max_batch_size, batcher=cfg.batcher,
    inputs=[spec(t) for t in pytriton_tensors(doc["input"])],
    outputs=[spec(t) for t in pytriton_tensors(doc["output"])])).get_config()
theirs = json_format.ParseDict(generated, model_config_pb2.ModelConfig())
for field in ("max_batch_size", "input", "output", "dynamic_batching"):
    a, b = getattr(ours, field), getattr(theirs, field)
    assert a == b, (field, a, b)
print(json.dumps(json_format.MessageToDict(ours, preserving_proto_field_name=True)))
"""


@pytest.mark.parametrize("card", [CNN, TABULAR], ids=["cnn", "tabular"])
def test_the_official_proto_parses_it_and_pytriton_generates_the_same(card):
    if not TRITON_PYTHON.exists():
        pytest.skip("no .venv-triton: create it with `make setup-triton`")
    doc = config.model_config(card, _settings(batch_max_size=8, batch_timeout_ms=2))
    out = subprocess.run([str(TRITON_PYTHON), "-c", _PYTRITON_CHECK], input=json.dumps(doc), capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    parsed = json.loads(out.stdout)
    assert [i["name"] for i in parsed["input"]] == [s.name for s in card.inputs]
    assert parsed["dynamic_batching"]["preferred_batch_size"] == [8]
