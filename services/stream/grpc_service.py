"""Frames over gRPC bidirectional streaming (stream-grpc; services/stream/stream.proto): the core's glue.

A ``Frame`` message carries the frame header's fields and its payload; they
are checked by services/stream/frames.py exactly as the binary header is. The
handler reads the next message only when the window has room, so HTTP/2 flow
control stops the client; replies are written by the session as they are
ready. A message that breaks the rules (version, size, shape) gets an ERROR
reply and the call ends with INVALID_ARGUMENT.
"""
from __future__ import annotations

import grpc

from services.stream import frames, stream_pb2, stream_pb2_grpc
from services.stream.core import StreamCore
from services.stream.frames import FrameError, Header


def header_of(msg: stream_pb2.Frame, max_payload: int) -> Header:
    """The frame header the message stands for, checked as a binary header is."""
    if msg.version != frames.VERSION:
        raise FrameError(frames.BAD_VERSION, f"unknown frame version {msg.version}: this server speaks version "
                                             f"{frames.VERSION}", msg.frame_id, msg.capture_ns)
    if msg.encoding not in frames.ENCODINGS:
        raise FrameError(frames.BAD_ENCODING, f"unknown encoding {msg.encoding}", msg.frame_id, msg.capture_ns)
    if len(msg.data) > max_payload:
        raise FrameError(frames.TOO_LARGE, f"frame payload of {len(msg.data)} bytes is over the limit of "
                                           f"{max_payload} bytes (SB_STREAM_MAX_FRAME_KB)", msg.frame_id, msg.capture_ns)
    shape = tuple(msg.shape)
    if len(shape) != 3 or any(d > 0xFFFF for d in shape):
        shape = (0, 0, 0)  # refused as the wrong shape by the core, and the stream goes on
    return Header(frames.IMAGE, msg.frame_id, msg.capture_ns, msg.encoding, shape, len(msg.data), msg.version)


def to_proto(reply: frames.Reply) -> stream_pb2.Reply:
    msg = stream_pb2.Reply(kind=reply.kind, frame_id=reply.frame_id, capture_ns=reply.capture_ns)
    if reply.kind == frames.ANSWER:
        msg.class_id = reply.cls
        msg.probabilities.extend(reply.probabilities.tolist())
        msg.decode_us, msg.queue_us, msg.model_us = reply.decode_us, reply.queue_us, reply.model_us
    elif reply.kind == frames.ERROR:
        msg.error_code, msg.message = reply.code, reply.message
    return msg


def from_proto(msg: stream_pb2.Reply) -> frames.Reply:
    """The client's side: the same Reply the binary transports decode."""
    import numpy as np

    return frames.Reply(int(msg.kind), msg.frame_id, msg.capture_ns, msg.class_id,
                        np.asarray(msg.probabilities, np.float32), msg.decode_us, msg.queue_us, msg.model_us,
                        msg.error_code, msg.message)


class FrameStream(stream_pb2_grpc.FrameStreamServicer):
    def __init__(self, core: StreamCore):
        self.core = core

    async def Stream(self, request_iterator, context: grpc.aio.ServicerContext):
        async def emit(reply: frames.Reply) -> None:
            await context.write(to_proto(reply))

        session = self.core.session(emit)
        fatal = None
        try:
            while await session.ready():
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    break
                try:
                    header = header_of(msg, self.core.max_payload)
                except FrameError as exc:
                    fatal = exc
                    await session.fail(exc)
                    break
                await session.frame(header, msg.data)
            await session.finish()
        finally:
            session.close()
        if fatal is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{fatal.name}: {fatal.message}")


async def serve(core: StreamCore, host: str, port: int) -> grpc.aio.Server:
    limit = core.max_payload + 4096  # bigger messages end the call with RESOURCE_EXHAUSTED, before the core sees them
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                      ("grpc.max_send_message_length", 1 << 20),
                                      ("grpc.so_reuseport", 0)])
    stream_pb2_grpc.add_FrameStreamServicer_to_server(FrameStream(core), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen on {host}:{port} (SB_STREAM_GRPC_PORT)")
    await server.start()
    return server
