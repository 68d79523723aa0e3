"""Every setting, declared once: the serving knobs (:class:`Settings`) and the harness's (:class:`HarnessSettings`).

A knob is a field of :class:`Settings` declared with :func:`knob`: its type,
default, doc and the services that receive it. The topology's environment
templates, ``python -m servebench.topology knobs``, the generated compose file
and the servers all derive from these declarations; its environment variable is
``SB_<FIELD>`` and its make variable has the same name.

Servers build one :class:`Settings` at start-up and pass it down; the harness
builds one :class:`HarnessSettings`. Nothing else reads the environment.
``Settings().recorded()`` is what results record and ``/v1/info`` shows: the
settings in force, without paths, addresses, ports or the secret key (they only
help an attacker, and the harness records the ports itself).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "SB_"
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "[::]")
# Never recorded nor shown by /v1/info: filesystem paths, internal addresses
# and ports, and the secret. model_name and the model's own info say which model.
NOT_RECORDED = {"model_base", "backend_host", "listen", "allowed_hosts", "secret_key",
                "port", "frontend_port", "flask_port", "fastapi_port", "tfserving_grpc_port", "tfserving_rest_port",
                "triton_http_port", "triton_grpc_port"}
# --- serverless (issue 13) ---
NOT_RECORDED |= {"objectstore_port"}
# --- end serverless (issue 13) ---
# --- streaming (issue 11) ---
NOT_RECORDED |= {"stream_port", "stream_ws_port", "stream_grpc_port", "stream_proxy_port", "stream_grpc_proxy_port"}
STREAM = "stream"  # the streaming model server (services/stream)
# --- end streaming (issue 11) ---
# --- ensemble (issue 12) ---
NOT_RECORDED |= {"ensemble_port", "ensemble_cnn_port", "ensemble_resnet20_port", "ensemble_mobilenetv2_port"}
# --- end ensemble (issue 12) ---

# Who receives a knob: a service's name, or a group every service in it belongs
# to (see servebench.registry.Service.groups).
MODEL = "model"  # runs the model in Python: the front end (embedded) and the model servers
MODEL_SERVER = "model-server"  # a Python model server behind the front end


def knob(default: Any, doc: str, to: tuple[str, ...], **kw) -> Any:
    """A serving knob: a field that the topology passes to the services ``to`` (names or groups)."""
    return Field(default, description=doc, json_schema_extra={"to": list(to)}, **kw)


class Settings(BaseSettings):
    """The serving stack's knobs and the servers' settings, read from ``SB_*`` variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, protected_namespaces=())

    arch: str = Field("embedded", description="which architecture the front end serves (set from ARCH)")
    # Ports and addresses
    listen: str = knob("127.0.0.1", "address nginx listens on (the only client-facing port)", ("nginx", "frontend"))
    port: int = knob(8080, "nginx port", ("nginx",))
    frontend_port: int = knob(8000, "gunicorn/Django port", ("nginx", "frontend"))
    flask_port: int = knob(5000, "Flask model server port", ("frontend", "flask"))
    fastapi_port: int = knob(8001, "FastAPI model server port", ("frontend", "fastapi"))
    tfserving_grpc_port: int = knob(8500, "TF Serving gRPC port", ("frontend", "tfserving"))
    tfserving_rest_port: int = knob(8501, "TF Serving REST port", ("frontend", "tfserving"))
    triton_http_port: int = knob(8010, "Triton HTTP port (KServe v2 REST)", ("frontend", "triton"))
    triton_grpc_port: int = knob(8011, "Triton gRPC port (KServe v2 gRPC)", ("frontend", "triton"))
    # Two, like SB_BACKEND_WORKERS: as many model copies as the other architectures run.
    triton_instances: int = knob(2, "model instances in Triton (each its own copy of the model)", ("triton",), ge=1)
    # Processes and threads
    frontend_workers: int = knob(2, "gunicorn worker processes for Django", ("frontend",), ge=1)
    frontend_threads: int = knob(4, "threads per Django worker (gthread)", ("frontend",), ge=1)
    # Two, like the front end's workers: embedded then runs as many model copies as flask/fastapi.
    backend_workers: int = knob(2, "worker processes of the Flask/FastAPI model server", (MODEL_SERVER,), ge=1)
    backend_threads: int = knob(4, "threads per Flask worker / inference threads per FastAPI worker",
                                (MODEL_SERVER,), ge=1)
    intra_op_threads: int = knob(1, "TensorFlow intra-op threads per model process", (MODEL, "tfserving", "triton"), ge=0)
    inter_op_threads: int = knob(1, "TensorFlow inter-op threads per model process", (MODEL, "tfserving", "triton"), ge=0)
    # The model and how it is called
    call_path: Literal["signature", "keras-predict"] = knob(
        "signature", "how a model process calls the model: signature or keras-predict (the slow path)", (MODEL,))
    max_batch: int = knob(256, "largest batch one request may carry", (MODEL, "triton"), ge=1)
    # Server-side dynamic batching (servebench/batching.py; Triton's dynamic batcher for triton).
    # Off by default, so the study's sequential runs are what they were.
    batch_max_size: int = knob(1, "images the server-side batcher runs as one model call (1: batching off)",
                               (MODEL, "triton"), ge=1)
    # 0 (measured): a batch is what queued while the model was busy, so a lone request never waits.
    batch_timeout_ms: float = knob(
        0.0, "longest a request waits in the batcher for batch-mates before its batch runs (ms; 0: none)",
        (MODEL, "triton"), ge=0)
    max_body_mb: int = knob(16, "largest request body in MiB (nginx, Django and the model servers)",
                            ("nginx", "frontend", MODEL_SERVER), ge=1)
    tfserving_batching: bool = knob(False, "TF Serving server-side batching (services/tfserving/batching.config)",
                                    ("tfserving",))
    # The front end's client of the backend
    backend_timeout_s: float = knob(10.0, "seconds the front end waits for a backend", ("frontend",), gt=0)
    backend_pool_size: int = knob(8, "keep-alive connections per front-end worker to its backend", ("frontend",), ge=1)
    # What the front end answers to
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = knob(
        "127.0.0.1,localhost,[::1]",
        "Host names Django answers to, comma-separated (SB_LISTEN is added; other hosts get 400)",
        ("frontend",), validate_default=True)
    # The harness opens up to 64 connections plus locust's, all from one loopback address.
    conn_limit: int = knob(256, "requests nginx processes at once per client address (429 beyond)", ("nginx",), ge=1)
    # --- serverless (issue 13) ---
    objectstore_port: int = knob(8040, "S3 port of the serverless study's object store (SeaweedFS; it also takes "
                                       "the next three ports, and each port + 10000 for gRPC)", ("objectstore",))
    # --- end serverless (issue 13) ---
    # --- streaming (issue 11) ---
    stream_port: int = knob(8020, "streaming server's TCP frame port", ("nginx", STREAM))
    stream_ws_port: int = knob(8021, "streaming server's WebSocket port (and its /healthz)", ("nginx", STREAM))
    stream_grpc_port: int = knob(8022, "streaming server's gRPC port", ("nginx", STREAM))
    stream_proxy_port: int = knob(8090, "nginx's TCP stream proxy to the streaming server (stream-tcp)", ("nginx",))
    stream_grpc_proxy_port: int = knob(8092, "nginx's gRPC (HTTP/2) listener for stream-grpc", ("nginx",))
    stream_model: Literal["cifar", "yolo-tiny"] = knob(
        "cifar", "the streaming server's model: cifar (the CIFAR-10 CNN) or yolo-tiny (YOLO v3 tiny's layers at "
                 "416x416, random weights: timing only)", (STREAM,))
    stream_window: int = knob(8, "frames in flight per stream: the client's window and the most a connection may "
                                 "hold unanswered in the server (beyond it the server stops reading: backpressure)",
                              (STREAM,), ge=1, le=1024)
    stream_drop: Literal["keep", "drop-oldest"] = knob(
        "keep", "when a stream's window is full: keep (stop reading until answers go out) or drop-oldest (the "
                "oldest frame not yet in the model is answered 'dropped', newest wins, as cameras do)", (STREAM,))
    stream_encoding: Literal["raw", "jpeg"] = knob("raw", "how the harness's camera encodes frames", (STREAM,))
    stream_jpeg_quality: int = knob(90, "JPEG quality of the harness's camera frames", (STREAM,), ge=1, le=100)
    stream_max_frame_kb: int = knob(1024, "largest frame payload the streaming server accepts (KiB)", (STREAM,), ge=1)
    stream_model_cpus: float = knob(0.0, "CPU quota of the streaming model process (cgroup; 0: none)", (STREAM,), ge=0)
    # --- end streaming (issue 11) ---
    # --- ensemble (issue 12) ---
    ensemble_port: int = knob(8033, "ensemble coordinator port", ("frontend", "ensemble"))
    ensemble_cnn_port: int = knob(8030, "ensemble member port: the Table 1 CNN", ("ensemble", "ensemble-cnn"))
    ensemble_resnet20_port: int = knob(8031, "ensemble member port: ResNet-20", ("ensemble", "ensemble-resnet20"))
    ensemble_mobilenetv2_port: int = knob(8032, "ensemble member port: MobileNetV2",
                                          ("ensemble", "ensemble-mobilenetv2"))
    # Lambda's rule: CPU follows memory, 1,769 MB = one vCPU (servebench.cgroups.Limits.lambda_like).
    ensemble_member_memory_mb: int = knob(
        1769, "memory limit of each ensemble member function in MB; its CPU quota follows (1,769 MB = 1 vCPU; "
              "0: unlimited)", ("ensemble-member",), ge=0)
    ensemble_mode: Literal["", "serial", "parallel"] = knob(
        "", "how the coordinator calls its members: serial or parallel ('' follows ARCH: ensemble-serial or "
            "ensemble-parallel)", ("ensemble",))
    ensemble_members: Annotated[tuple[str, ...], NoDecode] = knob(
        "cnn,resnet20,mobilenetv2", "the members the coordinator averages, comma-separated (one alone: that "
                                    "member's latency through the same hops)", ("ensemble",), validate_default=True)
    ensemble_deadline_ms: float = knob(
        0.0, "answer at this deadline with the average of the members that answered (ms; 0: wait for all)",
        ("ensemble",), ge=0)
    ensemble_member_timeout_s: float = knob(
        10.0, "seconds the coordinator waits for one member before leaving it out", ("ensemble",), gt=0)
    # --- end ensemble (issue 12) ---

    # Not knobs: fixed, or where the runtime puts things.
    model_base: Path = Field(REPO_ROOT / "models" / "cifar10_cnn", description="versioned SavedModel folder")
    model_name: str = "cifar10_cnn"
    model_version: int | None = Field(None, description="None: the highest version present")
    backend_host: str = Field("127.0.0.1", description="where the backends listen")
    secret_key: SecretStr | None = Field(None, description="Django SECRET_KEY; None: a random one per process")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v):
        if isinstance(v, str):
            return tuple(h.strip() for h in v.split(",") if h.strip())
        return v

    # --- ensemble (issue 12) ---
    @field_validator("ensemble_members", mode="before")
    @classmethod
    def _split_members(cls, v):
        if isinstance(v, str):
            v = tuple(m.strip() for m in v.split(",") if m.strip())
        known = ("cnn", "resnet20", "mobilenetv2")
        bad = [m for m in v if m not in known]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"members must be distinct names from {', '.join(known)}, not {','.join(v) or 'none'}")
        return tuple(v)
    # --- end ensemble (issue 12) ---

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, v):
        # compose passes an unset SB_SECRET_KEY as ''.
        return v or None

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb * 1024 * 1024

    def host_names(self) -> list[str]:
        """Django's ALLOWED_HOSTS: the configured names plus SB_LISTEN (unless it is a wildcard address)."""
        names = list(self.allowed_hosts)
        if self.listen not in WILDCARD_ADDRESSES and self.listen not in names:
            names.append(self.listen)
        return names

    def backend_address(self) -> str:
        """host:port of the backend this arch forwards to ('' when the model runs in the front end)."""
        from servebench import registry

        port_field = registry.get(self.arch).backend_port
        return f"{self.backend_host}:{getattr(self, port_field)}" if port_field else ""

    def base_url(self) -> str:
        """Where clients reach nginx."""
        host = "127.0.0.1" if self.listen in WILDCARD_ADDRESSES else self.listen
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        """The settings that ``env``'s ``SB_*`` variables give; the process's own environment is not read.

        Rebuilds a running stack's settings from its recorded knobs, and takes
        settings written as variables (``SB_FRONTEND_WORKERS="1"``).
        """
        return _GivenOnly(**{name: env[env_name(name)] for name in cls.model_fields if env_name(name) in env})

    def knob_env(self) -> dict[str, str]:
        """Every knob as the environment variable the services receive (``SB_PORT`` -> ``"8080"``)."""
        return {env_name(name): env_value(getattr(self, name)) for name in knob_fields()}

    def recorded(self, service: str | None = None) -> dict:
        """The settings in force, without what only helps an attacker (see NOT_RECORDED).

        With ``service``: only the knobs that service receives (a knob it is not given
        would show its default, not the value in force elsewhere in the stack).
        """
        exclude = set(NOT_RECORDED)
        if service is not None:
            from servebench import registry, topology

            svc = registry.service(service)
            exclude |= {name for name in knob_fields() if not topology.receives(svc, name)}
        return {k: (str(v) if isinstance(v, Path) else v)
                for k, v in self.model_dump(exclude=exclude).items()}


class _GivenOnly(Settings):
    """Settings from the values given alone (see :meth:`Settings.from_env`)."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **other_sources):
        return (init_settings,)


def knob_fields() -> dict[str, Any]:
    """The knobs' field infos, by field name, in declaration order."""
    return {name: f for name, f in Settings.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and "to" in f.json_schema_extra}


def receivers(field_name: str) -> tuple[str, ...]:
    return tuple(knob_fields()[field_name].json_schema_extra["to"])


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def env_value(value: Any) -> str:
    """How a value is written in an environment variable (and read back by :class:`Settings`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def knob_defaults() -> dict[str, str]:
    """Every knob's default, as its environment variable's value."""
    return {env_name(name): env_value(f.default) for name, f in knob_fields().items()}


def from_environment(cls: type[BaseSettings] = None):
    """``cls()`` read from the environment, for command-line entry points: a bad value exits
    with the variable named, not a traceback."""
    from pydantic import ValidationError

    cls = cls or Settings
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"{prefix}{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
                 for e in exc.errors()]
        raise SystemExit("error: bad setting: " + "; ".join(lines)) from None


def inherited_env(names: Iterable[str]) -> dict[str, str]:
    """The parent's values of ``names`` (those set), passed through as they are (a native service's PATH, HOME...)."""
    return {name: os.environ[name] for name in names if name in os.environ}


# What the docker client and compose need from the parent: where the engine is, its
# configuration, proxies. Not SB_* (compose gets the settings explicitly), nor what the
# runtime passes on compose's command line (project, file, profiles).
CLIENT_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
CLIENT_ENV_PREFIXES = ("DOCKER_", "BUILDKIT_")


def client_env() -> dict[str, str]:
    """The parent's environment as far as the docker client and compose need it."""
    return {k: v for k, v in os.environ.items() if k in CLIENT_ENV or k.startswith(CLIENT_ENV_PREFIXES)}


def public_model_info(info: dict) -> dict:
    """A model's info (name, version, threads, versions) without where it lies on disk."""
    return {k: v for k, v in info.items() if k != "path"}


class HarnessSettings(BaseSettings):
    """Where the harness finds data, keeps stack state and runs compose; read from the environment once."""

    # The Makefile exports SB_CIFAR10_DIR empty when there is no shared copy: empty means unset.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    cifar10_dir: Path | None = Field(None, description="cifar-10-batches-py folder (default: ../shared/datasets/...)")
    allow_download: bool = Field(True, description="download CIFAR-10 when no local copy exists (never under CI)")
    ci: bool = Field(False, validation_alias=AliasChoices("CI"), description="running under CI: never download")
    run_dir: Path = Field(REPO_ROOT / "run", description="where a running stack's state and logs are kept")
    compose: str = Field("", description="the compose command, e.g. 'docker-compose' (default: found)")
    compose_project: str = Field("servebench", description="compose project name")
    base_image: str = Field("", validation_alias=AliasChoices("BASE_IMAGE", "SB_BASE_IMAGE"),
                            description="base image of the Python services (default: found)")
    docker_build: bool = Field(True, description="rebuild images before `up` (false: use them as they are)")

    @field_validator("ci", mode="before")
    @classmethod
    def _ci_flag(cls, v):
        # CI systems set CI=true or CI=1; any non-empty value other than false/0 counts.
        return str(v).strip().lower() not in ("", "0", "false", "no")

    @property
    def downloads_allowed(self) -> bool:
        return self.allow_download and not self.ci

    def compose_env(self) -> dict[str, str]:
        """The harness variables compose's own command line understands."""
        env = {"SB_COMPOSE_PROJECT": self.compose_project}
        if self.base_image:
            env["BASE_IMAGE"] = self.base_image
        return env


# --- offloading (issue 14) ---
class OffloadSettings(BaseSettings):
    """The offloading study's knobs (``SB_OFFLOAD_*``; make variables of the same names), recorded with
    every result: the link, the client's CPU quota, the server's build mode, the study's scale."""

    model_config = SettingsConfigDict(env_prefix="SB_OFFLOAD_", extra="ignore", frozen=True, env_ignore_empty=True,
                                      protected_namespaces=())

    link_mbit: float = Field(80.0, gt=0, description="rate of the shaped link between client and edge server "
                                                     "(Mbit/s, tc tbf each way; the study's 80 Mbps)")
    client_cpus: float = Field(0.5, ge=0, description="CPU quota of the client (cgroup; the study's Odroid "
                                                      "board is far slower than its server; 0: none)")
    build_mode: Literal["baseline", "proposed"] = Field(
        "proposed", description="the edge server's build mode when an upload names none")
    port: int = Field(8050, description="edge server port (on the link's server address)")
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        "resnet152,resnet50,mobilenet,alexnet", validate_default=True,
        description="models to upload, comma-separated (resnet152 resnet50 mobilenet alexnet cifar10_cnn)")
    repeats: int = Field(2, ge=1, description="uploads per model and build mode")
    queries_after: int = Field(10, ge=0, description="queries after the upload completes (the study's 10)")
    rate_measure_mb: float = Field(4.0, gt=0, description="MiB sent to measure the link's rate before each upload")

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, v):
        if isinstance(v, str):
            return tuple(m.strip() for m in v.split(",") if m.strip())
        return v

    def recorded(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model_dump(exclude={"port"}).items()}
# --- end offloading (issue 14) ---
