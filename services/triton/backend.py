"""The front end's backend for the triton architecture."""
from __future__ import annotations

import time

import numpy as np

from servebench import endpoint, kserve
from servebench.endpoint import InferenceFailed, Inferred
from servebench.settings import Settings
from services.frontend.backends import RemoteBackend, UpstreamFailed


class TritonBackend(RemoteBackend):
    """Triton Inference Server over HTTP, in KServe v2 with binary tensors (no JSON lists on that hop).

    Every request is decoded and checked here first, v2 included: Triton answers some bad
    v2 bodies with a 500 (malformed JSON, data that disagrees with its shape) and wraps
    out-of-range UINT8 values instead of refusing them.
    """

    speaks: frozenset[str] = frozenset()
    infers_tensors = True  # any model: its card's tensors, as Triton's configuration has them

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.http = self._upstream(settings, settings.triton_http_port)
        self.infer_path = f"/v2/models/{self.model_name}/infer"

    def forward(self, method, path, body, headers) -> endpoint.Reply:
        raise NotImplementedError("every request to Triton is checked and re-encoded by infer()")

    def infer(self, inputs: dict[str, np.ndarray]) -> Inferred:
        body, headers = kserve.encode_infer_request(inputs, self.card, binary=True, binary_outputs=True)
        start = time.perf_counter()
        try:
            resp = self.http.send("POST", self.infer_path, body, headers)
        except UpstreamFailed as exc:
            raise InferenceFailed(exc.status, exc.message, backend=self.name) from None
        forward_ms = (time.perf_counter() - start) * 1000.0
        if resp.status != 200:
            # A 4xx is about the request (decoded and checked here, so it should not happen); a 5xx is Triton's.
            status = resp.status if 400 <= resp.status < 500 else 502
            raise InferenceFailed(status, f"backend {self.name} failed with HTTP {resp.status}", backend=self.name)
        try:
            outputs = kserve.decode_infer_response(resp.data, resp.headers, self.card)
        except kserve.KServeError as exc:
            raise InferenceFailed(502, f"backend {self.name} sent an unreadable answer: {exc.message}",
                                  backend=self.name) from None
        return Inferred(outputs, endpoint.timing_entry("forward", forward_ms))

    def health(self) -> bool:
        return self.http.ok("/v2/health/ready")

    def info(self) -> dict:
        doc = self.http.get_json(f"/v2/models/{self.model_name}")
        return {"backend": {"service": "triton", "model": doc}} if doc is not None else {}

    def close(self) -> None:
        self.http.close()
