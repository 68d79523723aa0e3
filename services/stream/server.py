"""The streaming model server: one process, one model, three transports (issue 11).

    python -m services.stream.server

Listens on 127.0.0.1 (SB_BACKEND_HOST) at SB_STREAM_PORT (frames over TCP),
SB_STREAM_WS_PORT (WebSocket at /v1/stream, plus GET /healthz and /v1/info)
and SB_STREAM_GRPC_PORT (gRPC, services/stream/stream.proto). All three hand
their frames to one :class:`~services.stream.core.StreamCore`, so stream-tcp,
stream-ws and stream-grpc run the same model-process code; nginx is the only
client-facing port. SIGTERM/SIGINT stop it: listeners first, then the model thread.
"""
from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sys

from servebench.settings import Settings, from_environment

log = logging.getLogger("services.stream")


def raise_fd_limit() -> int:
    """As many descriptors as the hard limit allows: a thousand idle streams must not exhaust them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        new = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return soft


async def serve(settings: Settings, core, stop: asyncio.Event) -> None:
    from services.stream import grpc_service, tcp, ws

    host = settings.backend_host
    tcp_server = await tcp.serve(core, host, settings.stream_port)
    grpc_server = await grpc_service.serve(core, host, settings.stream_grpc_port)
    async with ws.serve(core, host, settings.stream_ws_port):  # last: its /healthz says all three are up
        log.info("streaming server ready: tcp %d, websocket %d, grpc %d (%s)", settings.stream_port,
                 settings.stream_ws_port, settings.stream_grpc_port, settings.stream_model)
        await stop.wait()
        tcp_server.close()
        await grpc_server.stop(grace=1.0)
    await asyncio.wait_for(tcp_server.wait_closed(), 5.0) if sys.version_info >= (3, 12) else None


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=None, help="address of all three listeners (default: SB_BACKEND_HOST)")
    p.add_argument("--port", type=int, default=None, help="the WebSocket and health port (default: SB_STREAM_WS_PORT)")
    args = p.parse_args()
    settings = from_environment()
    update = {k: v for k, v in (("backend_host", args.host), ("stream_ws_port", args.port)) if v is not None}
    settings = settings.model_copy(update=update) if update else settings
    raise_fd_limit()
    from servebench.modelcard import CardError
    from services.stream.core import StreamCore

    try:
        core = StreamCore.from_settings(settings)
    except CardError as exc:  # a model this server cannot serve: say so, before any port is opened
        log.error("streaming server not started: %s", exc)
        return 2

    async def run():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, core, stop)

    try:
        asyncio.run(run())
    finally:
        core.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
