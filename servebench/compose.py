"""The docker runtime: the topology's services as containers, through docker compose.

    python -m servebench.compose build [SERVICE ...]   # images (make images)
    python -m servebench.compose config [PROFILE]      # validate docker-compose.yml

``make up|down|status RUNTIME=docker`` go through :mod:`servebench.runtime`.

The same API as :mod:`servebench.stack` (``up / down / state / StackError``),
so the harness runs either. ``docker compose`` (v2) is used when present, else
``docker-compose`` (v1.29, which has no ``up --wait``: health is awaited here
for both). Knobs and ``ARCH`` reach compose as environment variables, which
``docker-compose.yml`` (generated from :mod:`servebench.topology`) substitutes.

What was started is written to ``<run dir>/compose.json`` (the native runner
writes ``stack.json`` beside it): per service its container, port and command.
:meth:`ComposeState.processes` reads each container's host PID (``State.Pid``)
so the harness's psutil sampler measures containers as it measures processes.

``up`` first rebuilds the arch's images, so the containers run the checkout's
code (seconds when only the code changed: every other layer is cached).

Settings: ``SB_COMPOSE`` (the compose command, e.g. ``docker-compose``),
``SB_COMPOSE_PROJECT`` (default ``servebench``), ``BASE_IMAGE`` (default: the
public ``python:3.11-slim-bookworm``, or ``servebench/base:bookworm`` from
``make base-image`` when only that one is here), ``SB_DOCKER_BUILD=0`` (``up``
uses the images as they are, building only missing ones).
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from servebench import interrupts, topology
from servebench.stack import StackError, StackState, _check_port_free, run_dir

__all__ = ["StackError", "ComposeState", "up", "down", "state", "build", "config"]

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
STATE_FILE = "compose.json"
DEFAULT_PROJECT = "servebench"
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 10
PULL_TIMEOUT_S = 300.0
PROFILES = tuple(dict.fromkeys(topology.PROFILE_OF.values()))
BUILT = tuple(name for name, svc in topology.SERVICES.items() if svc.dockerfile)
PUBLIC_BASE = "python:3.11-slim-bookworm"
OFFLINE_BASE = "servebench/base:bookworm"  # docker/base-image.sh (make base-image)
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


# ------------------------------------------------------------ docker plumbing
def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float | None = 60.0,
         capture: bool = True, merge: bool = True) -> subprocess.CompletedProcess:
    """Run a docker command; ``merge`` folds stderr into stdout (for messages), else stdout alone (for JSON)."""
    try:
        return subprocess.run(argv, env=env, cwd=REPO_ROOT, timeout=timeout, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=(subprocess.STDOUT if merge else subprocess.PIPE) if capture else None)
    except FileNotFoundError:
        raise StackError(f"{argv[0]} not found: install Docker (Debian: apt-get install docker.io docker-compose)") from None
    except subprocess.TimeoutExpired:
        raise StackError(f"`{shlex.join(argv)}` did not finish within {timeout:.0f} s") from None


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def _require_engine() -> None:
    if not engine_answers():
        raise StackError("no Docker engine answers (`docker info` fails): start one, e.g. "
                         "`bash .ci/docker-engine.sh start` (see ../shared/MACHINES.md), or use RUNTIME=native")


def compose_command(env: dict[str, str] | None = None) -> list[str]:
    """``docker compose`` (v2) when present, else ``docker-compose`` (v1); SB_COMPOSE overrides."""
    env = os.environ if env is None else env
    return list(_find_compose(env.get("SB_COMPOSE", "")))


@functools.lru_cache(maxsize=None)
def _find_compose(override: str) -> tuple[str, ...]:
    if override:
        return tuple(shlex.split(override))
    try:
        if subprocess.run(["docker", "compose", "version"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=20).returncode == 0:
            return ("docker", "compose")
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    raise StackError("neither `docker compose` (v2) nor `docker-compose` (v1) is installed: "
                     "install the compose plugin, or Debian's docker-compose")


def project_name(env: dict[str, str] | None = None) -> str:
    return (os.environ if env is None else env).get("SB_COMPOSE_PROJECT") or DEFAULT_PROJECT


def _compose(env: dict[str, str], profiles: tuple[str, ...], project: str) -> list[str]:
    argv = [*compose_command(env), "-p", project, "-f", str(COMPOSE_FILE), "--project-directory", str(REPO_ROOT)]
    for p in profiles:
        argv += ["--profile", p]
    return argv


def _image_present(image: str) -> bool:
    return _run(["docker", "image", "inspect", image], timeout=30).returncode == 0


def _inspect(ids: list[str]) -> list[dict]:
    if not ids:
        return []
    res = _run(["docker", "inspect", *ids], timeout=30, merge=False)
    if res.returncode != 0:
        # Some ids are gone: inspect them one by one and keep those that exist.
        found = []
        for cid in ids:
            one = _run(["docker", "inspect", cid], timeout=30, merge=False)
            if one.returncode == 0:
                found += json.loads(one.stdout)
        return found
    return json.loads(res.stdout)


def project_containers(project: str, all_states: bool = True) -> dict[str, dict]:
    """The project's containers by service name (``docker inspect`` documents)."""
    argv = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}"]
    if all_states:
        argv.insert(2, "-a")
    res = _run(argv, timeout=30, merge=False)
    if res.returncode != 0:
        raise StackError(f"`docker ps` failed: {res.stderr.strip()}")
    return {c["Config"]["Labels"].get(SERVICE_LABEL, c["Name"].lstrip("/")): c for c in _inspect(res.stdout.split())}


def _logs_tail(cid: str, lines: int = 20) -> str:
    res = _run(["docker", "logs", "--tail", str(lines), cid], timeout=30)
    return res.stdout.rstrip()


def _compose_env(base_env: dict[str, str]) -> dict[str, str]:
    """What compose substitutes into docker-compose.yml: the knobs, plus what the native runner derives."""
    env = dict(base_env)
    env.setdefault("BASE_IMAGE", PUBLIC_BASE)
    # As stack.py does: TF Serving gets its batching file (mounted at /models) only with batching on.
    if topology.knobs(env)["SB_TFSERVING_BATCHING"] == "true":
        env.setdefault("SB_TFSERVING_BATCHING_CONFIG", "/models/batching.config")
    return env


def _images() -> dict[str, str]:
    doc = topology.compose_document()["services"]
    return {name: spec["image"] for name, spec in doc.items()}


# ------------------------------------------------------------------ state
@dataclass
class ComposeState(StackState):
    """The native state's API; only how a service's host PID is found differs."""

    _pids: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def pids(self) -> dict[str, int]:
        """Each service's container main process as a host PID (0 when not running).

        The sampler calls this several times a second: ``docker inspect`` runs
        only when a known PID is gone (a container stopped or restarted).
        """
        if self._pids and all(pid and psutil.pid_exists(pid) for pid in self._pids.values()):
            return dict(self._pids)
        ids = {name: svc["container"] for name, svc in self.doc["services"].items()}
        live = {c["Id"]: c["State"].get("Pid", 0) if c["State"].get("Running") else 0
                for c in _inspect(list(ids.values()))}
        self._pids = {name: live.get(cid, 0) for name, cid in ids.items()}
        return dict(self._pids)


def state(path: str | Path | None = None) -> ComposeState | None:
    f = run_dir(path) / STATE_FILE
    if not f.is_file():
        return None
    return ComposeState(run_dir(path), json.loads(f.read_text()))


# ------------------------------------------------------------------ build
def copy_certs(log=print) -> None:
    """Extra CA certificates for a proxy into docker/certs/ (gitignored), for every Dockerfile."""
    res = _run(["bash", str(REPO_ROOT / "docker" / "copy-certs.sh")], timeout=30)
    if res.returncode != 0:
        raise StackError(f"copying CA certificates failed: {res.stdout.strip()}")
    if res.stdout.strip():
        log(res.stdout.strip())


def base_image(env: dict[str, str] | None = None) -> str:
    """BASE_IMAGE when set; else the public Python image, or the offline one when only it is here."""
    env = os.environ if env is None else env
    if env.get("BASE_IMAGE"):
        return env["BASE_IMAGE"]
    if not _image_present(PUBLIC_BASE) and _image_present(OFFLINE_BASE):
        return OFFLINE_BASE
    return PUBLIC_BASE


def build(services: list[str] | tuple[str, ...] | None = None, env: dict[str, str] | None = None,
          log=print, timeout_s: float = 1800.0, quiet: bool = False) -> None:
    """Build the images of ``services`` (default: all built ones) on :func:`base_image`.

    Cached layers make a rebuild after a code change take seconds; the Python
    dependency layer is built once and shared by the three Python services.
    ``quiet`` keeps the build output unless the build fails.
    """
    _require_engine()
    env = dict(os.environ if env is None else env)
    base_env = _compose_env({**env, "BASE_IMAGE": base_image(env)})
    services = list(services or BUILT)
    unknown = [s for s in services if s not in BUILT]
    if unknown:
        raise StackError(f"no image is built for {', '.join(unknown)}: choose from {', '.join(BUILT)}")
    base = base_env["BASE_IMAGE"]
    if not _image_present(base) and _run(["docker", "pull", base], timeout=PULL_TIMEOUT_S).returncode != 0:
        raise StackError(f"base image {base} is not present and cannot be pulled: build one offline with "
                         f"`make base-image` and set BASE_IMAGE={OFFLINE_BASE}")
    copy_certs(log)
    log(f"building {', '.join(services)} on {base} ...")
    argv = [*_compose(base_env, PROFILES, project_name(base_env)), "build", *services]
    res = _run(argv, env=base_env, timeout=timeout_s, capture=quiet)
    if res.returncode != 0:
        output = f":\n{res.stdout.strip()[-3000:]}" if quiet else "; see its output above"
        raise StackError(f"`{shlex.join(argv)}` failed (exit {res.returncode}){output}")


def config(profile: str, env: dict[str, str] | None = None) -> str:
    """docker-compose.yml as compose reads it for one profile; StackError when invalid."""
    base_env = _compose_env(dict(os.environ if env is None else env))
    argv = [*_compose(base_env, (profile,), project_name(base_env)), "config"]
    res = _run(argv, env=base_env, timeout=60)
    if res.returncode != 0:
        raise StackError(f"docker-compose.yml is invalid for profile {profile}: {res.stdout.strip()}")
    return res.stdout


# ------------------------------------------------------------------ up / down
def _ensure_tfserving_image(log) -> None:
    image = topology.TFSERVING.image
    if _image_present(image):
        return
    log(f"pulling {image} ...")
    res = _run(["docker", "pull", image], timeout=PULL_TIMEOUT_S)
    if res.returncode != 0:
        detail = (res.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise StackError(
            f"TF Serving needs the official image {image}, which is not present locally and cannot be "
            f"pulled here ({detail}). On a host with a registry: `docker pull {image}`; or bring it in with "
            "`docker load`. Nothing is substituted for it. See services/tfserving/README.md."
        )


def _wait_healthy(names: list[str], project: str, timeout_s: float, log) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    reported: set[str] = set()
    while True:
        containers = project_containers(project)
        for name in names:
            c = containers.get(name)
            if c is None:
                continue
            st = c["State"]
            if st["Status"] in ("exited", "dead"):
                raise StackError(f"{name} exited with code {st.get('ExitCode')} while starting; "
                                 f"last lines of `docker logs {c['Id'][:12]}`:\n{_logs_tail(c['Id'])}")
            health = (st.get("Health") or {}).get("Status")
            if health == "unhealthy":
                raise StackError(f"{name} is unhealthy; last lines of `docker logs {c['Id'][:12]}`:\n{_logs_tail(c['Id'])}")
            if health == "healthy" and name not in reported:
                reported.add(name)
                log(f"  {name:<10} healthy (container {c['Id'][:12]}, host pid {st.get('Pid')})")
        if reported == set(names):
            return containers
        if time.monotonic() > deadline:
            waiting = [n for n in names if n not in reported]
            tails = "\n".join(
                f"--- {n}:\n{_logs_tail(containers[n]['Id'])}" if n in containers else f"--- {n}: no container"
                for n in waiting)
            raise StackError(f"{', '.join(waiting)} not healthy within {timeout_s:.0f} s; last log lines:\n{tails}")
        time.sleep(0.5)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def up(arch: str, env: dict[str, str] | None = None, path: str | Path | None = None,
       timeout_s: float = START_TIMEOUT_S, log=print, build_images: bool | None = None) -> ComposeState:
    topology.check_arch(arch)
    given_env = dict(os.environ if env is None else env)
    base_env = _compose_env(given_env)
    base_env["ARCH"] = arch
    project = project_name(base_env)
    rdir = run_dir(path)
    _require_engine()
    existing = state(rdir)
    if existing is not None:
        if any(existing.pids().values()):
            raise StackError(f"a {existing.arch} docker stack is already running (state in {rdir}): "
                             "run `make down RUNTIME=docker` first")
        (rdir / STATE_FILE).unlink()
    running = project_containers(project, all_states=False)
    if running:
        raise StackError(f"containers of compose project {project!r} are running ({', '.join(running)}), "
                         f"not started from {rdir}: run `make down RUNTIME=docker`, or choose another "
                         "project with SB_COMPOSE_PROJECT=...")
    services = topology.services_for(arch)
    for svc in services:
        _check_port_free("127.0.0.1", topology.port(svc, base_env), svc.port_knob)
    names = [svc.name for svc in services]
    if topology.TFSERVING.name in names:  # before any build: refuse early when it cannot run
        _ensure_tfserving_image(log)
    to_build = [n for n in names if n in BUILT]
    if build_images is None:
        build_images = base_env.get("SB_DOCKER_BUILD", "1") != "0"
    images = _images()
    missing = [n for n in to_build if not _image_present(images[n])]
    if build_images or missing:
        build(to_build if build_images else missing, env=given_env, log=log, quiet=True)
    base_env["BASE_IMAGE"] = base_image(given_env)

    rdir.mkdir(parents=True, exist_ok=True)
    profile = topology.PROFILE_OF[arch]
    argv = [*_compose(base_env, (profile,), project), "up", "-d", "--no-build"]
    doc = {
        "arch": arch,
        "runtime": "docker",
        "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "url": topology.base_url(base_env),
        "project": project,
        "profile": profile,
        "compose": compose_command(base_env),
        "base_image": base_env["BASE_IMAGE"],
        "knobs": topology.knobs(base_env),
        "services": {},
    }
    st = ComposeState(rdir, doc)
    started = time.monotonic()
    try:
        # v1 and v2 both wait here for depends_on health (nginx on the front end); the rest is awaited below.
        res = _run(argv, env=base_env, timeout=timeout_s + 60)
        if res.returncode != 0:
            containers = project_containers(project)
            tails = "\n".join(f"--- {n}:\n{_logs_tail(c['Id'])}" for n, c in containers.items())
            raise StackError(f"`{shlex.join(argv)}` failed (exit {res.returncode}):\n{res.stdout.strip()[-2000:]}\n"
                             f"last log lines:\n{tails}")
        remaining = max(5.0, timeout_s - (time.monotonic() - started))
        containers = _wait_healthy(names, project, remaining, log)
        for svc in services:
            c = containers[svc.name]
            doc["services"][svc.name] = {
                "container": c["Id"],
                "name": c["Name"].lstrip("/"),
                "image": c["Config"]["Image"],
                "image_id": c["Image"],
                "pid": c["State"]["Pid"],
                "port": topology.port(svc, base_env),
                "command": c["Config"]["Cmd"],
                "log": f"docker logs {c['Id'][:12]}",
            }
        (rdir / STATE_FILE).write_text(json.dumps(doc, indent=2))
        if not _http_ok(st.url + topology.NGINX.health_path):
            raise StackError(f"nginx is healthy in its container but {st.url}{topology.NGINX.health_path} does not "
                             "answer from here: check SB_LISTEN")
    except BaseException:
        down(rdir, log=lambda *_: None, project=project)
        raise
    return st


def down(path: str | Path | None = None, log=print, project: str | None = None) -> bool:
    """Remove every container of the project (all profiles); True when something was there."""
    with interrupts.shielded():  # a second Ctrl-C never leaves containers behind
        return _down(path, log, project)


def _down(path, log, project) -> bool:
    st = state(path)
    project = project or (st.doc["project"] if st else project_name())
    if not engine_answers():
        log("no Docker engine answers: nothing to stop")
        if st is not None:
            (st.run_dir / STATE_FILE).unlink(missing_ok=True)
        return False
    before = project_containers(project)
    env = _compose_env(dict(os.environ))
    argv = [*_compose(env, PROFILES, project), "down", "--remove-orphans", "-t", str(STOP_GRACE_S)]
    res = _run(argv, env=env, timeout=120)
    leftover = project_containers(project)
    if leftover:  # compose failed, or containers it no longer knows: remove them by label
        _run(["docker", "rm", "-f", *[c["Id"] for c in leftover.values()]], timeout=60)
        leftover = project_containers(project)
    if st is not None:
        (st.run_dir / STATE_FILE).unlink(missing_ok=True)
    if leftover:
        raise StackError(f"could not remove containers of project {project}: {', '.join(leftover)}\n{res.stdout.strip()}")
    for name in before:
        log(f"  removed {name}")
    if not before:
        log(f"no containers of compose project {project}")
    return bool(before)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("services", nargs="*", help=f"default: all of {', '.join(BUILT)}")
    c = sub.add_parser("config")
    c.add_argument("profile", nargs="?", choices=PROFILES)
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            build(args.services or None)
        else:
            for profile in [args.profile] if args.profile else PROFILES:
                config(profile)
                print(f"docker-compose.yml is valid for profile {profile}")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
