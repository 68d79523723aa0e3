"""The README's numbers, generated from the committed results by the code that computes the report's.

    python -m bench.report.docs [--results results] [--readme README.md] [--check]

A generated block in the README sits between two markers, each on a line of its own::

    <!-- generated: saturation-table -->
    | ... the fragment ... |
    <!-- end generated -->

Every study's report module (``<study.module>.report``, or its ``<study.module>.answer``, as for
:mod:`bench.report.sections`) may have a third hook beside ``section`` and ``answer``::

    def readme(ctx: Context) -> dict[str, str]   # fragment name -> markdown

built from the same functions as its section, so the page and the README cannot disagree. The fragments
that belong to no study (the compose profiles) are here. ``--check`` writes nothing and fails when a block
differs from what the results give (``make docs`` rewrites them; tests/bench/test_docs.py checks).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Callable, Iterable

from bench.formats import significant
from bench.report.sections import Context, _optional_module
from servebench import registry

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
MODEL_METRICS = REPO_ROOT / "models" / "cifar10_cnn.metrics.json"
BLOCK = re.compile(r"^<!-- generated: (?P<name>[\w-]+) -->\n(?P<body>.*?)^<!-- end generated -->$", re.S | re.M)
ONE_RUN = "one run"


# --------------------------------------------------------------------------- markdown pieces

def cell(value) -> str:
    text = "not measured" if value is None else significant(value) if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")


def md_table(header: list[str], rows: Iterable[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def median_of(values: list[float], show: Callable[[float], str] = significant) -> str:
    """'median of N repeats: X (min–max)', or 'X (one run)' for a single value."""
    if len(values) == 1:
        return f"{show(values[0])} ({ONE_RUN})"
    return (f"{show(statistics.median(values))} (median of {len(values)} repeats, "
            f"{show(min(values))}–{show(max(values))})")


def span(values: Iterable[float], show: Callable[[float], str] = significant) -> str:
    """'a–b' over the values shown as given (one value: itself)."""
    shown = sorted({show(v) for v in values}, key=lambda t: float(t.replace(",", "").split()[0]))
    return shown[0] if len(shown) == 1 else f"{shown[0]}–{shown[-1]}"


def one_decimal(x: float) -> str:
    return f"{x:,.1f}"


def dataset_note() -> str:
    """Said beside every accuracy figure: what the test images are (from the model's metrics record)."""
    try:
        note = json.loads(MODEL_METRICS.read_text()).get("data", {}).get("note")
    except (OSError, ValueError, AttributeError):
        note = None
    if note and "JPEG" in note:
        return ("Accuracy on the CIFAR-10 test images of a copy rebuilt from JPEG files: its pixels differ "
                "slightly from the original release, so accuracies may differ slightly from the original test set's.")
    return "Accuracy on the CIFAR-10 test set."


# --------------------------------------------------------------------------- the fragments

def compose_profiles() -> str:
    """The compose file's profiles (one per architecture or stack shared by several, and a study's own
    services'), from the registry that generates the file."""
    found: dict[str, list[str]] = {p: [] for p in registry.profiles()}
    for arch in registry.architectures():
        if arch.name != arch.profile:
            found[arch.profile].append(f"`{arch.name}`")
    for name in registry.services():  # a profile no architecture has: a study's own services
        for profile in registry.profiles_of(name):
            if profile not in found or found[profile] and found[profile][0].startswith("the "):
                found.setdefault(profile, []).append(f"the `{name}` service")
    parts = [f"`{p}`" + (f" ({', '.join(a)})" if a else "") for p, a in found.items()]
    return f"`docker-compose.yml` has {len(parts)} profiles: " + ", ".join(parts) + "."


def soak_text(ctx: Context) -> str:
    """The newest complete soak run: its load, its latency and each service's memory growth."""
    runs = [r for r in ctx.runs if r.kind == "soak" and not r.interrupted]
    if not runs:
        return "- **Soak**: not measured yet (make soak ARCH=fastapi DURATION=10m)."
    run = runs[-1]
    st, req, lat = run.get("settings", default={}), run.get("requests", default={}), run.get("latency_ms", default={})
    mem = run.get("memory", default={}) or {}
    growth = [f"{growth:+.2f}% for {name}" for name, doc in (mem.get("services") or {}).items()
              if (growth := (doc.get(mem.get("metric", "rss")) or {}).get("growth_pct")) is not None]
    errors = req.get("count", 0) - req.get("ok", 0)
    return (f"- **Soak** (`make soak ARCH={run.arch} DURATION={st.get('duration')}`, {run.runtime}, one run, "
            f"`results/{run.run_id}/`): capacity measured at {significant(st.get('capacity_images_per_s'))} "
            f"images/s, then {st.get('duration')} at {st.get('load', 0):.0%} of it "
            f"({significant(st.get('rate'))} requests/s, {req.get('count', 0):,} requests): "
            f"{errors or 'no'} errors, p50 {significant(lat.get('p50'), ' ms')}, p99 {significant(lat.get('p99'), ' ms')}; "
            f"{mem.get('metric', 'rss').upper()} growth after the first {significant(mem.get('baseline_at_s'))} s: "
            + ", ".join(growth) + f" (goal under {significant(mem.get('goal_pct'))}%; verdict {mem.get('verdict')}, "
            f"the load generator excluded).")


def general(ctx: Context) -> dict[str, str]:
    return {"compose-profiles": compose_profiles(), "soak": soak_text(ctx)}


def readme_hooks() -> list[Callable[[Context], dict[str, str]]]:
    hooks = []
    for study in registry.studies():
        hook = getattr(_optional_module(f"{study.module}.report"), "readme", None)
        if hook is None:  # beside the answer hook, as sections.answer_hook looks for it
            hook = getattr(_optional_module(f"{study.module}.answer"), "readme", None)
        if hook is not None:
            hooks.append(hook)
    return hooks


def fragments(ctx: Context) -> dict[str, str]:
    """Every fragment name -> its markdown, from the results in ``ctx``."""
    out = general(ctx)
    for hook in readme_hooks():
        for name, text in (hook(ctx) or {}).items():
            if name in out:
                raise ValueError(f"two fragments named {name!r}")
            out[name] = text.strip()
    return out


# --------------------------------------------------------------------------- the README

def render(text: str, frags: dict[str, str]) -> str:
    """The README with every generated block replaced; a block whose fragment does not exist is an error."""
    unknown = [m["name"] for m in BLOCK.finditer(text) if m["name"] not in frags]
    if unknown:
        raise KeyError(f"README blocks with no fragment: {', '.join(unknown)} (known: {', '.join(sorted(frags))})")
    return BLOCK.sub(lambda m: f"<!-- generated: {m['name']} -->\n{frags[m['name']]}\n<!-- end generated -->", text)


def differences(text: str, frags: dict[str, str]) -> list[str]:
    """The names of the blocks whose text differs from what the results give."""
    return [m["name"] for m in BLOCK.finditer(text) if m["body"].strip() != frags.get(m["name"], "").strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report.docs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="folder of run folders")
    p.add_argument("--readme", type=Path, default=README)
    p.add_argument("--check", action="store_true", help="write nothing; fail when a block differs")
    args = p.parse_args(argv)
    text = args.readme.read_text()
    frags = fragments(Context.read(args.results))
    if args.check:
        stale = differences(text, frags)
        if stale:
            print(f"{args.readme}: stale blocks {', '.join(stale)} (run make docs)", file=sys.stderr)
            return 1
        print(f"{args.readme}: {len(BLOCK.findall(text))} generated block(s) agree with {args.results}")
        return 0
    new = render(text, frags)
    if new != text:
        args.readme.write_text(new)
    print(f"wrote {len(BLOCK.findall(new))} generated block(s) into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
