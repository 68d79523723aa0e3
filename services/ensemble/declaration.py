"""The ensemble architectures: three member functions (the FastAPI model server, one model each, one worker,
in a cgroup whose CPU follows its memory as on Lambda) and a coordinator that averages them."""
from servebench.cgroups import Limits
from servebench.knobs import MODEL, MODEL_SERVER
from servebench.registry import Architecture, RuntimeValue, register, register_service
from servebench.settings import REPO_ROOT
from services.ensemble.members import MEMBERS
from services.frontend.declaration import FRONT
from services.python_services import python_service, uvicorn

ORDER = 70
BACKEND = "services.ensemble.backend:EnsembleBackend"


def member_limits(settings) -> "Limits | None":
    mb = settings.ensemble_member_memory_mb
    return Limits.lambda_like(mb) if mb else None


def _member_model_base(model: str) -> RuntimeValue:
    return RuntimeValue(native=lambda s, run_dir: str(REPO_ROOT / "models" / model),
                        docker=lambda s: f"/app/models/{model}")


for _member, _model in MEMBERS.items():
    register_service(python_service(
        f"ensemble-{_member}", f"ensemble_{_member}_port",
        # One process per function, as a Lambda instance is; its threads take concurrent calls.
        uvicorn("services.fastapi_backend.app:app", f"ensemble_{_member}_port", "1"),
        groups=(MODEL, MODEL_SERVER, "ensemble-member"), model_base=_member_model_base(_model),
        limits=member_limits), order=ORDER)

register_service(python_service(
    "ensemble", "ensemble_port", uvicorn("services.ensemble.app:app", "ensemble_port", "1"),
    # The model groups for max_batch, the body limit and its threads; it loads no model itself.
    groups=(MODEL, MODEL_SERVER), model_base=None,
    environment={"SB_ARCH": "${ARCH:-ensemble-parallel}"},
    depends_on=tuple(f"ensemble-{m}" for m in MEMBERS)), order=ORDER)

SERVICES = (*(f"ensemble-{m}" for m in MEMBERS), "ensemble", *FRONT)
_CALLS = "Django forwards to a coordinator that calls three model functions "  # how both descriptions start
for _name, _title, _color, _label, _description in (
        ("ensemble-serial", "Ensemble, serial", "tab:olive", "Serial (sum of T)",
         _CALLS + "one after another and averages their probabilities"),
        ("ensemble-parallel", "Ensemble, parallel", "tab:cyan", "Parallel (Step Functions)",
         _CALLS + "at once and averages their probabilities "
                  "(a deadline mode answers with those that answered in time)")):
    register(Architecture(
        name=_name, title=_title, color=_color, services=SERVICES, profile="ensemble", backend=BACKEND,
        backend_port="ensemble_port", protocol="rest", study="ensemble", study_label=_label,
        description=_description), order=ORDER)
