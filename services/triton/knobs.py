"""Triton's knobs (a section of servebench.settings.Settings)."""
from servebench.knobs import KnobSection, knob


class Knobs(KnobSection):
    triton_http_port: int = knob(8010, "Triton HTTP port (KServe v2 REST)", ("frontend", "triton"), recorded=False)
    triton_grpc_port: int = knob(8011, "Triton gRPC port (KServe v2 gRPC)", ("frontend", "triton"), recorded=False)
    # Two, like SB_BACKEND_WORKERS: as many model copies as the other architectures run.
    triton_instances: int = knob(2, "model instances in Triton (each its own copy of the model)", ("triton",), ge=1)
