"""The published numbers our report is set beside, kept as data, under the study's own names.

Transcribed from ``../shared/STUDIES.md``, section 1, "Docker-container serving
architectures for real-time analysis": Table 2 (hardware), Table 3 (average time
to process N images, each size run 10 times) and Table 4 / Figure 11 (CPU and
RAM while processing 10,000 images). Only what is printed there is here;
nothing is derived except in the helpers below, which say so.

Tables are keyed by the study's labels (:data:`LABELS`). Which of our
architectures a label stands for is the registry's business
(``Architecture.study_label``); the helpers that take an architecture look it
up there, so no name of ours is spelled here.
"""
from __future__ import annotations

from bench import results
from servebench import registry

STUDY = next(s.name for s in registry.studies() if s.module == __package__)  # the registry's name for it
SOURCE = ('../shared/STUDIES.md, section 1: "Docker-container serving architectures for '
          'real-time analysis", Tables 2, 3 and 4 / Figure 11')

# Table 2. Their machine, so that nobody compares absolute times by accident.
HARDWARE = {
    "cpu": "Intel i7-9700K (8 cores)",
    "cpu_cores": 8,
    "ram": "64 GB",
    "gpu": "GeForce RTX 2070 SUPER",
    "software": "Windows 10, Python 3.8.3, TensorFlow 2.3.0, CUDA 10.1",
}

# The architectures they measured, as they name them (TF Serving over REST only:
# gRPC is discussed as faster, not measured).
LABELS = ("Embedded function", "Flask API", "Fast API", "TF Serving")

# Table 3: average seconds to process N images, sent one image per request, sequentially.
TABLE3_SIZES = results.TABLE3_SIZES  # (1, 10, ..., 10000): a bench run's table3 measures the same counts
TABLE3_SECONDS: dict[str, dict[int, float]] = {
    "Embedded function": {1: 0.038, 10: 0.296, 100: 2.927, 1000: 37.840, 10000: 289.219},
    "Flask API": {1: 2.090, 10: 20.851, 100: 209.449, 1000: 2059.050, 10000: 20702.672},
    "Fast API": {1: 0.056, 10: 0.577, 100: 5.763, 1000: 56.694, 10000: 531.959},
    "TF Serving": {1: 0.009, 10: 0.082, 100: 0.826, 1000: 8.167, 10000: 82.519},
}

# Table 4 / Figure 11: averages while processing 10,000 images.
# cpu_percent is a percentage of the whole 8-core machine (not of one core).
TABLE4: dict[str, dict] = {
    "Embedded function": {"model_type": "general", "language": "Python", "request": "none",
                          "cpu_percent": 21.7, "ram_mb": 450.5},
    "Flask API": {"model_type": "general", "language": "Python", "request": "REST",
                  "cpu_percent": 5.4, "ram_mb": 200.7},
    "Fast API": {"model_type": "general", "language": "Python", "request": "REST",
                 "cpu_percent": 18.2, "ram_mb": 260.2},
    "TF Serving": {"model_type": "TF servable", "language": "C++", "request": "REST, gRPC",
                   "cpu_percent": 23.7, "ram_mb": 275.6},
}
CPU_PERCENT_BASIS = "% of the whole 8-core machine"

# Their conclusions, as stated (the report checks them against ours).
CONCLUSIONS = (
    "TF Serving fastest",
    "FastAPI 36-39x faster than Flask",
    "Embedded 1.5-1.9x faster than FastAPI",
    "FastAPI good enough and more flexible",
)

# Ratios between architectures worth comparing, slower (numerator) first as
# they put it; hardware differs, so ratios are what carries over.
RATIOS = (
    ("Flask API", "Fast API"),
    ("Fast API", "Embedded function"),
    ("Fast API", "TF Serving"),
    ("Embedded function", "TF Serving"),
)


# ------------------------------------------------------------------ our names <-> theirs
def label(arch: str) -> str | None:
    """The study's name for our architecture ``arch``, or None when they did not measure it."""
    a = registry.get(arch)
    return a.study_label if a.study == STUDY else None


def arch_of(study_label: str) -> str | None:
    """Our architecture the study's ``study_label`` stands for, or None when none is registered."""
    for a in registry.architectures():
        if a.study == STUDY and a.study_label == study_label:
            return a.name
    return None


def measured() -> tuple[str, ...]:
    """Our architectures that the study measured, in the study's order."""
    return tuple(arch for arch in map(arch_of, LABELS) if arch is not None)


def ratios() -> tuple[tuple[str, str], ...]:
    """:data:`RATIOS` as pairs of our architectures (pairs without a registered one left out)."""
    pairs = ((arch_of(slow), arch_of(fast)) for slow, fast in RATIOS)
    return tuple((slow, fast) for slow, fast in pairs if slow and fast)


def table3_seconds(arch: str) -> dict[int, float] | None:
    """Their Table 3 row for our ``arch`` (seconds to process N images), or None."""
    return TABLE3_SECONDS.get(label(arch) or "")


def table4(arch: str) -> dict | None:
    """Their Table 4 row for our ``arch``, or None."""
    return TABLE4.get(label(arch) or "")


def seconds_per_image(arch: str, n: int = 10000) -> float | None:
    """Their average time for N images divided by N (derived), or None."""
    total = (table3_seconds(arch) or {}).get(n)
    return None if total is None else total / n


def cpu_percent_of_one_core(arch: str) -> float | None:
    """Their machine-wide CPU % times the 8 cores (derived), comparable to our % of one core."""
    row = table4(arch)
    return None if row is None else row["cpu_percent"] * HARDWARE["cpu_cores"]
