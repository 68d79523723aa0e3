"""Per-request cold starts (``SB_ENSEMBLE_IDLE_S``): the cold and warm latency of serial and parallel.

One stack per mode whose coordinator scales each member to zero after
:data:`IDLE_S` idle seconds (services/ensemble/scaling.py). After one untimed
request (a member's idle clock starts with its first call), each cycle waits
until the coordinator reports all three members stopped, sends one request
(cold: it starts the members it needs, serially one after another, in
parallel all at once, and pays their starts) and then :data:`WARM_PER_CYCLE`
requests straight after (warm). Latency is the client's, through nginx (raw
body, batch :data:`BATCH`); each member's start is the coordinator's
``start_ms`` (launch to healthy, its health polled every 0.2 s), from the
answer's Server-Timing.
"""
from __future__ import annotations

import json
import time
import urllib.request
from typing import Callable

from bench import client
from bench.options import StudyOptions
from bench.studies.ensemble.repeats import spread
from servebench.settings import Settings
from services.ensemble.members import MEMBERS

IDLE_S = 2.0
BATCH = 1
CYCLES, QUICK_CYCLES = 5, 3  # cold samples per mode
WARM_PER_CYCLE = 2  # warm samples per cycle: 10 per mode (quick: 6)
SCALE_WAIT_S = 60.0  # for the members to be stopped after the idle time
TIMEOUT_S = 300.0  # a cold request starts three TensorFlow processes
CONFIGS = (("serial", "ensemble-serial"), ("parallel", "ensemble-parallel"))


def configs(options: StudyOptions) -> list[tuple[str, str]]:
    return [c for c in CONFIGS if not options.arches or c[1] in options.arches]


def members_running(port: int) -> dict[str, bool]:
    """Each member's state as the coordinator reports it (its /v1/info, straight to its port)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/info", timeout=10) as resp:
        doc = json.loads(resp.read())
    return {name: bool(m.get("running", True)) for name, m in doc["members"].items()}


def wait_scaled_to_zero(port: int) -> float:
    """Seconds until every member is stopped; TimeoutError after :data:`SCALE_WAIT_S`."""
    start = time.monotonic()
    while any(members_running(port).values()):
        if time.monotonic() - start > SCALE_WAIT_S:
            raise TimeoutError(f"members still running {SCALE_WAIT_S:g} s after the last request "
                               f"(SB_ENSEMBLE_IDLE_S={IDLE_S:g})")
        time.sleep(0.1)
    return time.monotonic() - start


def sample(c: client.Client, req: client.Request) -> dict:
    r = c.exchange(c.connection(0), req, time.perf_counter())
    starts = {m: r.server_timing.get(f"start-{m}") for m in MEMBERS if f"start-{m}" in r.server_timing}
    return {"latency_ms": round(r.latency_ms, 3), "status": r.status, "correct": r.correct,
            "error": r.error or None, "start_ms": {m: round(v, 1) for m, v in starts.items()},
            "member_ms": {m: r.server_timing.get(f"member-{m}") for m in MEMBERS
                          if f"member-{m}" in r.server_timing}}


def measure(st, serving: Settings, options: StudyOptions, log: Callable = print) -> dict:
    """The cold and warm samples of one stack (its coordinator scales members to zero)."""
    from servebench import data

    cycles = QUICK_CYCLES if options.quick else CYCLES
    split = data.load_test(options.data_dir, limit=BATCH * (1 + cycles * (1 + WARM_PER_CYCLE)))
    requests = client.prepare(split.images, split.labels, BATCH, "raw")
    port = st.doc["services"]["ensemble"]["port"]
    c = client.Client(st.url, timeout_s=TIMEOUT_S)
    cold, warm, waits = [], [], []
    try:
        sample(c, requests[0])  # untimed: the idle clocks start
        nxt = 1
        for cycle in range(cycles):
            waits.append(round(wait_scaled_to_zero(port), 2))
            c.close()  # a new connection to nginx, as after any idle time
            cold.append(sample(c, requests[nxt]))
            nxt += 1
            for _ in range(WARM_PER_CYCLE):
                warm.append(sample(c, requests[nxt]))
                nxt += 1
            s = cold[-1]
            starts = ", ".join(f"{m} {v:.0f}" for m, v in s["start_ms"].items())
            warm_ms = ", ".join(f"{w['latency_ms']:.1f}" for w in warm[-WARM_PER_CYCLE:])
            log(f"  cycle {cycle + 1}: cold {s['latency_ms']:.0f} ms (starts {starts} ms), warm {warm_ms} ms")
    finally:
        c.close()
    return {"idle_s": IDLE_S, "batch": BATCH, "cold": summarise(cold), "warm": summarise(warm),
            "scaled_to_zero_after_s": spread(waits), "samples": {"cold": cold, "warm": warm},
            "how": "one request after every member was scaled to zero (cold), then "
                   f"{WARM_PER_CYCLE} straight after (warm), through nginx, one at a time"}


def summarise(samples: list[dict]) -> dict:
    ok = [s for s in samples if s["status"] == 200 and not s["error"]]
    out = {"latency_ms": spread([s["latency_ms"] for s in ok]), "requests": len(samples), "ok": len(ok),
           "correct": sum(s["correct"] for s in ok)}
    starts = {m: spread([s["start_ms"].get(m) for s in ok]) for m in MEMBERS}
    if any(starts.values()):
        out["start_ms"] = starts
        # What the request waited for starts: serially their sum, in parallel the longest.
        out["start_sum_ms"] = spread([sum(s["start_ms"].values()) for s in ok if s["start_ms"]])
        out["start_max_ms"] = spread([max(s["start_ms"].values()) for s in ok if s["start_ms"]])
    return out
