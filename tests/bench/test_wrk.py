"""bench.wrk against a fixed-answer socket server (a test double): wrk posts our bodies, and its figures are read."""
from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from bench import client, wrk

pytestmark = [pytest.mark.unit, pytest.mark.skipif(wrk.missing() is not None, reason=wrk.MISSING)]

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class RecordingServer:
    """Answers every request with ANSWER and keeps each request's headers and body."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[bytes, bytes]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self._answer(conn)
        except OSError:  # wrk resets its connections as it stops
            pass

    def _answer(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                size = int(next(line.split(b":")[1] for line in head.lower().split(b"\r\n")
                                if line.startswith(b"content-length")))
                while len(rest) < size:
                    data = conn.recv(65536)
                    if not data:
                        return
                    rest += data
                self.seen.append((head, rest[:size]))
                buf = rest[size:]
                conn.sendall(ANSWER)


def test_wrk_posts_our_encoded_bodies_and_reports_its_figures(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, size=(5, 32, 32, 3), dtype=np.uint8)
    requests = client.prepare_v2(images, np.zeros(5, dtype=int))
    server = RecordingServer()
    try:
        out = wrk.run(f"http://127.0.0.1:{server.port}", requests, concurrency=2, duration_s=1, work_dir=tmp_path)
    finally:
        server.sock.close()
    assert out["requests"] > 10 and out["errors"] == 0 and out["throughput"] > 0
    assert 0 < out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"] and out["client_cpu_ms_per_request"] > 0
    bodies = {r.body for r in requests}
    assert {body for _, body in server.seen} == bodies  # every one of ours, in turn, and nothing else
    head = server.seen[0][0].lower()
    assert head.startswith(b"post /v2/models/cifar10_cnn/infer http/1.1")
    assert b"inference-header-content-length: " in head and b"content-type: application/octet-stream" in head


def test_no_summary_is_a_clear_error():
    with pytest.raises(wrk.WrkError, match="no summary"):
        wrk.parse("Running 1s test @ http://127.0.0.1:9\n  unable to connect to 127.0.0.1:9 Connection refused\n")
