"""The fastapi architecture: Django forwards to a FastAPI model server under uvicorn."""
from servebench.knobs import MODEL, MODEL_SERVER
from servebench.registry import ref, register, register_service
from services.frontend.declaration import rest_model_server
from services.python_services import python_service, uvicorn

ORDER = 30

register_service(python_service(
    "fastapi", "fastapi_port", uvicorn("services.fastapi_backend.app:app", "fastapi_port", ref("backend_workers")),
    groups=(MODEL, MODEL_SERVER)), order=ORDER)

register(rest_model_server("fastapi", "FastAPI", "tab:green", "Fast API",
                           "Django forwards to a FastAPI model server (uvicorn)"), order=ORDER)
