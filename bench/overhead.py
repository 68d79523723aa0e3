"""The harness's own cost per request, measured before every run.

A tiny HTTP/1.1 server (raw asyncio, on 127.0.0.1, in a thread of this
process) answers every request at once with a fixed 200 that looks like a real
answer: a predictions body of the right size and the same timing headers. The
very same client code (:class:`bench.client.Client`, closed loop, one
connection, the run's own pre-encoded bodies, a flushed CSV row per answer)
sends requests to it; the median time per request is the harness's overhead at
concurrency 1: Python's HTTP client, loopback and the trivial server.
``wall_per_request_ms`` adds what happens between two requests (checking the
answer, writing its row). The server shares this process's
interpreter, so the figure errs on the high side. Target: under 0.3 ms.
"""
from __future__ import annotations

import asyncio
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import results
from bench.client import Client, Request
from servebench import codecs

TARGET_MS = 0.3
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class _FixedReply(asyncio.Protocol):
    def __init__(self, reply: bytes):
        self.reply = reply
        self.buffer = bytearray()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.buffer += data
        while True:  # answer every complete request in the buffer (pipelining included)
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            match = _CONTENT_LENGTH.search(self.buffer, 0, head_end + 2)
            total = head_end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self.transport.write(self.reply)


class TrivialServer:
    """``with TrivialServer(body) as url:`` a server answering 200 with ``body`` to everything."""

    def __init__(self, body: bytes, headers: dict[str, str] | None = None):
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reply = head.encode() + b"\r\n" + body
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="trivial-server", daemon=True)
        self._server = None

    def __enter__(self) -> str:
        self._server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _FixedReply(self.reply), "127.0.0.1", 0))
        self._thread.start()
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc):
        async def close():
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def _reply_for(batch: int) -> bytes:
    classes = np.zeros(batch, dtype=np.int64)
    probabilities = np.full((batch, 10), 0.1, dtype=np.float32)
    return codecs.encode_predictions(codecs.Prediction(classes, probabilities), {"name": "trivial", "version": 0})


def measure(requests: list[Request], n: int = 1000, warmup: int = 50) -> dict:
    """Median (and more) time per request of the client against the trivial server."""
    if not requests or n < 1:
        return {"median_ms": None}
    batch = requests[0].images
    headers = {"Server-Timing": "decode;dur=0.001, model;dur=0.001, django;dur=0.002",
               "X-Upstream-Header-Time": "0.000"}
    sample = [requests[i % len(requests)] for i in range(n)]
    latencies: list[float] = []
    with TrivialServer(_reply_for(batch), headers) as url, tempfile.TemporaryDirectory() as tmp, \
            results.CsvLog(Path(tmp) / "requests.csv", results.REQUEST_COLUMNS) as log:
        client = Client(url)
        origin = time.perf_counter()

        def record(r) -> None:  # what a run does with each answer: a flushed CSV row
            latencies.append(r.latency_ms)
            log.row(results.request_row(0, r, origin))

        try:
            stop = threading.Event()
            client.closed_loop(sample[:warmup], 1, lambda r: None, stop)
            start = time.perf_counter()
            client.closed_loop(sample, 1, record, stop)
            wall = time.perf_counter() - start
        finally:
            client.close()
    stats = results.latency_stats(latencies)
    return {
        "median_ms": results.rounded(stats["p50"], 4),
        "p99_ms": stats["p99"],
        # everything between two requests too: checking the answer, writing its row
        "wall_per_request_ms": results.rounded(wall * 1000.0 / n, 4),
        "requests": n,
        "body_bytes": len(sample[0].body),
        "target_ms": TARGET_MS,
    }
