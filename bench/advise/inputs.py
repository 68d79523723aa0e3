"""What the advisor is asked: the SLO, the rate and the limits, as flags and as make variables.

    python -m bench.advise --slo-p99-ms 50 --rate 400 [--max-cpu 2] [--max-mem-mb 4000] [--archs fastapi,flask]
        [--batch 1] [--out results] [--verify-s 10] [--no-verify] [--runtime native] [--run-dir DIR]

``make advise SLO_P99_MS=50 RATE=400 [MAX_CPU=] [MAX_MEM_MB=] [ARCHS=] [BATCH=] [RESULTS=] [VERIFY_S=] [NO_VERIFY=1]``
passes them; a make variable left empty counts as not given.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError, field_validator

from bench import options as opts

EXAMPLE = "make advise SLO_P99_MS=50 RATE=400"
MAKE_NAMES = {"slo_p99_ms": "SLO_P99_MS", "rate": "RATE", "max_cpu": "MAX_CPU", "max_mem_mb": "MAX_MEM_MB",
              "archs": "ARCHS", "batch": "BATCH", "out": "RESULTS", "verify_s": "VERIFY_S", "verify": "NO_VERIFY",
              "runtime": "RUNTIME", "run_dir": "SB_RUN_DIR"}
REQUIRED = ("slo_p99_ms", "rate")


class AdviceError(Exception):
    """A question the advisor cannot answer as asked; the message names what to run next."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class AdviseOptions(opts.Options):
    """``python -m bench.advise``: the cheapest measured stack that meets a p99 SLO at a rate."""

    slo_p99_ms: float | None = opts.option(None, "the p99 latency the stack must keep (ms; required)", gt=0,
                                           allow_inf_nan=False)
    rate: float | None = opts.option(None, "images per second it must serve (required)", gt=0, allow_inf_nan=False)
    max_cpu: float | None = opts.option(None, "cores the stack may use at RATE", gt=0, allow_inf_nan=False)
    max_mem_mb: float | None = opts.option(None, "memory the stack may hold (MB, summed RSS of its services)",
                                           gt=0, allow_inf_nan=False)
    archs: tuple[str, ...] = opts.option((), "only these architectures, comma-separated (default: every measured one)")
    batch: int = opts.option(1, "images per request of the workload: configurations measured so compete", ge=1)
    verify_s: float = opts.option(10.0, "seconds of the verification run at RATE (three windows)", gt=0, le=600,
                                  allow_inf_nan=False)
    verify: bool = opts.option(True, "verifying the top pick with a short open-loop run at RATE")
    runtime: str = opts.option("native", "where the verification's stack runs")
    run_dir: Path | None = opts.option(None, "the stack's state folder (default: SB_RUN_DIR or run/)")
    progress: bool = opts.option(False, "progress bars", cli=False)

    @field_validator("archs", mode="before")
    @classmethod
    def _split_archs(cls, v):
        return tuple(a for a in v.replace(",", " ").split() if a) if isinstance(v, str) else v


def _name(field: str) -> str:
    flag = AdviseOptions.flag(field)
    make = MAKE_NAMES.get(field)
    return f"{make} ({flag})" if make else flag


def parse(argv=None) -> AdviseOptions:
    """The options from ``argv``; an empty value is not given; a bad or missing one raises AdviceError."""
    parser = opts.parser(AdviseOptions, __doc__)
    try:
        given = vars(parser.parse_args(argv))
    except SystemExit as exc:  # argparse has printed its usage (and why, unless --help)
        if not exc.code:
            raise
        raise AdviceError(f"see `python -m bench.advise --help`; e.g. {EXAMPLE}", code=exc.code or 2) from None
    given = {k: v for k, v in given.items() if not (isinstance(v, str) and not v.strip())}
    missing = [f for f in REQUIRED if given.get(f) is None]
    if missing:
        raise AdviceError(f"{' and '.join(_name(f) for f in missing)} required: e.g. {EXAMPLE}")
    try:
        return AdviseOptions.model_validate(given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = err["loc"][0] if err["loc"] else ""
            msg = err["msg"].removeprefix("Value error, ")
            shown = f"={given.get(field)!r}" if field in given else ""
            problems.append(f"{_name(field) if field in AdviseOptions.model_fields else field}{shown}: {msg}")
        raise AdviceError("bad input: " + "; ".join(problems) + f" (e.g. {EXAMPLE})") from None
