"""The saturation study's figures as measured: which sweep and curve runs count, their levels, and each goal
of the issue computed from them (None where something was not measured).

Used by the section (:mod:`bench.studies.saturation.report`) and its plots
(:mod:`bench.studies.saturation.figures`).
"""
from __future__ import annotations

from bench import provenance
from bench.formats import number
from bench.report import archs
from bench.report.runs import Run, dig
from servebench import registry

MODES = ("off", "on")
TRITON = "triton"
NOT_PYTHON = ("triton", "tfserving")  # services that are not a Python server of ours
ROLES = ("nginx", "frontend", "backend")
# The issue's goals (benchmarks, not timed tests).
GOALS = {"batching_best": 1.3, "batching_python": 1.2, "efficiency_best": 0.50, "efficiency_python": 0.35,
         "p50_c1_ms": 0.5, "python_vs_triton": 1.0}
MET, NOT_MET = "met", "not met"
STUDY = "saturation"


# --------------------------------------------------------------------------- which runs

def machine_key(run: Run) -> tuple:
    return provenance.same_machine_key(run.record.provenance.machine or {})


def on_study_machine(runs: list[Run]) -> list[Run]:
    """The runs of the machine the study's headline ran on (its newest headline run's; else the newest sweep's):
    one section never puts two machines' figures side by side (a sweep made elsewhere, e.g. for the advisor,
    stays out)."""
    headline_runs = [r for r in runs if r.kind == "bench" and r.record.study == STUDY and not r.interrupted]
    anchor = max(headline_runs or [r for r in runs if r.kind == "sweep" and not r.interrupted],
                 key=lambda r: r.newest_key, default=None)
    if anchor is None:
        return runs
    key = machine_key(anchor)
    return [r for r in runs if machine_key(r) == key]


def sweep_runs(runs: list[Run]) -> dict[str, Run]:
    """arch -> its newest complete sweep run of the study's machine, in registry order."""
    newest: dict[str, Run] = {}
    for run in on_study_machine(runs):
        if run.kind == "sweep" and not run.interrupted and run.arch:
            if run.arch not in newest or run.newest_key > newest[run.arch].newest_key:
                newest[run.arch] = run
    return dict(sorted(newest.items(), key=lambda kv: archs.order(kv[0])))


def curve_run(runs: list[Run]) -> Run | None:
    done = [r for r in on_study_machine(runs) if r.kind == "model-curve" and not r.interrupted]
    return max(done, key=lambda r: r.newest_key) if done else None


def is_python(arch: str) -> bool:
    """One of our Python servers (embedded, Flask, FastAPI), not Triton or TF Serving."""
    try:
        services = registry.get(arch).services
    except ValueError:
        return False
    return not any(s in NOT_PYTHON for s in services)


def levels(run: Run, mode: str, kind: str | None = None) -> list[dict]:
    found = run.get("modes", mode, "levels", default=[]) or []
    return [lv for lv in found if isinstance(lv, dict) and (kind is None or lv.get("mode") == kind)]


def saturated(run: Run, mode: str) -> dict | None:
    sat = run.get("modes", mode, "saturation")
    return sat if isinstance(sat, dict) and number(sat.get("throughput_images_per_s")) else None


def at_concurrency(run: Run, mode: str, c: int) -> dict | None:
    for lv in levels(run, mode, "closed"):
        if lv.get("concurrency") == c and number(lv.get("throughput_images_per_s")):
            return lv
    return None


def limit_of(sweeps: dict[str, Run], curve: Run | None) -> tuple[float | None, float | None, str]:
    """(in-process limit images/s, CPU bound images/s, the run it comes from): the newest curve, else a sweep's."""
    for source in ([curve] if curve else []) + list(sweeps.values()):
        lim = source.get("limit")
        if isinstance(lim, dict) and number(lim.get("images_per_s")):
            return number(lim["images_per_s"]), number(lim.get("cpu_bound_images_per_s")), source.run_id
    return None, None, ""


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None



# --------------------------------------------------------------------------- the goals

def batching_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Per architecture: saturated throughput off and on and their ratio."""
    rows = []
    for arch, run in sweeps.items():
        off, on = saturated(run, "off"), saturated(run, "on")
        rows.append({"arch": arch, "run": run, "off": off, "on": on, "python": is_python(arch),
                     "ratio": ratio(number(dig(on, "throughput_images_per_s")),
                                    number(dig(off, "throughput_images_per_s")))})
    return rows


def efficiency_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Per architecture and batching mode, at saturation: the CPU budget of one image."""
    rows = []
    for arch, run in sweeps.items():
        for mode in MODES:
            sat = saturated(run, mode)
            if sat is None:
                continue
            per = sat.get("cpu_ms_per_image") or {}
            roles = {r: 0.0 for r in ROLES}
            for service, ms in per.items():
                role = service if service in ("nginx", "frontend", "client") else "backend"
                if role in roles and number(ms) is not None:
                    roles[role] += number(ms)
            rows.append({"arch": arch, "mode": mode, "run": run, "codec": run.codec, "sat": sat, "roles": roles,
                         "client": number(sat.get("client_cpu_ms_per_image")),
                         "server": number(sat.get("server_cpu_ms_per_image")),
                         "model": number(sat.get("model_cpu_ms_per_image")),
                         "efficiency": number(sat.get("server_efficiency")),
                         "served": number(sat.get("served_fraction")),
                         "batch": number(dig(sat, "batch_size", "mean"))})
    return rows


def p50_c1_rows(sweeps: dict[str, Run]) -> list[dict]:
    rows = []
    for arch, run in sweeps.items():
        off, on = at_concurrency(run, "off", 1), at_concurrency(run, "on", 1)
        p_off, p_on = number(dig(off, "p50_ms")), number(dig(on, "p50_ms"))
        rows.append({"arch": arch, "off": p_off, "on": p_on,
                     "diff": p_on - p_off if p_on is not None and p_off is not None else None})
    return rows


def triton_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Per batching mode and concurrency both measured: the best Python stack's throughput over Triton's."""
    triton = sweeps.get(TRITON)
    if triton is None:
        return []
    rows = []
    for mode in MODES:
        for lv in levels(triton, mode, "closed"):
            c, t = lv.get("concurrency"), number(lv.get("throughput_images_per_s"))
            best = None
            for arch, run in sweeps.items():
                if not is_python(arch):
                    continue
                mine = number(dig(at_concurrency(run, mode, c), "throughput_images_per_s"))
                if mine and (best is None or mine > best[1]):
                    best = (arch, mine)
            if t and best:
                rows.append({"mode": mode, "concurrency": c, "arch": best[0], "python": best[1], "triton": t,
                             "ratio": best[1] / t})
    return rows


def goal_rows(sweeps: dict[str, Run]) -> list[dict]:
    """Each goal of the issue with what was measured and whether it is met (None: not measured)."""
    out = []
    batching = [r for r in batching_rows(sweeps) if r["ratio"]]
    if batching:
        best = max(batching, key=lambda r: number(dig(r["on"], "throughput_images_per_s")) or 0)
        out.append({"goal": "batching on ÷ off at saturation, best architecture",
                    "target": f"≥ {GOALS['batching_best']}×",
                    "measured": f"{best['ratio']:.3f}× ({archs.title(best['arch'])})",
                    "ok": best["ratio"] >= GOALS["batching_best"]})
    else:
        out.append({"goal": "batching on ÷ off at saturation, best architecture",
                    "target": f"≥ {GOALS['batching_best']}×", "measured": None, "ok": None})
    python = [r for r in batching if r["python"]]
    worst = min(python, key=lambda r: r["ratio"]) if python else None
    out.append({"goal": "batching on ÷ off at saturation, every Python architecture",
                "target": f"≥ {GOALS['batching_python']}×",
                "measured": f"lowest {worst['ratio']:.3f}× ({archs.title(worst['arch'])})" if worst else None,
                "ok": worst["ratio"] >= GOALS["batching_python"] if worst else None})

    eff = [r for r in efficiency_rows(sweeps) if r["mode"] == "on" and r["efficiency"] and r["codec"] == "raw"]
    best_e = max(eff, key=lambda r: r["efficiency"]) if eff else None
    out.append({"goal": "server efficiency with batching at saturation (raw), best architecture",
                "target": f"≥ {GOALS['efficiency_best']:.0%}",
                "measured": f"{best_e['efficiency']:.0%} ({archs.title(best_e['arch'])})" if best_e else None,
                "ok": best_e["efficiency"] >= GOALS["efficiency_best"] if best_e else None})
    py_e = [r for r in eff if is_python(r["arch"])]
    worst_e = min(py_e, key=lambda r: r["efficiency"]) if py_e else None
    out.append({"goal": "server efficiency with batching at saturation (raw), every Python architecture",
                "target": f"≥ {GOALS['efficiency_python']:.0%}",
                "measured": f"lowest {worst_e['efficiency']:.0%} ({archs.title(worst_e['arch'])})" if worst_e else None,
                "ok": worst_e["efficiency"] >= GOALS["efficiency_python"] if worst_e else None})

    p50 = [r for r in p50_c1_rows(sweeps) if r["diff"] is not None]
    worst_p = max(p50, key=lambda r: r["diff"]) if p50 else None
    out.append({"goal": "p50 at concurrency 1, batching on − off (every architecture)",
                "target": f"≤ +{GOALS['p50_c1_ms']} ms",
                "measured": f"largest {worst_p['diff']:+.2f} ms ({archs.title(worst_p['arch'])})" if worst_p else None,
                "ok": worst_p["diff"] <= GOALS["p50_c1_ms"] if worst_p else None})

    tr = triton_rows(sweeps)
    worst_t = min(tr, key=lambda r: r["ratio"]) if tr else None
    out.append({"goal": "best Python stack ÷ Triton throughput, at every concurrency",
                "target": f"≥ {GOALS['python_vs_triton']:.1f}×",
                "measured": (f"lowest {worst_t['ratio']:.2f}× (concurrency {worst_t['concurrency']}, batching "
                             f"{worst_t['mode']}, {archs.title(worst_t['arch'])})") if worst_t else None,
                "ok": worst_t["ratio"] >= GOALS["python_vs_triton"] if worst_t else None})
    return out


def label(run: Run, sweeps: dict[str, Run]) -> str:
    """The architecture's title, with runtime and client when they differ across the sweeps shown."""
    extra = []
    if len({r.runtime for r in sweeps.values()}) > 1:
        extra.append(run.runtime or "?")
    if len({r.get("client") for r in sweeps.values()}) > 1:
        extra.append(str(run.get("client")))
    return archs.title(run.arch) + (f" ({', '.join(extra)})" if extra else "")

