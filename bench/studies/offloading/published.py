"""The study's Table 1 (../shared/STUDIES.md, section 5): upload time saved by the separate build thread.

Client: an Odroid XU4; edge server: a 4-core 3.6 GHz x86 with a Titan XP; Caffe; an 80 Mbps link.
None where the study gives no number.
"""
from __future__ import annotations

LINK_MBIT = 80
# model -> size (MB), pieces, saved (s), saved (%), baseline (s), proposed (s), expected from size (s)
TABLE1 = {
    "resnet152": {"size_mb": 243, "pieces": 41, "saved_s": 6.3, "saved_pct": 19.3, "baseline_s": 32.3,
                  "proposed_s": 26.0, "expected_s": 24.3},
    "resnet50": {"size_mb": 103, "pieces": 11, "saved_s": 0.6, "saved_pct": 4.7, "baseline_s": None,
                 "proposed_s": None, "expected_s": None},
    "mobilenet": {"size_mb": 17, "pieces": 17, "saved_s": 0.9, "saved_pct": 30.0, "baseline_s": 3.0,
                  "proposed_s": 2.1, "expected_s": None},
    "alexnet": {"size_mb": 244, "pieces": 7, "saved_s": 0.3, "saved_pct": 1.1, "baseline_s": None,
                "proposed_s": None, "expected_s": None},
}
RESNET152_BUILD_S = 5.2  # its pieces' total build time
