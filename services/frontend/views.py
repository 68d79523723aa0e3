"""The three protocols of servebench.endpoint, GET /v1/info, GET /healthz: thin glue around the backend."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from django.conf import settings
from django.core import signals
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.db import close_old_connections, reset_queries
from django.http import HttpResponse, JsonResponse
from django.http.request import HttpHeaders

from servebench import endpoint, topology
from servebench.settings import public_model_info
from services.frontend import backends

_backend = None
_lock = threading.Lock()

# The front end has no database (settings.DATABASES is empty), yet Django runs its database hooks on every
# request: a measurable share of the front end's CPU per request, for nothing.
signals.request_started.disconnect(reset_queries)
signals.request_started.disconnect(close_old_connections)
signals.request_finished.disconnect(close_old_connections)


def backend():
    """The worker's backend, built once (gunicorn's post_worker_init does it at start)."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = backends.build(settings.SB)
    return _backend


class _Headers(Mapping):
    """A request's headers looked up by name in the WSGI environ: Django's ``request.headers`` parses every
    header of every request, and a request that is passed on needs two of them."""

    __slots__ = ("meta",)

    def __init__(self, meta: dict):
        self.meta = meta

    def get(self, name: str, default=None):
        key = name.upper().replace("-", "_")
        return self.meta.get(key if key in HttpHeaders.UNPREFIXED_HEADERS else "HTTP_" + key, default)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self):
        return iter(HttpHeaders(self.meta))

    def __len__(self) -> int:
        return len(HttpHeaders(self.meta))


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _not_allowed(request, path: str, allow: str) -> JsonResponse:
    resp = _error(405, f"method {request.method} not allowed on {path}: use {allow}")
    resp["Allow"] = allow
    return resp


def validate_host(get_response):
    """Middleware: Django checks ALLOWED_HOSTS only when something reads the host; read it on every request.

    A disallowed Host raises DisallowedHost, which Django turns into a 400 (bad_request below).
    """
    def middleware(request):
        request.get_host()
        return get_response(request)

    return middleware


def serve(request):
    """/v1/predict, /v1/models/... (TF Serving REST) and /v2/... (KServe v2)."""
    start = time.perf_counter()
    try:
        body = request.body if request.method == "POST" else b""
    except RequestDataTooBig:
        reply = endpoint.error_reply(endpoint.protocol_of(request.path), 413,
                                     f"request body too large: the limit is {settings.SB.max_body_bytes} bytes")
    else:
        reply = endpoint.handle(backend(), request.method, request.path, body, _Headers(request.META))
    resp = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value in reply.headers:
        resp[name] = value
    resp["Content-Length"] = str(len(reply.body))
    resp["Server-Timing"] = endpoint.join_timing(
        reply.timing, endpoint.timing_entry("django", (time.perf_counter() - start) * 1000.0)
    )
    return resp


def healthz(request):
    if request.method not in ("GET", "HEAD"):
        return _not_allowed(request, "/healthz", "GET, HEAD")
    b = backend()
    ok = b.health()
    return JsonResponse({"status": "ok" if ok else "backend unavailable", "arch": settings.SB.arch}, status=200 if ok else 503)


def info(request):
    if request.method not in ("GET", "HEAD"):
        return _not_allowed(request, "/v1/info", "GET, HEAD")
    doc = {"arch": settings.SB.arch, "settings": topology.recorded(settings.SB, "frontend"), **backend().info()}
    if isinstance(doc.get("model"), dict):  # embedded: the model's info says where it lies on disk
        doc["model"] = public_model_info(doc["model"])
    return JsonResponse(doc)


def bad_request(request, exception=None):
    if isinstance(exception, DisallowedHost):
        return _error(400, "bad request: Host not allowed (the front end answers to SB_ALLOWED_HOSTS and SB_LISTEN)")
    return _error(400, "bad request")


def not_found(request, exception=None):
    return _error(404, f"no such path {request.path}: use POST /v1/predict, /v2/models/<model>/infer "
                       f"or /v1/models/<model>:predict")


def server_error(request):
    return _error(500, "internal error in the front end")
