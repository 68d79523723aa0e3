"""Django settings for the front end: no database, no admin, no sessions, DEBUG off.

``django-admin check --deploy`` is clean (tests/unit/test_frontend_settings.py).
"""
from django.core.management.utils import get_random_secret_key

from servebench.settings import Settings

SB = Settings()  # the one options object; views read it from here

# The front end signs nothing (no sessions, no auth, no CSRF tokens), so a key
# drawn per process is as good as a shared one; SB_SECRET_KEY sets one anyway.
SECRET_KEY = SB.secret_key.get_secret_value() if SB.secret_key else get_random_secret_key()
DEBUG = False
# nginx passes the client's Host on; SB_ALLOWED_HOSTS plus SB_LISTEN (views.validate_host checks it).
ALLOWED_HOSTS = SB.host_names()
ROOT_URLCONF = "services.frontend.urls"
WSGI_APPLICATION = "services.frontend.wsgi.application"
INSTALLED_APPS: list[str] = []
# Each middleware is a cost on the measured path: these three are a few header
# assignments and one Host check per request.
MIDDLEWARE: list[str] = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "services.frontend.views.validate_host",
]
X_FRAME_OPTIONS = "DENY"
DATABASES: dict = {}
USE_TZ = True
DATA_UPLOAD_MAX_MEMORY_SIZE = SB.max_body_bytes
# A loopback HTTP benchmark behind nginx: there is no HTTPS to redirect to or pin.
SILENCED_SYSTEM_CHECKS = [
    "security.W004",  # SECURE_HSTS_SECONDS: HSTS is only honoured over HTTPS
    "security.W008",  # SECURE_SSL_REDIRECT: no HTTPS listener to redirect to
    "security.W003",  # CsrfViewMiddleware: no cookies, sessions or auth, so a forged request gains nothing
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING"}},
}
