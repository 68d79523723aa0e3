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
