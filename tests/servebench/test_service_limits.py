"""A registry service with limits: natively it runs in a cgroup of its own, under compose mem_limit/cpus."""
from __future__ import annotations

import pytest

from servebench import cgroups, registry, stack, topology
from servebench.cgroups import Limits
from servebench.registry import Architecture, Service
from servebench.settings import HarnessSettings
from tests.stacks import stack_settings

ARCH = "sb-limits-dummy"
SVC = "sb-limits-echo"


@pytest.fixture
def limited():
    # A test double: Python's http.server, limited by the Flask port's knob for want of a knob of its own.
    registry.register_service(Service(
        name=SVC, port_field="flask_port", health_path="/",
        command=("python", "-m", "http.server", "--bind", "127.0.0.1", registry.ref("flask_port")),
        limits=lambda s: Limits(memory_mb=256, cpus=0.5) if s.backend_workers == 2 else Limits.lambda_like(3538)))
    registry.register(Architecture(name=ARCH, title="Limits Dummy", color="tab:olive", services=(SVC,), profile=ARCH,
                                   backend="services.frontend.backends:EmbeddedBackend", description="a test double"))
    yield
    registry.unregister(ARCH)


@pytest.mark.unit
def test_compose_gets_the_limits_as_variables_with_the_defaults(limited):
    spec = topology.compose_document()["services"][SVC]
    assert spec["mem_limit"] == "${SB_LIMIT_SB_LIMITS_ECHO_MEMORY_MB:-256}m"
    assert spec["cpus"] == "${SB_LIMIT_SB_LIMITS_ECHO_CPUS:-0.5}"
    subst = topology.compose_substitutions(ARCH, stack_settings(backend_workers=3))
    assert subst["SB_LIMIT_SB_LIMITS_ECHO_MEMORY_MB"] == "3538" and subst["SB_LIMIT_SB_LIMITS_ECHO_CPUS"] == "2"
    assert "mem_limit" not in topology.compose_document()["services"]["flask"]


@pytest.mark.integration
@pytest.mark.skipif(bool(cgroups.unavailable()), reason=f"no cgroup limits here: {cgroups.unavailable()}")
def test_a_limited_service_runs_in_its_own_cgroup_until_down(limited, tmp_path):
    rt = stack.NativeRuntime(HarnessSettings(run_dir=tmp_path))
    st = rt.up(ARCH, stack_settings(), log=lambda *_: None)
    name = stack.cgroup_name(tmp_path, SVC)
    try:
        rec = st.doc["services"][SVC]
        assert rec["limits"] == {"cgroup": f"servebench/{name}", "memory_mb": 256, "cpus": 0.5}
        group = cgroups.CGroup(name)  # the runtime's group: no limits given, none changed
        assert rec["pid"] in group.pids()
        assert (group.paths["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert int((group.paths["memory"] / "memory.limit_in_bytes").read_text()) == 256 * 1024 * 1024
    finally:
        rt.down(log=lambda *_: None)
    assert not (cgroups.ROOT / "memory" / cgroups.PARENT / name).exists()
