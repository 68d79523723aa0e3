"""The predict endpoint's logic, shared by every in-process server.

Embedded Django, Flask and FastAPI differ only in how they receive bytes and
send bytes back; decoding, validation, the model call, the response body and
the timing header are made here, once.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from servebench import codecs
from servebench.inference import InferenceCore

log = logging.getLogger(__name__)


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
    """Never raises: bad input is a 4xx reply, a failing model a JSON 500 (not a server's HTML page)."""
    start = time.perf_counter()
    try:
        images = codecs.decode(body, content_type, max_batch)
    except codecs.CodecError as exc:
        return Reply(exc.status, codecs.error_body(exc.message), "")
    except Exception as exc:  # decode is total; this only guards against a regression there
        log.warning("decode raised %s instead of CodecError", type(exc).__name__, exc_info=True)
        return Reply(400, codecs.error_body(f"malformed request body: {type(exc).__name__}"), "")
    decoded = time.perf_counter()
    try:
        pred, model_ms = core.timed_predict(images)
        out = codecs.encode_predictions(pred, {"name": core.name, "version": core.version})
    except Exception as exc:
        log.exception("inference failed")
        return Reply(500, codecs.error_body(f"inference failed: {type(exc).__name__}"), "")
    return Reply(
        200,
        out,
        join_timing(timing_entry("decode", (decoded - start) * 1000.0), timing_entry("model", model_ms)),
    )
