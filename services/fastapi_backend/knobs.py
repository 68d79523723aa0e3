"""The FastAPI model server's knobs (a section of servebench.settings.Settings)."""
from servebench.knobs import KnobSection, knob


class Knobs(KnobSection):
    fastapi_port: int = knob(8001, "FastAPI model server port", ("frontend", "fastapi"), recorded=False)
