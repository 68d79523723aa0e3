"""The endpoint serving any model by its card, with a test double of the inference core.

Every protocol decodes the card's tensors, the target is given the inputs by
name and answers the outputs by name, /v1/predict serves image models only
(any other model gets a 4xx naming the protocol to use), metadata comes from
the card, batching works for any model whose first dimension is the batch, and
a target written for the default model alone (images in, a Prediction out)
still serves.
"""
from __future__ import annotations

import json
import random
import threading

import numpy as np
import pytest

from servebench import codecs, endpoint, kserve, tfserving
from servebench.batching import Batcher
from servebench.modelcard import ModelCard, TensorSpec
from servebench.types import Prediction
from tests.servebench import spec_cards
from tests.servebench.spec_cards import CARD_NAMES

pytestmark = pytest.mark.unit


class TensorCoreDouble:
    """A test double of servebench.inference.InferenceCore: answers each output from the rows' sums, records batches."""

    version = 3

    def __init__(self, card: ModelCard, fail: bool = False):
        self.card, self.name, self.fail = card, card.name, fail
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def run(self, inputs: dict) -> dict:
        if self.fail:
            raise RuntimeError("model down")
        n = len(next(iter(inputs.values())))
        with self.lock:
            self.batches.append(n)
        total = sum(arr.reshape(n, -1).astype(np.float64).sum(axis=1) for arr in inputs.values())
        found = {}
        for spec in self.card.outputs:
            shape = (n, *(5 if d is None else d for d in spec.item_shape))
            base = (total % 7).reshape(n, *([1] * (len(shape) - 1)))
            found[spec.name] = (np.broadcast_to(base, shape) + np.arange(int(np.prod(shape[1:])) or 1).reshape(shape[1:] or ())
                                ).astype(spec.dtype)
        if self.card.probabilities is not None and "classes" in found:
            found["classes"] = found[self.card.probabilities.name].argmax(axis=1).astype(self.card.output("classes").dtype)
        return found

    def timed_run(self, inputs: dict):
        return self.run(inputs), 0.5

    def info(self) -> dict:
        return {"name": self.name, "version": self.version}


@pytest.fixture(params=CARD_NAMES)
def card(request):
    return spec_cards.card(request.param)


def call(target, path: str, body: bytes = b"", headers=None, method: str = "POST") -> endpoint.Reply:
    return endpoint.handle(target, method, path, body, headers or {})


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_v2_infer_answers_the_cards_outputs(card, binary):
    core = TensorCoreDouble(card)
    target = endpoint.LocalModel(core, 8)
    arrays = spec_cards.inputs(card, 3)
    body, headers = kserve.encode_infer_request(arrays, card, binary=binary, binary_outputs=binary)
    reply = call(target, f"/v2/models/{card.name}/infer", body, headers)
    assert reply.status == 200, reply.body[:300]
    assert "model;dur=0.500" in reply.timing and "batch;desc=3" in reply.timing and "decode;dur=" in reply.timing
    got = kserve.decode_infer_response(reply.body, dict(reply.headers), card)
    want = core.run(arrays)
    for spec in card.outputs:
        np.testing.assert_array_equal(got[spec.name], want[spec.name])


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columnar"])
def test_tfserving_predict_answers_the_cards_outputs(card, columnar):
    core = TensorCoreDouble(card)
    arrays = spec_cards.inputs(card, 2)
    lists = {name: arr.tolist() for name, arr in arrays.items()}
    doc = {"inputs": lists} if columnar else {"instances": [{k: v[i] for k, v in lists.items()} for i in range(2)]}
    reply = call(endpoint.LocalModel(core, 8), f"/v1/models/{card.name}:predict", json.dumps(doc).encode())
    assert reply.status == 200, reply.body[:300]
    got = tfserving.decode_predict_response(reply.body, card)
    want = core.run(arrays)
    for spec in card.outputs:
        np.testing.assert_array_equal(got[spec.name], want[spec.name])


def test_v1_serves_image_models_and_names_v2_to_the_others(card):
    target = endpoint.LocalModel(TensorCoreDouble(card), 8)
    if not card.is_image:
        reply = call(target, "/v1/predict", b"{}", {"Content-Type": codecs.JSON})
        assert reply.status == 400
        message = json.loads(reply.body)["error"]
        assert f"/v2/models/{card.name}/infer" in message and "not an image model" in message
        return
    images = spec_cards.inputs(card, 2)[card.inputs[0].name]
    body, content_type = codecs.encode(images, "raw")
    reply = call(target, "/v1/predict", body, {"Content-Type": content_type})
    assert reply.status == 200
    pred = codecs.decode_predictions(reply.body)
    assert len(pred.classes) == 2 and json.loads(reply.body)["model"] == {"name": card.name, "version": 3}
    assert json.loads(reply.body)["predictions"][0]["class_name"] == card.class_names[pred.classes[0]]


SMALL_IMAGES = ModelCard(
    name="tiny_gray", version=1, format="onnx", source="(built in the test)",
    inputs=(TensorSpec("pixels", "uint8", (None, 8, 6, 1)),),
    outputs=(TensorSpec("scores", "float32", (None, 3)),), class_names=None)
IMAGE_FEATURES = ModelCard(
    name="embedder", version=1, format="keras", source="(built in the test)",
    inputs=(TensorSpec("images", "uint8", (None, 4, 4, 3)),),
    outputs=(TensorSpec("embedding", "float32", (None, 2, 2)),), class_names=None)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_v1_takes_the_image_shape_from_the_card(codec):
    target = endpoint.LocalModel(TensorCoreDouble(SMALL_IMAGES), 8)
    images = np.arange(2 * 48, dtype=np.uint8).reshape(2, 8, 6, 1)
    body, content_type = codecs.encode(images, codec)
    reply = call(target, "/v1/predict", body, {"Content-Type": content_type})
    assert reply.status == 200, reply.body
    rows = json.loads(reply.body)["predictions"]
    assert len(rows) == 2 and "class_name" not in rows[0] and len(rows[0]["probabilities"]) == 3
    if codec != "raw":  # raw bytes carry no shape: 3072 of them are 64 such images
        cifar = codecs.encode(np.zeros((1, 32, 32, 3), np.uint8), codec)
        reply = call(target, "/v1/predict", cifar[0], {"Content-Type": cifar[1]})
        assert reply.status == 400 and "[batch, 8, 6, 1]" in json.loads(reply.body)["error"]


def test_v1_answers_an_image_model_that_is_no_classifier_with_its_outputs():
    target = endpoint.LocalModel(TensorCoreDouble(IMAGE_FEATURES), 8)
    body, content_type = codecs.encode(np.ones((2, 4, 4, 3), np.uint8), "raw")
    reply = call(target, "/v1/predict", body, {"Content-Type": content_type})
    assert reply.status == 200
    rows = json.loads(reply.body)["predictions"]
    assert len(rows) == 2 and np.asarray(rows[0]["embedding"]).shape == (2, 2)


def test_metadata_and_config_are_the_cards(card):
    target = endpoint.LocalModel(TensorCoreDouble(card), 16)
    meta = json.loads(call(target, f"/v2/models/{card.name}", method="GET").body)
    assert meta == kserve.model_metadata(3, card)
    config = json.loads(call(target, f"/v2/models/{card.name}/config", method="GET").body)
    assert config == kserve.model_config(16, card=card)
    tf_meta = json.loads(call(target, f"/v1/models/{card.name}/metadata", method="GET").body)
    assert tf_meta == tfserving.model_metadata(3, card)
    assert call(target, "/v2/models/not_this_one/infer").status == 404


def test_hostile_bodies_are_a_4xx_on_every_protocol(card):
    target = endpoint.LocalModel(TensorCoreDouble(card), 4)
    rng = random.Random(20261202)
    arrays = spec_cards.inputs(card, 2)
    valid = [kserve.encode_infer_request(arrays, card, binary=True), kserve.encode_infer_request(arrays, card, binary=False),
             (tfserving.encode_predict_request(arrays, card), {})]
    paths = [f"/v2/models/{card.name}/infer"] * 2 + [f"/v1/models/{card.name}:predict"]
    for _ in range(150):
        k = rng.randrange(3)
        body, headers = valid[k]
        cut = rng.randrange(len(body))
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
        mutated = body[:cut] + junk + body[cut + rng.randrange(3):]
        reply = call(target, paths[k], mutated, headers)
        assert reply.status == 200 or 400 <= reply.status < 500, (reply.status, reply.body[:300])
        assert reply.status == 200 or json.loads(reply.body)["error"]


def test_a_failing_model_is_a_500_naming_it_on_every_protocol():
    card = spec_cards.card("mixed")
    target = endpoint.LocalModel(TensorCoreDouble(card, fail=True), 4)
    body, headers = kserve.encode_infer_request(spec_cards.inputs(card, 1), card)
    reply = call(target, f"/v2/models/{card.name}/infer", body, headers)
    assert reply.status == 500 and json.loads(reply.body) == {"error": "inference failed: RuntimeError"}


# ---------------------------------------------------------------- batching any model
def test_batching_any_model_answers_each_request_its_own_rows(card):
    core = TensorCoreDouble(card)
    target = endpoint.LocalModel(core, 8, batch_max_size=8, batch_timeout_ms=50)
    requests = [spec_cards.inputs(card, 1 + i % 3, seed=i) for i in range(6)]
    replies = [None] * len(requests)

    def send(i):
        body, headers = kserve.encode_infer_request(requests[i], card)
        replies[i] = call(target, f"/v2/models/{card.name}/infer", body, headers)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target.close()
    assert max(core.batches) > 3  # some requests shared a model call
    for arrays, reply in zip(requests, replies):
        assert reply.status == 200 and "queue;dur=" in reply.timing
        got = kserve.decode_infer_response(reply.body, dict(reply.headers), card)
        want = TensorCoreDouble(card).run(arrays)
        for spec in card.outputs:
            np.testing.assert_array_equal(got[spec.name], want[spec.name])


def test_batcher_refuses_an_output_without_the_batch_dimension():
    batcher = Batcher(lambda inputs: {"total": np.zeros(1)}, 4, 20)
    try:
        futures = [batcher.submit({"x": np.zeros((1, 2))}), batcher.submit({"x": np.zeros((2, 2))})]
        for future in futures:
            with pytest.raises(ValueError, match="not the batch"):
                future.result(timeout=5)
    finally:
        batcher.close()


# ---------------------------------------------------------------- targets written for the default model alone
class PredictingTargetDouble:
    """A test double of a pre-card target: no card, infer(images) -> Inferred(Prediction)."""

    speaks, max_batch, model_name = frozenset(), 8, "cifar10_cnn"

    def model_version(self):
        return 1

    def batching(self):
        return 1, 0.0

    def ready(self):
        return True

    def infer(self, images):
        assert images.shape[1:] == (32, 32, 3)
        probs = np.full((len(images), 10), 0.1, np.float32)
        return endpoint.Inferred(Prediction(classes=np.full(len(images), 4), probabilities=probs), "")


def test_a_target_without_a_card_serves_the_default_model():
    images = np.zeros((2, 32, 32, 3), np.uint8)
    target = PredictingTargetDouble()
    reply = call(target, "/v1/predict", *codecs.encode(images, "raw")[:1], {"Content-Type": codecs.OCTET})
    assert reply.status == 200 and codecs.decode_predictions(reply.body).classes.tolist() == [4, 4]
    body, headers = kserve.encode_infer_request(images)
    reply = call(target, "/v2/models/cifar10_cnn/infer", body, headers)
    assert reply.status == 200 and kserve.decode_infer_response(reply.body, dict(reply.headers)).classes.tolist() == [4, 4]


def test_an_answer_by_name_still_reads_as_a_prediction():
    probs = np.array([[0.1, 0.9], [0.7, 0.3]], np.float32)
    assert endpoint.Inferred({"probabilities": probs}, "").prediction.classes.tolist() == [1, 0]
    got = endpoint.Inferred({"probabilities": probs, "classes": np.array([[1], [1]])}, "").prediction
    assert got.classes.tolist() == [1, 1]  # a batched scalar [n, 1], as Triton answers it
