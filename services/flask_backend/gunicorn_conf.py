"""Gunicorn settings for the Flask model server; bind/workers/threads come from the command line."""
worker_class = "gthread"
timeout = 60
keepalive = 75
accesslog = None
errorlog = "-"
loglevel = "warning"


def post_fork(server, worker):
    # A worker whose master was SIGKILLed would keep serving, unsupervised.
    from servebench.supervision import die_with_parent

    die_with_parent()


def post_worker_init(worker):
    # Load the model after the fork (TensorFlow is not fork-safe), before the first request.
    from services.flask_backend import app

    app.model()
