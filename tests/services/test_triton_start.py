"""The Triton service's start: PyTriton's handshake race is tried again (START_ATTEMPTS in all), anything else is raised
(``services.triton.server.start`` with a test double of PyTriton's ``Triton``; no server runs)."""
from __future__ import annotations

import pytest

from services.triton import server


class FakeTriton:
    """A test double of pytriton.triton.Triton: ``run`` fails as told, once per instance."""

    def __init__(self, failure: Exception | None, log: list):
        self.failure, self.log = failure, log

    def bind(self, **kw) -> None:
        self.log.append("bind")

    def run(self) -> None:
        self.log.append("run")
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        self.log.append("stop")


def get_config_from_handshake_server():  # named as PyTriton's, so the traceback reads as its race does
    raise ConnectionRefusedError(111, "Connection refused")


def _handshake_failure() -> Exception:
    try:
        get_config_from_handshake_server()
    except ConnectionRefusedError as exc:
        return exc
    raise AssertionError


@pytest.fixture
def bound(monkeypatch):
    monkeypatch.setattr(server, "bind", lambda triton, settings, cores: triton.bind())


@pytest.mark.unit
def test_missed_handshakes_are_started_again(bound):
    log: list = []
    failures = iter([_handshake_failure(), _handshake_failure(), None])
    triton = server.start(lambda: FakeTriton(next(failures), log), None, [])
    assert triton.failure is None and log == ["bind", "run", "stop"] * 2 + ["bind", "run"]


@pytest.mark.unit
def test_a_handshake_missed_on_every_attempt_or_any_other_failure_is_raised(bound):
    log: list = []
    with pytest.raises(ConnectionRefusedError):
        server.start(lambda: FakeTriton(_handshake_failure(), log), None, [])
    assert log.count("run") == server.START_ATTEMPTS and log[-1] == "stop"
    log.clear()
    with pytest.raises(ValueError, match="bad config"):
        server.start(lambda: FakeTriton(ValueError("bad config"), log), None, [])
    assert log == ["bind", "run", "stop"]
