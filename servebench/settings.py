"""Every setting, declared once: the one settings model (:class:`Settings`) and the harness's section.

A knob is a field declared with :func:`servebench.knobs.knob`: its type,
default, doc and the services or processes that receive it. The generic serving
knobs are declared here (:class:`ServingKnobs`); an architecture's or a study's
own knobs are declared in its folder, ``services/<name>/knobs.py`` or
``bench/studies/<name>/knobs.py``, and a tool's where it lives
(``bench/knobs.py``: locust's), as ``class Knobs(KnobSection)``.
:class:`Settings` is built from all of them (:func:`build_settings`), core
first, then the folders by name, then the tools. The topology's environment
templates, ``python -m servebench.topology knobs``, the generated compose file
and the servers all derive from these declarations; a knob's environment
variable is ``SB_<FIELD>`` and its make variable has the same name.

A study's or a tool's section is named (``offload``, ``serverless``, ``load``):
``settings.section(name)`` gives its values under their short names, with
``.recorded()`` for its records; ``settings.env_for(receiver)`` is the
environment a process that receives knobs gets (exactly its knobs).

Servers, study processes and locust's build one :class:`Settings` at start-up
and pass it down; the harness builds one :class:`HarnessSettings` too (where
things are: paths, compose, CI; a section of its own, never recorded). Nothing
else reads ``SB_*`` variables. ``Settings().recorded()`` is what results record
and ``/v1/info`` shows: the settings in force, without paths, addresses, ports
or secrets (they only help an attacker, and the harness records the ports itself).

The folders are found by :func:`plugin_modules` (a walk of ``services/`` and
``bench/studies/``), which :mod:`servebench.registry` uses for their
``declaration.py`` too. A folder's module is loaded from its file, under its
dotted name, without importing the folder's package (a study's package imports
its experiments, which import the settings).
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import pkgutil
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from servebench.engines import ENGINES
from servebench.knobs import (ENV_PREFIX, MODEL, MODEL_SERVER, KnobSection, SectionValues, env_name, env_value,
                              knob, not_recorded, split_list)

__all__ = ["ENV_PREFIX", "MODEL", "MODEL_SERVER", "env_name", "env_value", "knob", "Settings", "HarnessSettings",
           "REPO_ROOT", "NOT_RECORDED"]

REPO_ROOT = Path(__file__).resolve().parent.parent
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "[::]")


# ------------------------------------------------------------------ plug-in folders
# (dotted package, folder): where architecture, service and study folders are found.
_PLUGIN_ROOTS: list[tuple[str, Path]] = [("services", REPO_ROOT / "services"),
                                         ("bench.studies", REPO_ROOT / "bench" / "studies")]
# The tools' sections, after the folders': (dotted name, file).
_TOOL_KNOBS: list[tuple[str, Path]] = [("bench.knobs", REPO_ROOT / "bench" / "knobs.py")]
_LOAD_LOCK = threading.RLock()


def plugin_modules(module: str) -> list[tuple[str, Path]]:
    """(dotted name, file) of every plug-in folder's ``<module>.py``: root by root, folders by name."""
    found = []
    for package, folder in _PLUGIN_ROOTS:
        for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda i: i.name):
            path = folder / info.name / f"{module}.py"
            if info.ispkg and path.is_file():
                found.append((f"{package}.{info.name}.{module}", path))
    return found


def load_plugin_module(dotted: str, path: Path) -> ModuleType:
    """The module ``dotted`` (a folder's knobs or declaration), executed once from ``path``."""
    with _LOAD_LOCK:
        if dotted in sys.modules:
            return sys.modules[dotted]
        spec = importlib.util.spec_from_file_location(dotted, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[dotted] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(dotted, None)
            raise
        return mod


def add_plugin_root(folder: Path, package: str | None = None) -> None:
    """Look for architecture/study folders in ``folder`` too (a test's dummy), and rebuild :class:`Settings`
    with their knobs. ``package``: its dotted name (default: its path under the repository)."""
    folder = Path(folder).resolve()
    package = package or ".".join(folder.relative_to(REPO_ROOT).parts)
    if (package, folder) not in _PLUGIN_ROOTS:
        _PLUGIN_ROOTS.append((package, folder))
        _install(build_settings())


def model_name_for(base: Path | str) -> str:
    """The name a model is served under, read without the model: its card.json's "name", else the SavedModel's
    folder or the file's stem. The card's rule (servebench.modelcard.model_name_for; a test holds them equal),
    repeated here so that the settings import no model module (nor numpy)."""
    path = Path(base)
    path = path.parent if path.name == "saved_model.pb" else path
    if path.name.isdigit() and (path / "saved_model.pb").is_file():
        path = path.parent
    sidecar = path / "card.json" if path.is_dir() else path.with_name(path.name + ".card.json")
    try:
        name = json.loads(sidecar.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else (path.name if path.is_dir() else path.stem)


# ------------------------------------------------------------------ the serving knobs
# The concurrency knobs' values with batching off (SB_BATCH_MAX_SIZE=1), and their floor with it on.
UNBATCHED_CONCURRENCY = {"frontend_threads": 4, "backend_threads": 4, "backend_pool_size": 8}


def batching_concurrency(batch_max_size: int, frontend_workers: int, backend_workers: int,
                         frontend_threads: int | None = None) -> dict[str, int]:
    """The threads and connections that let a full batch form in every model process (the defaults of
    SB_FRONTEND_THREADS, SB_BACKEND_THREADS and SB_BACKEND_POOL_SIZE; ``frontend_threads``: one set).

    A batch of n forms only where n requests wait at once. Embedded: each Django worker has its own batcher,
    so each needs n threads. Flask: each backend worker's gthread threads are its waiting requests, so n
    each, and the front end must carry n per backend worker: n x backend workers / front-end workers threads
    per front-end worker. FastAPI: waiting requests hold no thread (they await the batcher on the event
    loop), so only the front end limits; its backend threads (n, one rule with Flask's) serve unbatched calls.
    The front end takes the larger of its two needs, so the rule needs no architecture; idle threads cost
    little. The pool keeps one connection per front-end thread (beyond it, urllib3 opens and throws away a
    connection per request).
    """
    floor = UNBATCHED_CONCURRENCY
    if batch_max_size > 1:
        per_frontend_worker = math.ceil(batch_max_size * max(frontend_workers, backend_workers) / frontend_workers)
        derived = {"frontend_threads": max(floor["frontend_threads"], per_frontend_worker),
                   "backend_threads": max(floor["backend_threads"], batch_max_size)}
    else:
        derived = {"frontend_threads": floor["frontend_threads"], "backend_threads": floor["backend_threads"]}
    threads = frontend_threads if frontend_threads is not None else derived["frontend_threads"]
    return {**derived, "backend_pool_size": max(floor["backend_pool_size"], threads)}


def batching_conflict(batch_max_size: int, batch_timeout_ms: float, max_batch: int) -> tuple[str, str] | None:
    """(the knob at fault, why) when the batch knobs contradict each other, else None."""
    if batch_max_size > max_batch:
        return "batch_max_size", (f"a batch of {batch_max_size} is above SB_MAX_BATCH={max_batch}, the largest "
                                  f"batch the servers take: lower SB_BATCH_MAX_SIZE or raise SB_MAX_BATCH")
    if batch_timeout_ms > 0 and batch_max_size == 1:
        return "batch_timeout_ms", (f"a wait of {batch_timeout_ms:g} ms for batch-mates needs batching on, and "
                                    "SB_BATCH_MAX_SIZE is 1 (off): set SB_BATCH_MAX_SIZE above 1, or drop the timeout")
    return None


class ServingKnobs(KnobSection):
    """The knobs every architecture shares (ports of nginx and the front end, processes, the model, batching)."""

    arch: str = Field("embedded", description="which architecture the front end serves (set from ARCH)")
    # Ports and addresses
    listen: str = knob("127.0.0.1", "address nginx listens on (the only client-facing port)", ("nginx", "frontend"),
                       recorded=False)
    port: int = knob(8080, "nginx port", ("nginx",), recorded=False)
    frontend_port: int = knob(8000, "gunicorn/Django port", ("nginx", "frontend"), recorded=False)
    # Processes and threads
    frontend_workers: int = knob(2, "gunicorn worker processes for Django", ("frontend",), ge=1)
    # The three concurrency knobs follow batching unless set (batching_concurrency); their defaults here are
    # batching off's, which compose's file and the knobs table show.
    frontend_threads: int = knob(4, "threads per Django worker (gthread); unset, with batching on: a full batch "
                                    "for every model process, SB_BATCH_MAX_SIZE x max(SB_FRONTEND_WORKERS, "
                                    "SB_BACKEND_WORKERS) / SB_FRONTEND_WORKERS, at least 4", ("frontend",), ge=1)
    # Two, like the front end's workers: embedded then runs as many model copies as flask/fastapi.
    backend_workers: int = knob(2, "worker processes of the Flask/FastAPI model server", (MODEL_SERVER,), ge=1)
    backend_threads: int = knob(4, "threads per Flask worker / threads per FastAPI worker for unbatched model "
                                   "calls (batched requests wait on its event loop); unset, with batching on: "
                                   "SB_BATCH_MAX_SIZE", (MODEL_SERVER,), ge=1)
    intra_op_threads: int = knob(1, "TensorFlow intra-op threads per model process", (MODEL, "tfserving", "triton"), ge=0)
    inter_op_threads: int = knob(1, "TensorFlow inter-op threads per model process", (MODEL, "tfserving", "triton"), ge=0)
    # The model and how it is called
    call_path: Literal["signature", "keras-predict"] = knob(
        "signature", "how a model process calls the model: signature or keras-predict (the slow path)", (MODEL,))
    # The engine's folders name the choices (servebench/engines/<name>/); recorded with every result.
    engine: Literal[ENGINES] = knob(  # type: ignore[valid-type]
        "tensorflow", f"the runtime that executes the model: {'|'.join(ENGINES)} (converted on first use or by "
        "make engines)", (MODEL, "triton"))
    openvino_precision: Literal["f32", "bf16"] = knob(
        "f32", "OpenVINO's inference precision, always set (its silent default on a bf16 CPU is bf16)",
        (MODEL, "triton"))
    max_batch: int = knob(256, "largest batch one request may carry (and SB_BATCH_MAX_SIZE's ceiling)",
                          (MODEL, "triton"), ge=1)
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
    # The front end's client of the backend
    backend_timeout_s: float = knob(10.0, "seconds the front end waits for a backend", ("frontend",), gt=0)
    backend_pool_size: int = knob(8, "keep-alive connections per front-end worker to its backend; unset: "
                                     "SB_FRONTEND_THREADS in force, at least 8", ("frontend",), ge=1)
    # What the front end answers to
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = knob(
        "127.0.0.1,localhost,[::1]",
        "Host names Django answers to, comma-separated (SB_LISTEN is added; other hosts get 400)",
        ("frontend",), recorded=False, validate_default=True)
    # The harness opens up to 64 connections plus locust's, all from one loopback address.
    conn_limit: int = knob(256, "requests nginx processes at once per client address (429 beyond)", ("nginx",), ge=1)

    # Not knobs: fixed, or where the runtime puts things. model_name and the model's own info say which model.
    model_base: Path = not_recorded(default=REPO_ROOT / "models" / "cifar10_cnn",
                                    description="the model: a SavedModel folder, a .keras or an .onnx file")
    model_name: str = Field("cifar10_cnn", description="default: the card's name (servebench.modelcard)")
    # What a user names (MODEL=, DATA=): SB_MODEL sets model_base (an explicit SB_MODEL_BASE, the runtime's
    # path for one service, wins); read model_base, never model. Paths: not recorded (a result records the card).
    model: Path | None = not_recorded(default=None, description="SB_MODEL: the model to serve (sets model_base)")
    data: Path | None = not_recorded(default=None, description="SB_DATA: a .npz of the model's inputs "
                                                                 "(default: the card's data)")
    model_version: int | None = Field(None, description="None: the highest version present")
    backend_host: str = not_recorded(default="127.0.0.1", description="where the backends listen")
    secret_key: SecretStr | None = not_recorded(default=None,
                                                description="Django SECRET_KEY; None: a random one per process")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v):
        return split_list(v)

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, v):
        # compose passes an unset SB_SECRET_KEY as ''.
        return v or None

    @model_validator(mode="before")
    @classmethod
    def _model_from_sb_model(cls, data):
        if not isinstance(data, dict):
            return data
        data = {**data, **{k: None for k in ("model", "data") if data.get(k) == ""}}
        if data.get("model") and not data.get("model_base"):
            data["model_base"] = Path(data["model"]).expanduser().absolute()
        if data.get("model_base") and not data.get("model_name"):
            data["model_name"] = model_name_for(data["model_base"])
        return data

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data):
        # A named section's variable given empty means its default (make passes unset ones so).
        empty = getattr(cls, "__empty_is_default__", ())
        if isinstance(data, dict) and empty:
            return {k: v for k, v in data.items() if not (k in empty and v == "")}
        return data

    # Fields are validated in declaration order: max_batch, batch_max_size, batch_timeout_ms.
    @field_validator("batch_max_size", "batch_timeout_ms")
    @classmethod
    def _batch_knobs_agree(cls, v, info: ValidationInfo):
        found = {"batch_timeout_ms": 0.0, **info.data, info.field_name: v}  # a timeout not given is not validated
        if "max_batch" in found and "batch_max_size" in found:  # else one failed, and says so itself
            conflict = batching_conflict(found["batch_max_size"], found["batch_timeout_ms"], found["max_batch"])
            if conflict is not None and conflict[0] == info.field_name:
                raise PydanticCustomError("batching_conflict", conflict[1])
        return v

    @model_validator(mode="after")
    def _follow_batching(self):
        # The concurrency knobs not set follow batching; set in place, so that the frozen settings hold
        # the values in force (recorded, passed to services, shown by /v1/info).
        derived = batching_concurrency(self.batch_max_size, self.frontend_workers, self.backend_workers,
                                       self.frontend_threads if "frontend_threads" in self.model_fields_set else None)
        for name, value in derived.items():
            if name not in self.model_fields_set:
                self.__dict__[name] = value
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False):
        """pydantic's copy, which validates nothing: here the knobs that follow batching follow ``update``
        too, and batch knobs that contradict each other are refused (ValueError naming the knob)."""
        copy = super().model_copy(update=update, deep=deep)
        if update:
            conflict = batching_conflict(copy.batch_max_size, copy.batch_timeout_ms, copy.max_batch)
            if conflict is not None:
                raise ValueError(f"{env_name(conflict[0])}={env_value(getattr(copy, conflict[0]))}: {conflict[1]}")
            copy._follow_batching()
        return copy

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb * 1024 * 1024

    def host_names(self) -> list[str]:
        """Django's ALLOWED_HOSTS: the configured names plus SB_LISTEN (unless it is a wildcard address)."""
        names = list(self.allowed_hosts)
        if self.listen not in WILDCARD_ADDRESSES and self.listen not in names:
            names.append(self.listen)
        return names

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
        return cls.given(**{name: env[env_name(name)] for name in cls.model_fields if env_name(name) in env})

    @classmethod
    def given(cls, **values) -> "Settings":
        """The settings these field values give, the rest their defaults; the environment is not read."""
        return _GivenOnly(**values)

    def knob_env(self) -> dict[str, str]:
        """Every knob as the environment variable the services receive (``SB_PORT`` -> ``"8080"``)."""
        return {env_name(name): env_value(getattr(self, name)) for name in knob_fields()}

    def env_for(self, *receivers: str) -> dict[str, str]:
        """The environment of a process that is one of ``receivers`` (names or groups): exactly the knobs (and
        the not-recorded fields passed on, such as a path it writes) declared for them; unset ones left out."""
        wanted = set(receivers)
        env = {}
        for name, f in type(self).model_fields.items():
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            value = getattr(self, name)
            if value is not None and wanted & set(extra.get("to", ()) or extra.get("passed_to", ())):
                env[env_name(name)] = env_value(value)
        return env

    def section(self, name: str) -> SectionValues:
        """Section ``name``'s values under their short names (``section("offload").link_mbit``)."""
        fields = type(self).__sections__.get(name)
        if fields is None:
            raise KeyError(f"no settings section {name!r}: {', '.join(sorted(type(self).__sections__)) or 'none'}")
        cut = len(name) + 1
        return SectionValues(name, {f[cut:]: getattr(self, f) for f in fields},
                             tuple(f[cut:] for f in fields if f not in NOT_RECORDED))

    def recorded(self, *, exclude: Iterable[str] = ()) -> dict:
        """The settings in force, without what only helps an attacker (see NOT_RECORDED) nor ``exclude``
        (servebench.topology.recorded: the knobs one service is not given)."""
        return {k: (str(v) if isinstance(v, Path) else v)
                for k, v in self.model_dump(exclude=set(NOT_RECORDED) | set(exclude)).items()}


SETTINGS_CONFIG = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, protected_namespaces=())


def knob_sections() -> list[type[KnobSection]]:
    """Every folder's ``Knobs`` section, folders by name, then the tools'."""
    return [load_plugin_module(dotted, path).Knobs
            for dotted, path in plugin_modules("knobs") + [t for t in _TOOL_KNOBS if t[1].is_file()]]


def settings_model(name: str, sections: Iterable[type[KnobSection]], doc: str, **config) -> type[BaseSettings]:
    """A settings model of ``sections`` (the first's fields first), read from ``SB_*`` variables."""
    # pydantic orders fields from the last base to the first.
    return type(name, (*reversed(list(sections)), BaseSettings), {
        "__module__": __name__, "__qualname__": name, "model_config": {**SETTINGS_CONFIG, **config}, "__doc__": doc})


def _check_validator_names(sections: list[type[KnobSection]]) -> None:
    """Sections merge into one class, where a validator of the same name as another's would silently replace it."""
    seen: dict[str, type] = {}
    for section in sections:
        decorators = section.__pydantic_decorators__
        for name in (*decorators.field_validators, *decorators.model_validators):
            first = seen.setdefault(name, section)
            if first is not section:
                raise ValueError(f"validator {name!r} of {section.__module__}.{section.__qualname__} is also "
                                 f"{first.__module__}.{first.__qualname__}'s: rename one")


def build_settings(sections: Iterable[type[KnobSection]] | None = None) -> type[BaseSettings]:
    """The one settings model: :class:`ServingKnobs` and every folder's and tool's section."""
    sections = list(knob_sections() if sections is None else sections)
    cls = settings_model("Settings", [ServingKnobs, *sections],
                         "The serving stack's, the studies' and the tools' knobs, read from ``SB_*`` variables.")
    _check_validator_names([ServingKnobs, *sections])
    named: dict[str, tuple[str, ...]] = {}
    for section in sections:
        if section.section_name:
            if section.section_name in named:
                raise ValueError(f"two settings sections are named {section.section_name!r}")
            prefix = section.section_name + "_"
            named[section.section_name] = tuple(f for f in section.model_fields if f.startswith(prefix))
    cls.__sections__ = named
    cls.__empty_is_default__ = frozenset(f for fields in named.values() for f in fields)
    return cls


def _given_only(settings_cls: type) -> type:
    """``settings_cls`` reading the values given alone (see :meth:`ServingKnobs.from_env`)."""
    def sources(cls, settings_cls, init_settings, **other_sources):
        return (init_settings,)

    return type("_GivenOnly", (settings_cls,), {"__module__": __name__,
                                               "settings_customise_sources": classmethod(sources)})


def _install(cls: type) -> None:
    global Settings, _GivenOnly, NOT_RECORDED
    Settings, _GivenOnly = cls, _given_only(cls)
    # Never recorded nor shown by /v1/info: filesystem paths, internal addresses and ports, and the secret.
    NOT_RECORDED = frozenset(name for name, f in cls.model_fields.items()
                             if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("recorded") is False)


Settings: Any = None
_GivenOnly: Any = None
NOT_RECORDED: frozenset[str] = frozenset()
_install(build_settings())


def knob_fields() -> dict[str, Any]:
    """The knobs' field infos, by field name, in declaration order."""
    return {name: f for name, f in Settings.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and "to" in f.json_schema_extra}


def receivers(field_name: str) -> tuple[str, ...]:
    return tuple(knob_fields()[field_name].json_schema_extra["to"])


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


class HarnessSection(KnobSection):
    """Where the harness finds data, keeps stack state and runs compose: paths and the machine, not knobs (never
    recorded, passed to no service); read once as :data:`HarnessSettings`."""

    cifar10_dir: Path | None = Field(None, description="cifar-10-batches-py folder (default: ../shared/datasets/...)")
    allow_download: bool = Field(True, description="download CIFAR-10 when no local copy exists (never under CI)")
    ci: bool = Field(False, validation_alias=AliasChoices("CI"), description="running under CI: never download")
    run_dir: Path = Field(REPO_ROOT / "run", description="where a running stack's state and logs are kept")
    compose: str = Field("", description="the compose command, e.g. 'docker-compose' (default: found)")
    compose_project: str = Field("servebench", description="compose project name")
    base_image: str = Field("", validation_alias=AliasChoices("BASE_IMAGE", "SB_BASE_IMAGE"),
                            description="base image of the Python services (default: found)")
    docker_build: bool = Field(True, description="rebuild images before `up` (false: use them as they are)")
    rows_batch: int = Field(20000, ge=1, description="answers a run holds before writing their requests.csv rows "
                                                     "(checked after the clock; 1: each as it arrives, to watch live)")

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


# The Makefile exports SB_CIFAR10_DIR empty when there is no shared copy: empty means unset.
HarnessSettings = settings_model("HarnessSettings", [HarnessSection], HarnessSection.__doc__, env_ignore_empty=True)
