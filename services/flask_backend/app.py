"""Flask model server: the three protocols of servebench.endpoint, GET|HEAD /healthz, GET|HEAD /v1/info. Runs under gunicorn."""
from __future__ import annotations

import json
import time

from flask import Flask, Response, request

from servebench import endpoint, topology
from servebench.endpoint import LocalModel
from servebench.settings import Settings, public_model_info

settings = Settings(arch="flask")  # this server is the flask architecture's backend, whatever SB_ARCH says
app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
_model: LocalModel | None = None
ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # endpoint.handle answers 405 itself


def model() -> LocalModel:
    global _model
    if _model is None:
        _model = LocalModel.from_settings(settings)
    return _model


def _reply(reply: endpoint.Reply, timing: str = "") -> Response:
    resp = Response(reply.body, status=reply.status, mimetype=None, content_type=reply.content_type)
    for name, value in reply.headers:
        resp.headers[name] = value
    if timing:
        resp.headers["Server-Timing"] = timing
    return resp


@app.route("/v1/predict", methods=ANY, provide_automatic_options=False)
@app.route("/v1/models/<path:_>", methods=ANY, provide_automatic_options=False)
@app.route("/v2", methods=ANY, provide_automatic_options=False, strict_slashes=False)
@app.route("/v2/<path:_>", methods=ANY, provide_automatic_options=False)
def serve(_=None):
    start = time.perf_counter()
    body = request.get_data(cache=False) if request.method == "POST" else b""
    reply = endpoint.handle(model(), request.method, request.path, body, request.headers)
    total = endpoint.timing_entry("backend", (time.perf_counter() - start) * 1000.0)
    return _reply(reply, endpoint.join_timing(reply.timing, total))


@app.get("/healthz")
def healthz():
    model()
    return _reply(endpoint.Reply(200, b'{"status": "ok", "service": "flask"}', ""))


# GET (and HEAD, which Werkzeug adds) only: no automatic OPTIONS answer.
@app.get("/v1/info", provide_automatic_options=False)
def info():
    doc = {"service": "flask", "settings": topology.recorded(settings, "flask"), "model": public_model_info(model().info())}
    return _reply(endpoint.Reply(200, json.dumps(doc).encode(), ""))


@app.errorhandler(404)
@app.errorhandler(405)
@app.errorhandler(413)
def http_error(exc):
    protocol = endpoint.protocol_of(request.path)
    reply = endpoint.error_reply(protocol, exc.code, f"{exc.name}: {request.method} {request.path}")
    resp = _reply(reply)
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        resp.headers["Allow"] = ", ".join(exc.valid_methods)
    return resp

