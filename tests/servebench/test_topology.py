"""docker-compose.yml and the native runner describe the same services.

The committed compose file must equal what :mod:`servebench.topology` generates;
for every service the command and environment that compose runs must equal what
the native runner launches (:func:`servebench.topology.native_launch`), with
default settings and with changed ones, except the runtime paths (the model,
nginx's prefix, TF Serving's config files); compose's own reading of the file
(``docker-compose config``) is checked too when the binary is installed. No
Docker engine is needed. What each running service really receives is compared
in tests/servebench/test_stack.py (it starts servers).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from servebench import compose, nginx_conf, registry, topology
from servebench.settings import HarnessSettings, Settings
from servebench.types import MODEL_NAME

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOC = topology.compose_document()
SERVICES = list(registry.services())
BACKENDS = [name for name in SERVICES if name != "nginx"]
DEFAULTS = Settings.from_env({})
# Changed knobs: a drift in how either runtime substitutes them shows up here.
CHANGED = Settings.from_env({
    "SB_PORT": "28080", "SB_FRONTEND_PORT": "28000", "SB_FLASK_PORT": "25000", "SB_FASTAPI_PORT": "28001",
    "SB_TFSERVING_GRPC_PORT": "28500", "SB_TFSERVING_REST_PORT": "28501", "SB_FRONTEND_WORKERS": "3",
    "SB_FRONTEND_THREADS": "5", "SB_BACKEND_WORKERS": "2", "SB_BACKEND_THREADS": "6", "SB_INTRA_OP_THREADS": "2",
    "SB_INTER_OP_THREADS": "2", "SB_BACKEND_TIMEOUT_S": "7", "SB_MAX_BATCH": "64", "SB_TFSERVING_BATCHING": "true",
    "SB_MAX_BODY_MB": "3", "SB_CONN_LIMIT": "9",
})
SECRET = "k3y-" + "x" * 50
PLATFORM = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8", "SB_POISON": "1", "SB_PORT": "1"}


def arch_of(name: str) -> str:
    """An architecture that runs the service (its substitutions include the service's paths)."""
    # A study's own service (the serverless object store, issue 13) belongs to no architecture.
    return next((a.name for a in registry.architectures() if name in a.services), "embedded")


def native(name: str, settings: Settings, run_dir: Path, arch: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv (program name unresolved) and the complete environment of the native process."""
    return topology.native_launch(registry.service(name), arch or arch_of(name), settings, run_dir, PLATFORM, SECRET)


def composed(name: str, settings: Settings, paths: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment compose runs, substituting as compose does; ``paths`` replace the runtime paths."""
    spec = DOC["services"][name]
    subst = {**topology.compose_substitutions(arch_of(name), settings, SECRET), **(paths or {})}
    argv = [topology.resolve(a, subst) for a in spec.get("entrypoint", []) + spec["command"]]
    env = {k: topology.resolve(v, subst) for k, v in spec["environment"].items()}
    env.update({k: v for k, v in (paths or {}).items() if k in env})
    return argv, env


def test_committed_compose_file_is_generated_from_the_registry():
    committed = yaml.safe_load(COMPOSE_FILE.read_text())
    assert committed == DOC, "docker-compose.yml drifted from servebench/registry.py: run `make compose-file`"


@pytest.mark.parametrize("settings", [DEFAULTS, CHANGED], ids=["default-knobs", "changed-knobs"])
@pytest.mark.parametrize("name", SERVICES)
def test_compose_runs_what_the_native_runner_launches(name, settings, tmp_path):
    svc = registry.service(name)
    n_argv, n_env = native(name, settings, tmp_path)
    native_paths = topology.runtime_values(svc, "native", settings, tmp_path)
    # With the native paths in place of the container's, compose runs exactly the native argv and environment...
    c_argv, c_env = composed(name, settings, native_paths)
    assert c_argv == n_argv
    platform = {k: n_env.pop(k) for k in (*topology.PLATFORM_ENV, topology.STACK_MARKER) if k in n_env}
    assert c_env == n_env
    # ...and nothing of the parent's environment but its platform variables reaches the process.
    assert platform == {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
                        "PYTHONPATH": str(REPO), topology.STACK_MARKER: str(tmp_path)}
    # The paths are the only difference, and each is set by both runtimes.
    d_argv, d_env = composed(name, settings)
    differs = {i for i, (a, b) in enumerate(zip(d_argv, n_argv)) if a != b}
    assert all(any(native_paths[k] in n_argv[i] for k in native_paths) for i in differs), (d_argv, n_argv)
    assert {k for k in d_env if d_env[k] != n_env[k]} <= set(svc.runtime_env)


@pytest.mark.parametrize("settings", [DEFAULTS, CHANGED], ids=["default-knobs", "changed-knobs"])
def test_tfserving_config_files_are_mounted_where_compose_points(settings, tmp_path):
    argv, _ = composed("tfserving", settings)
    mounts = {v.split(":")[1] for v in DOC["services"]["tfserving"]["volumes"]}
    n_argv, _ = native("tfserving", settings, tmp_path)
    for flag in ("--model_config_file", "--batching_parameters_file"):
        (c_value,) = [a.split("=", 1)[1] for a in argv if a.startswith(flag + "=")]
        (n_value,) = [a.split("=", 1)[1] for a in n_argv if a.startswith(flag + "=")]
        assert bool(c_value) == bool(n_value), f"{flag}: compose {c_value!r}, native {n_value!r}"
        assert not c_value or c_value in mounts, f"{flag} points at {c_value}, which compose does not mount"
        assert not n_value or Path(n_value).is_file() and Path(n_value).name == Path(c_value).name


def test_compose_run_by_hand_gets_the_container_paths():
    """Without the runtime's variables (plain `docker compose`), the paths default to the container's."""
    for name, spec in DOC["services"].items():
        svc = registry.service(name)
        docker = topology.runtime_values(svc, "docker", DEFAULTS)
        argv = [topology.resolve(a, {}) for a in spec.get("entrypoint", []) + spec["command"]]
        for var in svc.runtime_vars:
            assert not docker[var] or any(docker[var] in a for a in argv), (name, var)


@pytest.mark.parametrize("name", SERVICES)
def test_compose_healthcheck_probes_the_native_port_and_path(name):
    svc = registry.service(name)
    test = " ".join(DOC["services"][name]["healthcheck"]["test"])
    port = topology.port(svc, CHANGED)
    resolved = topology.resolve(test, CHANGED.knob_env())
    assert f"127.0.0.1:{port}" in resolved or f"127.0.0.1/{port}" in resolved
    if svc.dockerfile:  # an official image has no Python: a TCP connect
        probed = f"http://127.0.0.1:{port}{svc.health_path_for(MODEL_NAME)}" if svc.health_path else f"tcp://127.0.0.1:{port}"
        assert resolved.endswith(f"python -m servebench.health {probed}")


@pytest.mark.parametrize("arch", registry.names())
def test_each_profile_starts_the_services_the_native_runner_starts(arch):
    profile = registry.get(arch).profile
    in_profile = {name for name, spec in DOC["services"].items() if profile in spec["profiles"]}
    assert in_profile == {svc.name for svc in registry.services_for(arch)}


def test_services_use_host_networking_and_publish_no_ports():
    for name, spec in DOC["services"].items():
        assert spec["network_mode"] == "host", name
        assert "ports" not in spec, name


def test_a_dependency_is_enabled_wherever_its_dependent_is():
    # Compose refuses `up` for a profile whose service depends on one the profile does not enable.
    for name, spec in DOC["services"].items():
        for dep in spec.get("depends_on", {}):
            assert set(spec["profiles"]) <= set(DOC["services"][dep]["profiles"]), (name, dep)
    assert DOC["services"]["ensemble"]["depends_on"]["ensemble-cnn"] == {"condition": "service_healthy"}
    # nginx also fronts the streaming server, which runs without Django: no dependency on the front end.
    assert "stream" in DOC["services"]["nginx"]["profiles"] and "depends_on" not in DOC["services"]["nginx"]


@pytest.mark.parametrize("name", [n for n in BACKENDS if n != "tfserving"])
def test_every_backend_binds_loopback_only(name, tmp_path):
    argv, _ = native(name, CHANGED, tmp_path)
    port = topology.port(registry.service(name), CHANGED)
    joined = " ".join(argv)
    assert (f"--bind 127.0.0.1:{port}" in joined or f"--host 127.0.0.1 --port {port}" in joined
            or "-ip.bind=127.0.0.1" in joined and f"-s3.port={port}" in joined), joined  # weed: issue 13
    assert "0.0.0.0" not in joined


def test_tfserving_is_the_one_backend_without_a_bind_address():
    # tensorflow_model_server has no flag for its listen address (it binds every
    # interface); with host networking only a firewall narrows it. Fail if it gains one.
    assert not any("127.0.0.1" in a or "0.0.0.0" in a for a in registry.service("tfserving").command)


def test_nginx_listen_address_is_the_sb_listen_setting():
    assert DOC["services"]["nginx"]["environment"]["SB_LISTEN"] == "${SB_LISTEN:-127.0.0.1}"
    default = nginx_conf.render(Path("/tmp/x"), DEFAULTS)
    assert re.search(r"listen 127\.0\.0\.1:8080\b", default)
    moved = nginx_conf.render(Path("/tmp/x"), Settings.from_env({"SB_LISTEN": "0.0.0.0", "SB_PORT": "28080"}))
    assert re.search(r"listen 0\.0\.0\.0:28080\b", moved)


def test_nginx_takes_its_prefix_on_the_command_line():
    cmd = DOC["services"]["nginx"]["command"]
    assert cmd[cmd.index("--prefix") + 1] == "${SB_NGINX_PREFIX:-/tmp/servebench-nginx}"
    with pytest.raises(SystemExit):  # required: never read from the environment
        nginx_conf.main([])


def test_one_body_limit_for_nginx_django_and_the_model_servers():
    assert "client_max_body_size 3m;" in nginx_conf.render(Path("/tmp/x"), CHANGED)
    for name in ("nginx", "frontend", "flask", "fastapi"):
        assert DOC["services"][name]["environment"]["SB_MAX_BODY_MB"] == "${SB_MAX_BODY_MB:-16}", name


def test_built_services_take_the_base_image_as_a_build_argument():
    for name, svc in registry.services().items():
        spec = DOC["services"][name]
        if svc.dockerfile is None:
            assert spec["image"] == svc.image and "build" not in spec
            continue
        assert spec["build"]["network"] == "host"
        assert "BASE_IMAGE" in spec["build"]["args"]
        text = (REPO / svc.dockerfile).read_text()
        assert re.search(r"^ARG BASE_IMAGE=", text, re.M) and re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M)
        assert "docker/certs/" in text, f"{svc.dockerfile} does not install the extra CA certificates"


def test_nginx_image_has_what_its_renderer_and_healthcheck_import():
    """nginx_conf reads the typed settings (pydantic-settings); the image installs them at the pinned versions."""
    text = (REPO / registry.service("nginx").dockerfile).read_text()
    assert "COPY requirements.txt" in text and "pydantic|pydantic-settings" in text
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines()
            if re.match(r"^(pydantic|pydantic-settings)==", line)]
    assert len(pins) == 2
    assert "COPY servebench/ /app/servebench/" in text and "COPY nginx/ /app/nginx/" in text


def _instructions(path: Path) -> list[str]:
    lines, current = [], ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return lines


def test_python_services_share_their_dependency_layer():
    """One recipe for the three Python services: the 2 GB dependency layer is built once."""
    files = {registry.service(n).dockerfile for n in ("frontend", "flask", "fastapi")}
    assert files == {registry.PYTHON_DOCKERFILE}
    steps = _instructions(REPO / registry.PYTHON_DOCKERFILE)
    # Dependencies before the code, so a code change does not reinstall them.
    assert steps.index("COPY requirements.txt /tmp/requirements.txt") < steps.index("COPY . /app")


def test_build_context_leaves_out_local_state():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", "run", "results", ".git", "models/.train", ".gpu"} <= ignored


COMPOSE_BINARIES = {
    "docker-compose v1": ["docker-compose"],
    "docker compose v2": ["docker", "compose"],
}


@pytest.mark.parametrize("binary", list(COMPOSE_BINARIES))
@pytest.mark.parametrize("profile", registry.profiles())
def test_compose_accepts_the_file_for_every_profile(binary, profile, tmp_path, monkeypatch):
    argv = COMPOSE_BINARIES[binary]
    if not shutil.which(argv[0]) or subprocess.run(
            [*argv, "version"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip(f"{' '.join(argv)} is not installed (Debian: apt-get install docker-compose; "
                    "v2: Docker's compose plugin)")
    monkeypatch.setenv("SB_POISON", "1")  # the caller's stray variables do not reach compose
    arch = next(a.name for a in registry.architectures() if a.profile == profile)
    env = compose.DockerRuntime(HarnessSettings()).compose_env(arch, CHANGED, SECRET)
    assert "SB_POISON" not in env
    res = subprocess.run([*argv, "-f", str(COMPOSE_FILE), "--project-directory", str(REPO), "-p", "sbtopology",
                          "--profile", profile, "config"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "is not set" not in res.stderr, res.stderr
    seen = yaml.safe_load(res.stdout)["services"]
    # Compose's own substitution agrees with the native runner's (the paths aside), for every service it runs.
    for name, spec in seen.items():
        if profile not in spec.get("profiles", [profile]):
            continue
        svc = registry.service(name)
        native_argv, native_env = native(name, CHANGED, tmp_path, arch)
        native_paths = topology.runtime_values(svc, "native", CHANGED, tmp_path)
        docker_paths = topology.runtime_values(svc, "docker", CHANGED)
        got_argv = [str(a) for a in (spec.get("entrypoint") or []) + spec["command"]]
        for var, value in native_paths.items():  # the same argv once the native paths are the container's
            native_argv = [a.replace(value, docker_paths[var]) if value else a for a in native_argv]
        assert got_argv == native_argv, name
        got_env = {k: str(v) for k, v in (spec.get("environment") or {}).items()}
        expected = {k: v for k, v in native_env.items()
                    if k not in (*topology.PLATFORM_ENV, topology.STACK_MARKER)}
        expected.update({k: docker_paths[k] for k in svc.runtime_env})
        assert got_env == expected, name


def _blocks(conf: str) -> list[tuple[str, str]]:
    """(block header, the block's own directives without nested blocks) for every block of an nginx config."""
    out, stack = [], [("", "")]
    header, quote = "", None
    for ch in conf:
        if quote or ch in "'\"":  # braces inside quoted strings (the JSON bodies) are text
            quote = None if ch == quote else (quote or ch)
        elif ch == "{":
            stack.append((header.strip(), ""))
            header = ""
            continue
        elif ch == "}":
            out.append(stack.pop())
            header = ""
            continue
        name, body = stack[-1]
        stack[-1] = (name, body + ch)
        header = "" if ch == ";" else header + ch
    return out


def test_nginx_security_headers_reach_every_location():
    conf = "\n".join(line.split("#")[0] for line in nginx_conf.render(Path("/tmp/x"), DEFAULTS).splitlines())
    blocks = _blocks(conf)
    # An add_header in a location would replace the server's for that location.
    assert not [h for h, body in blocks if h.startswith("location") and "add_header" in body]
    # Every HTTP server (the main one; issue 11's gRPC listener); the TCP `stream` proxy speaks no HTTP.
    servers = [body for h, body in blocks if h == "server" and "proxy_pass 127.0.0.1:" not in body]
    assert servers
    for server in servers:
        for header in ("X-Content-Type-Options nosniff", "X-Frame-Options DENY",
                       "Content-Security-Policy \"default-src 'none'; frame-ancestors 'none'\""):
            assert re.search(r"add_header " + re.escape(header) + r" always;", server), header


def test_nginx_per_client_limit_is_the_knob():
    assert DEFAULTS.conn_limit == 256
    assert DOC["services"]["nginx"]["environment"]["SB_CONN_LIMIT"] == "${SB_CONN_LIMIT:-256}"
    conf = nginx_conf.render(Path("/tmp/x"), Settings.from_env({"SB_CONN_LIMIT": "7"}))
    assert re.search(r"limit_conn_zone \$binary_remote_addr zone=perclient:", conf)
    assert re.search(r"limit_conn perclient 7;", conf) and "limit_conn_status 429;" in conf
    assert "the limit is 7" in conf


def test_rendered_nginx_config_is_valid(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed")
    conf = nginx_conf.write(tmp_path, Settings.from_env({"SB_PORT": "28080", "SB_CONN_LIMIT": "4"}))
    res = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr


def test_uvicorn_keeps_idle_connections_longer_than_its_default():
    argv = list(registry.service("fastapi").command)
    # The front end reuses pooled connections; uvicorn's 5 s default closes them under its feet.
    assert int(argv[argv.index("--timeout-keep-alive") + 1]) >= 60
