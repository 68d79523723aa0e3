"""The streaming client's camera and transports: what a frame is on each wire, one stream per transport.

A :class:`Camera` holds the frames as they are sent (encoded before the clock
starts); a :class:`Transport` sends frames from one thread and reads replies
(which carry their frame's id and capture time) from another. Transports (all
carry the same CIFAR-10 test images):

- ``tcp``: length-prefixed frames on one connection (servebench/frames.py);
- ``ws``: the same frames as WebSocket binary messages (``/v1/stream``);
- ``grpc``: bidirectional streaming, services/stream/stream.proto;
- ``http`` / ``http-new``: the per-request baselines: one ``POST /v1/predict``
  (raw body) per frame through nginx to the FastAPI stack, on ``window``
  keep-alive connections (``http``) or on a new connection each time
  (``http-new``, the study's "without a streaming server");
- ``inprocess``: the model in this process, frames decoded and run one at a
  time on a model thread: the ceiling the others are measured against.

Bytes per frame are counted as the client library writes and reads them
(HTTP: request and body bytes; gRPC: message bytes plus gRPC's 5-byte prefix).
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from services.stream import frames

TRANSPORTS = ("tcp", "ws", "grpc", "http", "http-new", "inprocess")
REPLY_TIMEOUT_S = 60.0
WS_PATH = "/v1/stream"


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
        if not self.new_connection:  # keep-alive connects before the clock starts, as a stream does
            for k in range(self.window):
                self.client.connection(k).connect()
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
