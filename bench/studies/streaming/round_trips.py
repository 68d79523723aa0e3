"""The streaming section's round-trip part: stream-tcp against per-request HTTP over the delayed link (group
``rtt``), and why a new connection per frame did not lose to keep-alive on loopback (the headline passes'
CPU spread over the stack's processes). Every number comes from the record's rows."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.formats import significant  # noqa: E402
from bench.report import plots  # noqa: E402
from bench.report.runs import Run  # noqa: E402
from bench.report.sections import Figure, Heading, Text  # noqa: E402
from bench.report.tables import table  # noqa: E402
from bench.studies.streaming.passes import Cell, cell, rows_of  # noqa: E402

TRANSPORTS = ("tcp", "http", "http-new")
TITLES = {"tcp": "stream-tcp", "http": "HTTP keep-alive", "http-new": "HTTP, new connection per frame"}
RATE = 30
FIGURE = "streaming-rtt.png"
ELEMENT = ("netem is not in this kernel (nor sch_fq or ETF), so the delay comes from a userspace element "
           "(servebench/delay_link.py): two TUN devices, one in the client's namespace, bridged by a process that "
           "holds each packet for half the round trip, in order; tc tbf shapes both ends. Every packet pays it, "
           "the TCP handshake's included.")


def rtts(run: Run) -> list[float]:
    return sorted({r["rtt_ms"] for r in rows_of(run, group="rtt") if r.get("rtt_ms") is not None})


def rtt_cell(run: Run, transport: str, rtt: float, rate) -> Cell | None:
    return cell(run, group="rtt", transport=transport, rtt_ms=rtt, rate=rate)


def measured(run: Run, rtt: float) -> dict | None:
    """The delayed link's measured round trip at a setting (TCP connect times before its streams)."""
    for r in rows_of(run, group="rtt", rtt_ms=rtt):
        got = (r.get("link") or {}).get("rtt_ms_measured")
        if got:
            return got
    return None


def accuracy(run: Run) -> str | None:
    """How far the measured round trips lay from the settings (those above 0 ms)."""
    errs = [(m["median"] - rtt) / rtt for rtt in rtts(run) if rtt > 0 and (m := measured(run, rtt))]
    if not errs:
        return None
    lo, hi = f"{min(errs) * 100:+.1f}%", f"{max(errs) * 100:+.1f}%"
    text = (f"measured round trips (median of each setting's TCP connects) lay {lo if lo == hi else f'{lo} to {hi}'} "
            f"from the settings (the accuracy test's bound is 10%)")
    if 0 in rtts(run) and (zero := measured(run, 0)):
        text += f"; at 0 ms the element itself gave {zero['median']:.2f} ms"
    return text


def draw(run: Run, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for transport in TRANSPORTS:
        for ax, rate, key in ((left, None, "fps"), (right, RATE, "p50_ms")):
            pts = [(rtt, c.median(key), min(c.values(key)), max(c.values(key)))
                   for rtt in rtts(run) if (c := rtt_cell(run, transport, rtt, rate)) and c.values(key)]
            if not pts:
                continue
            xs, mid, lo, hi = zip(*pts)
            ax.errorbar(xs, mid, yerr=[[m - a for m, a in zip(mid, lo)], [b - m for m, b in zip(mid, hi)]],
                        marker="o", capsize=3, label=TITLES[transport])
    n = max((c.n for t in TRANSPORTS for rtt in rtts(run) for rate in (None, RATE)
             if (c := rtt_cell(run, t, rtt, rate))), default=0)
    left.set_title("As fast as possible (window of frames in flight)")
    left.set_ylabel("frames/s")
    right.set_title(f"p50 latency from capture at {RATE} frames/s")
    right.set_ylabel("ms")
    for ax in (left, right):
        ax.set_xlabel("round trip added by the delay element (ms)")
        ax.set_xticks(rtts(run))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle(f"Streaming against per-request HTTP over a delayed link (median of {n} passes, bars min-max)",
                 fontsize=10)
    return plots.save(fig, path, dpi=110, tight=True)


def rtt_rows(run: Run) -> list[list]:
    out = []
    for rtt in rtts(run):
        m = measured(run, rtt)
        got = f"{m['median']:.1f} ({m['min']:.1f}–{m['max']:.1f}, n={m['n']})" if m else "not measured"
        for transport in TRANSPORTS:
            fast, paced = rtt_cell(run, transport, rtt, None), rtt_cell(run, transport, rtt, RATE)
            if fast is None and paced is None:
                continue
            out.append([f"{rtt:g}", got, TITLES[transport], fast.shown("fps") if fast else "not measured",
                        paced.shown("p50_ms") if paced else "not measured",
                        paced.shown("p99_ms") if paced else "not measured"])
    return out


def handshake_note(run: Run) -> str | None:
    """What a new connection per frame costs at the largest RTT: its p50 against keep-alive's, in round trips.
    Keep-alive opens its connections (one per frame in flight) before the clock starts, as the stream does."""
    if not rtts(run) or max(rtts(run)) <= 0:
        return None
    rtt = max(rtts(run))
    keep, new = rtt_cell(run, "http", rtt, RATE), rtt_cell(run, "http-new", rtt, RATE)
    if keep is None or new is None or not keep.values("p50_ms") or not new.values("p50_ms"):
        return None
    extra = (new.median("p50_ms") - keep.median("p50_ms")) / rtt
    return (f"HTTP keep-alive opens its connections (one per frame in flight, up to the window of "
            f"{run.get('settings', 'window')}) before its clock starts, as stream-tcp does. A new connection per "
            f"frame pays the handshake on every frame: at {rtt:g} ms its p50 at {RATE} frames/s is "
            f"{significant(new.median('p50_ms'))} ms against keep-alive's {significant(keep.median('p50_ms'))} ms, "
            f"{extra:.2f} round trips more (medians of {len(new.values('p50_ms'))} passes each).")


def blocks(run: Run) -> list:
    rows = rtt_rows(run)
    if not rows:
        return [Heading("Round trips: streaming against per-request HTTP over a delayed link"),
                Text("Not measured in this run (the rtt group needs network namespaces and TUN devices).")]
    acc = accuracy(run)
    mbit = next((r.get("link_mbit") for r in rows_of(run, group="rtt")), None)
    return [
        Heading("Round trips: streaming against per-request HTTP over a delayed link"),
        Text(f"The client in its own namespace, a {mbit:g} Mbit/s link with a round trip added. " + ELEMENT
             + (f" In this run the {acc}." if acc else "") + " The 0 ms setting runs through the same element at no "
             "delay. Every cell is the median of its passes with min-max and n; stream-tcp against the stream "
             "stack, both HTTP baselines against the fastapi stack (nginx on the link's address)."),
        table(["RTT set (ms)", "RTT measured (ms)", "transport", "frames/s as fast as possible",
               f"p50 ms at {RATE} frames/s", f"p99 ms at {RATE} frames/s"], rows),
        *([Text(note)] if (note := handshake_note(run)) else []),
        Figure("streaming-rtt", FIGURE, "Frames/s and p50 against the added round trip, per transport.",
               lambda p: draw(run, p)),
    ]


def _at_longest(run: Run) -> tuple[float, dict[str, Cell]] | None:
    if not rtts(run):
        return None
    rtt = max(rtts(run))
    got = {t: c for t in TRANSPORTS if (c := rtt_cell(run, t, rtt, None)) and c.values("fps")}
    return (rtt, got) if len(got) == len(TRANSPORTS) else None


def answer_part(run: Run) -> str | None:
    found = _at_longest(run)
    if found is None:
        return None
    rtt, got = found
    n = min(c.n for c in got.values())
    fps = {t: c.median("fps") for t, c in got.items()}
    lead = ("streaming leads" if fps["tcp"] > max(fps["http"], fps["http-new"]) else "streaming does not lead")
    return (f"with a round trip in the path {lead}: over a link with {rtt:g} ms round trip stream-tcp sustains "
            f"{significant(got['tcp'].median('fps'))} frames/s "
            f"against {significant(got['http'].median('fps'))} for HTTP keep-alive and "
            f"{significant(got['http-new'].median('fps'))} with a new connection per frame (medians of {n} passes)")


def readme_rtt(run: Run) -> str:
    from bench.report.docs import md_table

    rows = rtt_rows(run)
    if not rows:
        return "- **Round trips**: not measured (needs network namespaces and TUN devices)."
    acc = accuracy(run)
    return (f"Measured (`results/{run.run_id}`; each cell the median of its passes, min–max and n; CIFAR CNN, raw "
            "frames, client in its own namespace behind the delay element" + (f"; {acc}" if acc else "") + "):\n\n"
            + md_table(["RTT set (ms)", "RTT measured (ms)", "transport", "frames/s as fast as possible",
                        f"p50 ms at {RATE} frames/s", f"p99 ms at {RATE} frames/s"], rows)
            + (f"\n\n{note}" if (note := handshake_note(run)) else ""))


# --------------------------------------------------------------------------- keep-alive against a new connection
def _loopback(run: Run, transport: str, rate) -> Cell | None:
    return cell(run, group="loopback", transport=transport, rate=rate, model="cifar", encoding="raw")


def _shares(c: Cell, service: str) -> list[float]:
    return [v * 100 for v in c.values(f"cpu_by_process.{service}.busiest_share")]


def _percent(values: list[float]) -> str:
    lo, hi = f"{min(values):.0f}", f"{max(values):.0f}"
    return f"{lo}%" if lo == hi else f"{lo}–{hi}%"


SERVICES = ("nginx", "frontend", "fastapi", "client")


def cpu_ms_per_frame(row: dict, service: str | None = None) -> float | None:
    """One pass's CPU ms per frame in a service, or summed over the stack and the client (``None``)."""
    res = row.get("resources") or {}
    names = [service] if service else [s for s in res if s in SERVICES]
    got = [v for name in names if (v := (res.get(name) or {}).get("cpu_seconds_per_image")) is not None]
    return sum(got) * 1000 if got else None


def _cpu(c: Cell, service: str | None = None) -> list[float]:
    return [v for r in c.rows if (v := cpu_ms_per_frame(r, service)) is not None]


def _spread_text(values: list[float], digits: int = 2) -> str:
    import statistics

    return (f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"
            if len(values) > 1 else f"{values[0]:.{digits}f} (one run)")


def keepalive_text(run: Run) -> str | None:
    """Keep-alive against a new connection per frame on loopback, and the cause as the passes show it: the
    throughput with its spread, the CPU each spent per frame (2 saturated cores: frames/s follows it), how the
    model server's work spread over its processes, and what a connection per frame costs unsaturated."""
    import statistics

    keep, new = _loopback(run, "http", None), _loopback(run, "http-new", None)
    if keep is None or new is None or not keep.values("fps") or not new.values("fps"):
        return None
    kf, nf = keep.values("fps"), new.values("fps")
    ratio = new.median("fps") / keep.median("fps")
    parts = [f"On loopback, as fast as possible, HTTP keep-alive serves {keep.shown('fps')} frames/s and a new "
             f"connection per frame {new.shown('fps')} ({ratio:.2f}x the keep-alive median), the two alternating "
             "which goes first in each round."]
    overlap = max(min(kf), min(nf)) <= min(max(kf), max(nf))
    if overlap:
        parts.append("The ranges overlap: no consistent gap, so a single pass of each (as the earlier one-run "
                     "comparison had, keep-alive first on a freshly started stack) can rank them either way.")
    else:
        parts.append(f"The ranges do not overlap: {'a new connection' if ratio > 1 else 'keep-alive'} is faster "
                     "in every pass.")
    kc, nc = _cpu(keep), _cpu(new)
    if kc and nc:
        text = (f"Per frame, the stack and the client spent {_spread_text(kc)} ms of CPU with keep-alive and "
                f"{_spread_text(nc)} ms with a new connection")
        diffs = {svc: statistics.median(a) - statistics.median(b) for svc in SERVICES
                 if (a := _cpu(keep, svc)) and (b := _cpu(new, svc))}
        if diffs:
            svc = max(diffs, key=lambda k: abs(diffs[k]))
            text += f" (the largest difference in {svc}: {diffs[svc]:+.2f} ms for keep-alive)"
        machine = run.get("provenance", "machine", default={}) or {}
        cores = machine.get("logical_cpus") or machine.get("cpu_count")
        used = [statistics.median(c_) * cell_.median("fps") / 1000 for c_, cell_ in ((kc, keep), (nc, new))]
        text += f"; at their frame rates that is {used[0]:.2f} and {used[1]:.2f} cores" + (
            f" of the machine's {cores}" if cores else "")
        faster, slower = (nc, kc) if ratio > 1 else (kc, nc)
        if statistics.median(faster) < statistics.median(slower):
            text += (". The faster one also spends less CPU per frame, which accounts for a gap of "
                     f"{statistics.median(slower) / statistics.median(faster):.2f}x where the cores are the limit")
        else:
            text += ". The faster one does not spend less CPU per frame: the gap is not in the work done"
        parts.append(text + ".")
    model = _shares(keep, "fastapi") + _shares(new, "fastapi")
    if model:
        workers = next((len(s) for r in keep.rows if (s := value_list(r, "fastapi"))), None)
        where = ("on one process: the front end's keep-alive connections to the model server had all landed on "
                 "one uvicorn worker, the other idle" if min(model) >= 90 else
                 "over more than one process" if max(model) < 90 else "on one process in some passes only")
        parts.append(f"The busiest of the model server's {workers} processes did {_percent(model)} of its work "
                     f"in the saturated passes ({where}); that holds for both transports, since nginx keeps its "
                     "own connections to the front end whichever way the client connects.")
    keep30, new30 = _loopback(run, "http", RATE), _loopback(run, "http-new", RATE)
    if keep30 and new30 and keep30.values("p50_ms") and new30.values("p50_ms"):
        diff = new30.median("p50_ms") - keep30.median("p50_ms")
        parts.append(f"Unsaturated, at {RATE} frames/s, a new connection per frame moves the p50 by {diff:+.2f} ms "
                     f"({new30.shown('p50_ms')} against {keep30.shown('p50_ms')}): a loopback handshake and accept "
                     "cost too little to decide the saturated runs. Over the delayed link it costs a round trip "
                     "(next section).")
    return " ".join(parts)


def value_list(row: dict, service: str) -> list | None:
    return ((row.get("cpu_by_process") or {}).get(service) or {}).get("cpu_s")


def keepalive_blocks(run: Run) -> list:
    text = keepalive_text(run)
    if text is None:
        return []
    rows = []
    for transport in ("http", "http-new"):
        for rate in (None, RATE):
            c = _loopback(run, transport, rate)
            if c is None:
                continue
            model, front = _shares(c, "fastapi"), _shares(c, "frontend")
            rows.append([TITLES[transport], "max" if rate is None else f"{rate:g}", str(c.n), c.shown("fps"),
                         c.shown("p50_ms"), _percent(model) if model else "not measured",
                         _percent(front) if front else "not measured",
                         _spread_text(_cpu(c, "fastapi")) if _cpu(c, "fastapi") else "not measured",
                         _spread_text(_cpu(c)) if _cpu(c) else "not measured"])
    return [Heading("Keep-alive against a new connection per frame on loopback"),
            table(["transport", "offered fps", "passes", "frames/s", "p50 ms", "busiest model-server process's "
                   "CPU share", "busiest front-end process's CPU share", "model server CPU ms per frame",
                   "stack and client CPU ms per frame"], rows),
            Text(text)]


def readme_keepalive(run: Run) -> str:
    text = keepalive_text(run)
    return f"- **Keep-alive against a new connection per frame** (`results/{run.run_id}`): {text}" if text else (
        "- **Keep-alive against a new connection per frame**: not measured.")
