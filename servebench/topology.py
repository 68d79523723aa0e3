"""What each service receives, derived from the registry and the settings: environment, command, compose file.

Both runtimes read it. A service's environment is the knobs declared for it
(:func:`servebench.settings.knob`), its fixed variables and its runtime paths;
its command is a template with ``${VAR:-default}`` references. The native
runner (:mod:`servebench.stack`) resolves the templates itself and gives each
process exactly that environment (plus :data:`PLATFORM_ENV`); compose gets the
same values through ``docker-compose.yml``, generated here
(``python -m servebench.topology compose``). A test fails when the committed
file drifts, and another compares what each service really receives.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from servebench import health, registry, settings as settings_mod
from servebench.registry import Service
from servebench.settings import Settings
from servebench.types import MODEL_NAME

REPO_ROOT = settings_mod.REPO_ROOT
# What a native process gets besides its declared environment, as the image's ENV gives a container
# PATH, HOME, LANG and PYTHONPATH (/app); the marker lets `down` find strays of a killed run.
PLATFORM_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH")
STACK_MARKER = "SERVEBENCH_STACK_DIR"
TF_LOG_LEVEL = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # every Python service: TensorFlow's start-up chatter off

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve(template: str, env: dict[str, str]) -> str:
    """Substitute ``${VAR:-default}`` (and ``${VAR}``) as compose does."""
    return _REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), template)


def receives(svc: Service, field_name: str) -> bool:
    to = settings_mod.receivers(field_name)
    return svc.name in to or any(g in to for g in svc.groups)


def knobs_of(svc: Service) -> list[str]:
    """The knob fields ``svc`` receives, in declaration order."""
    return [name for name in settings_mod.knob_fields() if receives(svc, name)]


def recorded(settings: Settings, service: str) -> dict:
    """What ``service`` shows of ``settings`` (its ``/v1/info``): the recorded settings, less the knobs it is not
    given (one it is not given would show its default, not the value in force elsewhere in the stack)."""
    svc = registry.service(service)
    return settings.recorded(exclude=[name for name in settings_mod.knob_fields() if not receives(svc, name)])


def environment_templates(svc: Service) -> dict[str, str]:
    """The service's environment as compose writes it: knob references and fixed templates."""
    env = {settings_mod.env_name(name): registry.ref(name) for name in knobs_of(svc)}
    env.update(svc.environment)
    if svc.dockerfile == registry.PYTHON_DOCKERFILE:
        env.update(TF_LOG_LEVEL)
    return env


def substitutions(arch: str, settings: Settings, secret_key: str = "") -> dict[str, str]:
    """The values both runtimes substitute into the templates: every knob, ARCH and the secret."""
    return {**settings.knob_env(), "ARCH": arch, "SB_SECRET_KEY": secret_key}


def runtime_values(svc: Service, runtime: str, settings: Settings, run_dir: Path | None = None) -> dict[str, str]:
    """The service's environment and command values that differ by runtime (paths)."""
    values = {**svc.runtime_env, **svc.runtime_vars}
    if runtime == "native":
        return {k: v.native(settings, run_dir) for k, v in values.items()}
    return {k: v.docker(settings) for k, v in values.items()}


def native_launch(svc: Service, arch: str, settings: Settings, run_dir: Path, platform: dict[str, str],
                  secret_key: str = "") -> tuple[list[str], dict[str, str]]:
    """The argv (program name unresolved) and the complete environment of a native process."""
    subst = {**substitutions(arch, settings, secret_key), **runtime_values(svc, "native", settings, run_dir)}
    env = {k: resolve(v, subst) for k, v in environment_templates(svc).items()}
    env.update({k: subst[k] for k in svc.runtime_env})
    env.update({k: platform[k] for k in PLATFORM_ENV if k in platform})
    env["PYTHONPATH"] = str(REPO_ROOT)
    env[STACK_MARKER] = str(run_dir)
    argv = [resolve(a, subst) for a in svc.command]
    return argv, env


def compose_substitutions(arch: str, settings: Settings, secret_key: str = "") -> dict[str, str]:
    """What compose must find in its environment to substitute docker-compose.yml for ``arch``."""
    env = substitutions(arch, settings, secret_key)
    for svc in registry.services_for(arch):
        env.update({k: v for k, v in runtime_values(svc, "docker", settings).items() if k in svc.runtime_vars})
        env.update(limit_values(svc, settings))
    return env


def limit_variables(svc: Service) -> tuple[str, str]:
    """The compose variables of a limited service's memory (MiB) and CPUs: derived from knobs, not knobs."""
    stem = "SB_LIMIT_" + re.sub(r"[^A-Z0-9]", "_", svc.name.upper())
    return stem + "_MEMORY_MB", stem + "_CPUS"


def limit_values(svc: Service, settings: Settings) -> dict[str, str]:
    """Compose's values of the limit variables; 0 is docker's unlimited."""
    if svc.limits is None:
        return {}
    lim = svc.limits_in(settings)
    mem, cpus = limit_variables(svc)
    return {mem: str(lim.memory_mb or 0) if lim else "0",
            cpus: f"{lim.cpus:g}" if lim and lim.cpus else "0"}


def port(svc: Service, settings: Settings) -> int:
    return int(getattr(settings, svc.port_field))


def compose_document() -> dict:
    """The docker-compose.yml the registry implies (see docker/ for images)."""
    services = {}
    defaults = Settings.model_construct()
    defaults_settings = Settings.from_env({})
    for svc in registry.services().values():
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
        spec["profiles"] = list(registry.profiles_of(svc.name))
        spec["network_mode"] = "host"
        # The runtime paths default to the container's, for compose run by hand.
        paths = {k: v.docker(defaults) for k, v in svc.runtime_vars.items()}
        command = [_with_defaults(a, paths) for a in svc.command]
        if svc.dockerfile:
            spec["command"] = command
        else:
            # The official image's entrypoint adds its own model flags; run the server directly.
            spec["entrypoint"] = command[:1]
            spec["command"] = command[1:]
        env = environment_templates(svc)
        env.update({k: v.docker(defaults) for k, v in svc.runtime_env.items()})
        spec["environment"] = env
        if svc.volumes:
            spec["volumes"] = list(svc.volumes)
        probe_port = registry.ref(svc.port_field)
        probe = health.target("127.0.0.1", probe_port, svc.health_path_for(MODEL_NAME))  # the images serve the default model
        spec["healthcheck"] = (
            {"test": ["CMD", "python", "-m", "servebench.health", probe],
             "interval": "2s", "timeout": "2s", "retries": 60}
            if svc.dockerfile
            else {"test": ["CMD-SHELL", f"timeout 2 bash -c '</dev/tcp/127.0.0.1/{probe_port}'"],
                  "interval": "2s", "timeout": "3s", "retries": 60}
        )
        if svc.limits is not None:
            (mem, cpus), values = limit_variables(svc), limit_values(svc, defaults_settings)
            spec["mem_limit"] = "${%s:-%s}m" % (mem, values[mem])
            spec["cpus"] = "${%s:-%s}" % (cpus, values[cpus])
        # Compose refuses a dependency its profile does not enable (nginx in front of the streaming server runs
        # without the Django front end); the runtimes await every service's health themselves.
        deps = [d for d in svc.depends_on if set(registry.profiles_of(svc.name)) <= set(registry.profiles_of(d))]
        if deps:
            spec["depends_on"] = {d: {"condition": "service_healthy"} for d in deps}
        services[svc.name] = spec
    return {"version": "2.4", "services": services}


def _with_defaults(template: str, defaults: dict[str, str]) -> str:
    """``${VAR}`` -> ``${VAR:-default}`` for the variables in ``defaults``."""
    return _REF.sub(lambda m: "${%s:-%s}" % (m.group(1), defaults[m.group(1)])
                    if m.group(2) is None and m.group(1) in defaults else m.group(0), template)


def knobs_table() -> list[tuple[str, str, str, str, str]]:
    """(variable, type, default, services, doc) for every knob: the serving knobs, then the studies' and the
    tools' sections; the registry services that receive a knob, then the other processes that do."""
    rows = []
    services = registry.services().values()
    for name, f in settings_mod.knob_fields().items():
        who = [s.name for s in services if receives(s, name)]
        who += [to for to in settings_mod.receivers(name)
                if not any(to == s.name or to in s.groups for s in services)]  # not a service nor a group
        rows.append((settings_mod.env_name(name), _type_name(f.annotation), settings_mod.env_value(f.default),
                     ",".join(who), f.description or ""))
    return rows


def _type_name(annotation) -> str:
    name = getattr(annotation, "__name__", None)
    if name in ("int", "float", "bool", "str"):
        return name
    text = str(annotation).replace("typing.", "")
    return "choice" if text.startswith("Literal") else ("list" if "tuple" in text else text)


def main(argv: list[str]) -> int:
    if argv[:1] == ["compose"]:
        import yaml

        header = ("# Generated by `python -m servebench.topology compose` from each folder's declaration.py and "
                  "knobs.py\n# (services/, bench/studies/). Edit those, then regenerate: a test fails when the two "
                  "drift apart.\n")
        sys.stdout.write(header + yaml.safe_dump(compose_document(), sort_keys=False, width=120))
        return 0
    if argv[:1] == ["knobs"]:
        rows = knobs_table()
        width = max(len(r[0]) for r in rows)
        print(f"{'variable':<{width}} {'type':<7} {'default':<26} {'services':<34} doc")
        for var, typ, dflt, who, doc in rows:
            print(f"{var:<{width}} {typ:<7} {dflt:<26} {who:<34} {doc}")
        return 0
    print("usage: python -m servebench.topology compose|knobs", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
