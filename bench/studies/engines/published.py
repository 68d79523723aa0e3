"""The numbers the engines section is set beside: the issue's own table (issue 22, "Bring your own model, and
the inference engine as an axis"), measured once on this suite's CNN with one thread, in one run. Only what
is printed there is here; its ranges stay ranges.
"""
from __future__ import annotations

SOURCE = "issue 22's table: the CIFAR-10 CNN, one thread, in one run"

# (engine as the issue names it, batch-1 latency in ms, batch-32 images/s); None: not printed
TABLE = (
    ("TF signature", "1.10-1.21", "1,070-1,320"),
    ("ONNX Runtime", "0.75-0.83", None),
    ("LiteRT", "0.77-0.82", None),
    ("OpenVINO, f32", None, "1,234-1,404"),
    ("OpenVINO, its default (bf16 here)", "0.50", "2,510-2,745"),
)
# Which of our engines each row is (engine, precision)
OURS = {"TF signature": ("tensorflow", "f32"), "ONNX Runtime": ("onnxruntime", "f32"), "LiteRT": ("litert", "f32"),
        "OpenVINO, f32": ("openvino", "f32"), "OpenVINO, its default (bf16 here)": ("openvino", "bf16")}
BF16_DIFF = 3e-3  # "changes the probabilities by up to 3e-3"
