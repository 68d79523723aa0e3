"""The predict endpoint's logic, shared by every in-process server.

Embedded Django, Flask and FastAPI differ only in how they receive bytes and
send bytes back; decoding, validation, the model call, the response body and
the timing header are made here, once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from servebench import codecs
from servebench.inference import InferenceCore


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    timing: str  # Server-Timing entries of this hop, e.g. "decode;dur=0.2, model;dur=4.1"
    content_type: str = codecs.JSON


def timing_entry(name: str, ms: float) -> str:
    return f"{name};dur={ms:.3f}"


def join_timing(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def predict(core: InferenceCore, body: bytes, content_type: str | None, max_batch: int) -> Reply:
    start = time.perf_counter()
    try:
        images = codecs.decode(body, content_type, max_batch)
    except codecs.CodecError as exc:
        return Reply(exc.status, codecs.error_body(exc.message), "")
    decoded = time.perf_counter()
    pred, model_ms = core.timed_predict(images)
    return Reply(
        200,
        codecs.encode_predictions(pred, {"name": core.name, "version": core.version}),
        join_timing(timing_entry("decode", (decoded - start) * 1000.0), timing_entry("model", model_ms)),
    )
