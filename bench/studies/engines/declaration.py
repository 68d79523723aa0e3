"""The engines study's record."""
from servebench.registry import declare_study

ORDER = 95

declare_study(__name__, ORDER, "engines",
              "The inference engine as an axis: TensorFlow, XLA, ONNX Runtime, OpenVINO and LiteRT",
              "issue 22 (no published system: the issue's own one-run table is the comparison)")
