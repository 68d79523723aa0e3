"""How a Python service is declared: its gunicorn or uvicorn command line and its :class:`Service` record.

The front end and the Flask model server run under gunicorn; the FastAPI model server and the ensemble's
members and coordinator under uvicorn. Ports and process counts are knob references
(:func:`servebench.registry.ref`), resolved by both runtimes.
"""
from servebench.registry import MODEL_BASE, PYTHON_DOCKERFILE, RuntimeValue, Service, ref


def gunicorn(app: str, conf: str, port_field: str, workers: str, threads: str) -> tuple[str, ...]:
    """gunicorn serving ``app`` with the settings file ``conf``; ``workers``, ``threads``: knob fields."""
    return ("gunicorn", app, "--config", conf, "--bind", "127.0.0.1:" + ref(port_field),
            "--workers", ref(workers), "--threads", ref(threads))


def uvicorn(app: str, port_field: str, workers: str) -> tuple[str, ...]:
    """uvicorn serving ``app``; ``workers``: a count, or a knob reference."""
    return ("uvicorn", app, "--host", "127.0.0.1", "--port", ref(port_field), "--workers", workers,
            "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            # Uvicorn's default (5 s) races with the front end reusing its pooled connections.
            "--timeout-keep-alive", "75")


def python_service(name: str, port_field: str, command: tuple[str, ...], groups: tuple[str, ...],
                   model_base: RuntimeValue | None = MODEL_BASE, **record) -> Service:
    """A service of the shared Python image; ``model_base``: where the model it loads is (None: loads none)."""
    return Service(name=name, port_field=port_field, command=command, groups=groups,
                   runtime_env={"SB_MODEL_BASE": model_base} if model_base else {},
                   dockerfile=PYTHON_DOCKERFILE, **record)
