"""The gunicorn settings both gunicorn services share (the Django front end and the Flask model server).

Each folder's ``gunicorn_conf.py`` (the file its command passes to ``--config``) takes these and adds its
``post_worker_init``, which builds the worker's model. bind/workers/threads come from the command line.
"""
import importlib

worker_class = "gthread"
timeout = 60
keepalive = 75  # longer than nginx's upstream keepalive, so nginx closes first
accesslog = None
errorlog = "-"
loglevel = "warning"


def post_fork(server, worker):
    # A worker whose master was SIGKILLed would keep serving, unsupervised.
    from servebench.supervision import die_with_parent

    die_with_parent(parent=server.pid)


def build_in_worker(module: str, builder: str):
    """A ``post_worker_init`` hook that calls ``module.builder()``: it loads the model after the fork
    (TensorFlow is not fork-safe), before the worker's first request."""
    def post_worker_init(worker):
        getattr(importlib.import_module(module), builder)()

    return post_worker_init
