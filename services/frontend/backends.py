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
import json
import socket
import time
from collections.abc import Mapping
from urllib.parse import quote

import httptools
import numpy as np

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
_MAX_HEAD, _MAX_HEADERS = 65536, 100  # an answer's status line and headers, in bytes; headers in number
# Request paths arrive percent-decoded (Django's request.path): quoted again, byte for byte, so a decoded
# space or CR LF cannot split the request line, and the backend decodes exactly the path Django saw.
_PATH_SAFE = "/:@!$&'()*+,;=~"


class _Headers(dict):
    """A response's headers, looked up by any case (stored lowercased)."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())


class Response:
    """A backend's whole answer: ``status``, ``headers`` and the body, ``data``."""

    __slots__ = ("status", "headers", "data")

    def __init__(self, status: int, headers: _Headers, data: bytes):
        self.status, self.headers, self.data = status, headers, data


class _Answer:
    """httptools' callbacks for one answer: interim (1xx) answers are read and dropped.

    llhttp cannot be told that an answer is to a HEAD request (whose Content-Length names a body
    that is never sent), so such an answer ends with its headers (``head_only``).
    """

    __slots__ = ("parser", "head_only", "status", "fields", "parts", "count", "keep", "headed", "done")

    def __init__(self, head_only: bool):
        self.parser = httptools.HttpResponseParser(self)
        self.head_only, self.status, self.keep, self.headed, self.done = head_only, 0, False, False, False
        self.fields, self.parts, self.count = _Headers(), [], 0

    def on_message_begin(self) -> None:
        if self.done:  # bytes past the answer: the connection's state is unknown, the answer is kept
            self.keep = False
        else:
            self.fields, self.parts, self.count = _Headers(), [], 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done:
            self.count += 1  # checked by the reader: an exception raised here would reach it renamed
            self.fields[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if not self.done and self.parser.get_status_code() >= 200:
            self.status, self.headed = self.parser.get_status_code(), True
            self.keep = self.parser.should_keep_alive()
            self.done = self.head_only

    def on_body(self, data: bytes) -> None:
        if self.done:
            self.keep = False
        else:
            self.parts.append(data)

    def on_message_complete(self) -> None:
        if self.headed and not self.done:
            self.keep = self.keep and self.parser.should_keep_alive()  # llhttp forgets it after this
            self.done = True

    def ends_at_close(self) -> bool:
        """Whether the answer's body is the rest of the connection (neither a length nor chunked)."""
        coding = self.fields.get("transfer-encoding", "").lower()
        return self.headed and "content-length" not in self.fields and not coding.endswith("chunked")


class _Connection:
    """One kept-alive HTTP/1.1 connection to a backend, used by one thread at a time.

    Not urllib3: its pool cost 0.36-0.48 ms of the front end's CPU per forwarded request (http.client
    parses every answer's headers with the email package), more than Django itself. Answers are
    parsed by httptools (llhttp, as in uvicorn; measured at the CPU of the parser once written here
    by hand): Content-Length, chunked, or ended by a close.
    """

    def __init__(self, host: str, port: int, connect_timeout: float):
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"Host: {host}:{port}\r\n".encode()
        self.used = 0  # requests sent on it: a reused one may have been closed by the backend meanwhile

    def exchange(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str],
                 timeout: float) -> tuple[Response, bool]:
        """The answer, and whether the connection may be used again."""
        self.used += 1
        self.sock.settimeout(timeout)
        head = [f"{method} {quote(path, safe=_PATH_SAFE)} HTTP/1.1\r\n".encode(), self.host]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # never passed on: it would end the header early
                continue
            head.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
        if body is not None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        self.sock.sendall(b"".join(head) + body if body else b"".join(head))
        answer, got = _Answer(method == "HEAD"), 0
        while not answer.done:
            data = self.sock.recv(_MAX_HEAD)
            if not data:
                if not got:
                    raise http.client.RemoteDisconnected("closed the connection without answering")
                if not answer.ends_at_close():
                    raise http.client.IncompleteRead(b"")
                answer.keep = False
                break
            got += len(data)
            if not answer.headed and got > _MAX_HEAD:  # one recv() is never more than _MAX_HEAD
                raise http.client.HTTPException(f"answer head over {_MAX_HEAD} bytes")
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserError:
                if not answer.done:  # bytes after a complete answer only cost the connection
                    raise
                answer.keep = False
            if answer.count > _MAX_HEADERS:
                raise http.client.HTTPException(f"more than {_MAX_HEADERS} headers")
        return Response(answer.status, answer.fields, b"".join(answer.parts)), answer.keep

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class UpstreamFailed(Exception):
    """A backend that did not answer; ``status`` (502/504) and a message that names it, never its address."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Upstream:
    """Kept-alive connections to a backend's HTTP port: up to ``backend_pool_size`` idle, more made when busy."""

    def __init__(self, name: str, host: str, port: int, settings: Settings):
        self.name, self.host, self.port = name, host, port
        self.connect_timeout, self.read_timeout = 2.0, settings.backend_timeout_s
        self.maxsize = settings.backend_pool_size
        self._idle: list[_Connection] = []  # list.append and .pop are atomic: no lock

    def send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str],
             timeout: float | None = None) -> Response:
        """The backend's answer; raises :class:`UpstreamFailed` when none came."""
        timeout = self.read_timeout if timeout is None else timeout
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._connect()
        try:
            try:
                resp, keep = conn.exchange(method, path, body, headers, timeout)
            except _NO_ANSWER:
                # A kept-alive connection the backend had closed (idle timeout, a worker that exited
                # after its last answer) fails without an answer: once more, on a new connection.
                # A new connection that dies is the backend's failure and is not retried.
                if conn.used == 1:
                    raise
                conn.close()
                conn = self._connect()
                resp, keep = conn.exchange(method, path, body, headers, timeout)
        except (OSError, http.client.HTTPException, httptools.HttpParserError) as exc:
            conn.close()
            raise self._failure(exc) from None
        except BaseException:
            conn.close()
            raise
        if keep and len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            conn.close()
        return resp

    def _connect(self) -> _Connection:
        # Clients learn which backend failed and how, never its internal address.
        try:
            return _Connection(self.host, self.port, self.connect_timeout)
        except TimeoutError:
            raise UpstreamFailed(504, f"backend {self.name} timed out") from None
        except OSError:
            raise UpstreamFailed(502, f"backend {self.name} unreachable") from None

    def _failure(self, exc: Exception) -> UpstreamFailed:
        if isinstance(exc, TimeoutError):
            return UpstreamFailed(504, f"backend {self.name} timed out")
        if isinstance(exc, _NO_ANSWER):
            return UpstreamFailed(502, f"backend {self.name} closed the connection without answering")
        return UpstreamFailed(502, f"backend {self.name} failed: {type(exc).__name__}")

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
            resp = self.send("GET", path, None, {}, timeout=2.0)
            return json.loads(resp.data) if resp.status == 200 else None
        except (UpstreamFailed, ValueError):
            return None

    def ok(self, path: str) -> bool:
        try:
            return self.send("GET", path, None, {}, timeout=2.0).status == 200
        except UpstreamFailed:
            return False

    def close(self) -> None:
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                break


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
    return registry.found(registry.get(settings.arch).backend)(settings)
