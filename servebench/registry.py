"""Record types and lookups of services, architectures and studies; their declarations are found in folders.

An architecture is one :class:`Architecture` record: the services it runs, its
compose profile, the front end's backend class, its title and colour in plots,
what it needs to run, and the study it belongs to. A service is one
:class:`Service` record (command, port knob, health path, image). A study is
one :class:`Study` record whose module (under ``bench/studies/``) holds its
experiments and its report section.

Each folder under ``services/`` and ``bench/studies/`` declares its own records
in its ``declaration.py`` (and its knobs in ``knobs.py``, see
:mod:`servebench.settings`). :func:`discover` loads every declaration once, on
the first lookup; the ``order`` a declaration registers its records with
places them in listings (CLI choices, tables, the compose file; by hand:
after the declared ones). The CLI choices, both runtimes, the compose file generator, the front
end, the report and the studies table look them up here. Adding an
architecture is a new folder; a test can add a folder of plug-ins elsewhere
(:func:`add_plugin_root`), or register a record with :func:`register`.
"""
from __future__ import annotations

import importlib
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

from servebench import docker_engine
from servebench import settings as settings_mod
from servebench.settings import REPO_ROOT, env_name

if TYPE_CHECKING:
    from servebench.cgroups import Limits
    from servebench.settings import Settings

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
            met = docker_engine.engine_answers()
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
    # HTTP GET answered 200 once ready; None: a TCP connect. "{model_name}" is the served model's name.
    health_path: str | None = "/healthz"
    dockerfile: str | None = None  # None: an official image
    image: str | None = None
    volumes: tuple[str, ...] = ()  # compose only
    depends_on: tuple[str, ...] = ()
    # Memory and CPU limits from its knobs (servebench.cgroups.Limits; None: unlimited). Natively the
    # service runs in a cgroup of its own; under compose they become mem_limit and cpus.
    limits: Callable[[Settings], "Limits | None"] | None = None
    # Compose profiles of a service no architecture runs (a study's own, e.g. the object store).
    profiles: tuple[str, ...] = ()
    # "module:function"(its record in the stack's state, settings) -> more lines for `make status` (a cluster's
    # nodes); found by name, so the runtime imports no architecture.
    status: str = ""
    # "module:function"(psutil.Process) -> the name of its part (a Ray cluster's GCS, raylets, proxy, replicas):
    # the harness reports CPU and memory per part beside the service's total.
    parts: str = ""

    def health_path_for(self, model_name: str) -> str | None:
        return None if self.health_path is None else self.health_path.format(model_name=model_name)

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
    # "module:function" that benches it instead of the request client (frames, not requests):
    # function(options, arch, settings, log) -> RunRecord; found by name, so the harness imports no study.
    driver: str = ""
    # Why a stack of it is slow to start (a cluster of nodes), or "": the tests then start it once per run for
    # the shared suites and in its own module, not once per model or knob set (tests/conformance.py).
    slow_start: str = ""

    def unmet(self, runtime: str) -> list[str]:
        """What stops it from running on ``runtime`` (empty when nothing does)."""
        return [msg for need in self.needs if (msg := need.unmet(runtime))]


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    module: str  # its package under bench/studies/: experiments.py (plan and run) and report.py
    source: str = ""

    def load(self):
        """Its experiments module (the package itself stays light: a function worker imports it)."""
        return importlib.import_module(self.module + ".experiments")



# ------------------------------------------------------------------ discovery
_DISCOVERY = threading.RLock()
_discovered = False
_discovering = False

def discover() -> None:
    """Load every folder's ``declaration.py`` once (each registers its records); later calls do nothing."""
    global _discovered, _discovering
    if _discovered:
        return
    with _DISCOVERY:
        if _discovered or _discovering:  # a declaration that looks something up while loading
            return
        _discovering = True
        try:
            for dotted, path in settings_mod.plugin_modules("declaration"):
                settings_mod.load_plugin_module(dotted, path)
            for arch in list(_ARCHITECTURES.values()):
                _check_services(arch)
            _discovered = True
        finally:
            _discovering = False


def add_plugin_root(folder: Path, package: str | None = None) -> None:
    """Find architecture and study folders in ``folder`` too: their knobs join Settings (rebuilt, so import
    it afterwards: ``servebench.settings.Settings``) and their declarations are loaded."""
    global _discovered
    settings_mod.add_plugin_root(folder, package)
    with _DISCOVERY:
        _discovered = False
    discover()


_SERVICES: dict[str, Service] = {}
_ARCHITECTURES: dict[str, Architecture] = {}
_STUDIES: dict[str, Study] = {}
LAST = 1000  # the order of a record that gives none: after the declared ones
_RANKS: dict[str, dict[str, int]] = {"service": {}, "arch": {}, "study": {}}


# ------------------------------------------------------------------ lookups
def _place(table: dict, ranks: dict[str, int], name: str, record, order: int) -> None:
    """Put ``record`` in ``table``, which stays sorted by order (then by registration)."""
    ranks[name] = order
    table[name] = record
    ordered = sorted(table.items(), key=lambda item: ranks.get(item[0], LAST))
    table.clear()
    table.update(ordered)


def register_service(svc: Service, order: int = LAST) -> Service:
    """Declare a service; ``order`` places it in listings (the compose file): a declaration passes its ORDER."""
    _place(_SERVICES, _RANKS["service"], svc.name, svc, order)
    return svc


def register(arch: Architecture, order: int = LAST) -> Architecture:
    """Declare an architecture; ``order`` places it in listings (CLI choices, tables, plots)."""
    if _discovered:  # else checked once every folder is declared (a folder may use another's services)
        _check_services(arch)
    _place(_ARCHITECTURES, _RANKS["arch"], arch.name, arch, order)
    return arch


def _check_services(arch: Architecture) -> None:
    missing = [s for s in arch.services if s not in _SERVICES]
    if missing:
        raise ValueError(f"architecture {arch.name!r} runs unknown services {missing}: register them first")


def register_study(study: Study, order: int = LAST) -> Study:
    _place(_STUDIES, _RANKS["study"], study.name, study, order)
    return study


def declare_study(declaration: str, order: int, name: str, title: str, source: str = "") -> Study:
    """Register the study of the folder whose declaration module is ``declaration`` (its ``__name__``):
    the folder's package is the study's module."""
    return register_study(Study(name, title, declaration.rpartition(".")[0], source), order=order)


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
    discover()
    return tuple(_ARCHITECTURES)


def architectures() -> tuple[Architecture, ...]:
    discover()
    return tuple(_ARCHITECTURES.values())


def _lookup(table: dict, name: str, what: str):
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}: choose one of {', '.join(table)}") from None


def found(reference: str):
    """What a "module:name" reference of a record names (a backend class, a hook), imported on first use: records
    name code by string so that the harness and the runtime import no architecture."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def get(name: str) -> Architecture:
    discover()
    return _lookup(_ARCHITECTURES, name, "ARCH")


def service(name: str) -> Service:
    discover()
    return _SERVICES[name]


def services() -> dict[str, Service]:
    """Every service, in registration order."""
    discover()
    return dict(_SERVICES)


def services_for(arch: str) -> list[Service]:
    """The services of ``arch`` in start order."""
    return [_SERVICES[s] for s in get(arch).services]


def profiles() -> tuple[str, ...]:
    discover()
    return tuple(dict.fromkeys(a.profile for a in _ARCHITECTURES.values()))


def profiles_of(service_name: str) -> tuple[str, ...]:
    discover()
    own = _SERVICES[service_name].profiles if service_name in _SERVICES else ()  # issue 13
    return tuple(dict.fromkeys([*(a.profile for a in _ARCHITECTURES.values() if service_name in a.services), *own]))


def studies() -> tuple[Study, ...]:
    discover()
    return tuple(_STUDIES.values())


def study(name: str) -> Study:
    discover()
    return _lookup(_STUDIES, name, "STUDY")


def in_study(name: str) -> list[Architecture]:
    discover()
    return [a for a in _ARCHITECTURES.values() if a.study == name]


def backend_address(settings: Settings) -> str:
    """host:port of the backend ``settings.arch`` forwards to ('' when the model runs in the front end)."""
    port_field = get(settings.arch).backend_port
    return f"{settings.backend_host}:{getattr(settings, port_field)}" if port_field else ""


def ref(field_name: str) -> str:
    """A compose-style reference to a knob with its default, resolved by both runtimes."""
    name = env_name(field_name)
    return "${%s:-%s}" % (name, settings_mod.knob_defaults()[name])


def _model_base_native(settings: Settings, run_dir) -> str:
    return str(settings.model_base)


# The model the Python services load: the checkout's natively, the image's under docker.
MODEL_BASE = RuntimeValue(native=_model_base_native, docker=lambda s: CONTAINER_MODEL_BASE)
