"""The streaming model process's core: one model, one model thread, and a session per stream.

The TCP, WebSocket and gRPC servers are thin glue around it: each reads frames
its own way and hands them to a :class:`Session`, which decodes them (timed),
queues them for the model and writes the replies back through the transport's
``emit``. So a frame's answer is the same whichever way it came, and backpressure
and the drop policy behave the same on every transport.

Window and backpressure. A session holds at most ``window`` frames between
reading them and writing their replies (``SB_STREAM_WINDOW``). A transport
awaits :meth:`Session.ready` before reading the next frame, so when the window
is full nothing more is read and the client's sends block in the kernel (TCP),
in websockets' queue or in HTTP/2 flow control: server memory per stream is
bounded by the window, whether the model is slow or the client stops reading
its answers (a reply counts until ``emit`` has written it out).

Batching. The model runs on :class:`servebench.batching.Batcher`'s thread, the
same batcher as the HTTP model servers': frames waiting in the batcher, from
one stream's window or from several streams, run as one model call of up to
``SB_BATCH_MAX_SIZE`` frames (1 by default: one frame per call). A session
hands the batcher up to its model depth of decoded frames (:func:`model_depth`):
two batches' worth, so that one batch gathers while the other runs, bounded by
the window; with batching off that is 2 frames, as before batching. Each frame
is its own request to the batcher, so its answer is its own row and answers
come back in the order the frames were read. A frame that cannot be decoded or
has the wrong size is answered with its error before it reaches the batcher:
it fails alone and never breaks its batch-mates.

Drop policy. With ``drop-oldest`` a full window does not stop reading while
frames wait for the model: the oldest waiting frame is answered DROPPED and
the new one takes its place (newest wins, as cameras do). Frames already
handed to the batcher count as in the model and are never dropped, so under
``drop-oldest`` the model depth leaves at least one slot of the window out of
the model (window - 1, never below 2): that slot is where the newest frame
waits, replacing the one before it, while a full depth of frames runs.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np

from servebench import modelcard
from servebench.batching import Batcher, BatchResult
from servebench.modelcard import CardError, ModelCard, describe
from servebench.settings import Settings
from services.stream import frames
from services.stream.frames import FrameError, Header, Reply

log = logging.getLogger(__name__)

MODEL_DEPTH = 2  # batches of one stream handed to the model at once: the next gathers while one runs
FINISH_TIMEOUT_S = 30.0  # a stream that ended waits this long for its last replies to go out


def image_card(card: ModelCard) -> ModelCard:
    """``card`` when the streaming server can serve it, else a CardError naming the model and why.

    A frame carries one uint8 image [H, W, C] and its answer a class and the probabilities, so the
    model must be an image classifier (``card.is_image`` and ``card.is_classifier``)."""
    why = []
    if not card.is_image:
        why.append(f"its inputs ({describe(card.inputs)}) are not one uint8 image [batch, H, W, C] with C 1 or 3")
    if not card.is_classifier:
        why.append(f"its outputs ({describe(card.outputs)}) hold no class probabilities [batch, classes]")
    if why:
        raise CardError(f"the streaming server serves image classifiers only (frames carry one image, answers a "
                        f"class): model {card.name} ({card.source}) is not one: {'; '.join(why)}. Serve it with "
                        f"an architecture that speaks KServe v2 (/v2/models/<name>/infer), e.g. ARCH=fastapi")
    return card


def load_model(settings: Settings):
    """The model ``SB_STREAM_MODEL`` names, with the stack's thread settings and engine (SB_ENGINE).

    ``cifar`` serves SB_MODEL (the CIFAR-10 CNN by default) when it is an image classifier, and
    refuses any other model with a CardError before loading it (:func:`image_card`)."""
    if settings.stream_model == "yolo-tiny":
        from models.yolo_tiny import YoloTiny

        return YoloTiny(settings.intra_op_threads, settings.inter_op_threads)
    from servebench.inference import InferenceCore

    card = image_card(modelcard.read_card(settings.model_base, settings.model_version))
    core = InferenceCore.from_settings(settings)
    core.shape = card.image_shape
    return core


@dataclass
class Counters:
    streams_open: int = 0
    streams_total: int = 0
    frames: int = 0
    answers: int = 0
    errors: int = 0
    dropped: int = 0
    model_calls: int = 0  # model calls of every stream so far (the batcher's)
    model_frames: int = 0  # frames those calls ran


def model_depth(window: int, batch_max_size: int, drop: bool) -> int:
    """Frames of one stream handed to the batcher at once: MODEL_DEPTH batches, bounded by the window (less the
    slot drop-oldest keeps for the newest frame), never fewer than MODEL_DEPTH frames (batching off: exactly that)."""
    return max(MODEL_DEPTH, min(MODEL_DEPTH * batch_max_size, window - 1 if drop else window))


class StreamCore:
    """The model, its thread and the limits every session applies."""

    def __init__(self, model, max_payload: int, window: int, drop: bool, batch_max_size: int = 1,
                 batch_timeout_ms: float = 0.0):
        self.model = model
        self.shape = tuple(model.shape)
        self.max_payload = max_payload
        self.window = window
        self.drop = drop
        self.depth = model_depth(window, batch_max_size, drop)
        self.counters = Counters()
        self.batcher = Batcher(self._predict, batch_max_size, batch_timeout_ms, name="stream-model")

    @property
    def batch_max_size(self) -> int:
        return self.batcher.max_size

    @property
    def batch_timeout_ms(self) -> float:
        return self.batcher.timeout_ms

    def _predict(self, images: np.ndarray):
        """One model call (on the batcher's thread), counted: model_frames / model_calls is the mean batch."""
        out = self.model.predict(images)
        self.counters.model_calls += 1
        self.counters.model_frames += len(images)
        return out

    @classmethod
    def from_settings(cls, settings: Settings, model=None) -> "StreamCore":
        return cls(model if model is not None else load_model(settings), settings.stream_max_frame_kb * 1024,
                   settings.stream_window, settings.stream_drop == "drop-oldest", settings.batch_max_size,
                   settings.batch_timeout_ms)

    def session(self, emit: Callable[[Reply], Awaitable[None]]) -> "Session":
        return Session(self, emit)

    def decode(self, header: Header, payload: bytes) -> tuple[np.ndarray, int]:
        """One image frame's pixels as a batch of one, and the decode time in µs (FrameError when bad)."""
        start = time.perf_counter()
        frames.check_image_header(header, self.shape)
        image = frames.decode_image(header, payload)
        return image[None], int((time.perf_counter() - start) * 1e6)

    def info(self) -> dict:
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = None
        return {"model": self.model.info() if hasattr(self.model, "info") else {}, "shape": list(self.shape),
                "window": self.window, "drop": "drop-oldest" if self.drop else "keep",
                "batch_max_size": self.batch_max_size, "batch_timeout_ms": self.batch_timeout_ms,
                "model_depth": self.depth,
                "max_frame_bytes": self.max_payload, "frame_version": frames.VERSION,
                "counters": vars(self.counters).copy(), "threads": threading.active_count(), "fds": fds}

    def close(self) -> None:
        self.batcher.close()


@dataclass
class _Item:
    header: Header
    images: np.ndarray
    decode_us: int


class Session:
    """One stream: its window, its frames waiting for the model, its replies in the order they are ready."""

    def __init__(self, core: StreamCore, emit: Callable[[Reply], Awaitable[None]]):
        self.core = core
        self._emit = emit
        self._loop = asyncio.get_running_loop()
        self._held = 0  # frames read whose reply is not yet written
        self._pending: deque[_Item] = deque()  # decoded, not yet handed to the model
        self._in_model = 0
        self._changed = asyncio.Event()
        self._out: asyncio.Queue = asyncio.Queue()  # never longer than the window (plus one fatal error)
        self._broken = False  # emit failed: the peer is gone
        self._writer = self._loop.create_task(self._write_loop())
        core.counters.streams_open += 1
        core.counters.streams_total += 1

    # ------------------------------------------------------------ what a transport calls
    async def ready(self) -> bool:
        """Wait until another frame may be read; False when the peer is gone."""
        while not self._broken:
            if self._held < self.core.window or (self.core.drop and self._pending):
                return True
            self._changed.clear()
            await self._changed.wait()
        return False

    async def frame(self, header: Header, payload: bytes) -> None:
        """A frame whose header parsed: answered with an error (bad image), or queued for the model."""
        self.core.counters.frames += 1
        if self._held >= self.core.window and self._pending:  # only reachable under drop-oldest
            old = self._pending.popleft()
            self.core.counters.dropped += 1
            self._out.put_nowait(Reply(frames.DROPPED, old.header.frame_id, old.header.capture_ns))
        self._held += 1
        try:
            images, decode_us = self.core.decode(header, payload)
        except FrameError as exc:
            self.core.counters.errors += 1
            self._out.put_nowait(frames.error_reply(exc))
            return
        self._pending.append(_Item(header, images, decode_us))
        self._pump()

    async def fail(self, exc: FrameError) -> None:
        """A frame that broke the framing: say why (the transport closes the stream after :meth:`finish`)."""
        self.core.counters.errors += 1
        self._held += 1
        self._out.put_nowait(frames.error_reply(exc))

    async def finish(self, timeout_s: float = FINISH_TIMEOUT_S) -> None:
        """The peer sent its last frame (or broke the framing): write what is owed, then stop."""
        deadline = self._loop.time() + timeout_s
        while self._held and not self._broken and self._loop.time() < deadline:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - self._loop.time()))
            except asyncio.TimeoutError:
                break
        self.close()

    def close(self) -> None:
        """Stop at once (the peer is gone): replies still due are not written."""
        if not self._writer.done():
            self._writer.cancel()
        self._pending.clear()
        if not self._broken:
            self._broken = True
            self.core.counters.streams_open -= 1
        self._changed.set()

    # ------------------------------------------------------------ the model and the writer
    def _pump(self) -> None:
        while self._pending and self._in_model < self.core.depth and not self._broken:
            item = self._pending.popleft()
            self._in_model += 1
            try:
                fut = asyncio.wrap_future(self.core.batcher.submit(item.images), loop=self._loop)
            except Exception as exc:  # the batcher is closed: the server is stopping
                self._in_model -= 1
                self._out.put_nowait(Reply(frames.ERROR, item.header.frame_id, item.header.capture_ns,
                                           code=frames.OVERLOADED, message=f"overloaded: {exc}"))
                continue
            fut.add_done_callback(lambda f, item=item: self._answered(item, f))

    def _answered(self, item: _Item, fut: asyncio.Future) -> None:
        self._in_model -= 1
        h = item.header
        if fut.cancelled() or fut.exception() is not None:
            self.core.counters.errors += 1
            why = "cancelled" if fut.cancelled() else f"{type(fut.exception()).__name__}: {fut.exception()}"
            reply = Reply(frames.ERROR, h.frame_id, h.capture_ns, code=frames.MODEL_FAILED,
                          message=f"model-failed: {why}"[:200])
        else:
            r: BatchResult = fut.result()
            self.core.counters.answers += 1
            reply = Reply(frames.ANSWER, h.frame_id, h.capture_ns, int(r.prediction.classes[0]),
                          r.prediction.probabilities[0], item.decode_us, int(r.queue_ms * 1000), int(r.model_ms * 1000))
        if not self._broken:
            self._out.put_nowait(reply)
        self._pump()

    async def _write_loop(self) -> None:
        try:
            while True:
                reply = await self._out.get()
                try:
                    await self._emit(reply)
                except (ConnectionError, OSError, RuntimeError) as exc:
                    log.debug("stream peer gone while writing: %s", exc)
                    self._broken = True
                    self.core.counters.streams_open -= 1
                    self._changed.set()
                    return
                except Exception as exc:  # a transport's own closed-connection error
                    if type(exc).__name__ not in ("ConnectionClosed", "ConnectionClosedOK", "ConnectionClosedError",
                                                  "AioRpcError", "UsageError", "ExecuteBatchError"):
                        log.exception("writing a reply failed")
                    self._broken = True
                    self.core.counters.streams_open -= 1
                    self._changed.set()
                    return
                self._held -= 1
                self._changed.set()
        except asyncio.CancelledError:
            pass
