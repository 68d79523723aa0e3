"""The scale-out section: Ray Serve beside our best Python stacks and Triton at every concurrency, batching
off and on; Ray's CPU and memory per process group; replicas over one node and two; Ray's faults; what
locust's workers in another namespace cost; the node projection; the issue's goals; and the README's blocks.
Every figure is the median of its repeats with their min-max (:mod:`bench.studies.scale_out.measured`);
where a number is missing the row says "not measured".
"""
from __future__ import annotations

from bench.formats import significant
from bench.report import archs
from bench.report.runs import Run
from bench.report.sections import Context, Figure, Heading, Section, Text
from bench.report.tables import NOT_MEASURED, Cell, Table, missing, table
from bench.studies.saturation.headline import Spread, medians_of, spread
from bench.studies.scale_out import measured as m
from bench.studies.scale_out.figures import PLOTS, plot_ladder

STUDY = "scale-out"
MAKE = f"make study STUDY={STUDY}"
TARGET_RATES = (1000, 10000)  # images/s of the projection
UTILISATION = 0.7  # of each node's cores: headroom for bursts, as capacity plans keep


def show(s: Spread | None, fmt=significant) -> Cell | str:
    return s.cell(fmt) if s else missing()


def verdict(ok: bool | None) -> Cell:
    if ok is None:
        return missing()
    return Cell(m.MET) if ok else Cell(m.NOT_MET, cls="bad")


def section(ctx: Context) -> Section:
    t = m.cells(ctx.runs)
    intro = (f"Ray Serve (ARCH=rayserve: a real Ray cluster, head and worker nodes, in a network namespace of its "
             f"own, @serve.batch from SB_BATCH_MAX_SIZE) behind the same nginx → gunicorn → Django front end as "
             f"every stack, on the same work: raw bodies, one CIFAR-10 test image per request, closed loop, "
             f"answers checked. Each architecture runs one stack per batching mode (as the sweeps set them: off, or "
             f"SB_BATCH_MAX_SIZE 16 with no wait; 16 threads) and in it every concurrency, repeated; each run its "
             f"own record with CPU and memory per service, and Ray's per process group. All of it on one machine: "
             f"the \"nodes\" are Ray nodes sharing its cores ({MAKE}; knobs SB_SCALE_OUT_*).")
    if not t and not m.faults(ctx.runs) and not m.loads(ctx.runs):
        return Section("Scale-out: Ray Serve across nodes", [Text(intro), Text(f"{NOT_MEASURED}: no run yet ({MAKE}).")])
    blocks = [Text(intro), Heading(f"Goals, judged on {medians_of(c.throughput for c in t.values())}"),
              goals_table(ctx.runs, t), *[Text(w) for w in whys(t)],
              Heading("Each stack at its best level (raw bodies; median of repeats, min–max)"), stacks_table(t),
              Heading("Our best Python stack ÷ Ray Serve, images/s at each concurrency, same batching mode"),
              peers_table(t),
              Heading("CPU per image and memory per process group, at each stack's best level"), parts_table(t),
              Heading("Replicas and nodes (Ray Serve, batching on)"), placement_table(t),
              Heading("Faults under load (two closed-loop clients, every answer checked)"), faults_table(ctx.runs),
              Heading("Load generators on another host: locust's workers here and in a namespace over a veth"),
              load_table(ctx.runs),
              Heading("Nodes a target rate would need: a projection, not a measurement"), projection(t),
              Figure("scale_out_ladder", PLOTS["ladder"],
                     "Images/s and p50 against closed-loop concurrency; batching off dashed, on solid; each point "
                     "the median of its repeats with min–max bars. " + runs_span(t),
                     lambda path: plot_ladder(t, path))]
    return Section("Scale-out: Ray Serve across nodes, its faults, load from another host", blocks)


def runs_span(t: dict) -> str:
    ids = sorted(r.run_id for c in t.values() if c.shape == (1, 1) for r in c.runs)
    return f"Runs: the {len(ids)} ladder runs {ids[0]} to {ids[-1]} in results/." if ids else ""


# --------------------------------------------------------------------------- goals

def goal_rows(runs: list[Run], t: dict) -> list[dict]:
    rows = []
    faults = m.faults(runs)
    exposures = [r.get("exposure") for rs in faults.values() for r in rs if r.get("exposure")]
    outside = [x for e in exposures for x in e["outside"]]
    rows.append({"goal": "no Ray port outside loopback or link-local (ss, host and namespace, during a run)",
                 "target": "none", "measured": f"{len(outside)} outside, in {len(exposures)} checks"
                 + (f": {'; '.join(outside[:3])}" if outside else "") if exposures else None,
                 "ok": (not outside) if exposures else None})
    two = [r for r in faults.get("replica", []) + faults.get("node", []) if r.get("nodes") == 2]
    spread_nodes = [sorted({x["node"] for x in r.get("replicas_before") or []}) for r in two]
    rows.append({"goal": "replicas on both nodes with SB_RAY_NODES=2 (the GCS's actor table)", "target": "2 nodes",
                 "measured": f"{sum(len(n) == 2 for n in spread_nodes)} of {len(spread_nodes)} fault runs: "
                             + ", ".join(sorted({'+'.join(n) for n in spread_nodes})) if two else None,
                 "ok": all(len(n) == 2 for n in spread_nodes) if two else None})
    gain = m.batching_gain(t)
    rows.append({"goal": "Ray Serve: batching on ÷ off at saturation (each mode at its best level)",
                 "target": f"≥ {m.BATCHING_GOAL}x", "measured": f"{gain.value:.2f}x" if gain else None,
                 "ok": gain.value >= m.BATCHING_GOAL if gain else None})
    for mode in m.MODES:
        peers = m.peer_ratios(t, mode)
        low = {c: r for c, (_, r) in peers.items() if r.value < m.PEER_GOAL}
        rows.append({"goal": f"our best Python stack ≥ Ray Serve at every concurrency, batching {mode}",
                     "target": f"≥ {m.PEER_GOAL}x",
                     "measured": (f"{min(r.value for _, r in peers.values()):.2f}x at worst"
                                  + (f"; below at c={', '.join(str(c) for c in low)}" if low else "")) if peers else None,
                     "ok": (not low) if peers else None})
    nodes = faults.get("node", [])
    wrong = sum(int(r.get("wrong_answers") or 0) for r in nodes)
    back = spread(r.get("replicas_back_s") for r in nodes)
    rows.append({"goal": "worker node lost: wrong answers, and the recovery time reported", "target": "0 wrong",
                 "measured": f"{wrong} wrong in {sum(int(r.get('requests') or 0) for r in nodes)} requests; "
                             f"replicas back after {back.text(unit=' s') if back else 'not measured'}" if nodes else None,
                 "ok": wrong == 0 if nodes else None})
    return rows


def whys(t: dict) -> list[str]:
    """Why a goal on the ladder was missed, from the same runs: where the CPU went, and where a stack falls."""
    out = []
    gain, off, on = m.batching_gain(t), m.saturated(t, m.RAY, "off"), m.saturated(t, m.RAY, "on")
    if gain and gain.value < m.BATCHING_GOAL and off and on:
        a, b = m.cpu_split(off), m.cpu_split(on)
        if a and b:
            ceiling = m.batching_ceiling(a, b)
            out.append(
                f"Why batching gains Ray Serve {gain.value:.2f}x, not {m.BATCHING_GOAL}x: server CPU per image at each "
                f"mode's best level (c={off.concurrency} off, c={on.concurrency} on; medians, ms) went to the replicas "
                f"{a.replicas:.2f} → {b.replicas:.2f}, the rest of Ray (proxy, raylets, GCS, controller, agents) "
                f"{a.rest_of_ray:.2f} → {b.rest_of_ray:.2f}, and nginx with the Django front end {a.front:.2f} → "
                f"{b.front:.2f}" + (f"; mean batch {on.batch.median:.1f}" if on.batch else "") + ". Batching shrinks "
                f"only the replicas' share; the per-request hops stay. Were the replicas' CPU free, on ÷ off could "
                f"reach {ceiling:.2f}x at most on these 2 cores (CPU the only limit)."
                if ceiling else "")
    for mode in m.MODES:
        low = {c: (best, r) for c, (best, r) in m.peer_ratios(t, mode).items() if r.value < m.PEER_GOAL}
        for c, (best, r) in low.items():
            ray = m.ladder(t, m.RAY, mode)[c]
            out.append(f"Batching {mode}, c={c}: Ray Serve serves {ray.throughput.median:.0f} images/s, "
                       f"{archs.title(best.arch)} {best.throughput.median:.0f} ({r.value:.2f}x); server CPU per image "
                       f"{ray.server_cpu.median:.2f} against {best.server_cpu.median:.2f} ms. Why Ray Serve is ahead "
                       "here is not isolated: unexplained." if ray.server_cpu and best.server_cpu else "")
    for arch in m.arches_of(t):
        for mode in m.MODES:
            lad, best = m.ladder(t, arch, mode), m.saturated(t, arch, mode)
            top = lad.get(max(lad)) if lad else None
            if best and top and top.throughput and top.concurrency > best.concurrency \
                    and top.throughput.median < 0.5 * best.throughput.median:
                cores, busy = m.cores_of(top), m.busy_cores(top)
                idle = (f"; its server processes kept {busy:.2f} of the machine's {cores} cores busy there (CPU per "
                        f"image × images/s): requests waited rather than computed" if cores and busy is not None
                        else "")
                out.append(f"{archs.title(arch)}, batching {mode}, falls from {best.throughput.median:.0f} images/s "
                           f"at c={best.concurrency} to {top.throughput.median:.0f} at c={top.concurrency} (p50 "
                           f"{top.p50.median:.0f} ms there){idle}. More clients lose throughput instead of queueing "
                           "at the same rate. Unexplained: the cause is not isolated by these runs.")
    return [w for w in out if w]


def goals_table(runs: list[Run], t: dict) -> Table:
    return table(["goal", "target", "measured", "verdict"],
                 [[g["goal"], g["target"], g["measured"] or missing(), verdict(g["ok"])] for g in goal_rows(runs, t)])


# --------------------------------------------------------------------------- the stacks

def stacks_table(t: dict) -> Table:
    rows = []
    for arch in m.arches_of(t):
        for mode in m.MODES:
            one = m.ladder(t, arch, mode).get(1)
            best = m.saturated(t, arch, mode)
            if not one and not best:
                continue
            rows.append([archs.title(arch), mode, show(one.p50) if one else missing(),
                         show(best.throughput) if best else missing(), best.concurrency if best else missing(),
                         show(best.p99) if best else missing(), show(best.server_cpu) if best else missing(),
                         show(best.server_pss) if best else missing(), show(best.batch) if best and best.batch else "–",
                         (best or one).n])
    return table(["architecture", "batching", "p50 at c=1 (ms)", "best images/s", "at c", "p99 there (ms)",
                  "server CPU ms / image", "server PSS (MB)", "mean batch", "repeats"], rows)


def peers_table(t: dict) -> Table | Text:
    levels = sorted({k[3] for k in t if k[0] == m.RAY and k[2] == (1, 1)})
    rows = []
    for mode in m.MODES:
        peers = m.peer_ratios(t, mode)
        if peers:
            rows.append([mode] + [Cell(f"{peers[c][1].value:.2f}x {archs.title(peers[c][0].arch)}",
                                       cls="bad" if peers[c][1].value < m.PEER_GOAL else "")
                                  if c in peers else missing() for c in levels])
    if not rows:
        return Text(f"{NOT_MEASURED}: Ray Serve and a Python stack of ours on the ladder ({MAKE}).")
    return table(["batching"] + [f"c={c}" for c in levels], rows)


def parts_table(t: dict) -> Table | Text:
    rows = []
    for arch in m.arches_of(t):
        for mode in m.MODES:
            best = m.saturated(t, arch, mode)
            if not best:
                continue
            for name, (cpu, pss) in m.services(best).items():
                if arch == m.RAY and name == m.RAY:
                    for part, (pcpu, ppss) in m.parts(best).items():
                        rows.append([archs.title(arch), mode, best.concurrency, f"{name}: {part}", show(pcpu),
                                     show(ppss)])
                rows.append([archs.title(arch), mode, best.concurrency, name + (" (all)" if name == m.RAY else ""),
                             show(cpu), show(pss)])
    if not rows:
        return Text(f"{NOT_MEASURED} ({MAKE}).")
    return table(["architecture", "batching", "at c", "process group", "CPU ms / image", "mean PSS (MB)"], rows)


def placement_table(t: dict) -> Table | Text:
    def at(shape: tuple[int, int]) -> dict[int, m.Cell]:
        return {k[3]: c for k, c in t.items() if k[0] == m.RAY and k[1] == "on" and k[2] == shape}

    shapes = sorted({k[2] for k in t if k[0] == m.RAY and k[1] == "on"})
    if len(shapes) < 2:
        return Text(f"{NOT_MEASURED}: Ray Serve with more than one replica ({MAKE}).")
    # The placement stacks' highest level, and the single replica's run at that level (the ladder's).
    top = max(c for shape in shapes if shape != (1, 1) for c in at(shape))
    rows = []
    for shape in shapes:
        here = at(shape)
        sat, ref = here.get(top), at((1, 1)).get(top)
        gain = m.ratio(sat.throughput, ref.throughput) if sat and ref else None
        rows.append([f"{shape[0]} replica(s) on {shape[1]} node(s)", show(here[1].p50) if 1 in here else missing(),
                     top, show(sat.throughput) if sat else missing(),
                     f"{gain.value:.2f}x" if gain else missing(), show(sat.server_cpu) if sat else missing(),
                     show(sat.server_pss) if sat else missing(), sat.n if sat else missing()])
    return table(["Ray Serve", "p50 at c=1 (ms)", "at c", "images/s", "÷ 1 replica on 1 node", "server CPU ms / image",
                  "server PSS (MB)", "repeats"], rows)


def faults_table(runs: list[Run]) -> Table | Text:
    found = m.faults(runs)
    if not found:
        return Text(f"{NOT_MEASURED} ({MAKE}).")
    rows = []
    for fault, rs in found.items():
        rows.append([{"replica": "a replica SIGKILLed", "node": "the worker node's raylet SIGKILLed"}[fault], len(rs),
                     sum(int(r.get("requests") or 0) for r in rs), sum(int(r.get("failed") or 0) for r in rs),
                     sum(int(r.get("wrong_answers") or 0) for r in rs),
                     show(spread(r.get("error_window_s") for r in rs)), show(spread(r.get("recovered_s") for r in rs)),
                     show(spread(r.get("replicas_back_s") for r in rs)),
                     ", ".join(sorted({f"{x['replica'][:8]}…→{x['node']}" for r in rs
                                       for x in (r.get("replicas_after") or [])}))[:80] or "–"])
    return table(["fault", "runs", "requests", "failed", "wrong answers", "error window (s)",
                  "first good answer after the last failure (s)", "replicas back to their count (s)",
                  "replicas after (node)"], rows)


def load_table(runs: list[Run]) -> Table | Text:
    found = m.loads(runs)
    if not found:
        return Text(f"{NOT_MEASURED} ({MAKE}).")
    figs = {where: m.load_figures(rs) for where, rs in found.items()}
    rows = [[{"local": "this host", "netns": "a namespace over a veth (LOAD_HOSTS=netns)"}[w], len(found[w]),
             show(f["rps"]), show(f["p50"]), show(f["p99"]), show(f["failures"]), show(f["client_cpu"])]
            for w, f in figs.items()]
    if "local" in figs and "netns" in figs:
        r = m.ratio(figs["netns"]["rps"], figs["local"]["rps"])
        rows.append(["namespace ÷ here", "", f"{r.value:.3f}x" if r else missing(), "", "", "", ""])
    arch = next(iter(found.values()))[0].arch
    t = table(["locust workers", "runs", "requests/s", "p50 (ms)", "p99 (ms)", "failures", "client CPU ms / request"],
              rows)
    t.caption = f"{archs.title(arch)} stack, the same users and workers both ways, alternating"
    return t


def projection(t: dict) -> Table | Text:
    rows = []
    for arch in m.arches_of(t):
        for mode in m.MODES:
            best = m.saturated(t, arch, mode)
            if not best or not best.server_cpu:
                continue
            cores = m.cores_of(best)
            if not cores:
                continue
            rows.append([archs.title(arch), mode, f"{best.server_cpu.median:.2f}", cores,
                         *[m.nodes_needed(rate, best.server_cpu.median, cores, UTILISATION) for rate in TARGET_RATES]])
    if not rows:
        return Text(f"{NOT_MEASURED} ({MAKE}).")
    t_ = table(["architecture", "batching", "server CPU ms / image (median, at its best level)", "cores per node"]
               + [f"nodes for {rate:,} images/s" for rate in TARGET_RATES], rows)
    t_.caption = (f"nodes = ⌈rate × CPU per image ÷ (cores × {UTILISATION:.0%})⌉. Assumes: every node is this machine "
                  f"(same CPU model and cores) running a whole stack (nginx, the front end and the server), CPU is "
                  f"the only limit, the load spreads evenly, and the cost per image stays what it was at this "
                  f"machine's best level; the network, the load balancer in front and the load generators are left "
                  f"out. The placement table above measures what a second Ray node costs on the same cores.")
    return t_


# --------------------------------------------------------------------------- the README's blocks

def readme(ctx: Context) -> dict[str, str]:
    from bench.report.docs import md_table

    t = m.cells(ctx.runs)
    rows = [[g["goal"], g["target"], g["measured"] or NOT_MEASURED,
             {True: m.MET, False: m.NOT_MET, None: NOT_MEASURED}[g["ok"]]] for g in goal_rows(ctx.runs, t)]
    basis = medians_of(c.throughput for c in t.values())
    goals = (f"The issue's goals (`{MAKE}`, runs `results/*` of study {STUDY}; judged on {basis}):\n\n"
             + md_table(["goal", "target", "measured", "verdict"], rows)
             + "".join(f"\n\n{w}" for w in whys(t)))
    best = []
    for arch in m.arches_of(t):
        for mode in m.MODES:
            one, top = m.ladder(t, arch, mode).get(1), m.saturated(t, arch, mode)
            if one or top:
                best.append([archs.title(arch), mode, one.p50.cell(significant) if one and one.p50 else None,
                             top.throughput.cell(significant) if top and top.throughput else None,
                             top.concurrency if top else None,
                             top.server_cpu.cell(significant) if top and top.server_cpu else None])
    stacks = (f"Each stack at its best level on this machine ({basis}, min–max):\n\n"
              + md_table(["architecture", "batching", "p50 at c=1 (ms)", "best images/s", "at c",
                          "server CPU ms / image"], best)) if best else f"Not measured yet ({MAKE})."
    return {"scale-out-goals": goals, "scale-out-table": stacks}
