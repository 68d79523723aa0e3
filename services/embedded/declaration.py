"""The embedded architecture: the model runs inside each Django worker (no backend service)."""
from servebench.registry import Architecture, register
from services.frontend.declaration import FRONT

ORDER = 10

register(Architecture(
    name="embedded", title="Embedded", color="tab:blue", services=FRONT, profile="embedded",
    backend="services.embedded.backend:EmbeddedBackend",
    study="docker-serving", study_label="Embedded function",
    description="the model runs inside each Django worker"), order=ORDER)
