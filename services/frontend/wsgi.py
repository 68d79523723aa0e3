"""The front end's WSGI application: Django, behind a guard for headers Django cannot parse.

Django parses the Content-Type header while building the request, before any
view or error handler runs: a malformed charset parameter (an RFC 2231
encoding it does not know, a NUL in the charset name) raises there and becomes
gunicorn's HTML 500. The guard answers those with a JSON 400 instead.
"""
import codecs
import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "services.frontend.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.utils.http import parse_header_parameters  # noqa: E402

django_application = get_wsgi_application()


def content_type_problem(value: str) -> str | None:
    """What Django would choke on in a Content-Type header, or None."""
    try:
        _, params = parse_header_parameters(value)
        if "charset" in params:
            codecs.lookup(params["charset"])
    except LookupError:
        return None  # Django ignores an unknown charset name itself
    except (ValueError, TypeError) as exc:
        return str(exc)[:200]
    return None


def application(environ, start_response):
    value = environ.get("CONTENT_TYPE", "")
    problem = content_type_problem(value) if ";" in value else None
    if problem is not None:
        body = json.dumps({"error": f"malformed Content-Type header: {problem}"}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(body)))])
        return [body]
    return django_application(environ, start_response)
