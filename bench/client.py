"""The load generator: pre-encoded bodies over persistent keep-alive connections.

Every request is encoded before timing starts (encoding is the client's work,
not the server's), headers included, so that it leaves in one send. Each
worker thread owns one keep-alive connection (a plain socket, TCP_NODELAY) and
reads its answers with a minimal HTTP/1.1 reader (:class:`Connection`): the
client's CPU per request is the harness's error, so it is kept small.

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
sends), so the same client drives ``/v1/predict``, ``/v2/models/.../infer`` and
TF Serving's ``:predict``. A request may carry its own answer reader (any
model's requests, built by :mod:`bench.workload`). Answers are read after the
clock has stopped: the rows counted, and classes checked against the labels
when the request has labels and the model is a classifier (else ``correct`` is
None: not checked).
"""
from __future__ import annotations

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
PROTOCOLS = ("v1", "v2", "tfserving")
TIMEOUT_S = 60.0
JOIN_GRACE_S = TIMEOUT_S + 5.0  # an in-flight request ends by its own timeout
RECV_BYTES = 65536


@dataclass(frozen=True)
class Request:
    index: int
    body: bytes
    content_type: str
    labels: np.ndarray | None  # the true class of each row in the body; None: none to check
    path: str | None = None  # None: the client's path (/v1/predict)
    headers: tuple[tuple[str, str], ...] = ()  # sent after Content-Type and Content-Length
    protocol: str = "v1"  # how the answer reads: v1 (/v1/predict JSON), v2 (KServe v2), tfserving (REST)
    rows: int | None = None  # rows in the body when there are no labels to count them
    reader: Callable | None = None  # (body, headers) -> (rows, classes or None); None: the CNN's answers
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
        """Rows (images, for an image model) in the body."""
        return len(self.labels) if self.labels is not None else int(self.rows or 0)


class Result:
    """One request as measured; times are ``time.perf_counter()`` seconds.

    The answer is checked against the labels when first asked (``ok``,
    ``correct``, ``predicted``, ``error``), not as it arrives: decoding an answer
    costs a Python client about as much CPU as sending it, so the recorder asks
    after the pass, and the client takes that much less from the stack it measures.
    """

    __slots__ = ("request", "scheduled", "sent", "end", "status", "server_timing", "upstream_header_ms",
                 "_answer", "_predicted", "_correct", "_error")

    def __init__(self, request: Request, scheduled: float, sent: float, end: float, status: int,
                 server_timing: dict | None = None, upstream_header_ms: float | None = None,
                 predicted: np.ndarray | None = None, correct: int | None = 0, error: str = "",
                 answer: Answer | None = None):
        self.request, self.scheduled, self.sent, self.end, self.status = request, scheduled, sent, end, status
        self.server_timing = {} if server_timing is None else server_timing
        self.upstream_header_ms = upstream_header_ms
        self._predicted, self._correct, self._error = predicted, correct, error
        self._answer = answer  # 0 = not yet checked: the status 0 (no HTTP answer) is 0 as well

    def settle(self) -> Result:
        """Check the answer now, once; its bytes are dropped then."""
        answer, self._answer = self._answer, None
        if answer is not None:
            check(self, answer.body, answer.headers() if self.request.protocol != "v1" else None)
        return self

    @property
    def predicted(self) -> np.ndarray | None:
        return self.settle()._predicted

    @predicted.setter
    def predicted(self, value) -> None:
        self._predicted = value

    @property
    def correct(self) -> int | None:
        """Rows whose class matched the label; None: not checked (no labels, or not a classifier)."""
        return self.settle()._correct

    @correct.setter
    def correct(self, value: int | None) -> None:
        self._correct = value

    @property
    def error(self) -> str:
        return self.settle()._error

    @error.setter
    def error(self, value: str) -> None:
        self._error = value

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


class ConnectionClosed(ConnectionError):
    """The server closed the connection before its answer was complete."""


class ProtocolError(ValueError):
    """An answer that is not HTTP/1.x as this client reads it."""


@dataclass(slots=True)
class Answer:
    status: int
    head: bytes  # the status line and headers, lower-cased, without the blank line
    body: bytes
    will_close: bool

    def header(self, name: bytes) -> str | None:
        """One header's value (``name`` lower-case), read from the head only when asked."""
        i = self.head.find(b"\r\n" + name + b":")
        if i < 0:
            return None
        start = i + len(name) + 3
        end = self.head.find(b"\r\n", start)
        return self.head[start:end if end >= 0 else len(self.head)].strip().decode("latin-1")

    def headers(self) -> dict[str, str]:
        lines = self.head.split(b"\r\n")[1:]
        return {k.strip().decode("latin-1"): v.strip().decode("latin-1")
                for k, _, v in (line.partition(b":") for line in lines)}


class Connection:
    """One keep-alive HTTP/1.1 connection on a plain socket, Nagle off.

    http.client parses every answer's headers with the email package, about
    0.1 ms of CPU an answer; these answers are a status line, a few headers and
    a Content-Length (or chunked) body, which bytes.find reads in a few
    microseconds. Headers are lower-cased once, and read only when asked.
    """

    def __init__(self, host: str, port: int, timeout: float = TIMEOUT_S):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self._buf = b""

    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._buf = b""

    def send(self, data: bytes) -> None:
        """Send ``data`` whole, connecting first when closed."""
        if self.sock is None:
            self.connect()
        self.sock.sendall(data)

    def _more(self) -> bytes:
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise ConnectionClosed("the server closed the connection")
        return data

    def read_answer(self) -> Answer:
        """The next answer on the connection; what follows it stays buffered."""
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            buf += self._more()
            end = buf.find(b"\r\n\r\n")
        head = buf[:end].lower()
        if not head.startswith(b"http/1.") or len(head) < 12:
            self.close()
            raise ProtocolError(f"not an HTTP/1.x answer: {bytes(buf[:40])!r}")
        status = int(head[9:12])
        start = end + 4
        will_close = (b"\r\nconnection: close" in head) or (head.startswith(b"http/1.0")
                                                              and b"\r\nconnection: keep-alive" not in head)
        i = head.find(b"\r\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r\n", i + 2)
            size = int(head[i + 17:j if j >= 0 else len(head)])
            while len(buf) - start < size:
                buf += self._more()
            body, self._buf = buf[start:start + size], buf[start + size:]
        elif b"\r\ntransfer-encoding: chunked" in head:
            body, self._buf = self._chunks(buf, start)
        else:  # the body runs to the end of the connection
            chunks = [buf[start:]]
            while True:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    break
                chunks.append(data)
            body, will_close, self._buf = b"".join(chunks), True, b""
        if will_close:
            self.close()
        return Answer(status, head, body, will_close)

    def _chunks(self, buf: bytes, pos: int) -> tuple[bytes, bytes]:
        parts = []
        while True:
            eol = buf.find(b"\r\n", pos)
            while eol < 0:
                buf += self._more()
                eol = buf.find(b"\r\n", pos)
            size = int(buf[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            while len(buf) < pos + size + 2:
                buf += self._more()
            if size == 0:  # no trailers are expected; the blank line ends the body
                trailer_end = buf.find(b"\r\n", pos)
                while trailer_end < 0:
                    buf += self._more()
                    trailer_end = buf.find(b"\r\n", pos)
                return b"".join(parts), buf[trailer_end + 2:]
            parts.append(buf[pos:pos + size])
            pos += size + 2


# A keep-alive connection the server closed while idle fails on first use; send once more.
_STALE_CONNECTION = (ConnectionClosed, BrokenPipeError, ConnectionResetError)


def _cnn_classes(request: Request, body: bytes, headers) -> np.ndarray:
    if request.protocol == "v2":
        return kserve.decode_infer_response(body, headers or {}).classes
    if request.protocol == "v1":
        return codecs.decode_classes(body)
    raise ValueError(f"a {request.protocol} request needs a reader (bench.workload builds one)")


def check(result: Result, body: bytes, headers=None) -> Result:
    """Read the answer and compare its classes with the labels (after the clock has stopped)."""
    if result.status != 200:
        return result
    req = result.request
    try:
        if req.reader is not None:
            rows, classes = req.reader(body, headers or {})
        else:
            classes = _cnn_classes(req, body, headers)
            rows = len(classes)
    except Exception as exc:  # whatever a reader raises, the answer is invalid; the client thread goes on
        result._error = f"unreadable predictions: {exc}"[:200]
        return result
    if rows != req.images:
        result._error = f"{rows} predictions for {req.images} images"
        return result
    result._predicted = classes
    if classes is None or req.labels is None:
        result._correct = None  # not checked: no labels, or no classes to check
    else:
        result._correct = int(np.count_nonzero(np.asarray(classes) == req.labels))
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
            self._connections.append(Connection(self.host, self.port, self.timeout_s))
        return self._connections[k]

    def close(self) -> None:
        for conn in self._connections:
            conn.close()

    # ---------------------------------------------------------- one request
    def exchange(self, conn: Connection, req: Request, scheduled: float) -> Result:
        """Send one request and read its answer; timed from ``scheduled``.

        The request goes out whole in one send (request line, headers and body
        built once: one segment, one wake-up of the server); the clock stops as
        the last byte of the answer is read, before anything is parsed.
        """
        line = self._request_line if req.path is None else self.request_line(req.path)
        wire = line + req.head + req.body
        sent = time.perf_counter()
        for attempt in (1, 2):
            try:
                conn.send(wire)  # connects first when the connection is closed
                answer = conn.read_answer()
                end = time.perf_counter()
                break
            except _STALE_CONNECTION as exc:
                conn.close()
                if attempt == 2:
                    return Result(req, scheduled, sent, time.perf_counter(), 0, error=f"{type(exc).__name__}: {exc}"[:200])
            except (OSError, ValueError) as exc:
                conn.close()
                return Result(req, scheduled, sent, time.perf_counter(), 0, error=f"{type(exc).__name__}: {exc}"[:200])
        if answer.status != 200:
            return Result(req, scheduled, sent, end, answer.status,
                          server_timing=timing.parse_server_timing(answer.header(b"server-timing")),
                          upstream_header_ms=timing.parse_seconds_ms(answer.header(b"x-upstream-header-time")),
                          error=answer.body[:200].decode("utf-8", "replace"))
        return Result(req, scheduled, sent, end, 200,
                      server_timing=timing.parse_server_timing(answer.header(b"server-timing")),
                      upstream_header_ms=timing.parse_seconds_ms(answer.header(b"x-upstream-header-time")),
                      answer=answer)

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
