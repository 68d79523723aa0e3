"""FastAPI model server: the three protocols of servebench.endpoint, GET|HEAD /healthz, GET|HEAD /v1/info. Runs under uvicorn.

Batching off, requests are answered in a bounded thread pool (SB_BACKEND_THREADS per
worker), so the event loop keeps accepting and reading requests while the model works.
Batching on, a request awaits its batch on the event loop and holds no thread
(services/fastapi_backend/routes.py), so up to a batch of SB_BATCH_MAX_SIZE forms
whatever SB_BACKEND_THREADS is.
"""
from __future__ import annotations

import multiprocessing
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from servebench import codecs, endpoint, topology
from servebench.endpoint import LocalModel
from servebench.settings import Settings, public_model_info
from servebench.supervision import die_with_parent
from services.fastapi_backend.routes import add_protocol_routes

settings = Settings(arch="fastapi")  # this server is the fastapi architecture's backend, whatever SB_ARCH says
state: dict = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Only in a worker spawned by uvicorn's --workers N master. With one worker
    # uvicorn serves from its main process, whose parent is whatever started it
    # (the runner, which exits after `make up`): never tie that one to its parent.
    # Armed only after this worker's imports: a master killed meanwhile (a replacement worker
    # importing TensorFlow on a busy machine) is caught by naming the master's pid.
    if (master := multiprocessing.parent_process()) is not None:
        die_with_parent(parent=master.pid)
    state["limiter"] = anyio.CapacityLimiter(settings.backend_threads)
    state["model"] = await anyio.to_thread.run_sync(LocalModel.from_settings, settings)
    yield
    state["model"].close()
    state.clear()


app = FastAPI(title="servebench FastAPI model server", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


def _json(status: int, body: bytes, timing: str = "") -> Response:
    headers = {"Server-Timing": timing} if timing else None
    return Response(body, status_code=status, media_type=codecs.JSON, headers=headers)


add_protocol_routes(app, state, "model", settings.max_body_bytes)


@app.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> Response:
    return _json(200, b'{"status": "ok", "service": "fastapi"}')


@app.api_route("/v1/info", methods=["GET", "HEAD"])
async def info() -> Response:
    import json

    doc = {"service": "fastapi", "settings": topology.recorded(settings, "fastapi"), "model": public_model_info(state["model"].info())}
    return _json(200, json.dumps(doc).encode())


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    reply = endpoint.error_reply(endpoint.protocol_of(request.url.path), exc.status_code,
                                 f"{exc.detail}: {request.method} {request.url.path}")
    resp = _json(reply.status, reply.body)
    resp.headers.update(exc.headers or {})  # 405 carries Allow
    return resp


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    return _json(400, codecs.error_body(str(exc)))
