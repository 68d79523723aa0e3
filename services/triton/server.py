"""Triton Inference Server on the CPU, through PyTriton: the inference core as model "cifar10_cnn" (KServe v2).

    .venv-triton/bin/python -m services.triton.server --host 127.0.0.1 --port 8010

PyTriton starts the tritonserver it bundles as a child process; Triton's Python
backend stub (one per model instance) hands each batch over a local socket to
an infer callable in this process, which calls :meth:`InferenceCore.predict`,
the same core as every other server. Triton speaks KServe v2 over HTTP
(``--host``/``--port``) and gRPC (``SB_TRITON_GRPC_PORT``), both on loopback;
metrics are off. SIGTERM or SIGINT stops tritonserver and its stubs, then exits;
if this process is killed outright, tritonserver gets SIGTERM from the kernel
(PyTriton sets PR_SET_PDEATHSIG) and its stubs follow, but PyTriton's
workspace (a copy of tritonserver, ~30 MB under ~/.cache/pytriton) stays.

Inputs and outputs (the batch dimension is Triton's, from ``max_batch_size``):
``images`` UINT8 [-1, 32, 32, 3] -> ``probabilities`` FP32 [-1, 10] and
``classes`` INT64 [-1, 1] (Triton needs at least one dimension besides the
batch, and PyTriton cannot write the ``reshape`` that would drop it).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import numpy as np

from servebench.inference import InferenceCore
from servebench.settings import Settings

log = logging.getLogger("servebench.triton")

INPUT = "images"
# Endpoints that change the server or read its memory need PyTriton's token (PyTriton loads the model
# through model-repository with it). Statistics stay open: they are read-only, and perf_analyzer and
# the studies read Triton's own queue and compute times from them.
RESTRICTED_ENDPOINTS = ["shared-memory", "model-repository", "trace", "logging"]
EXIT_TIMEOUT_S = 5  # in-flight requests' grace at stop; the native runtime SIGKILLs after 10 s


def model_config(settings: Settings):
    """Triton's batching for the settings: SB_BATCH_MAX_SIZE (n), SB_BATCH_TIMEOUT_MS and SB_MAX_BATCH.

    - ``max_batch_size`` is SB_MAX_BATCH, the largest batch one request may carry (Triton refuses
      bigger ones with a 400); raised to n should n exceed it (Triton wants its preferred size within it).
    - n=1 (batching off): no ``dynamic_batching`` section, so Triton's default scheduler runs every
      request as it came, never combined with another, as the other servers do.
    - n>1: ``dynamic_batching`` with ``preferred_batch_size: [n]`` (a batch is closed as soon as n
      images wait) and ``max_queue_delay_microseconds`` = SB_BATCH_TIMEOUT_MS x 1000 (how long the
      oldest request waits for batch-mates; 0 takes what is waiting). Triton's batcher forms a batch
      when an instance is free and then takes everything queued up to max_batch_size (32 clients
      sending one image each, n=8: batches of 9 to 17 images), so :func:`model_calls` cuts what it
      hands over into model calls of at most n images, never splitting a request: SB_BATCH_MAX_SIZE
      means what servebench.batching means by it. Triton's statistics count its batches, not calls.
    """
    from pytriton.model_config import DynamicBatcher, ModelConfig

    if settings.batch_max_size == 1:
        return ModelConfig(batching=True, max_batch_size=settings.max_batch, batcher=None)
    batcher = DynamicBatcher(max_queue_delay_microseconds=round(settings.batch_timeout_ms * 1000),
                             preferred_batch_size=[settings.batch_max_size])
    return ModelConfig(batching=True, max_batch_size=max(settings.max_batch, settings.batch_max_size),
                       batcher=batcher)


def model_calls(sizes: list[int], max_size: int) -> list[list[int]]:
    """The requests (by index, in order) that each model call runs: up to ``max_size`` images a call,
    a request never split (one that carries more runs alone), as servebench.batching groups them."""
    calls: list[list[int]] = []
    images = 0
    for i, n in enumerate(sizes):
        if calls and images + n <= max_size:
            calls[-1].append(i)
            images += n
        else:
            calls.append([i])
            images = n
    return calls


def infer_function(core: InferenceCore, max_size: int):
    """PyTriton's callable for one model instance: the requests Triton batched together, in model
    calls of at most ``max_size`` images (SB_BATCH_MAX_SIZE; 1: one request a call)."""

    def infer(requests):
        images = [req[INPUT] for req in requests]
        answers = []
        for call in model_calls([len(x) for x in images], max_size):
            batch = images[call[0]] if len(call) == 1 else np.concatenate([images[i] for i in call])
            pred = core.predict(batch)
            probabilities = pred.probabilities.astype(np.float32, copy=False)
            classes = pred.classes.astype(np.int64, copy=False).reshape(-1, 1)
            start = 0
            for i in call:
                n = len(images[i])
                answers.append({"probabilities": probabilities[start:start + n],
                                "classes": classes[start:start + n]})
                start += n
        return answers

    return infer


def bind(triton, settings: Settings, cores: list[InferenceCore]) -> None:
    """Model ``settings.model_name``, one Triton instance per core."""
    from pytriton.model_config import Tensor

    triton.bind(
        model_name=settings.model_name,
        model_version=cores[0].version,  # the SavedModel's, so /v2/models/<name>/versions/<v> is the same
        infer_func=[infer_function(core, settings.batch_max_size) for core in cores],
        inputs=[Tensor(name=INPUT, dtype=np.uint8, shape=(32, 32, 3))],
        outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(10,)),
                 Tensor(name="classes", dtype=np.int64, shape=(1,))],
        config=model_config(settings),
        strict=True,  # an answer that does not match the outputs above is an error, not a surprise
    )


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
    triton = Triton(config=triton_config(settings, host, port), security_config=security)
    try:
        bind(triton, settings, cores)
        triton.run()  # starts tritonserver, loads the model, returns once it is ready
        log.info("triton: model %s on http://%s:%d (gRPC %d), %d instance(s), batching %s",
                 settings.model_name, host, port, settings.triton_grpc_port, settings.triton_instances,
                 f"up to {settings.batch_max_size} images, {settings.batch_timeout_ms} ms"
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
