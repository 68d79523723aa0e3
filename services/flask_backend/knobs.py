"""The Flask model server's knobs (a section of servebench.settings.Settings)."""
from servebench.knobs import KnobSection, knob


class Knobs(KnobSection):
    flask_port: int = knob(5000, "Flask model server port", ("frontend", "flask"), recorded=False)
