"""The coordinator's client of one member function: KServe v2 with binary tensors.

Binary tensors keep the members' float32 probabilities exact (the v1 JSON
rounds them) and spare the coordinator JSON lists on the hop it makes three
times per request. The pool, its keep-alive handling and the 502/504
classification are the front end's :class:`~services.frontend.backends.Upstream`.
"""
from __future__ import annotations

import numpy as np

from servebench import kserve
from servebench.codecs import Prediction
from servebench.settings import Settings
from services.ensemble.combine import MemberTimedOut
from services.ensemble.members import MEMBERS
from services.frontend.backends import Upstream, UpstreamFailed


def member_port(settings: Settings, member: str) -> int:
    return int(getattr(settings, f"ensemble_{member}_port"))


class MemberFailed(Exception):
    pass


class RemoteMember:
    """One member function at ``host:port``; calling it returns its prediction or raises."""

    def __init__(self, name: str, settings: Settings):
        self.name = name
        self.model = MEMBERS[name]
        self.path = f"/v2/models/{self.model}/infer"
        # The member timeout is this pool's read timeout; the pool is sized for the coordinator's threads.
        member_settings = settings.model_copy(update={"backend_timeout_s": settings.ensemble_member_timeout_s,
                                                      "backend_pool_size": max(8, settings.backend_threads * 2)})
        self.http = Upstream(f"ensemble member {name}", settings.backend_host, member_port(settings, name),
                             member_settings)

    def __call__(self, images: np.ndarray) -> Prediction:
        body, headers = kserve.encode_infer_request(images, binary=True, binary_outputs=True)
        try:
            resp = self.http.send("POST", self.path, body, headers)
        except UpstreamFailed as exc:
            if exc.status == 504:
                raise MemberTimedOut(exc.message) from None
            raise MemberFailed(exc.message) from None
        if resp.status != 200:
            raise MemberFailed(f"{self.name} answered HTTP {resp.status}")
        try:
            return kserve.decode_infer_response(resp.data, resp.headers).prediction()
        except kserve.KServeError as exc:
            raise MemberFailed(f"{self.name} sent an unreadable answer: {exc.message}") from None

    def healthy(self) -> bool:
        return self.http.ok("/healthz")

    def close(self) -> None:
        self.http.close()
