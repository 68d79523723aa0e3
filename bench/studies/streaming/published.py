"""The published numbers the streaming section is set beside (../shared/STUDIES.md, section 4).

A YOLO v3 detector on AWS EC2 behind a TCP "streaming server"; time per image
on each machine. Only what is printed there is here.
"""
from __future__ import annotations

SOURCE = ('../shared/STUDIES.md, section 4: "A streaming server in front of cloud inference", '
          "time per image")

# (machine, what it runs on, seconds per image)
TIME_PER_IMAGE_S = (
    ("t2.micro", "CPU, YOLO v3 tiny", 1.76),
    ("p2.xlarge", "K80 GPU", 0.227),
    ("p3.2xlarge", "V100 GPU", 0.0234),
    ("local PC", "GTX 1080 GPU", 0.0271),
)
CPU_CASE = TIME_PER_IMAGE_S[0]  # the row our CPU-quota runs stand beside (YOLO v3 tiny on a CPU)
