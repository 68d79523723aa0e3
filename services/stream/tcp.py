"""Frames over one TCP connection (stream-tcp, behind nginx's ``stream`` proxy): the core's glue.

A frame is its 32-byte header then its payload (services/stream/frames.py). The
reader waits for room in the window before reading the next header, so a full
window leaves frames in the kernel's buffers and the client's sends block. A
header that does not parse, or a connection that ends inside a frame, is
answered with an error frame and the connection is closed; a bad image is
answered and the stream goes on.
"""
from __future__ import annotations

import asyncio
import socket

from services.stream import frames
from services.stream.core import StreamCore
from services.stream.frames import FrameError

CLOSE_TIMEOUT_S = 5.0


async def handle(core: StreamCore, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def emit(reply: frames.Reply) -> None:
        writer.write(frames.encode_reply(reply))
        await writer.drain()

    session = core.session(emit)
    try:
        while await session.ready():
            try:
                head = await reader.readexactly(frames.HEADER_SIZE)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    await session.fail(FrameError(frames.TRUNCATED, f"truncated header: the connection ended "
                                                  f"after {len(exc.partial)} of {frames.HEADER_SIZE} bytes"))
                break  # at a frame boundary: the client is done
            try:
                header = frames.parse_header(head, core.max_payload)
            except FrameError as exc:
                await session.fail(exc)
                break
            try:
                payload = await reader.readexactly(header.length)
            except asyncio.IncompleteReadError as exc:
                await session.fail(FrameError(frames.TRUNCATED, f"truncated frame: the connection ended after "
                                              f"{len(exc.partial)} of {header.length} payload bytes",
                                              header.frame_id, header.capture_ns))
                break
            await session.frame(header, payload)
        await session.finish()
    except (ConnectionError, OSError):
        session.close()
    finally:
        session.close()
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            writer.transport.abort()


async def serve(core: StreamCore, host: str, port: int) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: handle(core, r, w), host, port, reuse_address=True, backlog=2048)
