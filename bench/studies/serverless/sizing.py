"""memMin: the least memory on the price table's grid at which a stage completes without running out of memory.

Found by running, not guessed: start from the grid value just above the peak
memory measured at memMax, run the stage there (cold, as a fresh function of
that size would), go up one step at a time while it runs out of memory, and
confirm that the step below the answer really does run out (unless the answer is
the grid's bottom). Each probe is a real invocation on the same record.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from bench.studies.serverless.invokers import FunctionSpec, Invocation, Invoker


@dataclass
class Search:
    function: str
    mem_min_mb: int | None  # None: not even the grid's top completes
    probes: list[dict] = field(default_factory=list)  # (memory, ok, kind, peak) of every run


def mem_min(invoker: Invoker, spec: FunctionSpec, event: dict, grid: list[int], peak_mb: float,
            log=print) -> Search:
    """``peak_mb``: the stage's peak at memMax on this record (where to start)."""
    search = Search(spec.name, None)

    def probe(memory: int) -> Invocation:
        inv = invoker.invoke(FunctionSpec(spec.name, memory, spec.timeout_s), event)
        search.probes.append({"memory_mb": memory, "ok": inv.ok, "kind": inv.kind,
                              "peak_memory_mb": inv.peak_memory_mb, "duration_s": inv.duration_s})
        log(f"    {spec.name} at {memory} MB: {'ok' if inv.ok else inv.kind} (peak {inv.peak_memory_mb or 0:.0f} MB)")
        if not inv.ok and inv.kind != "out_of_memory":
            raise RuntimeError(f"memMin search of {spec.name}: {inv.kind}: {inv.error}")
        return inv

    i = min(bisect.bisect_left(grid, peak_mb), len(grid) - 1)
    while i < len(grid) and not probe(grid[i]).ok:
        i += 1
    if i == len(grid):
        return search
    # Confirm from below: step down while the smaller size still completes.
    while i > 0 and probe(grid[i - 1]).ok:
        i -= 1
    search.mem_min_mb = grid[i]
    return search
