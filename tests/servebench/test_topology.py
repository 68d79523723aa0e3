"""docker-compose.yml and the native runner describe the same services.

The committed compose file must equal what :mod:`servebench.topology` generates,
and for every service the command, environment, port and profile that compose
runs must equal what :mod:`servebench.stack` launches, with default knobs and
with changed ones. Compose's own reading of the file (``docker-compose config``)
is checked too when the binary is installed. No Docker engine is needed.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from servebench import compose, nginx_conf, stack, topology

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOC = topology.compose_document()
SERVICES = list(topology.SERVICES)
BACKENDS = [name for name in SERVICES if name != "nginx"]
# Changed knobs: a drift in how either runtime substitutes them shows up here.
CHANGED = {
    "SB_PORT": "28080", "SB_FRONTEND_PORT": "28000", "SB_FLASK_PORT": "25000", "SB_FASTAPI_PORT": "28001",
    "SB_TFSERVING_GRPC_PORT": "28500", "SB_TFSERVING_REST_PORT": "28501", "SB_FRONTEND_WORKERS": "3",
    "SB_FRONTEND_THREADS": "5", "SB_BACKEND_WORKERS": "2", "SB_BACKEND_THREADS": "6", "SB_INTRA_OP_THREADS": "2",
    "SB_INTER_OP_THREADS": "2", "SB_BACKEND_TIMEOUT_S": "7", "SB_MAX_BATCH": "64", "SB_TFSERVING_BATCHING": "true",
    "ARCH": "flask",
}
# Where a container's files are not the checkout's: the model (baked into the
# image) and TF Serving's config files (mounted at /models).
DOCKER_ONLY_ENV = {"SB_MODEL_BASE"}
TF_FILE_FLAGS = ("--model_config_file", "--batching_parameters_file")


def native(name: str, env: dict[str, str], tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The argv (program name unresolved) and the service's own environment, as stack.up launches them."""
    svc = topology.SERVICES[name]
    senv = stack._service_env(svc, env, tmp_path)
    argv = [topology.resolve(a, senv) for a in svc.command]
    return argv, {k: senv[k] for k in svc.environment}


def composed(name: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment compose runs under servebench.compose, substituting as compose does."""
    spec = DOC["services"][name]
    env = compose._compose_env(env)
    argv = [topology.resolve(a, env) for a in spec.get("entrypoint", []) + spec["command"]]
    return argv, {k: topology.resolve(v, env) for k, v in spec["environment"].items() if k not in DOCKER_ONLY_ENV}


def _without_file_flags(argv: list[str]) -> list[str]:
    return [a for a in argv if not a.startswith(TF_FILE_FLAGS)]


def test_committed_compose_file_is_generated_from_the_topology():
    committed = yaml.safe_load(COMPOSE_FILE.read_text())
    assert committed == DOC, "docker-compose.yml drifted from servebench/topology.py: run `make compose-file`"


@pytest.mark.parametrize("knobs", [{}, CHANGED], ids=["default-knobs", "changed-knobs"])
@pytest.mark.parametrize("name", SERVICES)
def test_compose_runs_what_the_native_runner_launches(name, knobs, tmp_path):
    env = {"PATH": "/usr/bin:/bin", **knobs}
    n_argv, n_env = native(name, env, tmp_path)
    c_argv, c_env = composed(name, env)
    if name == "tfserving":
        # Same flags; only the config files' paths differ (rendered locally vs mounted at /models).
        assert _without_file_flags(c_argv) == _without_file_flags(n_argv)
        mounts = {v.split(":")[1] for v in DOC["services"][name]["volumes"]}
        for flag in TF_FILE_FLAGS:
            (c_value,) = [a.split("=", 1)[1] for a in c_argv if a.startswith(flag + "=")]
            (n_value,) = [a.split("=", 1)[1] for a in n_argv if a.startswith(flag + "=")]
            assert bool(c_value) == bool(n_value), f"{flag}: compose {c_value!r}, native {n_value!r}"
            assert not c_value or c_value in mounts, f"{flag} points at {c_value}, which compose does not mount"
            assert not n_value or Path(n_value).name == Path(c_value).name
    else:
        assert c_argv == n_argv
    assert c_env == n_env


@pytest.mark.parametrize("name", SERVICES)
def test_compose_healthcheck_probes_the_native_port_and_path(name):
    svc = topology.SERVICES[name]
    test = " ".join(DOC["services"][name]["healthcheck"]["test"])
    port = topology.resolve(topology.ref(svc.port_knob), CHANGED)
    resolved = topology.resolve(test, CHANGED)
    assert f"127.0.0.1:{port}" in resolved or f"127.0.0.1/{port}" in resolved
    if svc is not topology.TFSERVING:  # TF Serving's probe is a TCP connect (no Python in its image)
        assert resolved.endswith(f":{port}{svc.health_path}")


@pytest.mark.parametrize("arch", topology.ARCHES)
def test_each_profile_starts_the_services_the_native_runner_starts(arch):
    profile = topology.PROFILE_OF[arch]
    in_profile = {name for name, spec in DOC["services"].items() if profile in spec["profiles"]}
    assert in_profile == {svc.name for svc in topology.services_for(arch)}


def test_services_use_host_networking_and_publish_no_ports():
    for name, spec in DOC["services"].items():
        assert spec["network_mode"] == "host", name
        assert "ports" not in spec, name


def test_nginx_waits_for_a_healthy_front_end():
    assert DOC["services"]["nginx"]["depends_on"] == {"frontend": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", [n for n in BACKENDS if n != "tfserving"])
def test_every_backend_binds_loopback_only(name, tmp_path):
    argv, _ = native(name, CHANGED, tmp_path)
    port = CHANGED[topology.SERVICES[name].port_knob]
    joined = " ".join(argv)
    assert f"--bind 127.0.0.1:{port}" in joined or f"--host 127.0.0.1 --port {port}" in joined, joined
    assert "0.0.0.0" not in joined


def test_tfserving_is_the_one_backend_without_a_bind_address():
    # tensorflow_model_server has no flag for its listen address (it binds every
    # interface); with host networking only a firewall narrows it. Fail if it gains one.
    assert not any("127.0.0.1" in a or "0.0.0.0" in a for a in topology.TFSERVING.command)


def test_nginx_listen_address_is_the_sb_listen_setting():
    assert DOC["services"]["nginx"]["environment"]["SB_LISTEN"] == "${SB_LISTEN:-127.0.0.1}"
    default = nginx_conf.render(Path("/tmp/x"), {})
    assert re.search(r"listen 127\.0\.0\.1:8080\b", default)
    moved = nginx_conf.render(Path("/tmp/x"), {"SB_LISTEN": "0.0.0.0", "SB_PORT": "28080"})
    assert re.search(r"listen 0\.0\.0\.0:28080\b", moved)


def test_built_services_take_the_base_image_as_a_build_argument():
    for name, svc in topology.SERVICES.items():
        spec = DOC["services"][name]
        if svc.dockerfile is None:
            assert spec["image"] == topology.TFSERVING.image and "build" not in spec
            continue
        assert spec["build"]["network"] == "host"
        assert "BASE_IMAGE" in spec["build"]["args"]
        text = (REPO / svc.dockerfile).read_text()
        assert re.search(r"^ARG BASE_IMAGE=", text, re.M) and re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M)
        assert "docker/certs/" in text, f"{svc.dockerfile} does not install the extra CA certificates"


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
    files = {topology.SERVICES[n].dockerfile for n in ("frontend", "flask", "fastapi")}
    assert files == {topology.PYTHON_DOCKERFILE}
    steps = _instructions(REPO / topology.PYTHON_DOCKERFILE)
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
@pytest.mark.parametrize("profile", ["embedded", "flask", "fastapi", "tfserving"])
def test_compose_accepts_the_file_for_every_profile(binary, profile, tmp_path):
    argv = COMPOSE_BINARIES[binary]
    if not shutil.which(argv[0]) or subprocess.run(
            [*argv, "version"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip(f"{' '.join(argv)} is not installed (Debian: apt-get install docker-compose; "
                    "v2: Docker's compose plugin)")
    env = compose._compose_env({"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path), **CHANGED})
    res = subprocess.run([*argv, "-f", str(COMPOSE_FILE), "--project-directory", str(REPO), "-p", "sbtopology",
                          "--profile", profile, "config"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    seen = yaml.safe_load(res.stdout)["services"]
    # Compose's own substitution agrees with the native runner's, for every service it runs.
    for name, spec in seen.items():
        if profile not in spec.get("profiles", [profile]):
            continue
        n_argv, n_env = native(name, env, tmp_path)
        if name != "tfserving":
            assert [str(a) for a in spec["command"]] == n_argv, name
        got_env = {k: str(v) for k, v in (spec.get("environment") or {}).items() if k not in DOCKER_ONLY_ENV}
        assert got_env == n_env, name


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
    conf = "\n".join(line.split("#")[0] for line in nginx_conf.render(Path("/tmp/x"), {}).splitlines())
    blocks = _blocks(conf)
    # An add_header in a location would replace the server's for that location.
    assert not [h for h, body in blocks if h.startswith("location") and "add_header" in body]
    (server,) = [body for h, body in blocks if h == "server"]
    for header in ("X-Content-Type-Options nosniff", "X-Frame-Options DENY",
                   "Content-Security-Policy \"default-src 'none'; frame-ancestors 'none'\""):
        assert re.search(r"add_header " + re.escape(header) + r" always;", server), header


def test_nginx_per_client_limit_is_the_knob():
    assert topology.default("SB_CONN_LIMIT") == "256"
    assert DOC["services"]["nginx"]["environment"]["SB_CONN_LIMIT"] == "${SB_CONN_LIMIT:-256}"
    conf = nginx_conf.render(Path("/tmp/x"), {"SB_CONN_LIMIT": "7"})
    assert re.search(r"limit_conn_zone \$binary_remote_addr zone=perclient:", conf)
    assert re.search(r"limit_conn perclient 7;", conf) and "limit_conn_status 429;" in conf
    assert "the limit is 7" in conf


def test_rendered_nginx_config_is_valid(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed")
    conf = nginx_conf.write(tmp_path, {"SB_PORT": "28080", "SB_CONN_LIMIT": "4"})
    res = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr


def test_uvicorn_keeps_idle_connections_longer_than_its_default():
    argv = list(topology.FASTAPI.command)
    # The front end reuses pooled connections; uvicorn's 5 s default closes them under its feet.
    assert int(argv[argv.index("--timeout-keep-alive") + 1]) >= 60
