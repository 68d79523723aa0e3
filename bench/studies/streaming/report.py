"""The streaming study's section: time per image beside the study's table, the goals (stream-tcp as it is, and
with server-side batching), latency against offered
frame rate per transport, where the per-request baseline loses its time, the round trips over a delayed link
(:mod:`bench.studies.streaming.round_trips`), and a per-frame latency timeline.

Repeated streams are one row per pass; a table cell or a sentence quotes their median with min-max and n
(:mod:`bench.studies.streaming.passes`), or says "one run"."""
from __future__ import annotations

import csv
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from bench.formats import significant  # noqa: E402
from bench.report import plots  # noqa: E402
from bench.report.docs import dataset_note  # noqa: E402
from bench.report.runs import Run  # noqa: E402
from bench.report.sections import Answer, Context, Figure, Heading, Section, Text  # noqa: E402
from bench.report.tables import published as as_printed, table  # noqa: E402
from bench.studies.streaming import published, round_trips  # noqa: E402
from bench.studies.streaming.passes import Cell, cell, cells, rows_of, sample_note  # noqa: E402

STUDY = "streaming"
TRANSPORT_TITLES = {"inprocess": "in process (no server)", "tcp": "stream-tcp", "ws": "stream-ws",
                    "grpc": "stream-grpc", "http": "HTTP, keep-alive (fastapi)",
                    "http-new": "HTTP, new connection per frame (fastapi)"}
TIMING_ONLY = " (timing only: random weights)"


def latest(ctx: Context) -> Run | None:
    runs = [r for r in ctx.runs if r.kind == "streaming"]
    return runs[-1] if runs else None


def _f(v, digits=3):
    return "not measured" if v is None else significant(v) if isinstance(v, float) else str(v)


def headline(run: Run, transport: str, rate) -> Cell | None:
    """A headline stream's passes: CIFAR CNN, raw frames, in process or on loopback."""
    group = "inprocess" if transport == "inprocess" else "loopback"
    return cell(run, group=group, transport=transport, rate=rate, model="cifar", encoding="raw")


def batched(run: Run, rate) -> Cell | None:
    """The batched stream-tcp variant's passes (group ``batched``): CIFAR CNN, raw frames, loopback."""
    return cell(run, group="batched", transport="tcp", rate=rate, model="cifar", encoding="raw")


BATCHED_RATIO = 1.0  # the batched stream against the model in process at batch 1, as fast as possible
P99_MARGIN_MS = 2.0  # the most p99 at 30 frames/s may exceed the in-process p99


def batch_label(c: Cell) -> str:
    """'batch 8, timeout 0 ms (mean 3.9)': the variant's SB_BATCH_MAX_SIZE, SB_BATCH_TIMEOUT_MS and the median of
    its passes' mean batch."""
    mean, timeout = c.median("mean_batch"), c.first.get("batch_timeout_ms")
    return (f"batch {c.first.get('batch_max_size')}" + (f", timeout {timeout:g} ms" if timeout is not None else "")
            + (f" (mean {mean:.1f})" if mean is not None else ""))


def batched_goal(run: Run) -> tuple[list[list], str]:
    """stream-tcp with batching on against the model in process at batch 1 (same run, medians of the passes):
    throughput with the window's frames in flight >= BATCHED_RATIO of it, p99 at 30 frames/s within
    P99_MARGIN_MS; batching off's passes beside it."""
    out, verdicts = [], []
    for key, rate, what in (("fps", None, "throughput, as fast as possible (frames/s)"),
                            ("p99_ms", 30, "p99 latency at 30 frames/s (ms)")):
        ip, off, on = headline(run, "inprocess", rate), headline(run, "tcp", rate), batched(run, rate)
        if not (ip and on and ip.values(key) and on.values(key)):
            continue
        if key == "fps":
            ratio = on.median(key) / ip.median(key)
            ok, diff = ratio >= BATCHED_RATIO, f"ratio of the medians {ratio:.3f} (goal >= {BATCHED_RATIO:.2f})"
        else:
            gap = on.median(key) - ip.median(key)
            ok, diff = gap <= P99_MARGIN_MS, f"medians {gap:+.2f} ms apart (goal <= +{P99_MARGIN_MS:g} ms)"
        verdicts.append(ok)
        out.append([what, ip.shown(key), off.shown(key) if off else "not measured", on.shown(key), batch_label(on),
                    diff, "met" if ok else "NOT met"])
    return out, ("met" if verdicts and all(verdicts) else "not met" if verdicts else "not measured")


def transport_title(row: dict) -> str:
    """A row's transport, with its batch when batching was on."""
    title = TRANSPORT_TITLES.get(row["transport"], row["transport"])
    return title + (f", batching {row['batch_max_size']}" if (row.get("batch_max_size") or 1) > 1 else "")


def goal(run: Run) -> tuple[list[list], str]:
    """Throughput as fast as possible and p99 at 30 fps: stream-tcp against in process, same run, judged on the
    medians of the passes."""
    ip_fast, ip_30 = headline(run, "inprocess", None), headline(run, "inprocess", 30)
    tcp_fast, tcp_30 = headline(run, "tcp", None), headline(run, "tcp", 30)
    out, verdicts = [], []
    if ip_fast and tcp_fast and ip_fast.values("fps") and tcp_fast.values("fps"):
        ratio = tcp_fast.median("fps") / ip_fast.median("fps")
        ok = ratio >= 0.9
        verdicts.append(ok)
        out.append(["throughput, batch 1, as fast as possible (frames/s)", ip_fast.shown("fps"),
                    tcp_fast.shown("fps"), f"ratio of the medians {ratio:.3f} (goal >= 0.90)",
                    "met" if ok else "NOT met"])
    if ip_30 and tcp_30 and ip_30.values("p99_ms") and tcp_30.values("p99_ms"):
        diff = tcp_30.median("p99_ms") - ip_30.median("p99_ms")
        ok = diff <= 2.0
        verdicts.append(ok)
        out.append(["p99 latency at 30 frames/s (ms)", ip_30.shown("p99_ms"), tcp_30.shown("p99_ms"),
                    f"medians {diff:+.2f} ms apart (goal <= +2 ms)", "met" if ok else "NOT met"])
    return out, ("met" if verdicts and all(verdicts) else "not met" if verdicts else "not measured")


def draw_rates(run: Run, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for transport, title in TRANSPORT_TITLES.items():
        pts = sorted((c.first["rate"], c.median("p50_ms"), c.median("p99_ms"))  # a repeated rate: its medians
                     for c in cells(run, transport=transport, model="cifar", encoding="raw")
                     if c.first.get("rate") and c.first.get("group") in ("loopback", "inprocess")
                     and c.values("p50_ms") and c.values("p99_ms"))
        if pts:
            xs, p50, p99 = zip(*pts)
            line, = ax.plot(xs, p50, marker="o", label=f"{title} p50")
            ax.plot(xs, p99, marker="x", linestyle="--", color=line.get_color(), label=f"{title} p99")
    ax.set_xlabel("offered frames/s")
    ax.set_ylabel("latency from capture (ms)")
    ax.set_yscale("log")
    ys = [y for ln in ax.get_lines() for y in ln.get_ydata()]
    if ys:  # plain numbers at 1-2-5 steps: a log axis over one decade would show one label
        ax.set_yticks([t for t in (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000)
                       if min(ys) / 1.5 <= t <= max(ys) * 1.5])
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title("Latency against offered frame rate (CIFAR-10 CNN, raw frames, loopback; repeated rates: "
                 "medians)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the lines, not over them
    return plots.save(fig, path, dpi=110, tight=True)


def draw_timeline(run: Run, path: Path) -> Path:
    series: dict[str, list[tuple[float, float]]] = {}
    f = run.path / "timeline.csv"
    if f.is_file():
        with f.open() as fh:
            for row in csv.DictReader(fh):
                if row["latency_ms"]:
                    series.setdefault(row["run"], []).append((float(row["capture_s"]), float(row["latency_ms"])))
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, pts in series.items():
        xs, ys = zip(*sorted(pts))
        ax.plot(xs, ys, linewidth=0.8, label=TRANSPORT_TITLES.get(name, name))
    ax.set_xlabel("capture time (s from the stream's start)")
    ax.set_ylabel("latency from capture (ms)")
    ax.set_yscale("log")
    ax.set_title("Per-frame latency at 30 frames/s (CIFAR-10 CNN, raw, loopback)")
    ax.legend(fontsize=7)
    return plots.save(fig, path, dpi=110, tight=True)


def answer(ctx: Context) -> Answer | None:
    """stream-tcp against the model in process (the goal), and against one HTTP request per frame."""
    run = latest(ctx)
    if run is None:
        return None
    parts = []
    ip_fast, tcp_fast = headline(run, "inprocess", None), headline(run, "tcp", None)
    if ip_fast and tcp_fast and ip_fast.values("fps") and tcp_fast.values("fps"):
        parts.append(f"Over loopback, stream-tcp serves {_f(tcp_fast.median('fps'))} frames/s against "
                     f"{_f(ip_fast.median('fps'))} in process ({tcp_fast.median('fps') / ip_fast.median('fps'):.4f} "
                     f"of it; {sample_note(tcp_fast)})")
    ip_30, tcp_30, http_30 = headline(run, "inprocess", 30), headline(run, "tcp", 30), headline(run, "http", 30)
    if tcp_30 and http_30 and tcp_30.values("p50_ms") and http_30.values("p50_ms"):
        parts.append(f"at 30 frames/s its p50 is {_f(tcp_30.median('p50_ms'))} ms against "
                     f"{_f(http_30.median('p50_ms'))} ms for one HTTP request per frame")
    if ip_30 and tcp_30 and ip_30.values("p99_ms") and tcp_30.values("p99_ms"):
        parts.append(f"its p99 {_f(tcp_30.median('p99_ms'))} ms against {_f(ip_30.median('p99_ms'))} ms in process")
    if not parts:
        return None
    text = "; ".join(parts) + f". Goal (≥ 0.90 of in process, p99 ≤ +2 ms): {goal(run)[1]}."
    on_fast = batched(run, None)
    if on_fast and ip_fast and on_fast.values("fps") and ip_fast.values("fps"):
        text += (f" Batching its window ({batch_label(on_fast)}), stream-tcp serves {_f(on_fast.median('fps'))} "
                 f"frames/s ({on_fast.median('fps') / ip_fast.median('fps'):.3f}x in process at batch 1; goal "
                 f"≥ {BATCHED_RATIO:.1f}x, p99 ≤ +{P99_MARGIN_MS:g} ms: {batched_goal(run)[1]}).")
    delayed = round_trips.answer_part(run)
    if delayed:
        text += f" {delayed[0].upper()}{delayed[1:]}."
    return Answer(text, "streaming-rates.png")


TITLE = "A streaming inference server: frames over one connection versus one request per image"


def section(ctx: Context) -> Section:
    run = latest(ctx)
    if run is None:
        return Section(TITLE, [Text("No streaming run yet: make study STUDY=streaming.")])
    s = Section(TITLE)
    prov = run.get("provenance", "machine", default={}) or {}
    repeats = run.get("settings", "repeats")
    s.blocks.append(Text(
        f"Run {run.run_id} ({'quick' if run.get('settings', 'quick') else 'full'}): window "
        f"{run.get('settings', 'window')}, drop policy {run.get('settings', 'drop')}, JPEG quality "
        f"{run.get('settings', 'jpeg_quality')}, {run.get('settings', 'intra_op_threads')} intra-op thread(s). "
        f"Machine: {prov.get('cpu_count', prov.get('logical_cpus', '?'))} CPUs"
        + (f", load average {prov['load_average_1m']:g} as the run began" if prov.get("load_average_1m") is not None
           else "") + ". Latency runs from each frame's "
        "capture time (its scheduled slot), so a frame that waited for the window counts that wait. "
        + (f"The headline streams ran {repeats} passes each: their cells give the median with min-max and n; a "
           "cell that ran once says one run. " if repeats else "Every stream ran once (one run). ")
        + "YOLO v3 tiny rows use its layer structure with random weights: timing only. netem is not in this "
        "kernel: the shaped link of the link rows limits the rate (tc tbf) and adds no delay; the round-trip rows' "
        "delay comes from a userspace delay element (below)."))

    s.blocks.append(Heading("Goal: stream-tcp against the model in process (same run)"))
    goal_rows, verdict = goal(run)
    if goal_rows:
        s.blocks.append(table(["measure", "in process", "stream-tcp", "difference", "verdict"], goal_rows))
    s.blocks.append(Text(f"Goal {verdict} (judged on the medians)."))

    s.blocks.append(Heading("Goal with batching: stream-tcp batching its window against the model in process"))
    b_rows, b_verdict = batched_goal(run)
    if b_rows:
        s.blocks.append(table(["measure", "in process (batch 1)", "stream-tcp, batching off", "stream-tcp, batching on",
                               "batch", "batching on against in process", "verdict"], b_rows))
    s.blocks.append(Text(
        f"Goal with batching {b_verdict} (judged on the medians; goal: at least {BATCHED_RATIO:.2f}x the "
        f"in-process batch-1 rate with the window's frames in flight, p99 at 30 frames/s at most "
        f"+{P99_MARGIN_MS:g} ms). The batched variant is stream-tcp with SB_BATCH_MAX_SIZE and SB_BATCH_TIMEOUT_MS "
        "from SB_STREAMING_BATCH_SIZE and SB_STREAMING_BATCH_TIMEOUT_MS, on a stack of its own in the same run; "
        "mean batch: frames per model call of its passes (the server's counters)."))

    s.blocks.append(Heading("Time per image: the study's machines and ours"))
    tpi = [[f"{m} (published)", what, as_printed(sec), "", ""] for m, what, sec in published.TIME_PER_IMAGE_S]
    for c in cells(run):
        r = c.first
        if not c.values("time_per_image_s") or r.get("link_mbit"):
            continue
        model = "YOLO v3 tiny layers" + TIMING_ONLY if r["model"] == "yolo-tiny" else "CIFAR-10 CNN"
        cpus = f"{r['cpus']:g} CPU quota" if r.get("cpus") else "no quota"
        tpi.append([f"here: {transport_title(r)}", f"{model}, {r['encoding']}",
                    c.shown("time_per_image_s", lambda v: f"{v:.4g}"), cpus, c.shown("p50_ms")])
    s.blocks.append(table(["machine / transport", "model", "s per image", "model process CPU", "p50 ms"], tpi))
    s.blocks.append(Text("Source: " + published.SOURCE + ". Their t2.micro row is YOLO v3 tiny on a CPU; our "
                         "quota rows run the same layer structure under a cgroup CPU quota (timing only)."))

    s.blocks.append(Heading("Every stream"))
    cols = ["transport", "model", "enc", "offered fps", "CPU quota", "link", "passes", "answered", "fps", "p50 ms",
            "p90 ms", "p99 ms", "jitter ms", "missed interval", "missed 100 ms", "dropped", "B/frame up",
            "wire B/frame", "server decode ms", "server model ms", "accuracy"]
    body = []
    for c in cells(run):
        r = c.first
        link = (f"{r['link_mbit']:g} Mbit/s" + (f", {r['rtt_ms']:g} ms RTT" if r.get("rtt_ms") is not None else "")
                if r.get("link_mbit") else "loopback")
        med = c.median
        body.append([transport_title(r),
                     r["model"] + (" (timing only)" if r.get("timing_only") else ""), r["encoding"],
                     _f(r.get("rate")) if r.get("rate") else "max", _f(r.get("cpus")) if r.get("cpus") else "-",
                     link, str(c.n), f"{sum(x['answered'] for x in c.rows)}/{sum(x['frames'] for x in c.rows)}",
                     c.shown("fps", n=False), c.shown("p50_ms", n=False), _f(med("latency_ms.p90")),
                     c.shown("p99_ms", n=False), _f(med("jitter_ms")), _f(med("missed_interval")),
                     _f(med("missed_deadline")), _f(med("dropped")), _f(med("bytes_up_per_frame")),
                     _f(med("wire_bytes_per_frame")), _f(med("server_ms.decode")), _f(med("server_ms.model")),
                     _f(med("accuracy"))])
    s.blocks.append(table(cols, body))
    s.blocks.append(Text("A stream with several passes shows the median (min-max) of its fps, p50 and p99 and the "
                         "median of the rest; answered counts every pass's frames. " + dataset_note()))

    s.blocks.append(Heading("Where the per-request baseline loses its time"))
    loss = []
    for transport in ("inprocess", "tcp", "http", "http-new"):
        c = headline(run, transport, 30)
        if c is None:
            continue
        p50, model_ms = c.median("p50_ms"), c.median("server_ms.model")
        loss.append([TRANSPORT_TITLES[transport], str(c.n), _f(p50), _f(model_ms),
                     _f(p50 - model_ms if p50 is not None and model_ms is not None else None),
                     _f(c.median("resources.nginx.cpu_seconds_per_image"), 4),
                     _f(statistics.median(sums) if (sums := [sum(v.get("cpu_seconds_per_image") or 0 for k, v in
                                                                 (r.get("resources") or {}).items() if k != "client")
                                                             for r in c.rows]) and any(sums) else None, 4)])
    if loss:
        s.blocks.append(table(["transport at 30 frames/s", "passes", "p50 ms", "model ms (server's)",
                               "p50 outside the model", "nginx CPU-s per frame", "all services' CPU-s per frame"],
                              loss))
        s.blocks.append(Text("Medians over the passes. The per-request baselines pay, per frame, an HTTP request's "
                             "parsing and routing in nginx, Django and uvicorn/FastAPI (and, with a new connection "
                             "each time, a TCP handshake and an accept in nginx); the stream pays its header parse "
                             "and one decode."))
    s.blocks.extend(round_trips.keepalive_blocks(run))
    s.blocks.extend(round_trips.blocks(run))

    s.blocks.append(Figure("streaming-rates", "streaming-rates.png",
                           "Latency (p50, p99) against offered frame rate per transport.",
                           lambda p: draw_rates(run, p)))
    s.blocks.append(Figure("streaming-timeline", "streaming-timeline.png",
                           "Per-frame latency over one 30 frames/s stream per transport (each one's first pass).",
                           lambda p: draw_timeline(run, p)))
    stacks = run.get("stacks", default=[]) or []
    if stacks:
        s.blocks.append(Text("Server settings recorded for each stack: " + "; ".join(
            f"{st['arch']} ({st['group']}): {(st.get('stack') or {}).get('info_source', 'not recorded')}"
            for st in stacks) + "."))
    notes = run.get("notes", default=[])
    if notes:
        s.blocks.append(Text("Notes: " + "; ".join(notes)))
    return s


# --------------------------------------------------------------------------- the README's blocks
BLOCKS = ("streaming-table", "streaming-goal", "streaming-outside", "streaming-yolo", "streaming-link",
          "streaming-rtt", "streaming-keepalive")


def readme(ctx: Context) -> dict[str, str]:
    """The README's streaming numbers (:mod:`bench.report.docs`), from the same run and rows as the section."""
    from bench.report.docs import md_table

    run = latest(ctx)
    if run is None:
        return {name: "Not measured yet: make study STUDY=streaming." for name in BLOCKS}
    order = ("inprocess", "tcp", "ws", "grpc", "http", "http-new")
    fast = [headline(run, t, None) for t in order]
    at30 = [headline(run, t, 30) for t in order]

    def passes(c: Cell | None) -> str:
        return "-" if c is None else str(c.n)

    table_md = (f"Measured (`results/{run.run_id}`; CIFAR CNN, raw frames, loopback; each cell the median of its "
                "passes with min–max, or one run):\n\n" + md_table(
        ["", "in process", "stream-tcp", "stream-ws", "stream-grpc", "HTTP keep-alive", "HTTP new conn."],
        [["as fast as possible, frames/s", *[c.shown("fps", n=False) if c else None for c in fast]],
         ["passes", *[passes(c) for c in fast]],
         ["30 frames/s, p50 ms", *[c.shown("p50_ms", one_decimal, n=False) if c else None for c in at30]],
         ["30 frames/s, p99 ms", *[c.shown("p99_ms", one_decimal, n=False) if c else None for c in at30]],
         ["passes", *[passes(c) for c in at30]]]))
    rows, verdict = goal(run)
    goal_md = "- **Goal**: not measured."
    if len(rows) == 2 and fast[0] and fast[1] and at30[0] and at30[1]:
        ratio = fast[1].median("fps") / fast[0].median("fps")
        diff = at30[1].median("p99_ms") - at30[0].median("p99_ms")
        goal_md = (f"- **Goal** ({sample_note(fast[1])} of each, judged on the medians): stream-tcp sustains "
                   f"{ratio:.4f} of the in-process throughput in the same run: **{rows[0][-1]}** (goal 0.90). At "
                   f"30 frames/s its p99 is {diff:+.1f} ms against the in-process p99: **{rows[1][-1]}** (goal at "
                   "most +2 ms). The ratio moves with the machine's load: the model process and the client share the 2 "
                   "cores, and the stream's extra cost per frame is the proxy hop, the framing and the socket I/O.")
    goal_md += "\n" + batched_goal_text(run)
    return {"streaming-table": table_md, "streaming-goal": goal_md, "streaming-outside": outside_text(run),
            "streaming-yolo": yolo_text(run), "streaming-link": link_text(run),
            "streaming-rtt": round_trips.readme_rtt(run), "streaming-keepalive": round_trips.readme_keepalive(run)}


def batched_goal_text(run: Run) -> str:
    """The README's line for the batched variant's goal (same run as the table above)."""
    rows, verdict = batched_goal(run)
    on_fast, on_30 = batched(run, None), batched(run, 30)
    ip_fast, ip_30 = headline(run, "inprocess", None), headline(run, "inprocess", 30)
    if len(rows) != 2 or not (on_fast and on_30 and ip_fast and ip_30):
        return "- **Goal with batching**: not measured."
    ratio = on_fast.median("fps") / ip_fast.median("fps")
    diff = on_30.median("p99_ms") - ip_30.median("p99_ms")
    return (f"- **Goal with batching** (stream-tcp, {batch_label(on_fast)}, {sample_note(on_fast)} of each): it "
            f"sustains {on_fast.median('fps'):.0f} frames/s, {ratio:.3f}x the in-process batch-1 rate: "
            f"**{rows[0][-1]}** (goal {BATCHED_RATIO:.1f}x). At 30 frames/s its p99 is {diff:+.1f} ms against the "
            f"in-process p99: **{rows[1][-1]}** (goal at most +{P99_MARGIN_MS:g} ms).")


def one_decimal(v: float) -> str:
    return f"{v:.1f}"


def _outside(run: Run, transport: str) -> list[float]:
    """p50 minus the server's model time at every offered rate (CIFAR, raw, loopback; a repeated rate: the
    medians of its passes)."""
    return [c.median("p50_ms") - c.median("server_ms.model")
            for c in cells(run, transport=transport, group="loopback", model="cifar", encoding="raw")
            if c.first.get("rate") and c.values("p50_ms") and c.values("server_ms.model")]


def _range(values: list[float]) -> str:
    lo, hi = f"{min(values):.1f}", f"{max(values):.1f}"
    return lo if lo == hi else f"{lo}-{hi}"


def outside_text(run: Run) -> str:
    base = _outside(run, "http") + _outside(run, "http-new")
    tcp = _outside(run, "tcp")
    if not base or not tcp:
        return "- **Where the per-request baseline loses its time**: not measured."
    rates = sorted({r["rate"] for r in rows_of(run, transport="tcp", group="loopback") if r.get("rate")})
    at30 = headline(run, "tcp", 30)
    return (f"- **Where the per-request baseline loses its time** (offered {', '.join(f'{r:g}' for r in rates)} "
            f"frames/s, each rate one run but 30 frames/s, the median of {at30.n if at30 else 1} passes): outside "
            f"the model, its p50 is {_range(base)} ms against {_range(tcp)} ms for stream-tcp: Django, the front "
            "end's forward and HTTP parsing per frame (a new connection per frame adds the handshake but, on "
            "loopback, little else).")


def yolo_text(run: Run) -> str:
    rows = sorted((r for r in rows_of(run, model="yolo-tiny", group="quota") if r.get("time_per_image_s")),
                  key=lambda r: r["cpus"])
    if not rows:
        return "- **Time per image, YOLO v3 tiny layers**: not measured."
    encodings = sorted({r["encoding"] for r in rows})
    cpu = published.CPU_CASE[2]
    text = (f"- **Time per image, YOLO v3 tiny layers (timing only), stream-tcp, {'/'.join(encodings).upper()}** "
            "(one run): " + ", ".join(f"{r['time_per_image_s']:.3f} s at {r['cpus']:g} core{'s' if r['cpus'] > 1 else ''}"
                                      for r in rows))
    text += f", against the study's {cpu:g} s on a {published.CPU_CASE[0]}"
    return text + ": TensorFlow's oneDNN kernels on a modern core, not darknet on a burstable 2015 instance."


def link_text(run: Run) -> str:
    rows = rows_of(run, group="link")
    if not rows:
        return "- **Shaped link**: not measured."
    link = rows[0].get("link") or {}
    measured = [m for r in rows if (m := (r.get("link") or {}).get("measured_up_mbit"))]

    def frame(model: str, encoding: str) -> str | None:
        r = next(iter(rows_of(run, group="link", model=model, encoding=encoding)), None)
        if r is None:
            return None
        return (f"{significant(r['wire_bytes_per_frame'] / 1000)} KB a frame on the wire, p50 {significant(r['p50_ms'])} ms at "
                f"{r['rate']:g} frames/s")

    parts = [f"{name} {encoding}: {text}" for name, model in (("416x416", "yolo-tiny"), ("CIFAR", "cifar"))
             for encoding in ("raw", "jpeg") if (text := frame(model, encoding))]
    return (f"- **{link.get('rate_mbit_set', run.get('settings', 'link_mbit')):g} Mbit/s link** (one run; "
            f"{_range(measured)} Mbit/s measured up): " + "; ".join(parts) + ".")
