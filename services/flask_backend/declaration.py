"""The flask architecture: Django forwards to a Flask model server under gunicorn."""
from servebench.knobs import MODEL, MODEL_SERVER
from servebench.registry import register, register_service
from services.frontend.declaration import rest_model_server
from services.python_services import gunicorn, python_service

ORDER = 20

register_service(python_service(
    "flask", "flask_port",
    gunicorn("services.flask_backend.app:app", "services/flask_backend/gunicorn_conf.py", "flask_port",
             "backend_workers", "backend_threads"),
    groups=(MODEL, MODEL_SERVER)), order=ORDER)

register(rest_model_server("flask", "Flask", "tab:orange", "Flask API",
                           "Django forwards to a Flask model server (gunicorn gthread)"), order=ORDER)
