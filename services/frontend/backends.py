"""What the Django front end hands a request to, one class per kind of backend.

Each backend is a :class:`servebench.endpoint.Target`: a request in a protocol
the backend speaks (``speaks``) is passed on unchanged (:meth:`forward`);
any other is decoded by the front end, the backend is asked for a prediction
(:meth:`infer`), and the answer is encoded in the client's protocol. Built once
per gunicorn worker.

The generic ones live here (:class:`RemoteBackend`, :class:`ModelServerBackend`,
:class:`Upstream`); an architecture's own backend lives in its folder and is
named by its record (``Architecture.backend``):

=================  ==========================  ==============================
backend            speaks (passed on as is)    infer()
=================  ==========================  ==============================
embedded           nothing                     the model in this process (services/embedded/backend.py)
Flask / FastAPI    v1, v2, tfserving           (never needed)
Triton             nothing (see TritonBackend) KServe v2, binary tensors (services/triton/backend.py)
TF Serving REST    tfserving                   TF Serving's REST predict (services/tfserving/backend.py)
TF Serving gRPC    nothing                     TF Serving's gRPC Predict
ensemble           v1, v2, tfserving           (never needed; services/ensemble/backend.py)
=================  ==========================  ==============================
"""
from __future__ import annotations

import http.client
import importlib
import json
import threading
import time
from collections.abc import Mapping

import numpy as np
import urllib3
import urllib3.connection

from servebench import endpoint, kserve, registry
from servebench.endpoint import PROTOCOLS, InferenceFailed, Inferred
from servebench.settings import Settings

# Request headers a protocol needs passed on, and response headers passed back.
_REQUEST_HEADERS = ("Content-Type", kserve.HEADER_LENGTH)
_RESPONSE_HEADERS = (kserve.HEADER_LENGTH,)


def _model_version(settings: Settings) -> int:
    """The version the stack serves: the one asked for, else the highest in the model folder."""
    from servebench.modelcard import find_version

    return int(find_version(settings.model_base, settings.model_version).name)


def read_card(settings: Settings):
    """The served model's card: the front end decodes, validates and encodes every request it does not
    pass on with the model's own tensors."""
    from servebench import modelcard

    return modelcard.read_card(settings.model_base, settings.model_version)


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


class UpstreamFailed(Exception):
    """A backend that did not answer; ``status`` (502/504) and a message that names it, never its address."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Upstream:
    """One keep-alive connection pool to a backend's HTTP port."""

    def __init__(self, name: str, host: str, port: int, settings: Settings):
        self.name, self.host, self.port = name, host, port
        self.timeout = urllib3.Timeout(connect=2.0, read=settings.backend_timeout_s)
        self.pool = urllib3.HTTPConnectionPool(
            host, port, maxsize=settings.backend_pool_size, block=False, timeout=self.timeout,
            # Reconnecting is safe: nothing was sent. Answers that never came are handled in send().
            retries=urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0),
        )
        self.pool.ConnectionCls = _CountingConnection

    def send(self, method: str, path: str, body: bytes | None, headers: dict) -> urllib3.BaseHTTPResponse:
        """The backend's answer; raises :class:`UpstreamFailed` when none came."""
        try:
            try:
                return self.pool.urlopen(method, path, body=body, headers=headers, preload_content=True)
            except urllib3.exceptions.ProtocolError as exc:
                # A kept-alive connection the backend had closed (idle timeout, a worker that exited
                # after its last answer) fails without an answer: once more, on a new connection.
                # A new connection that dies is the backend's failure and is not retried.
                if not (_closed_without_answer(exc) and getattr(_CountingConnection.local, "reused", False)):
                    raise
                return self._once_on_new_connection(method, path, body, headers)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            raise self._failure(exc) from None

    def _once_on_new_connection(self, method, path, body, headers):
        conn = urllib3.connection.HTTPConnection(self.host, self.port, timeout=self.timeout.connect_timeout)
        try:
            conn.connect()
            conn.sock.settimeout(self.timeout.read_timeout)
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.data  # read it all before the connection closes
            return resp
        finally:
            conn.close()

    def _failure(self, exc: Exception) -> UpstreamFailed:
        # Clients learn which backend failed and how, never its internal address.
        reason = getattr(exc, "reason", None) or exc
        # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
        if isinstance(reason, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
            return UpstreamFailed(502, f"backend {self.name} unreachable")
        if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)):
            return UpstreamFailed(504, f"backend {self.name} timed out")
        if _closed_without_answer(exc) or isinstance(reason, _NO_ANSWER):
            return UpstreamFailed(502, f"backend {self.name} closed the connection without answering")
        return UpstreamFailed(502, f"backend {self.name} failed: {type(reason).__name__}")

    def forward(self, method: str, path: str, body: bytes, headers: Mapping[str, str],
                passed: tuple[int, ...] = ()) -> endpoint.Reply:
        """The request passed on unchanged, and the backend's answer passed back (its 5xx as a 502,
        except the statuses in ``passed``: a backend's own gateway answers, e.g. the ensemble's 504)."""
        protocol = endpoint.protocol_of(path)
        sent_headers = {name: value for name in _REQUEST_HEADERS
                        if (value := endpoint.header(headers, name)) is not None}
        start = time.perf_counter()
        try:
            resp = self.send(method, path, body if method == "POST" else None, sent_headers)
        except UpstreamFailed as exc:
            return endpoint.error_reply(protocol, exc.status, exc.message, backend=self.name)
        forward_ms = (time.perf_counter() - start) * 1000.0
        if resp.status >= 500 and resp.status not in passed:
            return endpoint.error_reply(protocol, 502, f"backend {self.name} failed with HTTP {resp.status}",
                                        backend=self.name)
        return endpoint.Reply(
            resp.status, resp.data,
            endpoint.join_timing(resp.headers.get("Server-Timing", ""), endpoint.timing_entry("forward", forward_ms)),
            resp.headers.get("Content-Type", "application/json"),
            tuple((name, resp.headers[name]) for name in _RESPONSE_HEADERS if name in resp.headers),
        )

    def get_json(self, path: str) -> dict | None:
        try:
            resp = self.pool.urlopen("GET", path, retries=False, timeout=2.0)
            return json.loads(resp.data) if resp.status == 200 else None
        except (urllib3.exceptions.HTTPError, ValueError):
            return None

    def ok(self, path: str) -> bool:
        try:
            return self.pool.urlopen("GET", path, retries=False, timeout=2.0).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    def close(self) -> None:
        self.pool.close()


class RemoteBackend:
    """What every backend in another process shares: its name, limits, the model version, and batching."""

    speaks: frozenset[str] = frozenset()
    infers_tensors = False  # True: every request is decoded here, by the card, so it is read at start

    def __init__(self, settings: Settings):
        self.name = settings.arch
        self.model_name = settings.model_name
        self.max_batch = settings.max_batch
        self._settings, self._card = settings, None
        if self.infers_tensors:
            self._card = read_card(settings)  # before the first request, which would otherwise pay for it
        self._version = _model_version(settings)
        self._batching = (settings.batch_max_size, settings.batch_timeout_ms)
        self.address = registry.backend_address(settings)

    @property
    def card(self):
        """Read once, when first needed: a backend that is passed every request (a model server) never
        needs it, and reading a SavedModel's signature loads TensorFlow into the front end."""
        if self._card is None:
            self._card = read_card(self._settings)
        return self._card

    @card.setter
    def card(self, value) -> None:
        self._card = value

    def model_version(self) -> int:
        return self._version

    def batching(self) -> tuple[int, float]:
        return self._batching

    def ready(self) -> bool:
        return self.health()

    def _upstream(self, settings: Settings, port: int) -> Upstream:
        return Upstream(self.name, settings.backend_host, port, settings)


class ModelServerBackend(RemoteBackend):
    """A Flask or FastAPI model server: it speaks every protocol, so bodies are passed on, never decoded here."""

    speaks = frozenset(PROTOCOLS)

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.http = self._upstream(settings, int(self.address.rsplit(":", 1)[1]))

    def forward(self, method, path, body, headers) -> endpoint.Reply:
        return self.http.forward(method, path, body, headers)

    def infer(self, inputs: dict[str, np.ndarray]) -> Inferred:
        raise InferenceFailed(500, "a model server is always passed the request as it came")

    def health(self) -> bool:
        return self.http.ok("/healthz")

    def info(self) -> dict:
        doc = self.http.get_json("/v1/info")
        return {"backend": doc} if doc is not None else {}

    def close(self) -> None:
        self.http.close()


def build(settings: Settings):
    """The backend class the registry names for ``settings.arch``."""
    module, _, cls = registry.get(settings.arch).backend.partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
