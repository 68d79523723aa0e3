"""The study's numbers, as printed (../shared/STUDIES.md, section 2). Nothing here is derived."""
from __future__ import annotations

SOURCE = "../shared/STUDIES.md, section 2: AlexNet split into four AWS Lambda functions with S3 between them"
HARDWARE = {"functions": "AWS Lambda, 3,008 MB (memMax) unless right-sized", "gpu_baseline": "one TITAN X Pascal"}
STAGES = ("Conv_1", "Conv_2", "Conv_3", "FC")

# Tables 1 and 2: memory per stage (MB), time (s) and cost (USD).
TABLES = [
    {"setting": "memMax-1000", "memory_mb": (3008, 3008, 3008, 3008), "time_s": 99, "cost_usd": 0.0970},
    {"setting": "memMin-1000", "memory_mb": (2048, 1280, 1024, 768), "time_s": 134, "cost_usd": 0.0582},
    {"setting": "memMax-500", "memory_mb": (3008, 3008, 3008, 3008), "time_s": 57, "cost_usd": 0.0558},
    {"setting": "memMin-500", "memory_mb": (1280, 1024, 768, 768), "time_s": 90, "cost_usd": 0.0281},
]

# One record on Lambda (20 records in parallel) against one GPU.
RECORD_TIME_S = {1000: 99, 500: 57, 100: 28}
GPU_RECORD_1000_S = 176
# Fig. 5: 100,000 images in 1,000-image records.
GPU_100K_S = 902
FIG5_FINDINGS = ("Lambda beat the GPU from 8 parallel workers on; 32 to 64 workers gave no more speed, only cost.")
FIG3_FINDINGS = ("Memory and time per stage grow with images per record; Conv_1 is the heaviest, FC the lightest; "
                 "below ~500 images per record much memory sits idle.")
