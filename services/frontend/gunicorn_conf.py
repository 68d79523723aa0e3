"""Gunicorn settings for the Django front end; bind/workers/threads come from the command line."""
worker_class = "gthread"
timeout = 60
keepalive = 75  # longer than nginx's upstream keepalive, so nginx closes first
accesslog = None
errorlog = "-"
loglevel = "warning"


def post_fork(server, worker):
    # A worker whose master was SIGKILLed would keep serving, unsupervised.
    from servebench.supervision import die_with_parent

    die_with_parent()


def post_worker_init(worker):
    # Build the backend (load the model for embedded) before the first request,
    # after the fork: TensorFlow is not fork-safe.
    from services.frontend import views

    views.backend()
