"""`make advise SLO_P99_MS=50 RATE=400`: the cheapest measured stack that keeps a p99 SLO at a rate, then checked.

It reads every measured configuration under RESULTS (:mod:`bench.advise.candidates`),
finds each one's operating point at RATE and the constraints it meets
(:mod:`bench.advise.ranking`), prints the top three by CPU per image (then
memory) with the numbers they rest on and the command that starts the first,
draws the latency-throughput Pareto front (:mod:`bench.advise.pareto`), and
verifies the first with a short open-loop run at RATE
(:mod:`bench.advise.verify`). Each answer is kept in ``RESULTS/advice-<UTC time>/``
(:mod:`bench.advise.answer`). Exit status: 0 answered, 1 nothing meets the
SLO (or the check could not run), 2 bad input or nothing measured, 130 interrupted.
"""
from __future__ import annotations

import sys

from bench import provenance, target
from bench.advise import answer, candidates, inputs, pareto, ranking, verify
from bench.advise.inputs import AdviceError
from servebench.settings import from_environment


def _check_archs(options, measured: candidates.Measurements, every: candidates.Measurements | None) -> None:
    if not options.archs:
        return
    have = {cfg.arch for cfg in measured.configurations}
    missing = [a for a in options.archs if a not in have]
    if missing:
        known = sorted({cfg.arch for cfg in every.configurations}) if every else []
        raise AdviceError(f"ARCHS: nothing measured for {', '.join(missing)} under {options.out} (measured: "
                          f"{', '.join(known) or 'none'}); measure it: make sweep ARCH={missing[0]}")


def _capacity(c: ranking.Constraints, m: candidates.Measurements) -> None:
    """RATE above every measured capacity is a question no measurement answers."""
    best = max(m.configurations, key=lambda cfg: cfg.max_throughput())
    top = best.max_throughput()
    if c.rate <= top:
        return
    limit = m.limit or {}
    in_process = (f"; the model alone in process reaches {limit['images_per_s']:g} images/s "
                  f"(model curve {limit['run_id']})") if limit.get("images_per_s") else ""
    raise AdviceError(
        f"RATE={c.rate:g} images/s is above every measured capacity: the most any configuration sustained is "
        f"{top:g} images/s ({best.label}; runs {', '.join(best.run_ids)}){in_process}. Lower RATE, or measure "
        f"stacks that might sustain it: {ranking.next_sweep(ranking.Point(best, None, None), c)} "
        f"(or {ranking.SATURATION_SWEEPS})", code=1)


def advise(options: inputs.AdviseOptions, log=print) -> int:
    c = ranking.Constraints(options.slo_p99_ms, options.rate, options.max_cpu, options.max_mem_mb)
    root = options.out
    if not root.is_dir():
        raise AdviceError(f"no results folder {root}: measure first: {ranking.SATURATION_SWEEPS}")
    model = from_environment().model_name  # the model MODEL (SB_MODEL) names; configurations serving it compete
    here = provenance.same_machine_key(provenance.machine())  # this machine's runs, when there are any
    m = candidates.load(root, options.archs, model, options.batch, here)
    if not m.configurations:
        every = candidates.load(root, (), model, options.batch, here) if options.archs else None
        _check_archs(options, m, every)
        raise AdviceError(f"no saturation sweeps or bench runs of {model} at {options.batch} image(s) per request "
                          f"under {root}: measure first: {ranking.SATURATION_SWEEPS} (or make sweep ARCH=fastapi)")
    _check_archs(options, m, None)
    if not any(cfg.source == "sweep" for cfg in m.configurations):
        m.notes.append(f"no saturation sweep: only bench runs (closed loops); {ranking.SATURATION_SWEEPS} "
                       f"measures open loops too")
    _capacity(c, m)
    points = [ranking.operating_point(cfg, c) for cfg in m.configurations]
    ranked = ranking.rank(points)
    near = [] if ranked else ranking.closest(points)
    folder = answer.new_folder(root)
    pareto.draw(m.configurations, c, ranked, folder / pareto.FILE, m.limit)
    lines = [f"model {model}, {options.batch} image(s) per request; {len(m.configurations)} measured configurations",
             *answer.text(c, ranked, near, m.notes)]
    if not ranked:
        lines.append(f"next: measure the closest around RATE: {ranking.next_sweep(near[0] if near else None, c)}; "
                     f"or every architecture: {ranking.SATURATION_SWEEPS}")
    for line in lines:
        log(line)
    doc = answer.document(options, c, m, points, ranked, near, None)
    answer.write(folder, doc, lines)
    log(f"wrote {folder}/ ({answer.FILE}, {answer.SUMMARY}, {pareto.FILE})")
    if not ranked:
        return 1
    if not options.verify:
        return 0
    result = None
    try:
        result = verify.verify(ranked[0], c, options.verify_s, folder, options.runtime, options.run_dir, log)
    except KeyboardInterrupt:
        result = {"run_id": None, "interrupted": True, "error": "interrupted before the check measured anything"}
    finally:
        latest = folder / "latest"  # the check's run session points it at its run: one run, no need
        if latest.is_symlink():
            latest.unlink()
        if result is not None:
            doc["verification"] = result
            lines += answer.verification_lines(result, c)
            answer.write(folder, doc, lines)
    for line in answer.verification_lines(result, c):
        log(line)
    if result.get("interrupted"):
        return 130
    return 1 if result.get("error") else 0


def main(argv=None) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        options = inputs.parse(argv)
    except AdviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code

    def run() -> int:
        try:
            return advise(options)
        except AdviceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code

    rc, code = target.command(run)  # a stack that will not start, a missing dataset: said without a traceback
    return code if code is not None else rc


if __name__ == "__main__":
    sys.exit(main())
