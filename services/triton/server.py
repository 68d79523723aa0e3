"""Triton Inference Server on the CPU, through PyTriton: the inference core as the stack's model (KServe v2).

    .venv-triton/bin/python -m services.triton.server --host 127.0.0.1 --port 8010

PyTriton starts the tritonserver it bundles as a child process; Triton's Python
backend stub (one per model instance) hands each batch over a local socket to
an infer callable in this process, which calls :meth:`InferenceCore.run`, the
same core (and SB_ENGINE) as every other server. Triton speaks KServe v2 over HTTP
(``--host``/``--port``) and gRPC (``SB_TRITON_GRPC_PORT``), both on loopback;
metrics are off. SIGTERM or SIGINT stops tritonserver and its stubs, then exits;
if this process is killed outright, tritonserver gets SIGTERM from the kernel
(PyTriton sets PR_SET_PDEATHSIG) and its stubs follow, but PyTriton's
workspace (a copy of tritonserver, ~30 MB under ~/.cache/pytriton) stays.

Inputs and outputs are the model card's tensors (SB_MODEL's), the batch dimension
Triton's (``max_batch_size``): see services/triton/config.py. For the default CNN:
``images`` UINT8 [-1, 32, 32, 3] -> ``probabilities`` FP32 [-1, 10] and
``classes`` INT64 [-1, 1].
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback

import numpy as np

from servebench.inference import InferenceCore
from servebench.modelcard import DATATYPES, describe
from servebench.settings import Settings
from services.triton.config import from_triton, model_config, to_triton

log = logging.getLogger("servebench.triton")

# Endpoints that change the server or read its memory need PyTriton's token (PyTriton loads the model
# through model-repository with it). Statistics stay open: they are read-only, and perf_analyzer and
# the studies read Triton's own queue and compute times from them.
RESTRICTED_ENDPOINTS = ["shared-memory", "model-repository", "trace", "logging"]
EXIT_TIMEOUT_S = 5  # in-flight requests' grace at stop; the native runtime SIGKILLs after 10 s
# Measured on a busy 2-core machine: 4 of 13 starts in one `make test` missed the handshake, twice in a row once;
# at that rate five attempts all miss about once in 400 starts.
START_ATTEMPTS = 5
HANDSHAKE = "get_config_from_handshake_server"  # where PyTriton's start-up race shows in a traceback


def pytriton_config(doc: dict):
    """PyTriton's ModelConfig for Triton's configuration ``doc`` (services.triton.config.model_config).

    Triton's batcher forms a batch when an instance is free and then takes everything queued up to
    max_batch_size (32 clients sending one image each, n=8: batches of 9 to 17), so :func:`model_calls`
    cuts what it hands over into model calls of at most n items, never splitting a request:
    SB_BATCH_MAX_SIZE means what servebench.batching means by it. Triton's statistics count its
    batches, not calls.
    """
    from pytriton.model_config import DynamicBatcher, ModelConfig

    batching = doc.get("dynamic_batching")
    batcher = None if batching is None else DynamicBatcher(
        max_queue_delay_microseconds=batching["max_queue_delay_microseconds"],
        preferred_batch_size=list(batching["preferred_batch_size"]))
    return ModelConfig(batching=True, max_batch_size=doc["max_batch_size"], batcher=batcher)


def pytriton_tensors(entries: list[dict]) -> list:
    """PyTriton's Tensors for the ``input`` or ``output`` entries of Triton's configuration."""
    from pytriton.model_config import Tensor

    types = {"TYPE_" + datatype: np.dtype(dtype).type for dtype, datatype in DATATYPES.items()}
    return [Tensor(name=e["name"], dtype=types[e["data_type"]], shape=tuple(e["dims"])) for e in entries]


def model_calls(sizes: list[int], max_size: int, shapes: list | None = None) -> list[list[int]]:
    """The requests (by index, in order) that each model call runs: up to ``max_size`` items a call,
    a request never split (one that carries more runs alone), as servebench.batching groups them;
    with ``shapes`` (each request's item shapes), only requests of equal shapes share a call."""
    calls: list[list[int]] = []
    items = 0
    for i, n in enumerate(sizes):
        same = shapes is None or not calls or shapes[calls[-1][0]] == shapes[i]
        if calls and same and items + n <= max_size:
            calls[-1].append(i)
            items += n
        else:
            calls.append([i])
            items = n
    return calls


def infer_function(core: InferenceCore, max_size: int):
    """PyTriton's callable for one model instance: the requests Triton batched together, in model
    calls of at most ``max_size`` items (SB_BATCH_MAX_SIZE; 1: one request a call). Any card whose
    first dimension is the batch: each input concatenated over the call's requests, each output cut
    back into the requests' rows."""
    card = core.card
    names = [spec.name for spec in card.inputs]

    def infer(requests):
        inputs = [from_triton(card, req) for req in requests]
        sizes = [len(x[names[0]]) for x in inputs]
        shapes = [tuple(x[name].shape[1:] for name in names) for x in inputs]
        answers = []
        for call in model_calls(sizes, max_size, shapes):
            batch = inputs[call[0]] if len(call) == 1 else {
                name: np.concatenate([inputs[i][name] for i in call]) for name in names}
            outputs = to_triton(card, core.run(batch))
            start = 0
            for i in call:
                n = sizes[i]
                answers.append({name: array[start:start + n] for name, array in outputs.items()})
                start += n
        return answers

    return infer


def bind(triton, settings: Settings, cores: list[InferenceCore]) -> dict:
    """Model ``settings.model_name``, one Triton instance per core, configured from the model's card;
    returns Triton's configuration (what ``GET /v2/models/<name>/config`` will show)."""
    doc = model_config(cores[0].card, settings, instances=len(cores))
    triton.bind(
        model_name=doc["name"],
        model_version=cores[0].version,  # the model's, so /v2/models/<name>/versions/<v> is the same
        infer_func=[infer_function(core, settings.batch_max_size) for core in cores],
        inputs=pytriton_tensors(doc["input"]),
        outputs=pytriton_tensors(doc["output"]),
        config=pytriton_config(doc),
        strict=True,  # an answer that does not match the outputs above is an error, not a surprise
    )
    return doc


def triton_config(settings: Settings, host: str, port: int):
    from pytriton.triton import TritonConfig

    return TritonConfig(
        http_address=host, http_port=port, grpc_address=host, grpc_port=settings.triton_grpc_port,
        allow_metrics=False, allow_gpu_metrics=False, allow_cpu_metrics=False,
        exit_timeout_secs=EXIT_TIMEOUT_S, log_verbose=0,
    )


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address of Triton's HTTP and gRPC endpoints")
    p.add_argument("--port", type=int, default=settings.triton_http_port, help="HTTP port (KServe v2 REST)")
    return p


def start(make_triton, settings: Settings, cores: list[InferenceCore]):
    """A running Triton with the model bound (``make_triton()`` makes it). With two or more instances, PyTriton's
    second stub connects to the first one's handshake socket as soon as its file exists, and is refused if the
    first has bound it but not yet listens (its start-up race, more likely on a busy machine). Such a start is
    tried again with a fresh Triton, saying so, up to START_ATTEMPTS in all. Any other failure is raised."""
    for attempt in range(1, START_ATTEMPTS + 1):
        triton = make_triton()
        try:
            bind(triton, settings, cores)
            triton.run()  # starts tritonserver, loads the model, returns once it is ready
            return triton
        except Exception as exc:
            triton.stop()
            if attempt == START_ATTEMPTS or HANDSHAKE not in "".join(traceback.format_exception(exc)):
                raise
            log.warning("triton: PyTriton's model stub missed its handshake (%s: %s); starting again (%d of %d)",
                        type(exc).__name__, exc, attempt + 1, START_ATTEMPTS)
    raise RuntimeError(f"START_ATTEMPTS is {START_ATTEMPTS}: no start was tried")


def serve(settings: Settings, host: str, port: int) -> int:
    import secrets

    from pytriton.triton import Triton, TritonSecurityConfig

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # One copy of the model per Triton instance (SB_TRITON_INSTANCES), all in this process: TensorFlow's
    # thread pools (SB_INTRA_OP_THREADS, SB_INTER_OP_THREADS) are the process's, shared by the copies.
    cores = [InferenceCore.from_settings(settings) for _ in range(settings.triton_instances)]
    if stop.is_set():
        return 0
    # Our own token, never written anywhere: nothing outside this process needs the restricted endpoints.
    security = TritonSecurityConfig(access_token=secrets.token_urlsafe(32),
                                    restricted_endpoints=list(RESTRICTED_ENDPOINTS))
    triton = start(lambda: Triton(config=triton_config(settings, host, port), security_config=security),
                   settings, cores)
    try:
        log.info("triton: model %s (%s, engine %s) on http://%s:%d (gRPC %d), %d instance(s), batching %s",
                 settings.model_name, describe(cores[0].card.inputs), cores[0].info().get("engine", "tensorflow"),
                 host, port, settings.triton_grpc_port, settings.triton_instances,
                 f"up to {settings.batch_max_size} items, {settings.batch_timeout_ms} ms"
                 if settings.batch_max_size > 1 else "off")
        while not stop.wait(1.0):
            if not triton.is_alive():
                log.error("triton: tritonserver or a model instance died")
                return 1
        return 0
    finally:
        triton.stop()  # SIGINT to tritonserver, which stops its stubs; waits for it, SIGKILL after 30 s


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pytriton").setLevel(logging.WARNING)
    settings = Settings(arch="triton")  # this server is the triton architecture's backend, whatever SB_ARCH says
    args = build_parser(settings).parse_args(argv)
    return serve(settings, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
