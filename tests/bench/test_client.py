"""The load generator's HTTP/1.1 reader and its deferred answer check, against a scripted socket server.

``ScriptedServer`` is a test double: it answers each request on a connection
with the next canned byte string of its script (split into small writes when
asked), so every framing case the reader must handle is exercised on a real
socket without a web framework in the way.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench import client, results
from bench.session import Recorder

pytestmark = pytest.mark.unit

BODY = json.dumps({"predictions": [{"class_id": 3, "class_name": "cat", "probabilities": [0.1] * 10}]}).encode()


def answer(body: bytes = BODY, status: str = "200 OK", extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return (f"{version} {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def chunked(body: bytes, sizes=(7, 30)) -> bytes:
    out, pos, k = b"", 0, 0
    while pos < len(body):
        n = sizes[k % len(sizes)]
        out += f"{min(n, len(body) - pos):x}\r\n".encode() + body[pos:pos + n] + b"\r\n"
        pos, k = pos + n, k + 1
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer-Timing: model;dur=1.5\r\n\r\n" + out + b"0\r\n\r\n"


class ScriptedServer:
    """Answers the i-th request of each connection with ``script[i]``; ``close_after`` closes a connection
    after that many answers; ``piece``: send answers in writes of this many bytes."""

    def __init__(self, script: list[bytes], close_after: int | None = None, piece: int | None = None):
        self.script, self.close_after, self.piece = script, close_after, piece
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf, served = b"", 0
        with conn:
            while served < len(self.script):
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                size = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                if line.lower().startswith(b"content-length")))
                while len(rest) < size:
                    rest += conn.recv(65536)
                buf = rest[size:]
                out = self.script[served]
                step = self.piece or len(out)
                for i in range(0, len(out), step):
                    conn.sendall(out[i:i + step])
                    if self.piece:
                        time.sleep(0.001)
                served += 1
                if self.close_after is not None and served % self.close_after == 0:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def request_one():
    images = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    return client.prepare(images, np.array([3]), 1, "raw")[0]


def exchange(server: ScriptedServer, req, n: int = 1) -> list[client.Result]:
    c = client.Client(f"http://127.0.0.1:{server.port}")
    conn = c.connection(0)
    try:
        return [c.exchange(conn, req, time.perf_counter()) for _ in range(n)]
    finally:
        c.close()
        server.close()


def test_content_length_answers_on_one_keep_alive_connection(request_one):
    server = ScriptedServer([answer(extra="Server-Timing: model;dur=2.0\r\n")] * 3)
    rs = exchange(server, request_one, 3)
    assert [r.status for r in rs] == [200] * 3
    assert all(r.ok and r.correct == 1 and list(r.predicted) == [3] for r in rs)
    assert rs[0].server_timing["model"] == pytest.approx(2.0)
    assert server.connections == 1


def test_answers_split_in_small_writes_and_chunked_bodies(request_one):
    rs = exchange(ScriptedServer([answer(), chunked(BODY)], piece=5), request_one, 2)
    assert [r.ok for r in rs] == [True, True]
    assert rs[1].server_timing["model"] == pytest.approx(1.5)


def test_connection_close_and_http_1_0_reconnect(request_one):
    server = ScriptedServer([answer(extra="Connection: close\r\n")], close_after=1)
    rs = exchange(server, request_one, 3)
    assert all(r.ok for r in rs)
    assert server.connections == 3
    server = ScriptedServer([answer(version="HTTP/1.0")], close_after=1)
    assert all(r.ok for r in exchange(server, request_one, 2))


def test_body_to_the_end_of_the_connection(request_one):
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY
    rs = exchange(ScriptedServer([raw], close_after=1), request_one, 2)
    assert all(r.ok and r.correct == 1 for r in rs)


def test_a_keep_alive_connection_closed_while_idle_is_retried_once(request_one):
    # The server closes after each answer without saying so: the next send finds the connection gone.
    server = ScriptedServer([answer()], close_after=1)
    rs = exchange(server, request_one, 3)
    assert all(r.ok for r in rs), [r.error for r in rs]


def test_errors_are_results_not_exceptions(request_one):
    rs = exchange(ScriptedServer([answer(b'{"error": "bad image"}', status="400 Bad Request")]), request_one)
    assert rs[0].status == 400 and not rs[0].ok and "bad image" in rs[0].error
    rs = exchange(ScriptedServer([b"SSH-2.0-OpenSSH\r\n\r\n"]), request_one)
    assert rs[0].status == 0 and "not an HTTP/1.x answer" in rs[0].error
    rs = exchange(ScriptedServer([answer(b"not json")]), request_one)
    assert rs[0].status == 200 and not rs[0].ok and "unreadable predictions" in rs[0].error
    dead = socket.create_server(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    c = client.Client(f"http://127.0.0.1:{port}")
    r = c.exchange(c.connection(0), request_one, time.perf_counter())
    assert r.status == 0 and r.error.startswith("ConnectionRefusedError")


def test_the_check_waits_until_asked(request_one, monkeypatch):
    calls = []
    real = client.check
    monkeypatch.setattr(client, "check", lambda *a, **k: calls.append(1) or real(*a, **k))
    r = exchange(ScriptedServer([answer()]), request_one)[0]
    assert calls == []  # nothing decoded on the timed path
    assert r.ok and r.correct == 1 and r.correct == 1
    assert calls == [1]  # once, then the answer's bytes are dropped


def test_recorder_writes_in_batches_and_everything_at_close(tmp_path: Path, request_one):
    log = results.CsvLog(tmp_path / "requests.csv", results.REQUEST_COLUMNS, flush_s=10.0)
    rec = Recorder(log, origin=0.0, batch=3)
    made = [client.Result(request_one, 1.0, 1.0, 1.002, 200, predicted=np.array([3]), correct=1) for _ in range(4)]
    for r in made[:2]:
        rec(r)
    assert rec.count == 0 and log.rows == 0  # waiting: not yet written, so not yet counted
    rec(made[2])
    assert rec.count == 3 and log.rows == 3
    rec(made[3])
    rec.flush()
    assert rec.count == 4
    rec.close()
    rec(made[0])  # late: neither written nor counted
    assert (rec.count, rec.late) == (4, 1)
    lines = (tmp_path / "requests.csv").read_text().splitlines()
    assert len(lines) == 1 + 4
    assert rec.latencies.count == 4
