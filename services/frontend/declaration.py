"""The request path every architecture but streaming shares: nginx in front of the Django front end."""
from pathlib import Path

from servebench.knobs import MODEL
from servebench.registry import Architecture, RuntimeValue, Service, register_service
from services.python_services import gunicorn, python_service

ORDER = 0  # where its records come in listings (CLI choices, tables, the compose file)

FRONT = ("frontend", "nginx")  # an architecture's services end with these (start order)


def rest_model_server(name: str, title: str, color: str, study_label: str, description: str) -> Architecture:
    """The docker-serving study's architecture whose front end forwards over REST to the model server ``name``
    (its service and compose profile; its port knob ``<name>_port``)."""
    return Architecture(name=name, title=title, color=color, services=(name, *FRONT), profile=name,
                        backend="services.frontend.backends:ModelServerBackend", backend_port=f"{name}_port",
                        protocol="rest", study="docker-serving", study_label=study_label, description=description)


register_service(Service(
    name="nginx",
    port_field="port",
    command=("python", "-m", "servebench.nginx_conf", "--exec", "--prefix", "${SB_NGINX_PREFIX}"),
    runtime_vars={"SB_NGINX_PREFIX": RuntimeValue(native=lambda s, run_dir: str(Path(run_dir) / "nginx"),
                                                  docker=lambda s: "/tmp/servebench-nginx")},
    health_path="/nginx-health",
    dockerfile="nginx/Dockerfile",
    depends_on=("frontend",),
), order=ORDER)

register_service(python_service(
    "frontend", "frontend_port",
    gunicorn("services.frontend.wsgi:application", "services/frontend/gunicorn_conf.py", "frontend_port",
             "frontend_workers", "frontend_threads"),
    groups=(MODEL,),
    environment={
        "SB_ARCH": "${ARCH:-embedded}",
        # Not a knob (knobs are recorded): passed through when set, else each worker draws one.
        "SB_SECRET_KEY": "${SB_SECRET_KEY:-}",
    },
), order=ORDER)
