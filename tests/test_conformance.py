"""The conformance tests take their architectures from the registry (tests/conformance.py), never from a list."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from servebench import registry
from servebench.registry import Architecture, Need
from tests import conformance

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent
CONFORMANCE_MODULES = [
    "services/test_architectures.py", "services/test_faults.py", "services/test_http_fuzz.py",
    "services/test_surface.py", "services/test_protocols.py", "services/test_stream_stack.py",
    "services/test_stream_server.py", "servebench/test_compose.py", "servebench/test_compose_services.py",
]


def _parametrizations(tree: ast.Module):
    """The values of every ``parametrize(...)`` and ``fixture(params=...)``, a module-level name by its value."""
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "parametrize":
                args = node.args[1:]
            elif node.func.attr == "fixture":
                args = [kw.value for kw in node.keywords if kw.arg == "params"]
            else:
                continue
            for arg in args:
                yield assigned.get(arg.id, arg) if isinstance(arg, ast.Name) else arg


@pytest.mark.parametrize("module", CONFORMANCE_MODULES)
def test_no_conformance_module_lists_architectures_by_name(module):
    names = set(registry.names())
    tree = ast.parse((TESTS / module).read_text())
    named = [c.value for arg in _parametrizations(tree) for c in ast.walk(arg)
             if isinstance(c, ast.Constant) and c.value in names]
    assert not named, f"{module} parametrizes over {named}: take them from tests/conformance.py"


def test_a_new_architecture_gets_the_conformance_tests_or_a_skip_that_says_why():
    how = "install no-such-server (a test's dummy)"
    registry.register(Architecture(
        name="dummy-conformance", title="Dummy", color="black", services=("fastapi", "frontend", "nginx"),
        profile="fastapi", backend="services.frontend.backends:ModelServerBackend", backend_port="fastapi_port",
        protocol="rest", needs=(Need("binary", "no-such-server-here", how),)))
    try:
        [param] = [p for p in conformance.params(conformance.http_architectures()) if p.id == "dummy-conformance"]
        assert [m.kwargs["reason"] for m in param.marks] == [f"dummy-conformance: {how}"]
        assert conformance.forwarded_to("dummy-conformance") == "fastapi"
        assert conformance.members_of("dummy-conformance") == ()
        assert "dummy-conformance" not in [a.name for a in conformance.stream_architectures()]
    finally:
        registry.unregister("dummy-conformance")


def test_the_shapes_derived_from_the_services():
    for arch in conformance.http_architectures():
        backend = conformance.forwarded_to(arch.name)
        assert conformance.model_service(arch.name) == (backend or conformance.FRONTEND)
        assert backend is None or arch.services.index(backend) == arch.services.index(conformance.FRONTEND) - 1
    for arch in conformance.stream_architectures():
        assert conformance.transport_of(arch) in {"tcp", "ws", "grpc"}
