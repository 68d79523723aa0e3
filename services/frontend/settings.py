"""Django settings for the front end: no database, no admin, no sessions, DEBUG off."""
from servebench.settings import Settings

SB = Settings()  # the one options object; views read it from here

SECRET_KEY = "servebench-frontend-has-no-sessions-or-auth"
DEBUG = False
# Loopback benchmark behind nginx; no URL is built from the Host header.
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "services.frontend.urls"
WSGI_APPLICATION = "services.frontend.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []  # each middleware is a cost on the measured path
DATABASES: dict = {}
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = SB.max_body_bytes
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING"}},
}
