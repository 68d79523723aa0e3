"""The stack under test: the running one, or one brought up for the run and down after it.

Shared by ``bench.run``, ``bench.load`` and ``bench.soak``. Whatever ends the run (its end,
an error, Ctrl-C, SIGTERM), a stack the harness started is stopped again, and
a stack someone else started is left running.
"""
from __future__ import annotations

import http.client
import json
import sys
from contextlib import contextmanager
from urllib.parse import urlsplit

from bench import workload
from servebench import data, interrupts, registry
from servebench import runtime as runtimes
from servebench.modelcard import CardError
from servebench.settings import Settings


def runnable_arches(runtime: str, arches=None) -> tuple[list[str], dict[str, str]]:
    """Which of ``arches`` (default: every registered one) can run here, and why the others cannot."""
    runnable, skipped = [], {}
    for arch in registry.names() if arches is None else arches:
        unmet = registry.get(arch).unmet(runtime)
        if unmet:
            skipped[arch] = " ".join(unmet)
        else:
            runnable.append(arch)
    return runnable, skipped


def running(runtime: str, run_dir=None):
    """The state of a stack whose services are alive, else None."""
    st = runtimes.get(runtime).state(run_dir=run_dir)
    if st is None or not any(st.processes().values()):
        return None  # none, or a stale record of one that is gone (``up`` clears it)
    return st


@contextmanager
def stack_for(arch: str, runtime: str = "native", run_dir=None, settings: Settings | None = None, log=print):
    """Yield ``(state, started)`` for ``arch``; bring it down afterwards if it was started here.

    ``settings`` are those of a stack started here; a running stack is used with its own.
    """
    rt = runtimes.get(runtime)
    st = running(runtime, run_dir)
    started = False
    if st is not None:
        if st.arch != arch:
            raise runtimes.StackError(f"a {st.arch} stack is running ({runtime}), not {arch}: "
                                f"stop it first (`make down RUNTIME={runtime}`) or use ARCH={st.arch}")
        broken = {name: health for name, (health, _) in st.health().items() if health != "up"}
        if broken:
            what = ", ".join(f"{name} {health}" for name, health in broken.items())
            raise runtimes.StackError(f"the running {arch} stack is not whole ({what}): "
                                f"`make down RUNTIME={runtime}` and try again")
        log(f"using the running {arch} stack at {st.url}")
    else:
        if settings is not None:  # a bad MODEL or DATA is one clear error, before any server starts
            workload.check(settings)
        log(f"starting {arch} ({runtime}) ...")
        st = rt.up(arch, settings, run_dir=run_dir, log=log)
        started = True
    try:
        yield st, started
    finally:
        if started:
            with interrupts.shielded():  # the stop always finishes; Ctrl-C again only hurries it
                log(f"stopping the {arch} stack it started ...")
                rt.down(run_dir=run_dir, log=log)


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


def server_info(st) -> tuple[dict, str]:
    """(the settings the stack shows, where they come from). Through nginx to the front end's /v1/info; an
    architecture without a front end (nginx routes only its own protocol): its model server's own /v1/info;
    failing that, the settings the harness started the stack with (the recorded knobs)."""
    from servebench import topology

    arch = registry.get(st.arch)
    if "frontend" in arch.services:
        return front_end_info(st.url), "GET /v1/info through nginx (the front end)"
    settings = st.knob_settings()
    for name in arch.services:
        svc = registry.service(name)
        if name == "nginx" or svc.health_path is None:
            continue  # a service without an HTTP port of its own has no /v1/info
        doc = front_end_info(f"http://127.0.0.1:{topology.port(svc, settings)}")
        if "error" not in doc:
            return doc, f"GET /v1/info of the {name} server (no front end)"
    return {"settings": settings.recorded()}, "the settings the harness started the stack with (no /v1/info)"


def stack_record(st) -> dict:
    """What a result records about the stack: URL, runtime, the knobs in force, its /v1/info (see server_info)."""
    info, source = server_info(st)
    return {
        "url": st.url,
        "runtime": st.doc.get("runtime"),
        "started_utc": st.doc.get("started_utc"),
        "knobs": st.doc.get("knobs"),
        "services": sorted(st.doc.get("services", {})),
        "info": info,
        "info_source": source,
    }


def sigterm_as_interrupt():
    """SIGTERM ends a run as Ctrl-C does (see :mod:`servebench.interrupts`)."""
    return interrupts.sigterm_as_interrupt()


def command(work, failures: tuple[type[Exception], ...] = (), prefix: str = ""):
    """Run ``work()`` as a harness command: ``(result, None)``, or ``(None, exit code)`` after saying why.

    SIGTERM counts as Ctrl-C (130); a missing dataset, or a model or data file that cannot run
    (:class:`~servebench.modelcard.CardError`: it names the file and the problem), is a usage error (2); a stack
    that cannot start, or one of ``failures``, is an error (1).
    """
    with sigterm_as_interrupt():
        try:
            return work(), None
        except KeyboardInterrupt:  # while a stack was starting or stopping
            print("\ninterrupted", file=sys.stderr)
            return None, 130
        except (data.DatasetError, CardError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None, 2
        except (runtimes.StackError, *failures) as exc:
            print(f"error: {prefix}{exc}", file=sys.stderr)
            return None, 1
