"""The serving endpoints' logic, shared by every server we write.

Embedded Django, Flask and FastAPI differ only in how they receive bytes and
send bytes back. Routing, decoding, validation, the model call (batched or
not), the response body and the timing header are made here, once, for three
protocols (:data:`PROTOCOLS`):

- ``v1``: ``POST /v1/predict``, the suite's own (codecs json, b64, raw, npy:
  :mod:`servebench.codecs`), for image models only (any other gets a 4xx naming ``/v2``);
- ``v2``: the Open Inference Protocol (KServe v2 REST) under ``/v2``
  (:mod:`servebench.kserve`), which perf_analyzer and other standard clients speak;
- ``tfserving``: TensorFlow Serving's REST paths under ``/v1/models``
  (:mod:`servebench.tfserving`), so a TF Serving client only changes the host.

:func:`handle` answers a request for a :class:`Target`: the model in this
process (:class:`LocalModel`), or the front end's backend, which passes a
request on unchanged when it speaks that protocol (``Target.speaks``) and is
otherwise asked for the model's outputs, encoded here in the client's protocol.
Every tensor is the target's model card's (``Target.card``).
:func:`handle` never raises: bad input is a 4xx naming the problem, a failing
model a 500 (a backend's failure its own 5xx), in the protocol's error format.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from servebench import codecs, kserve, tfserving, wire
from servebench.batching import Batcher, BatchResult
from servebench.modelcard import ModelCard, describe
from servebench.types import Prediction

log = logging.getLogger(__name__)

PROTOCOLS = ("v1", "v2", "tfserving")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    timing: str  # Server-Timing entries of this hop, e.g. "decode;dur=0.2, model;dur=4.1"
    content_type: str = codecs.JSON
    headers: tuple[tuple[str, str], ...] = ()  # besides Content-Type and Server-Timing


def timing_entry(name: str, ms: float) -> str:
    return f"{name};dur={ms:.3f}"


def join_timing(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


class InferenceFailed(RuntimeError):
    """A prediction that could not be made; ``status`` is the answer (5xx: the server's fault)."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def inference_failed(exc: Exception) -> InferenceFailed:
    """The model's exception as its answer (a 500 naming its type); logged with its traceback (call it in the
    ``except`` block)."""
    log.exception("inference failed")
    return InferenceFailed(500, f"inference failed: {type(exc).__name__}")


@dataclass(frozen=True)
class Inferred:
    outputs: dict | Prediction  # the model's outputs by name (a Prediction: a classifier's, from an older target)
    timing: str
    # Besides the predictions, what the v1 body says about how they were made (e.g. an ensemble's members).
    details: dict | None = None

    @property
    def prediction(self) -> Prediction:
        """A classifier's answer: ``outputs`` itself if a Prediction, else its ``probabilities`` and ``classes``."""
        if isinstance(self.outputs, Prediction):
            return self.outputs
        return codecs.classifier_prediction(self.outputs, codecs.CIFAR10_CARD)


class Target(Protocol):
    """What :func:`handle` serves: a model in this process, or a backend behind the front end.

    ``infer`` takes the validated inputs by name. A target without ``infers_tensors`` (one
    written for the default model alone) is given the one input's array instead, and a
    target without ``card`` serves the default model.
    """

    speaks: frozenset[str]  # protocols passed on unchanged with forward()
    max_batch: int
    model_name: str
    card: ModelCard
    infers_tensors: bool

    def model_version(self) -> int: ...

    def batching(self) -> tuple[int, float]: ...  # (max_size, timeout_ms); max_size 1: off

    def ready(self) -> bool: ...

    def infer(self, inputs: dict[str, np.ndarray]) -> Inferred: ...  # raises InferenceFailed

    def forward(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply: ...


class _PredictingCore:
    """An inference core that only predicts (``predict(images) -> Prediction``): the default model's API
    before model cards. Gives it the card API (``card``, ``run``, ``timed_run``)."""

    def __init__(self, core):
        self.core, self.card = core, codecs.CIFAR10_CARD
        self.name, self.version = core.name, core.version

    def run(self, inputs: dict) -> dict:
        return wire.output_dict(self.core.predict(inputs[self.card.inputs[0].name]), self.card)

    def timed_run(self, inputs: dict) -> tuple[dict, float]:
        pred, model_ms = self.core.timed_predict(inputs[self.card.inputs[0].name])
        return wire.output_dict(pred, self.card), model_ms

    def info(self) -> dict:
        return self.core.info()


def _batch_of(inputs: dict) -> int:
    return len(next(iter(inputs.values())))


class LocalModel:
    """The model in this process: the inference core's ``run``, called in the request's thread, or batched."""

    speaks: frozenset[str] = frozenset()
    infers_tensors = True

    def __init__(self, core, max_batch: int, batch_max_size: int = 1, batch_timeout_ms: float = 0.0):
        self.core = core if hasattr(core, "timed_run") else _PredictingCore(core)
        self.card: ModelCard = self.core.card
        self.model_name = core.name
        self.max_batch = max_batch
        self.batcher = Batcher(self.core.run, batch_max_size, batch_timeout_ms) if batch_max_size > 1 else None

    @classmethod
    def from_settings(cls, settings) -> "LocalModel":
        from servebench.inference import InferenceCore

        return cls(InferenceCore.from_settings(settings), settings.max_batch,
                   settings.batch_max_size, settings.batch_timeout_ms)

    def model_version(self) -> int:
        return self.core.version

    @property
    def batch_max_size(self) -> int:
        return self.batcher.max_size if self.batcher else 1

    @property
    def batch_timeout_ms(self) -> float:
        return self.batcher.timeout_ms if self.batcher else 0.0

    def batching(self) -> tuple[int, float]:
        return self.batch_max_size, self.batch_timeout_ms

    def ready(self) -> bool:
        return True

    def submit(self, inputs: dict[str, np.ndarray]) -> Future | None:
        """The batcher's future of this request's :class:`BatchResult` (see :meth:`batched`); None when
        unbatched (then :meth:`infer` calls the model in the caller's thread)."""
        return None if self.batcher is None else self.batcher.submit(inputs)

    @staticmethod
    def batched(r: BatchResult) -> Inferred:
        """A batched request's answer, with how long it queued, its model call and its batch's size."""
        return Inferred(r.outputs, join_timing(timing_entry("queue", r.queue_ms), timing_entry("model", r.model_ms),
                                               f"batch;desc={r.batch_size}"))

    def infer(self, inputs: dict[str, np.ndarray]) -> Inferred:
        try:
            if self.batcher is None:
                outputs, model_ms = self.core.timed_run(inputs)
                return Inferred(outputs, join_timing(timing_entry("model", model_ms), f"batch;desc={_batch_of(inputs)}"))
            r = self.batcher(inputs)  # this thread waits for its batch (or runs it, when the model is idle)
        except Exception as exc:
            raise inference_failed(exc) from None
        return self.batched(r)

    def forward(self, method, path, body, headers) -> Reply:
        raise NotImplementedError("a local model speaks no protocol to pass on")

    def info(self) -> dict:
        return {**self.core.info(), "batch_max_size": self.batch_max_size, "batch_timeout_ms": self.batch_timeout_ms}

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


# ------------------------------------------------------------------ routes
@dataclass(frozen=True)
class Route:
    protocol: str  # one of PROTOCOLS
    action: str  # predict; v2: infer, server, live, ready, model, model_ready, config; tfserving: status, metadata
    methods: tuple[str, ...]
    model: str | None = None
    version: str | None = None


_MODEL = r"/models/(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
_ROUTES = (
    (re.compile(r"/v1/predict"), "v1", "predict", ("POST",)),
    (re.compile(r"/v2/?"), "v2", "server", ("GET", "HEAD")),
    (re.compile(r"/v2/health/live"), "v2", "live", ("GET", "HEAD")),
    (re.compile(r"/v2/health/ready"), "v2", "ready", ("GET", "HEAD")),
    (re.compile(r"/v2" + _MODEL), "v2", "model", ("GET", "HEAD")),
    (re.compile(r"/v2" + _MODEL + r"/ready"), "v2", "model_ready", ("GET", "HEAD")),
    (re.compile(r"/v2" + _MODEL + r"/config"), "v2", "config", ("GET", "HEAD")),
    (re.compile(r"/v2" + _MODEL + r"/infer"), "v2", "infer", ("POST",)),
    (re.compile(r"/v1" + _MODEL), "tfserving", "status", ("GET", "HEAD")),
    (re.compile(r"/v1" + _MODEL + r"/metadata"), "tfserving", "metadata", ("GET", "HEAD")),
    (re.compile(r"/v1" + _MODEL + r":predict"), "tfserving", "predict", ("POST",)),
)
# The path prefixes each server routes to handle(); anything else is its own 404.
PREFIXES = ("/v1/predict", "/v1/models/", "/v2")


def match(path: str) -> Route | None:
    for pattern, protocol, action, methods in _ROUTES:
        m = pattern.fullmatch(path)
        if m:
            found = m.groupdict()
            return Route(protocol, action, methods, found.get("model"), found.get("version"))
    return None


def protocol_of(path: str) -> str:
    """Which protocol's error format a path's answer uses (v1 for unknown paths)."""
    if path.startswith("/v2"):
        return "v2"
    if path.startswith("/v1/models"):
        return "tfserving"
    return "v1"


def error_reply(protocol: str, status: int, message: str, headers=(), **extra) -> Reply:
    if protocol == "v2":
        body = kserve.error_body(message) if not extra else json.dumps({"error": message, **extra}).encode()
    elif protocol == "tfserving":
        body = tfserving.rest_error_body(message) if not extra else json.dumps({"error": message, **extra}).encode()
    else:
        body = codecs.error_body(message, **extra)
    return Reply(status, body, "", headers=tuple(headers))


def _json_reply(doc: dict, status: int = 200) -> Reply:
    return Reply(status, json.dumps(doc).encode(), "")


# ------------------------------------------------------------------ handling
@dataclass(frozen=True)
class Decoded:
    """A prediction request, decoded and validated, that awaits its model call (:func:`begin`)."""

    route: Route
    card: ModelCard
    inputs: dict[str, np.ndarray]
    how: Any  # what the encoder needs to answer in kind (a v2 request's binary outputs...)
    decode_ms: float
    method: str
    path: str


def handle(target: Target, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
    """The answer to one request; never raises. The model is called in this thread."""
    step = begin(target, method, path, body, headers)
    if isinstance(step, Reply):
        return step
    try:
        inferred = _infer(target, step.inputs, step.card)
    except InferenceFailed as exc:
        inferred = exc
    except Exception as exc:
        return _internal_error(step.route.protocol, method, path, exc)
    return finish(target, step, inferred)


def waits_for_batches(target: Target) -> bool:
    """Whether ``target`` batches in this process, so that :func:`handle_async` can answer it."""
    return isinstance(target, LocalModel) and target.batcher is not None


async def handle_async(target: LocalModel, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
    """:func:`handle` for a target that batches (:func:`waits_for_batches`), on an event loop: the request
    awaits its batch holding no thread, so more requests wait than there are threads. Decoding and encoding
    run on the loop (one image's raw or JSON body: cheaper than a hop to a thread). Never raises."""
    step = begin(target, method, path, body, headers)
    if isinstance(step, Reply):
        return step
    try:
        result = await asyncio.wrap_future(target.submit(step.inputs))
    except Exception as exc:
        return finish(target, step, inference_failed(exc))
    return finish(target, step, target.batched(result))


def begin(target: Target, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply | Decoded:
    """Routing, validation and decoding: the answer when it needs no model call (metadata, a request passed
    on unchanged, bad input), else the decoded request for :func:`finish`. Never raises."""
    route = match(path)
    protocol = route.protocol if route else protocol_of(path)
    if route is None:
        return error_reply(protocol, 404, f"no such path {path}: use POST /v1/predict, "
                                          f"POST /v2/models/{target.model_name}/infer or "
                                          f"POST /v1/models/{target.model_name}:predict")
    if method not in route.methods:
        allow = ", ".join(route.methods)
        return error_reply(protocol, 405, f"method {method} not allowed on {path}: use {allow}",
                           headers=(("Allow", allow),))
    if route.protocol in target.speaks:
        return target.forward(method, path, body, headers)
    try:
        problem = _unknown_model(target, route)
        if problem:
            return error_reply(protocol, 404, problem)
        if route.action == "predict" or route.action == "infer":
            return _decode_request(target, route, body, headers, method, path)
        return _describe(target, route)
    except Exception as exc:
        return _internal_error(protocol, method, path, exc)


def finish(target: Target, decoded: Decoded, inferred: Inferred | InferenceFailed) -> Reply:
    """The answer to a decoded request from its model call's outcome, in the client's protocol. Never raises."""
    route = decoded.route
    if isinstance(inferred, InferenceFailed):
        return error_reply(route.protocol, inferred.status, inferred.message, **inferred.extra)
    try:
        outputs = wire.output_dict(inferred.outputs, decoded.card)
        out, content_type, extra = _encode(route, outputs, decoded.how, target, decoded.card, inferred.details)
    except Exception as exc:
        return _internal_error(route.protocol, decoded.method, decoded.path, exc)
    return Reply(200, out, join_timing(timing_entry("decode", decoded.decode_ms), inferred.timing), content_type, extra)


def _internal_error(protocol: str, method: str, path: str, exc: Exception) -> Reply:
    # A regression in a codec or a target; never a server's HTML 500.
    log.error("unexpected error answering %s %s", method, path, exc_info=exc)
    return error_reply(protocol, 500, f"internal error: {type(exc).__name__}")


def _unknown_model(target: Target, route: Route) -> str | None:
    if route.model is None:
        return None
    if route.model != target.model_name:
        return f"model {route.model!r} not found: this server serves {target.model_name!r}"
    if route.version is not None and route.version != str(target.model_version()):
        return f"version {route.version!r} of model {route.model!r} not found: it serves version {target.model_version()}"
    return None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value; servers pass case-insensitive mappings, tests may pass plain dicts."""
    value = headers.get(name)
    return headers.get(name.lower()) if value is None else value


def card_of(target: Target) -> ModelCard:
    return getattr(target, "card", None) or codecs.CIFAR10_CARD


def _decode(route: Route, body: bytes, headers: Mapping[str, str], max_batch: int, card: ModelCard):
    """(inputs by name, what the encoder needs to answer in kind); raises CodecError."""
    content_type = header(headers, "Content-Type")
    if route.protocol == "v2":
        req = kserve.decode_infer_request(body, content_type, header(headers, kserve.HEADER_LENGTH), max_batch, card)
        return req.inputs, req
    if route.protocol == "tfserving":
        return tfserving.decode_rest_request(body, max_batch, card)
    if not card.is_image:
        raise codecs.CodecError(
            f"POST /v1/predict takes images, and model {card.name!r} is not an image model (it takes "
            f"{describe(card.inputs)}): use KServe v2, POST /v2/models/{card.name}/infer, or TF Serving's "
            f"POST /v1/models/{card.name}:predict", status=400)
    images = codecs.decode(body, content_type, max_batch, card.image_shape)
    return wire.validate(card, {card.inputs[0].name: images}, max_batch), None


def _encode(route: Route, outputs: dict, how, target: Target, card: ModelCard,
            details: dict | None = None) -> tuple[bytes, str, tuple]:
    if route.protocol == "v2":
        body, headers = kserve.encode_infer_response(outputs, how, target.model_version(), card)
        headers = {k: v for k, v in headers.items()}
        content_type = headers.pop("Content-Type", codecs.JSON)
        return body, content_type, tuple(headers.items())
    if route.protocol == "tfserving":
        return tfserving.encode_rest_response(outputs, how, card), codecs.JSON, ()
    model = {"name": target.model_name, "version": target.model_version()}
    if card.is_classifier:
        pred = codecs.classifier_prediction(outputs, card)
        return codecs.encode_predictions(pred, model, details, card.class_names), codecs.JSON, ()
    return codecs.encode_outputs(outputs, card, model, details), codecs.JSON, ()


def _infer(target: Target, inputs: dict, card: ModelCard) -> Inferred:
    if getattr(target, "infers_tensors", False):
        return target.infer(inputs)
    return target.infer(inputs[card.inputs[0].name])  # a target written for the default model alone


def _decode_request(target: Target, route: Route, body: bytes, headers: Mapping[str, str], method: str,
                    path: str) -> Reply | Decoded:
    start = time.perf_counter()
    card = card_of(target)
    try:
        inputs, how = _decode(route, body, headers, target.max_batch, card)
    except codecs.CodecError as exc:
        return error_reply(route.protocol, exc.status, exc.message)
    except Exception as exc:  # decoders are total; this only guards against a regression there
        log.warning("decode raised %s instead of CodecError", type(exc).__name__, exc_info=True)
        return error_reply(route.protocol, 400, f"malformed request body: {type(exc).__name__}")
    return Decoded(route, card, inputs, how, (time.perf_counter() - start) * 1000.0, method, path)


def _describe(target: Target, route: Route) -> Reply:
    """Health, readiness and metadata, answered for the model this target serves."""
    action, version = route.action, target.model_version()
    if action == "live":
        return _json_reply({"live": True})
    if action in ("ready", "model_ready"):
        ok = target.ready()
        return _json_reply({"ready": ok} if action == "ready" else {"name": target.model_name, "ready": ok},
                           200 if ok else 503)
    if action == "server":
        return _json_reply(kserve.server_metadata())
    if action == "model":
        return _json_reply(kserve.model_metadata(version, card_of(target)))
    if action == "config":
        size, timeout_ms = target.batching()
        return _json_reply(kserve.model_config(target.max_batch, dynamic_batching=size > 1,
                                               max_queue_delay_us=int(timeout_ms * 1000), card=card_of(target)))
    if action == "status":
        return _json_reply(tfserving.model_status(version))
    if action == "metadata":
        return _json_reply(tfserving.model_metadata(version, card_of(target)))
    raise ValueError(f"no answer for {action}")
