"""Fixtures shared by every test: one inference core per session, the CIFAR-10 copy, real stacks.

Every test carries exactly one of the markers ``unit`` (no server is started),
``integration`` (real servers on loopback) or ``docker`` (a Docker engine);
``slow`` marks the long ones. ``make test-unit`` is ``pytest -m "unit and not slow"``.
"""
from __future__ import annotations


import os
import signal

import pytest

# Tests never download CIFAR-10; without a local copy the dataset tests skip.
os.environ.setdefault("SB_ALLOW_DOWNLOAD", "0")

from servebench import cgroups, data, stack  # noqa: E402
from tests import conformance  # noqa: E402
from tests.stacks import stack_settings  # noqa: E402

TEST_SPLIT_IMAGES = 500


@pytest.fixture(scope="session")
def cifar_dir():
    """The local cifar-10-batches-py folder, or a skip that says how to provide one."""
    folder = data.default_dir()
    if folder is None or not folder.is_dir():
        pytest.skip("no CIFAR-10 copy: set SB_CIFAR10_DIR to a cifar-10-batches-py folder")
    return folder


@pytest.fixture(scope="session")
def test_split(cifar_dir):
    """The first test images (any prefix of the shared copy is roughly class-balanced)."""
    return data.load_test(cifar_dir, limit=TEST_SPLIT_IMAGES)


@pytest.fixture(scope="session")
def core():
    """The servers' inference core, built from the same settings; loading TF takes seconds, so once."""
    from servebench.inference import InferenceCore
    from servebench.settings import Settings

    return InferenceCore.from_settings(Settings())


@pytest.fixture(scope="module")
def start_stack(tmp_path_factory):
    """start_stack(arch, **knobs) -> StackState, knobs by field or variable name (SB_FRONTEND_WORKERS="1");
    everything is stopped at module end."""
    started = []

    def start(arch: str, **knobs):
        run = tmp_path_factory.mktemp(f"run-{arch}")
        st = stack.up(arch, stack_settings(**knobs), run, log=lambda *_: None)
        started.append(run)
        return st

    yield start
    for run in started:
        stack.down(run, log=lambda *_: None)


@pytest.fixture(scope="session", params=conformance.params(conformance.http_architectures(), once=True))
def _shared_http_stack(request, tmp_path_factory):
    """One stack per HTTP architecture for the whole session, with conformance.HTTP_STACK_KNOBS.

    Session-scoped and parametrized, so pytest runs every test that uses it architecture by architecture,
    across modules: each architecture starts once for the fault, fuzz, surface, protocol and architecture
    tests instead of once per module.
    """
    run = tmp_path_factory.mktemp(f"shared-{request.param}")
    try:
        st = stack.up(request.param, stack_settings(**conformance.HTTP_STACK_KNOBS), run, log=lambda *_: None,
                      timeout_s=conformance.START_TIMEOUT_S)
    except stack.StackError as exc:
        if cgroups.unavailable():  # its services run under limits this machine cannot apply: say so
            pytest.skip(str(exc))
        raise
    yield st
    stack.down(run, log=lambda *_: None)


@pytest.fixture
def http_stack(_shared_http_stack):
    """The shared stack of the test's architecture; a service a test before left dead is started again."""
    st = _shared_http_stack
    for name, (state, _) in st.health().items():
        if state != "up":
            stack.restart_service(st, name, timeout_s=conformance.START_TIMEOUT_S)
    return st


KINDS = ("unit", "integration", "docker")


def pytest_configure(config):
    # A shell without job control starts background jobs (`make test &`) with SIGINT ignored, and
    # children inherit it: the tests that press Ctrl-C on a harness would then test nothing.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    """A test without its kind would escape `make test-unit` or run there by mistake."""
    for item in items:
        kinds = [k for k in KINDS if item.get_closest_marker(k)]
        if len(kinds) != 1:
            raise pytest.UsageError(f"{item.nodeid} must carry exactly one of the markers {KINDS} (has {kinds})")
