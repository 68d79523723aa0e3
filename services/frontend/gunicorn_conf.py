"""Gunicorn settings for the Django front end: the shared ones, and its backend (the model for embedded)
built in each worker."""
from services.gunicorn_settings import (accesslog, build_in_worker, errorlog, keepalive, loglevel, post_fork,
                                        timeout, worker_class)

__all__ = ["accesslog", "errorlog", "keepalive", "loglevel", "post_fork", "timeout", "worker_class"]
post_worker_init = build_in_worker("services.frontend.views", "backend")
