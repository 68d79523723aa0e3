"""The front end's TF Serving backend for any model: the card's tensors go to TF Serving's REST client under
the stack's model name; the gRPC client, which carries the default signature only, refuses another model with
a 4xx that says what to use (TF Serving cannot run here: its clients are test doubles)."""
from __future__ import annotations

import numpy as np
import pytest

from servebench.endpoint import InferenceFailed
from servebench.modelcard import ModelCard, TensorSpec
from servebench.settings import REPO_ROOT, Settings
from services.frontend import backends as frontend_backends
from services.tfserving import backend as tfs_backend

pytestmark = pytest.mark.unit

TABULAR = ModelCard(name="breast_cancer_mlp", version=1, format="savedmodel", source="models/breast_cancer_mlp/1",
                    inputs=(TensorSpec("features", "float32", (None, 30)),),
                    outputs=(TensorSpec("classes", "int64", (None,)), TensorSpec("probabilities", "float32", (None, 2))))


class ClientDouble:
    """A test double of servebench.tfserving's clients: records the call, answers zeros."""

    def __init__(self):
        self.calls = []

    def infer(self, inputs, card):
        self.calls.append(("infer", inputs, card))
        n = len(next(iter(inputs.values())))
        return {"classes": np.zeros(n, np.int64), "probabilities": np.zeros((n, 2), np.float32)}, 1.5

    def predict(self, images):
        self.calls.append(("predict", images, None))
        raise AssertionError("the gRPC client was called for a model it cannot carry")


@pytest.fixture(params=["tfserving-rest", "tfserving-grpc"])
def backend(request, monkeypatch):
    monkeypatch.setattr(frontend_backends, "read_card", lambda settings: TABULAR)
    settings = Settings(arch=request.param, model_base=REPO_ROOT / "models" / "cifar10_cnn", model_name="tabular")
    b = tfs_backend.TFServingBackend(settings)
    # The name models.config gives the model (the stack's), not the default model's.
    addressed = b.client.model if b.grpc else b.client._predict_path
    assert "tabular" in addressed and b._health._status_path.endswith("/models/tabular")
    real, b.client = b.client, ClientDouble()
    yield b
    b.client = real
    b.close()


def test_any_model_goes_over_rest_and_grpc_refuses_it(backend):
    inputs = {"features": np.ones((3, 30), np.float32)}
    if not backend.grpc:
        got = backend.infer(inputs)
        ((kind, sent, card),) = backend.client.calls
        assert kind == "infer" and sent is inputs and card is TABULAR
        assert got.outputs["probabilities"].shape == (3, 2) and "forward" in got.timing
        return
    with pytest.raises(InferenceFailed) as err:
        backend.infer(inputs)
    assert err.value.status == 400 and "breast_cancer_mlp" in str(err.value) and "tfserving-rest" in str(err.value)
    assert backend.client.calls == []


def test_the_grpc_client_carries_the_default_signature():
    from servebench.codecs import CIFAR10_CARD

    assert tfs_backend.grpc_carries(CIFAR10_CARD) and not tfs_backend.grpc_carries(TABULAR)
