"""Flask model server: POST /v1/predict, GET|HEAD /healthz, GET|HEAD /v1/info. Runs under gunicorn."""
from __future__ import annotations

import time

from flask import Flask, Response, request

from servebench import codecs, endpoint
from servebench.inference import InferenceCore
from servebench.settings import Settings, public_model_info

settings = Settings(arch="flask")  # this server is the flask architecture's backend, whatever SB_ARCH says
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


# GET (and HEAD, which Werkzeug adds) only: no automatic OPTIONS answer.
@app.get("/v1/info", provide_automatic_options=False)
def info():
    import json

    doc = {"service": "flask", "settings": settings.recorded("flask"), "model": public_model_info(core().info())}
    return _json(200, json.dumps(doc).encode())


@app.errorhandler(404)
@app.errorhandler(405)
@app.errorhandler(413)
def http_error(exc):
    resp = _json(exc.code, codecs.error_body(f"{exc.name}: {request.method} {request.path}"))
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp
