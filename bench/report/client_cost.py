"""How much of the machine the load generator took: its share is flagged above 15%.

On a 2-core machine the client shares the cores with the stack it measures,
so CPU it uses is taken from the system under test. A bench or soak run's
share is its client's CPU seconds over (wall seconds x logical CPUs); a sweep
level's is the client's busy cores over the logical CPUs. Each run records
both figures, so the check needs no raw rows.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.report.runs import Run

LIMIT = 0.15  # of the machine's CPU


@dataclass(frozen=True)
class ClientShare:
    run_id: str
    where: str  # "whole run", or the sweep level
    share: float  # of the machine's CPU

    @property
    def flagged(self) -> bool:
        return self.share > LIMIT


def shares(run: Run) -> list[ClientShare]:
    """The client's share of the machine in ``run`` (one per sweep level; one for a bench or soak run)."""
    cpus = run.get("provenance", "machine", "logical_cpus")
    if not cpus:
        return []
    if run.kind == "sweep":
        out = []
        for mode, doc in (run.get("modes", default={}) or {}).items():
            for level in doc.get("levels") or []:
                busy = (level.get("cores_busy") or {}).get("client")
                if busy is not None:
                    load = (f"c={level['concurrency']}" if level.get("concurrency") is not None
                            else f"{level.get('rate') or level.get('target_rate') or '?'}/s")
                    out.append(ClientShare(run.run_id, f"batching {mode}, {load}", busy / cpus))
        return out
    cpu_s, wall_s = run.get("resources", "client", "cpu_seconds"), run.get("wall_s")
    if cpu_s is None or not wall_s:
        return []
    return [ClientShare(run.run_id, "whole run", cpu_s / (wall_s * cpus))]


def summary(runs: list[Run]) -> dict:
    """Every measured share, the flagged ones, and the largest."""
    every = [s for run in runs for s in shares(run)]
    flagged = [s for s in every if s.flagged]
    top = max(every, key=lambda s: s.share, default=None)
    return {"measured": len(every), "runs": len({s.run_id for s in every}), "flagged": flagged, "top": top}


def text(runs: list[Run]) -> str:
    """One paragraph for the report: how many measurements exceed the limit, and which."""
    s = summary(runs)
    if not s["measured"]:
        return "The load generator's CPU was not recorded by any run here."
    top = s["top"]
    head = (f"The load generator's share of the machine's CPU was measured {s['measured']} times in {s['runs']} runs "
            f"(largest {top.share:.0%}, {top.run_id}, {top.where}).")
    if not s["flagged"]:
        return head + f" None exceeds {LIMIT:.0%}."
    listed = "; ".join(f"{f.run_id} ({f.where}): {f.share:.0%}" for f in s["flagged"][:12])
    more = f"; and {len(s['flagged']) - 12} more" if len(s["flagged"]) > 12 else ""
    return (head + f" FLAGGED, above {LIMIT:.0%} (the client took that CPU from the stack it measured): "
            + listed + more + ".")
