"""Which architectures the conformance tests run on: chosen from the registry, never listed by name.

The fault, fuzz, surface, protocol, architecture and compose tests take their
architectures from here, so a new architecture (one more folder) gets all of
them. One that cannot run here is not dropped: it is a skip whose reason is
its unmet need (e.g. no TF Serving binary). One whose record says it is slow to
start (``slow_start``: a Ray cluster) joins the suites on the run's shared stack
and its cluster's own faults, and skips, saying so, those that start a stack per
module or model.

What a test needs to know of an architecture's shape is derived from its
services (start order: what the front end calls, then the front end, then nginx).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from servebench import registry

FRONTEND = "frontend"
# The frame-stream protocols, and the streaming client's transport for each; every other architecture's
# front end answers HTTP POST /v1/predict.
STREAM_TRANSPORTS = {"tcp-stream": "tcp", "websocket": "ws", "grpc-stream": "grpc"}
# The shared HTTP stacks' knobs (tests/conftest.py http_stack), one set for every module that shares them:
# a tiny per-client limit keeps the surface's 429 test cheap (no module sends more than 2 requests at once);
# a short backend timeout keeps the 504 test short, yet gives an ensemble on a busy 2-core machine its time.
HTTP_STACK_KNOBS = {"conn_limit": 4, "backend_timeout_s": 5}
START_TIMEOUT_S = 600  # several TensorFlow processes (the ensemble's three members) on a busy 2-core machine


def http_architectures() -> list[registry.Architecture]:
    """Every architecture whose front end speaks HTTP predict (not the frame streams)."""
    return [a for a in registry.architectures() if a.protocol not in STREAM_TRANSPORTS]


def stream_architectures() -> list[registry.Architecture]:
    return [a for a in registry.architectures() if a.protocol in STREAM_TRANSPORTS]


def transport_of(arch: registry.Architecture) -> str:
    """The streaming client's transport for a stream architecture."""
    return STREAM_TRANSPORTS[arch.protocol]


def runnable_here(arch: registry.Architecture, runtime: str = "native") -> bool:
    return not arch.unmet(runtime)


def _slow_to_start(arch, once: bool) -> str | None:
    """An architecture whose record says it is slow to start (a Ray cluster) runs where its stack is started once
    per run: the shared stack (tests/conftest.py http_stack), which the fault, fuzz, surface, protocol and
    architecture suites share, and a cluster's own faults; its own module covers the rest (batching...)."""
    if arch.slow_start and not once:
        return (f"{arch.slow_start}: it joins the suites on the run's shared stack, not those that start a "
                "stack per module or model")
    return None


def params(archs, runtime: str = "native", why_not=None, once: bool = False) -> list:
    """One pytest param per architecture (its name, id'd by it); one that cannot run here is skipped with why.

    ``why_not(arch)`` adds a reason of the test's own (a string, or None when it can run). ``once``: the caller
    starts one stack per architecture for the whole run, so an architecture slow to start takes part too."""
    out = []
    for arch in archs:
        reasons = arch.unmet(runtime) + ([r] if why_not and (r := why_not(arch)) else [])
        reasons += [r] if (r := _slow_to_start(arch, once)) else []
        marks = [pytest.mark.skip(reason=f"{arch.name}: {' '.join(reasons)}")] if reasons else []
        out.append(pytest.param(arch.name, id=arch.name, marks=marks))
    return out


def forwarded_to(arch_name: str) -> str | None:
    """The service the front end forwards to (started just before it), or None: the model is in the front end."""
    services = registry.get(arch_name).services
    at = services.index(FRONTEND) if FRONTEND in services else 0
    return services[at - 1] if at > 0 else None


def model_service(arch_name: str) -> str:
    """The service whose answers hold the model's: what the front end calls, else the front end itself."""
    return forwarded_to(arch_name) or FRONTEND


def speaks_servebench(service_name: str) -> bool:
    """Whether a service is one of ours (health at /healthz, /v1/info), not a third-party server (Triton)."""
    return registry.service(service_name).health_path == "/healthz"


def members_of(arch_name: str) -> tuple[str, ...]:
    """The model services the front end's backend calls in turn (started before it): the ensemble's members."""
    services = registry.get(arch_name).services
    backend = forwarded_to(arch_name)
    return services[:services.index(backend)] if backend else ()


def expected(arch_name: str, images, core):
    """What ``arch_name`` answers for ``images``, computed in process: the model's prediction, or for a backend
    that calls model services, the mean of their models' probabilities (the ensemble's rule). An architecture
    that combines its members otherwise needs its own in-process reference here."""
    members = members_of(arch_name)
    if not members:
        return core.predict(images)
    preds = [_core_of(name).predict(images) for name in members]
    probs = np.mean(np.stack([p.probabilities.astype(np.float32) for p in preds]), axis=0)
    return type(preds[0])(classes=probs.argmax(axis=1), probabilities=probs)


def atol(arch_name: str) -> float:
    """How close its probabilities are to :func:`expected`'s: a member's answer crosses one more JSON hop."""
    return 1e-5 if members_of(arch_name) else 2e-6


@functools.lru_cache(maxsize=None)
def _core_of(service_name: str):
    """The inference core of the model a service loads (its SB_MODEL_BASE, as it runs natively)."""
    from servebench.inference import InferenceCore
    from servebench.settings import Settings

    model_base = registry.service(service_name).runtime_env["SB_MODEL_BASE"].native(Settings(), None)
    return InferenceCore(Path(model_base))
