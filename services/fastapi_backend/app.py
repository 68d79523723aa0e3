"""FastAPI model server: POST /v1/predict, GET|HEAD /healthz, GET|HEAD /v1/info. Runs under uvicorn.

Inference runs in a bounded thread pool, so the event loop keeps accepting
and reading requests while the model works.
"""
from __future__ import annotations

import multiprocessing
import time
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from servebench import codecs, endpoint
from servebench.inference import InferenceCore
from servebench.settings import Settings, public_model_info
from servebench.supervision import die_with_parent

settings = Settings(arch="fastapi")  # this server is the fastapi architecture's backend, whatever SB_ARCH says
state: dict = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Only in a worker spawned by uvicorn's --workers N master. With one worker
    # uvicorn serves from its main process, whose parent is whatever started it
    # (the runner, which exits after `make up`): never tie that one to its parent.
    if multiprocessing.parent_process() is not None:
        die_with_parent()
    state["limiter"] = anyio.CapacityLimiter(settings.backend_threads)
    state["core"] = await anyio.to_thread.run_sync(InferenceCore.from_settings, settings)
    yield
    state.clear()


app = FastAPI(title="servebench FastAPI model server", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


def _json(status: int, body: bytes, timing: str = "") -> Response:
    headers = {"Server-Timing": timing} if timing else None
    return Response(body, status_code=status, media_type=codecs.JSON, headers=headers)


@app.post("/v1/predict")
async def predict(request: Request) -> Response:
    start = time.perf_counter()
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_body_bytes:
        return _json(413, codecs.error_body(f"request body too large: the limit is {settings.max_body_bytes} bytes"))
    body = await request.body()
    reply = await anyio.to_thread.run_sync(
        endpoint.predict, state["core"], body, request.headers.get("content-type"), settings.max_batch,
        limiter=state["limiter"],
    )
    total = endpoint.timing_entry("backend", (time.perf_counter() - start) * 1000.0)
    return _json(reply.status, reply.body, endpoint.join_timing(reply.timing, total))


@app.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> Response:
    return _json(200, b'{"status": "ok", "service": "fastapi"}')


@app.api_route("/v1/info", methods=["GET", "HEAD"])
async def info() -> Response:
    import json

    doc = {"service": "fastapi", "settings": settings.recorded("fastapi"), "model": public_model_info(state["core"].info())}
    return _json(200, json.dumps(doc).encode())


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    resp = _json(exc.status_code, codecs.error_body(f"{exc.detail}: {request.method} {request.url.path}"))
    resp.headers.update(exc.headers or {})  # 405 carries Allow
    return resp


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    return _json(400, codecs.error_body(str(exc)))
