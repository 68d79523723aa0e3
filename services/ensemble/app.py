"""The ensemble coordinator: the three protocols of servebench.endpoint, answered by averaging member functions.

Runs under uvicorn (one process) behind the same nginx -> gunicorn -> Django
front end as every architecture (the front end passes requests on unchanged,
:class:`services.ensemble.backend.EnsembleBackend`). Decoding, validation and
the error answers are servebench.endpoint's, so bad input gets the same 4xx
as everywhere; what differs is ``infer``: the members are called serially or
in parallel (:mod:`services.ensemble.combine`) over KServe v2 binary
(:mod:`services.ensemble.remote`). The v1 body says which members answered and
each one's time; ``Server-Timing`` has one ``member-<name>`` entry per member.
With ``SB_ENSEMBLE_IDLE_S`` set, idle members are scaled to zero
(:mod:`services.ensemble.scaling`) and a request that starts one also has a
``start-<name>`` entry and the member's ``start_ms``.

    GET /healthz   200 while at least one member answers its health check
    GET /v1/info   the settings in force and each member's health
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import asynccontextmanager, nullcontext

import anyio
import numpy as np
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from servebench import codecs, endpoint, topology
from servebench.endpoint import InferenceFailed, Inferred
from servebench.settings import Settings
from services.ensemble.combine import Ensemble, Member, NoMemberAnswered
from services.ensemble.remote import RemoteMember
from services.ensemble.scaling import Lifecycle, ScaledMember, ScaleToZero, StackLifecycle
from services.fastapi_backend.routes import add_protocol_routes, response

SERVICE = "ensemble"
MODEL_VERSION = 1  # the ensemble's own version; its members' versions are theirs


def mode_of(settings: Settings) -> str:
    """The knob when set, else what the architecture says (ensemble-serial: serial)."""
    return settings.ensemble_mode or ("serial" if settings.arch == "ensemble-serial" else "parallel")


class Coordinator:
    """An endpoint Target whose predictions are the members' average."""

    speaks: frozenset[str] = frozenset()

    def __init__(self, settings: Settings, members: Mapping[str, Member] | None = None,
                 lifecycle: Lifecycle | None = None):
        """``members``: the member functions by name (default: the remote functions the settings name);
        ``lifecycle``: how members are stopped and started when ``ensemble_idle_s`` scales them to zero
        (default: the native stack this coordinator runs in)."""
        # Clients address the stack's model name, whatever the architecture behind it.
        self.model_name = settings.model_name
        self.max_batch = settings.max_batch
        self.members = dict(members) if members is not None else {
            name: RemoteMember(name, settings) for name in settings.ensemble_members}
        self.scaler: ScaleToZero | None = None
        if settings.ensemble_idle_s:
            self.scaler = ScaleToZero(self.members, settings.ensemble_idle_s,
                                      lifecycle or StackLifecycle.of_this_stack())
            self.members = {name: ScaledMember(name, m, self.scaler) for name, m in self.members.items()}
            self.scaler.start_reaper()
        self.ensemble = Ensemble(self.members, mode_of(settings), settings.ensemble_deadline_ms)

    def model_version(self) -> int:
        return MODEL_VERSION

    def batching(self) -> tuple[int, float]:
        return 1, 0.0

    def health(self) -> dict[str, bool]:
        return {name: getattr(m, "healthy", lambda: True)() for name, m in self.members.items()}

    def ready(self) -> bool:
        return any(self.health().values())

    def infer(self, images: np.ndarray) -> Inferred:
        try:
            with self.scaler.request() if self.scaler else nullcontext():
                result = self.ensemble(images)
        except NoMemberAnswered as exc:
            raise InferenceFailed(exc.status, exc.message,
                                  ensemble={"members": {n: o.doc() for n, o in exc.outcomes.items()}}) from None
        timing = [f'{endpoint.timing_entry(name, ms)};desc="{status}"' for name, ms, status in result.timing()]
        # "model" is the ensemble's model call (its members and the average), so the harness's hop
        # breakdown (bench.timing) reads a coordinator as it reads a model server.
        timing += [endpoint.timing_entry("model", result.total_ms), f"batch;desc={len(images)}"]
        return Inferred(result.prediction, endpoint.join_timing(*timing), details={"ensemble": result.doc()})

    def forward(self, method, path, body, headers):
        raise NotImplementedError("the coordinator answers every request itself")

    def info(self) -> dict:
        scaled = self.scaler.info() if self.scaler else {}
        return {"mode": self.ensemble.mode, "deadline_ms": self.ensemble.deadline_ms,
                "idle_s": self.scaler.idle_s if self.scaler else None,
                "members": {name: {"model": getattr(m, "model", name), "healthy": ok, **scaled.get(name, {})} for (name, m), ok
                            in zip(self.members.items(), self.health().values())}}

    def close(self) -> None:
        if self.scaler:
            self.scaler.close()
        self.ensemble.close()
        for m in self.members.values():
            if hasattr(m, "close"):
                m.close()


settings = Settings()
state: dict = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    state["limiter"] = anyio.CapacityLimiter(settings.backend_threads)
    state["target"] = Coordinator(settings)
    yield
    state["target"].close()
    state.clear()


app = FastAPI(title="servebench ensemble coordinator", lifespan=lifespan, docs_url=None, redoc_url=None,
              openapi_url=None)
add_protocol_routes(app, state, "target", settings.max_body_bytes)


@app.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> Response:
    members = await anyio.to_thread.run_sync(state["target"].health)
    ok = any(members.values())
    doc = {"status": "ok" if ok else "no member answers", "service": SERVICE, "members": members}
    return Response(json.dumps(doc).encode(), status_code=200 if ok else 503, media_type=codecs.JSON)


@app.api_route("/v1/info", methods=["GET", "HEAD"])
async def info() -> Response:
    doc = {"service": SERVICE, "settings": topology.recorded(settings, SERVICE),
           **await anyio.to_thread.run_sync(state["target"].info)}
    return Response(json.dumps(doc).encode(), media_type=codecs.JSON)


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    reply = endpoint.error_reply(endpoint.protocol_of(request.url.path), exc.status_code,
                                 f"{exc.detail}: {request.method} {request.url.path}")
    resp = response(reply)
    resp.headers.update(exc.headers or {})
    return resp
