"""The published numbers our report is set beside, kept as data.

Transcribed from ``../shared/STUDIES.md``, section 1, "Docker-container serving
architectures for real-time analysis": Table 2 (hardware), Table 3 (average time
to process N images, each size run 10 times) and Table 4 / Figure 11 (CPU and
RAM while processing 10,000 images). Only what is printed there is here;
nothing is derived except in the helpers below, which say so.
"""
from __future__ import annotations

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

# Our architecture name -> theirs. They measured TF Serving over REST only
# (gRPC is discussed as faster, not measured), so tfserving-grpc has no entry.
NAMES = {
    "embedded": "Embedded function",
    "flask": "Flask API",
    "fastapi": "Fast API",
    "tfserving-rest": "TF Serving",
}

# Table 3: average seconds to process N images, sent one image per request, sequentially.
TABLE3_SECONDS: dict[str, dict[int, float]] = {
    "embedded": {1: 0.038, 10: 0.296, 100: 2.927, 1000: 37.840, 10000: 289.219},
    "flask": {1: 2.090, 10: 20.851, 100: 209.449, 1000: 2059.050, 10000: 20702.672},
    "fastapi": {1: 0.056, 10: 0.577, 100: 5.763, 1000: 56.694, 10000: 531.959},
    "tfserving-rest": {1: 0.009, 10: 0.082, 100: 0.826, 1000: 8.167, 10000: 82.519},
}
TABLE3_SIZES = (1, 10, 100, 1000, 10000)

# Table 4 / Figure 11: averages while processing 10,000 images.
# cpu_percent is a percentage of the whole 8-core machine (not of one core).
TABLE4: dict[str, dict] = {
    "embedded": {"model_type": "general", "language": "Python", "request": "none",
                 "cpu_percent": 21.7, "ram_mb": 450.5},
    "flask": {"model_type": "general", "language": "Python", "request": "REST",
              "cpu_percent": 5.4, "ram_mb": 200.7},
    "fastapi": {"model_type": "general", "language": "Python", "request": "REST",
                "cpu_percent": 18.2, "ram_mb": 260.2},
    "tfserving-rest": {"model_type": "TF servable", "language": "C++", "request": "REST, gRPC",
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
    ("flask", "fastapi"),
    ("fastapi", "embedded"),
    ("fastapi", "tfserving-rest"),
    ("embedded", "tfserving-rest"),
)


def seconds_per_image(arch: str, n: int = 10000) -> float | None:
    """Their average time for N images divided by N (derived), or None."""
    total = TABLE3_SECONDS.get(arch, {}).get(n)
    return None if total is None else total / n


def cpu_percent_of_one_core(arch: str) -> float | None:
    """Their machine-wide CPU % times the 8 cores (derived), comparable to our % of one core."""
    row = TABLE4.get(arch)
    return None if row is None else row["cpu_percent"] * HARDWARE["cpu_cores"]
