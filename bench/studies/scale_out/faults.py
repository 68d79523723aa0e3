"""Ray Serve's faults as runs of the study: a replica SIGKILLed, then a worker node's raylet SIGKILLed, each
under two closed-loop clients whose every answer is checked (:func:`services.rayserve.faults.run_fault` measures;
here each fault becomes a record, ``kind: "fault"``, with its stack and provenance).

The replica kills share one stack (each waits until the replicas are back to their count); a node kill leaves
the node dead, so each one gets a fresh stack.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.records import RunRecord
from bench.session import RunSession
from servebench.settings import Settings

FAULTS = ("replica", "node")
ARCH = "rayserve"
CLIENTS = 2
BEFORE_S = 3.0
TIMEOUT_S = 180.0


@dataclass(frozen=True)
class FaultPlan:
    """One planned fault (an experiment's options)."""

    fault: str
    repeat: int
    out: Path = Path("results")
    quick: bool = False
    arch: str = ARCH

    def __post_init__(self):
        if self.fault not in FAULTS:
            raise ValueError(f"fault is one of {FAULTS}, not {self.fault!r}")


def _print(doc: dict, run_dir: Path) -> None:
    print(f"  {doc['fault']}: {doc.get('killed')}; {doc.get('failed')} failed of {doc.get('requests')} requests, "
          f"{doc.get('wrong_answers')} wrong; error window {doc.get('error_window_s')} s, first good answer "
          f"{doc.get('recovered_s')} s, replicas back {doc.get('replicas_back_s')} s; results in {run_dir}")


def measure(st, plan: FaultPlan, reference, log: Callable = print) -> RunRecord:
    """One fault against the running stack ``st``, in a run session of its own."""
    from bench import target
    from services.rayserve import exposure, faults

    found: dict = {}
    header = {"kind": "fault", "study": "scale-out", "arch": ARCH, "runtime": st.doc.get("runtime"),
              "settings": {"fault": plan.fault, "repeat": plan.repeat, "clients": CLIENTS, "before_s": BEFORE_S,
                           "timeout_s": TIMEOUT_S},
              "stack": target.stack_record(st)}
    session = RunSession(header=header, summary=lambda interrupted: dict(found), table=_print,
                         label=f"fault-{plan.fault}-{ARCH}", root=plan.out)
    with session:
        images, classes = reference
        # Where the cluster listens, with every node up and the load about to start (ss, host and namespace).
        found["exposure"] = exposure.check(faults.cluster_status(st)["namespace"], st.pids()[ARCH])
        found.update(faults.run_fault(st, plan.fault, images, classes, clients=CLIENTS, before_s=BEFORE_S,
                                      timeout_s=TIMEOUT_S, log=log))
    return session.record


def wait_for_target(st, timeout_s: float = TIMEOUT_S) -> None:
    """Until the replicas are back to their count, all alive (the previous kill's successor has started)."""
    import time

    from services.rayserve import faults

    deadline = time.monotonic() + timeout_s
    while not faults.back_to_target(faults.cluster_status(st), st.knob_settings().ray_replicas):
        if time.monotonic() > deadline:
            raise faults.FaultError(f"the replicas did not come back to {st.knob_settings().ray_replicas} "
                                    f"within {timeout_s:.0f} s")
        time.sleep(1.0)


def run_all(plans: list[FaultPlan], settings: Settings, options, log: Callable = print) -> list[RunRecord]:
    """The replica kills in one stack, then each node kill in a fresh one; stops after an interrupted run."""
    from servebench import interrupts
    from servebench import runtime as runtimes
    from services.rayserve import faults

    rt = runtimes.get(options.runtime)
    reference = faults.reference(settings)
    done: list[RunRecord] = []
    groups = [[p for p in plans if p.fault == "replica"]] + [[p] for p in plans if p.fault == "node"]
    for group in (g for g in groups if g):
        st = rt.up(ARCH, settings, run_dir=options.run_dir, log=log)
        try:
            for plan in group:
                log(f"\n== {ARCH}: {plan.fault} killed under load, repeat {plan.repeat}")
                wait_for_target(st)
                done.append(measure(st, plan, reference, log))
                if done[-1].interrupted:
                    return done
        finally:
            with interrupts.shielded():
                rt.down(run_dir=options.run_dir, log=log)
    return done
