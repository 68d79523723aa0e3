"""The three protocols' routes on a FastAPI app, answered by servebench.endpoint.

Shared by the FastAPI model server and the ensemble coordinator: the body limit,
where a request waits and the ``backend`` Server-Timing entry live once. A model
that batches in this process, with a batch running or forming, is answered on the
event loop (``endpoint.handle_async``): a request waiting for its batch holds no
thread, so a batch can hold more requests than there are threads. Any other
request (an idle batcher's, which then runs at once in its thread; batching off;
the coordinator's) is answered in ``state["limiter"]``'s threads
(SB_BACKEND_THREADS), so the event loop keeps reading requests while the model works.
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
    """Route /v1/predict, TF Serving's /v1/models/... and KServe v2 to ``state[target_key]``: awaited on the
    event loop when it batches here, else run in ``state["limiter"]``'s threads."""

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
        target = state[target_key]
        # A batcher that waits for no batch-mates (timeout 0) and has nothing running or waiting runs the
        # request at once in the thread that asks (servebench.batching): as cheap as batching off. Otherwise
        # the request joins the forming batch on the loop.
        if endpoint.waits_for_batches(target) and not target.batcher.runs_inline():
            reply = await endpoint.handle_async(target, request.method, request.url.path, body, request.headers)
        else:
            reply = await anyio.to_thread.run_sync(endpoint.handle, target, request.method, request.url.path,
                                                   body, request.headers, limiter=state["limiter"])
        total = endpoint.timing_entry("backend", (time.perf_counter() - start) * 1000.0)
        return response(reply, endpoint.join_timing(reply.timing, total))
