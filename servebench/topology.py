"""The one definition of every service: ports, commands, environment, health.

Both runtimes read it: the native runner (:mod:`servebench.stack`) resolves
the ``${VAR:-default}`` templates itself, and ``docker-compose.yml`` is
generated from it (``python -m servebench.topology compose``) so that compose
substitutes the very same variables. ``tests/unit/test_topology.py`` fails
when the committed compose file drifts from this module.

Knobs are environment variables with defaults sized for 2 cores; they are
recorded with every result (:func:`knobs`).
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field

ARCHES = ("embedded", "flask", "fastapi", "tfserving-rest", "tfserving-grpc")
PYTHON_DOCKERFILE = "docker/python-service.Dockerfile"  # one image recipe for every Python service
MODEL_NAME = "cifar10_cnn"

# Every knob, its default, and what it sets. Names are the same as make
# variables, compose variables and (for SB_*) the servers' settings.
KNOBS: dict[str, tuple[str, str]] = {
    "SB_LISTEN": ("127.0.0.1", "address nginx listens on (the only client-facing port)"),
    "SB_PORT": ("8080", "nginx port"),
    "SB_FRONTEND_PORT": ("8000", "gunicorn/Django port"),
    "SB_FLASK_PORT": ("5000", "Flask model server port"),
    "SB_FASTAPI_PORT": ("8001", "FastAPI model server port"),
    "SB_TFSERVING_GRPC_PORT": ("8500", "TF Serving gRPC port"),
    "SB_TFSERVING_REST_PORT": ("8501", "TF Serving REST port"),
    "SB_FRONTEND_WORKERS": ("2", "gunicorn worker processes for Django"),
    "SB_FRONTEND_THREADS": ("4", "threads per Django worker (gthread)"),
    # Two, like the front end's workers: embedded then runs as many model copies as flask/fastapi.
    "SB_BACKEND_WORKERS": ("2", "worker processes of the Flask/FastAPI model server"),
    "SB_BACKEND_THREADS": ("4", "threads per Flask worker / inference threads per FastAPI worker"),
    "SB_INTRA_OP_THREADS": ("1", "TensorFlow intra-op threads per model process"),
    "SB_INTER_OP_THREADS": ("1", "TensorFlow inter-op threads per model process"),
    "SB_CALL_PATH": ("signature", "how a model process calls the model: signature or keras-predict (the slow path)"),
    "SB_BACKEND_TIMEOUT_S": ("10", "seconds the front end waits for a backend"),
    "SB_MAX_BATCH": ("256", "largest batch one request may carry"),
    "SB_TFSERVING_BATCHING": ("false", "TF Serving server-side batching (services/tfserving/batching.config)"),
    "SB_ALLOWED_HOSTS": ("127.0.0.1,localhost,[::1]",
                         "Host names Django answers to, comma-separated (SB_LISTEN is added; other hosts get 400)"),
    # The harness opens up to 64 connections plus locust's, all from one loopback address.
    "SB_CONN_LIMIT": ("256", "requests nginx processes at once per client address (429 beyond)"),
}


def default(name: str) -> str:
    return KNOBS[name][0]


def ref(name: str) -> str:
    """A compose-style reference with its default, resolved by both runtimes."""
    return "${%s:-%s}" % (name, default(name))


@dataclass(frozen=True)
class Service:
    name: str
    port_knob: str
    command: tuple[str, ...]
    environment: dict[str, str] = field(default_factory=dict)
    health_path: str = "/healthz"  # HTTP GET answered 200 once ready
    dockerfile: str | None = None  # None: an official image (TF Serving)
    image: str | None = None
    profiles: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()

    @property
    def default_port(self) -> int:
        return int(default(self.port_knob))


def _model_env() -> dict[str, str]:
    return {
        "SB_INTRA_OP_THREADS": ref("SB_INTRA_OP_THREADS"),
        "SB_INTER_OP_THREADS": ref("SB_INTER_OP_THREADS"),
        "SB_MAX_BATCH": ref("SB_MAX_BATCH"),
        "SB_CALL_PATH": ref("SB_CALL_PATH"),
    }


NGINX = Service(
    name="nginx",
    port_knob="SB_PORT",
    command=("python", "-m", "servebench.nginx_conf", "--exec"),
    environment={
        "SB_LISTEN": ref("SB_LISTEN"),
        "SB_PORT": ref("SB_PORT"),
        "SB_FRONTEND_PORT": ref("SB_FRONTEND_PORT"),
        "SB_CONN_LIMIT": ref("SB_CONN_LIMIT"),
    },
    health_path="/nginx-health",
    dockerfile="nginx/Dockerfile",
    profiles=("embedded", "flask", "fastapi", "tfserving"),
    depends_on=("frontend",),
)

FRONTEND = Service(
    name="frontend",
    port_knob="SB_FRONTEND_PORT",
    command=(
        "gunicorn", "services.frontend.wsgi:application",
        "--config", "services/frontend/gunicorn_conf.py",
        "--bind", "127.0.0.1:" + ref("SB_FRONTEND_PORT"),
        "--workers", ref("SB_FRONTEND_WORKERS"),
        "--threads", ref("SB_FRONTEND_THREADS"),
    ),
    environment={
        "SB_ARCH": "${ARCH:-embedded}",
        "SB_FLASK_PORT": ref("SB_FLASK_PORT"),
        "SB_FASTAPI_PORT": ref("SB_FASTAPI_PORT"),
        "SB_TFSERVING_REST_PORT": ref("SB_TFSERVING_REST_PORT"),
        "SB_TFSERVING_GRPC_PORT": ref("SB_TFSERVING_GRPC_PORT"),
        "SB_BACKEND_TIMEOUT_S": ref("SB_BACKEND_TIMEOUT_S"),
        "SB_LISTEN": ref("SB_LISTEN"),
        "SB_ALLOWED_HOSTS": ref("SB_ALLOWED_HOSTS"),
        # Not a knob (knobs are recorded): passed through when set, else each worker draws one.
        "SB_SECRET_KEY": "${SB_SECRET_KEY:-}",
        **_model_env(),
    },
    dockerfile=PYTHON_DOCKERFILE,
    profiles=("embedded", "flask", "fastapi", "tfserving"),
)

FLASK = Service(
    name="flask",
    port_knob="SB_FLASK_PORT",
    command=(
        "gunicorn", "services.flask_backend.app:app",
        "--config", "services/flask_backend/gunicorn_conf.py",
        "--bind", "127.0.0.1:" + ref("SB_FLASK_PORT"),
        "--workers", ref("SB_BACKEND_WORKERS"),
        "--threads", ref("SB_BACKEND_THREADS"),
    ),
    environment=_model_env(),
    dockerfile=PYTHON_DOCKERFILE,
    profiles=("flask",),
)

FASTAPI = Service(
    name="fastapi",
    port_knob="SB_FASTAPI_PORT",
    command=(
        "uvicorn", "services.fastapi_backend.app:app",
        "--host", "127.0.0.1", "--port", ref("SB_FASTAPI_PORT"),
        "--workers", ref("SB_BACKEND_WORKERS"),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        # Uvicorn's default (5 s) races with the front end reusing its pooled connections.
        "--timeout-keep-alive", "75",
    ),
    environment={**_model_env(), "SB_BACKEND_THREADS": ref("SB_BACKEND_THREADS")},
    dockerfile=PYTHON_DOCKERFILE,
    profiles=("fastapi",),
)

TFSERVING = Service(
    name="tfserving",
    port_knob="SB_TFSERVING_REST_PORT",
    command=(
        "tensorflow_model_server",
        "--port=" + ref("SB_TFSERVING_GRPC_PORT"),
        "--rest_api_port=" + ref("SB_TFSERVING_REST_PORT"),
        "--model_config_file=${SB_TFSERVING_MODELS_CONFIG:-/models/models.config}",
        "--enable_batching=" + ref("SB_TFSERVING_BATCHING"),
        # TF Serving refuses a batching file without --enable_batching, so it is empty unless set.
        "--batching_parameters_file=${SB_TFSERVING_BATCHING_CONFIG:-}",
        "--tensorflow_intra_op_parallelism=" + ref("SB_INTRA_OP_THREADS"),
        "--tensorflow_inter_op_parallelism=" + ref("SB_INTER_OP_THREADS"),
    ),
    health_path=f"/v1/models/{MODEL_NAME}",
    image="tensorflow/serving:2.19.0",
    profiles=("tfserving",),
)

SERVICES = {s.name: s for s in (NGINX, FRONTEND, FLASK, FASTAPI, TFSERVING)}

BACKEND_OF = {
    "embedded": None,
    "flask": "flask",
    "fastapi": "fastapi",
    "tfserving-rest": "tfserving",
    "tfserving-grpc": "tfserving",
}
PROFILE_OF = {
    "embedded": "embedded",
    "flask": "flask",
    "fastapi": "fastapi",
    "tfserving-rest": "tfserving",
    "tfserving-grpc": "tfserving",
}


def check_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise ValueError(f"unknown ARCH {arch!r}: choose one of {', '.join(ARCHES)}")
    return arch


def services_for(arch: str) -> list[Service]:
    """Start order: backend first, then the front end, then nginx."""
    check_arch(arch)
    backend = BACKEND_OF[arch]
    return ([SERVICES[backend]] if backend else []) + [FRONTEND, NGINX]


_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve(template: str, env: dict[str, str]) -> str:
    """Substitute ``${VAR:-default}`` as compose does."""
    return _REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), template)


def knobs(env: dict[str, str] | None = None) -> dict[str, str]:
    """The value in force of every knob (for results and for the runtimes)."""
    env = os.environ if env is None else env
    return {name: env.get(name) or dflt for name, (dflt, _) in KNOBS.items()}


def port(service: Service, env: dict[str, str] | None = None) -> int:
    return int(knobs(env)[service.port_knob])


def base_url(env: dict[str, str] | None = None) -> str:
    k = knobs(env)
    host = "127.0.0.1" if k["SB_LISTEN"] in ("0.0.0.0", "") else k["SB_LISTEN"]
    return f"http://{host}:{k['SB_PORT']}"


def compose_document() -> dict:
    """The docker-compose.yml this topology implies (see docker/ for images)."""
    services = {}
    for svc in SERVICES.values():
        spec: dict = {}
        if svc.dockerfile:
            spec["build"] = {
                "context": ".",
                "dockerfile": svc.dockerfile,
                "network": "host",
                "args": {"BASE_IMAGE": "${BASE_IMAGE:-python:3.11-slim-bookworm}"},
            }
            spec["image"] = f"servebench/{svc.name}:latest"
        else:
            spec["image"] = svc.image
        spec["profiles"] = list(svc.profiles)
        spec["network_mode"] = "host"
        if svc.dockerfile:
            spec["command"] = list(svc.command)
        else:
            # The official image's entrypoint adds its own model flags; run the server directly.
            spec["entrypoint"] = [svc.command[0]]
            spec["command"] = list(svc.command[1:])
        env = dict(svc.environment)
        if svc is FRONTEND or svc is FLASK or svc is FASTAPI:
            env["SB_MODEL_BASE"] = "/app/models/" + MODEL_NAME
        spec["environment"] = env
        if svc is TFSERVING:
            spec["volumes"] = ["./models/cifar10_cnn:/models/cifar10_cnn:ro",
                               "./services/tfserving/models.config:/models/models.config:ro",
                               "./services/tfserving/batching.config:/models/batching.config:ro"]
        probe_port = ref(svc.port_knob)
        spec["healthcheck"] = (
            {"test": ["CMD", "python", "-m", "servebench.healthcheck", f"http://127.0.0.1:{probe_port}{svc.health_path}"],
             "interval": "2s", "timeout": "2s", "retries": 60}
            if svc is not TFSERVING
            else {"test": ["CMD-SHELL", f"timeout 2 bash -c '</dev/tcp/127.0.0.1/{probe_port}'"],
                  "interval": "2s", "timeout": "3s", "retries": 60}
        )
        if svc.depends_on:
            spec["depends_on"] = {d: {"condition": "service_healthy"} for d in svc.depends_on}
        services[svc.name] = spec
    return {"version": "2.4", "services": services}


def main(argv: list[str]) -> int:
    if argv[:1] == ["compose"]:
        import yaml

        header = "# Generated by `python -m servebench.topology compose` from servebench/topology.py.\n# Edit the topology, then regenerate: a test fails when the two drift apart.\n"
        sys.stdout.write(header + yaml.safe_dump(compose_document(), sort_keys=False, width=120))
        return 0
    if argv[:1] == ["knobs"]:
        for name, (dflt, doc) in KNOBS.items():
            print(f"{name:<24} {dflt:<12} {doc}")
        return 0
    print("usage: python -m servebench.topology compose|knobs", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
