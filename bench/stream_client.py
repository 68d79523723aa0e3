"""The harness's streaming client: a camera sending frames at a rate, with a window of frames in flight.

    python -m bench.stream_client --transport tcp|ws|grpc|http|http-new|inprocess --host H --port P
        [--rate 30 | (as fast as possible)] [--n 300] [--window 8] [--encoding raw|jpeg] [--quality 90]
        [--model cifar|yolo-tiny] [--deadline-ms 100] [--json OUT]

One sender thread takes frame i at its capture time (``start + i/rate``; as
fast as possible: as soon as the window has room), waits for room in the
window, and sends it; one receiver thread reads the replies, which carry
their frame's id and capture time, so several frames are in flight and each
frame's latency runs from its capture (a frame that waited for the window
shows it: no coordinated omission). Frames are encoded before the clock starts.

Transports (all carry the same CIFAR-10 test images, answers checked against the labels):

- ``tcp``: length-prefixed frames on one connection (servebench/frames.py);
- ``ws``: the same frames as WebSocket binary messages (``/v1/stream``);
- ``grpc``: bidirectional streaming, services/stream/stream.proto;
- ``http`` / ``http-new``: the per-request baselines: one ``POST /v1/predict``
  (raw body) per frame through nginx to the FastAPI stack, on ``window``
  keep-alive connections (``http``) or on a new connection each time
  (``http-new``, the study's "without a streaming server");
- ``inprocess``: the model in this process, frames decoded and run one at a
  time on a model thread: the ceiling the others are measured against.

A run's summary (:func:`summarize`): latency from capture p50/p90/p99, jitter
(mean absolute difference of consecutive frames' latencies), sustained
frames/s, deadline misses (later than one frame interval, and than
``deadline_ms``), dropped frames (the server's drops and frames never
answered), errors, accuracy, and bytes per frame each way as the client
library writes and reads them (HTTP: request and body bytes; gRPC: message
bytes plus gRPC's 5-byte prefix; on a shaped link the study also reads the
interface's counters). ``make bench ARCH=stream-tcp RATE=30`` runs it
through :func:`bench_arch`.
"""
from __future__ import annotations

import argparse
import json
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from servebench import frames

TRANSPORTS = ("tcp", "ws", "grpc", "http", "http-new", "inprocess")
# The architecture each networked transport measures (bench.run's hook dispatches on these).
ARCH_TRANSPORT = {"stream-tcp": "tcp", "stream-ws": "ws", "stream-grpc": "grpc"}
REPLY_TIMEOUT_S = 60.0
WS_PATH = "/v1/stream"


@dataclass(slots=True)
class FrameResult:
    frame_id: int
    capture: float  # perf_counter seconds
    sent: float = 0.0
    end: float = 0.0
    kind: str = "lost"  # answer, error, dropped, lost (never answered)
    cls: int = -1
    label: int = -1
    bytes_up: int = 0
    bytes_down: int = 0
    decode_us: int = 0
    queue_us: int = 0
    model_us: int = 0
    message: str = ""
    probabilities: np.ndarray | None = None

    @property
    def latency_ms(self) -> float:
        return (self.end - self.capture) * 1000.0


@dataclass
class Camera:
    """What the camera sends: the images, their labels, how they are encoded."""

    images: np.ndarray  # N x H x W x C uint8 (already at the model's size)
    labels: np.ndarray
    encoding: str = "raw"
    quality: int = 90
    payloads: list[bytes] = field(default_factory=list)

    def __post_init__(self):
        self.payloads = [frames.encode_image(im, self.encoding, self.quality) for im in self.images]

    def frame(self, i: int, capture_ns: int) -> bytes:
        """Frame i (cycled over the images) as the TCP/WebSocket bytes."""
        k = i % len(self.images)
        h, w, c = self.images[k].shape
        payload = self.payloads[k]
        return frames.Header(frames.IMAGE, i, capture_ns, frames.ENCODING_IDS[self.encoding], (h, w, c),
                             len(payload)).pack() + payload


def load_camera(n: int, model: str = "cifar", encoding: str = "raw", quality: int = 90, data_dir=None) -> Camera:
    """The first ``n`` CIFAR-10 test images (yolo-tiny: scaled up to 416x416), encoded as a camera would."""
    from servebench import data

    split = data.load_test(data_dir, limit=n)
    images = split.images
    if model == "yolo-tiny":
        from models.yolo_tiny import scale_up

        images = scale_up(images)
    return Camera(images, np.asarray(split.labels), encoding, quality)


# ------------------------------------------------------------------ transports
class Transport:
    """One stream to a server: send frames from one thread, read replies from another."""

    def __init__(self, camera: Camera):
        self.camera = camera

    def open(self) -> None: ...

    def send(self, i: int, capture_ns: int) -> int:
        """Send frame i; the bytes written."""
        raise NotImplementedError

    def recv(self) -> tuple[frames.Reply, int] | None:
        """The next reply and its bytes; None when the stream ended."""
        raise NotImplementedError

    def done_sending(self) -> None: ...

    def close(self) -> None: ...


class TcpTransport(Transport):
    def __init__(self, camera: Camera, host: str, port: int):
        super().__init__(camera)
        self.addr = (host, port)
        self.sock: socket.socket | None = None

    def open(self) -> None:
        self.sock = socket.create_connection(self.addr, timeout=REPLY_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rfile = self.sock.makefile("rb")

    def send(self, i: int, capture_ns: int) -> int:
        data = self.camera.frame(i, capture_ns)
        self.sock.sendall(data)
        return len(data)

    def recv(self):
        head = self._rfile.read(frames.HEADER_SIZE)
        if len(head) < frames.HEADER_SIZE:
            return None
        header = frames.parse_header(head, 1 << 24)
        payload = self._rfile.read(header.length)
        return frames.decode_reply(header, payload), frames.HEADER_SIZE + len(payload)

    def done_sending(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self.sock is not None:
            self._rfile.close()
            self.sock.close()


class WsTransport(Transport):
    def __init__(self, camera: Camera, host: str, port: int, path: str = WS_PATH):
        super().__init__(camera)
        self.uri = f"ws://{host}:{port}{path}"

    def open(self) -> None:
        from websockets.sync.client import connect

        self.ws = connect(self.uri, compression=None, max_size=1 << 24, open_timeout=REPLY_TIMEOUT_S)
        self.ws.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, i: int, capture_ns: int) -> int:
        data = self.camera.frame(i, capture_ns)
        self.ws.send(data)
        return len(data) + (8 if len(data) < 65536 else 14)  # WebSocket header with the client's mask

    def recv(self):
        from websockets.exceptions import ConnectionClosed

        try:
            message = self.ws.recv(timeout=REPLY_TIMEOUT_S)
        except (ConnectionClosed, TimeoutError):
            return None
        header, payload = frames.split(message, 1 << 24)
        return frames.decode_reply(header, payload), len(message) + 2

    def done_sending(self) -> None:
        pass  # a WebSocket has no half-close: the receiver closes once every frame is answered

    def close(self) -> None:
        self.ws.close()


class GrpcTransport(Transport):
    def __init__(self, camera: Camera, host: str, port: int):
        super().__init__(camera)
        self.target = f"{host}:{port}"
        self._q: queue.SimpleQueue = queue.SimpleQueue()

    def open(self) -> None:
        import grpc

        from services.stream import stream_pb2_grpc

        self.channel = grpc.insecure_channel(self.target, options=[("grpc.max_receive_message_length", 1 << 24),
                                                                  ("grpc.max_send_message_length", 1 << 24)])
        grpc.channel_ready_future(self.channel).result(timeout=REPLY_TIMEOUT_S)
        self.call = stream_pb2_grpc.FrameStreamStub(self.channel).Stream(iter(self._q.get, None))
        self._replies = iter(self.call)

    def message(self, i: int, capture_ns: int):
        from services.stream import stream_pb2

        k = i % len(self.camera.images)
        return stream_pb2.Frame(version=frames.VERSION, frame_id=i, capture_ns=capture_ns,
                                encoding=frames.ENCODING_IDS[self.camera.encoding],
                                shape=list(self.camera.images[k].shape), data=self.camera.payloads[k])

    def send(self, i: int, capture_ns: int) -> int:
        msg = self.message(i, capture_ns)
        self._q.put(msg)
        return msg.ByteSize() + 5

    def recv(self):
        import grpc

        from services.stream.grpc_service import from_proto

        try:
            msg = next(self._replies)
        except StopIteration:
            return None
        except grpc.RpcError as exc:
            return frames.Reply(frames.ERROR, 0, 0, code=0, message=f"grpc {exc.code().name}: {exc.details()}"), 0
        return from_proto(msg), msg.ByteSize() + 5

    def done_sending(self) -> None:
        self._q.put(None)

    def close(self) -> None:
        self._q.put(None)
        self.channel.close()


class HttpTransport(Transport):
    """The per-request baselines: each frame a POST /v1/predict (raw body) on one of ``window`` connections."""

    def __init__(self, camera: Camera, host: str, port: int, window: int, new_connection: bool):
        super().__init__(camera)
        from bench import client

        if camera.encoding != "raw":
            raise ValueError("the HTTP baselines send raw bodies (/v1/predict takes no JPEG): --encoding raw")
        self.client = client.Client(f"http://{host}:{port}")
        self.requests = client.prepare(camera.images, camera.labels, 1, "raw")
        self.window, self.new_connection = window, new_connection
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._worker, args=(k,), daemon=True, name=f"http-{k}")
                         for k in range(window)]

    def open(self) -> None:
        for t in self._threads:
            t.start()

    def _worker(self, k: int) -> None:
        conn = self.client.connection(k)
        while (item := self._work.get()) is not None:
            i, capture_ns = item
            req = self.requests[i % len(self.requests)]
            r = self.client.exchange(conn, req, time.perf_counter())
            if self.new_connection:
                conn.close()  # the next request connects anew: TCP handshake, nginx and uvicorn accept again
            wire = len(self.client.request_line(self.client.path)) + len(req.head) + len(req.body)
            if r.ok:
                reply = frames.Reply(frames.ANSWER, i, capture_ns, int(r.predicted[0]),
                                     model_us=int(1000 * (r.server_timing.get("model") or 0)))
            else:
                reply = frames.Reply(frames.ERROR, i, capture_ns, code=r.status, message=r.error[:200])
            self._replies.put((reply, wire, 0))

    def send(self, i: int, capture_ns: int) -> int:
        self._work.put((i, capture_ns))
        return 0  # counted with the reply (the worker builds the request)

    def recv(self):
        item = self._replies.get()
        if item is None:
            return None
        reply, up, down = item
        return reply, (up, down)

    def done_sending(self) -> None:
        for _ in self._threads:
            self._work.put(None)

        def last():
            for t in self._threads:
                t.join()
            self._replies.put(None)

        threading.Thread(target=last, daemon=True).start()

    def close(self) -> None:
        self.client.close()


class InProcessTransport(Transport):
    """The model in this process, on a thread of its own: decode, predict, reply; no network, no server."""

    def __init__(self, camera: Camera, model):
        super().__init__(camera)
        self.model = model
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="inprocess-model")

    def open(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        shape = tuple(self.model.shape)
        while (data := self._work.get()) is not None:
            start = time.perf_counter()
            header, payload = frames.split(data, 1 << 24)
            frames.check_image_header(header, shape)
            image = frames.decode_image(header, payload)
            decoded = time.perf_counter()
            pred = self.model.predict(image[None])
            done = time.perf_counter()
            self._replies.put(frames.Reply(frames.ANSWER, header.frame_id, header.capture_ns, int(pred.classes[0]),
                                           pred.probabilities[0], int((decoded - start) * 1e6), 0,
                                           int((done - decoded) * 1e6)))
        self._replies.put(None)

    def send(self, i: int, capture_ns: int) -> int:
        data = self.camera.frame(i, capture_ns)
        self._work.put(data)
        return len(data)

    def recv(self):
        reply = self._replies.get()
        return None if reply is None else (reply, 0)

    def done_sending(self) -> None:
        self._work.put(None)


def transport_for(name: str, camera: Camera, host: str, port: int, window: int, model=None) -> Transport:
    if name == "tcp":
        return TcpTransport(camera, host, port)
    if name == "ws":
        return WsTransport(camera, host, port)
    if name == "grpc":
        return GrpcTransport(camera, host, port)
    if name in ("http", "http-new"):
        return HttpTransport(camera, host, port, window, new_connection=name == "http-new")
    if name == "inprocess":
        return InProcessTransport(camera, model)
    raise ValueError(f"unknown transport {name!r}: choose one of {', '.join(TRANSPORTS)}")


# ------------------------------------------------------------------ the stream
def stream(transport: Transport, n: int, rate: float | None, window: int, stop: threading.Event | None = None,
           on_result: Callable[[FrameResult], None] | None = None) -> tuple[list[FrameResult], float, float]:
    """Send n frames (at ``rate`` frames/s, or as fast as the window allows); (results, start, end).

    Capture times are on this process's ``perf_counter`` clock; a frame whose
    reply never comes is ``lost``.
    """
    stop = stop or threading.Event()
    camera = transport.camera
    results = [FrameResult(i, 0.0, label=int(camera.labels[i % len(camera.labels)])) for i in range(n)]
    room = threading.Semaphore(window)
    answered = threading.Event()
    remaining = [n]
    lock = threading.Lock()
    transport.open()
    start = time.perf_counter() + 0.01

    def sender() -> None:
        try:
            for i in range(n):
                if stop.is_set():
                    break
                if rate:
                    due = start + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0 and stop.wait(delay):
                        break
                    capture = due
                while not room.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if not rate:
                    capture = time.perf_counter()
                r = results[i]
                r.capture = capture
                capture_ns = int(capture * 1e9)
                r.sent = time.perf_counter()
                r.bytes_up = transport.send(i, capture_ns)
        except (OSError, ValueError) as exc:
            print(f"stream: sending stopped: {exc}", file=sys.stderr)
        finally:
            transport.done_sending()

    def receiver() -> None:
        while True:
            try:
                got = transport.recv()
            except (OSError, frames.FrameError, ValueError) as exc:
                print(f"stream: reading stopped: {exc}", file=sys.stderr)
                break
            end = time.perf_counter()
            if got is None:
                break
            reply, nbytes = got
            if not 0 <= reply.frame_id < n:
                continue
            r = results[reply.frame_id]
            if r.kind != "lost":
                continue  # a second reply for one frame: ignored
            r.end = end
            r.kind = frames.KINDS[reply.kind] if reply.kind != frames.ANSWER else "answer"
            r.cls, r.probabilities = reply.cls, reply.probabilities
            r.decode_us, r.queue_us, r.model_us, r.message = reply.decode_us, reply.queue_us, reply.model_us, reply.message
            if isinstance(nbytes, tuple):
                r.bytes_up, r.bytes_down = nbytes
            else:
                r.bytes_down = nbytes
            room.release()
            if on_result:
                on_result(r)
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    answered.set()
                    break

    threads = [threading.Thread(target=sender, daemon=True, name="stream-sender"),
               threading.Thread(target=receiver, daemon=True, name="stream-receiver")]
    for t in threads:
        t.start()
    try:
        while threads[1].is_alive():
            threads[1].join(0.2)
            if not threads[0].is_alive() and stop.is_set():
                break
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        end = time.perf_counter()
        transport.close()
        threads[0].join(2.0)
    return results, start, end


def summarize(results: list[FrameResult], start: float, end: float, rate: float | None,
              deadline_ms: float, check_labels: bool = True) -> dict:
    """What the study and ``make bench`` report for one stream."""
    from bench.results import latency_stats, rounded

    sent = [r for r in results if r.sent]
    ok = [r for r in results if r.kind == "answer"]
    lat = np.array([r.latency_ms for r in ok], float)
    order = sorted(ok, key=lambda r: r.frame_id)
    jitter = (np.mean(np.abs(np.diff([r.latency_ms for r in order]))) if len(order) > 1 else None)
    last = max((r.end for r in ok), default=start)
    first = min((r.capture for r in sent), default=start)
    span = last - first
    interval_ms = 1000.0 / rate if rate else None
    up = [r.bytes_up for r in sent if r.bytes_up]
    down = [r.bytes_down for r in ok if r.bytes_down]
    correct = sum(1 for r in ok if r.cls == r.label)
    return {
        "frames": len(results), "sent": len(sent), "answered": len(ok),
        "errors": sum(1 for r in results if r.kind == "error"),
        "dropped": sum(1 for r in results if r.kind == "dropped"),
        "lost": sum(1 for r in sent if r.kind == "lost"),
        "error_messages": sorted({r.message for r in results if r.kind == "error"})[:5],
        "accuracy": rounded(correct / len(ok), 4) if ok and check_labels else None,
        "latency_ms": latency_stats(lat),
        "jitter_ms": rounded(jitter),
        "fps": rounded(len(ok) / span, 2) if span > 0 else None,
        "offered_fps": rate,
        "deadline_ms": deadline_ms,
        "missed_interval": int(np.sum(lat > interval_ms)) if interval_ms and lat.size else None,
        "missed_deadline": int(np.sum(lat > deadline_ms)) if lat.size else None,
        "bytes_up_per_frame": rounded(float(np.mean(up)), 1) if up else None,
        "bytes_down_per_frame": rounded(float(np.mean(down)), 1) if down else None,
        "server_ms": {k: rounded(float(np.median([getattr(r, k + "_us") for r in ok])) / 1000.0, 3) if ok else None
                      for k in ("decode", "queue", "model")},
        "wall_s": rounded(end - start, 3),
    }


FRAME_COLUMNS = ["frame_id", "capture_s", "sent_s", "end_s", "latency_ms", "kind", "class", "label",
                 "bytes_up", "bytes_down", "decode_ms", "queue_ms", "model_ms"]


def frame_rows(results: list[FrameResult], origin: float) -> list[list]:
    return [[r.frame_id, f"{r.capture - origin:.6f}", f"{r.sent - origin:.6f}" if r.sent else "",
             f"{r.end - origin:.6f}" if r.end else "", f"{r.latency_ms:.3f}" if r.end else "", r.kind, r.cls,
             r.label, r.bytes_up, r.bytes_down, r.decode_us / 1000, r.queue_us / 1000, r.model_us / 1000]
            for r in results]


# ------------------------------------------------------------------ bench integration
def bench_arch(options, arch: str, settings, log=print):
    """``make bench ARCH=stream-tcp RATE=30``: one stream through the arch's nginx; a ``stream`` run record."""
    from bench import provenance, records, results as res, resources, target
    from bench.records import RunRecord
    from servebench.settings import Settings

    transport_name = ARCH_TRANSPORT[arch]
    camera_settings = settings
    with target.stack_for(arch, options.runtime, options.run_dir, settings, log=log) as (st, _started):
        knobs = Settings.from_env(st.doc.get("knobs") or {})
        camera_settings = knobs
        host, port = endpoint(transport_name, knobs)
        camera = load_camera(min(options.n, 10000), knobs.stream_model, knobs.stream_encoding,
                             knobs.stream_jpeg_quality, options.data_dir)
        window = knobs.stream_window
        if options.warmup:
            log(f"{arch}: {options.warmup} warm-up frames")
            stream(transport_for(transport_name, camera, host, port, window), options.warmup, None, window)
        run_dir = res.new_run_dir(f"bench-{arch}", options.out)
        origin = time.perf_counter()
        sampler = resources.Sampler(lambda: {**st.processes(), "client": resources.client_process()},
                                    res.CsvLog(run_dir / "resources.csv", resources.COLUMNS),
                                    hz=options.sample_hz, origin=origin)
        passes = []
        all_results = []
        interrupted = False
        with sampler:
            for repeat in range(options.repeats):
                try:
                    rs, start, end = stream(transport_for(transport_name, camera, host, port, window), options.n,
                                            options.rate, window)
                except KeyboardInterrupt:
                    interrupted = True
                    break
                passes.append(summarize(rs, start, end, options.rate, options.deadline_ms,
                                        knobs.stream_model == "cifar"))
                all_results += rs
        sampler.stop()
        with res.CsvLog(run_dir / "frames.csv", FRAME_COLUMNS) as log_csv:
            for row in frame_rows(all_results, origin):
                log_csv.row(row)
        summary = passes[-1] if passes else {}
        doc = {
            "kind": "stream", "run_id": run_dir.name, "study": options.study, "arch": arch,
            "runtime": options.runtime, "interrupted": interrupted,
            "settings": {**options.recorded(), "transport": transport_name, "window": window,
                         "deadline_ms": options.deadline_ms},
            "stack": target.stack_record(st), "provenance": provenance.record(),
            "model": knobs.stream_model, "timing_only": knobs.stream_model == "yolo-tiny",
            "encoding": knobs.stream_encoding, "stream": summary, "passes": passes,
            "resources": sampler.summary(sum(p["answered"] for p in passes)),
        }
        record = RunRecord.model_validate(doc)
        records.write(run_dir, record)
    print_summary(arch, summary, run_dir, camera_settings)
    return record


def endpoint(transport: str, settings) -> tuple[str, int]:
    """Where a client reaches ``transport`` through nginx (SB_LISTEN)."""
    host = settings.base_url().split("//")[1].rsplit(":", 1)[0]
    port = {"tcp": settings.stream_proxy_port, "ws": settings.port, "grpc": settings.stream_grpc_proxy_port,
            "http": settings.port, "http-new": settings.port}[transport]
    return host, port


def print_summary(arch: str, s: dict, run_dir: Path, settings) -> None:
    if not s:
        print(f"{arch}: nothing measured")
        return
    lat = s["latency_ms"]
    label = " (timing only: random weights)" if settings.stream_model == "yolo-tiny" else ""
    rate = f"{s['offered_fps']:g} frames/s" if s["offered_fps"] else "as fast as possible"
    print(f"\n{arch}: {s['answered']}/{s['frames']} frames answered at {rate}, model {settings.stream_model}{label}, "
          f"{settings.stream_encoding}, window {settings.stream_window}")
    print(f"  latency from capture ms  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}"
          f"  jitter {s['jitter_ms']}")
    print(f"  sustained {s['fps']} frames/s  accuracy {s['accuracy']}  errors {s['errors']}  dropped {s['dropped']}"
          f"  lost {s['lost']}  missed interval {s['missed_interval']}  missed {s['deadline_ms']:g} ms deadline "
          f"{s['missed_deadline']}")
    print(f"  bytes per frame up {s['bytes_up_per_frame']} down {s['bytes_down_per_frame']}  server ms "
          + "  ".join(f"{k} {v}" for k, v in s["server_ms"].items()))
    print(f"  results in {run_dir}")


def interface_bytes() -> tuple[int, int]:
    """(received, sent) bytes of this network namespace's interfaces but loopback: frames and headers as they
    crossed the wire (Ethernet, IP, TCP and the protocol's own), for a client alone in its namespace."""
    rx = tx = 0
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, data = line.split(":", 1)
        if name.strip() == "lo":
            continue
        fields = data.split()
        rx, tx = rx + int(fields[0]), tx + int(fields[8])
    return rx, tx


# ------------------------------------------------------------------ command line
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transport", choices=TRANSPORTS, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rate", type=float, default=None, help="frames/s (default: as fast as the window allows)")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--encoding", choices=("raw", "jpeg"), default="raw")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--model", choices=("cifar", "yolo-tiny"), default="cifar")
    p.add_argument("--deadline-ms", type=float, default=100.0)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the summary (and per-frame rows) here")
    p.add_argument("--wire", action="store_true", help="bytes on the wire per frame from this network namespace's "
                                                       "interface counters (a shaped link's client namespace)")
    args = p.parse_args(argv)
    if args.transport != "inprocess" and not args.port:
        p.error("--port is required for a networked transport")
    camera = load_camera(max(args.n, 1), args.model, args.encoding, args.quality, args.data_dir)
    model = None
    if args.transport == "inprocess":
        from servebench.settings import Settings
        from services.stream.core import load_model

        model = load_model(Settings(stream_model=args.model))

    def make():
        return transport_for(args.transport, camera, args.host, args.port, args.window, model)

    if args.warmup:
        stream(make(), args.warmup, None, args.window)
    before = interface_bytes() if args.wire else None
    rs, start, end = stream(make(), args.n, args.rate, args.window)
    summary = summarize(rs, start, end, args.rate, args.deadline_ms, args.model == "cifar")
    if before is not None:
        after = interface_bytes()
        frames_sent = max(1, summary["sent"])
        summary["wire_up_bytes_per_frame"] = round((after[1] - before[1]) / frames_sent, 1)
        summary["wire_down_bytes_per_frame"] = round((after[0] - before[0]) / frames_sent, 1)
        summary["wire_bytes_per_frame"] = round(summary["wire_up_bytes_per_frame"]
                                                + summary["wire_down_bytes_per_frame"], 1)
    out = {"summary": summary, "rows": frame_rows(rs, start)}
    if args.json:
        args.json.write_text(json.dumps(out))
    else:
        print(json.dumps(summary, indent=1))
    return 0 if summary["answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
