"""The front end's backend for ARCH=rayserve: requests passed on unchanged to Ray Serve's HTTP proxy.

Serve listens inside the cluster's network namespace, on the link-local address its veth got
when the cluster started; the supervisor says which (``GET /cluster`` on the host's loopback).
A cluster started again (its supervisor restarted) may have another address, or the same one:
then its proxy listens there before the application is deployed, and answers 404 for every
path. So once the cluster failed to answer (a 502), nothing is forwarded until the supervisor
says a cluster is ready again (``GET /cluster``: 200); until then clients get a 503.
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
        self._lost = False  # the cluster failed to answer: forward again once the supervisor says it is ready

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
        if self._lost and self._found() is None:
            return endpoint.error_reply(endpoint.protocol_of(path), 503, f"backend {self.name}: the Ray cluster is "
                                        "not ready (its supervisor is down or starting it)", backend=self.name)
        reply = self.http.forward(method, path, body, headers)
        if reply.status == 502:
            moved = self._found()
            if moved is None:
                self._lost = True
            elif moved:
                reply = self.http.forward(method, path, body, headers)
        return reply

    def _found(self) -> bool | None:
        """None while the supervisor says no cluster is ready; else whether Serve now listens elsewhere (then the
        pool points there), and requests are forwarded again."""
        try:
            where = self._ask(self._settings)
        except RuntimeError:
            return None
        moved = where != self._where
        if moved:
            self.http.close()
            self._where, self.http = where, self._upstream_to(where)
            self.address = f"{where[0]}:{where[1]}"
        self._lost = False
        return moved
