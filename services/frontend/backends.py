"""What the Django front end hands a request to, one class per architecture.

Each backend takes the client's body and content type and returns an
:class:`servebench.endpoint.Reply` whose body is the common prediction
response, whatever runs the model. Built once per gunicorn worker.
"""
from __future__ import annotations

import http.client
import importlib
import json
import threading
import time

import urllib3
import urllib3.connection

from servebench import codecs, endpoint, registry
from servebench.settings import Settings


def error(status: int, message: str, backend: str) -> endpoint.Reply:
    return endpoint.Reply(status, codecs.error_body(message, backend=backend), "")


class EmbeddedBackend:
    """The model inside the Django process."""

    def __init__(self, settings: Settings):
        from servebench.inference import InferenceCore

        self.name = settings.arch
        self.core = InferenceCore.from_settings(settings)
        self.max_batch = settings.max_batch

    def forward(self, body: bytes, content_type: str | None) -> endpoint.Reply:
        return endpoint.predict(self.core, body, content_type, self.max_batch)

    def health(self) -> bool:
        return True

    def info(self) -> dict:
        return {"model": self.core.info()}

    def close(self) -> None:
        pass


_NO_ANSWER = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class _CountingConnection(urllib3.connection.HTTPConnection):
    """Remembers, per thread, whether the request it just sent went out on a reused connection."""

    local = threading.local()

    def request(self, *args, **kwargs):
        sent = getattr(self, "_sb_requests", 0)
        _CountingConnection.local.reused = sent > 0
        self._sb_requests = sent + 1
        return super().request(*args, **kwargs)


def _closed_without_answer(exc: Exception) -> bool:
    reason = exc.args[1] if isinstance(exc, urllib3.exceptions.ProtocolError) and len(exc.args) > 1 else None
    return isinstance(reason, _NO_ANSWER)


class ModelServerBackend:
    """A Flask or FastAPI model server: the body is forwarded as is, never decoded here."""

    def __init__(self, settings: Settings):
        self.name = settings.arch
        self.address = settings.backend_address()
        host, port = self.address.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.timeout = urllib3.Timeout(connect=2.0, read=settings.backend_timeout_s)
        self.pool = urllib3.HTTPConnectionPool(
            self.host, self.port, maxsize=settings.backend_pool_size, block=False, timeout=self.timeout,
            # Reconnecting is safe: nothing was sent. Answers that never came are handled in forward().
            retries=urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0),
        )
        self.pool.ConnectionCls = _CountingConnection

    def forward(self, body: bytes, content_type: str | None) -> endpoint.Reply:
        start = time.perf_counter()
        headers = {"Content-Type": content_type or ""}
        try:
            try:
                resp = self.pool.urlopen("POST", "/v1/predict", body=body, headers=headers, preload_content=True)
            except urllib3.exceptions.ProtocolError as exc:
                # A kept-alive connection the backend had closed (idle timeout, a worker that exited
                # after its last answer) fails without an answer: once more, on a new connection.
                # A new connection that dies is the backend's failure and is not retried.
                if not (_closed_without_answer(exc) and getattr(_CountingConnection.local, "reused", False)):
                    raise
                resp = self._once_on_new_connection(body, headers)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            return self._failure(exc)
        forward_ms = (time.perf_counter() - start) * 1000.0
        if resp.status >= 500:
            return error(502, f"backend {self.name} failed with HTTP {resp.status}", self.name)
        return endpoint.Reply(
            resp.status,
            resp.data,
            endpoint.join_timing(resp.headers.get("Server-Timing", ""), endpoint.timing_entry("forward", forward_ms)),
        )

    def _once_on_new_connection(self, body: bytes, headers: dict):
        conn = urllib3.connection.HTTPConnection(self.host, self.port, timeout=self.timeout.connect_timeout)
        try:
            conn.connect()
            conn.sock.settimeout(self.timeout.read_timeout)
            conn.request("POST", "/v1/predict", body=body, headers=headers)
            resp = conn.getresponse()
            resp.data  # read it all before the connection closes
            return resp
        finally:
            conn.close()

    def _failure(self, exc: Exception) -> endpoint.Reply:
        # Clients learn which backend failed and how, never its internal address.
        reason = getattr(exc, "reason", None) or exc
        # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
        if isinstance(reason, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
            return error(502, f"backend {self.name} unreachable", self.name)
        if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)):
            return error(504, f"backend {self.name} timed out", self.name)
        if _closed_without_answer(exc) or isinstance(reason, _NO_ANSWER):
            return error(502, f"backend {self.name} closed the connection without answering", self.name)
        return error(502, f"backend {self.name} failed: {type(reason).__name__}", self.name)

    def health(self) -> bool:
        try:
            return self.pool.urlopen("GET", "/healthz", retries=False, timeout=2.0).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    def info(self) -> dict:
        try:
            resp = self.pool.urlopen("GET", "/v1/info", retries=False, timeout=2.0)
            return {"backend": json.loads(resp.data)} if resp.status == 200 else {}
        except (urllib3.exceptions.HTTPError, ValueError):
            return {}

    def close(self) -> None:
        self.pool.close()


class TFServingBackend:
    """TensorFlow Serving over REST or gRPC: decoded here, since TF Serving takes its own formats."""

    def __init__(self, settings: Settings):
        from servebench import tfserving

        self.name = settings.arch
        self.max_batch = settings.max_batch
        self.address = settings.backend_address()
        self._error_type = tfserving.TFServingError
        if registry.get(settings.arch).protocol == "grpc":
            self.client = tfserving.GrpcClient(self.address, timeout_s=settings.backend_timeout_s)
        else:
            host, port = self.address.rsplit(":", 1)
            self.client = tfserving.RestClient(host, int(port), timeout_s=settings.backend_timeout_s,
                                               pool_size=settings.backend_pool_size)
        # TF Serving always serves REST too; its model-status endpoint is the health check for both.
        self._health = tfserving.RestClient(settings.backend_host, settings.tfserving_rest_port, pool_size=1)

    def forward(self, body: bytes, content_type: str | None) -> endpoint.Reply:
        start = time.perf_counter()
        try:
            images = codecs.decode(body, content_type, self.max_batch)
        except codecs.CodecError as exc:
            return endpoint.Reply(exc.status, codecs.error_body(exc.message), "")
        decode_ms = (time.perf_counter() - start) * 1000.0
        try:
            pred, forward_ms = self.client.predict(images)
        except self._error_type as exc:
            # A 4xx is about the request and TF Serving's words help; a 5xx names only the backend.
            what = exc.detail if exc.status < 500 else ("timed out" if exc.status == 504 else "failed or unreachable")
            return error(exc.status, f"backend {self.name}: {what}", self.name)
        return endpoint.Reply(
            200,
            codecs.encode_predictions(pred),
            endpoint.join_timing(endpoint.timing_entry("decode", decode_ms), endpoint.timing_entry("forward", forward_ms)),
        )

    def health(self) -> bool:
        return bool(self._health.health())

    def info(self) -> dict:
        return {}

    def close(self) -> None:
        self.client.close()
        self._health.close()


def build(settings: Settings):
    """The backend class the registry names for ``settings.arch``."""
    module, _, cls = registry.get(settings.arch).backend.partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
