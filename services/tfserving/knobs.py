"""TensorFlow Serving's knobs (a section of servebench.settings.Settings)."""
from servebench.knobs import KnobSection, knob


class Knobs(KnobSection):
    tfserving_grpc_port: int = knob(8500, "TF Serving gRPC port", ("frontend", "tfserving"), recorded=False)
    tfserving_rest_port: int = knob(8501, "TF Serving REST port", ("frontend", "tfserving"), recorded=False)
    tfserving_batching: bool = knob(False, "TF Serving server-side batching (services/tfserving/batching.config)",
                                    ("tfserving",))
