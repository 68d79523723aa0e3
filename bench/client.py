"""The load generator: pre-encoded bodies over persistent keep-alive connections.

Every request is encoded before timing starts (encoding is the client's work,
not the server's), headers included, so that it leaves in one send. Each
worker thread owns one keep-alive ``http.client`` connection with TCP_NODELAY,
and ``http.client`` parses the answers: the cheapest client the standard
library has.

- Closed loop (:meth:`Client.closed_loop`): K threads, each taking the next
  request index from a shared counter and sending it as soon as its previous
  answer is in. K = 1 is the study's sequential client. The latency of a
  request is measured from the moment it was sent.
- Open loop (:meth:`Client.open_loop`): a scheduler releases request i at its
  scheduled time (constant or seeded Poisson inter-arrival times) to a pool of
  connections. Latency is measured from the *scheduled* time, so a stall of
  the server (or of a busy pool) shows in the latencies instead of silently
  delaying the requests after it (coordinated omission).

A request says its own path, extra headers and protocol (:func:`prepare_v2`:
KServe v2 infer requests with the binary tensor extension, what perf_analyzer
sends), so the same client drives ``/v1/predict`` and ``/v2/models/.../infer``.
Answers are checked against the labels after the clock has stopped.
"""
from __future__ import annotations

import http.client
import itertools
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urlsplit

import numpy as np

from bench import timing
from servebench import codecs, kserve

PREDICT_PATH = "/v1/predict"
V2_INFER_PATH = "/v2/models/cifar10_cnn/infer"  # KServe v2 (Open Inference Protocol), what perf_analyzer sends
PROTOCOLS = ("v1", "v2")
TIMEOUT_S = 60.0
JOIN_GRACE_S = TIMEOUT_S + 5.0  # an in-flight request ends by its own timeout
# A keep-alive connection the server closed while idle fails on first use; send once more.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


@dataclass(frozen=True)
class Request:
    index: int
    body: bytes
    content_type: str
    labels: np.ndarray  # the true class of each image in the body
    path: str | None = None  # None: the client's path (/v1/predict)
    headers: tuple[tuple[str, str], ...] = ()  # sent after Content-Type and Content-Length
    protocol: str = "v1"  # how the answer reads: v1 (/v1/predict JSON) or v2 (KServe v2 infer response)
    head: bytes = field(init=False, repr=False)  # its headers after the request line and Host, ready to send

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}: {', '.join(PROTOCOLS)}")
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        head = (f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n{extra}\r\n"
                .encode("latin-1"))
        object.__setattr__(self, "head", head)

    @property
    def images(self) -> int:
        return len(self.labels)


@dataclass(slots=True)
class Result:
    """One request as measured; times are ``time.perf_counter()`` seconds."""

    request: Request
    scheduled: float
    sent: float
    end: float
    status: int  # 0: no HTTP answer (connection error, timeout)
    server_timing: dict = field(default_factory=dict)
    upstream_header_ms: float | None = None
    predicted: np.ndarray | None = None
    correct: int = 0
    error: str = ""

    @property
    def latency_ms(self) -> float:
        return (self.end - self.scheduled) * 1000.0

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


def prepare(images: np.ndarray, labels: np.ndarray, batch: int, codec: str,
            progress: Callable[[Iterable], Iterable] = iter) -> list[Request]:
    """Cut the images into requests of ``batch`` images and encode each body once."""
    starts = range(0, len(images), batch)
    requests = []
    for i, start in enumerate(progress(starts)):
        body, content_type = codecs.encode(images[start:start + batch], codec)
        requests.append(Request(i, body, content_type, np.asarray(labels[start:start + batch])))
    return requests


def prepare_v2(images: np.ndarray, labels: np.ndarray, batch: int = 1, binary: bool = True,
               progress: Callable[[Iterable], Iterable] = iter) -> list[Request]:
    """KServe v2 infer requests of ``batch`` images each, to /v2/models/cifar10_cnn/infer.

    ``binary``: the binary tensor extension both ways (the input's bytes after a
    JSON header, outputs asked for as binary), as perf_analyzer sends them.
    """
    requests = []
    for i, start in enumerate(progress(range(0, len(images), batch))):
        body, headers = kserve.encode_infer_request(images[start:start + batch], binary=binary,
                                                    binary_outputs=binary)
        extra = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
        requests.append(Request(i, body, content_type, np.asarray(labels[start:start + batch]),
                                path=V2_INFER_PATH, headers=tuple(extra.items()), protocol="v2"))
    return requests


class Connection(http.client.HTTPConnection):
    """A keep-alive connection; Nagle off so small requests leave at once."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def check(result: Result, body: bytes, headers=None) -> Result:
    """Compare the predictions with the labels (after the clock has stopped)."""
    if result.status != 200:
        return result
    try:
        if result.request.protocol == "v2":
            classes = kserve.decode_infer_response(body, headers or {}).classes
        else:
            classes = codecs.decode_predictions(body).classes
    except (ValueError, KeyError, TypeError) as exc:
        result.error = f"unreadable predictions: {exc}"[:200]
        return result
    if len(classes) != result.request.images:
        result.error = f"{len(classes)} predictions for {result.request.images} images"
        return result
    result.predicted = classes
    result.correct = int(np.count_nonzero(classes == result.request.labels))
    return result


class Client:
    """Connections to one server, kept open across warm-up, overhead runs and passes."""

    def __init__(self, url: str, path: str = PREDICT_PATH, timeout_s: float = TIMEOUT_S):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = path
        self.timeout_s = timeout_s
        self._request_lines: dict[str, bytes] = {}
        self._request_line = self.request_line(path)
        self._connections: list[Connection] = []

    def request_line(self, path: str) -> bytes:
        """``POST <path>`` and the Host header, built once per path."""
        line = self._request_lines.get(path)
        if line is None:
            line = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n".encode("latin-1")
            self._request_lines[path] = line
        return line

    def connection(self, k: int) -> Connection:
        while len(self._connections) <= k:
            self._connections.append(Connection(self.host, self.port, timeout=self.timeout_s))
        return self._connections[k]

    def close(self) -> None:
        for conn in self._connections:
            conn.close()

    # ---------------------------------------------------------- one request
    def exchange(self, conn: Connection, req: Request, scheduled: float) -> Result:
        """Send one request and read its answer; timed from ``scheduled``.

        The request goes out whole in one send (``conn.request`` would build the
        headers anew each time and send them and the body apart: two segments,
        two wake-ups of the server); http.client reads the answer.
        """
        line = self._request_line if req.path is None else self.request_line(req.path)
        wire = line + req.head + req.body
        sent = time.perf_counter()
        for attempt in (1, 2):
            try:
                conn.send(wire)  # connects first when the connection is closed
                resp = http.client.HTTPResponse(conn.sock, method="POST")
                resp.begin()
                body = resp.read()
                end = time.perf_counter()
                if resp.will_close:
                    conn.close()
                break
            except _STALE_CONNECTION as exc:
                conn.close()
                if attempt == 2:
                    return Result(req, scheduled, sent, time.perf_counter(), 0, error=f"{type(exc).__name__}: {exc}"[:200])
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                return Result(req, scheduled, sent, time.perf_counter(), 0, error=f"{type(exc).__name__}: {exc}"[:200])
        result = Result(
            req, scheduled, sent, end, resp.status,
            server_timing=timing.parse_server_timing(resp.getheader("Server-Timing")),
            upstream_header_ms=timing.parse_seconds_ms(resp.getheader("X-Upstream-Header-Time")),
        )
        if resp.status != 200:
            result.error = body[:200].decode("utf-8", "replace")
        return check(result, body, resp.headers if req.protocol == "v2" else None)

    # ---------------------------------------------------------- load shapes
    def closed_loop(self, requests: list[Request], concurrency: int,
                    on_result: Callable[[Result], None], stop: threading.Event) -> None:
        """K threads, each sending the next request as soon as its last answer is in."""
        counter = itertools.count()  # next() on it is atomic under the GIL
        n = len(requests)

        def worker(conn: Connection) -> None:
            while not stop.is_set():
                i = next(counter)
                if i >= n:
                    return
                now = time.perf_counter()
                on_result(self.exchange(conn, requests[i], now))

        _run(worker, [self.connection(k) for k in range(concurrency)], stop)

    def open_loop(self, requests: list[Request], offsets_s: np.ndarray, connections: int,
                  on_result: Callable[[Result], None], stop: threading.Event, start: float) -> None:
        """Release request i at ``start + offsets_s[i]`` to the first free connection."""
        ready: queue.SimpleQueue = queue.SimpleQueue()

        def schedule() -> None:
            try:
                for i, offset in enumerate(offsets_s[:len(requests)]):
                    due = start + float(offset)
                    delay = due - time.perf_counter()
                    if delay > 0 and stop.wait(delay):
                        return
                    if stop.is_set():
                        return
                    ready.put((i, due))
            finally:
                for _ in range(connections):
                    ready.put(None)

        def worker(conn: Connection) -> None:
            while True:
                item = ready.get()
                if item is None or stop.is_set():
                    return
                i, due = item
                on_result(self.exchange(conn, requests[i], due))

        scheduler = threading.Thread(target=schedule, name="open-loop-scheduler", daemon=True)
        scheduler.start()
        try:
            _run(worker, [self.connection(k) for k in range(connections)], stop)
        finally:
            scheduler.join(timeout=1.0)


class Cycled(Sequence):
    """The prepared requests repeated to length ``n`` without copying them."""

    def __init__(self, requests: list[Request], n: int):
        self.requests, self.n = requests, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.requests[(i + self.n if i < 0 else i) % len(self.requests)]


def warm_up(c: Client, requests: list[Request], n: int, concurrency: int) -> Counter:
    """Send ``n`` of the requests (cycled), uncounted, ``concurrency`` at a time; the answers by status."""
    statuses: Counter = Counter()
    if n > 0 and requests:
        sample = Cycled(requests, n)
        c.closed_loop(sample, max(1, min(concurrency, n)), lambda r: statuses.update([r.status]), threading.Event())
    return statuses


def arrival_offsets(n: int, rate: float, arrivals: str, seed: int) -> np.ndarray:
    """Send times (seconds from the start) of n requests at ``rate`` requests/s."""
    if arrivals == "constant":
        return np.arange(n, dtype=float) / rate
    if arrivals == "poisson":
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n)
        return np.concatenate(([0.0], np.cumsum(gaps[:-1])))
    raise ValueError(f"unknown arrivals {arrivals!r}: constant or poisson")


def _run(worker: Callable, connections: list[Connection], stop: threading.Event) -> None:
    """Run one worker thread per connection; Ctrl-C/SIGTERM stop sending, in-flight answers finish."""
    threads = [threading.Thread(target=worker, args=(c,), name=f"client-{k}", daemon=True)
               for k, c in enumerate(connections)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short waits: the main thread must stay free for signals
    except BaseException:
        stop.set()
        deadline = time.monotonic() + JOIN_GRACE_S
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        raise
