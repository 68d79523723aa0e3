"""POST /v1/predict, GET /v1/info, GET /healthz: thin glue around the backend."""
from __future__ import annotations

import json
import threading
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse

from servebench import codecs, endpoint
from services.frontend import backends

_backend = None
_lock = threading.Lock()


def backend():
    """The worker's backend, built once (gunicorn's post_worker_init does it at start)."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = backends.build(settings.SB)
    return _backend


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def predict(request):
    start = time.perf_counter()
    if request.method != "POST":
        resp = _error(405, f"method {request.method} not allowed on /v1/predict: use POST")
        resp["Allow"] = "POST"
        return resp
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, f"request body too large: the limit is {settings.SB.max_body_bytes} bytes")
    reply = backend().forward(body, request.content_type)
    resp = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    resp["Content-Length"] = str(len(reply.body))
    resp["Server-Timing"] = endpoint.join_timing(
        reply.timing, endpoint.timing_entry("django", (time.perf_counter() - start) * 1000.0)
    )
    return resp


def healthz(request):
    if request.method != "GET":
        return _error(405, "use GET on /healthz")
    b = backend()
    ok = b.health()
    return JsonResponse({"status": "ok" if ok else "backend unavailable", "arch": settings.SB.arch}, status=200 if ok else 503)


def info(request):
    b = backend()
    return JsonResponse({"arch": settings.SB.arch, "settings": settings.SB.recorded(), **b.info()})


def bad_request(request, exception=None):
    return _error(400, "bad request")


def not_found(request, exception=None):
    return _error(404, f"no such path {request.path}: use POST /v1/predict")


def server_error(request):
    return _error(500, "internal error in the front end")
