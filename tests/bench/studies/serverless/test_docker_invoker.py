"""The Docker invoker's `docker run` line: the cgroup limits it is given, as docker's flags (no engine needed)."""
import pytest

from bench.studies.serverless import cost, invokers
from servebench import cgroups

pytestmark = pytest.mark.unit
SPEC = invokers.FunctionSpec("alexnet-Conv_1", 2048, 300)


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def test_lambdas_share_of_a_cpu_by_default():
    argv = invokers.DockerInvoker(cost.load()).argv(SPEC, "fn-1")
    want = cgroups.Limits.lambda_like(SPEC.memory_mb)
    assert _flags(argv) == {"--memory": "2048m", "--memory-swap": "2048m", "--cpus": f"{want.cpus:g}"}
    assert argv[-2:] == ["--cpus", f"{want.cpus:.4f}"]


def test_the_limits_it_is_given_replace_lambdas():
    argv = invokers.DockerInvoker(cost.load(), limits=lambda mb: cgroups.Limits(memory_mb=mb)).argv(SPEC, "fn-1")
    assert _flags(argv) == {"--memory": "2048m", "--memory-swap": "2048m"}  # no CPU quota
    assert argv[-2:] == ["--cpus", "0.0000"]  # the worker's own thread count: no quota to fit
