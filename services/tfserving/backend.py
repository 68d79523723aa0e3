"""The front end's backend for the TF Serving architectures (REST and gRPC)."""
from __future__ import annotations

import numpy as np

from servebench import endpoint, registry
from servebench.endpoint import InferenceFailed, Inferred
from servebench.modelcard import describe
from servebench.settings import Settings
from services.frontend.backends import RemoteBackend


def grpc_carries(card) -> bool:
    """What servebench.tfserving's gRPC client sends and reads: one uint8 ``images`` input, and
    ``probabilities`` and ``classes`` back (the default model's signature)."""
    names = {spec.name for spec in card.outputs}
    return (len(card.inputs) == 1 and card.inputs[0].name == "images" and card.inputs[0].dtype == "uint8"
            and {"probabilities", "classes"} <= names)


class TFServingBackend(RemoteBackend):
    """TensorFlow Serving: its own REST requests are passed on as is (REST arch); anything else is
    decoded here and sent over REST or gRPC in TF Serving's formats, with the model card's tensors."""

    infers_tensors = True

    def __init__(self, settings: Settings):
        from servebench import tfserving

        super().__init__(settings)
        self._error_type = tfserving.TFServingError
        self.grpc = registry.get(settings.arch).protocol == "grpc"
        # The model as models.config names it (services/tfserving/config.py): the stack's model name.
        if self.grpc:
            self.client = tfserving.GrpcClient(self.address, model=self.model_name, timeout_s=settings.backend_timeout_s)
        else:
            host, port = self.address.rsplit(":", 1)
            self.client = tfserving.RestClient(host, int(port), model=self.model_name,
                                               timeout_s=settings.backend_timeout_s,
                                               pool_size=settings.backend_pool_size)
            self.speaks = frozenset({"tfserving"})
        # TF Serving always serves REST too; its model-status endpoint is the health check for both.
        self.http = self._upstream(settings, settings.tfserving_rest_port)
        self._health = tfserving.RestClient(settings.backend_host, settings.tfserving_rest_port, model=self.model_name,
                                            pool_size=1)

    def forward(self, method, path, body, headers) -> endpoint.Reply:
        return self.http.forward(method, path, body, headers)

    def infer(self, inputs: dict[str, np.ndarray]) -> Inferred:
        try:
            if self.grpc:
                if not grpc_carries(self.card):
                    raise InferenceFailed(400, f"backend {self.name}: its gRPC client carries the default model's "
                                          "signature only (images uint8 -> probabilities, classes), and "
                                          f"{self.card.name} takes {describe(self.card.inputs)}: use "
                                          "ARCH=tfserving-rest", backend=self.name)
                outputs, forward_ms = self.client.predict(inputs[self.card.inputs[0].name])
            else:
                outputs, forward_ms = self.client.infer(inputs, self.card)
        except self._error_type as exc:
            # A 4xx is about the request and TF Serving's words help; a 5xx names only the backend.
            what = exc.detail if exc.status < 500 else ("timed out" if exc.status == 504 else "failed or unreachable")
            raise InferenceFailed(exc.status, f"backend {self.name}: {what}", backend=self.name) from None
        return Inferred(outputs, endpoint.timing_entry("forward", forward_ms))

    def health(self) -> bool:
        return bool(self._health.health())

    def info(self) -> dict:
        return {}

    def close(self) -> None:
        self.client.close()
        self._health.close()
        self.http.close()
