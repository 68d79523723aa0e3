"""The Django front end's settings: a clean ``check --deploy``, no secret in the
repository or in what is recorded, and Host names limited to the configured ones.

Django runs in subprocesses, so this process never configures it.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from servebench import registry, topology
from servebench.settings import NOT_RECORDED, Settings, knob_defaults

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
FRONTEND_SETTINGS = REPO / "services" / "frontend" / "settings.py"
STRONG_KEY = "k3y-" + "".join(chr(ord("a") + i % 26) for i in range(60))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(PYTHONPATH=str(REPO), DJANGO_SETTINGS_MODULE="services.frontend.settings", **extra)
    return env


def _django(script: str, **extra: str) -> dict:
    """Run ``script`` with Django set up from the front end's settings; it prints one JSON document."""
    res = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + script],
                         cwd=REPO, env=_env(**extra), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean():
    res = subprocess.run([sys.executable, "-m", "django", "check", "--deploy", "--fail-level", "WARNING"],
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "no issues" in res.stdout and "WARNINGS" not in res.stdout + res.stderr, res.stdout + res.stderr


def test_only_https_only_and_cookie_less_checks_are_silenced():
    silenced = _django("from django.conf import settings; import json; print(json.dumps(settings.SILENCED_SYSTEM_CHECKS))")
    assert set(silenced) <= {"security.W003", "security.W004", "security.W008"}


def test_no_secret_key_is_written_in_the_repository():
    tree = ast.parse(FRONTEND_SETTINGS.read_text())
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "SECRET_KEY" for t in node.targets)]
    assert not (isinstance(value, ast.Constant) and isinstance(value.value, str)), "SECRET_KEY is a literal"


def test_secret_key_is_random_per_process_unless_set():
    script = "from django.conf import settings; import json; print(json.dumps(settings.SECRET_KEY))"
    first, second = _django(script), _django(script)
    assert first != second and len(first) >= 50
    assert _django(script, SB_SECRET_KEY=STRONG_KEY) == STRONG_KEY
    assert len(_django(script, SB_SECRET_KEY="")) >= 50  # compose passes an unset key as ''


def test_secret_key_is_never_recorded_nor_shown():
    s = Settings(secret_key=STRONG_KEY)
    assert STRONG_KEY not in json.dumps(s.recorded())
    assert STRONG_KEY not in repr(s) and STRONG_KEY not in str(s)
    # Knobs are recorded with every result: the key must not be one.
    assert "SB_SECRET_KEY" not in knob_defaults()


def test_recorded_settings_hold_no_paths_addresses_or_ports():
    rec = Settings(listen="127.0.0.5", allowed_hosts="bench.example").recorded()
    assert not NOT_RECORDED & set(rec)
    text = json.dumps(rec)
    for leak in ("/", "127.0.0.1", "127.0.0.5", "bench.example", "_port"):
        assert leak not in text, (leak, rec)
    # What a result needs stays.
    assert {"arch", "model_name", "model_version", "call_path", "max_batch", "backend_timeout_s"} <= set(rec)


def test_allowed_hosts_default_to_loopback_and_the_listen_address():
    s = Settings()
    assert {"127.0.0.1", "localhost", "[::1]"} <= set(s.host_names())
    assert ",".join(s.allowed_hosts) == knob_defaults()["SB_ALLOWED_HOSTS"]
    assert s.listen == knob_defaults()["SB_LISTEN"]
    assert Settings(listen="127.0.0.5").host_names()[-1] == "127.0.0.5"
    assert "0.0.0.0" not in Settings(listen="0.0.0.0").host_names()


def test_allowed_hosts_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SB_ALLOWED_HOSTS", " bench.example, .lab.example ")
    monkeypatch.setenv("SB_LISTEN", "192.0.2.7")
    assert Settings().host_names() == ["bench.example", ".lab.example", "192.0.2.7"]


def test_topology_passes_the_host_settings_to_the_front_end_only():
    env = topology.environment_templates(registry.service("frontend"))
    assert env["SB_ALLOWED_HOSTS"] == registry.ref("allowed_hosts")
    assert env["SB_LISTEN"] == registry.ref("listen")
    assert env["SB_SECRET_KEY"] == "${SB_SECRET_KEY:-}"
    others = [svc for name, svc in registry.services().items() if name != "frontend"]
    assert all("SB_ALLOWED_HOSTS" not in topology.environment_templates(svc) for svc in others)
    assert all("SB_SECRET_KEY" not in topology.environment_templates(svc) for svc in others)


CLIENT = """
import json
from django.conf import settings
from django.test import Client
c = Client(raise_request_exception=False)
out = {"allowed": settings.ALLOWED_HOSTS}
for host in ("evil.example", "127.0.0.1:8080", "localhost", "[::1]:8080", "192.0.2.7:80"):
    r = c.get("/nope", HTTP_HOST=host)  # 404 from an allowed host; the backend is never built
    out[host] = [r.status_code, r["Content-Type"], json.loads(r.content)["error"], r.get("X-Content-Type-Options")]
print(json.dumps(out))
"""


def test_a_disallowed_host_gets_a_400_json_error():
    out = _django(CLIENT, SB_LISTEN="192.0.2.7")
    assert out["allowed"] == ["127.0.0.1", "localhost", "[::1]", "192.0.2.7"]
    status, ctype, error, nosniff = out["evil.example"]
    assert (status, ctype, nosniff) == (400, "application/json", "nosniff")
    assert "Host" in error and "evil.example" not in error
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080", "192.0.2.7:80"):
        assert out[host][0] == 404, (host, out[host])


@pytest.mark.parametrize("listen", ["0.0.0.0", "[::]"])
def test_a_wildcard_listen_address_allows_only_the_configured_names(listen):
    out = _django(CLIENT, SB_LISTEN=listen)
    assert out["allowed"] == ["127.0.0.1", "localhost", "[::1]"]
    assert out["192.0.2.7:80"][0] == 400


def test_a_bad_knob_is_refused_with_its_variable_named(monkeypatch):
    from servebench.settings import from_environment

    monkeypatch.setenv("SB_FRONTEND_WORKERS", "two")
    monkeypatch.setenv("SB_CALL_PATH", "fast")
    with pytest.raises(SystemExit) as exc:
        from_environment()
    message = str(exc.value)
    assert "SB_FRONTEND_WORKERS='two'" in message and "SB_CALL_PATH='fast'" in message
