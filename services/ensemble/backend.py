"""The front end's backend for the ensemble architectures: the coordinator (services/ensemble/app.py)."""
from __future__ import annotations

from servebench import endpoint
from services.frontend.backends import ModelServerBackend


class EnsembleBackend(ModelServerBackend):
    """The ensemble coordinator (services/ensemble): like a model server it speaks every protocol, so
    requests are passed on unchanged; its answers carry the members used and one Server-Timing entry each."""

    # The coordinator's own 502/504 (no member answered / none in time) say which members failed how.
    GATEWAY_STATUSES = (502, 504)

    def forward(self, method, path, body, headers) -> endpoint.Reply:
        return self.http.forward(method, path, body, headers, passed=self.GATEWAY_STATUSES)

    def info(self) -> dict:
        doc = self.http.get_json("/v1/info")
        return {"backend": doc} if doc is not None else {}
