"""The Serve deployment: the shared inference core and endpoint behind Ray Serve's HTTP proxy.

Each replica (a Ray actor) loads the model once and answers the three protocols of
:mod:`servebench.endpoint` (routing, decoding, errors: the shared ones), ``/healthz`` and
``/v1/info``. With ``SB_BATCH_MAX_SIZE`` > 1 the model calls go through ``@serve.batch``
(``SB_BATCH_TIMEOUT_MS`` its wait); Serve counts requests, not images, in a batch.
Imported inside the replicas only (Ray pickles the class by reference).
"""
from __future__ import annotations

import asyncio
import json
import time

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from servebench import batching, codecs, endpoint, topology
from servebench.endpoint import InferenceFailed, Inferred, LocalModel, inference_failed, join_timing, timing_entry
from servebench.settings import Settings, public_model_info

from services.rayserve.cluster import REPLICA_SLOT

SERVICE = "rayserve"


class Model:
    """One replica; ``knobs``: the supervisor's SB_* variables (the settings every replica serves with)."""

    def __init__(self, knobs: dict[str, str]):
        import ray

        from servebench.inference import InferenceCore

        self.settings = Settings.from_env({**knobs, "SB_ARCH": "rayserve"})
        # Serve batches (infer_batch below): the local model gets no batcher of its own.
        self.model = LocalModel(InferenceCore.from_settings(self.settings), self.settings.max_batch)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.batched = self.settings.batch_max_size > 1
        if self.batched:
            self.infer_batch.set_max_batch_size(self.settings.batch_max_size)
            self.infer_batch.set_batch_wait_timeout_s(self.settings.batch_timeout_ms / 1000.0)

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def infer_batch(self, requests: list[tuple[dict, float]]) -> list[Inferred]:
        """One model call on every waiting request's rows; each gets its own rows back."""
        started = time.perf_counter()
        sizes = [batching.rows(inputs) for inputs, _ in requests]
        total = sum(sizes)
        outputs, model_ms = await asyncio.to_thread(self.model.core.timed_run,
                                                    batching.concatenate([inputs for inputs, _ in requests]))
        answers, at = [], 0
        for (_, arrived), size in zip(requests, sizes):
            timing = join_timing(timing_entry("queue", (started - arrived) * 1000.0), timing_entry("model", model_ms),
                                 f"batch;desc={total}")
            answers.append(Inferred(batching.split(outputs, at, at + size, total), timing))
            at += size
        return answers

    async def _infer(self, inputs: dict) -> Inferred | InferenceFailed:
        try:
            if self.batched:
                return await self.infer_batch((inputs, time.perf_counter()))
            return await asyncio.to_thread(self.model.infer, inputs)
        except InferenceFailed as exc:
            return exc
        except Exception as exc:
            return inference_failed(exc)

    async def __call__(self, request: Request) -> Response:
        start = time.perf_counter()
        path, method = request.url.path, request.method
        if path in ("/healthz", "/v1/info"):
            return self._describe(path, method)
        if not path.startswith(endpoint.PREFIXES):
            return _response(endpoint.error_reply(endpoint.protocol_of(path), 404, f"no such path {path}"))
        body = b""
        if method == "POST":
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > self.settings.max_body_bytes:
                return _response(endpoint.error_reply(
                    endpoint.protocol_of(path), 413,
                    f"request body too large: the limit is {self.settings.max_body_bytes} bytes"))
            body = await request.body()
        step = endpoint.begin(self.model, method, path, body, request.headers)
        reply = step if isinstance(step, endpoint.Reply) else endpoint.finish(self.model, step,
                                                                                 await self._infer(step.inputs))
        return _response(reply, endpoint.timing_entry("backend", (time.perf_counter() - start) * 1000.0))

    def _describe(self, path: str, method: str) -> Response:
        if method not in ("GET", "HEAD"):
            return _response(endpoint.error_reply("v1", 405, f"method {method} not allowed on {path}: use GET, HEAD",
                                                  headers=(("Allow", "GET, HEAD"),)))
        if path == "/healthz":
            doc = {"status": "ok", "service": SERVICE}
        else:
            doc = {"service": SERVICE, "settings": topology.recorded(self.settings, SERVICE),
                   "model": public_model_info(self.model.info()), "ray_node_id": self.node_id,
                   "batching": "@serve.batch" if self.batched else "off"}
        return Response(json.dumps(doc).encode(), media_type=codecs.JSON)


def _response(reply: endpoint.Reply, timing: str = "") -> Response:
    headers = dict(reply.headers)
    if joined := join_timing(reply.timing, timing):
        headers["Server-Timing"] = joined
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type, headers=headers)


def deployment(settings: Settings, knobs: dict[str, str]):
    """The bound application: ``SB_RAY_REPLICAS`` replicas, each taking one replica slot of a node (the
    supervisor gives every worker as many slots as spreads them evenly, the head room for all), so placement
    follows the nodes, and a lost worker's replicas fit on the head."""
    concurrent = max(8, 2 * settings.batch_max_size)  # a full batch can gather while the last one runs
    return serve.deployment(Model, name="model", num_replicas=settings.ray_replicas,
                            max_ongoing_requests=concurrent,
                            ray_actor_options={"num_cpus": 0, "resources": {REPLICA_SLOT: 1}}).bind(knobs)

