"""Frames over a WebSocket (stream-ws, through nginx's upgrade at ``/v1/stream``): the core's glue.

One binary message is one frame, header and payload (services/stream/frames.py).
websockets queues at most ``window`` incoming messages and then stops reading
the socket, and its ``send`` waits while the client is not reading, so the
session's window bounds memory here as on TCP. The same port answers plain
HTTP ``GET /healthz`` (the service's health probe) and ``GET /v1/info``.
"""
from __future__ import annotations

import json
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from services.stream import frames
from services.stream.core import StreamCore
from services.stream.frames import FrameError

PATH = "/v1/stream"


async def handle(core: StreamCore, ws: ServerConnection) -> None:
    async def emit(reply: frames.Reply) -> None:
        await ws.send(frames.encode_reply(reply))

    session = core.session(emit)
    try:
        while await session.ready():
            try:
                message = await ws.recv()
            except ConnectionClosed:
                break
            if isinstance(message, str):
                await session.fail(FrameError(frames.BAD_KIND, "a text message: frames are binary messages"))
                break
            try:
                header, payload = frames.split(message, core.max_payload)
            except FrameError as exc:
                await session.fail(exc)
                break
            await session.frame(header, payload)
        await session.finish()
    finally:
        session.close()
        await ws.close()


def http_routes(core: StreamCore):
    """Plain HTTP on the WebSocket port: health and info; anything but /v1/stream is not a stream."""

    def process_request(connection: ServerConnection, request: Request):
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if request.path == "/v1/info":
            resp = connection.respond(HTTPStatus.OK, json.dumps(core.info()) + "\n")
            resp.headers["Content-Type"] = "application/json"
            return resp
        if request.path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no stream at {request.path}: the stream is {PATH}\n")
        return None

    return process_request


def serve(core: StreamCore, host: str, port: int):
    """The server (an async context manager / awaitable); its limits follow the core's."""
    return ws_serve(lambda ws: handle(core, ws), host, port, process_request=http_routes(core),
                    max_size=core.max_payload + frames.HEADER_SIZE, max_queue=core.window, compression=None,
                    ping_interval=None, server_header=None)
