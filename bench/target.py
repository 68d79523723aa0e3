"""The stack under test: the running one, or one brought up for the run and down after it.

Shared by ``bench.run`` and ``bench.load``. Whatever ends the run (its end,
an error, Ctrl-C, SIGTERM), a stack the harness started is stopped again, and
a stack someone else started is left running.
"""
from __future__ import annotations

import http.client
import json
import shutil
from contextlib import contextmanager
from urllib.parse import urlsplit

from servebench import interrupts, topology
from servebench import runtime as runtimes


def runnable_arches(runtime: str) -> tuple[list[str], dict[str, str]]:
    """Every architecture that can run here, and why the others cannot."""
    arches, skipped = [], {}
    for arch in topology.ARCHES:
        if (runtime == "native" and topology.BACKEND_OF[arch] == "tfserving"
                and not shutil.which("tensorflow_model_server")):
            skipped[arch] = ("no tensorflow_model_server on PATH (natively TF Serving is never substituted; "
                             "RUNTIME=docker runs the official image)")
        else:
            arches.append(arch)
    return arches, skipped


def running(runtime: str, run_dir=None):
    """The state of a stack whose services are alive, else None."""
    st = runtimes.get(runtime).state(run_dir)
    if st is None or not any(st.processes().values()):
        return None  # none, or a stale record of one that is gone (``up`` clears it)
    return st


@contextmanager
def stack_for(arch: str, runtime: str = "native", run_dir=None, log=print):
    """Yield ``(state, started)`` for ``arch``; bring it down afterwards if it was started here."""
    rt = runtimes.get(runtime)
    st = running(runtime, run_dir)
    started = False
    if st is not None:
        if st.arch != arch:
            raise rt.StackError(f"a {st.arch} stack is running ({runtime}), not {arch}: "
                                f"stop it first (`make down RUNTIME={runtime}`) or use ARCH={st.arch}")
        broken = {name: health for name, (health, _) in st.health().items() if health != "up"}
        if broken:
            what = ", ".join(f"{name} {health}" for name, health in broken.items())
            raise rt.StackError(f"the running {arch} stack is not whole ({what}): "
                                f"`make down RUNTIME={runtime}` and try again")
        log(f"using the running {arch} stack at {st.url}")
    else:
        log(f"starting {arch} ({runtime}) ...")
        st = rt.up(arch, None, run_dir)
        started = True
    try:
        yield st, started
    finally:
        if started:
            with interrupts.shielded():  # the stop always finishes; Ctrl-C again only hurries it
                log(f"stopping the {arch} stack it started ...")
                rt.down(run_dir)


def front_end_info(url: str, timeout_s: float = 5.0) -> dict:
    """What GET /v1/info answers through nginx (the front end's arch, settings and model)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
    try:
        conn.request("GET", "/v1/info")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return {"error": f"GET /v1/info answered {resp.status}"}
        return json.loads(body)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return {"error": f"GET /v1/info failed: {exc}"}
    finally:
        conn.close()


def stack_record(st) -> dict:
    """What a result records about the stack: URL, runtime, the knobs in force, /v1/info."""
    return {
        "url": st.url,
        "runtime": st.doc.get("runtime"),
        "started_utc": st.doc.get("started_utc"),
        "knobs": st.doc.get("knobs"),
        "services": sorted(st.doc.get("services", {})),
        "info": front_end_info(st.url),
    }


def sigterm_as_interrupt():
    """SIGTERM ends a run as Ctrl-C does (see :mod:`servebench.interrupts`)."""
    return interrupts.sigterm_as_interrupt()
