"""The ensemble coordinator: the three protocols of servebench.endpoint, answered by averaging member functions.

Runs under uvicorn (one process) behind the same nginx -> gunicorn -> Django
front end as every architecture (the front end passes requests on unchanged,
:class:`services.frontend.backends.EnsembleBackend`). Decoding, validation and
the error answers are servebench.endpoint's, so bad input gets the same 4xx
as everywhere; what differs is ``infer``: the members are called serially or
in parallel (:mod:`services.ensemble.combine`) over KServe v2 binary
(:mod:`services.ensemble.remote`). The v1 body says which members answered and
each one's time; ``Server-Timing`` has one ``member-<name>`` entry per member.

    GET /healthz   200 while at least one member answers its health check
    GET /v1/info   the settings in force and each member's health
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextlib import asynccontextmanager

import anyio
import numpy as np
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from servebench import codecs, endpoint
from servebench.endpoint import InferenceFailed, Inferred
from servebench.settings import Settings
from services.ensemble.combine import Ensemble, Member, NoMemberAnswered
from services.ensemble.remote import RemoteMember

SERVICE = "ensemble"
MODEL_VERSION = 1  # the ensemble's own version; its members' versions are theirs


def mode_of(settings: Settings) -> str:
    """The knob when set, else what the architecture says (ensemble-serial: serial)."""
    return settings.ensemble_mode or ("serial" if settings.arch == "ensemble-serial" else "parallel")


class Coordinator:
    """An endpoint Target whose predictions are the members' average."""

    speaks: frozenset[str] = frozenset()

    def __init__(self, settings: Settings, members: Mapping[str, Member] | None = None):
        """``members``: the member functions by name (default: the remote functions the settings name)."""
        # Clients address the stack's model name, whatever the architecture behind it.
        self.model_name = settings.model_name
        self.max_batch = settings.max_batch
        self.members = dict(members) if members is not None else {
            name: RemoteMember(name, settings) for name in settings.ensemble_members}
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
        return {"mode": self.ensemble.mode, "deadline_ms": self.ensemble.deadline_ms,
                "members": {name: {"model": m.model, "healthy": ok} for (name, m), ok
                            in zip(self.members.items(), self.health().values())}}

    def close(self) -> None:
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
ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # endpoint.handle answers 405 itself


def _response(reply: endpoint.Reply, timing: str = "") -> Response:
    headers = {**({"Server-Timing": timing} if timing else {}), **dict(reply.headers)}
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type, headers=headers)


@app.api_route("/v1/predict", methods=ANY)
@app.api_route("/v1/models/{rest:path}", methods=ANY)
@app.api_route("/v2", methods=ANY)
@app.api_route("/v2/{rest:path}", methods=ANY)
async def serve(request: Request) -> Response:
    start = time.perf_counter()
    body = b""
    if request.method == "POST":
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            return _response(endpoint.error_reply(endpoint.protocol_of(request.url.path), 413,
                                                  f"request body too large: the limit is {settings.max_body_bytes} bytes"))
        body = await request.body()
    reply = await anyio.to_thread.run_sync(endpoint.handle, state["target"], request.method, request.url.path, body,
                                           request.headers, limiter=state["limiter"])
    total = endpoint.timing_entry("backend", (time.perf_counter() - start) * 1000.0)  # as the model servers name it
    return _response(reply, endpoint.join_timing(reply.timing, total))


@app.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> Response:
    members = await anyio.to_thread.run_sync(state["target"].health)
    ok = any(members.values())
    doc = {"status": "ok" if ok else "no member answers", "service": SERVICE, "members": members}
    return Response(json.dumps(doc).encode(), status_code=200 if ok else 503, media_type=codecs.JSON)


@app.api_route("/v1/info", methods=["GET", "HEAD"])
async def info() -> Response:
    doc = {"service": SERVICE, "settings": settings.recorded(SERVICE),
           **await anyio.to_thread.run_sync(state["target"].info)}
    return Response(json.dumps(doc).encode(), media_type=codecs.JSON)


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    reply = endpoint.error_reply(endpoint.protocol_of(request.url.path), exc.status_code,
                                 f"{exc.detail}: {request.method} {request.url.path}")
    resp = _response(reply)
    resp.headers.update(exc.headers or {})
    return resp
