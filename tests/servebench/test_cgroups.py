"""Limits on the machine's real isolation: a process over its memory limit is killed, a CPU quota holds it back."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from servebench import cgroups
from servebench.cgroups import CGroup, Limits

needs_cgroups = pytest.mark.skipif(bool(cgroups.unavailable()), reason=f"no cgroup limits here: {cgroups.unavailable()}")


@pytest.mark.unit
def test_lambda_gives_one_vcpu_at_1769_mb():
    assert cgroups.lambda_cpus(1769) == 1.0
    lim = Limits.lambda_like(3008)
    assert lim.memory_mb == 3008 and lim.cpus == pytest.approx(1.7004, abs=1e-4)
    assert lim.docker_args() == ["--memory=3008m", "--memory-swap=3008m", "--cpus=1.7004"]


@pytest.mark.unit
def test_limits_from_knobs_treat_zero_as_unlimited():
    assert Limits.of(0, 0) is None and Limits.of(None, None) is None
    assert Limits.of(512, 0) == Limits(memory_mb=512)
    assert Limits.of(0, 0.5) == Limits(cpus=0.5)
    with pytest.raises(ValueError, match="positive"):
        Limits(memory_mb=-1)


@pytest.mark.unit
@needs_cgroups
def test_a_process_over_its_memory_limit_is_killed_and_counted():
    with CGroup(f"test-oom-{time.monotonic_ns()}", Limits(memory_mb=64)) as cg:
        proc = subprocess.run([sys.executable, "-c", "x = bytearray(256 * 1024 * 1024); print('survived')"],
                              preexec_fn=cg.preexec(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == -9 and "survived" not in proc.stdout
        assert cg.oom_kills() == 1
        assert cg.peak_memory_bytes() <= 64 * 1024 * 1024
    assert not cg.paths["memory"].exists()


@pytest.mark.unit
@needs_cgroups
def test_a_process_within_its_limit_runs_and_its_peak_is_read():
    with CGroup(f"test-fits-{time.monotonic_ns()}", Limits(memory_mb=256)) as cg:
        proc = subprocess.run([sys.executable, "-c", "x = bytearray(64 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"],
                              preexec_fn=cg.preexec(), timeout=60)
        assert proc.returncode == 0 and cg.oom_kills() == 0
        assert cg.peak_memory_bytes() >= 64 * 1024 * 1024


@pytest.mark.unit
@needs_cgroups
def test_a_cpu_quota_holds_a_busy_process_back():
    with CGroup(f"test-cpu-{time.monotonic_ns()}", Limits(cpus=0.2)) as cg:
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.5: pass"],
                       preexec_fn=cg.preexec(), timeout=60, check=True)
        wall = time.monotonic() - start
        # A busy loop gets at most 0.2 of a core (plus a period's rounding); a busy machine gives it less.
        assert cg.cpu_seconds() < 0.2 * wall + 0.15
        assert cg.throttled_s() > 0


@pytest.mark.unit
@needs_cgroups
def test_remove_kills_what_is_left_and_stale_groups_are_found():
    cg = CGroup(f"test-stale-{time.monotonic_ns()}", Limits(memory_mb=128))
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=cg.preexec())
    assert cg.pids() == [proc.pid]
    assert cg.name in cgroups.remove_stale("test-stale-")
    assert proc.wait(timeout=10) == -9
    assert not any(p.exists() for p in cg.paths.values())
