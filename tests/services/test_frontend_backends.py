"""The front end's client of a model server: kept-alive connections that die without an answer.

The server here is a test double (raw sockets on loopback) that misbehaves on
purpose, the way a backend does after a crash or an idle timeout.
"""
from __future__ import annotations

import socket
import threading

import pytest

from servebench.settings import Settings
from services.frontend.backends import ModelServerBackend

pytestmark = pytest.mark.unit

OK_BODY = b'{"predictions":[]}'


class FlakyKeepAliveServer:
    """Answers a connection's first request; on a reused connection, reads the request and hangs up.

    ``fresh_dies=True``: every connection is closed unanswered (a backend that crashes on this input).
    """

    def __init__(self, fresh_dies: bool = False):
        self.fresh_dies = fresh_dies
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.answered = 0
        self._count = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            for n in range(2):
                if not _read_request(conn):
                    return
                if self.fresh_dies or n == 1:
                    return  # hang up without an answer
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(OK_BODY)}\r\n\r\n").encode()
                with self._count:  # counted before the client can see the answer
                    self.answered += 1
                conn.sendall(head + OK_BODY)

    def close(self) -> None:
        self.sock.close()


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


@pytest.fixture
def backend_for():
    made = []

    def make(server: FlakyKeepAliveServer) -> ModelServerBackend:
        b = ModelServerBackend(Settings(arch="fastapi", fastapi_port=server.port, backend_timeout_s=5))
        made.append((b, server))
        return b

    yield make
    for b, server in made:
        b.close()
        server.close()


def test_a_request_unanswered_on_a_reused_connection_is_retried_on_a_new_one(backend_for):
    server = FlakyKeepAliveServer()
    backend = backend_for(server)
    for _ in range(5):  # each second use of a connection is hung up on
        reply = backend.forward("POST", "/v1/predict", b"\0" * 3072, {"Content-Type": "application/octet-stream"})
        assert reply.status == 200, reply.body
    assert server.answered == 5


def test_a_new_connection_that_dies_is_the_backends_failure_and_not_retried(backend_for):
    server = FlakyKeepAliveServer(fresh_dies=True)
    backend = backend_for(server)
    reply = backend.forward("POST", "/v1/predict", b"\0" * 3072, {"Content-Type": "application/octet-stream"})
    assert reply.status == 502
    assert b"fastapi" in reply.body and b"127.0.0.1" not in reply.body and str(server.port).encode() not in reply.body
    assert server.connections == 1  # the request was sent once


def test_unreachable_backend_is_named_without_its_address():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = ModelServerBackend(Settings(arch="flask", flask_port=port, backend_timeout_s=5))
    try:
        reply = backend.forward("POST", "/v1/predict", b"\0" * 3072, {"Content-Type": "application/octet-stream"})
    finally:
        backend.close()
    assert reply.status == 502
    assert b"flask unreachable" in reply.body and str(port).encode() not in reply.body


class ScriptedServer:
    """Answers each request with the next canned answer, and keeps each request's head."""

    def __init__(self, answers: list[bytes]):
        self.answers, self.heads = list(answers), []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while self.answers:
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.heads.append(data.partition(b"\r\n\r\n")[0])
                    answer = self.answers.pop(0)
                    conn.sendall(answer)
                    if b"Connection: close" in answer:
                        break

    def close(self) -> None:
        self.sock.close()


def _backend(server) -> ModelServerBackend:
    return ModelServerBackend(Settings(arch="flask", flask_port=server.port, backend_timeout_s=5))


def test_chunked_close_delimited_and_head_answers_are_read_whole():
    server = ScriptedServer([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer-Timing: model;dur=1.000\r\n\r\n"
        b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n",  # a HEAD answer: the length, no body
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{}",
    ])
    backend = _backend(server)
    try:
        reply = backend.forward("POST", "/v1/predict", b"\0" * 3072, {"Content-Type": "application/octet-stream"})
        assert (reply.status, reply.body) == (200, b'{"a":1}')
        assert reply.timing.startswith("model;dur=1.000, forward;dur=")
        reply = backend.forward("HEAD", "/v2/health/ready", b"", {})
        assert (reply.status, reply.body) == (200, b"")
        assert backend.forward("GET", "/v2/health/ready", b"", {}).status == 502  # a backend's 5xx
    finally:
        backend.close()
        server.close()
    assert server.heads[0].startswith(b"POST /v1/predict HTTP/1.1\r\n") and b"Content-Length: 3072" in server.heads[0]


def test_a_decoded_path_is_quoted_again_so_it_cannot_split_the_request():
    server = ScriptedServer([b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}"])
    backend = _backend(server)
    try:
        assert backend.forward("GET", "/v2/models/a b\r\nX-Injected: 1/ready", b"", {}).status == 404
    finally:
        backend.close()
        server.close()
    assert server.heads[0].split(b"\r\n")[0] == b"GET /v2/models/a%20b%0D%0AX-Injected:%201/ready HTTP/1.1"
