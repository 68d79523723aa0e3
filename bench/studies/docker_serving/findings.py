"""The README's "What we found" blocks (``found-table``, ``found-findings``), written by ``make docs``.

The headline rests on the Table 3 protocol runs (:mod:`protocol`: 1,000
images, several passes, native and docker); the study's workload of 10,000
images, the concurrency runs and the slow call path stand alone and say "one
run". Every number comes from ``results/``.
"""
from __future__ import annotations

from bench.formats import number, significant
from bench.report import archs
from bench.report.runs import Run, table3_largest
from bench.report.sections import Context
from bench.studies.docker_serving import protocol, published

TABLE3_N = 10000
absent = protocol.absent


def ten_thousand(ctx: Context) -> dict[str, Run]:
    """arch -> its native JSON comparison run over all 10,000 images (one run each)."""
    return {r.arch: r for r in ctx.selected_in(published.STUDY) if r.codec == "json" and r.runtime == "native"
            and table3_largest(r) and table3_largest(r)[0] == TABLE3_N}


def found_table(ctx: Context, found: dict[tuple[str, str], protocol.Protocol]) -> str:
    from bench.report.docs import md_table

    cols = protocol.study_archs()
    big = ten_thousand(ctx)
    images = sorted({p.images for p in found.values()}) or [1000]
    n = images[0]

    def per_image(runtime: str) -> list[str]:
        return [found[(a, runtime)].shown() if (a, runtime) in found else absent(a) for a in cols]

    def study_at(size: int) -> list[str]:
        return [significant(published.seconds_per_image(a, size) * 1000, " ms")
                if published.seconds_per_image(a, size) else "not measured" for a in cols]

    rows = [
        [f"ours, native: time per image, {n:,} images (median, min–max, n passes)", *per_image("native")],
        [f"ours, docker compose: the same, {n:,} images", *per_image("docker")],
        ["docker ÷ native", *[protocol.Ratio.of(found[(a, "docker")], found[(a, "native")]).shown()
                              if (a, "native") in found and (a, "docker") in found else "" for a in cols]],
        [f"study (Table 3, {n:,} images)", *study_at(n)],
        [f"ours, native: time per image over {TABLE3_N:,} images (one run each)",
         *[f"{table3_largest(big[a])[1] / TABLE3_N * 1000:.2f} ms" if a in big else absent(a) for a in cols]],
        [f"study (Table 3, {TABLE3_N:,} images)", *study_at(TABLE3_N)],
        [f"ours, native: p50 / p99 latency over {TABLE3_N:,} images (one run each)",
         *[f"{big[a].get('latency_ms', 'p50'):.1f} / {big[a].get('latency_ms', 'p99'):.1f} ms" if a in big else ""
           for a in cols]],
    ]
    return md_table(["sequential, one image per request, JSON", *[archs.title(a) for a in cols]], rows)


def ratio_line(found: dict[tuple[str, str], protocol.Protocol], slow: str, fast: str) -> str | None:
    """'1.45x (1.40–1.50, n = 3) native, 1.3x (...) under docker; the study 1.50x at 1,000 images'."""
    parts = []
    for runtime in protocol.RUNTIMES:
        a, b = found.get((slow, runtime)), found.get((fast, runtime))
        if a and b:
            parts.append(f"{protocol.Ratio.of(a, b).shown()} {'native' if runtime == 'native' else 'under docker'}")
    if not parts:
        return None
    n = next(p.images for p in found.values())
    theirs = protocol.study_ratio(slow, fast, n)
    return ", ".join(parts) + (f" over {n:,} images per pass; the study: {theirs:.2f}x at {n:,} images"
                               if theirs else f" over {n:,} images per pass")


def days(runs) -> str:
    """The UTC day(s) the runs were measured on, as the run ids say."""
    found = sorted({r.run_id[:4] + "-" + r.run_id[4:6] + "-" + r.run_id[6:8] for r in runs if r.run_id[:8].isdigit()})
    return ", ".join(found) or "undated"


def findings(ctx: Context, found: dict[tuple[str, str], protocol.Protocol]) -> list[str]:
    cols = protocol.study_archs()
    big = ten_thousand(ctx)
    per_10k = {a: table3_largest(big[a])[1] / TABLE3_N * 1000 for a in big}

    def at_10k(slow: str, fast: str) -> str:
        if slow in per_10k and fast in per_10k:
            return f"; over all {TABLE3_N:,} images {per_10k[slow] / per_10k[fast]:.2f}x (one run each)"
        return ""

    text = []
    flask = ratio_line(found, "flask", "fastapi")
    if flask:
        theirs = protocol.study_ratio("flask", "fastapi", TABLE3_N)
        text.append(f"- **Flask is not {theirs:.0f}x slower than FastAPI** (the study): here Flask/FastAPI is "
                    f"{flask}{at_10k('flask', 'fastapi')}. The study's 2 s per Flask request is a setup cost, not "
                    "Flask's. It matches the well-known delay of a Windows client that tries `localhost` over IPv6 "
                    "before falling back to IPv4 (we cannot run Windows here to confirm it); a pooled keep-alive "
                    "connection to 127.0.0.1, as the front end uses, does not pay it.")
    emb = ratio_line(found, "fastapi", "embedded")
    if emb:
        line = (f"- **Embedded is faster than FastAPI** one image at a time: FastAPI/embedded {emb}"
                f"{at_10k('fastapi', 'embedded')}.")
        at8 = {r.arch: r for r in ctx.runs
               if r.kind == "bench" and r.arch in cols and r.codec == "json" and r.complete_bench
               and r.runtime == "native" and r.get("settings", "concurrency") == 8 and r.get("settings", "rate") is None}
        if at8:
            line += (f" Under concurrency it pulls ahead on 2 cores (8 in flight, one run each, {days(at8.values())}: "
                     + ", ".join(f"{archs.title(a)} {significant(number(r.get('throughput_images_per_s')))} images/s"
                                 for a, r in at8.items())
                     + "), because the extra hop costs CPU that the model needs.")
        text.append(line)
    both = [a for a in cols if (a, "native") in found and (a, "docker") in found]
    if both:
        ratios = {a: protocol.Ratio.of(found[(a, "docker")], found[(a, "native")]) for a in both}
        text.append("- **Docker compose against native** (the same protocol, minutes apart; containers on host "
                    "networking): docker/native " + ", ".join(f"{archs.title(a)} {r.shown()}"
                                                             for a, r in ratios.items())
                    + ". A range that includes 1.00x is within the passes' spread.")
    slow, slow_runs = {}, []
    for run in ctx.runs:
        if run.kind == "bench" and run.arch in cols and run.call_path == "keras-predict":
            largest = table3_largest(run)
            if largest:
                slow[run.arch] = largest[1] / largest[0] * 1000
                slow_runs.append(run)
    native = [p for p in found.values() if p.runtime == "native"]
    if slow and native:
        fast = [p.median for p in native]
        text.append(f"- **How the server calls the model matters more than the framework**: the same stacks with "
                    f"`SB_CALL_PATH=keras-predict` (Keras `model.predict` per request, as the study's numbers suggest "
                    f"it did) take {min(slow.values()):.0f}-{max(slow.values()):.0f} ms per image (one run each, "
                    f"{days(slow_runs)}) instead of {min(fast):.1f}-{max(fast):.1f} ms (the protocol's native "
                    f"medians, {days(p.run for p in native)}; machines of this kind differ by up to 1.6x from day "
                    "to day).")
    return text


def readme(ctx: Context) -> dict[str, str]:
    found = protocol.protocol_runs(ctx.runs)
    return {"found-table": found_table(ctx, found), "found-findings": "\n".join(findings(ctx, found))}
