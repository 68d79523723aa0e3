"""Gunicorn settings for the Flask model server: the shared ones, and its model loaded in each worker."""
from services.gunicorn_settings import (accesslog, build_in_worker, errorlog, keepalive, loglevel, post_fork,
                                        timeout, worker_class)

__all__ = ["accesslog", "errorlog", "keepalive", "loglevel", "post_fork", "timeout", "worker_class"]
post_worker_init = build_in_worker("services.flask_backend.app", "model")
