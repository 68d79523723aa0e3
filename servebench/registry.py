"""The one place where services, architectures and studies are declared.

An architecture is one :class:`Architecture` record: the services it runs, its
compose profile, the front end's backend class, its title and colour in plots,
what it needs to run, and the study it belongs to. A service is one
:class:`Service` record (command, port knob, health path, image). A study is
one :class:`Study` record whose module (under ``bench/studies/``) holds its
experiments and its report section.

The CLI choices, both runtimes, the compose file generator, the front end, the
report and the studies table look them up here. Adding an architecture is a
record (plus its service folder); a test registers a dummy one with
:func:`register` and sees it everywhere.
"""
from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from servebench.cgroups import Limits
from servebench.settings import MODEL, MODEL_SERVER, REPO_ROOT, Settings, env_name, knob_defaults

PYTHON_DOCKERFILE = "docker/python-service.Dockerfile"  # one image recipe for every Python service
CONTAINER_MODEL_BASE = "/app/models/cifar10_cnn"  # where the image holds the model

RUNTIMES = ("native", "docker")


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class Need:
    """Something an architecture needs to run, and what to do when it is missing."""

    kind: Literal["binary", "docker", "venv", "root", "file"]  # file: a path that must exist (issue 11)
    what: str  # a program, a virtual environment's folder (relative to the repo), or '' for docker/root
    how: str  # how to get it: shown as is
    runtimes: tuple[str, ...] = RUNTIMES  # where it is needed

    def unmet(self, runtime: str) -> str | None:
        """None when met (or not needed on ``runtime``), else the message that says how to get it."""
        if runtime not in self.runtimes:
            return None
        if self.kind == "binary":
            met = shutil.which(self.what) is not None
        elif self.kind == "venv":
            met = (REPO_ROOT / self.what / "bin" / "python").exists()
        elif self.kind == "root":
            met = os.geteuid() == 0
        elif self.kind == "file":  # issue 11: e.g. an nginx module
            met = Path(self.what).exists()
        else:
            from servebench import compose

            met = compose.engine_answers()
        return None if met else self.how


@dataclass(frozen=True)
class RuntimeValue:
    """A value that differs by runtime: a path in the checkout natively, in the container under docker."""

    native: Callable[[Settings, "os.PathLike"], str]  # (settings, the stack's run dir) -> value
    docker: Callable[[Settings], str]


@dataclass(frozen=True)
class Service:
    name: str
    port_field: str  # the Settings field of the port its health is probed on
    command: tuple[str, ...]  # ${SB_X:-default} templates, resolved by both runtimes
    groups: tuple[str, ...] = ()  # knobs declared for a group reach every service in it
    environment: dict[str, str] = field(default_factory=dict)  # besides its knobs: fixed templates
    runtime_env: dict[str, RuntimeValue] = field(default_factory=dict)  # environment that differs by runtime
    runtime_vars: dict[str, RuntimeValue] = field(default_factory=dict)  # command-line values that differ
    health_path: str | None = "/healthz"  # HTTP GET answered 200 once ready; None: a TCP connect
    dockerfile: str | None = None  # None: an official image
    image: str | None = None
    volumes: tuple[str, ...] = ()  # compose only
    depends_on: tuple[str, ...] = ()
    # Memory and CPU limits from its knobs (servebench.cgroups.Limits; None: unlimited). Natively the
    # service runs in a cgroup of its own; under compose they become mem_limit and cpus.
    limits: Callable[[Settings], "Limits | None"] | None = None

    # --- serverless (issue 13) ---
    # Compose profiles of a service no architecture runs (a study's own, e.g. the object store).
    profiles: tuple[str, ...] = ()
    # --- end serverless (issue 13) ---

    def limits_in(self, settings: Settings) -> "Limits | None":
        return self.limits(settings) if self.limits else None


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str  # in plots and tables
    color: str  # matplotlib colour
    services: tuple[str, ...]  # start order: backend first, then the front end, then nginx
    profile: str  # compose profile
    backend: str  # the front end's backend class, "module:Class"
    backend_port: str | None = None  # the Settings field of the port the front end forwards to
    protocol: str = "in-process"  # how the front end talks to the backend: in-process, rest, grpc
    needs: tuple[Need, ...] = ()
    study: str | None = None
    study_label: str | None = None  # the name the study gives it, when the study measured it
    description: str = ""

    def unmet(self, runtime: str) -> list[str]:
        """What stops it from running on ``runtime`` (empty when nothing does)."""
        return [msg for need in self.needs if (msg := need.unmet(runtime))]


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    module: str  # under bench/studies/: its experiments (run) and its report section
    source: str = ""

    def load(self):
        return importlib.import_module(self.module)


_SERVICES: dict[str, Service] = {}
_ARCHITECTURES: dict[str, Architecture] = {}
_STUDIES: dict[str, Study] = {}


# ------------------------------------------------------------------ lookups
def register_service(svc: Service) -> Service:
    _SERVICES[svc.name] = svc
    return svc


def register(arch: Architecture) -> Architecture:
    missing = [s for s in arch.services if s not in _SERVICES]
    if missing:
        raise ValueError(f"architecture {arch.name!r} runs unknown services {missing}: register them first")
    _ARCHITECTURES[arch.name] = arch
    return arch


def register_study(study: Study) -> Study:
    _STUDIES[study.name] = study
    return study


def unregister(name: str) -> None:
    """Remove an architecture, and the services only it ran (tests register dummies)."""
    arch = _ARCHITECTURES.pop(name)
    used = {s for a in _ARCHITECTURES.values() for s in a.services}
    for svc in arch.services:
        if svc not in used:
            _SERVICES.pop(svc, None)


def unregister_study(name: str) -> None:
    _STUDIES.pop(name)


def names() -> tuple[str, ...]:
    return tuple(_ARCHITECTURES)


def architectures() -> tuple[Architecture, ...]:
    return tuple(_ARCHITECTURES.values())


def _lookup(table: dict, name: str, what: str):
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}: choose one of {', '.join(table)}") from None


def get(name: str) -> Architecture:
    return _lookup(_ARCHITECTURES, name, "ARCH")


def service(name: str) -> Service:
    return _SERVICES[name]


def services() -> dict[str, Service]:
    """Every service, in registration order."""
    return dict(_SERVICES)


def services_for(arch: str) -> list[Service]:
    """The services of ``arch`` in start order."""
    return [_SERVICES[s] for s in get(arch).services]


def profiles() -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.profile for a in _ARCHITECTURES.values()))


def profiles_of(service_name: str) -> tuple[str, ...]:
    own = _SERVICES[service_name].profiles if service_name in _SERVICES else ()  # issue 13
    return tuple(dict.fromkeys([*(a.profile for a in _ARCHITECTURES.values() if service_name in a.services), *own]))


def studies() -> tuple[Study, ...]:
    return tuple(_STUDIES.values())


def study(name: str) -> Study:
    return _lookup(_STUDIES, name, "STUDY")


def in_study(name: str) -> list[Architecture]:
    return [a for a in _ARCHITECTURES.values() if a.study == name]


# ------------------------------------------------------------------ services
def ref(field_name: str) -> str:
    """A compose-style reference to a knob with its default, resolved by both runtimes."""
    name = env_name(field_name)
    return "${%s:-%s}" % (name, knob_defaults()[name])


def _model_base_native(settings: Settings, run_dir) -> str:
    return str(settings.model_base)


MODEL_BASE = RuntimeValue(native=_model_base_native, docker=lambda s: CONTAINER_MODEL_BASE)

def _tfserving_models_config(settings: Settings, run_dir) -> str:
    """Natively, TF Serving's model config points at the checkout's model; written into the run dir."""
    from servebench import tfserving

    conf = Path(run_dir) / "tfserving" / "models.config"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(tfserving.render_models_config(str(settings.model_base)))
    return str(conf)


register_service(Service(
    name="nginx",
    port_field="port",
    command=("python", "-m", "servebench.nginx_conf", "--exec", "--prefix", "${SB_NGINX_PREFIX}"),
    runtime_vars={"SB_NGINX_PREFIX": RuntimeValue(native=lambda s, run_dir: str(Path(run_dir) / "nginx"),
                                                  docker=lambda s: "/tmp/servebench-nginx")},
    health_path="/nginx-health",
    dockerfile="nginx/Dockerfile",
    depends_on=("frontend",),
))


register_service(Service(
    name="frontend",
    port_field="frontend_port",
    command=(
        "gunicorn", "services.frontend.wsgi:application",
        "--config", "services/frontend/gunicorn_conf.py",
        "--bind", "127.0.0.1:" + ref("frontend_port"),
        "--workers", ref("frontend_workers"),
        "--threads", ref("frontend_threads"),
    ),
    groups=(MODEL,),
    environment={
        "SB_ARCH": "${ARCH:-embedded}",
        # Not a knob (knobs are recorded): passed through when set, else each worker draws one.
        "SB_SECRET_KEY": "${SB_SECRET_KEY:-}",
    },
    runtime_env={"SB_MODEL_BASE": MODEL_BASE},
    dockerfile=PYTHON_DOCKERFILE,
))

register_service(Service(
    name="flask",
    port_field="flask_port",
    command=(
        "gunicorn", "services.flask_backend.app:app",
        "--config", "services/flask_backend/gunicorn_conf.py",
        "--bind", "127.0.0.1:" + ref("flask_port"),
        "--workers", ref("backend_workers"),
        "--threads", ref("backend_threads"),
    ),
    groups=(MODEL, MODEL_SERVER),
    runtime_env={"SB_MODEL_BASE": MODEL_BASE},
    dockerfile=PYTHON_DOCKERFILE,
))

register_service(Service(
    name="fastapi",
    port_field="fastapi_port",
    command=(
        "uvicorn", "services.fastapi_backend.app:app",
        "--host", "127.0.0.1", "--port", ref("fastapi_port"),
        "--workers", ref("backend_workers"),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        # Uvicorn's default (5 s) races with the front end reusing its pooled connections.
        "--timeout-keep-alive", "75",
    ),
    groups=(MODEL, MODEL_SERVER),
    runtime_env={"SB_MODEL_BASE": MODEL_BASE},
    dockerfile=PYTHON_DOCKERFILE,
))

register_service(Service(
    name="tfserving",
    port_field="tfserving_rest_port",
    command=(
        "tensorflow_model_server",
        "--port=" + ref("tfserving_grpc_port"),
        "--rest_api_port=" + ref("tfserving_rest_port"),
        "--model_config_file=${SB_TFSERVING_MODELS_CONFIG}",
        "--enable_batching=" + ref("tfserving_batching"),
        # TF Serving refuses a batching file without --enable_batching, so it is empty unless set.
        "--batching_parameters_file=${SB_TFSERVING_BATCHING_CONFIG}",
        "--tensorflow_intra_op_parallelism=" + ref("intra_op_threads"),
        "--tensorflow_inter_op_parallelism=" + ref("inter_op_threads"),
    ),
    runtime_vars={
        "SB_TFSERVING_MODELS_CONFIG": RuntimeValue(
            native=lambda s, run_dir: _tfserving_models_config(s, run_dir),
            docker=lambda s: "/models/models.config"),
        "SB_TFSERVING_BATCHING_CONFIG": RuntimeValue(
            native=lambda s, run_dir: str(REPO_ROOT / "services/tfserving/batching.config") if s.tfserving_batching else "",
            docker=lambda s: "/models/batching.config" if s.tfserving_batching else ""),
    },
    health_path="/v1/models/" + Settings.model_fields["model_name"].default,
    image="tensorflow/serving:2.19.0",
    volumes=("./models/cifar10_cnn:/models/cifar10_cnn:ro",
             "./services/tfserving/models.config:/models/models.config:ro",
             "./services/tfserving/batching.config:/models/batching.config:ro"),
))

# Triton runs from its own venv (requirements-triton.txt, `make setup-triton`): nvidia-pytriton pins
# numpy<2 and pulls protobuf 6, which .venv's TensorFlow stack does not allow.
TRITON_VENV = ".venv-triton"


def _triton_python_native(settings: Settings, run_dir) -> str:
    return str(REPO_ROOT / TRITON_VENV / "bin" / "python")


_LIBDIRS: dict[str, str] = {}


def _python_libdir(python: str) -> str:
    """The lib folder of the Python build behind ``python`` (its sysconfig LIBDIR); '' when it cannot run."""
    if python not in _LIBDIRS:
        import subprocess

        try:
            out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""  # no venv yet: the architecture's Need says how to make it
        _LIBDIRS[python] = out
    return _LIBDIRS[python]


def _triton_ld_library_path(settings: Settings, run_dir) -> str:
    """Triton's Python backend stub links libpython3.11.so.1.0, found through the system's loader path
    (Debian's 3.11.2) unless told otherwise; a venv built from another Python (pyenv here) then fails to
    load the model ('_thread.RLock' object has no attribute '_recursion_count'). Point at the venv's own build."""
    return _python_libdir(_triton_python_native(settings, run_dir))


register_service(Service(
    name="triton",
    port_field="triton_http_port",
    command=("${SB_TRITON_PYTHON}", "-m", "services.triton.server",
             "--host", "127.0.0.1", "--port", ref("triton_http_port")),
    environment={"TF_CPP_MIN_LOG_LEVEL": "2"},  # as the Python image gives its services
    runtime_env={
        "SB_MODEL_BASE": MODEL_BASE,
        # The image's python3 and its libpython are one build (python:* images and Debian's alike).
        "LD_LIBRARY_PATH": RuntimeValue(native=_triton_ld_library_path, docker=lambda s: ""),
    },
    runtime_vars={"SB_TRITON_PYTHON": RuntimeValue(native=_triton_python_native, docker=lambda s: "python")},
    # The model's readiness, not the server's: PyTriton loads the model through Triton's API once the
    # server is up, and /v2/health/ready answers 200 in between (no model is loaded yet to wait for).
    health_path="/v2/models/" + Settings.model_fields["model_name"].default + "/ready",
    dockerfile="docker/triton.Dockerfile",
))


# ------------------------------------------------------------------ studies
register_study(Study(
    name="docker-serving",
    title="Docker-container serving architectures for real-time analysis",
    module="bench.studies.docker_serving",
    source='../shared/STUDIES.md, section 1',
))

register_study(Study(
    name="saturation",
    title="Saturated throughput: server-side batching, Triton, and cross-checks by outside tools",
    module="bench.studies.saturation",
    source="issue 10 (no published system: our stacks against the machine's in-process limit)",
))

# --- serverless (issue 13) ---
def _objectstore_data(settings: Settings, run_dir) -> str:
    """Natively, SeaweedFS keeps its data (and its sockets, through TMPDIR) in the run dir; removed on stop."""
    data = Path(run_dir) / "data"
    data.mkdir(parents=True, exist_ok=True)
    return str(data)


def _objectstore_port(offset: int) -> RuntimeValue:
    """SeaweedFS's master, volume and filer ports: the S3 port's next three (gRPC at each + 10000)."""
    return RuntimeValue(native=lambda s, run_dir: str(s.objectstore_port + offset),
                        docker=lambda s: str(s.objectstore_port + offset))


# The serverless study's S3 store (servebench.objectstore): no architecture runs it; the study starts it.
register_service(Service(
    name="objectstore",
    port_field="objectstore_port",
    command=("weed", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=${SB_OBJECTSTORE_DATA}",
             "-master.port=${SB_OBJECTSTORE_MASTER_PORT}", "-volume.port=${SB_OBJECTSTORE_VOLUME_PORT}",
             "-filer", "-filer.port=${SB_OBJECTSTORE_FILER_PORT}",
             "-filer.localSocket=${SB_OBJECTSTORE_DATA}/filer.sock",
             "-s3", "-s3.port=" + ref("objectstore_port"), "-s3.config=${SB_OBJECTSTORE_S3_CONFIG}",
             "-s3.localSocket=${SB_OBJECTSTORE_DATA}/s3.sock", "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-master.volumeSizeLimitMB=1024", "-volume.max=64"),
    runtime_env={"TMPDIR": RuntimeValue(native=_objectstore_data, docker=lambda s: "/tmp")},
    runtime_vars={
        "SB_OBJECTSTORE_DATA": RuntimeValue(native=_objectstore_data, docker=lambda s: "/data"),
        "SB_OBJECTSTORE_S3_CONFIG": RuntimeValue(
            native=lambda s, run_dir: str(REPO_ROOT / "services/objectstore/s3.json"),
            docker=lambda s: "/etc/seaweedfs/s3.json"),
        "SB_OBJECTSTORE_MASTER_PORT": _objectstore_port(1),
        "SB_OBJECTSTORE_VOLUME_PORT": _objectstore_port(2),
        "SB_OBJECTSTORE_FILER_PORT": _objectstore_port(3),
    },
    health_path="/healthz",
    image="chrislusf/seaweedfs:4.48",
    volumes=("./services/objectstore/s3.json:/etc/seaweedfs/s3.json:ro",),
    profiles=("serverless",),
))

register_study(Study(
    name="serverless",
    title="Serverless serving of a layer-partitioned CNN: memory-limited functions and an object store",
    module="bench.studies.serverless",
    source="../shared/STUDIES.md, section 2",
))
# --- end serverless (issue 13) ---

# ------------------------------------------------------------------ architectures
FRONT = ("frontend", "nginx")
TF_SERVING_NEEDS = (Need(
    "binary", "tensorflow_model_server",
    "TensorFlow Serving is not installed: no `tensorflow_model_server` on PATH. Install it from Google's apt "
    "repository (package tensorflow-model-server), or run it under docker compose (RUNTIME=docker), which uses "
    "the official tensorflow/serving image. Nothing is substituted for it. See services/tfserving/README.md.",
    runtimes=("native",)),)

register(Architecture(
    name="embedded", title="Embedded", color="tab:blue", services=FRONT, profile="embedded",
    backend="services.frontend.backends:EmbeddedBackend",
    study="docker-serving", study_label="Embedded function",
    description="the model runs inside each Django worker"))
register(Architecture(
    name="flask", title="Flask", color="tab:orange", services=("flask", *FRONT), profile="flask",
    backend="services.frontend.backends:ModelServerBackend", backend_port="flask_port", protocol="rest",
    study="docker-serving", study_label="Flask API",
    description="Django forwards to a Flask model server (gunicorn gthread)"))
register(Architecture(
    name="fastapi", title="FastAPI", color="tab:green", services=("fastapi", *FRONT), profile="fastapi",
    backend="services.frontend.backends:ModelServerBackend", backend_port="fastapi_port", protocol="rest",
    study="docker-serving", study_label="Fast API",
    description="Django forwards to a FastAPI model server (uvicorn)"))
register(Architecture(
    name="tfserving-rest", title="TF Serving REST", color="tab:red", services=("tfserving", *FRONT),
    profile="tfserving", backend="services.frontend.backends:TFServingBackend",
    backend_port="tfserving_rest_port", protocol="rest", needs=TF_SERVING_NEEDS,
    study="docker-serving", study_label="TF Serving",
    description="Django forwards to TensorFlow Serving over REST"))
# They measured TF Serving over REST only (gRPC is discussed as faster), so no study label.
register(Architecture(
    name="tfserving-grpc", title="TF Serving gRPC", color="tab:purple", services=("tfserving", *FRONT),
    profile="tfserving", backend="services.frontend.backends:TFServingBackend",
    backend_port="tfserving_grpc_port", protocol="grpc", needs=TF_SERVING_NEEDS,
    study="docker-serving",
    description="Django forwards to TensorFlow Serving over gRPC"))

TRITON_NEEDS = (Need(
    "venv", TRITON_VENV,
    "Triton's virtual environment .venv-triton is missing: run `make setup-triton` (nvidia-pytriton with its "
    "bundled tritonserver, and TensorFlow: about 2 GB from PyPI; it cannot share .venv, numpy<2 and protobuf 6), "
    "or run it under docker compose (RUNTIME=docker), whose image installs it.",
    runtimes=("native",)),)
register(Architecture(
    name="triton", title="Triton", color="tab:brown", services=("triton", *FRONT), profile="triton",
    backend="services.frontend.backends:TritonBackend", backend_port="triton_http_port", protocol="rest",
    needs=TRITON_NEEDS, study="saturation",
    description="Django forwards to Triton Inference Server (PyTriton, CPU) over KServe v2 REST; "
                "Triton's dynamic batcher combines requests when SB_BATCH_MAX_SIZE > 1"))

# --- ensemble (issue 12) ---
# Three member functions (the FastAPI model server, one model each, one worker, in a cgroup whose CPU
# follows its memory as on Lambda) and a coordinator that averages them (services/ensemble/).
ENSEMBLE_MEMBERS = {"cnn": "cifar10_cnn", "resnet20": "cifar10_resnet20", "mobilenetv2": "cifar10_mobilenetv2"}


def _member_limits(settings: Settings) -> "Limits | None":
    mb = settings.ensemble_member_memory_mb
    return Limits.lambda_like(mb) if mb else None


def _member_model_base(model: str) -> RuntimeValue:
    return RuntimeValue(native=lambda s, run_dir: str(REPO_ROOT / "models" / model),
                        docker=lambda s: f"/app/models/{model}")


for _member, _model in ENSEMBLE_MEMBERS.items():
    register_service(Service(
        name=f"ensemble-{_member}",
        port_field=f"ensemble_{_member}_port",
        command=(
            "uvicorn", "services.fastapi_backend.app:app",
            "--host", "127.0.0.1", "--port", ref(f"ensemble_{_member}_port"),
            # One process per function, as a Lambda instance is; its threads take concurrent calls.
            "--workers", "1",
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--timeout-keep-alive", "75",
        ),
        groups=(MODEL, MODEL_SERVER, "ensemble-member"),
        runtime_env={"SB_MODEL_BASE": _member_model_base(_model)},
        dockerfile=PYTHON_DOCKERFILE,
        limits=_member_limits,
    ))

register_service(Service(
    name="ensemble",
    port_field="ensemble_port",
    command=(
        "uvicorn", "services.ensemble.app:app",
        "--host", "127.0.0.1", "--port", ref("ensemble_port"), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--timeout-keep-alive", "75",
    ),
    # The model groups for max_batch, the body limit and its threads; it loads no model itself.
    groups=(MODEL, MODEL_SERVER),
    environment={"SB_ARCH": "${ARCH:-ensemble-parallel}"},
    dockerfile=PYTHON_DOCKERFILE,
    depends_on=tuple(f"ensemble-{m}" for m in ENSEMBLE_MEMBERS),
))

register_study(Study(
    name="ensemble",
    title="A parallel versus serial ensemble of three CIFAR-10 models served as functions",
    module="bench.studies.ensemble",
    source="../shared/STUDIES.md, section 3",
))

_ENSEMBLE_SERVICES = (*(f"ensemble-{m}" for m in ENSEMBLE_MEMBERS), "ensemble", *FRONT)
register(Architecture(
    name="ensemble-serial", title="Ensemble, serial", color="tab:olive", services=_ENSEMBLE_SERVICES,
    profile="ensemble", backend="services.frontend.backends:EnsembleBackend", backend_port="ensemble_port",
    protocol="rest", study="ensemble", study_label="Serial (sum of T)",
    description="Django forwards to a coordinator that calls three model functions one after another and "
                "averages their probabilities"))
register(Architecture(
    name="ensemble-parallel", title="Ensemble, parallel", color="tab:cyan", services=_ENSEMBLE_SERVICES,
    profile="ensemble", backend="services.frontend.backends:EnsembleBackend", backend_port="ensemble_port",
    protocol="rest", study="ensemble", study_label="Parallel (Step Functions)",
    description="Django forwards to a coordinator that calls three model functions at once and averages "
                "their probabilities (a deadline mode answers with those that answered in time)"))
# --- end ensemble (issue 12) ---

# --- streaming (issue 11) ---
register_service(Service(
    name="stream",
    port_field="stream_ws_port",  # its WebSocket port answers GET /healthz once all three transports listen
    command=("python", "-m", "services.stream.server", "--host", "127.0.0.1", "--port", ref("stream_ws_port")),
    groups=(MODEL,),  # the model's threads, call path, batching; the stream knobs are declared for "stream"
    runtime_env={"SB_MODEL_BASE": MODEL_BASE},
    dockerfile=PYTHON_DOCKERFILE,
    # SB_STREAM_MODEL_CPUS: the study's "instance types" axis (0.5, 1, 2 cores); 0 is no quota.
    limits=lambda s: Limits.of(None, s.stream_model_cpus),
))

register_study(Study(
    name="streaming",
    title="A streaming inference server: frames over one persistent connection versus one request per image",
    module="bench.studies.streaming",
    source="../shared/STUDIES.md, section 4",
))

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
STREAM_NEEDS = (Need(
    "file", NGINX_STREAM_MODULE,
    "nginx's stream module is missing (" + NGINX_STREAM_MODULE + "): `make setup` installs Debian's "
    "libnginx-mod-stream (apt-get install libnginx-mod-stream), or run it under docker compose (RUNTIME=docker).",
    runtimes=("native",)),)
# One service, three transports: the architectures differ in the door the client takes through nginx.
# No front end: frames go from nginx to the streaming server (the per-request baselines are the fastapi
# stack, driven by the same streaming client: bench/stream_client.py --transport http|http-new).
register(Architecture(
    name="stream-tcp", title="Stream, TCP", color="tab:pink", services=("stream", "nginx"), profile="stream",
    backend="", protocol="tcp-stream", needs=STREAM_NEEDS, study="streaming", study_label="Streaming server",
    description="length-prefixed frames on one persistent TCP connection through nginx's stream proxy"))
register(Architecture(
    name="stream-ws", title="Stream, WebSocket", color="tab:gray", services=("stream", "nginx"), profile="stream",
    backend="", protocol="websocket", study="streaming",
    description="the same frames as WebSocket messages through nginx's upgrade (/v1/stream)"))
register(Architecture(
    name="stream-grpc", title="Stream, gRPC", color="black", services=("stream", "nginx"), profile="stream",
    backend="", protocol="grpc-stream", study="streaming",
    description="gRPC bidirectional streaming (services/stream/stream.proto) through nginx's grpc_pass"))
# --- end streaming (issue 11) ---

# --- offloading (issue 14) ---
# No architecture: the edge server and the client run in namespaces over a shaped link, started by the study
# itself (bench/studies/offloading/experiments.py), not as a stack.
register_study(Study(
    name="offloading",
    title="Incremental offloading of a partitioned DNN to an edge server over a limited link",
    module="bench.studies.offloading",
    source="../shared/STUDIES.md, section 5",
))
# --- end offloading (issue 14) ---
