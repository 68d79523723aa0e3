"""What each hop of a request cost, from the timings the servers send back.

Every response carries ``Server-Timing`` entries in ms, each measured by the
hop that did the work:

- ``decode``: the request body turned into an image batch (where the model runs,
  or in Django for TF Serving and Triton);
- ``queue``: with server-side batching, from the request's arrival in the
  batcher to the start of the model call that answered it;
- ``model``: the model call itself (with batching: the whole batch's call);
- ``batch`` (``desc``, not ``dur``): how many images that model call ran;
- ``backend``: the Flask/FastAPI handler, from its start to its reply;
- ``forward``: Django's call to the backend (urllib3, send to reply);
- ``django``: Django's view, from its start to its response;

and nginx adds ``X-Upstream-Header-Time`` (seconds, 1 ms resolution): from
handing the request to gunicorn until the response headers came back.
The client measures the whole request (``latency``).

The hops are differences of these nested intervals (ms):

=========================  ====================================================
``client_network_nginx``   latency - upstream_header: client sending and
                           reading, loopback, nginx (and, in the open loop,
                           waiting for a free connection)
``gunicorn``               upstream_header - django: gunicorn, WSGI and
                           Django's middleware and routing outside the view
``django``                 django - what the view waited for: forward
                           (+ decode for TF Serving and Triton, decoded in Django),
                           or decode + queue + model for the embedded model
``forward_network``        forward - backend: urllib3, loopback and the
                           backend's server (gunicorn/werkzeug, uvicorn/starlette)
                           outside the handler; all of TF Serving's time when
                           there is no ``backend`` entry (model included)
``backend_framework``      backend - decode - queue - model: the handler's own
                           work (thread-pool hand-off, reading the body,
                           encoding the response)
``decode``, ``queue``,     as sent (``queue`` None without batching)
``model``
=========================  ====================================================

A hop is None when its inputs are absent (e.g. no backend for embedded).
nginx's 1 ms resolution makes ``client_network_nginx`` and ``gunicorn`` good
to about a millisecond per request; their medians are still informative.
"""
from __future__ import annotations

COMPONENTS = ("decode", "queue", "model", "backend", "forward", "django")
HOPS = ("client_network_nginx", "gunicorn", "django", "forward_network", "backend_framework", "decode", "queue",
        "model")
BATCH = "batch"  # the entry whose desc is the model call's batch size


def parse_server_timing(header: str | None) -> dict[str, float]:
    """``"decode;dur=0.6, model;dur=3.7, batch;desc=8"`` -> ``{"decode": 0.6, "model": 3.7, "batch": 8.0}``."""
    found: dict[str, float] = {}
    if not header:
        return found
    for entry in header.split(","):
        name, _, params = entry.strip().partition(";")
        name = name.strip()
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" or (key == "desc" and name == BATCH):
                try:
                    found[name] = float(value.strip('"'))
                except ValueError:
                    pass
    return found


def parse_seconds_ms(header: str | None) -> float | None:
    """nginx's ``$upstream_header_time`` (seconds; ``"a, b"`` after a retry: their sum) in ms."""
    if not header or header == "-":
        return None
    try:
        return sum(float(v) for v in header.replace(":", ",").split(",") if v.strip() not in ("", "-")) * 1000.0
    except ValueError:
        return None


def _sub(a: float | None, *parts: float | None) -> float | None:
    if a is None or any(p is None for p in parts):
        return None
    return a - sum(parts)


def hops(latency_ms: float, upstream_header_ms: float | None, t: dict[str, float]) -> dict[str, float | None]:
    """One request's hops (see the module docstring for the definitions)."""
    decode, model, backend = t.get("decode"), t.get("model"), t.get("backend")
    forward, django, queue = t.get("forward"), t.get("django"), t.get("queue")
    waited = queue or 0.0  # no queue entry: no batcher, nothing waited
    if forward is not None:
        inside_view = forward + (decode if backend is None and decode is not None else 0.0)
    elif decode is not None and model is not None:
        inside_view = decode + waited + model
    else:
        inside_view = None
    return {
        "client_network_nginx": _sub(latency_ms, upstream_header_ms),
        "gunicorn": _sub(upstream_header_ms, django),
        "django": _sub(django, inside_view),
        "forward_network": _sub(forward, backend) if backend is not None else forward,
        "backend_framework": _sub(backend, decode, waited, model),
        "decode": decode,
        "queue": queue,
        "model": model,
    }


def batch_size(t: dict[str, float]) -> int | None:
    """The images a request's model call ran (its ``batch;desc=<n>`` entry), None when it did not say."""
    value = t.get(BATCH)
    return None if value is None else int(value)


def batch_summary(sizes: list[int | None], batching_off: bool) -> dict:
    """Mean, median and max batch size over requests, and the share of answers that said.

    With batching off an answer that does not say ran alone (1); with it on, it is left out.
    """
    said = [s for s in sizes if s is not None]
    known = said + ([1] * (len(sizes) - len(said)) if batching_off else [])
    if not known:
        return {"mean": None, "median": None, "max": None, "seen": 0.0 if sizes else None}
    ordered = sorted(known)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return {"mean": round(sum(known) / len(known), 3), "median": round(float(median), 1),
            "max": max(known), "seen": round(len(said) / len(sizes), 3)}
