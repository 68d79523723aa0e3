"""Flask model server: POST /v1/predict, GET /healthz, GET /v1/info. Runs under gunicorn."""
from __future__ import annotations

import time

from flask import Flask, Response, request

from servebench import codecs, endpoint
from servebench.inference import InferenceCore
from servebench.settings import Settings

settings = Settings()
app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
_core: InferenceCore | None = None


def core() -> InferenceCore:
    global _core
    if _core is None:
        _core = InferenceCore.from_settings(settings)
    return _core


def _json(status: int, body: bytes, timing: str = "") -> Response:
    resp = Response(body, status=status, mimetype=codecs.JSON)
    if timing:
        resp.headers["Server-Timing"] = timing
    return resp


@app.post("/v1/predict")
def predict():
    start = time.perf_counter()
    reply = endpoint.predict(core(), request.get_data(cache=False), request.content_type, settings.max_batch)
    total = endpoint.timing_entry("backend", (time.perf_counter() - start) * 1000.0)
    return _json(reply.status, reply.body, endpoint.join_timing(reply.timing, total))


@app.get("/healthz")
def healthz():
    core()
    return _json(200, b'{"status": "ok", "service": "flask"}')


@app.get("/v1/info")
def info():
    import json

    return _json(200, json.dumps({"service": "flask", "settings": settings.recorded(), "model": core().info()}).encode())


@app.errorhandler(404)
@app.errorhandler(405)
@app.errorhandler(413)
def http_error(exc):
    return _json(exc.code, codecs.error_body(f"{exc.name}: {request.method} {request.path}"))
