"""The shaped link's delay element: the round trip a TCP connect pays is the setting (within 10%), jitter stays
within its bounds, and nothing (namespace, device, process, pid file) outlives the link."""
from __future__ import annotations

import os
import statistics
import subprocess
import time

import pytest

from servebench import delay_link, netns
from servebench.netns import ShapedLink

WHY = netns.unavailable() or (None if os.path.exists("/dev/net/tun") else "no /dev/net/tun (TUN devices)")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(bool(WHY), reason=f"no network namespaces or TUN devices here: {WHY}")]


def _gone(link: ShapedLink, pid: int | None) -> bool:
    deadline = time.monotonic() + 10
    while True:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        gone = (link.client_ns not in netns.namespaces() and link.server_dev not in links
                and link.client_dev not in links and not link.pidfile.exists()
                and (pid is None or not os.path.exists(f"/proc/{pid}")))
        if gone or time.monotonic() > deadline:
            return gone
        time.sleep(0.1)


@pytest.mark.parametrize("delay_ms", [20, 50, 80])
def test_the_measured_round_trip_is_within_ten_percent_of_the_setting(delay_ms):
    with ShapedLink("test-delay", 20, delay_ms=delay_ms) as link:
        pid = link.element.pid
        rtt = link.measure_rtt_ms(20)
        assert abs(rtt["median"] - delay_ms) <= 0.1 * delay_ms, rtt
        assert rtt["min"] >= delay_ms * 0.98, rtt  # never faster than the setting
        rec = link.recorded()
        assert rec["delay_ms_set"] == delay_ms and rec["rtt_ms_measured"] == rtt and "TUN" in rec["link"]
    assert _gone(link, pid)


def test_jitter_spreads_the_round_trip_within_its_bounds():
    delay, jitter = 50, 10
    with ShapedLink("test-jitter", None, delay_ms=delay, jitter_ms=jitter) as link:
        pid = link.element.pid
        rtt = link.measure_rtt_ms(40)
        times = link.rtt_samples_ms
        # Each way waits ±jitter/2 uniform: a round trip within delay ± jitter (a triangle, interquartile range
        # 0.59 jitter). Never early; late only by scheduling, which a busy 2-core machine adds to a few connects,
        # so the upper bound holds for most connects and the spread is judged on the quartiles, not the stdev.
        assert rtt["min"] >= delay - jitter - 0.5, rtt
        late = [t for t in times if t > delay + jitter + 3]
        assert len(late) <= len(times) // 10, (late, rtt)
        q1, _, q3 = statistics.quantiles(times, n=4)
        assert 0.3 * jitter <= q3 - q1 <= 0.9 * jitter, (q1, q3, rtt)
        assert abs(rtt["median"] - delay) <= 0.1 * delay, rtt
    assert _gone(link, pid)


def test_a_delayed_link_in_two_namespaces_carries_a_transfer_and_is_removed_on_failure():
    with pytest.raises(RuntimeError, match="a failed run"):
        with ShapedLink("test-delay2", 50, delay_ms=20, server_ns=True) as link:
            pid = link.element.pid
            assert link.measure_mbit(1, "up") > 5
            raise RuntimeError("a failed run")
    assert _gone(link, pid)


def test_a_killed_runs_delay_element_is_removed_by_remove_stale():
    link = ShapedLink("test-delay-stale", None, delay_ms=20)
    pid = link.element.pid
    assert int(link.pidfile.read_text()) == pid
    assert netns.remove_stale("test-delay-stale") == [link.client_ns]
    link.element.wait(timeout=5)  # reaped here: the test started it
    assert _gone(link, pid)
    link.close()  # idempotent


def test_bad_settings_are_refused_before_anything_is_made():
    with pytest.raises(ValueError, match="cannot exceed the delay"):
        ShapedLink("test-delay-bad", None, delay_ms=10, jitter_ms=20)
    with pytest.raises(ValueError, match="negative"):
        ShapedLink("test-delay-bad", None, delay_ms=-1)
    assert "sb-test-delay-bad-c" not in netns.namespaces()


def test_the_element_keeps_each_directions_order_under_jitter():
    rng = delay_link.random.Random(1)
    way = delay_link.Direction(0, 1, 0.025, 0.010, rng)
    dues = [way.due(now=i * 0.0001) for i in range(200)]
    assert dues == sorted(dues)
    assert statistics.median(d - i * 0.0001 for i, d in enumerate(dues)) >= 0.025


def test_the_delay_changes_in_place_on_one_link():
    with ShapedLink("test-delay-set", 20, element=True) as link:
        pid = link.element.pid
        assert link.measure_rtt_ms(10)["median"] < 2.0  # the element at no delay: a fraction of a millisecond
        link.set_delay(50)
        assert abs(link.measure_rtt_ms(10)["median"] - 50) <= 5
        assert link.recorded()["delay_ms_set"] == 50
        with pytest.raises(ValueError, match="exceed"):
            link.set_delay(10, 20)
    assert _gone(link, pid)
