"""The three protocols' routes on a FastAPI app, answered by servebench.endpoint.handle in a bounded thread pool.

Shared by the FastAPI model server and the ensemble coordinator: the body limit,
the hand-off to the threads and the ``backend`` Server-Timing entry live once.
"""
from __future__ import annotations

import time

import anyio
from fastapi import FastAPI, Request
from starlette.responses import Response

from servebench import endpoint

ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # endpoint.handle answers 405 itself


def response(reply: endpoint.Reply, timing: str = "") -> Response:
    headers = {**({"Server-Timing": timing} if timing else {}), **dict(reply.headers)}
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type, headers=headers)


def add_protocol_routes(app: FastAPI, state: dict, target_key: str, max_body_bytes: int) -> None:
    """Route /v1/predict, TF Serving's /v1/models/... and KServe v2 to ``state[target_key]``, run in
    ``state["limiter"]``'s threads so the event loop keeps reading requests while the model works."""

    @app.api_route("/v1/predict", methods=ANY)
    @app.api_route("/v1/models/{rest:path}", methods=ANY)
    @app.api_route("/v2", methods=ANY)
    @app.api_route("/v2/{rest:path}", methods=ANY)
    async def serve(request: Request) -> Response:
        start = time.perf_counter()
        body = b""
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_body_bytes:
                return response(endpoint.error_reply(endpoint.protocol_of(request.url.path), 413,
                                                     f"request body too large: the limit is {max_body_bytes} bytes"))
            body = await request.body()
        reply = await anyio.to_thread.run_sync(endpoint.handle, state[target_key], request.method, request.url.path,
                                               body, request.headers, limiter=state["limiter"])
        total = endpoint.timing_entry("backend", (time.perf_counter() - start) * 1000.0)
        return response(reply, endpoint.join_timing(reply.timing, total))
