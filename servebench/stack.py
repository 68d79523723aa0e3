"""The native runtime: the topology's services as local processes on 127.0.0.1.

Driven through :mod:`servebench.runtime` (``make up|down|status``). What was started is written to ``<run dir>/stack.json`` (default ``run/``,
``SB_RUN_DIR``): per service its pid (a process group leader), port, command
and log. ``down`` and the harness's resource sampler read it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from servebench import interrupts, topology

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
HURRIED_GRACE_S = 1.0
# Every process of a native stack carries this in its environment, so `down` finds what a
# run killed outright left behind, even processes that escaped their group.
STACK_MARKER = "SERVEBENCH_STACK_DIR"


class StackError(RuntimeError):
    """Something stops the stack from starting; the message says what to do."""


@dataclass
class StackState:
    run_dir: Path
    doc: dict

    @property
    def arch(self) -> str:
        return self.doc["arch"]

    @property
    def url(self) -> str:
        return self.doc["url"]

    def pids(self) -> dict[str, int]:
        return {name: svc["pid"] for name, svc in self.doc["services"].items()}

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Each service's live processes: its master and descendants, or what is left of its group."""
        return {name: group_processes(pid) for name, pid in self.pids().items()}

    def health(self) -> dict[str, tuple[str, list[psutil.Process]]]:
        """Per service: "up" (master alive), "degraded" (master gone, workers left), or "dead"."""
        out = {}
        for name, pid in self.pids().items():
            procs = group_processes(pid)
            state = "up" if pid and _alive(pid) else ("degraded" if procs else "dead")
            out[name] = (state, procs)
        return out

    def alive(self) -> bool:
        return all(pid and _alive(pid) for pid in self.pids().values())


def group_processes(pid: int) -> list[psutil.Process]:
    """The live processes of the group ``pid`` leads (each service is started as a group leader).

    While the leader lives: it and its descendants. Once it is gone: whatever is left
    in its process group (workers orphaned by a killed master).
    """
    if not pid:
        return []
    if _alive(pid):
        try:
            leader = psutil.Process(pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    left = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pid and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return left


def run_dir(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("SB_RUN_DIR") or REPO_ROOT / "run").resolve()


def _alive(pid: int) -> bool:
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def state(path: str | Path | None = None) -> StackState | None:
    f = run_dir(path) / "stack.json"
    if not f.is_file():
        return None
    return StackState(run_dir(path), json.loads(f.read_text()))


def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        pass
    return ""


def _check_port_free(host: str, port: int, knob: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: connections in TIME_WAIT from a previous run must not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} ({knob}) on {host} is already in use{_port_owner(port)}: "
                f"stop that process, run `make down`, or choose another port with {knob}=..."
            ) from None


def _executable(name: str) -> str:
    """Prefer the tools of the Python running us (the project's virtual environment)."""
    if name == "python":
        return sys.executable
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found on PATH")
    return found


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def preflight(arch: str) -> None:
    """Fail early, with what to do, when a required program is missing."""
    if topology.BACKEND_OF[arch] == "tfserving" and not shutil.which("tensorflow_model_server"):
        raise StackError(
            f"ARCH={arch} needs TensorFlow Serving, and no `tensorflow_model_server` is on PATH. "
            "Install it from Google's apt repository (package tensorflow-model-server), or run the "
            "tfserving profile under docker compose (RUNTIME=docker), which uses the official "
            "tensorflow/serving image. Nothing is substituted for it. See services/tfserving/README.md."
        )
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        raise StackError("nginx is not installed: run `make setup` (it installs Debian's nginx-light) or `apt-get install nginx-light`")


def _service_env(svc: topology.Service, base_env: dict[str, str], rdir: Path) -> dict[str, str]:
    env = dict(base_env)
    for key, template in svc.environment.items():
        env[key] = topology.resolve(template, base_env)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + base_env["PYTHONPATH"] if base_env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if svc is topology.NGINX:
        env["SB_NGINX_PREFIX"] = str(rdir / "nginx")
    if svc is topology.TFSERVING:
        from servebench import tfserving

        conf = rdir / "tfserving" / "models.config"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(tfserving.render_models_config(str(REPO_ROOT / "models" / topology.MODEL_NAME)))
        env["SB_TFSERVING_MODELS_CONFIG"] = str(conf)
        if topology.knobs(base_env)["SB_TFSERVING_BATCHING"] == "true":
            env["SB_TFSERVING_BATCHING_CONFIG"] = str(REPO_ROOT / "services" / "tfserving" / "batching.config")
    return env


def up(arch: str, env: dict[str, str] | None = None, path: str | Path | None = None,
       timeout_s: float = START_TIMEOUT_S, log=print) -> StackState:
    topology.check_arch(arch)
    base_env = dict(os.environ if env is None else env)
    base_env["ARCH"] = arch
    rdir = run_dir(path)
    existing = state(rdir)
    if existing is not None:
        live = {name: state for name, (state, _) in existing.health().items() if state != "dead"}
        if live:
            what = ", ".join(f"{name} {state}" for name, state in live.items())
            raise StackError(f"a {existing.arch} stack is already running ({what}; state in {rdir}): "
                             "run `make down` first")
        (rdir / "stack.json").unlink()
    preflight(arch)
    services = topology.services_for(arch)
    knob_values = topology.knobs(base_env)
    for svc in services:
        _check_port_free("127.0.0.1", topology.port(svc, base_env), svc.port_knob)
    (rdir / "logs").mkdir(parents=True, exist_ok=True)
    doc = {
        "arch": arch,
        "runtime": "native",
        "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "url": topology.base_url(base_env),
        "knobs": knob_values,
        "services": {},
    }
    st = StackState(rdir, doc)
    try:
        for svc in services:
            _launch(st, svc, base_env, timeout_s)
            log(f"  {svc.name:<10} healthy on 127.0.0.1:{st.doc['services'][svc.name]['port']} "
                f"(pid {st.doc['services'][svc.name]['pid']})")
    except BaseException:
        down(rdir, log=lambda *_: None)
        raise
    return st


def _launch(st: StackState, svc: topology.Service, base_env: dict[str, str], timeout_s: float) -> None:
    """Start one service, record it in stack.json, and wait until it is healthy."""
    rdir = st.run_dir
    senv = _service_env(svc, base_env, rdir)
    argv = [topology.resolve(a, senv) for a in svc.command]
    argv[0] = _executable(argv[0])
    senv[STACK_MARKER] = str(rdir)
    logfile = rdir / "logs" / f"{svc.name}.log"
    port = topology.port(svc, base_env)
    # Only the topology's own variables are kept: enough to restart, no secrets from the caller's env.
    kept = {k: senv[k] for k in sorted(set(topology.KNOBS) | {"ARCH"}) if k in senv}
    with interrupts.shielded():  # a process that is started is also recorded, so `down` finds it
        with logfile.open("ab") as out:
            proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=senv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        st.doc["services"][svc.name] = {"pid": proc.pid, "port": port, "command": argv, "log": str(logfile),
                                        "env": kept}
        _write_state(st)
    health = f"http://127.0.0.1:{port}{svc.health_path}"
    deadline = time.monotonic() + timeout_s
    while not _healthy(health):
        if proc.poll() is not None:
            raise StackError(f"{svc.name} exited with code {proc.returncode} while starting; "
                             f"last lines of {logfile}:\n{_log_tail(logfile)}")
        if time.monotonic() > deadline:
            raise StackError(f"{svc.name} did not become healthy at {health} within {timeout_s:.0f} s; "
                             f"last lines of {logfile}:\n{_log_tail(logfile)}")
        time.sleep(0.2)


def stop_service(st: StackState, name: str) -> None:
    """Stop one service of a running stack (fault tests; the rest keeps running)."""
    _stop(st.doc["services"][name]["pid"])


def restart_service(st: StackState, name: str, timeout_s: float = START_TIMEOUT_S) -> None:
    """Start one service again with the settings it was started with."""
    old = st.doc["services"][name]
    _stop(old["pid"])
    _launch(st, topology.SERVICES[name], {**os.environ, **old["env"]}, timeout_s)


def _write_state(st: StackState) -> None:
    tmp = st.run_dir / "stack.json.tmp"
    tmp.write_text(json.dumps(st.doc, indent=2))
    os.replace(tmp, st.run_dir / "stack.json")


def _stop(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the service's process group, then SIGKILL what is left after the grace period.

    The group outlives its leader: workers of a killed master are still in it.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        try:  # reap our own child so it does not linger as a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if interrupts.hurry():  # Ctrl-C again: a second for a clean exit, then SIGKILL
            deadline = min(deadline, time.monotonic() + HURRIED_GRACE_S)
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _kill(proc: psutil.Process) -> None:
    try:
        proc.kill()
    except psutil.NoSuchProcess:
        pass


def leftovers(rdir: Path) -> list[psutil.Process]:
    """Processes started for the stack in ``rdir`` that are still alive, whatever their group.

    Found by the marker in their environment; nginx writes its process title over
    its environment, so it is found by its prefix (``-p <rdir>/nginx``) instead.
    """
    nginx_prefix = str(Path(rdir) / "nginx")
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid():
                continue
            if proc.environ().get(STACK_MARKER) == str(rdir) or nginx_prefix in " ".join(proc.cmdline()).split():
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def down(path: str | Path | None = None, log=print) -> bool:
    """Stop every service of the stack in ``path``, and anything a dead run left behind there.

    It always finishes: further Ctrl-C only shortens the grace periods.
    """
    rdir = run_dir(path)
    with interrupts.shielded():
        st = state(rdir)
        stopped = False
        if st is not None:
            for name in reversed(list(st.doc["services"])):
                _stop(st.doc["services"][name]["pid"])
                log(f"  stopped {name}")
            stopped = True
        stray = leftovers(rdir)
        for proc in stray:
            # A service leads its own group: its workers (nginx's carry no marker) go with it.
            _stop(proc.pid) if _leads_group(proc.pid) else _kill(proc)
        if stray:
            psutil.wait_procs(stray, timeout=5)
            log(f"  stopped {len(stray)} stray process(es) of an earlier run: {[p.pid for p in stray]}")
        (rdir / "stack.json").unlink(missing_ok=True)
        if not stopped and not stray:
            log("no native stack is running")
        return stopped or bool(stray)
