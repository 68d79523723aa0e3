"""Batching with one knob: the threads and connections follow SB_BATCH_MAX_SIZE unless set, the values in force
are the ones recorded and passed to every service, and batch knobs that contradict each other are refused."""
from __future__ import annotations

import pytest

from servebench import registry, topology
from servebench.settings import (UNBATCHED_CONCURRENCY, Settings, batching_concurrency, env_name, from_environment,
                                 knob_defaults)

pytestmark = pytest.mark.unit

CONCURRENCY = tuple(UNBATCHED_CONCURRENCY)  # frontend_threads, backend_threads, backend_pool_size


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("SB_"):
            monkeypatch.delenv(name)
    return monkeypatch


def in_force(s) -> dict:
    return {name: getattr(s, name) for name in CONCURRENCY}


def test_batching_off_keeps_the_defaults_of_before():
    assert in_force(Settings.given()) == {"frontend_threads": 4, "backend_threads": 4, "backend_pool_size": 8}
    assert in_force(Settings.given(batch_max_size=1, frontend_workers=1, backend_workers=8)) == UNBATCHED_CONCURRENCY
    # compose's file and the knobs table show batching off's defaults
    assert {knob_defaults()[env_name(n)] for n in CONCURRENCY} == {"4", "8"}


@pytest.mark.parametrize("size, frontend_workers, backend_workers, want", [
    # Embedded: each Django worker batches, so each needs a batch's threads; flask and fastapi: each backend
    # worker needs a batch in flight, carried by the front end's workers.
    (32, 2, 2, {"frontend_threads": 32, "backend_threads": 32, "backend_pool_size": 32}),
    (32, 4, 2, {"frontend_threads": 32, "backend_threads": 32, "backend_pool_size": 32}),
    (32, 1, 4, {"frontend_threads": 128, "backend_threads": 32, "backend_pool_size": 128}),
    (8, 4, 6, {"frontend_threads": 12, "backend_threads": 8, "backend_pool_size": 12}),
    (2, 2, 2, {"frontend_threads": 4, "backend_threads": 4, "backend_pool_size": 8}),  # never below batching off's
])
def test_each_tier_gets_the_threads_a_full_batch_needs(size, frontend_workers, backend_workers, want):
    s = Settings.given(batch_max_size=size, frontend_workers=frontend_workers, backend_workers=backend_workers)
    assert in_force(s) == want == batching_concurrency(size, frontend_workers, backend_workers)
    # every model process can fill a batch: a Django worker's threads (embedded), a backend worker's (flask),
    # and the front end carries a batch for every backend worker (flask, fastapi)
    assert s.frontend_threads >= size and s.backend_threads >= size
    assert s.frontend_threads * frontend_workers >= size * backend_workers
    assert s.backend_pool_size >= s.frontend_threads


def test_an_explicit_setting_wins_and_the_pool_follows_the_threads_in_force():
    s = Settings.given(batch_max_size=32, frontend_threads=6, backend_threads=2)
    assert in_force(s) == {"frontend_threads": 6, "backend_threads": 2, "backend_pool_size": 8}
    assert Settings.given(batch_max_size=32, backend_pool_size=3).backend_pool_size == 3
    assert Settings.given(frontend_threads=16).backend_pool_size == 16  # a pool below the threads throws some away
    assert Settings.given(batch_max_size=32, frontend_threads=4).frontend_threads == 4  # even batching off's value


def test_the_environment_gives_the_same_values(clean_env):
    clean_env.setenv("SB_BATCH_MAX_SIZE", "16")
    clean_env.setenv("SB_BACKEND_THREADS", "5")
    s = from_environment()
    assert in_force(s) == {"frontend_threads": 16, "backend_threads": 5, "backend_pool_size": 16}
    assert s.model_fields_set >= {"batch_max_size", "backend_threads"} and "frontend_threads" not in s.model_fields_set


def test_the_values_recorded_and_passed_on_are_the_ones_in_force():
    s = Settings.given(batch_max_size=24)
    assert {n: s.recorded()[n] for n in CONCURRENCY} == in_force(s) == {
        "frontend_threads": 24, "backend_threads": 24, "backend_pool_size": 24}
    assert {n: s.knob_env()[env_name(n)] for n in CONCURRENCY} == {n: str(v) for n, v in in_force(s).items()}
    assert in_force(Settings.from_env(s.knob_env())) == in_force(s)  # a stack's state file rebuilds them
    assert topology.recorded(s, "fastapi")["backend_threads"] == 24  # its /v1/info


@pytest.mark.parametrize("arch", ["embedded", "flask", "fastapi"])
def test_every_service_receives_the_values_in_force(arch, tmp_path):
    s = Settings.given(batch_max_size=32, arch=arch)
    for svc in registry.services_for(arch):
        _, env = topology.native_launch(svc, arch, s, tmp_path, {})
        rebuilt = Settings.from_env(env)  # what the service's own Settings() reads
        for name in topology.knobs_of(svc):
            assert getattr(rebuilt, name) == getattr(s, name), (svc.name, name)
        for name in set(CONCURRENCY) & set(topology.knobs_of(svc)):
            assert env[env_name(name)] == str(getattr(s, name))
        argv = topology.native_launch(svc, arch, s, tmp_path, {})[0]
        if svc.name in ("frontend", "flask"):  # gunicorn's threads
            threads = s.frontend_threads if svc.name == "frontend" else s.backend_threads
            assert argv[argv.index("--threads") + 1] == str(threads) == "32"


def test_a_copy_follows_batching_unless_set():
    base = Settings.given()
    on = base.model_copy(update={"batch_max_size": 16})
    assert in_force(on) == {"frontend_threads": 16, "backend_threads": 16, "backend_pool_size": 16}
    assert in_force(on.model_copy(update={"batch_max_size": 1})) == UNBATCHED_CONCURRENCY
    fixed = Settings.given(frontend_threads=8).model_copy(update={"batch_max_size": 16})
    assert fixed.frontend_threads == 8 and fixed.backend_threads == 16
    assert base.model_copy(update={"arch": "fastapi"}) == base.model_copy(update={"arch": "fastapi"})


@pytest.mark.parametrize("env, variable, says", [
    ({"SB_BATCH_TIMEOUT_MS": "5"}, "SB_BATCH_TIMEOUT_MS='5'", "needs batching on"),
    ({"SB_BATCH_TIMEOUT_MS": "5", "SB_BATCH_MAX_SIZE": "1"}, "SB_BATCH_TIMEOUT_MS='5'", "SB_BATCH_MAX_SIZE is 1"),
    ({"SB_BATCH_MAX_SIZE": "300"}, "SB_BATCH_MAX_SIZE='300'", "above SB_MAX_BATCH=256"),
    ({"SB_BATCH_MAX_SIZE": "32", "SB_MAX_BATCH": "16"}, "SB_BATCH_MAX_SIZE='32'", "above SB_MAX_BATCH=16"),
])
def test_batch_knobs_that_contradict_each_other_are_refused_naming_the_knob(clean_env, env, variable, says):
    for k, v in env.items():
        clean_env.setenv(k, v)
    with pytest.raises(SystemExit) as exc:
        from_environment()
    message = str(exc.value)
    assert message.startswith(f"error: bad setting: {variable}: ") and says in message and "\n" not in message


@pytest.mark.parametrize("given", [{"batch_max_size": 8, "batch_timeout_ms": 2}, {"batch_max_size": 256},
                                   {"batch_max_size": 1, "batch_timeout_ms": 0}, {"max_batch": 4}])
def test_batch_knobs_that_agree_are_taken(given):
    assert Settings.given(**given)


def test_a_copy_that_contradicts_itself_is_refused_naming_the_knob():
    with pytest.raises(ValueError, match=r"^SB_BATCH_TIMEOUT_MS=2: .*needs batching on"):
        Settings.given(batch_max_size=8, batch_timeout_ms=2).model_copy(update={"batch_max_size": 1})
    with pytest.raises(ValueError, match=r"^SB_BATCH_MAX_SIZE=64: .*SB_MAX_BATCH=32"):
        Settings.given().model_copy(update={"batch_max_size": 64, "max_batch": 32})
