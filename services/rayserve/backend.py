"""The front end's backend for ARCH=rayserve: requests passed on unchanged to Ray Serve's HTTP proxy.

Serve listens inside the cluster's network namespace, on the link-local address its veth got
when the cluster started; the supervisor says which (``GET /cluster`` on the host's loopback).
A cluster started again (its supervisor restarted) may have another address: an unreachable
backend is asked again once before the failure is answered.
"""
from __future__ import annotations

import json

import urllib3

from servebench import endpoint
from services.frontend.backends import ModelServerBackend, RemoteBackend, Upstream


class RayServeBackend(ModelServerBackend):
    def __init__(self, settings):
        RemoteBackend.__init__(self, settings)
        self._where = self._ask(settings)
        self.http = self._upstream_to(self._where)
        self.address = f"{self._where[0]}:{self._where[1]}"

    def _ask(self, settings) -> tuple[str, int]:
        supervisor = f"http://{settings.backend_host}:{settings.rayserve_port}/cluster"
        try:
            resp = urllib3.request("GET", supervisor, timeout=5.0, retries=False)
            doc = json.loads(resp.data) if resp.status == 200 else None
        except (urllib3.exceptions.HTTPError, ValueError):
            doc = None
        if not doc:
            raise RuntimeError(f"the Ray cluster's supervisor did not say where Serve listens ({supervisor}): "
                               "is the rayserve service up? (make up ARCH=rayserve)")
        return doc["host"], int(doc["port"])

    def _upstream_to(self, where: tuple[str, int]) -> Upstream:
        return Upstream(self.name, where[0], where[1], self._settings)

    def forward(self, method, path, body, headers) -> endpoint.Reply:
        reply = self.http.forward(method, path, body, headers)
        if reply.status == 502 and self._moved():
            reply = self.http.forward(method, path, body, headers)
        return reply

    def _moved(self) -> bool:
        """Whether the cluster now listens elsewhere (then the pool points there)."""
        try:
            where = self._ask(self._settings)
        except RuntimeError:
            return False
        if where == self._where:
            return False
        self.http.close()
        self._where, self.http = where, self._upstream_to(where)
        self.address = f"{where[0]}:{where[1]}"
        return True
